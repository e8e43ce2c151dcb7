/* posix_spawn with pipes on stdin, stdout and stderr and a poll loop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>

#include "config.h"
#include "error.h"
#include "internal.h"
#include "run.h"

extern char **environ;

/* A growing NUL-terminated buffer. */
typedef struct {
	char *data;
	size_t len;
	size_t cap;
} buf_t;

static int buf_read(buf_t *b, int fd, bool *eof)
{
	if (b->cap - b->len < 4097) {
		size_t cap = b->cap ? b->cap * 2 : 8192;
		char *data = realloc(b->data, cap);
		if (!data) {
			return KHSM_ENOMEM;
		}
		b->data = data;
		b->cap = cap;
	}
	ssize_t n = read(fd, b->data + b->len, b->cap - b->len - 1);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			return KHSM_EOK;
		}
		khsm_err_detail("reading the output of a child process failed: %s", strerror(errno));
		return KHSM_EIO;
	}
	*eof = (n == 0);
	b->len += n;
	b->data[b->len] = '\0';
	return KHSM_EOK;
}

static int buf_finish(buf_t *b)
{
	if (!b->data && !(b->data = calloc(1, 1))) {
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

static void buf_wipe(buf_t *b)
{
	if (b->data) {
		explicit_bzero(b->data, b->cap);
		free(b->data);
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static const char *package_of(const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strcmp(base, "keymgr") == 0 || strcmp(base, "knotc") == 0 || strcmp(base, "knotd") == 0) {
		return "knot";
	}
	return NULL;
}

static int spawn_error(const char *path, int err)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (err == ENOENT || err == ENOTDIR) {
		const char *pkg = package_of(path);
		if (pkg) {
			khsm_err_detail("%s not found at %s: install the '%s' package or set KHSM_%s",
			                base, path, pkg, strcmp(base, "keymgr") == 0 ? "KEYMGR" :
			                strcmp(base, "knotc") == 0 ? "KNOTC" : "KNOTD");
		} else {
			khsm_err_detail("%s not found: check the path", path);
		}
		return KHSM_ENOENT;
	}
	if (err == EACCES || err == EPERM) {
		khsm_err_detail("cannot execute %s: %s", path, strerror(err));
		return KHSM_EPERM;
	}
	if (err == ENOMEM) {
		return KHSM_ENOMEM;
	}
	khsm_err_detail("cannot start %s: %s", path, strerror(err));
	return KHSM_EIO;
}

/* Write what poll says fits; SIGPIPE is blocked by the caller. */
static int feed_stdin(int *fd, const char *data, size_t len, size_t *done)
{
	ssize_t n = write(*fd, data + *done, len - *done);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN) {
			return KHSM_EOK;
		}
		/* EPIPE: the child does not read its input; not our failure. */
		close_fd(fd);
		return KHSM_EOK;
	}
	*done += n;
	if (*done == len) {
		close_fd(fd);
	}
	return KHSM_EOK;
}

/* Only stdin/stdout/stderr and the descriptors the caller names reach the
 * child: the pipes go to 0-2, keep[i] (through its copy tmp[i], numbered above
 * every target) to 3 + i, and everything from 3 + n_keep up is closed in the
 * child whatever its close-on-exec flag (a --pin-fd descriptor has none). */
static int setup_actions(posix_spawn_file_actions_t *fa, const int in[2],
                         const int out[2], const int err[2],
                         const int *tmp, size_t n_keep)
{
	if (posix_spawn_file_actions_adddup2(fa, in[0], STDIN_FILENO) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, out[1], STDOUT_FILENO) != 0 ||
	    posix_spawn_file_actions_adddup2(fa, err[1], STDERR_FILENO) != 0) {
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < n_keep; i++) {
		if (posix_spawn_file_actions_adddup2(fa, tmp[i], 3 + (int)i) != 0) {
			return KHSM_ENOMEM;
		}
	}
	if (posix_spawn_file_actions_addclosefrom_np(fa, 3 + (int)n_keep) != 0) {
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

/* Close-on-exec copies of the descriptors to keep, numbered at or above
 * 3 + n_keep so that no dup2 in the child overwrites a source still needed. */
static int copy_keep(const int *keep, size_t n_keep, int *tmp)
{
	for (size_t i = 0; i < n_keep; i++) {
		tmp[i] = -1;
	}
	for (size_t i = 0; i < n_keep; i++) {
		if (keep[i] <= STDERR_FILENO) {
			khsm_err_detail("descriptor %d cannot be passed on to a child", keep[i]);
			return KHSM_EINVAL;
		}
		tmp[i] = fcntl(keep[i], F_DUPFD_CLOEXEC, 3 + (int)n_keep);
		if (tmp[i] < 0) {
			int e = errno;
			khsm_err_detail("descriptor %d cannot be passed on to a child: %s",
			                keep[i], strerror(e));
			return e == EBADF ? KHSM_EINVAL : KHSM_EIO;
		}
	}
	return KHSM_EOK;
}

static int setup_attrs(posix_spawnattr_t *attr)
{
	sigset_t none, dfl;
	sigemptyset(&none);
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	if (posix_spawnattr_setsigmask(attr, &none) != 0 ||
	    posix_spawnattr_setsigdefault(attr, &dfl) != 0 ||
	    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) != 0) {
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

static int wait_child(pid_t pid, int *status_ptr)
{
	int wstatus = 0;
	while (waitpid(pid, &wstatus, 0) < 0) {
		if (errno != EINTR) {
			khsm_err_detail("waiting for child %d failed: %s", (int)pid, strerror(errno));
			return KHSM_EIO;
		}
	}
	*status_ptr = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus)
	            : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : 255;
	return KHSM_EOK;
}

_public_
int khsm_run(const char *const argv[], const char *stdin_data, khsm_run_t *res)
{
	return khsm_run_keep(argv, stdin_data, NULL, 0, res);
}

/* environ with each NAME=value of add in place of an entry of that NAME.
 * \param[out] env_ptr  free() the array only (its strings are borrowed). */
static int env_with(const char *const *add, char ***env_ptr)
{
	size_t n = 0, k = 0;
	while (environ[n]) n++;
	while (add[k]) k++;
	char **env = calloc(n + k + 1, sizeof(*env));
	if (!env) {
		return KHSM_ENOMEM;
	}
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		bool replaced = false;
		for (size_t j = 0; j < k && !replaced; j++) {
			size_t len = strcspn(add[j], "=");
			replaced = strncmp(environ[i], add[j], len) == 0 && environ[i][len] == '=';
		}
		if (!replaced) env[m++] = environ[i];
	}
	for (size_t j = 0; j < k; j++) env[m++] = (char *)add[j];
	*env_ptr = env;
	return KHSM_EOK;
}

static int run_spawn(const char *const argv[], const char *stdin_data, const int *keep,
                     size_t n_keep, const char *const *env_add, khsm_run_t *res);

_public_
int khsm_run_env(const char *const argv[], const char *stdin_data, const char *const *env_add,
                 khsm_run_t *res)
{
	return run_spawn(argv, stdin_data, NULL, 0, env_add, res);
}

_public_
int khsm_run_keep(const char *const argv[], const char *stdin_data,
                  const int *keep, size_t n_keep, khsm_run_t *res)
{
	return run_spawn(argv, stdin_data, keep, n_keep, NULL, res);
}

static int run_spawn(const char *const argv[], const char *stdin_data, const int *keep,
                     size_t n_keep, const char *const *env_add, khsm_run_t *res)
{
	if (!argv || !argv[0] || !res || (n_keep > 0 && !keep) || n_keep > KHSM_RUN_KEEP_MAX) {
		return KHSM_EINVAL;
	}

	int tmp[KHSM_RUN_KEEP_MAX] = { 0 };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	buf_t bout = { 0 }, berr = { 0 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_init = false, attr_init = false, mask_set = false;
	sigset_t pipe_set, old_mask;
	pid_t pid = -1;
	int r;

	/* Before the pipes, which could take the number of a closed keep[i]. */
	if ((r = copy_keep(keep, n_keep, tmp)) != KHSM_EOK) {
		goto fail;
	}
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
		khsm_err_detail("cannot create pipes: %s", strerror(errno));
		r = errno == EMFILE || errno == ENFILE ? KHSM_ENOMEM : KHSM_EIO;
		goto fail;
	}
	r = KHSM_ENOMEM;
	if (posix_spawn_file_actions_init(&fa) != 0) goto fail;
	fa_init = true;
	if (posix_spawnattr_init(&attr) != 0) goto fail;
	attr_init = true;
	if ((r = setup_actions(&fa, in, out, err, tmp, n_keep)) != KHSM_EOK ||
	    (r = setup_attrs(&attr)) != KHSM_EOK) {
		goto fail;
	}

	char **env = NULL;
	if (env_add && (r = env_with(env_add, &env)) != KHSM_EOK) {
		goto fail;
	}
	int se = posix_spawn(&pid, argv[0], &fa, &attr, (char *const *)argv, env ? env : environ);
	free(env);
	if (se != 0) {
		pid = -1;
		r = spawn_error(argv[0], se);
		goto fail;
	}
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	for (size_t i = 0; i < n_keep; i++) {
		close_fd(&tmp[i]);
	}

	/* Writing to a child that exited must give EPIPE, not kill us. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
	mask_set = true;

	size_t in_len = stdin_data ? strlen(stdin_data) : 0, in_done = 0;
	if (in_len == 0) {
		close_fd(&in[1]);
	} else {
		fcntl(in[1], F_SETFL, fcntl(in[1], F_GETFL) | O_NONBLOCK);
	}

	r = KHSM_EOK;
	while (r == KHSM_EOK && (out[0] >= 0 || err[0] >= 0 || in[1] >= 0)) {
		struct pollfd pfd[3] = {
			{ .fd = out[0], .events = POLLIN },
			{ .fd = err[0], .events = POLLIN },
			{ .fd = in[1], .events = POLLOUT },
		};
		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR) continue;
			khsm_err_detail("poll failed: %s", strerror(errno));
			r = KHSM_EIO;
			break;
		}
		bool eof = false;
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = buf_read(&bout, out[0], &eof);
			if (eof) close_fd(&out[0]);
		}
		eof = false;
		if (r == KHSM_EOK && pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = buf_read(&berr, err[0], &eof);
			if (eof) close_fd(&err[0]);
		}
		if (r == KHSM_EOK && pfd[2].revents & (POLLOUT | POLLERR | POLLHUP)) {
			r = feed_stdin(&in[1], stdin_data, in_len, &in_done);
		}
	}
	if (r != KHSM_EOK) {
		goto fail;
	}

	/* Consume a SIGPIPE raised by our writes before unblocking it. */
	struct timespec zero = { 0 };
	while (sigtimedwait(&pipe_set, NULL, &zero) == SIGPIPE) {}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	mask_set = false;

	int status = 0;
	r = wait_child(pid, &status);
	pid = -1;
	if (r != KHSM_EOK) goto fail;
	if ((r = buf_finish(&bout)) != KHSM_EOK || (r = buf_finish(&berr)) != KHSM_EOK) {
		goto fail;
	}

	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	res->out = bout.data;
	res->out_len = bout.len;
	res->err = berr.data;
	res->err_len = berr.len;
	res->status = status;
	return KHSM_EOK;
fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in[i]);
		close_fd(&out[i]);
		close_fd(&err[i]);
	}
	for (size_t i = 0; i < n_keep; i++) {
		close_fd(&tmp[i]);
	}
	if (pid > 0) {
		int ignored;
		wait_child(pid, &ignored);
	}
	if (mask_set) {
		struct timespec zero2 = { 0 };
		while (sigtimedwait(&pipe_set, NULL, &zero2) == SIGPIPE) {}
		pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	}
	if (fa_init) posix_spawn_file_actions_destroy(&fa);
	if (attr_init) posix_spawnattr_destroy(&attr);
	buf_wipe(&bout);
	buf_wipe(&berr);
	return r;
}

_public_
void khsm_run_clear(khsm_run_t *res)
{
	if (!res) {
		return;
	}
	if (res->out) {
		explicit_bzero(res->out, res->out_len);
		free(res->out);
	}
	if (res->err) {
		explicit_bzero(res->err, res->err_len);
		free(res->err);
	}
	memset(res, 0, sizeof(*res));
}

_public_
const char *khsm_tool_path(const char *name)
{
	static const struct {
		const char *name;
		const char *env;
		const char *path;
	} TOOLS[] = {
		{ "keymgr", "KHSM_KEYMGR", KHSM_SBINDIR "/keymgr" },
		{ "knotc",  "KHSM_KNOTC",  KHSM_SBINDIR "/knotc" },
		{ "knotd",  "KHSM_KNOTD",  KHSM_SBINDIR "/knotd" },
	};
	if (!name) {
		return NULL;
	}
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(TOOLS); i++) {
		if (strcmp(name, TOOLS[i].name) == 0) {
			const char *env = getenv(TOOLS[i].env);
			return env && env[0] ? env : TOOLS[i].path;
		}
	}
	return NULL;
}
