/* Audit log: hash-chained JSON lines, appended under flock; the head and its anchor. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libgen.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "audit.h"
#include "audit_internal.h"
#include "error.h"
#include "internal.h"
#include "json.h"
#include "timefmt.h"

/* Longest last line read back before appending; anything longer is damage. */
#define TAIL_MAX (1024 * 1024)

_public_
int khsm_audit_hash(const char *line, size_t len, char *out)
{
	unsigned char digest[32];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, line, len, digest) != 0) {
		khsm_err_detail("SHA-256 failed");
		return KHSM_ECRYPTO;
	}
	static const char HEX[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(digest); i++) {
		out[2 * i] = HEX[digest[i] >> 4];
		out[2 * i + 1] = HEX[digest[i] & 0xf];
	}
	out[64] = '\0';
	return KHSM_EOK;
}

int khsm_audit_json_string(const char *s, size_t len, char **json_ptr)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);
	if (!f) return KHSM_ENOMEM;
	khsm_json_string_n(f, s, len);
	if (fclose(f) != 0) {
		free(out);
		return KHSM_ENOMEM;
	}
	*json_ptr = out;
	return KHSM_EOK;
}

/* -- writing -- */

/* "uid N (name)" for messages. */
static void uid_text(uid_t uid, char *buf, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res) {
		snprintf(buf, size, "%s (uid %lu)", res->pw_name, (unsigned long)uid);
	} else {
		snprintf(buf, size, "uid %lu", (unsigned long)uid);
	}
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m)) return "a directory";
	if (S_ISFIFO(m)) return "a FIFO";
	if (S_ISSOCK(m)) return "a socket";
	if (S_ISCHR(m)) return "a character device";
	if (S_ISBLK(m)) return "a block device";
	if (S_ISLNK(m)) return "a symbolic link";
	return "not a regular file";
}

_public_
int khsm_audit_open_file(const char *path, const char *what, khsm_audit_file_t kind, int *fd_ptr)
{
	if (!path || !what || !fd_ptr || path[0] != '/') {
		khsm_err_detail("the %s needs an absolute path", what ? what : "file");
		return KHSM_EINVAL;
	}
	bool root_only = kind == KHSM_AUDIT_FILE_ROOT;
	char *dir = strdup(path);
	if (!dir) return KHSM_ENOMEM;
	char *slash = strrchr(dir, '/');
	const char *base = path + (slash - dir) + 1;
	*slash = '\0';
	if (*base == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
		khsm_err_detail("cannot open the %s %s: the path names a directory", what, path);
		free(dir);
		return KHSM_EINVAL;
	}
	int r = KHSM_EOK;
	int fd = -1;
	bool created = false;
	struct stat dst, st;
	char who[128], dir_who[128];
	int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 || fstat(dfd, &dst) != 0) {
		int e = errno;
		khsm_err_detail("cannot open the %s %s: its directory %s: %s", what, path, *dir ? dir : "/",
		                strerror(e));
		r = e == EACCES || e == EPERM ? KHSM_EPERM : KHSM_EIO;
		goto fail;
	}
	uid_text(dst.st_uid, dir_who, sizeof(dir_who));
	if (root_only && (dst.st_uid != 0 || (dst.st_mode & (S_IWGRP | S_IWOTH)))) {
		khsm_err_detail("cannot open the %s %s: its directory %s must belong to root and be "
		                "writable by root only (it is %s, mode %04o): use a directory such as "
		                "/var/log/knot-hsm (install -d -o root -g root -m 0755)", what, path,
		                *dir ? dir : "/", dir_who, (unsigned)(dst.st_mode & 07777));
		r = KHSM_EPERM;
		goto fail;
	}
	/* O_NOFOLLOW: a symbolic link planted in the directory is never followed;
	 * O_NONBLOCK: a FIFO does not hang us before it is refused below. */
	const int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK;
	const mode_t mode = root_only ? 0644 : 0660;
	fd = openat(dfd, base, flags);
	if (fd < 0 && errno == ENOENT) {
		fd = openat(dfd, base, flags | O_CREAT | O_EXCL, mode);
		created = fd >= 0;
		if (fd < 0 && errno == EEXIST) fd = openat(dfd, base, flags);
	}
	if (fd < 0) {
		int e = errno;
		struct stat lst;
		if (e == ELOOP || (fstatat(dfd, base, &lst, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(lst.st_mode))) {
			khsm_err_detail("cannot open the %s %s: it is a symbolic link, never followed "
			                "(someone who can write %s may have planted it): remove it", what, path,
			                *dir ? dir : "/");
			r = KHSM_EPERM;
		} else if (e == EISDIR) {
			khsm_err_detail("cannot open the %s %s: it is a directory", what, path);
			r = KHSM_EIO;
		} else {
			khsm_err_detail("cannot open the %s %s for appending: %s", what, path, strerror(e));
			r = e == EACCES || e == EPERM || e == EROFS ? KHSM_EPERM : KHSM_EIO;
		}
		goto fail;
	}
	if (fstat(fd, &st) != 0) {
		khsm_err_detail("cannot open the %s %s: %s", what, path, strerror(errno));
		r = KHSM_EIO;
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		khsm_err_detail("cannot open the %s %s: it is %s, not a regular file: remove it", what, path,
		                file_kind(st.st_mode));
		r = KHSM_EIO;
		goto fail;
	}
	uid_text(st.st_uid, who, sizeof(who));
	uid_t me = geteuid();
	/* A directory shared by group (Debian's /var/lib/knot, root:knot 0770):
	 * a file of that group is the service's own. */
	bool group_ok = (dst.st_mode & S_IWGRP) && st.st_gid == dst.st_gid;
	if (root_only ? st.st_uid != 0
	              : (st.st_uid != 0 && st.st_uid != me && st.st_uid != dst.st_uid && !group_ok)) {
		char me_who[128];
		uid_text(me, me_who, sizeof(me_who));
		if (root_only) {
			khsm_err_detail("cannot open the %s %s: it belongs to %s, expected root: remove it", what,
			                path, who);
		} else {
			khsm_err_detail("cannot open the %s %s: it belongs to %s, expected root, %s (this "
			                "process) or %s (the owner of %s), or group %lu when the directory is "
			                "writable by that group: remove it or chown it", what, path, who, me_who,
			                dir_who, *dir ? dir : "/", (unsigned long)dst.st_gid);
		}
		r = KHSM_EPERM;
		goto fail;
	}
	if (st.st_nlink != 1) {
		khsm_err_detail("cannot open the %s %s: it has %lu hard links, expected 1 (a link to "
		                "another file is never appended to): remove it", what, path,
		                (unsigned long)st.st_nlink);
		r = KHSM_EPERM;
		goto fail;
	}
	if (fcntl(fd, F_SETFL, O_APPEND) != 0) {
		khsm_err_detail("cannot open the %s %s: %s", what, path, strerror(errno));
		r = KHSM_EIO;
		goto fail;
	}
	if (created) {
		/* The mode whatever the umask; through the descriptor, never the path. */
		(void)fchmod(fd, mode);
		if (!root_only && me == 0 && (dst.st_uid != 0 || dst.st_gid != 0)) {
			/* knotd (the directory's owner) must append to a file root created.
			 * Best effort: a failure leaves root:root, which doctor reports. */
			if (fchown(fd, dst.st_uid, dst.st_gid) != 0) {
				(void)0;
			}
		}
	}
	close(dfd);
	free(dir);
	*fd_ptr = fd;
	return KHSM_EOK;
fail:
	if (fd >= 0) close(fd);
	if (dfd >= 0) close(dfd);
	free(dir);
	return r;
}

_public_
int khsm_audit_open(const char *path, int *fd_ptr)
{
	return khsm_audit_open_file(path, "audit log", KHSM_AUDIT_FILE_SHARED, fd_ptr);
}

/* The last line of the file (without its newline) and whether the file ends
 * with a newline. An empty file gives an empty line and complete = true.
 * When the last line is torn (no newline), before gets the hash of the line
 * before it (the genesis hash when there is none). */
static int read_last_line(int fd, char **line_ptr, size_t *len_ptr, bool *complete_ptr, char *before)
{
	struct stat st;
	if (fstat(fd, &st) != 0) {
		khsm_err_detail("cannot stat the audit log: %s", strerror(errno));
		return KHSM_EIO;
	}
	off_t size = st.st_size;
	*complete_ptr = true;
	if (size == 0) {
		*line_ptr = NULL;
		*len_ptr = 0;
		return KHSM_EOK;
	}
	size_t want = size < 2 * TAIL_MAX ? (size_t)size : 2 * TAIL_MAX;
	char *buf = malloc(want);
	if (!buf) return KHSM_ENOMEM;
	size_t got = 0;
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, size - (off_t)want + (off_t)got);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			khsm_err_detail("cannot read the audit log: %s", n < 0 ? strerror(errno) : "short read");
			free(buf);
			return KHSM_EIO;
		}
		got += (size_t)n;
	}
	size_t end = want;
	if (buf[end - 1] == '\n') {
		end--;
	} else {
		*complete_ptr = false;
	}
	size_t start = end;
	while (start > 0 && buf[start - 1] != '\n') start--;
	if ((start == 0 && (size_t)size > want) || end - start > TAIL_MAX) {
		khsm_err_detail("the last line of the audit log is longer than %d bytes", TAIL_MAX);
		free(buf);
		return KHSM_EPARSE;
	}
	int r = KHSM_EOK;
	if (!*complete_ptr) {
		if (start == 0) {
			r = khsm_audit_genesis_hash(before);
		} else {
			size_t pend = start - 1, pstart = pend;
			while (pstart > 0 && buf[pstart - 1] != '\n') pstart--;
			if (pstart == 0 && (size_t)size > want) {
				khsm_err_detail("the line before the torn last line of the audit log is too long");
				r = KHSM_EPARSE;
			} else {
				r = khsm_audit_hash(buf + pstart, pend - pstart, before);
			}
		}
	}
	if (r != KHSM_EOK) {
		free(buf);
		return r;
	}
	memmove(buf, buf + start, end - start);
	*line_ptr = buf;
	*len_ptr = end - start;
	return KHSM_EOK;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) {
			khsm_err_detail("cannot write the audit log: %s", n < 0 ? strerror(errno) : "short write");
			return KHSM_EIO;
		}
		data += n;
		len -= (size_t)n;
	}
	return KHSM_EOK;
}

_public_
int khsm_audit_append(int fd, const char *body, bool sync)
{
	if (fd < 0 || !body || strpbrk(body, "\n\r")) {
		khsm_err_detail("an audit line must not contain a newline");
		return KHSM_EINVAL;
	}
	while (flock(fd, LOCK_EX) != 0) {
		if (errno != EINTR) {
			khsm_err_detail("cannot lock the audit log: %s", strerror(errno));
			return KHSM_EIO;
		}
	}
	char *last = NULL;
	size_t last_len = 0;
	bool complete = true;
	char prev[KHSM_AUDIT_HASH_SIZE], before[KHSM_AUDIT_HASH_SIZE];
	char *line = NULL, *marker = NULL;
	int r = read_last_line(fd, &last, &last_len, &complete, before);
	if (r == KHSM_EOK) {
		r = last ? khsm_audit_hash(last, last_len, prev) : khsm_audit_genesis_hash(prev);
	}
	if (r == KHSM_EOK && !complete) {
		/* A torn last line (a full disk, a crash): end it, then a marker that
		 * chains to the line before it and names it by hash, so that verify
		 * reports an incident and goes on. */
		char when[40];
		khsm_time_iso_now_ms(when, sizeof(when));
		int n = asprintf(&marker, "{\"time\":\"%s\",\"pid\":%ld,\"fn\":\"audit_resync\",\"torn\":\"%s\","
		                 "\"torn_len\":%zu,\"prev\":\"%s\"}", when, (long)getpid(), prev, last_len, before);
		if (n < 0) {
			marker = NULL;
			r = KHSM_ENOMEM;
		} else {
			r = khsm_audit_hash(marker, (size_t)n, prev);
		}
	}
	if (r == KHSM_EOK) {
		int n = asprintf(&line, "%s%s%s{%s,\"prev\":\"%s\"}\n", complete ? "" : "\n",
		                 marker ? marker : "", marker ? "\n" : "", body, prev);
		r = n < 0 ? KHSM_ENOMEM : write_all(fd, line, (size_t)n);
	}
	if (r == KHSM_EOK && sync && fsync(fd) != 0) {
		khsm_err_detail("cannot fsync the audit log: %s", strerror(errno));
		r = KHSM_EIO;
	}
	flock(fd, LOCK_UN);
	free(last);
	free(line);
	free(marker);
	return r;
}

_public_
int khsm_audit_write(const char *path, const char *body, bool sync)
{
	if (!body || strpbrk(body, "\n\r")) {
		khsm_err_detail("an audit line must not contain a newline");
		return KHSM_EINVAL;
	}
	int fd = -1;
	int r = khsm_audit_open(path, &fd);
	if (r != KHSM_EOK) return r;
	r = khsm_audit_append(fd, body, sync);
	close(fd);
	return r;
}

/* -- the head and its anchor -- */

_public_
int khsm_audit_head(int fd, unsigned long *lines_ptr, char *head)
{
	if (fd < 0 || !lines_ptr || !head) return KHSM_EINVAL;
	while (flock(fd, LOCK_SH) != 0) {
		if (errno != EINTR) {
			khsm_err_detail("cannot lock the audit log: %s", strerror(errno));
			return KHSM_EIO;
		}
	}
	gnutls_hash_hd_t h = NULL;
	unsigned long lines = 0;
	bool have = false;   /* a complete line was hashed */
	unsigned char digest[32], last[32];
	char buf[65536];
	off_t off = 0;
	int r = gnutls_hash_init(&h, GNUTLS_DIG_SHA256) == 0 ? KHSM_EOK : KHSM_ECRYPTO;
	while (r == KHSM_EOK) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) {
			khsm_err_detail("cannot read the audit log: %s", strerror(errno));
			r = KHSM_EIO;
			break;
		}
		if (n == 0) break;
		off += n;
		const char *p = buf, *end = buf + n;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
			gnutls_hash(h, p, l);
			if (!nl) break;
			gnutls_hash_output(h, digest);   /* and resets */
			memcpy(last, digest, sizeof(last));
			have = true;
			lines++;
			p = nl + 1;
		}
	}
	flock(fd, LOCK_UN);
	if (h) gnutls_hash_deinit(h, NULL);
	if (r != KHSM_EOK) return r;
	if (!have) return khsm_audit_genesis_hash(head) == KHSM_EOK ? (*lines_ptr = 0, KHSM_EOK) : KHSM_ECRYPTO;
	static const char HEX[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(last); i++) {
		head[2 * i] = HEX[last[i] >> 4];
		head[2 * i + 1] = HEX[last[i] & 0xf];
	}
	head[64] = '\0';
	*lines_ptr = lines;
	return KHSM_EOK;
}

_public_
int khsm_audit_anchor_write(const char *anchor_path, unsigned long lines, const char *head,
                            const char *comm)
{
	int fd = -1;
	int r = khsm_audit_open_file(anchor_path, "audit anchor", KHSM_AUDIT_FILE_ROOT, &fd);
	if (r != KHSM_EOK) return r;
	char when[40];
	khsm_time_iso_now_ms(when, sizeof(when));
	char safe[64];
	size_t k = 0;
	for (const char *p = comm ? comm : "?"; *p && k < sizeof(safe) - 1; p++) {
		safe[k++] = (*p > ' ' && *p < 0x7f) ? *p : '_';
	}
	safe[k] = '\0';
	char *line = NULL;
	int n = asprintf(&line, "%s lines=%lu head=%s pid=%ld comm=%s\n", when, lines, head,
	                 (long)getpid(), k ? safe : "?");
	if (n < 0) {
		close(fd);
		return KHSM_ENOMEM;
	}
	while (flock(fd, LOCK_EX) != 0 && errno == EINTR) {
	}
	r = write_all(fd, line, (size_t)n);
	if (r == KHSM_EOK && fsync(fd) != 0) {
		khsm_err_detail("cannot fsync the audit anchor %s: %s", anchor_path, strerror(errno));
		r = KHSM_EIO;
	}
	flock(fd, LOCK_UN);
	close(fd);
	free(line);
	return r;
}
