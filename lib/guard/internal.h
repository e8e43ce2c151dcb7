/* Private to the guard module (lib/guard): its state, the audit line of a
 * call and the call frame every entry point is written in. Nothing declared
 * here leaves the module: it is built with -fvisibility=hidden and exports
 * C_GetFunctionList alone (guard.map).
 *
 *   session.c  the module's state: the card's module, slots, sessions, the card lock
 *   call.c     the audit line of a call, and entering and leaving a call
 *   fill.c     entry points the guard may answer in software (fill = yes)
 *   recover.c  a lost card: the readers enumerated again, a bounded wait (recover = yes)
 *   guard.c    the other entry points and the function table
 *   soft.c     the GnuTLS work behind the fill-ins (no guard state)
 */
#pragma once

#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "../audit.h"
#include "../error.h"
#include "../internal.h"
#include "conf.h"
#include "names.h"
#include "soft.h"

/* -- state (session.c) -- */

typedef struct slot {
	CK_SLOT_ID id;
	pthread_mutex_t mutex;   /* the card, within this process */
	int rng;                 /* -1 unknown, 0 no CKF_RNG (software), 1 the card's */
	/* a lost card (recover.c); lost, gave_up and lost_since under recover_lock */
	bool had_token;          /* a token was seen in it by this process */
	bool lost;               /* lost and not seen back */
	bool gave_up;            /* its wait ran out: calls fail at once until it is back */
	long lost_since;         /* CLOCK_MONOTONIC, ms */
	struct slot *next;
} slot_t;

typedef struct session {
	CK_SESSION_HANDLE h;
	CK_SLOT_ID slot;
	struct session *next;
	/* sign: key description for the log; emulated hashed mechanism */
	char *sign_desc;         /* ,"key":N,"label":…,"id":… or NULL */
	CK_MECHANISM_TYPE sign_mech;
	bool sign_emul;
	CK_MECHANISM_TYPE sign_raw;
	gnutls_digest_algorithm_t sign_dig;
	gnutls_hash_hd_t sign_hash;
	unsigned char sign_input[KHSM_SOFT_MAX_INPUT];
	size_t sign_input_len;   /* 0 until hashed */
	/* verify in software */
	bool verify_soft;
	char *verify_desc;
	CK_MECHANISM_TYPE verify_mech;
	gnutls_pubkey_t verify_key;
	gnutls_hash_hd_t verify_hash;   /* hashed mechanisms */
	unsigned char *verify_buf;      /* raw mechanisms, multi-part */
	size_t verify_len;
	/* digest in software */
	bool digest_soft;
	CK_MECHANISM_TYPE digest_mech;
	gnutls_hash_hd_t digest_hash;
} session_t;

typedef struct {
	pthread_mutex_t lock;    /* state below */
	bool initialized;
	khsm_guard_conf_t conf;
	void *dl;
	CK_FUNCTION_LIST_PTR fl; /* the card's module */
	int lock_fd;
	char comm[64];
	slot_t *slots;
	session_t *sessions;
	bool warned_log;         /* stderr warning about the log given (once per failure streak) */
	bool warned_lock;
	bool warned_anchor;
	unsigned long appended;  /* lines this process wrote (anchor_every) */
	pid_t pid;               /* of the process that called C_Initialize */
	bool pin_failed;         /* the card said CKR_PIN_INCORRECT to this process */
	pthread_mutex_t recover_lock;   /* one recovery at a time (recover.c) */
} khsm_guard_state_t;

/* One per process: PKCS #11 has one module state per process. */
extern khsm_guard_state_t khsm_guard;

/** "knot-hsm-guard: …" on stderr: the application's own stderr is all a
 *  module has to explain itself. */
void khsm_guard_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** C_Initialize: load the configuration and the card's module, or, in a
 *  forked child, start again from what the parent left (*after_fork_ptr).
 *  self is the guard's own function list (its file locates the
 *  configuration; the card's module must not be the guard itself).
 *  CKR_CRYPTOKI_ALREADY_INITIALIZED when this process did it already. */
CK_RV khsm_guard_state_open(const CK_FUNCTION_LIST *self, bool *after_fork_ptr);

/** After a C_Finalize the card's module accepted: forget it all. */
void khsm_guard_state_close(void);

/** The slot's record, made on first use; NULL without memory. */
slot_t *khsm_guard_slot_get(CK_SLOT_ID id);

/** The session's record, NULL for a handle the guard did not open. */
session_t *khsm_guard_session_find(CK_SESSION_HANDLE h);

/** Keep a session the card opened; the guard owns s from now on. */
void khsm_guard_session_add(session_t *s);

/** Free a session record that is no longer in the list. */
void khsm_guard_session_free(session_t *s);

/** Forget one session (C_CloseSession) or those of a slot (C_CloseAllSessions). */
void khsm_guard_session_drop(CK_SESSION_HANDLE h);
void khsm_guard_slot_drop_sessions(CK_SLOT_ID slot);

/** End a session's signature, verification or digest operation. */
void khsm_guard_sign_clear(session_t *s);
void khsm_guard_verify_clear(session_t *s);
void khsm_guard_digest_clear(session_t *s);

/** The card, across threads (mutex) and processes (OFD lock on byte = slot
 *  id of the lock file). Held for one call, never from one call to the next. */
void khsm_guard_card_lock(slot_t *s);
void khsm_guard_card_unlock(slot_t *s);

/* -- the audit line of a call (call.c) -- */

/* Flags of a call. SEC: security relevant (fail closed, fsync). CHANGE: it
 * changes keys, objects or PINs, so its intent line comes before the card
 * call, and the call is not made when that line cannot be written. */
enum { SEC = 1, CHANGE = SEC | 2, NORECOVER = 4 };

typedef struct {
	const char *fn;
	unsigned flags;
	int fd;             /* audit log, opened before the call */
	int open_error;     /* KHSM_E* when it could not be opened */
	char *extra;        /* ,"key":value members */
	size_t extra_len;
	FILE *m;
	slot_t *card;       /* held card lock */
	unsigned char *wipe;  /* output to clear when the call is turned into a failure */
	CK_ULONG *wipe_len;
	bool intent_done;   /* the intent line of a CHANGE call was tried */
	/* what the line names: set when the call is entered (khsm_guard_call_on_*) */
	bool have_slot;
	CK_SLOT_ID slot;
	bool have_session;
	CK_SESSION_HANDLE session;
} call_t;

/** Start the line of a call: open the audit log (a warning once when it
 *  cannot be), collect members from here on. */
void khsm_guard_call_begin(call_t *c, const char *fn, unsigned flags);

/** Start a call on a slot or a session: the line, then the card lock of the
 *  slot (the session's). Unknown session handles: CKR_SESSION_HANDLE_INVALID
 *  and *s_ptr NULL; a security-relevant call without its log, when the
 *  guard fails closed: CKR_FUNCTION_FAILED. */
CK_RV khsm_guard_call_on_slot(call_t *c, const char *fn, unsigned flags, CK_SLOT_ID slot);
CK_RV khsm_guard_call_on_session(call_t *c, const char *fn, unsigned flags, CK_SESSION_HANDLE h,
                                 session_t **s_ptr);

/** Before the card call of a CHANGE call: its intent line, fsync'ed, once
 *  (PROCESS_CALL does it; a body that must know earlier may call it first).
 *  CKR_FUNCTION_FAILED (do not make the call) when that line cannot be
 *  written and the guard fails closed; CKR_OK for other calls. */
CK_RV khsm_guard_call_intent(call_t *c);

/** Release the card, write the line with rv and return what the caller
 *  gets: rv, or CKR_FUNCTION_FAILED (its output wiped) when a
 *  security-relevant line was lost and the guard fails closed. */
CK_RV khsm_guard_call_end(call_t *c, CK_RV rv);

/** Record the log's head now (C_Finalize), when an anchor is configured. */
void khsm_guard_call_anchor(void);

/** Append to the line (printf format; ,"key":value members). */
void khsm_guard_call_add(call_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** ,"<handle_key>":N,"label":…,"id":"hex" of an object (what can be read, never
 *  values) into a new string, NULL when nothing can be. Callers hold the card lock. */
char *khsm_guard_describe(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const char *handle_key);

/** The same, appended to the line. */
void khsm_guard_call_object(call_t *c, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const char *handle_key);

/** ,"attrs":[names] of a template (types only). */
void khsm_guard_call_attr_types(call_t *c, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n);

/** One variable-length attribute as the card's module has it.
 *  \param[out] out_ptr  free(); NUL-terminated too. */
CK_RV khsm_guard_attr(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                      unsigned char **out_ptr, CK_ULONG *len_ptr);

/* Members of the line; names are JSON keys. */
static inline void c_num(call_t *c, const char *key, unsigned long v)
{
	khsm_guard_call_add(c, ",\"%s\":%lu", key, v);
}

static inline void c_true(call_t *c, const char *key)
{
	khsm_guard_call_add(c, ",\"%s\":true", key);
}

static inline void c_str(call_t *c, const char *key, const void *s, size_t len)
{
	char *j = NULL;
	if (khsm_audit_json_string(s, len, &j) == KHSM_EOK) {
		khsm_guard_call_add(c, ",\"%s\":%s", key, j);
		free(j);
	}
}

static inline void c_mech(call_t *c, const char *key, CK_MECHANISM_TYPE m)
{
	char buf[32];
	khsm_guard_call_add(c, ",\"%s\":\"%s\"", key, khsm_guard_ckm_name(m, buf, sizeof(buf)));
}

/* -- the call frame --
 *
 * Every slot and session entry point has one shape, as p11-kit's log.c
 * writes its calls between BEGIN_CALL, PROCESS_CALL and DONE_CALL:
 *
 *	BEGIN_SESSION_CALL(Sign, SEC, hSession);
 *	... members of the line, checks, software work ...
 *	PROCESS_CALL(Sign, (hSession, in, in_len, out, out_len));
 *	... members from the result ...
 *	DONE_CALL;
 *
 * BEGIN_* refuses a process that has not called C_Initialize, starts the
 * line and takes the card lock. It declares c (the call), rv (the result so
 * far) and, for a session, s (NULL for an unknown handle, rv then says so).
 * PROCESS_CALL makes the card's own call when nothing failed before it
 * (after the intent line of a CHANGE call). Every slot and session entry
 * point reaches the card through it, with the card lock held and the line
 * open: the one place that sees the card's answer, where a lost card is
 * caught (recover.c): a slot call is made again once the card is back, a
 * session the card's module lost is answered CKR_SESSION_HANDLE_INVALID.
 * DONE_CALL releases the card, writes the line and returns.
 */

/* A forked child must call C_Initialize itself (PKCS #11 6.7.7): until then
 * it is not initialised, whatever it inherited. */
#define NOT_INIT() do { \
		if (!khsm_guard.initialized || khsm_guard.pid != getpid()) \
			return CKR_CRYPTOKI_NOT_INITIALIZED; \
	} while (0)

/* A call on no slot (C_GetSlotList, C_Finalize). */
#define BEGIN_CALL(name, flags) \
	NOT_INIT(); \
	call_t c; \
	CK_RV rv = CKR_OK; \
	khsm_guard_call_begin(&c, "C_" #name, flags)

#define BEGIN_SLOT_CALL(name, flags, slot_id) \
	NOT_INIT(); \
	call_t c; \
	CK_RV rv = khsm_guard_call_on_slot(&c, "C_" #name, flags, slot_id)

#define BEGIN_SESSION_CALL(name, flags, handle) \
	NOT_INIT(); \
	call_t c; \
	session_t *s _unused_; \
	CK_RV rv = khsm_guard_call_on_session(&c, "C_" #name, flags, handle, &s)

#define PROCESS_CALL(name, args) do { \
		if (rv == CKR_OK) rv = khsm_guard_call_intent(&c); \
		if (rv == CKR_OK) { \
			rv = khsm_guard.fl->C_##name args; \
			if (khsm_guard_recover_wanted(&c, rv) && \
			    (rv = khsm_guard_recover_call(&c, rv)) == KHSM_GUARD_CALL_AGAIN) { \
				rv = khsm_guard.fl->C_##name args; \
			} \
		} \
	} while (0)

#define DONE_CALL return khsm_guard_call_end(&c, rv)

/* -- a lost card (recover.c) -- */

/** Is rv what the card's module answers when the card or pcscd went away? */
bool khsm_guard_lost_code(CK_RV rv);

/** Should PROCESS_CALL try to recover after the card's answer rv? */
bool khsm_guard_recover_wanted(const call_t *c, CK_RV rv);

/* Not a PKCS #11 code: khsm_guard_recover_call() asks for the call again. */
#define KHSM_GUARD_CALL_AGAIN (CKR_VENDOR_DEFINED | 0x4b48534dUL)

/** After a card call answered a code of loss: enumerate the readers, wait
 *  (bounded, once per outage) for the card, write the outage to the log.
 *  Returns what the application gets, or KHSM_GUARD_CALL_AGAIN: a slot call
 *  to make once more now that the card is back. Callers hold the card lock. */
CK_RV khsm_guard_recover_call(call_t *c, CK_RV rv);

/** The card's module enumerates its readers (C_GetSlotList with a NULL
 *  list), with recover = yes. */
void khsm_guard_recover_enumerate(void);

/** C_GetSlotList(CK_TRUE, list) answered: slots listed had a token; true
 *  when one that had a token was missing and is back (list again). */
bool khsm_guard_recover_list(CK_BBOOL present, const CK_SLOT_ID *list, CK_ULONG n);

/** A token is in the slot (a session opened, its token info read). */
void khsm_guard_recover_seen(slot_t *card);

/* -- entry points with software fill-ins (fill.c), for the table in guard.c -- */

CK_RV khsm_guard_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info);
CK_RV khsm_guard_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count);
CK_RV khsm_guard_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info);
CK_RV khsm_guard_C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech);
CK_RV khsm_guard_C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                          CK_ULONG_PTR out_len);
CK_RV khsm_guard_C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len);
CK_RV khsm_guard_C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE key);
CK_RV khsm_guard_C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV khsm_guard_C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key);
CK_RV khsm_guard_C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                        CK_ULONG_PTR out_len);
CK_RV khsm_guard_C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len);
CK_RV khsm_guard_C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV khsm_guard_C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key);
CK_RV khsm_guard_C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                          CK_ULONG sig_len);
CK_RV khsm_guard_C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len);
CK_RV khsm_guard_C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len);
CK_RV khsm_guard_C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR seed, CK_ULONG len);
CK_RV khsm_guard_C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG len);
