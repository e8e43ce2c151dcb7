/* Files and paths, never through a symbolic link where knot-hsm writes. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include "files.h"
#include "internal.h"

static void read_detail(const khsm_file_read_opts_t *o, const char *path, const char *why)
{
	if (o->what) {
		khsm_err_detail("cannot read the %s %s: %s", o->what, path, why);
	} else {
		khsm_err_detail("cannot read %s: %s", path, why);
	}
}

_public_
int khsm_file_read(const char *path, const khsm_file_read_opts_t *opts,
                   char **text_ptr, size_t *len_ptr, struct stat *st_ptr)
{
	if (!path || !text_ptr) {
		return KHSM_EINVAL;
	}
	const khsm_file_read_opts_t o = opts ? *opts : (khsm_file_read_opts_t) { 0 };
	const size_t max = o.max ? o.max : KHSM_FILE_MAX;
	/* O_NONBLOCK: a FIFO at the path does not hang the open. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
	                                    (o.nofollow ? O_NOFOLLOW : 0));
	if (fd < 0) {
		int e = errno;
		if (o.nofollow && e == ELOOP) {
			khsm_err_detail("%s is a symbolic link; knot-hsm does not follow one there: give the "
			                "path of the file itself", path);
			return KHSM_EPERM;
		}
		read_detail(&o, path, strerror(e));
		return e == ENOENT ? KHSM_ENOENT : KHSM_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		read_detail(&o, path, "not a regular file");
		return KHSM_EIO;
	}
	if (o.lock_shared) {
		while (flock(fd, LOCK_SH) != 0 && errno == EINTR) {
		}
	}
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			/* Room for one byte past the cap: that byte says "too large". */
			size_t want = cap ? 2 * cap : 65536;
			if (want > max + 1) want = max + 1;
			if (want <= len) {
				khsm_err_detail("%s is larger than %zu bytes; knot-hsm does not read it whole",
				                path, max);
				return KHSM_ERANGE;
			}
			char *n = realloc(buf, want + 1);
			if (!n) {
				return KHSM_ENOMEM;
			}
			buf = n;
			cap = want;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) {
			read_detail(&o, path, strerror(errno));
			return KHSM_EIO;
		}
		if (n == 0) break;
		len += (size_t)n;
	}
	if (len > max) {
		khsm_err_detail("%s is larger than %zu bytes; knot-hsm does not read it whole", path, max);
		return KHSM_ERANGE;
	}
	buf[len] = '\0';
	*text_ptr = KHSM_STEAL(buf);
	if (len_ptr) *len_ptr = len;
	if (st_ptr) *st_ptr = st;
	return KHSM_EOK;
}

_public_
int khsm_file_write_all(int fd, const void *data, size_t len)
{
	const char *p = data;
	for (size_t off = 0; off < len;) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR) continue;
		if (w <= 0) {
			if (w == 0) errno = EIO;
			return KHSM_EIO;
		}
		off += (size_t)w;
	}
	return KHSM_EOK;
}

_public_
int khsm_file_refuse_special(const char *path, const struct stat *st)
{
	if (S_ISLNK(st->st_mode)) {
		khsm_err_detail("%s is a symbolic link; knot-hsm never writes through a link: remove it, "
		                "or give the path of the file itself", path);
		return KHSM_EPERM;
	}
	if (!S_ISREG(st->st_mode)) {
		khsm_err_detail("%s exists and is not a regular file; remove it or choose another path", path);
		return KHSM_EPERM;
	}
	return KHSM_EOK;
}

_public_
int khsm_path_split(const char *path, char **dir_ptr, char **base_ptr)
{
	if (!path || !dir_ptr || !base_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *copy = strdup(path);
	if (!copy) {
		return KHSM_ENOMEM;
	}
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/') {
		copy[--len] = '\0';
	}
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		khsm_err_detail("'%s' does not name a file", path);
		return KHSM_EINVAL;
	}
	char *b = strdup(base);
	char *dir = !slash ? strdup(".") : slash == copy ? strdup("/") : strndup(copy, (size_t)(slash - copy));
	if (!b || !dir) {
		free(b);
		free(dir);
		return KHSM_ENOMEM;
	}
	*dir_ptr = dir;
	*base_ptr = b;
	return KHSM_EOK;
}

_public_
char *khsm_path_dir(const char *path)
{
	_cleanup_free_ char *copy = path ? strdup(path) : NULL;
	return copy ? strdup(dirname(copy)) : NULL;
}

_public_
int khsm_path_absolute(const char *path, const char *base_dir, char **abs_ptr)
{
	if (!path || !base_dir || !abs_ptr) {
		return KHSM_EINVAL;
	}
	char *out = NULL;
	if (path[0] == '/') {
		out = strdup(path);
	} else {
		size_t blen = strlen(base_dir);
		while (blen > 1 && base_dir[blen - 1] == '/') {
			blen--;
		}
		if (asprintf(&out, "%.*s%s%s", (int)blen, base_dir,
		             (blen == 1 && base_dir[0] == '/') ? "" : "/", path) < 0) {
			out = NULL;
		}
	}
	if (!out) {
		return KHSM_ENOMEM;
	}
	*abs_ptr = out;
	return KHSM_EOK;
}

_public_
bool khsm_path_same_file(const char *a, const char *b)
{
	if (!a || !b) return false;
	if (strcmp(a, b) == 0) return true;
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* A fresh temporary file in dfd: ".BASE.XXXXXXXX", created exclusively and
 * never through a link (an entry planted at the name is skipped).
 * \return the descriptor, or KHSM_ENOMEM / KHSM_EIO with errno set. */
static int open_temp(int dfd, const char *base, char **name_ptr)
{
	for (int tries = 0; tries < 100; tries++) {
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
			rnd ^= (uint32_t)getpid() * 2654435761u + (uint32_t)tries;
		}
		char *name = NULL;
		if (asprintf(&name, ".%s.%08" PRIx32, base, rnd) < 0) {
			return KHSM_ENOMEM;
		}
		int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0) {
			*name_ptr = name;
			return fd;
		}
		int e = errno;
		free(name);
		if (e != EEXIST) {
			errno = e;
			return KHSM_EIO;
		}
	}
	errno = EEXIST;
	return KHSM_EIO;
}

_public_
int khsm_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                           unsigned flags)
{
	if (!path || (!data && len)) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *dir = NULL, *base = NULL, *tmp = NULL;
	int r = khsm_path_split(path, &dir, &base);
	if (r != KHSM_EOK) {
		return r;
	}
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat dst, st;
	if (dfd < 0 || fstat(dfd, &dst) != 0) {
		khsm_err_detail("cannot open the directory %s: %s", dir, strerror(errno));
		if (dfd >= 0) close(dfd);
		return KHSM_EIO;
	}
	int fd = -1;
	const char *what = "write";
	/* The target as it is now: a link or a device is refused before anything. */
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (r = khsm_file_refuse_special(path, &st)) != KHSM_EOK) {
		goto fail;
	}
	r = KHSM_EIO;
	fd = open_temp(dfd, base, &tmp);
	if (fd < 0) {
		r = fd == KHSM_ENOMEM ? KHSM_ENOMEM : KHSM_EIO;
		fd = -1;
		what = "create a file next to";
		goto fail;
	}
	/* Mode and group through the descriptor, never through a path. */
	if (fchmod(fd, (mode_t)mode) != 0 ||
	    ((flags & KHSM_FILE_DIR_GROUP) && geteuid() == 0 && fchown(fd, (uid_t)-1, dst.st_gid) != 0)) {
		what = "set the mode and group of";
		goto fail;
	}
	if (khsm_file_write_all(fd, data, len) != KHSM_EOK || fsync(fd) != 0) {
		goto fail;
	}
	int c = close(fd);
	fd = -1;
	if (c != 0) goto fail;
	/* Again just before the rename: a link planted meanwhile is refused. */
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (r = khsm_file_refuse_special(path, &st)) != KHSM_EOK) {
		goto fail;
	}
	r = KHSM_EIO;
	if (renameat(dfd, tmp, dfd, base) != 0) goto fail;
	free(tmp);
	tmp = NULL;
	fsync(dfd);
	close(dfd);
	return KHSM_EOK;
fail:
	if (r == KHSM_EIO) {
		khsm_err_detail("cannot %s %s: %s", what, path, strerror(errno));
	}
	if (fd >= 0) close(fd);
	if (tmp) unlinkat(dfd, tmp, 0);
	close(dfd);
	return r;
}

/* A symbolic link (its lstat in link_st) in the directory dfd that no one
 * but root and this user could have made or could swap: owned by one of
 * them, in a directory owned by one of them that group and others cannot
 * write. A link the knot user planted fails this when root runs. */
static bool trusted_link(int dfd, const struct stat *link_st)
{
	uid_t me = geteuid();
	struct stat dir;
	if (fstat(dfd, &dir) != 0) {
		return false;
	}
	return (link_st->st_uid == 0 || link_st->st_uid == me) &&
	       (dir.st_uid == 0 || dir.st_uid == me) && !(dir.st_mode & (S_IWGRP | S_IWOTH));
}

_public_
int khsm_file_mkdir_p(const char *path, unsigned mode)
{
	if (!path || !*path) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *copy = strdup(path);
	if (!copy) {
		return KHSM_ENOMEM;
	}
	const char *start = path[0] == '/' ? "/" : ".";
	int dfd = open(start, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		khsm_err_detail("cannot open %s: %s", start, strerror(errno));
		return KHSM_EIO;
	}
	int r = KHSM_EOK;
	char *save = NULL;
	for (char *comp = strtok_r(copy, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		/* The path up to and with this component, for the messages. */
		int upto = (int)(comp - copy + (ptrdiff_t)strlen(comp));
		if (mkdirat(dfd, comp, (mode_t)mode) != 0 && errno != EEXIST) {
			khsm_err_detail("cannot create %.*s: %s", upto, path, strerror(errno));
			r = KHSM_EIO;
			break;
		}
		int fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		struct stat st;
		bool link = fd < 0 && fstatat(dfd, comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
		bool trusted = link && trusted_link(dfd, &st);
		if (trusted) {
			/* e.g. /var/lib/knot -> /srv/knot, made by root */
			fd = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			e = errno;
		}
		if (fd < 0) {
			if (link && !trusted) {
				khsm_err_detail("%.*s is a symbolic link that root (or this user) did not make, or "
				                "in a directory others can write; knot-hsm does not follow it where "
				                "it makes directories: replace it with a directory, or give the "
				                "real path", upto, path);
				r = KHSM_EPERM;
			} else if (e == ENOTDIR) {
				khsm_err_detail("%.*s is not a directory; replace it with a directory", upto, path);
				r = KHSM_EPERM;
			} else {
				khsm_err_detail("cannot open %.*s: %s", upto, path, strerror(e));
				r = KHSM_EIO;
			}
			break;
		}
		close(dfd);
		dfd = fd;
	}
	close(dfd);
	return r;
}

static pthread_once_t knot_ids_once = PTHREAD_ONCE_INIT;
static bool knot_found;
static uid_t knot_uid;
static gid_t knot_gid;

static void knot_ids_lookup(void)
{
	struct passwd *pw = getpwnam("knot");
	if (!pw) return;
	struct group *gr = getgrnam("knot");
	knot_uid = pw->pw_uid;
	knot_gid = gr ? gr->gr_gid : (gid_t)-1;   /* never another group by default */
	knot_found = true;
}

_public_
bool khsm_knot_ids(uid_t *uid_ptr, gid_t *gid_ptr)
{
	pthread_once(&knot_ids_once, knot_ids_lookup);
	if (uid_ptr) *uid_ptr = knot_found ? knot_uid : (uid_t)-1;
	if (gid_ptr) *gid_ptr = knot_found ? knot_gid : (gid_t)-1;
	return knot_found;
}
