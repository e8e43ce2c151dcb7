/* Secret files for child tools: a sealed memfd, else a private temporary file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "error.h"
#include "handoff.h"
#include "internal.h"

#define STALE_PREFIX "knot-hsm-ceremony."
#define EMPTY_PREFIX "knot-hsm-empty."   /* khsm_handoff_empty_dir(): nothing secret */
#define SERVE_PREFIX "knot-hsm-serve."   /* khsm_handoff_socket_dir(): a socket, nothing secret */
#define CAP_SYS_PTRACE_BIT 19

struct khsm_handoff {
	int fd;                 /* the memfd, or the fallback file (for wiping) */
	size_t len;
	char path[PATH_MAX];
	char dir[PATH_MAX];     /* "" for a memfd */
};

/* Can a child open /proc/<us>/fd/N? Yes while we are dumpable (same user),
 * or when it has CAP_SYS_PTRACE, as our children have when we have it. */
static bool children_reach_proc_fd(void)
{
	if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1) {
		return true;
	}
	_cleanup_fclose_ FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long long caps;
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			return (caps >> CAP_SYS_PTRACE_BIT) & 1;
		}
	}
	return false;
}

static int write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int memfd_new(const char *name, const void *data, size_t len, khsm_handoff_t *h)
{
	int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		return KHSM_ENOTSUP;
	}
	/* Fixed size from here on; the content is wiped in place at the end. */
	if (write_all(fd, data, len) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
		khsm_err_detail("cannot fill a memfd: %s", strerror(errno));
		close(fd);
		return KHSM_EIO;
	}
	h->fd = fd;
	snprintf(h->path, sizeof(h->path), "/proc/%d/fd/%d", (int)getpid(), fd);
	return KHSM_EOK;
}

/* TMPDIR/<prefix><pid>.XXXXXX into dir (PATH_MAX), with room
 * for a name of name_len after it; "" on failure. */
static int private_dir(const char *tmpdir, const char *prefix, size_t name_len, char *dir)
{
	int n = snprintf(dir, PATH_MAX, "%s/%s%d.XXXXXX", tmpdir, prefix, (int)getpid());
	if (n < 0 || (size_t)n + 1 + name_len >= PATH_MAX) {
		dir[0] = '\0';
		khsm_err_detail("temporary directory path too long: %s", tmpdir);
		return KHSM_EINVAL;
	}
	if (!mkdtemp(dir)) {   /* 0700, a new name: never an existing entry */
		khsm_err_detail("cannot create a private temporary directory in %s: %s", tmpdir,
		                strerror(errno));
		dir[0] = '\0';
		return KHSM_EIO;
	}
	return KHSM_EOK;
}

static int file_new(const char *tmpdir, const char *name, const void *data, size_t len,
                    khsm_handoff_t *h)
{
	int r = private_dir(tmpdir, STALE_PREFIX, strlen(name), h->dir);
	if (r != KHSM_EOK) {
		return r;
	}
	if (snprintf(h->path, sizeof(h->path), "%s/%s", h->dir, name) < 0) {
		return KHSM_EINVAL;
	}
	_cleanup_close_ int dfd = open(h->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (dfd < 0 || fstat(dfd, &st) != 0 || st.st_uid != geteuid() || (st.st_mode & 0077)) {
		khsm_err_detail("temporary directory %s is not private", h->dir);
		return KHSM_EIO;
	}
	h->fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (h->fd < 0 || write_all(h->fd, data, len) != 0) {
		khsm_err_detail("cannot write %s: %s", h->path, strerror(errno));
		return KHSM_EIO;
	}
	return KHSM_EOK;
}

_public_
int khsm_handoff_new(const char *tmpdir, const char *name, const void *data, size_t len,
                     khsm_handoff_t **handoff_ptr)
{
	if (!name || strchr(name, '/') || (!data && len) || !handoff_ptr) {
		return KHSM_EINVAL;
	}
	khsm_handoff_t *h = calloc(1, sizeof(*h));
	if (!h) {
		return KHSM_ENOMEM;
	}
	h->fd = -1;
	h->len = len;
	int r = KHSM_ENOTSUP;
	if (children_reach_proc_fd()) {
		r = memfd_new(name, data, len, h);
	}
	if (r == KHSM_ENOTSUP) {
		r = file_new(tmpdir && *tmpdir ? tmpdir : "/tmp", name, data, len, h);
	}
	if (r != KHSM_EOK) {
		khsm_handoff_free(h);
		return r;
	}
	*handoff_ptr = h;
	return KHSM_EOK;
}

_public_
const char *khsm_handoff_path(const khsm_handoff_t *h)
{
	return h ? h->path : NULL;
}

_public_
const char *khsm_handoff_dir(const khsm_handoff_t *h)
{
	return h && h->dir[0] ? h->dir : NULL;
}

/* Overwrite a regular file's bytes through its descriptor. */
static void wipe_fd(int fd, size_t len)
{
	char zero[512] = { 0 };
	for (size_t off = 0; off < len;) {
		size_t n = len - off < sizeof(zero) ? len - off : sizeof(zero);
		ssize_t w = pwrite(fd, zero, n, (off_t)off);
		if (w <= 0) break;
		off += (size_t)w;
	}
	(void)fdatasync(fd);
}

_public_
void khsm_handoff_free(khsm_handoff_t *h)
{
	if (!h) {
		return;
	}
	if (h->fd >= 0) {
		wipe_fd(h->fd, h->len);
		close(h->fd);
	}
	if (h->dir[0]) {
		(void)unlink(h->path);
		(void)rmdir(h->dir);
	}
	explicit_bzero(h, sizeof(*h));
	free(h);
}

/* Is the run that made STALE_PREFIX<pid>.XXXXXX gone? Names without a pid
 * (knot-hsm before 0.2: STALE_PREFIX XXXXXX) count as gone. */
static bool run_gone(const char *name, const char *prefix)
{
	const char *p = name + strlen(prefix);
	const char *dot = strchr(p, '.');
	if (!dot) {
		return true;
	}
	char digits[16];
	size_t n = (size_t)(dot - p);
	if (n == 0 || n >= sizeof(digits)) {
		return true;
	}
	memcpy(digits, p, n);
	digits[n] = '\0';
	uint64_t pid;
	if (!khsm_parse_u64(digits, INT_MAX, &pid)) {
		return true;
	}
	if ((pid_t)pid == getpid()) {
		return false;
	}
	return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int remove_stale(int tfd, const char *name)
{
	int dfd = openat(tfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		return -1;
	}
	DIR *d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
		struct stat st;
		if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
			int fd = openat(dfd, e->d_name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
			if (fd >= 0) {
				wipe_fd(fd, (size_t)st.st_size);
				close(fd);
			}
		}
		(void)unlinkat(dfd, e->d_name, 0);
	}
	closedir(d);
	return unlinkat(tfd, name, AT_REMOVEDIR);
}

static int run_dir(const char *tmpdir, const char *prefix, size_t name_len, char **dir_ptr)
{
	if (!dir_ptr) {
		return KHSM_EINVAL;
	}
	char *dir = malloc(PATH_MAX);
	if (!dir) return KHSM_ENOMEM;
	int r = private_dir(tmpdir && *tmpdir ? tmpdir : "/tmp", prefix, name_len, dir);
	if (r != KHSM_EOK) {
		free(dir);
		return r;
	}
	*dir_ptr = dir;
	return KHSM_EOK;
}

_public_
int khsm_handoff_empty_dir(const char *tmpdir, char **dir_ptr)
{
	return run_dir(tmpdir, EMPTY_PREFIX, 0, dir_ptr);
}

_public_
int khsm_handoff_socket_dir(const char *tmpdir, char **dir_ptr)
{
	return run_dir(tmpdir, SERVE_PREFIX, 0, dir_ptr);
}

_public_
int khsm_handoff_clean_stale(const char *tmpdir, unsigned *removed_ptr)
{
	const char *dir = tmpdir && *tmpdir ? tmpdir : "/tmp";
	unsigned removed = 0;
	int tfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (tfd < 0) {
		khsm_err_detail("cannot read %s: %s", dir, strerror(errno));
		return KHSM_EIO;
	}
	DIR *d = fdopendir(tfd);
	if (!d) {
		close(tfd);
		return KHSM_ENOMEM;
	}
	struct dirent *e;
	while ((e = readdir(d))) {
		/* an empty or a socket directory is removed too, but holds no PIN:
		 * not counted */
		static const char *const prefixes[] = { STALE_PREFIX, EMPTY_PREFIX, SERVE_PREFIX };
		size_t k = 0;
		while (k < KHSM_ARRAY_SIZE(prefixes) && strncmp(e->d_name, prefixes[k], strlen(prefixes[k])) != 0) {
			k++;
		}
		if (k == KHSM_ARRAY_SIZE(prefixes)) continue;
		const char *prefix = prefixes[k];
		bool empty = k > 0;
		struct stat st;
		if (fstatat(tfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode) ||
		    st.st_uid != geteuid() || !run_gone(e->d_name, prefix)) {
			continue;   /* a symlink, another user's, or a run still alive */
		}
		if (remove_stale(tfd, e->d_name) == 0 && !empty) {
			removed++;
		}
	}
	closedir(d);
	if (removed_ptr) {
		*removed_ptr = removed;
	}
	return KHSM_EOK;
}
