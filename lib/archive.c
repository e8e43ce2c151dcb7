/* Ceremony archive directories and files, created without following symlinks. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "archive.h"
#include "error.h"
#include "files.h"
#include "internal.h"

/* A directory we may write records into: reached without a final symlink,
 * owned by us or root, writable by no one else. */
static int check_dir(const char *path, bool ours)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP || errno == ENOTDIR) {
			khsm_err_detail("archive directory %s is a symbolic link or not a directory; "
			                "knot-hsm never follows one there: remove it and rerun", path);
			return KHSM_EPERM;
		}
		khsm_err_detail("cannot open %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		khsm_err_detail("cannot stat %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	bool owner_ok = st.st_uid == geteuid() || (!ours && st.st_uid == 0);
	if (!owner_ok || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		khsm_err_detail("archive directory %s (owner uid %u, mode %04o) can be written by "
		                "another user, who could swap the records; chown it to the user "
		                "running the ceremony and chmod 0750", path, (unsigned)st.st_uid,
		                (unsigned)(st.st_mode & 07777));
		return KHSM_EPERM;
	}
	return KHSM_EOK;
}

_public_
int khsm_archive_base(const char *base)
{
	if (!base) {
		return KHSM_EINVAL;
	}
	if (mkdir(base, 0750) != 0 && errno != EEXIST) {
		khsm_err_detail("cannot create %s: %s", base, strerror(errno));
		return KHSM_EIO;
	}
	return check_dir(base, false);
}

_public_
int khsm_archive_open(const char *kasp_db, char **base_ptr)
{
	if (!kasp_db || !base_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *parent = khsm_path_dir(kasp_db);
	_cleanup_free_ char *base = NULL;
	if (!parent || asprintf(&base, "%s/knot-hsm-archive", parent) < 0) {
		base = NULL;
		return KHSM_ENOMEM;
	}
	int r = khsm_file_mkdir_p(parent, 0750);
	if (r == KHSM_EOK) {
		r = khsm_archive_base(base);
	}
	if (r != KHSM_EOK) {
		return r;
	}
	*base_ptr = KHSM_STEAL(base);
	return KHSM_EOK;
}

_public_
int khsm_archive_claim(const char *base, int64_t now, char **dir_ptr)
{
	if (!base || !dir_ptr) {
		return KHSM_EINVAL;
	}
	char day[16];
	time_t tt = (time_t)now;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || strftime(day, sizeof(day), "%Y-%m-%d", &tm) == 0) {
		return KHSM_EINVAL;
	}
	for (unsigned n = 1; n <= 999; n++) {
		char *dir = NULL;
		int len = n == 1 ? asprintf(&dir, "%s/%s", base, day) : asprintf(&dir, "%s/%s.%u", base, day, n);
		if (len < 0) {
			return KHSM_ENOMEM;
		}
		if (mkdir(dir, 0750) == 0) {
			/* Ours, just made: check what the path now names all the same. */
			int r = check_dir(dir, true);
			if (r != KHSM_EOK) {
				free(dir);
				return r;
			}
			*dir_ptr = dir;
			return KHSM_EOK;
		}
		int err = errno;
		free(dir);
		if (err != EEXIST) {
			khsm_err_detail("cannot create a directory in %s: %s", base, strerror(err));
			return KHSM_EIO;
		}
	}
	khsm_err_detail("%s has 999 ceremony directories for %s; move old ones away", base, day);
	return KHSM_EIO;
}

_public_
int khsm_archive_write(const char *path, const char *data, size_t len, unsigned mode)
{
	if (!path || (!data && len)) {
		return KHSM_EINVAL;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, (mode_t)mode);
	if (fd < 0) {
		khsm_err_detail("cannot create %s: %s%s", path, strerror(errno),
		                errno == EEXIST ? " (an archive record is never replaced; something "
		                "else made this entry: look at it)" : "");
		return KHSM_EIO;
	}
	bool ok = fchmod(fd, (mode_t)mode) == 0 && khsm_file_write_all(fd, data, len) == KHSM_EOK &&
	          fsync(fd) == 0;
	int err = errno;
	ok = close(fd) == 0 && ok;
	if (!ok) {
		unlink(path);
		khsm_err_detail("cannot write %s: %s", path, strerror(err));
		return KHSM_EIO;
	}
	return KHSM_EOK;
}
