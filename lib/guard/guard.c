/*
 * knot-hsm guard: a PKCS#11 module between Knot (or any PKCS#11 application)
 * and the card's own module. It
 *  - writes one hash-chained JSON line per call to an append-only audit log
 *    (call.c, lib/audit.c): who, what and the result; never a PIN, never
 *    attribute values or data;
 *  - serialises every call that reaches the card, per slot, within the
 *    process and across processes (session.c). Each call is serialised on
 *    its own; the lock is not held from C_SignInit to C_Sign (see DESIGN);
 *  - fills gaps in software with GnuTLS, only where the card lacks them
 *    (fill.c): verification with the public key, digests, random numbers,
 *    hashed signature mechanisms (hash here, raw mechanism on the card);
 *  - fails closed: when the audit log cannot be written, logins, signatures,
 *    key generation and other key changes fail with CKR_FUNCTION_FAILED
 *    (fail_closed = no: they go on with a warning on stderr); a call that
 *    changes keys, objects or PINs writes an intent line first and is not
 *    made when that line cannot be written;
 *  - costs the card one wrong PIN per process at most, and none at its final
 *    try or when locked (login_final_try);
 *  - anchors the log's head (anchor_file, anchor_syslog; see lib/audit.h);
 *  - in a forked child, answers CKR_CRYPTOKI_NOT_INITIALIZED until the
 *    child's own C_Initialize, which starts clean (own lock description).
 *  Files it appends to or locks are opened by khsm_audit_open_file(): never
 *  through a symbolic link, never someone else's.
 *
 * DESIGN, the lock per call: OpenSC talks to the card in C_Sign, not in
 * C_SignInit; holding the card from SignInit to Sign would let an
 * application that abandons an operation (or starts two on one thread)
 * block every other process forever. Per call, no call waits for anything
 * but another call's end, and nothing is ever retried.
 *
 * This file: the entry points that fill nothing in, and the function table.
 * Each is written in the call frame of internal.h. Configuration: conf.h.
 */
#include "internal.h"

#define EXPORT __attribute__((visibility("default")))

static CK_FUNCTION_LIST funcs;

/* -- general -- */

static CK_RV khsm_guard_C_Initialize(CK_VOID_PTR init_args)
{
	(void)init_args;   /* the guard uses OS locking, and so does the card module */
	bool after_fork = false;
	CK_RV rv = khsm_guard_state_open(&funcs, &after_fork);
	if (rv != CKR_OK) return rv;
	call_t c;
	khsm_guard_call_begin(&c, "C_Initialize", 0);
	c_str(&c, "module", khsm_guard.conf.module, strlen(khsm_guard.conf.module));
	if (after_fork) c_true(&c, "after_fork");
	return khsm_guard_call_end(&c, CKR_OK);
}

static CK_RV khsm_guard_C_Finalize(CK_VOID_PTR reserved)
{
	BEGIN_CALL(Finalize, 0);
	pthread_mutex_lock(&khsm_guard.lock);
	PROCESS_CALL(Finalize, (reserved));
	pthread_mutex_unlock(&khsm_guard.lock);
	/* Logged while the configuration (the log's path) is still there. */
	rv = khsm_guard_call_end(&c, rv);
	khsm_guard_call_anchor();
	if (rv == CKR_OK) khsm_guard_state_close();
	return rv;
}

static CK_RV khsm_guard_C_GetInfo(CK_INFO_PTR info)
{
	NOT_INIT();
	CK_RV rv = khsm_guard.fl->C_GetInfo(info);
	if (rv == CKR_OK && info) {
		/* The application talks to PKCS #11 2.40 here, whatever is below. */
		info->cryptokiVersion.major = CRYPTOKI_VERSION_MAJOR;
		info->cryptokiVersion.minor = CRYPTOKI_VERSION_MINOR;
	}
	call_t c;
	khsm_guard_call_begin(&c, "C_GetInfo", 0);
	return khsm_guard_call_end(&c, rv);
}

static CK_RV khsm_guard_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (!list) return CKR_ARGUMENTS_BAD;
	*list = &funcs;
	return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return khsm_guard_C_GetFunctionList(list);
}

/* -- slots and tokens (C_GetTokenInfo and the mechanisms: fill.c) -- */

static CK_RV khsm_guard_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	BEGIN_CALL(GetSlotList, 0);
	CK_ULONG room = count ? *count : 0;
	/* GnuTLS asks for the list before every use of a token: the module
	 * looks at its readers first, so that a dead pcscd or a changed card is
	 * seen here, before a session is opened on what the module remembers. */
	if (list) khsm_guard_recover_enumerate();
	PROCESS_CALL(GetSlotList, (present, list, count));
	/* A card this process had is missing (pcscd restarted, the card out):
	 * once it is back, the list again (recover.c). */
	if (rv == CKR_OK && khsm_guard_recover_list(present, list, *count)) {
		*count = room;
		c_true(&c, "recovered");
		rv = khsm_guard.fl->C_GetSlotList(present, list, count);
		if (rv == CKR_OK) khsm_guard_recover_list(present, list, *count);
	}
	if (rv == CKR_OK && count) c_num(&c, "count", *count);
	DONE_CALL;
}

static CK_RV khsm_guard_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	BEGIN_SLOT_CALL(GetSlotInfo, 0, slot);
	PROCESS_CALL(GetSlotInfo, (slot, info));
	DONE_CALL;
}

static CK_RV khsm_guard_C_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len,
                                    CK_UTF8CHAR_PTR label)
{
	BEGIN_SLOT_CALL(InitToken, CHANGE, slot);
	PROCESS_CALL(InitToken, (slot, pin, pin_len, label));
	DONE_CALL;
}

static CK_RV khsm_guard_C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	NOT_INIT();
	/* Blocks: never under a card lock, and the log is opened after it, so
	 * that the line goes to the log as it is when the wait ends. */
	CK_RV rv = khsm_guard.fl->C_WaitForSlotEvent(flags, slot, reserved);
	call_t c;
	khsm_guard_call_begin(&c, "C_WaitForSlotEvent", 0);
	c.have_slot = rv == CKR_OK && slot;
	c.slot = slot ? *slot : 0;
	return khsm_guard_call_end(&c, rv);
}

/* -- sessions -- */

static CK_RV khsm_guard_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                                      CK_SESSION_HANDLE_PTR ph)
{
	BEGIN_SLOT_CALL(OpenSession, 0, slot);
	session_t *s = calloc(1, sizeof(*s));
	if (rv == CKR_OK && !s) rv = CKR_HOST_MEMORY;
	if (rv == CKR_OK && !ph) rv = CKR_ARGUMENTS_BAD;
	/* Notifications would arrive without the card lock's bookkeeping: none. */
	(void)notify;
	PROCESS_CALL(OpenSession, (slot, flags, app, NULL, ph));
	if (rv == CKR_OK) {
		s->h = *ph;
		s->slot = slot;
		khsm_guard_recover_seen(c.card);
		khsm_guard_session_add(KHSM_STEAL(s));
		c_num(&c, "flags", flags);
		c.have_session = true;
		c.session = *ph;
	}
	free(s);
	DONE_CALL;
}

static CK_RV khsm_guard_C_CloseSession(CK_SESSION_HANDLE hSession)
{
	BEGIN_SESSION_CALL(CloseSession, NORECOVER, hSession);
	PROCESS_CALL(CloseSession, (hSession));
	if (rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_DEVICE_REMOVED) {
		khsm_guard_session_drop(hSession);
	}
	DONE_CALL;
}

static CK_RV khsm_guard_C_CloseAllSessions(CK_SLOT_ID slot)
{
	BEGIN_SLOT_CALL(CloseAllSessions, NORECOVER, slot);
	PROCESS_CALL(CloseAllSessions, (slot));
	khsm_guard_slot_drop_sessions(slot);
	DONE_CALL;
}

/* A session call with nothing to add to its line. */
#define FWD(name, flags, params, args) \
	static CK_RV khsm_guard_C_##name params \
	{ \
		BEGIN_SESSION_CALL(name, flags, hSession); \
		PROCESS_CALL(name, args); \
		DONE_CALL; \
	}

FWD(GetSessionInfo, 0, (CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR info), (hSession, info))
FWD(GetOperationState, 0, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR state, CK_ULONG_PTR len),
    (hSession, state, len))
FWD(SetOperationState, 0, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR state, CK_ULONG len,
                           CK_OBJECT_HANDLE enc, CK_OBJECT_HANDLE auth),
    (hSession, state, len, enc, auth))
FWD(Logout, SEC, (CK_SESSION_HANDLE hSession), (hSession))
FWD(GetFunctionStatus, 0, (CK_SESSION_HANDLE hSession), (hSession))
FWD(CancelFunction, 0, (CK_SESSION_HANDLE hSession), (hSession))

/* -- PINs: the user type and the result, never the PIN -- */

/* One wrong PIN per process and never more: after CKR_PIN_INCORRECT, and
 * at the card's final try or when it is locked (unless login_final_try =
 * allow), a user login is refused here without asking the card. Callers
 * hold the card lock. */
static CK_RV login_precheck(call_t *c, session_t *s)
{
	if (__atomic_load_n(&khsm_guard.pin_failed, __ATOMIC_RELAXED)) {
		khsm_guard_call_add(c, ",\"refused\":\"a wrong PIN was given before in this process\"");
		khsm_guard_warn("login refused without asking the card: a wrong PIN was given before in this "
		                "process (one try per run; fix the PIN source and start again)");
		return CKR_PIN_INCORRECT;
	}
	CK_TOKEN_INFO ti;
	if (khsm_guard.fl->C_GetTokenInfo(s->slot, &ti) != CKR_OK) return CKR_OK;   /* the card will say */
	if (ti.flags & CKF_USER_PIN_LOCKED) {
		khsm_guard_call_add(c, ",\"refused\":\"PIN locked\"");
		return CKR_PIN_LOCKED;
	}
	if ((ti.flags & CKF_USER_PIN_FINAL_TRY) && !khsm_guard.conf.login_final_try) {
		khsm_guard_call_add(c, ",\"refused\":\"final PIN try\"");
		khsm_guard_warn("login refused without asking the card: it is at its final PIN try, and a wrong "
		                "PIN would lock it (set login_final_try = allow in %s for one try)",
		                khsm_guard.conf.path);
		return CKR_PIN_LOCKED;
	}
	return CKR_OK;
}

static CK_RV khsm_guard_C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
                                CK_ULONG pin_len)
{
	BEGIN_SESSION_CALL(Login, SEC, hSession);
	char b[32];
	khsm_guard_call_add(&c, ",\"user\":\"%s\"", khsm_guard_cku_name(user, b, sizeof(b)));
	if (rv == CKR_OK && user == CKU_USER) rv = login_precheck(&c, s);
	if (rv == CKR_OK) {
		PROCESS_CALL(Login, (hSession, user, pin, pin_len));
		if (rv == CKR_PIN_INCORRECT && user == CKU_USER) {
			__atomic_store_n(&khsm_guard.pin_failed, true, __ATOMIC_RELAXED);
		}
	}
	slot_t *card = c.card;
	CK_RV out = khsm_guard_call_end(&c, rv);
	if (rv == CKR_OK && out != CKR_OK && card) {
		/* The login could not be recorded: undo it. */
		khsm_guard_card_lock(card);
		khsm_guard.fl->C_Logout(hSession);
		khsm_guard_card_unlock(card);
	}
	return out;
}

FWD(InitPIN, CHANGE, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),
    (hSession, pin, pin_len))
FWD(SetPIN, CHANGE, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
                     CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len),
    (hSession, old_pin, old_len, new_pin, new_len))

/* -- objects: handles and attribute types, never values -- */

static CK_RV khsm_guard_C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                                       CK_OBJECT_HANDLE_PTR obj)
{
	BEGIN_SESSION_CALL(CreateObject, CHANGE, hSession);
	khsm_guard_call_attr_types(&c, tmpl, n);
	PROCESS_CALL(CreateObject, (hSession, tmpl, n, obj));
	if (rv == CKR_OK && obj) khsm_guard_call_object(&c, hSession, *obj, "object");
	DONE_CALL;
}

static CK_RV khsm_guard_C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,
                                     CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	BEGIN_SESSION_CALL(CopyObject, CHANGE, hSession);
	if (rv == CKR_OK) {
		khsm_guard_call_object(&c, hSession, obj, "object");
		khsm_guard_call_attr_types(&c, tmpl, n);
	}
	PROCESS_CALL(CopyObject, (hSession, obj, tmpl, n, out));
	if (rv == CKR_OK && out) c_num(&c, "new", *out);
	DONE_CALL;
}

static CK_RV khsm_guard_C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj)
{
	BEGIN_SESSION_CALL(DestroyObject, CHANGE, hSession);
	if (rv == CKR_OK) khsm_guard_call_object(&c, hSession, obj, "object");
	PROCESS_CALL(DestroyObject, (hSession, obj));
	DONE_CALL;
}

static CK_RV khsm_guard_C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size)
{
	BEGIN_SESSION_CALL(GetObjectSize, 0, hSession);
	c_num(&c, "object", obj);
	PROCESS_CALL(GetObjectSize, (hSession, obj, size));
	DONE_CALL;
}

static CK_RV khsm_guard_C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj,
                                            CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	BEGIN_SESSION_CALL(GetAttributeValue, 0, hSession);
	c_num(&c, "object", obj);
	khsm_guard_call_attr_types(&c, tmpl, n);
	PROCESS_CALL(GetAttributeValue, (hSession, obj, tmpl, n));
	DONE_CALL;
}

static CK_RV khsm_guard_C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj,
                                            CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	BEGIN_SESSION_CALL(SetAttributeValue, CHANGE, hSession);
	khsm_guard_call_attr_types(&c, tmpl, n);
	/* The intent first: the object is described only when the change is made. */
	if (rv == CKR_OK) rv = khsm_guard_call_intent(&c);
	if (rv == CKR_OK) {
		PROCESS_CALL(SetAttributeValue, (hSession, obj, tmpl, n));
		/* Described after the change: the label and id it has now. */
		khsm_guard_call_object(&c, hSession, obj, "object");
	}
	DONE_CALL;
}

static CK_RV khsm_guard_C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	BEGIN_SESSION_CALL(FindObjectsInit, 0, hSession);
	khsm_guard_call_attr_types(&c, tmpl, n);
	PROCESS_CALL(FindObjectsInit, (hSession, tmpl, n));
	DONE_CALL;
}

static CK_RV khsm_guard_C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
                                      CK_ULONG_PTR n)
{
	BEGIN_SESSION_CALL(FindObjects, 0, hSession);
	PROCESS_CALL(FindObjects, (hSession, objs, max, n));
	if (rv == CKR_OK && n && objs) {
		c_num(&c, "count", *n);
		khsm_guard_call_add(&c, ",\"objects\":[");
		for (CK_ULONG i = 0; i < *n && i < 32; i++) {
			/* {"handle":N,"label":…}: the description without its leading comma */
			char *d = khsm_guard_describe(hSession, objs[i], "handle");
			if (d) khsm_guard_call_add(&c, "%s{%s}", i == 0 ? "" : ",", d + 1);
			free(d);
		}
		khsm_guard_call_add(&c, "]");
	}
	DONE_CALL;
}

FWD(FindObjectsFinal, 0, (CK_SESSION_HANDLE hSession), (hSession))

/* -- encryption and the rest of the card's operations: forwarded, logged
 *    by mechanism, key and length -- */

#define FWD_INIT(name, flags) \
	static CK_RV khsm_guard_C_##name(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key) \
	{ \
		BEGIN_SESSION_CALL(name, flags, hSession); \
		if (mech) c_mech(&c, "mech", mech->mechanism); \
		if (rv == CKR_OK) khsm_guard_call_object(&c, hSession, key, "key"); \
		PROCESS_CALL(name, (hSession, mech, key)); \
		DONE_CALL; \
	}

/* in/in_len -> out/out_len calls; the output is wiped when the call is
 * turned into a failure. */
#define FWD_IO(name, flags) \
	static CK_RV khsm_guard_C_##name(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, \
	                                 CK_BYTE_PTR out, CK_ULONG_PTR out_len) \
	{ \
		BEGIN_SESSION_CALL(name, flags, hSession); \
		c_num(&c, "len", in_len); \
		if (!out) c_true(&c, "query"); \
		PROCESS_CALL(name, (hSession, in, in_len, out, out_len)); \
		c.wipe = out; \
		c.wipe_len = out_len; \
		DONE_CALL; \
	}

#define FWD_FINAL(name, flags) \
	static CK_RV khsm_guard_C_##name(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len) \
	{ \
		BEGIN_SESSION_CALL(name, flags, hSession); \
		if (!out) c_true(&c, "query"); \
		PROCESS_CALL(name, (hSession, out, out_len)); \
		c.wipe = out; \
		c.wipe_len = out_len; \
		DONE_CALL; \
	}

FWD_INIT(EncryptInit, 0)
FWD_IO(Encrypt, 0)
FWD_IO(EncryptUpdate, 0)
FWD_FINAL(EncryptFinal, 0)
FWD_INIT(DecryptInit, SEC)
FWD_IO(Decrypt, SEC)
FWD_IO(DecryptUpdate, SEC)
FWD_FINAL(DecryptFinal, SEC)
FWD_IO(DigestEncryptUpdate, 0)
FWD_IO(DecryptDigestUpdate, SEC)
FWD_IO(SignEncryptUpdate, SEC)
FWD_IO(DecryptVerifyUpdate, SEC)
FWD_INIT(SignRecoverInit, SEC)
FWD_IO(SignRecover, SEC)
FWD_INIT(VerifyRecoverInit, 0)

static CK_RV khsm_guard_C_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len,
                                        CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	BEGIN_SESSION_CALL(VerifyRecover, 0, hSession);
	c_num(&c, "len", sig_len);
	PROCESS_CALL(VerifyRecover, (hSession, sig, sig_len, out, out_len));
	DONE_CALL;
}

/* -- keys: the new key's label and id as the card assigned them -- */

static CK_RV khsm_guard_C_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
                                      CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
	BEGIN_SESSION_CALL(GenerateKey, CHANGE, hSession);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	khsm_guard_call_attr_types(&c, tmpl, n);
	PROCESS_CALL(GenerateKey, (hSession, mech, tmpl, n, key));
	if (rv == CKR_OK && key) khsm_guard_call_object(&c, hSession, *key, "key");
	DONE_CALL;
}

static CK_RV khsm_guard_C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech,
                                          CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG n_pub,
                                          CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG n_priv,
                                          CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	BEGIN_SESSION_CALL(GenerateKeyPair, CHANGE, hSession);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	PROCESS_CALL(GenerateKeyPair, (hSession, mech, pub_tmpl, n_pub, priv_tmpl, n_priv, pub, priv));
	if (rv == CKR_OK && pub && priv) {
		/* Top level: the private key. */
		khsm_guard_call_object(&c, hSession, *priv, "key");
		c_num(&c, "public", *pub);
	}
	DONE_CALL;
}

static CK_RV khsm_guard_C_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping,
                                  CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	BEGIN_SESSION_CALL(WrapKey, SEC, hSession);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	if (rv == CKR_OK) {
		khsm_guard_call_object(&c, hSession, key, "key");
		c_num(&c, "wrapping", wrapping);
	}
	PROCESS_CALL(WrapKey, (hSession, mech, wrapping, key, out, out_len));
	c.wipe = out;
	c.wipe_len = out_len;
	DONE_CALL;
}

static CK_RV khsm_guard_C_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech,
                                    CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in, CK_ULONG in_len,
                                    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
	BEGIN_SESSION_CALL(UnwrapKey, CHANGE, hSession);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	c_num(&c, "unwrapping", unwrapping);
	c_num(&c, "len", in_len);
	PROCESS_CALL(UnwrapKey, (hSession, mech, unwrapping, in, in_len, tmpl, n, key));
	if (rv == CKR_OK && key) khsm_guard_call_object(&c, hSession, *key, "key");
	DONE_CALL;
}

static CK_RV khsm_guard_C_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE base,
                                    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
	BEGIN_SESSION_CALL(DeriveKey, CHANGE, hSession);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	c_num(&c, "base", base);
	PROCESS_CALL(DeriveKey, (hSession, mech, base, tmpl, n, key));
	if (rv == CKR_OK && key) c_num(&c, "key", *key);
	DONE_CALL;
}

/* -- the table: every function of PKCS #11 2.40 goes through the guard -- */

#define ENTRY(name) .C_##name = khsm_guard_C_##name

static CK_FUNCTION_LIST funcs = {
	.version = { CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR },
	ENTRY(Initialize), ENTRY(Finalize), ENTRY(GetInfo), ENTRY(GetFunctionList),
	ENTRY(GetSlotList), ENTRY(GetSlotInfo), ENTRY(GetTokenInfo), ENTRY(GetMechanismList),
	ENTRY(GetMechanismInfo), ENTRY(InitToken), ENTRY(InitPIN), ENTRY(SetPIN),
	ENTRY(OpenSession), ENTRY(CloseSession), ENTRY(CloseAllSessions), ENTRY(GetSessionInfo),
	ENTRY(GetOperationState), ENTRY(SetOperationState), ENTRY(Login), ENTRY(Logout),
	ENTRY(CreateObject), ENTRY(CopyObject), ENTRY(DestroyObject), ENTRY(GetObjectSize),
	ENTRY(GetAttributeValue), ENTRY(SetAttributeValue),
	ENTRY(FindObjectsInit), ENTRY(FindObjects), ENTRY(FindObjectsFinal),
	ENTRY(EncryptInit), ENTRY(Encrypt), ENTRY(EncryptUpdate), ENTRY(EncryptFinal),
	ENTRY(DecryptInit), ENTRY(Decrypt), ENTRY(DecryptUpdate), ENTRY(DecryptFinal),
	ENTRY(DigestInit), ENTRY(Digest), ENTRY(DigestUpdate), ENTRY(DigestKey), ENTRY(DigestFinal),
	ENTRY(SignInit), ENTRY(Sign), ENTRY(SignUpdate), ENTRY(SignFinal),
	ENTRY(SignRecoverInit), ENTRY(SignRecover),
	ENTRY(VerifyInit), ENTRY(Verify), ENTRY(VerifyUpdate), ENTRY(VerifyFinal),
	ENTRY(VerifyRecoverInit), ENTRY(VerifyRecover),
	ENTRY(DigestEncryptUpdate), ENTRY(DecryptDigestUpdate), ENTRY(SignEncryptUpdate),
	ENTRY(DecryptVerifyUpdate),
	ENTRY(GenerateKey), ENTRY(GenerateKeyPair), ENTRY(WrapKey), ENTRY(UnwrapKey), ENTRY(DeriveKey),
	ENTRY(SeedRandom), ENTRY(GenerateRandom),
	ENTRY(GetFunctionStatus), ENTRY(CancelFunction), ENTRY(WaitForSlotEvent),
};
