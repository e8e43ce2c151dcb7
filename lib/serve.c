/* The card served to this process's keymgr children over p11-kit's RPC. */
#define P11_KIT_FUTURE_UNSTABLE_API 1
#include <errno.h>
#include <fcntl.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/remote.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "error.h"
#include "handoff.h"
#include "internal.h"
#include "remote.h"
#include "retry.h"
#include "serve.h"

struct khsm_serve {
	char *module;
	khsm_card_scope_t *scope;   /* the starting thread's, shared by the connections */
	char *dir;
	char *socket;
	char *address;
	int listen_fd;
	int stop[2];
	pthread_t acceptor;
	bool accepting;
	struct conn *conns;     /* joined, their sockets shut down, at stop */
	size_t n_conns;
};

struct conn {
	const char *module;
	khsm_card_scope_t *scope;   /* the starting thread's card (NULL: the machine-wide lock) */
	int fd;                 /* closed by khsm_serve_stop(), after the thread ended */
	pthread_t thread;
};

/* -- each call under the card lock ----------------------------------------- */

/* A client's calls reach the card one at a time, each under khsm_card_lock():
 * between two of them (keymgr reading its configuration and KASP, writing
 * KASP) the card is free for this process's other threads (the signer).
 * p11-kit's server answers a connection's calls in its own thread, so the
 * instance of the module that thread serves is thread-local. */
static __thread CK_FUNCTION_LIST *served;
static __thread bool served_finalized;   /* the client's own C_Finalize ended its instance */

#define SESS CK_SESSION_HANDLE h
#define INIT_PARAMS (SESS, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k), (h, m, k)
#define IO_PARAMS (SESS, CK_BYTE_PTR in, CK_ULONG n, CK_BYTE_PTR out, CK_ULONG_PTR len), (h, in, n, out, len)
#define FINAL_PARAMS (SESS, CK_BYTE_PTR out, CK_ULONG_PTR len), (h, out, len)
#define DATA_PARAMS (SESS, CK_BYTE_PTR p, CK_ULONG n), (h, p, n)
#define ONLY_SESS (SESS), (h)

/* Every function of PKCS #11 2.40 but C_GetFunctionList (this table),
 * C_Finalize (below) and C_WaitForSlotEvent (it blocks: never under the lock). */
#define LOCKED_CALLS(X) \
	X(Initialize, (CK_VOID_PTR a), (a)) \
	X(GetInfo, (CK_INFO_PTR i), (i)) \
	X(GetSlotList, (CK_BBOOL present, CK_SLOT_ID_PTR l, CK_ULONG_PTR n), (present, l, n)) \
	X(GetSlotInfo, (CK_SLOT_ID s, CK_SLOT_INFO_PTR i), (s, i)) \
	X(GetTokenInfo, (CK_SLOT_ID s, CK_TOKEN_INFO_PTR i), (s, i)) \
	X(GetMechanismList, (CK_SLOT_ID s, CK_MECHANISM_TYPE_PTR l, CK_ULONG_PTR n), (s, l, n)) \
	X(GetMechanismInfo, (CK_SLOT_ID s, CK_MECHANISM_TYPE t, CK_MECHANISM_INFO_PTR i), (s, t, i)) \
	X(InitToken, (CK_SLOT_ID s, CK_UTF8CHAR_PTR pin, CK_ULONG n, CK_UTF8CHAR_PTR label), (s, pin, n, label)) \
	X(InitPIN, (SESS, CK_UTF8CHAR_PTR pin, CK_ULONG n), (h, pin, n)) \
	X(SetPIN, (SESS, CK_UTF8CHAR_PTR o, CK_ULONG on, CK_UTF8CHAR_PTR p, CK_ULONG pn), (h, o, on, p, pn)) \
	X(OpenSession, (CK_SLOT_ID s, CK_FLAGS f, CK_VOID_PTR app, CK_NOTIFY cb, CK_SESSION_HANDLE_PTR ph), \
	  (s, f, app, cb, ph)) \
	X(CloseSession, ONLY_SESS) \
	X(CloseAllSessions, (CK_SLOT_ID s), (s)) \
	X(GetSessionInfo, (SESS, CK_SESSION_INFO_PTR i), (h, i)) \
	X(GetOperationState, (SESS, CK_BYTE_PTR st, CK_ULONG_PTR n), (h, st, n)) \
	X(SetOperationState, (SESS, CK_BYTE_PTR st, CK_ULONG n, CK_OBJECT_HANDLE e, CK_OBJECT_HANDLE a), \
	  (h, st, n, e, a)) \
	X(Login, (SESS, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin, CK_ULONG n), (h, u, pin, n)) \
	X(Logout, ONLY_SESS) \
	X(CreateObject, (SESS, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR o), (h, t, n, o)) \
	X(CopyObject, (SESS, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR c), \
	  (h, o, t, n, c)) \
	X(DestroyObject, (SESS, CK_OBJECT_HANDLE o), (h, o)) \
	X(GetObjectSize, (SESS, CK_OBJECT_HANDLE o, CK_ULONG_PTR n), (h, o, n)) \
	X(GetAttributeValue, (SESS, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, o, t, n)) \
	X(SetAttributeValue, (SESS, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, o, t, n)) \
	X(FindObjectsInit, (SESS, CK_ATTRIBUTE_PTR t, CK_ULONG n), (h, t, n)) \
	X(FindObjects, (SESS, CK_OBJECT_HANDLE_PTR o, CK_ULONG max, CK_ULONG_PTR n), (h, o, max, n)) \
	X(FindObjectsFinal, ONLY_SESS) \
	X(EncryptInit, INIT_PARAMS) X(Encrypt, IO_PARAMS) X(EncryptUpdate, IO_PARAMS) \
	X(EncryptFinal, FINAL_PARAMS) \
	X(DecryptInit, INIT_PARAMS) X(Decrypt, IO_PARAMS) X(DecryptUpdate, IO_PARAMS) \
	X(DecryptFinal, FINAL_PARAMS) \
	X(DigestInit, (SESS, CK_MECHANISM_PTR m), (h, m)) X(Digest, IO_PARAMS) \
	X(DigestUpdate, DATA_PARAMS) X(DigestKey, (SESS, CK_OBJECT_HANDLE k), (h, k)) \
	X(DigestFinal, FINAL_PARAMS) \
	X(SignInit, INIT_PARAMS) X(Sign, IO_PARAMS) X(SignUpdate, DATA_PARAMS) X(SignFinal, FINAL_PARAMS) \
	X(SignRecoverInit, INIT_PARAMS) X(SignRecover, IO_PARAMS) \
	X(VerifyInit, INIT_PARAMS) \
	X(Verify, (SESS, CK_BYTE_PTR d, CK_ULONG dn, CK_BYTE_PTR sig, CK_ULONG sn), (h, d, dn, sig, sn)) \
	X(VerifyUpdate, DATA_PARAMS) X(VerifyFinal, DATA_PARAMS) \
	X(VerifyRecoverInit, INIT_PARAMS) X(VerifyRecover, IO_PARAMS) \
	X(DigestEncryptUpdate, IO_PARAMS) X(DecryptDigestUpdate, IO_PARAMS) \
	X(SignEncryptUpdate, IO_PARAMS) X(DecryptVerifyUpdate, IO_PARAMS) \
	X(GenerateKey, (SESS, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k), \
	  (h, m, t, n, k)) \
	X(GenerateKeyPair, (SESS, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt, CK_ULONG pn, CK_ATTRIBUTE_PTR st, \
	                    CK_ULONG sn, CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv), \
	  (h, m, pt, pn, st, sn, pub, priv)) \
	X(WrapKey, (SESS, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE w, CK_OBJECT_HANDLE k, CK_BYTE_PTR out, \
	            CK_ULONG_PTR len), (h, m, w, k, out, len)) \
	X(UnwrapKey, (SESS, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE u, CK_BYTE_PTR in, CK_ULONG in_len, \
	              CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR k), (h, m, u, in, in_len, t, n, k)) \
	X(DeriveKey, (SESS, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE b, CK_ATTRIBUTE_PTR t, CK_ULONG n, \
	              CK_OBJECT_HANDLE_PTR k), (h, m, b, t, n, k)) \
	X(SeedRandom, DATA_PARAMS) X(GenerateRandom, DATA_PARAMS) \
	X(GetFunctionStatus, ONLY_SESS) X(CancelFunction, ONLY_SESS)

/* false: the lock was refused (the client sees its call fail; this thread
 * keeps no detail) */
static bool lock_for_call(void)
{
	if (khsm_card_lock() == KHSM_EOK) return true;
	khsm_err_clear();
	return false;
}

#define LOCKED_CALL_(name, params, args) \
	static CK_RV locked_##name params \
	{ \
		if (!lock_for_call()) return CKR_FUNCTION_FAILED; \
		CK_RV rv = served->C_##name args; \
		khsm_card_unlock(); \
		return rv; \
	}
#define LOCKED_CALL(name, ...) LOCKED_CALL_(name, __VA_ARGS__)
LOCKED_CALLS(LOCKED_CALL)

static CK_RV locked_Finalize(CK_VOID_PTR a)
{
	if (!lock_for_call()) return CKR_FUNCTION_FAILED;
	CK_RV rv = served->C_Finalize(a);
	khsm_card_unlock();
	if (rv == CKR_OK) served_finalized = true;
	return rv;
}

static CK_RV unlocked_WaitForSlotEvent(CK_FLAGS f, CK_SLOT_ID_PTR s, CK_VOID_PTR r)
{
	return served->C_WaitForSlotEvent(f, s, r);
}

static CK_FUNCTION_LIST locked_funcs;

static CK_RV locked_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (!list) return CKR_ARGUMENTS_BAD;
	*list = &locked_funcs;
	return CKR_OK;
}

#define LOCKED_ENTRY(name, ...) .C_##name = locked_##name,
static CK_FUNCTION_LIST locked_funcs = {
	.version = { CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR },   /* 2.40: no 3.0 calls pass */
	LOCKED_CALLS(LOCKED_ENTRY)
	.C_Finalize = locked_Finalize,
	.C_GetFunctionList = locked_GetFunctionList,
	.C_WaitForSlotEvent = unlocked_WaitForSlotEvent,
};

/* Signals are the main thread's (its handlers clean up); a write to a
 * client gone is EPIPE here, not the end of the process. */
static void block_signals(void)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* arg: the thread's own copy of its conn, freed here */
static void *serve_conn(void *arg)
{
	struct conn *c = arg;
	block_signals();
	khsm_card_scope_share(c->scope);
	/* A managed instance of the module for this client alone: its
	 * C_Finalize closes its own sessions, never this process's. */
	CK_FUNCTION_LIST *m = p11_kit_module_load(c->module, 0);
	if (m) {
		served = m;
		served_finalized = false;
		p11_kit_remote_serve_module(&locked_funcs, c->fd, c->fd);
		/* a client that died without C_Finalize: its sessions close on the
		 * card (without the lock when it is refused: they close anyway) */
		if (!served_finalized && locked_Finalize(NULL) != CKR_OK) p11_kit_module_finalize(m);
		p11_kit_module_release(m);
	}
	free(c);
	return NULL;
}

/* The parent of process pid, from /proc/PID/stat (after the command name,
 * which may hold spaces and parentheses); -1 when unknown. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0) {
		return -1;
	}
	buf[n] = '\0';
	const char *end = strrchr(buf, ')');
	long ppid = -1;
	char state;
	if (!end || sscanf(end + 1, " %c %ld", &state, &ppid) != 2) {
		return -1;
	}
	return (pid_t)ppid;
}

/* Only a child of this process (the keymgr it runs) gets the logged-in
 * card: not knotd, nor any other program of the same user. */
static bool peer_is_child(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid() &&
	       cred.pid > 0 && parent_of(cred.pid) == getpid();
}

/* A thread for the connection, kept to be joined at stop. */
static int add_conn(khsm_serve_t *s, int fd)
{
	struct conn *more = realloc(s->conns, (s->n_conns + 1) * sizeof(*more));
	if (!more) {
		return KHSM_ENOMEM;
	}
	s->conns = more;
	struct conn *c = &s->conns[s->n_conns];
	*c = (struct conn){ .module = s->module, .scope = s->scope, .fd = fd };
	/* the thread gets a copy: conns may move with the next realloc */
	struct conn *arg = malloc(sizeof(*arg));
	if (!arg) {
		return KHSM_ENOMEM;
	}
	*arg = *c;
	if (pthread_create(&c->thread, NULL, serve_conn, arg) != 0) {
		free(arg);
		return KHSM_ENOMEM;
	}
	s->n_conns++;
	return KHSM_EOK;
}

static void *accept_loop(void *arg)
{
	khsm_serve_t *s = arg;
	block_signals();
	for (;;) {
		struct pollfd pfd[2] = { { .fd = s->listen_fd, .events = POLLIN },
		                         { .fd = s->stop[0], .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR) continue;
			break;
		}
		if (pfd[1].revents) {
			break;
		}
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) {
			continue;
		}
		if (fd < 0) {
			break;   /* out of descriptors: no spinning; clients are refused below */
		}
		if (!peer_is_child(fd) || add_conn(s, fd) != KHSM_EOK) {
			close(fd);   /* the client's C_Initialize fails: keymgr says so */
		}
	}
	/* no one waits in the backlog for an acceptor that is gone */
	close(s->listen_fd);
	s->listen_fd = -1;
	return NULL;
}

_public_
int khsm_serve_start(const char *module_path, khsm_serve_t **serve_ptr)
{
	if (!module_path || !serve_ptr) {
		return KHSM_EINVAL;
	}
	/* its clients' calls would wait for this thread, which waits for them */
	if (khsm_card_lock_held()) {
		khsm_err_detail("the card cannot be served from a thread that holds the card lock");
		return KHSM_EINVAL;
	}
	khsm_serve_t *s = calloc(1, sizeof(*s));
	if (!s) {
		return KHSM_ENOMEM;
	}
	s->scope = khsm_card_scope_current();
	s->listen_fd = -1;
	s->stop[0] = s->stop[1] = -1;
	int r = KHSM_ENOMEM;
	if (!(s->module = strdup(module_path))) {
		goto fail;
	}
	/* 0700: only this user reaches the socket; a kill's leftover goes with
	 * the next ceremony's stale cleanup */
	const char *tmp = getenv("TMPDIR");
	if ((r = khsm_handoff_socket_dir(tmp && *tmp == '/' ? tmp : NULL, &s->dir)) != KHSM_EOK) {
		goto fail;
	}
	r = KHSM_ENOMEM;
	if (asprintf(&s->socket, "%s/pkcs11", s->dir) < 0) {
		s->socket = NULL;
		goto fail;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(s->socket) >= sizeof(sa.sun_path)) {
		khsm_err_detail("the socket path %s is too long (TMPDIR)", s->socket);
		r = KHSM_EINVAL;
		goto fail;
	}
	memcpy(sa.sun_path, s->socket, strlen(s->socket) + 1);
	if ((r = khsm_remote_address(s->socket, &s->address)) != KHSM_EOK) {
		goto fail;
	}
	r = KHSM_EIO;
	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(s->listen_fd, 16) != 0 || pipe2(s->stop, O_CLOEXEC) != 0) {
		khsm_err_detail("cannot serve the card on %s: %s", s->socket, strerror(errno));
		goto fail;
	}
	if (pthread_create(&s->acceptor, NULL, accept_loop, s) != 0) {
		khsm_err_detail("cannot start a thread to serve the card");
		goto fail;
	}
	s->accepting = true;
	*serve_ptr = s;
	return KHSM_EOK;
fail:
	khsm_serve_stop(s);
	return r;
}

_public_
const char *khsm_serve_address(const khsm_serve_t *serve)
{
	return serve ? serve->address : NULL;
}

_public_
void khsm_serve_stop(khsm_serve_t *s)
{
	if (!s) {
		return;
	}
	if (s->accepting) {
		ssize_t w = write(s->stop[1], "x", 1);
		(void)w;   /* a full pipe has woken it already */
		pthread_join(s->acceptor, NULL);
	}
	for (size_t i = 0; i < s->n_conns; i++) {
		/* a client still connected (it should have exited) ends now */
		shutdown(s->conns[i].fd, SHUT_RDWR);
		pthread_join(s->conns[i].thread, NULL);
		close(s->conns[i].fd);
	}
	if (s->listen_fd >= 0) close(s->listen_fd);
	if (s->stop[0] >= 0) close(s->stop[0]);
	if (s->stop[1] >= 0) close(s->stop[1]);
	if (s->socket) unlink(s->socket);
	if (s->dir) rmdir(s->dir);
	free(s->conns);
	free(s->address);
	free(s->socket);
	free(s->dir);
	free(s->module);
	free(s);
}
