/* The guard's state: the card's module it loaded, the slots and sessions it
 * has seen, and the card lock that serialises calls per slot: a mutex within
 * the process and an OFD byte-range lock (byte = slot id) on the lock file
 * across processes. Session and object handles are the card module's,
 * passed through. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>

#include "internal.h"

khsm_guard_state_t khsm_guard = { .lock = PTHREAD_MUTEX_INITIALIZER, .lock_fd = -1,
                                   .recover_lock = PTHREAD_MUTEX_INITIALIZER };

void khsm_guard_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("knot-hsm-guard: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* -- slots and sessions -- */

/* Callers hold khsm_guard.lock. */
static slot_t *slot_get_locked(CK_SLOT_ID id)
{
	for (slot_t *s = khsm_guard.slots; s; s = s->next) {
		if (s->id == id) return s;
	}
	slot_t *s = calloc(1, sizeof(*s));
	if (!s) return NULL;
	s->id = id;
	s->rng = -1;
	pthread_mutex_init(&s->mutex, NULL);
	s->next = khsm_guard.slots;
	khsm_guard.slots = s;
	return s;
}

slot_t *khsm_guard_slot_get(CK_SLOT_ID id)
{
	pthread_mutex_lock(&khsm_guard.lock);
	slot_t *s = slot_get_locked(id);
	pthread_mutex_unlock(&khsm_guard.lock);
	return s;
}

session_t *khsm_guard_session_find(CK_SESSION_HANDLE h)
{
	pthread_mutex_lock(&khsm_guard.lock);
	session_t *s = khsm_guard.sessions;
	while (s && s->h != h) s = s->next;
	pthread_mutex_unlock(&khsm_guard.lock);
	return s;
}

void khsm_guard_session_add(session_t *s)
{
	pthread_mutex_lock(&khsm_guard.lock);
	s->next = khsm_guard.sessions;
	khsm_guard.sessions = s;
	pthread_mutex_unlock(&khsm_guard.lock);
}

void khsm_guard_sign_clear(session_t *s)
{
	free(s->sign_desc);
	s->sign_desc = NULL;
	if (s->sign_hash) gnutls_hash_deinit(s->sign_hash, NULL);
	s->sign_hash = NULL;
	s->sign_emul = false;
	s->sign_input_len = 0;
}

void khsm_guard_verify_clear(session_t *s)
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

void khsm_guard_digest_clear(session_t *s)
{
	if (s->digest_hash) gnutls_hash_deinit(s->digest_hash, NULL);
	s->digest_hash = NULL;
	s->digest_soft = false;
}

void khsm_guard_session_free(session_t *s)
{
	khsm_guard_sign_clear(s);
	khsm_guard_verify_clear(s);
	khsm_guard_digest_clear(s);
	free(s);
}

/* Remove sessions of a slot (all when all); callers hold khsm_guard.lock. */
static void sessions_drop_locked(bool all, CK_SLOT_ID slot, CK_SESSION_HANDLE only, bool one)
{
	for (session_t **pp = &khsm_guard.sessions; *pp;) {
		session_t *s = *pp;
		if (all || (one ? s->h == only : s->slot == slot)) {
			*pp = s->next;
			khsm_guard_session_free(s);
		} else {
			pp = &s->next;
		}
	}
}

void khsm_guard_session_drop(CK_SESSION_HANDLE h)
{
	pthread_mutex_lock(&khsm_guard.lock);
	sessions_drop_locked(false, 0, h, true);
	pthread_mutex_unlock(&khsm_guard.lock);
}

void khsm_guard_slot_drop_sessions(CK_SLOT_ID slot)
{
	pthread_mutex_lock(&khsm_guard.lock);
	sessions_drop_locked(false, slot, 0, false);
	pthread_mutex_unlock(&khsm_guard.lock);
}

/* -- the card lock -- */

void khsm_guard_card_lock(slot_t *s)
{
	pthread_mutex_lock(&s->mutex);
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
	                    .l_start = (off_t)(s->id % 0x7fffffffUL), .l_len = 1 };
	while (fcntl(khsm_guard.lock_fd, F_OFD_SETLKW, &fl) != 0) {
		if (errno == EINTR) continue;
		if (!__atomic_exchange_n(&khsm_guard.warned_lock, true, __ATOMIC_RELAXED)) {
			khsm_guard_warn("cannot lock %s (%s); card calls are serialised within this process only",
			                khsm_guard.conf.lock_file, strerror(errno));
		}
		break;
	}
}

void khsm_guard_card_unlock(slot_t *s)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET,
	                    .l_start = (off_t)(s->id % 0x7fffffffUL), .l_len = 1 };
	while (fcntl(khsm_guard.lock_fd, F_OFD_SETLK, &fl) != 0 && errno == EINTR) {
	}
	pthread_mutex_unlock(&s->mutex);
}

/* -- loading and unloading the card's module -- */

/* The card module's C_Initialize, with OS locking as the guard's own; when
 * names the moment for the warning ("" or " in a forked child"). */
static CK_RV card_initialize(const char *when)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = khsm_guard.fl->C_Initialize(&args);
	if (rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) return CKR_OK;
	char b[32];
	khsm_guard_warn("the card module %s failed to initialise%s: %s", khsm_guard.conf.module, when,
	                khsm_guard_ckr_name(rv, b, sizeof(b)));
	return rv;
}

static CK_RV load_real(const CK_FUNCTION_LIST *self)
{
	khsm_guard_state_t *g = &khsm_guard;
	g->dl = dlopen(g->conf.module, RTLD_NOW | RTLD_LOCAL);
	if (!g->dl) {
		khsm_guard_warn("cannot load the card module %s: %s", g->conf.module, dlerror());
		return CKR_GENERAL_ERROR;
	}
	CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(g->dl, "C_GetFunctionList");
	if (!get || get(&g->fl) != CKR_OK || !g->fl) {
		khsm_guard_warn("%s is not a PKCS #11 module (no C_GetFunctionList)", g->conf.module);
		return CKR_GENERAL_ERROR;
	}
	if (g->fl->C_GetFunctionList == self->C_GetFunctionList) {
		khsm_guard_warn("%s names the guard itself as the card module", g->conf.path);
		return CKR_GENERAL_ERROR;
	}
	return card_initialize("");
}

/* Callers hold khsm_guard.lock. */
static void unload_locked(void)
{
	khsm_guard_state_t *g = &khsm_guard;
	if (g->dl) dlclose(g->dl);
	g->dl = NULL;
	g->fl = NULL;
	if (g->lock_fd >= 0) close(g->lock_fd);
	g->lock_fd = -1;
	sessions_drop_locked(true, 0, 0, false);
	while (g->slots) {
		slot_t *s = g->slots;
		g->slots = s->next;
		pthread_mutex_destroy(&s->mutex);
		free(s);
	}
	khsm_guard_conf_clear(&g->conf);
}

/* Opened like the audit log (lib/audit.c): never through a symbolic link,
 * 0660 and owned like its directory when root creates it (knotd must lock it). */
static int open_lock_file(const char *path)
{
	int fd = -1;
	khsm_err_clear();
	if (khsm_audit_open_file(path, "lock file", KHSM_AUDIT_FILE_SHARED, &fd) != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		khsm_guard_warn("%s", d ? d : "cannot open the lock file");
		return -1;
	}
	return fd;
}

/* In a child: khsm_guard.lock may have been held by another thread of the
 * parent at fork time; the child has that thread no more. */
static void atfork_child(void)
{
	pthread_mutex_init(&khsm_guard.lock, NULL);
	pthread_mutex_init(&khsm_guard.recover_lock, NULL);
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
 * this process. Callers hold khsm_guard.lock. */
static CK_RV fork_restart_locked(void)
{
	khsm_guard_state_t *g = &khsm_guard;
	/* Freed, never destroyed: a mutex a parent thread held is dead here. */
	for (session_t **pp = &g->sessions; *pp;) {
		session_t *s = *pp;
		*pp = s->next;
		khsm_guard_session_free(s);
	}
	while (g->slots) {
		slot_t *s = g->slots;
		g->slots = s->next;
		free(s);
	}
	if (g->lock_fd >= 0) close(g->lock_fd);   /* the parent's locks stay the parent's */
	g->lock_fd = open_lock_file(g->conf.lock_file);
	if (g->lock_fd < 0) {
		g->initialized = false;
		return CKR_GENERAL_ERROR;
	}
	CK_RV rv = card_initialize(" in a forked child");
	if (rv != CKR_OK) {
		close(g->lock_fd);
		g->lock_fd = -1;
		g->initialized = false;
		return rv;
	}
	g->pid = getpid();
	g->appended = 0;
	g->warned_log = g->warned_lock = g->warned_anchor = false;
	return CKR_OK;
}

/* The first C_Initialize: configuration, lock file, card module. Callers
 * hold khsm_guard.lock. */
static CK_RV start_locked(const CK_FUNCTION_LIST *self)
{
	khsm_guard_state_t *g = &khsm_guard;
	Dl_info info;
	const char *file = dladdr((void *)self, &info) && info.dli_fname ? info.dli_fname : NULL;
	char *path = NULL;
	khsm_err_clear();
	int r = khsm_guard_conf_locate(file, &path);
	if (r == KHSM_EOK) r = khsm_guard_conf_load(path, &g->conf);
	free(path);
	if (r != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		khsm_guard_warn("%s", d ? d : khsm_strerror(r));
		khsm_guard_conf_clear(&g->conf);
		return CKR_GENERAL_ERROR;
	}
	g->lock_fd = open_lock_file(g->conf.lock_file);
	if (g->lock_fd < 0) {
		unload_locked();
		return CKR_GENERAL_ERROR;
	}
	CK_RV rv = load_real(self);
	if (rv != CKR_OK) {
		unload_locked();
		return rv;
	}
	snprintf(g->comm, sizeof(g->comm), "?");
	FILE *f = fopen("/proc/self/comm", "re");
	if (f) {
		if (fgets(g->comm, sizeof(g->comm), f)) g->comm[strcspn(g->comm, "\n")] = '\0';
		fclose(f);
	}
	g->warned_log = false;
	g->warned_lock = false;
	g->warned_anchor = false;
	g->appended = 0;
	g->pid = getpid();
	g->initialized = true;
	return CKR_OK;
}

CK_RV khsm_guard_state_open(const CK_FUNCTION_LIST *self, bool *after_fork_ptr)
{
	pthread_once(&atfork_once, atfork_register);
	pthread_mutex_lock(&khsm_guard.lock);
	CK_RV rv;
	*after_fork_ptr = false;
	if (khsm_guard.initialized && khsm_guard.pid == getpid()) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
	} else if (khsm_guard.initialized) {
		*after_fork_ptr = true;
		rv = fork_restart_locked();
	} else {
		rv = start_locked(self);
	}
	pthread_mutex_unlock(&khsm_guard.lock);
	return rv;
}

void khsm_guard_state_close(void)
{
	pthread_mutex_lock(&khsm_guard.lock);
	khsm_guard.initialized = false;
	unload_locked();
	pthread_mutex_unlock(&khsm_guard.lock);
}
