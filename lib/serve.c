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
#include "serve.h"

struct khsm_serve {
	char *module;
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
	int fd;                 /* closed by khsm_serve_stop(), after the thread ended */
	pthread_t thread;
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
	/* A managed instance of the module for this client alone: its
	 * C_Finalize closes its own sessions, never this process's. */
	CK_FUNCTION_LIST *m = p11_kit_module_load(c->module, 0);
	if (m) {
		p11_kit_remote_serve_module(m, c->fd, c->fd);
		p11_kit_module_finalize(m);   /* a client that died without C_Finalize */
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
	*c = (struct conn){ .module = s->module, .fd = fd };
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
	khsm_serve_t *s = calloc(1, sizeof(*s));
	if (!s) {
		return KHSM_ENOMEM;
	}
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
