/* Per-zone ceremony locks: flock on DIR/.lock/<zone>.lock. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "ceremony.h"
#include "error.h"
#include "internal.h"
#include "zonelock.h"

#define DEFAULT_WAIT_MS 600000u

struct khsm_zonelock {
	size_t n;
	int fds[];
};

_public_
unsigned khsm_zonelock_wait_ms(void)
{
	uint64_t v;
	return khsm_parse_u64(getenv("KHSM_CEREMONY_WAIT_MS"), 86400000, &v) ? (unsigned)v
	                                                                      : DEFAULT_WAIT_MS;
}

_public_
void khsm_zonelock_release(khsm_zonelock_t *lock)
{
	if (!lock) {
		return;
	}
	for (size_t i = 0; i < lock->n; i++) {
		if (lock->fds[i] >= 0) {
			close(lock->fds[i]);   /* releases the flock */
		}
	}
	free(lock);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* DIR/.lock, ours, not a symlink, not open to others. */
static int lock_dir(const char *dir, int *dfd_ptr)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/.lock", dir) < 0) {
		return KHSM_ENOMEM;
	}
	if (mkdir(path, 0770) != 0 && errno != EEXIST) {
		khsm_err_detail("cannot create %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (dfd < 0 || fstat(dfd, &st) != 0) {
		khsm_err_detail("ceremony lock directory %s: %s%s", path, strerror(errno),
		                errno == ELOOP || errno == ENOTDIR ? "; knot-hsm never follows a "
		                "symlink there: remove it" : "");
		if (dfd >= 0) close(dfd);
		return KHSM_EPERM;
	}
	if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & S_IWOTH)) {
		khsm_err_detail("ceremony lock directory %s (uid %u, mode %04o) is open to other "
		                "users; remove it and rerun", path, (unsigned)st.st_uid,
		                (unsigned)(st.st_mode & 07777));
		close(dfd);
		return KHSM_EPERM;
	}
	*dfd_ptr = dfd;
	return KHSM_EOK;
}

static pid_t read_holder(int fd)
{
	char buf[32] = { 0 };
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	uint64_t pid;
	if (n > 0 && buf[n - 1] == '\n') buf[n - 1] = '\0';
	return n > 0 && khsm_parse_u64(buf, INT32_MAX, &pid) ? (pid_t)pid : 0;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

static int lock_one(int dfd, const char *dir, const char *zone, unsigned wait_ms,
                    khsm_zonelock_notify_t notify, void *data, int *fd_ptr)
{
	_cleanup_free_ char *stem = NULL;
	_cleanup_free_ char *name = NULL;
	int r = khsm_ceremony_file_stem(zone, &stem);
	if (r != KHSM_EOK) return r;
	if (asprintf(&name, "%s.lock", stem) < 0) return KHSM_ENOMEM;
	int fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0660);
	if (fd < 0 && errno == EEXIST) {
		fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	}
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		khsm_err_detail("ceremony lock %s/.lock/%s: %s; remove it and rerun", dir, name,
		                fd < 0 ? strerror(errno) : "not a regular file of yours or root's");
		if (fd >= 0) close(fd);
		return KHSM_EPERM;
	}
	unsigned waited = 0, step = 10;
	bool told = false;
	while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR) continue;
		if (errno != EWOULDBLOCK) {
			khsm_err_detail("cannot lock %s/.lock/%s: %s", dir, name, strerror(errno));
			close(fd);
			return KHSM_EIO;
		}
		pid_t holder = read_holder(fd);
		if (waited >= wait_ms) {
			char who[48] = "";
			if (holder > 0) snprintf(who, sizeof(who), " (pid %d)", (int)holder);
			khsm_err_detail("another ceremony%s is running on %s; it pre-signs and imports "
			                "that zone: wait for it to finish, then rerun (zones it covered "
			                "are skipped)", who, zone);
			close(fd);
			return KHSM_EBUSY;
		}
		if (!told && notify) {
			notify(zone, holder, wait_ms, data);
		}
		told = true;
		unsigned d = step < wait_ms - waited ? step : wait_ms - waited;
		sleep_ms(d);
		waited += d;
		step = step < 200 ? step * 2 : 200;
	}
	/* Ours: say who holds it, for a run that has to wait. */
	char pid[24];
	int len = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
		/* only the message of a waiting run loses the pid */
	}
	*fd_ptr = fd;
	return KHSM_EOK;
}

_public_
int khsm_zonelock_take(const char *dir, const char *const *zones, size_t n, unsigned wait_ms,
                       khsm_zonelock_notify_t notify, void *data, khsm_zonelock_t **lock_ptr)
{
	if (!dir || (!zones && n) || !lock_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ const char **sorted = calloc(n ? n : 1, sizeof(*sorted));
	khsm_zonelock_t *lock = calloc(1, sizeof(*lock) + (n ? n : 1) * sizeof(int));
	if (!sorted || !lock) {
		free(lock);
		return KHSM_ENOMEM;
	}
	memcpy(sorted, zones, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	_cleanup_close_ int dfd = -1;
	int r = lock_dir(dir, &dfd);
	for (size_t i = 0; r == KHSM_EOK && i < n; i++) {
		if (i > 0 && strcmp(sorted[i], sorted[i - 1]) == 0) {
			continue;   /* a zone named twice is locked once */
		}
		int fd = -1;
		r = lock_one(dfd, dir, sorted[i], wait_ms, notify, data, &fd);
		if (r == KHSM_EOK) {
			lock->fds[lock->n++] = fd;
		}
	}
	if (r != KHSM_EOK) {
		khsm_zonelock_release(lock);
		return r;
	}
	*lock_ptr = lock;
	return KHSM_EOK;
}
