/*
 * knot-hsm guard: a PKCS#11 module between Knot (or any PKCS#11 application)
 * and the card's own module. It
 *  - writes one hash-chained JSON line per call to an append-only audit log
 *    (lib/audit.c): who (pid, process name), what (function, slot, session,
 *    mechanism, key label and id, data length), and the result; never a PIN,
 *    never attribute values or data;
 *  - serialises every call that reaches the card, per slot: a mutex within
 *    the process and an OFD byte-range lock (byte = slot id) on the lock file
 *    across processes. Each call is serialised on its own; the lock is not
 *    held from C_SignInit to C_Sign (see DESIGN below);
 *  - fills gaps in software with GnuTLS, only where the card lacks them:
 *    verification with the public key, digests, random numbers, hashed
 *    signature mechanisms (hash here, raw mechanism on the card);
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
 * Configuration: lib/guard/conf.h. Session and object handles are the real
 * module's, passed through.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>

#include "../audit.h"
#include "../error.h"
#include "../internal.h"
#include "conf.h"
#include "names.h"
#include "soft.h"

#define EXPORT __attribute__((visibility("default")))

/* -- state -- */

typedef struct slot {
	CK_SLOT_ID id;
	pthread_mutex_t mutex;   /* the card, within this process */
	int rng;                 /* -1 unknown, 0 no CKF_RNG (software), 1 the card's */
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

static struct {
	pthread_mutex_t lock;    /* state below */
	bool initialized;
	khsm_guard_conf_t conf;
	void *dl;
	CK_FUNCTION_LIST_PTR fl;
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
} g = { .lock = PTHREAD_MUTEX_INITIALIZER, .lock_fd = -1 };

static CK_FUNCTION_LIST g_funcs;

static void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("knot-hsm-guard: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Callers hold g.lock. */
static slot_t *slot_get_locked(CK_SLOT_ID id)
{
	for (slot_t *s = g.slots; s; s = s->next) {
		if (s->id == id) return s;
	}
	slot_t *s = calloc(1, sizeof(*s));
	if (!s) return NULL;
	s->id = id;
	s->rng = -1;
	pthread_mutex_init(&s->mutex, NULL);
	s->next = g.slots;
	g.slots = s;
	return s;
}

static slot_t *slot_get(CK_SLOT_ID id)
{
	pthread_mutex_lock(&g.lock);
	slot_t *s = slot_get_locked(id);
	pthread_mutex_unlock(&g.lock);
	return s;
}

static session_t *session_find(CK_SESSION_HANDLE h)
{
	pthread_mutex_lock(&g.lock);
	session_t *s = g.sessions;
	while (s && s->h != h) s = s->next;
	pthread_mutex_unlock(&g.lock);
	return s;
}

static void sign_clear(session_t *s)
{
	free(s->sign_desc);
	s->sign_desc = NULL;
	if (s->sign_hash) gnutls_hash_deinit(s->sign_hash, NULL);
	s->sign_hash = NULL;
	s->sign_emul = false;
	s->sign_input_len = 0;
}

static void verify_clear(session_t *s)
{
	free(s->verify_desc);
	s->verify_desc = NULL;
	if (s->verify_key) gnutls_pubkey_deinit(s->verify_key);
	s->verify_key = NULL;
	if (s->verify_hash) gnutls_hash_deinit(s->verify_hash, NULL);
	s->verify_hash = NULL;
	free(s->verify_buf);
	s->verify_buf = NULL;
	s->verify_len = 0;
	s->verify_soft = false;
}

static void digest_clear(session_t *s)
{
	if (s->digest_hash) gnutls_hash_deinit(s->digest_hash, NULL);
	s->digest_hash = NULL;
	s->digest_soft = false;
}

static void session_free(session_t *s)
{
	sign_clear(s);
	verify_clear(s);
	digest_clear(s);
	free(s);
}

/* Remove sessions of a slot (all when all); callers hold g.lock. */
static void sessions_drop_locked(bool all, CK_SLOT_ID slot, CK_SESSION_HANDLE only, bool one)
{
	for (session_t **pp = &g.sessions; *pp;) {
		session_t *s = *pp;
		if (all || (one ? s->h == only : s->slot == slot)) {
			*pp = s->next;
			session_free(s);
		} else {
			pp = &s->next;
		}
	}
}

/* -- the card lock -- */

static void card_lock(slot_t *s)
{
	pthread_mutex_lock(&s->mutex);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	                    .l_start = (off_t)(s->id % 0x7fffffffUL), .l_len = 1 };
	while (fcntl(g.lock_fd, F_OFD_SETLKW, &fl) != 0) {
		if (errno == EINTR) continue;
		if (!__atomic_exchange_n(&g.warned_lock, true, __ATOMIC_RELAXED)) {
			warn("cannot lock %s (%s); card calls are serialised within this process only",
			     g.conf.lock_file, strerror(errno));
		}
		break;
	}
}

static void card_unlock(slot_t *s)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
	                    .l_start = (off_t)(s->id % 0x7fffffffUL), .l_len = 1 };
	while (fcntl(g.lock_fd, F_OFD_SETLK, &fl) != 0 && errno == EINTR) {
	}
	pthread_mutex_unlock(&s->mutex);
}

/* -- audit lines -- */

enum { SEC = 1 };   /* security relevant: fail closed, fsync */

typedef struct {
	const char *fn;
	unsigned flags;
	bool skip;          /* not initialised: nothing to log */
	int fd;             /* audit log, opened before the call */
	int open_error;     /* KHSM_E* when it could not be opened */
	char *extra;        /* ,"key":value members */
	size_t extra_len;
	FILE *m;
	slot_t *card;       /* held card lock */
	unsigned char *wipe;  /* output to clear when the call is turned into a failure */
	CK_ULONG *wipe_len;
} call_t;

static void c_add(call_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void c_add(call_t *c, const char *fmt, ...)
{
	if (!c->m) return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(c->m, fmt, ap);
	va_end(ap);
}

static void c_num(call_t *c, const char *key, unsigned long v) { c_add(c, ",\"%s\":%lu", key, v); }
static void c_true(call_t *c, const char *key) { c_add(c, ",\"%s\":true", key); }

static void c_str(call_t *c, const char *key, const void *s, size_t len)
{
	char *j = NULL;
	if (khsm_audit_json_string(s, len, &j) == KHSM_EOK) {
		c_add(c, ",\"%s\":%s", key, j);
		free(j);
	}
}

static void c_mech(call_t *c, const char *key, CK_MECHANISM_TYPE m)
{
	char buf[32];
	c_add(c, ",\"%s\":\"%s\"", key, khsm_guard_ckm_name(m, buf, sizeof(buf)));
}

static void call_begin(call_t *c, const char *fn, unsigned flags)
{
	memset(c, 0, sizeof(*c));
	c->fn = fn;
	c->flags = flags;
	c->fd = -1;
	c->m = open_memstream(&c->extra, &c->extra_len);
	khsm_err_clear();
	c->open_error = khsm_audit_open(g.conf.audit_log, &c->fd);
	if (c->open_error != KHSM_EOK && !__atomic_exchange_n(&g.warned_log, true, __ATOMIC_RELAXED)) {
		const char *d = khsm_err_last_detail();
		warn("%s%s", d ? d : "cannot open the audit log",
		     g.conf.fail_closed ? "; logins, signatures and key changes are refused (fail_closed = yes)"
		                        : "; going on without it (fail_closed = no)");
	}
}

/* May the call go to the card? Not when its line cannot be written and the
 * guard fails closed. */
static bool call_allowed(const call_t *c)
{
	return c->open_error == KHSM_EOK || !(c->flags & SEC) || !g.conf.fail_closed;
}

static bool want_sync(const call_t *c)
{
	switch (g.conf.fsync) {
	case KHSM_GUARD_FSYNC_ALL: return true;
	case KHSM_GUARD_FSYNC_NONE: return false;
	default: return c->flags & SEC;
	}
}

/* Record the log's head (line count and hash of the last line) where the
 * log's writers cannot change it: the anchor file (root's; only a process
 * running as root writes it) and/or syslog. A failure is warned about once;
 * it never fails a call. */
static void anchor(int fd)
{
	if (!g.conf.anchor_file && !g.conf.anchor_syslog) return;
	unsigned long lines = 0;
	char head[KHSM_AUDIT_HASH_SIZE];
	khsm_err_clear();
	int r = khsm_audit_head(fd, &lines, head);
	if (r == KHSM_EOK && g.conf.anchor_syslog) {
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "knot-hsm-guard: audit log %s lines=%lu head=%s",
		       g.conf.audit_log, lines, head);
	}
	if (r == KHSM_EOK && g.conf.anchor_file && geteuid() == 0) {
		r = khsm_audit_anchor_write(g.conf.anchor_file, lines, head, g.comm);
	}
	if (r != KHSM_EOK && !__atomic_exchange_n(&g.warned_anchor, true, __ATOMIC_RELAXED)) {
		const char *d = khsm_err_last_detail();
		warn("%s; the audit log is not anchored", d ? d : "cannot write the audit anchor");
	}
}

/* Append one line with what was collected so far and the given closing
 * members (,"rv":"…" or ,"intent":true). KHSM_E* code. */
static int write_line(call_t *c, bool have_slot, CK_SLOT_ID slot, bool have_session,
                      CK_SESSION_HANDLE session, const char *closing, bool sync)
{
	if (c->open_error != KHSM_EOK) return c->open_error;
	if (c->m) fflush(c->m);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[40];
	size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
	char *comm = NULL;
	khsm_audit_json_string(g.comm, strlen(g.comm), &comm);
	char slot_txt[48] = "", sess_txt[48] = "";
	if (have_slot) snprintf(slot_txt, sizeof(slot_txt), ",\"slot\":%lu", slot);
	if (have_session) snprintf(sess_txt, sizeof(sess_txt), ",\"session\":%lu", session);
	char *body = NULL;
	if (asprintf(&body, "\"time\":\"%s\",\"pid\":%ld,\"comm\":%s,\"fn\":\"%s\"%s%s%s%s",
	             when, (long)getpid(), comm ? comm : "\"?\"", c->fn, slot_txt, sess_txt,
	             c->extra ? c->extra : "", closing) < 0) {
		body = NULL;
	}
	free(comm);
	khsm_err_clear();
	int r = body ? khsm_audit_append(c->fd, body, sync) : KHSM_ENOMEM;
	free(body);
	if (r != KHSM_EOK && !__atomic_exchange_n(&g.warned_log, true, __ATOMIC_RELAXED)) {
		const char *d = khsm_err_last_detail();
		warn("%s%s", d ? d : "cannot write the audit log",
		     g.conf.fail_closed ? "; logins, signatures and key changes are refused (fail_closed = yes)"
		                        : "; going on without it (fail_closed = no)");
	} else if (r == KHSM_EOK) {
		__atomic_store_n(&g.warned_log, false, __ATOMIC_RELAXED);
		if (g.conf.anchor_every && __atomic_add_fetch(&g.appended, 1, __ATOMIC_RELAXED) %
		                           g.conf.anchor_every == 0) {
			anchor(c->fd);
		}
	}
	return r;
}

/* Before a call that changes keys, objects or PINs: its intent, fsync'ed.
 * CKR_FUNCTION_FAILED (the call is not made) when that line cannot be
 * written and the guard fails closed. */
static CK_RV call_intent(call_t *c, bool have_slot, CK_SLOT_ID slot, bool have_session,
                         CK_SESSION_HANDLE session)
{
	int r = write_line(c, have_slot, slot, have_session, session, ",\"intent\":true",
	                   g.conf.fsync != KHSM_GUARD_FSYNC_NONE);
	return r != KHSM_EOK && g.conf.fail_closed ? CKR_FUNCTION_FAILED : CKR_OK;
}

static CK_RV intent_session(call_t *c, session_t *s, CK_SESSION_HANDLE h)
{
	return call_intent(c, s != NULL, s ? s->slot : 0, true, h);
}

/* Write the line; returns the result for the caller (rv, or
 * CKR_FUNCTION_FAILED when a security-relevant line was lost). */
static CK_RV call_end(call_t *c, bool have_slot, CK_SLOT_ID slot, bool have_session,
                      CK_SESSION_HANDLE session, CK_RV rv)
{
	if (c->card) {
		card_unlock(c->card);
		c->card = NULL;
	}
	char rvbuf[32], closing[64];
	snprintf(closing, sizeof(closing), ",\"rv\":\"%s\"", khsm_guard_ckr_name(rv, rvbuf, sizeof(rvbuf)));
	int r = write_line(c, have_slot, slot, have_session, session, closing, want_sync(c));
	if (c->m) fclose(c->m);
	c->m = NULL;
	if (c->fd >= 0) close(c->fd);
	free(c->extra);
	c->extra = NULL;
	if (r != KHSM_EOK && (c->flags & SEC) && g.conf.fail_closed && rv == CKR_OK) {
		if (c->wipe && c->wipe_len) {
			explicit_bzero(c->wipe, *c->wipe_len);
		}
		return CKR_FUNCTION_FAILED;
	}
	return rv;
}

/* -- object descriptions for the log (label and id, never values) -- */

/* One variable-length attribute; *out malloc'ed (NUL-terminated too). */
static CK_RV real_attr(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                       unsigned char **out, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv = g.fl->C_GetAttributeValue(h, obj, &a, 1);
	if (rv != CKR_OK) return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 65536) return CKR_ATTRIBUTE_TYPE_INVALID;
	a.pValue = malloc(a.ulValueLen + 1);
	if (!a.pValue) return CKR_HOST_MEMORY;
	rv = a.ulValueLen ? g.fl->C_GetAttributeValue(h, obj, &a, 1) : CKR_OK;
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	((unsigned char *)a.pValue)[a.ulValueLen] = '\0';
	*out = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

/* ,"key":N,"label":"…","id":"hex" (what can be read) into a new string. */
static char *describe(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const char *handle_key)
{
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);
	if (!m) return NULL;
	fprintf(m, ",\"%s\":%lu", handle_key, obj);
	unsigned char *v = NULL;
	CK_ULONG len = 0;
	if (real_attr(h, obj, CKA_LABEL, &v, &len) == CKR_OK) {
		char *j = NULL;
		if (khsm_audit_json_string((char *)v, len, &j) == KHSM_EOK) fprintf(m, ",\"label\":%s", j);
		free(j);
		free(v);
	}
	if (real_attr(h, obj, CKA_ID, &v, &len) == CKR_OK) {
		fputs(",\"id\":\"", m);
		for (CK_ULONG i = 0; i < len; i++) fprintf(m, "%02x", v[i]);
		fputc('"', m);
		free(v);
	}
	fclose(m);
	return out;
}

/* {"handle":N,"label":…} for arrays. */
static void c_object(call_t *c, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, bool first)
{
	char *d = describe(h, obj, "handle");
	if (d) c_add(c, "%s{%s}", first ? "" : ",", d + 1);
	free(d);
}

/* -- entry helpers -- */

/* A forked child must call C_Initialize itself (PKCS #11 6.7.7): until then
 * it is not initialised, whatever it inherited. */
#define NOT_INIT() do { \
		if (!g.initialized || g.pid != getpid()) return CKR_CRYPTOKI_NOT_INITIALIZED; \
	} while (0)

/* Begin a call on a session: the audit descriptor, then the card lock of its
 * slot. *s_ptr NULL with CKR_SESSION_HANDLE_INVALID for unknown handles. */
static CK_RV enter_session(call_t *c, const char *fn, unsigned flags, CK_SESSION_HANDLE h,
                           session_t **s_ptr)
{
	call_begin(c, fn, flags);
	session_t *s = session_find(h);
	*s_ptr = s;
	if (!s) return CKR_SESSION_HANDLE_INVALID;
	if (!call_allowed(c)) return CKR_FUNCTION_FAILED;
	c->card = slot_get(s->slot);
	if (!c->card) return CKR_HOST_MEMORY;
	card_lock(c->card);
	return CKR_OK;
}

static CK_RV leave_session(call_t *c, CK_SESSION_HANDLE h, session_t *s, CK_RV rv)
{
	return call_end(c, s != NULL, s ? s->slot : 0, true, h, rv);
}

static CK_RV enter_slot(call_t *c, const char *fn, unsigned flags, CK_SLOT_ID slot)
{
	call_begin(c, fn, flags);
	if (!call_allowed(c)) return CKR_FUNCTION_FAILED;
	c->card = slot_get(slot);
	if (!c->card) return CKR_HOST_MEMORY;
	card_lock(c->card);
	return CKR_OK;
}

static CK_RV leave_slot(call_t *c, CK_SLOT_ID slot, CK_RV rv)
{
	return call_end(c, true, slot, false, 0, rv);
}

/* -- general -- */

static CK_RV load_real(void)
{
	g.dl = dlopen(g.conf.module, RTLD_NOW | RTLD_LOCAL);
	if (!g.dl) {
		warn("cannot load the card module %s: %s", g.conf.module, dlerror());
		return CKR_GENERAL_ERROR;
	}
	CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(g.dl, "C_GetFunctionList");
	if (!get || get(&g.fl) != CKR_OK || !g.fl) {
		warn("%s is not a PKCS #11 module (no C_GetFunctionList)", g.conf.module);
		return CKR_GENERAL_ERROR;
	}
	if (g.fl->C_GetFunctionList == g_funcs.C_GetFunctionList) {
		warn("%s names the guard itself as the card module", g.conf.path);
		return CKR_GENERAL_ERROR;
	}
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = g.fl->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		char b[32];
		warn("the card module %s failed to initialise: %s", g.conf.module,
		     khsm_guard_ckr_name(rv, b, sizeof(b)));
		return rv;
	}
	return CKR_OK;
}

static void unload(void)
{
	if (g.dl) dlclose(g.dl);
	g.dl = NULL;
	g.fl = NULL;
	if (g.lock_fd >= 0) close(g.lock_fd);
	g.lock_fd = -1;
	sessions_drop_locked(true, 0, 0, false);
	while (g.slots) {
		slot_t *s = g.slots;
		g.slots = s->next;
		pthread_mutex_destroy(&s->mutex);
		free(s);
	}
	khsm_guard_conf_clear(&g.conf);
}

/* Opened like the audit log (lib/audit.c): never through a symbolic link,
 * 0660 and owned like its directory when root creates it (knotd must lock it). */
static int open_lock_file(const char *path)
{
	int fd = -1;
	khsm_err_clear();
	if (khsm_audit_open_file(path, "lock file", KHSM_AUDIT_FILE_SHARED, &fd) != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		warn("%s", d ? d : "cannot open the lock file");
		return -1;
	}
	return fd;
}

/* In a child: g.lock may have been held by another thread of the parent at
 * fork time; the child has that thread no more. */
static void atfork_child(void)
{
	pthread_mutex_init(&g.lock, NULL);
}

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void atfork_register(void)
{
	(void)pthread_atfork(NULL, NULL, atfork_child);
}

/* C_Initialize in a forked child: drop what was the parent's (its sessions,
 * its card mutexes, its descriptor of the lock file, whose OFD locks are
 * the parent's), open the lock file anew so that parent and child are
 * serialised like any two processes, and initialise the card's module in
 * this process. Callers hold g.lock. */
static CK_RV fork_restart_locked(void)
{
	/* Freed, never destroyed: a mutex a parent thread held is dead here. */
	for (session_t **pp = &g.sessions; *pp;) {
		session_t *s = *pp;
		*pp = s->next;
		session_free(s);
	}
	while (g.slots) {
		slot_t *s = g.slots;
		g.slots = s->next;
		free(s);
	}
	if (g.lock_fd >= 0) close(g.lock_fd);   /* the parent's locks stay the parent's */
	g.lock_fd = open_lock_file(g.conf.lock_file);
	if (g.lock_fd < 0) {
		g.initialized = false;
		return CKR_GENERAL_ERROR;
	}
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = g.fl->C_Initialize(&args);
	if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		char b[32];
		warn("the card module %s failed to initialise in a forked child: %s", g.conf.module,
		     khsm_guard_ckr_name(rv, b, sizeof(b)));
		close(g.lock_fd);
		g.lock_fd = -1;
		g.initialized = false;
		return rv;
	}
	g.pid = getpid();
	g.appended = 0;
	g.warned_log = g.warned_lock = g.warned_anchor = false;
	return CKR_OK;
}

static CK_RV g_Initialize(CK_VOID_PTR init_args)
{
	(void)init_args;   /* the guard uses OS locking, and so does the card module */
	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&g.lock);
	if (g.initialized && g.pid == getpid()) {
		pthread_mutex_unlock(&g.lock);
		return CKR_CRYPTOKI_ALREADY_INITIALIZED;
	}
	if (g.initialized) {
		CK_RV rv = fork_restart_locked();
		pthread_mutex_unlock(&g.lock);
		if (rv != CKR_OK) return rv;
		call_t c;
		call_begin(&c, "C_Initialize", 0);
		c_str(&c, "module", g.conf.module, strlen(g.conf.module));
		c_true(&c, "after_fork");
		return call_end(&c, false, 0, false, 0, CKR_OK);
	}
	Dl_info info;
	const char *self = dladdr((void *)&g_funcs, &info) && info.dli_fname ? info.dli_fname : NULL;
	char *path = NULL;
	khsm_err_clear();
	int r = khsm_guard_conf_locate(self, &path);
	if (r == KHSM_EOK) r = khsm_guard_conf_load(path, &g.conf);
	free(path);
	if (r != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		warn("%s", d ? d : khsm_strerror(r));
		khsm_guard_conf_clear(&g.conf);
		pthread_mutex_unlock(&g.lock);
		return CKR_GENERAL_ERROR;
	}
	g.lock_fd = open_lock_file(g.conf.lock_file);
	if (g.lock_fd < 0) {
		unload();
		pthread_mutex_unlock(&g.lock);
		return CKR_GENERAL_ERROR;
	}
	CK_RV rv = load_real();
	if (rv != CKR_OK) {
		unload();
		pthread_mutex_unlock(&g.lock);
		return rv;
	}
	snprintf(g.comm, sizeof(g.comm), "?");
	FILE *f = fopen("/proc/self/comm", "re");
	if (f) {
		if (fgets(g.comm, sizeof(g.comm), f)) g.comm[strcspn(g.comm, "\n")] = '\0';
		fclose(f);
	}
	g.warned_log = false;
	g.warned_lock = false;
	g.warned_anchor = false;
	g.appended = 0;
	g.pid = getpid();
	g.initialized = true;
	pthread_mutex_unlock(&g.lock);

	call_t c;
	call_begin(&c, "C_Initialize", 0);
	c_str(&c, "module", g.conf.module, strlen(g.conf.module));
	return call_end(&c, false, 0, false, 0, CKR_OK);
}

static CK_RV g_Finalize(CK_VOID_PTR reserved)
{
	NOT_INIT();
	call_t c;
	call_begin(&c, "C_Finalize", 0);
	pthread_mutex_lock(&g.lock);
	CK_RV rv = g.fl->C_Finalize(reserved);
	pthread_mutex_unlock(&g.lock);
	/* Logged while the configuration (the log's path) is still there. */
	rv = call_end(&c, false, 0, false, 0, rv);
	int fd = -1;
	if ((g.conf.anchor_file || g.conf.anchor_syslog) && khsm_audit_open(g.conf.audit_log, &fd) == KHSM_EOK) {
		anchor(fd);
		close(fd);
	}
	if (rv == CKR_OK) {
		pthread_mutex_lock(&g.lock);
		g.initialized = false;
		unload();
		pthread_mutex_unlock(&g.lock);
	}
	return rv;
}

static CK_RV g_GetInfo(CK_INFO_PTR info)
{
	NOT_INIT();
	CK_RV rv = g.fl->C_GetInfo(info);
	if (rv == CKR_OK && info) {
		/* The application talks to PKCS #11 2.40 here, whatever is below. */
		info->cryptokiVersion.major = CRYPTOKI_VERSION_MAJOR;
		info->cryptokiVersion.minor = CRYPTOKI_VERSION_MINOR;
	}
	call_t c;
	call_begin(&c, "C_GetInfo", 0);
	return call_end(&c, false, 0, false, 0, rv);
}

static CK_RV g_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (!list) return CKR_ARGUMENTS_BAD;
	*list = &g_funcs;
	return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return g_GetFunctionList(list);
}

/* -- slots and tokens -- */

static CK_RV g_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	NOT_INIT();
	call_t c;
	call_begin(&c, "C_GetSlotList", 0);
	CK_RV rv = g.fl->C_GetSlotList(present, list, count);
	if (rv == CKR_OK && count) c_num(&c, "count", *count);
	return call_end(&c, false, 0, false, 0, rv);
}

static CK_RV g_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	NOT_INIT();
	call_t c;
	CK_RV rv = enter_slot(&c, "C_GetSlotInfo", 0, slot);
	if (rv == CKR_OK) rv = g.fl->C_GetSlotInfo(slot, info);
	return leave_slot(&c, slot, rv);
}

/* Has the card its own random number generator? Callers hold the card lock. */
static bool card_rng(slot_t *s)
{
	if (s->rng < 0) {
		CK_TOKEN_INFO ti;
		if (g.fl->C_GetTokenInfo(s->id, &ti) != CKR_OK) return true;  /* let the card answer */
		s->rng = (ti.flags & CKF_RNG) != 0;
	}
	return s->rng != 0;
}

static CK_RV g_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	NOT_INIT();
	call_t c;
	CK_RV rv = enter_slot(&c, "C_GetTokenInfo", 0, slot);
	if (rv == CKR_OK) rv = g.fl->C_GetTokenInfo(slot, info);
	if (rv == CKR_OK && info) {
		c.card->rng = (info->flags & CKF_RNG) != 0;
		if (g.conf.fill && !(info->flags & CKF_RNG)) {
			info->flags |= CKF_RNG;   /* filled in by gnutls_rnd */
			c_true(&c, "software");
		}
	}
	return leave_slot(&c, slot, rv);
}

/* Mechanism info of the card itself; callers hold the card lock. */
static bool card_mech(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_FLAGS flag, CK_MECHANISM_INFO *info)
{
	CK_MECHANISM_INFO tmp;
	if (!info) info = &tmp;
	return g.fl->C_GetMechanismInfo(slot, type, info) == CKR_OK && (info->flags & flag);
}

static const CK_MECHANISM_TYPE FILLABLE[] = {
	CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512,
	CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
	CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512,
};

/* What the guard adds for a mechanism the card lacks, from the card's raw
 * mechanism. Callers hold the card lock. */
static bool filled_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info)
{
	if (!g.conf.fill) return false;
	CK_MECHANISM_TYPE raw;
	gnutls_digest_algorithm_t dig;
	if (khsm_soft_digest(type) != GNUTLS_DIG_UNKNOWN) {
		*info = (CK_MECHANISM_INFO){ 0, 0, CKF_DIGEST };
		return true;
	}
	if (khsm_soft_hashed(type, &raw, &dig) && card_mech(slot, raw, CKF_SIGN, info)) {
		info->flags &= ~(CKF_HW | CKF_DECRYPT | CKF_ENCRYPT | CKF_WRAP | CKF_UNWRAP |
		                 CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER);
		info->flags |= CKF_SIGN;
		if (g.conf.verify != KHSM_GUARD_VERIFY_CARD) info->flags |= CKF_VERIFY;
		return true;
	}
	return false;
}

static CK_RV g_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	NOT_INIT();
	call_t c;
	CK_RV rv = enter_slot(&c, "C_GetMechanismList", 0, slot);
	CK_MECHANISM_TYPE *all = NULL;
	CK_ULONG n = 0;
	if (rv == CKR_OK && !count) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) rv = g.fl->C_GetMechanismList(slot, NULL, &n);
	if (rv == CKR_OK) {
		all = calloc(n + KHSM_ARRAY_SIZE(FILLABLE) + 1, sizeof(*all));
		rv = all ? g.fl->C_GetMechanismList(slot, all, &n) : CKR_HOST_MEMORY;
	}
	CK_ULONG real = n;
	for (size_t i = 0; rv == CKR_OK && i < KHSM_ARRAY_SIZE(FILLABLE); i++) {
		bool have = false;
		for (CK_ULONG k = 0; k < real; k++) have |= all[k] == FILLABLE[i];
		CK_MECHANISM_INFO info;
		if (!have && filled_info(slot, FILLABLE[i], &info)) all[n++] = FILLABLE[i];
	}
	if (rv == CKR_OK) {
		if (n > real) c_true(&c, "software");
		c_num(&c, "count", n);
		if (list && *count < n) {
			rv = CKR_BUFFER_TOO_SMALL;
		} else if (list) {
			memcpy(list, all, n * sizeof(*all));
		}
		*count = n;
	}
	free(all);
	return leave_slot(&c, slot, rv);
}

static CK_RV g_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	NOT_INIT();
	call_t c;
	CK_RV rv = enter_slot(&c, "C_GetMechanismInfo", 0, slot);
	c_mech(&c, "mech", type);
	if (rv == CKR_OK && !info) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		rv = g.fl->C_GetMechanismInfo(slot, type, info);
		if (rv == CKR_OK) {
			if (g.conf.fill && g.conf.verify != KHSM_GUARD_VERIFY_CARD && (info->flags & CKF_SIGN) &&
			    !(info->flags & CKF_VERIFY) && khsm_soft_can_verify(type)) {
				info->flags |= CKF_VERIFY;
				c_true(&c, "software");
			}
		} else if (rv == CKR_MECHANISM_INVALID && filled_info(slot, type, info)) {
			rv = CKR_OK;
			c_true(&c, "software");
		}
	}
	return leave_slot(&c, slot, rv);
}

static CK_RV g_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, CK_UTF8CHAR_PTR label)
{
	NOT_INIT();
	call_t c;
	CK_RV rv = enter_slot(&c, "C_InitToken", SEC, slot);
	if (rv == CKR_OK) rv = call_intent(&c, true, slot, false, 0);
	if (rv == CKR_OK) rv = g.fl->C_InitToken(slot, pin, pin_len, label);
	return leave_slot(&c, slot, rv);
}

static CK_RV g_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	NOT_INIT();
	/* Blocks: never under a card lock. */
	CK_RV rv = g.fl->C_WaitForSlotEvent(flags, slot, reserved);
	call_t c;
	call_begin(&c, "C_WaitForSlotEvent", 0);
	return call_end(&c, rv == CKR_OK && slot, slot ? *slot : 0, false, 0, rv);
}

/* -- sessions -- */

static CK_RV g_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                           CK_SESSION_HANDLE_PTR ph)
{
	NOT_INIT();
	call_t c;
	session_t *s = calloc(1, sizeof(*s));
	CK_RV rv = enter_slot(&c, "C_OpenSession", 0, slot);
	if (rv == CKR_OK && !s) rv = CKR_HOST_MEMORY;
	if (rv == CKR_OK && !ph) rv = CKR_ARGUMENTS_BAD;
	/* Notifications would arrive without the card lock's bookkeeping: none. */
	(void)notify;
	if (rv == CKR_OK) rv = g.fl->C_OpenSession(slot, flags, app, NULL, ph);
	if (rv == CKR_OK) {
		s->h = *ph;
		s->slot = slot;
		pthread_mutex_lock(&g.lock);
		s->next = g.sessions;
		g.sessions = s;
		pthread_mutex_unlock(&g.lock);
		s = NULL;
		c_num(&c, "flags", flags);
	}
	free(s);
	return call_end(&c, true, slot, rv == CKR_OK, rv == CKR_OK ? *ph : 0, rv);
}

static CK_RV g_CloseSession(CK_SESSION_HANDLE h)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_CloseSession", 0, h, &s);
	CK_SLOT_ID slot = s ? s->slot : 0;
	if (rv == CKR_OK) rv = g.fl->C_CloseSession(h);
	if (rv == CKR_OK || rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_DEVICE_REMOVED) {
		pthread_mutex_lock(&g.lock);
		sessions_drop_locked(false, 0, h, true);
		pthread_mutex_unlock(&g.lock);
	}
	return call_end(&c, s != NULL, slot, true, h, rv);
}

static CK_RV g_CloseAllSessions(CK_SLOT_ID slot)
{
	NOT_INIT();
	call_t c;
	CK_RV rv = enter_slot(&c, "C_CloseAllSessions", 0, slot);
	if (rv == CKR_OK) rv = g.fl->C_CloseAllSessions(slot);
	pthread_mutex_lock(&g.lock);
	sessions_drop_locked(false, slot, 0, false);
	pthread_mutex_unlock(&g.lock);
	return leave_slot(&c, slot, rv);
}

/* A session call with nothing to add: forwarded under the card lock and logged. */
#define FWD(name, flags, params, args) \
	static CK_RV g_##name params \
	{ \
		NOT_INIT(); \
		call_t c; \
		session_t *s; \
		CK_RV rv = enter_session(&c, "C_" #name, flags, hSession, &s); \
		if (rv == CKR_OK) rv = g.fl->C_##name args; \
		return leave_session(&c, hSession, s, rv); \
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
	if (__atomic_load_n(&g.pin_failed, __ATOMIC_RELAXED)) {
		c_add(c, ",\"refused\":\"a wrong PIN was given before in this process\"");
		warn("login refused without asking the card: a wrong PIN was given before in this "
		     "process (one try per run; fix the PIN source and start again)");
		return CKR_PIN_INCORRECT;
	}
	CK_TOKEN_INFO ti;
	if (g.fl->C_GetTokenInfo(s->slot, &ti) != CKR_OK) return CKR_OK;   /* the card will say */
	if (ti.flags & CKF_USER_PIN_LOCKED) {
		c_add(c, ",\"refused\":\"PIN locked\"");
		return CKR_PIN_LOCKED;
	}
	if ((ti.flags & CKF_USER_PIN_FINAL_TRY) && !g.conf.login_final_try) {
		c_add(c, ",\"refused\":\"final PIN try\"");
		warn("login refused without asking the card: it is at its final PIN try, and a wrong "
		     "PIN would lock it (set login_final_try = allow in %s for one try)", g.conf.path);
		return CKR_PIN_LOCKED;
	}
	return CKR_OK;
}

static CK_RV g_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_Login", SEC, hSession, &s);
	char b[32];
	c_add(&c, ",\"user\":\"%s\"", khsm_guard_cku_name(user, b, sizeof(b)));
	if (rv == CKR_OK && user == CKU_USER) rv = login_precheck(&c, s);
	if (rv == CKR_OK) {
		rv = g.fl->C_Login(hSession, user, pin, pin_len);
		if (rv == CKR_PIN_INCORRECT && user == CKU_USER) {
			__atomic_store_n(&g.pin_failed, true, __ATOMIC_RELAXED);
		}
	}
	slot_t *card = c.card;
	CK_RV out = leave_session(&c, hSession, s, rv);
	if (rv == CKR_OK && out != CKR_OK && card) {
		/* The login could not be recorded: undo it. */
		card_lock(card);
		g.fl->C_Logout(hSession);
		card_unlock(card);
	}
	return out;
}

/* A session call that changes the card: its intent first. */
#define FWD_CHANGE(name, params, args) \
	static CK_RV g_##name params \
	{ \
		NOT_INIT(); \
		call_t c; \
		session_t *s; \
		CK_RV rv = enter_session(&c, "C_" #name, SEC, hSession, &s); \
		if (rv == CKR_OK) rv = intent_session(&c, s, hSession); \
		if (rv == CKR_OK) rv = g.fl->C_##name args; \
		return leave_session(&c, hSession, s, rv); \
	}

FWD_CHANGE(InitPIN, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len),
           (hSession, pin, pin_len))
FWD_CHANGE(SetPIN, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
                    CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len),
           (hSession, old_pin, old_len, new_pin, new_len))

/* -- objects: handles and attribute types, never values -- */

static void c_attr_types(call_t *c, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	c_add(c, ",\"attrs\":[");
	for (CK_ULONG i = 0; tmpl && i < n && i < 64; i++) {
		char b[32];
		c_add(c, "%s\"%s\"", i ? "," : "", khsm_guard_cka_name(tmpl[i].type, b, sizeof(b)));
	}
	c_add(c, "]");
}

static CK_RV g_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                            CK_OBJECT_HANDLE_PTR obj)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_CreateObject", SEC, hSession, &s);
	c_attr_types(&c, tmpl, n);
	if (rv == CKR_OK) rv = intent_session(&c, s, hSession);
	if (rv == CKR_OK) rv = g.fl->C_CreateObject(hSession, tmpl, n, obj);
	if (rv == CKR_OK && obj) {
		char *d = describe(hSession, *obj, "object");
		if (d) c_add(&c, "%s", d);
		free(d);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,
                          CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_CopyObject", SEC, hSession, &s);
	if (rv == CKR_OK) {
		char *d = describe(hSession, obj, "object");
		if (d) c_add(&c, "%s", d);
		free(d);
		c_attr_types(&c, tmpl, n);
		rv = intent_session(&c, s, hSession);
		if (rv == CKR_OK) rv = g.fl->C_CopyObject(hSession, obj, tmpl, n, out);
	}
	if (rv == CKR_OK && out) c_num(&c, "new", *out);
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_DestroyObject", SEC, hSession, &s);
	if (rv == CKR_OK) {
		char *d = describe(hSession, obj, "object");
		if (d) c_add(&c, "%s", d);
		free(d);
		rv = intent_session(&c, s, hSession);
		if (rv == CKR_OK) rv = g.fl->C_DestroyObject(hSession, obj);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_GetObjectSize", 0, hSession, &s);
	c_num(&c, "object", obj);
	if (rv == CKR_OK) rv = g.fl->C_GetObjectSize(hSession, obj, size);
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj,
                                 CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_GetAttributeValue", 0, hSession, &s);
	c_num(&c, "object", obj);
	c_attr_types(&c, tmpl, n);
	if (rv == CKR_OK) rv = g.fl->C_GetAttributeValue(hSession, obj, tmpl, n);
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj,
                                 CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_SetAttributeValue", SEC, hSession, &s);
	c_attr_types(&c, tmpl, n);
	if (rv == CKR_OK) rv = intent_session(&c, s, hSession);
	if (rv == CKR_OK) {
		rv = g.fl->C_SetAttributeValue(hSession, obj, tmpl, n);
		/* Described after the change: the label and id it has now. */
		char *d = describe(hSession, obj, "object");
		if (d) c_add(&c, "%s", d);
		free(d);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_FindObjectsInit", 0, hSession, &s);
	c_attr_types(&c, tmpl, n);
	if (rv == CKR_OK) rv = g.fl->C_FindObjectsInit(hSession, tmpl, n);
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
                           CK_ULONG_PTR n)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_FindObjects", 0, hSession, &s);
	if (rv == CKR_OK) rv = g.fl->C_FindObjects(hSession, objs, max, n);
	if (rv == CKR_OK && n && objs) {
		c_num(&c, "count", *n);
		c_add(&c, ",\"objects\":[");
		for (CK_ULONG i = 0; i < *n && i < 32; i++) c_object(&c, hSession, objs[i], i == 0);
		c_add(&c, "]");
	}
	return leave_session(&c, hSession, s, rv);
}

FWD(FindObjectsFinal, 0, (CK_SESSION_HANDLE hSession), (hSession))

/* -- encryption: forwarded, logged by mechanism and length -- */

#define FWD_INIT(name, flags) \
	static CK_RV g_##name(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key) \
	{ \
		NOT_INIT(); \
		call_t c; \
		session_t *s; \
		CK_RV rv = enter_session(&c, "C_" #name, flags, hSession, &s); \
		if (mech) c_mech(&c, "mech", mech->mechanism); \
		if (rv == CKR_OK) { \
			char *d = describe(hSession, key, "key"); \
			if (d) c_add(&c, "%s", d); \
			free(d); \
			rv = g.fl->C_##name(hSession, mech, key); \
		} \
		return leave_session(&c, hSession, s, rv); \
	}

/* in/in_len -> out/out_len calls. */
#define FWD_IO(name, flags) \
	static CK_RV g_##name(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, \
	                      CK_BYTE_PTR out, CK_ULONG_PTR out_len) \
	{ \
		NOT_INIT(); \
		call_t c; \
		session_t *s; \
		CK_RV rv = enter_session(&c, "C_" #name, flags, hSession, &s); \
		c_num(&c, "len", in_len); \
		if (!out) c_true(&c, "query"); \
		if (rv == CKR_OK) rv = g.fl->C_##name(hSession, in, in_len, out, out_len); \
		c.wipe = out; \
		c.wipe_len = out_len; \
		return leave_session(&c, hSession, s, rv); \
	}

#define FWD_FINAL(name, flags) \
	static CK_RV g_##name(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len) \
	{ \
		NOT_INIT(); \
		call_t c; \
		session_t *s; \
		CK_RV rv = enter_session(&c, "C_" #name, flags, hSession, &s); \
		if (!out) c_true(&c, "query"); \
		if (rv == CKR_OK) rv = g.fl->C_##name(hSession, out, out_len); \
		c.wipe = out; \
		c.wipe_len = out_len; \
		return leave_session(&c, hSession, s, rv); \
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

static CK_RV g_VerifyRecover(CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len,
                             CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_VerifyRecover", 0, hSession, &s);
	c_num(&c, "len", sig_len);
	if (rv == CKR_OK) rv = g.fl->C_VerifyRecover(hSession, sig, sig_len, out, out_len);
	return leave_session(&c, hSession, s, rv);
}

/* -- digests: the card's, or GnuTLS when the card lacks the mechanism -- */

static CK_RV g_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_DigestInit", 0, hSession, &s);
	if (rv == CKR_OK && !mech) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		c_mech(&c, "mech", mech->mechanism);
		gnutls_digest_algorithm_t dig = khsm_soft_digest(mech->mechanism);
		if (s->digest_soft || s->digest_hash) {
			rv = CKR_OPERATION_ACTIVE;
		} else if (g.conf.fill && dig != GNUTLS_DIG_UNKNOWN &&
		           !card_mech(s->slot, mech->mechanism, CKF_DIGEST, NULL)) {
			rv = gnutls_hash_init(&s->digest_hash, dig) == 0 ? CKR_OK : CKR_HOST_MEMORY;
			s->digest_soft = rv == CKR_OK;
			s->digest_mech = mech->mechanism;
			c_true(&c, "software");
		} else {
			rv = g.fl->C_DigestInit(hSession, mech);
		}
	}
	return leave_session(&c, hSession, s, rv);
}

/* Output a software digest: length query, too small, or done (op ends). */
static CK_RV soft_digest_out(session_t *s, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	if (!out_len) return CKR_ARGUMENTS_BAD;
	size_t len = gnutls_hash_get_len(khsm_soft_digest(s->digest_mech));
	if (!out) {
		*out_len = len;
		return CKR_OK;
	}
	if (*out_len < len) {
		*out_len = len;
		return CKR_BUFFER_TOO_SMALL;
	}
	gnutls_hash_deinit(s->digest_hash, out);
	s->digest_hash = NULL;
	*out_len = len;
	digest_clear(s);
	return CKR_OK;
}

static CK_RV g_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                      CK_ULONG_PTR out_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_Digest", 0, hSession, &s);
	c_num(&c, "len", in_len);
	if (!out) c_true(&c, "query");
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		if (in_len && !in) {
			rv = CKR_ARGUMENTS_BAD;
			digest_clear(s);
			return leave_session(&c, hSession, s, rv);
		}
		/* Hash only once: a length query leaves the data unhashed. */
		if (out && out_len && *out_len >= gnutls_hash_get_len(khsm_soft_digest(s->digest_mech))) {
			gnutls_hash(s->digest_hash, in, in_len);
		}
		rv = soft_digest_out(s, out, out_len);
		if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) digest_clear(s);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_Digest(hSession, in, in_len, out, out_len);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_DigestUpdate", 0, hSession, &s);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		if (in_len && !in) rv = CKR_ARGUMENTS_BAD;
		else if (in_len) gnutls_hash(s->digest_hash, in, in_len);
		if (rv != CKR_OK) digest_clear(s);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_DigestUpdate(hSession, in, in_len);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE key)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_DigestKey", 0, hSession, &s);
	c_num(&c, "key", key);
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		rv = CKR_KEY_INDIGESTIBLE;   /* key values never leave the card for us */
		digest_clear(s);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_DigestKey(hSession, key);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_DigestFinal", 0, hSession, &s);
	if (!out) c_true(&c, "query");
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		rv = soft_digest_out(s, out, out_len);
		if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) digest_clear(s);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_DigestFinal(hSession, out, out_len);
	}
	return leave_session(&c, hSession, s, rv);
}

/* -- signing: always on the card; hashed mechanisms the card lacks are
 *    hashed here and signed with the raw mechanism -- */

static CK_RV g_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_SignInit", SEC, hSession, &s);
	if (rv == CKR_OK && !mech) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		sign_clear(s);
		s->sign_desc = describe(hSession, key, "key");
		if (s->sign_desc) c_add(&c, "%s", s->sign_desc);
		c_mech(&c, "mech", mech->mechanism);
		s->sign_mech = mech->mechanism;
		CK_MECHANISM_TYPE raw;
		gnutls_digest_algorithm_t dig;
		if (g.conf.fill && khsm_soft_hashed(mech->mechanism, &raw, &dig) &&
		    !card_mech(s->slot, mech->mechanism, CKF_SIGN, NULL) && card_mech(s->slot, raw, CKF_SIGN, NULL)) {
			CK_MECHANISM m = { raw, NULL, 0 };
			rv = g.fl->C_SignInit(hSession, &m, key);
			if (rv == CKR_OK) {
				rv = gnutls_hash_init(&s->sign_hash, dig) == 0 ? CKR_OK : CKR_HOST_MEMORY;
			}
			if (rv == CKR_OK) {
				s->sign_emul = true;
				s->sign_raw = raw;
				s->sign_dig = dig;
			}
			c_mech(&c, "card_mech", raw);
			c_true(&c, "software");
		} else {
			rv = g.fl->C_SignInit(hSession, mech, key);
		}
		if (rv != CKR_OK) sign_clear(s);
	}
	return leave_session(&c, hSession, s, rv);
}

/* After C_Sign/C_SignFinal: the operation ends unless this was a length
 * query or the buffer was too small (PKCS #11 5.2). */
static void sign_after(session_t *s, CK_BYTE_PTR out, CK_RV rv)
{
	if ((rv == CKR_OK && out) || (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL)) sign_clear(s);
}

static void c_sign_common(call_t *c, session_t *s, CK_BYTE_PTR out)
{
	if (s->sign_desc) c_add(c, "%s", s->sign_desc);
	c_mech(c, "mech", s->sign_mech);
	if (s->sign_emul) {
		c_mech(c, "card_mech", s->sign_raw);
		c_true(c, "software");
	}
	if (!out) c_true(c, "query");
}

/* Hash what the emulated operation collected, once, into the card input. */
static CK_RV sign_emul_input(session_t *s)
{
	if (s->sign_input_len) return CKR_OK;
	unsigned char digest[64];
	gnutls_hash_deinit(s->sign_hash, digest);
	s->sign_hash = NULL;
	size_t len = gnutls_hash_get_len(s->sign_dig);
	return khsm_soft_card_input(s->sign_raw, s->sign_dig, digest, len, s->sign_input,
	                            &s->sign_input_len) == 0 ? CKR_OK : CKR_FUNCTION_FAILED;
}

static CK_RV g_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                    CK_ULONG_PTR out_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_Sign", SEC, hSession, &s);
	if (s) c_sign_common(&c, s, out);
	c_num(&c, "len", in_len);
	/* A NULL input refused here never reached the card, whose operation
	 * (C_SignInit of the raw mechanism) is still active: so is ours. */
	bool keep = false;
	if (rv == CKR_OK && s->sign_emul) {
		if (!s->sign_input_len) {
			if (in_len && !in) rv = CKR_ARGUMENTS_BAD, keep = true;
			else gnutls_hash(s->sign_hash, in, in_len);
		}
		if (rv == CKR_OK) rv = sign_emul_input(s);
		if (rv == CKR_OK) rv = g.fl->C_Sign(hSession, s->sign_input, s->sign_input_len, out, out_len);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_Sign(hSession, in, in_len, out, out_len);
	}
	if (rv == CKR_OK && out && out_len) c_num(&c, "out", *out_len);
	if (s && !keep && (rv == CKR_OK || c.card)) sign_after(s, out, rv);
	c.wipe = out;
	c.wipe_len = out_len;
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_SignUpdate", SEC, hSession, &s);
	if (s) c_sign_common(&c, s, (CK_BYTE_PTR)"");
	c_num(&c, "len", in_len);
	bool keep = false;   /* see g_Sign */
	if (rv == CKR_OK && s->sign_emul) {
		if (in_len && !in) rv = CKR_ARGUMENTS_BAD, keep = true;
		else if (s->sign_input_len) rv = CKR_OPERATION_ACTIVE;
		else gnutls_hash(s->sign_hash, in, in_len);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_SignUpdate(hSession, in, in_len);
	}
	if (s && !keep && rv != CKR_OK && c.card) sign_clear(s);
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_SignFinal", SEC, hSession, &s);
	if (s) c_sign_common(&c, s, out);
	if (rv == CKR_OK && s->sign_emul) {
		rv = sign_emul_input(s);
		if (rv == CKR_OK) rv = g.fl->C_Sign(hSession, s->sign_input, s->sign_input_len, out, out_len);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_SignFinal(hSession, out, out_len);
	}
	if (rv == CKR_OK && out && out_len) c_num(&c, "out", *out_len);
	if (s && (rv == CKR_OK || c.card)) sign_after(s, out, rv);
	c.wipe = out;
	c.wipe_len = out_len;
	return leave_session(&c, hSession, s, rv);
}

/* -- verification: the card's, or in software with the public key -- */

/* Read the public key for a key handle (a public key, or a private key whose
 * public half has the same CKA_ID), in a session of our own so that the
 * caller's find operation is untouched. Callers hold the card lock. */
static CK_RV load_pubkey(CK_SLOT_ID slot, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key, gnutls_pubkey_t *out)
{
	CK_OBJECT_CLASS cls = 0;
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_KEY_TYPE, &kt, sizeof(kt) } };
	CK_RV rv = g.fl->C_GetAttributeValue(h, key, a, 2);
	if (rv != CKR_OK) return rv == CKR_OBJECT_HANDLE_INVALID ? rv : CKR_KEY_HANDLE_INVALID;
	CK_SESSION_HANDLE own = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE pub = key;
	if (cls == CKO_PRIVATE_KEY) {
		unsigned char *id = NULL;
		CK_ULONG id_len = 0;
		rv = real_attr(h, key, CKA_ID, &id, &id_len);
		if (rv == CKR_OK) rv = g.fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &own);
		if (rv == CKR_OK) {
			CK_OBJECT_CLASS pc = CKO_PUBLIC_KEY;
			CK_ATTRIBUTE t[] = { { CKA_CLASS, &pc, sizeof(pc) }, { CKA_ID, id, id_len } };
			CK_ULONG n = 0;
			rv = g.fl->C_FindObjectsInit(own, t, 2);
			if (rv == CKR_OK) {
				rv = g.fl->C_FindObjects(own, &pub, 1, &n);
				g.fl->C_FindObjectsFinal(own);
			}
			if (rv == CKR_OK && n != 1) rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		}
		free(id);
		h = own;
	} else if (cls != CKO_PUBLIC_KEY) {
		return CKR_KEY_TYPE_INCONSISTENT;
	}
	unsigned char *v1 = NULL, *v2 = NULL;
	CK_ULONG l1 = 0, l2 = 0;
	khsm_soft_pubattrs_t pa = { .key_type = kt };
	if (rv == CKR_OK) {
		if (kt == CKK_RSA) {
			rv = real_attr(h, pub, CKA_MODULUS, &v1, &l1);
			if (rv == CKR_OK) rv = real_attr(h, pub, CKA_PUBLIC_EXPONENT, &v2, &l2);
			pa.modulus = v1; pa.modulus_len = l1; pa.exponent = v2; pa.exponent_len = l2;
		} else {
			rv = real_attr(h, pub, CKA_EC_PARAMS, &v1, &l1);
			if (rv == CKR_OK) rv = real_attr(h, pub, CKA_EC_POINT, &v2, &l2);
			pa.ec_params = v1; pa.ec_params_len = l1; pa.ec_point = v2; pa.ec_point_len = l2;
		}
	}
	if (rv == CKR_OK) rv = khsm_soft_pubkey(&pa, out);
	free(v1);
	free(v2);
	if (own != CK_INVALID_HANDLE) g.fl->C_CloseSession(own);
	return rv;
}

static CK_RV g_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_VerifyInit", 0, hSession, &s);
	if (rv == CKR_OK && !mech) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		verify_clear(s);
		s->verify_desc = describe(hSession, key, "key");
		if (s->verify_desc) c_add(&c, "%s", s->verify_desc);
		c_mech(&c, "mech", mech->mechanism);
		bool soft = false;
		if (g.conf.verify == KHSM_GUARD_VERIFY_SOFTWARE) {
			soft = true;
		} else if (g.conf.verify == KHSM_GUARD_VERIFY_AUTO && g.conf.fill) {
			soft = !card_mech(s->slot, mech->mechanism, CKF_VERIFY, NULL);
			if (!soft) {
				rv = g.fl->C_VerifyInit(hSession, mech, key);
				soft = rv == CKR_FUNCTION_NOT_SUPPORTED;
			}
		} else {
			rv = g.fl->C_VerifyInit(hSession, mech, key);
		}
		if (soft) {
			c_true(&c, "software");
			CK_MECHANISM_TYPE raw;
			gnutls_digest_algorithm_t dig;
			rv = khsm_soft_can_verify(mech->mechanism) ? CKR_OK : CKR_MECHANISM_INVALID;
			if (rv == CKR_OK) rv = load_pubkey(s->slot, hSession, key, &s->verify_key);
			if (rv == CKR_OK && khsm_soft_hashed(mech->mechanism, &raw, &dig)) {
				rv = gnutls_hash_init(&s->verify_hash, dig) == 0 ? CKR_OK : CKR_HOST_MEMORY;
			}
			if (rv == CKR_OK) {
				s->verify_soft = true;
				s->verify_mech = mech->mechanism;
			}
		}
		if (rv != CKR_OK) verify_clear(s);
	}
	return leave_session(&c, hSession, s, rv);
}

static void c_verify_common(call_t *c, session_t *s)
{
	if (s->verify_desc) c_add(c, "%s", s->verify_desc);
	if (s->verify_soft) {
		c_mech(c, "mech", s->verify_mech);
		c_true(c, "software");
	}
}

/* Finish a software verification over what was collected. */
static CK_RV soft_verify_final(session_t *s, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	CK_RV rv;
	if (!sig) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (s->verify_hash) {
		unsigned char digest[64];
		CK_MECHANISM_TYPE raw;
		gnutls_digest_algorithm_t dig = GNUTLS_DIG_UNKNOWN;
		khsm_soft_hashed(s->verify_mech, &raw, &dig);
		gnutls_hash_deinit(s->verify_hash, digest);
		s->verify_hash = NULL;
		rv = khsm_soft_verify(s->verify_key, s->verify_mech, digest, gnutls_hash_get_len(dig), sig, sig_len);
	} else {
		rv = khsm_soft_verify(s->verify_key, s->verify_mech, s->verify_buf, s->verify_len, sig, sig_len);
	}
	verify_clear(s);
	return rv;
}

static CK_RV soft_verify_update(session_t *s, CK_BYTE_PTR in, CK_ULONG in_len)
{
	if (in_len && !in) return CKR_ARGUMENTS_BAD;
	if (s->verify_hash) {
		gnutls_hash(s->verify_hash, in, in_len);
		return CKR_OK;
	}
	if (s->verify_len + in_len > 1 << 20) return CKR_DATA_LEN_RANGE;
	unsigned char *n = realloc(s->verify_buf, s->verify_len + in_len + 1);
	if (!n) return CKR_HOST_MEMORY;
	s->verify_buf = n;
	if (in_len) memcpy(n + s->verify_len, in, in_len);
	s->verify_len += in_len;
	return CKR_OK;
}

static CK_RV g_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                      CK_ULONG sig_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_Verify", 0, hSession, &s);
	if (s) c_verify_common(&c, s);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK && s->verify_soft) {
		rv = soft_verify_update(s, in, in_len);
		rv = rv == CKR_OK ? soft_verify_final(s, sig, sig_len) : (verify_clear(s), rv);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_Verify(hSession, in, in_len, sig, sig_len);
		verify_clear(s);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_VerifyUpdate", 0, hSession, &s);
	if (s) c_verify_common(&c, s);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK && s->verify_soft) {
		rv = soft_verify_update(s, in, in_len);
		if (rv != CKR_OK) verify_clear(s);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_VerifyUpdate(hSession, in, in_len);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_VerifyFinal", 0, hSession, &s);
	if (s) c_verify_common(&c, s);
	if (rv == CKR_OK && s->verify_soft) {
		rv = soft_verify_final(s, sig, sig_len);
	} else if (rv == CKR_OK) {
		rv = g.fl->C_VerifyFinal(hSession, sig, sig_len);
		verify_clear(s);
	}
	return leave_session(&c, hSession, s, rv);
}

/* -- keys -- */

static CK_RV g_GenerateKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_ATTRIBUTE_PTR tmpl,
                           CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_GenerateKey", SEC, hSession, &s);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	c_attr_types(&c, tmpl, n);
	if (rv == CKR_OK) rv = intent_session(&c, s, hSession);
	if (rv == CKR_OK) rv = g.fl->C_GenerateKey(hSession, mech, tmpl, n, key);
	if (rv == CKR_OK && key) {
		char *d = describe(hSession, *key, "key");
		if (d) c_add(&c, "%s", d);
		free(d);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech,
                               CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG n_pub,
                               CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG n_priv,
                               CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_GenerateKeyPair", SEC, hSession, &s);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	if (rv == CKR_OK) rv = intent_session(&c, s, hSession);
	if (rv == CKR_OK) rv = g.fl->C_GenerateKeyPair(hSession, mech, pub_tmpl, n_pub, priv_tmpl, n_priv, pub, priv);
	if (rv == CKR_OK && pub && priv) {
		/* Top level: the private key (label and id as the card assigned them). */
		char *d = describe(hSession, *priv, "key");
		if (d) c_add(&c, "%s", d);
		free(d);
		c_num(&c, "public", *pub);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_WrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE wrapping,
                       CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_WrapKey", SEC, hSession, &s);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	if (rv == CKR_OK) {
		char *d = describe(hSession, key, "key");
		if (d) c_add(&c, "%s", d);
		free(d);
		c_num(&c, "wrapping", wrapping);
		rv = g.fl->C_WrapKey(hSession, mech, wrapping, key, out, out_len);
	}
	c.wipe = out;
	c.wipe_len = out_len;
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE unwrapping,
                         CK_BYTE_PTR in, CK_ULONG in_len, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                         CK_OBJECT_HANDLE_PTR key)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_UnwrapKey", SEC, hSession, &s);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	c_num(&c, "unwrapping", unwrapping);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK) rv = intent_session(&c, s, hSession);
	if (rv == CKR_OK) rv = g.fl->C_UnwrapKey(hSession, mech, unwrapping, in, in_len, tmpl, n, key);
	if (rv == CKR_OK && key) {
		char *d = describe(hSession, *key, "key");
		if (d) c_add(&c, "%s", d);
		free(d);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_DeriveKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE base,
                         CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_DeriveKey", SEC, hSession, &s);
	if (mech) c_mech(&c, "mech", mech->mechanism);
	c_num(&c, "base", base);
	if (rv == CKR_OK) rv = intent_session(&c, s, hSession);
	if (rv == CKR_OK) rv = g.fl->C_DeriveKey(hSession, mech, base, tmpl, n, key);
	if (rv == CKR_OK && key) c_num(&c, "key", *key);
	return leave_session(&c, hSession, s, rv);
}

/* -- random numbers: the card's, or gnutls_rnd when it has no RNG -- */

static CK_RV g_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR seed, CK_ULONG len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_SeedRandom", 0, hSession, &s);
	c_num(&c, "len", len);
	if (rv == CKR_OK && g.conf.fill && !card_rng(c.card)) {
		c_true(&c, "software");
		rv = CKR_RANDOM_SEED_NOT_SUPPORTED;
	} else if (rv == CKR_OK) {
		rv = g.fl->C_SeedRandom(hSession, seed, len);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_RV g_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG len)
{
	NOT_INIT();
	call_t c;
	session_t *s;
	CK_RV rv = enter_session(&c, "C_GenerateRandom", 0, hSession, &s);
	c_num(&c, "len", len);
	if (rv == CKR_OK && g.conf.fill && !card_rng(c.card)) {
		c_true(&c, "software");
		if (len && !out) rv = CKR_ARGUMENTS_BAD;
		else if (len && gnutls_rnd(GNUTLS_RND_RANDOM, out, len) != 0) rv = CKR_FUNCTION_FAILED;
	} else if (rv == CKR_OK) {
		rv = g.fl->C_GenerateRandom(hSession, out, len);
	}
	return leave_session(&c, hSession, s, rv);
}

static CK_FUNCTION_LIST g_funcs = {
	.version = { CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR },
	.C_Initialize = g_Initialize,
	.C_Finalize = g_Finalize,
	.C_GetInfo = g_GetInfo,
	.C_GetFunctionList = g_GetFunctionList,
	.C_GetSlotList = g_GetSlotList,
	.C_GetSlotInfo = g_GetSlotInfo,
	.C_GetTokenInfo = g_GetTokenInfo,
	.C_GetMechanismList = g_GetMechanismList,
	.C_GetMechanismInfo = g_GetMechanismInfo,
	.C_InitToken = g_InitToken,
	.C_InitPIN = g_InitPIN,
	.C_SetPIN = g_SetPIN,
	.C_OpenSession = g_OpenSession,
	.C_CloseSession = g_CloseSession,
	.C_CloseAllSessions = g_CloseAllSessions,
	.C_GetSessionInfo = g_GetSessionInfo,
	.C_GetOperationState = g_GetOperationState,
	.C_SetOperationState = g_SetOperationState,
	.C_Login = g_Login,
	.C_Logout = g_Logout,
	.C_CreateObject = g_CreateObject,
	.C_CopyObject = g_CopyObject,
	.C_DestroyObject = g_DestroyObject,
	.C_GetObjectSize = g_GetObjectSize,
	.C_GetAttributeValue = g_GetAttributeValue,
	.C_SetAttributeValue = g_SetAttributeValue,
	.C_FindObjectsInit = g_FindObjectsInit,
	.C_FindObjects = g_FindObjects,
	.C_FindObjectsFinal = g_FindObjectsFinal,
	.C_EncryptInit = g_EncryptInit,
	.C_Encrypt = g_Encrypt,
	.C_EncryptUpdate = g_EncryptUpdate,
	.C_EncryptFinal = g_EncryptFinal,
	.C_DecryptInit = g_DecryptInit,
	.C_Decrypt = g_Decrypt,
	.C_DecryptUpdate = g_DecryptUpdate,
	.C_DecryptFinal = g_DecryptFinal,
	.C_DigestInit = g_DigestInit,
	.C_Digest = g_Digest,
	.C_DigestUpdate = g_DigestUpdate,
	.C_DigestKey = g_DigestKey,
	.C_DigestFinal = g_DigestFinal,
	.C_SignInit = g_SignInit,
	.C_Sign = g_Sign,
	.C_SignUpdate = g_SignUpdate,
	.C_SignFinal = g_SignFinal,
	.C_SignRecoverInit = g_SignRecoverInit,
	.C_SignRecover = g_SignRecover,
	.C_VerifyInit = g_VerifyInit,
	.C_Verify = g_Verify,
	.C_VerifyUpdate = g_VerifyUpdate,
	.C_VerifyFinal = g_VerifyFinal,
	.C_VerifyRecoverInit = g_VerifyRecoverInit,
	.C_VerifyRecover = g_VerifyRecover,
	.C_DigestEncryptUpdate = g_DigestEncryptUpdate,
	.C_DecryptDigestUpdate = g_DecryptDigestUpdate,
	.C_SignEncryptUpdate = g_SignEncryptUpdate,
	.C_DecryptVerifyUpdate = g_DecryptVerifyUpdate,
	.C_GenerateKey = g_GenerateKey,
	.C_GenerateKeyPair = g_GenerateKeyPair,
	.C_WrapKey = g_WrapKey,
	.C_UnwrapKey = g_UnwrapKey,
	.C_DeriveKey = g_DeriveKey,
	.C_SeedRandom = g_SeedRandom,
	.C_GenerateRandom = g_GenerateRandom,
	.C_GetFunctionStatus = g_GetFunctionStatus,
	.C_CancelFunction = g_CancelFunction,
	.C_WaitForSlotEvent = g_WaitForSlotEvent,
};
