/* Audit log: hash-chained JSON lines, appended under flock; verification. */
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
#include "error.h"
#include "internal.h"
#include "json.h"

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

static int genesis_hash(char *out)
{
	return khsm_audit_hash(KHSM_AUDIT_GENESIS, strlen(KHSM_AUDIT_GENESIS), out);
}

_public_
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
			r = genesis_hash(before);
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

/* UTC, milliseconds: 2026-11-22T04:59:06.817Z */
static void now_text(char *when, size_t size)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(when, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
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
		r = last ? khsm_audit_hash(last, last_len, prev) : genesis_hash(prev);
	}
	if (r == KHSM_EOK && !complete) {
		/* A torn last line (a full disk, a crash): end it, then a marker that
		 * chains to the line before it and names it by hash, so that verify
		 * reports an incident and goes on. */
		char when[40];
		now_text(when, sizeof(when));
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
	if (!have) return genesis_hash(head) == KHSM_EOK ? (*lines_ptr = 0, KHSM_EOK) : KHSM_ECRYPTO;
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
	now_text(when, sizeof(when));
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

/* -- reading: a strict parser for the JSON objects the guard writes -- */

typedef struct {
	const char *p;
	const char *end;
	int depth;
} cur_t;

/* Top-level members the summary uses; strings decoded, numbers and
 * booleans as their text. */
typedef struct {
	char *time, *comm, *fn, *label, *id, *mech, *rv, *prev, *software, *query, *pin, *user;
	char *pid, *slot, *session, *len, *card_mech, *intent, *torn;
} entry_t;

static void entry_clear(entry_t *e)
{
	char **fields[] = { &e->time, &e->comm, &e->fn, &e->label, &e->id, &e->mech, &e->rv, &e->prev,
	                    &e->software, &e->query, &e->pin, &e->user, &e->pid, &e->slot, &e->session,
	                    &e->len, &e->card_mech, &e->intent, &e->torn };
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(fields); i++) {
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

static char **entry_field(entry_t *e, const char *key)
{
	static const struct { const char *name; size_t off; } MAP[] = {
#define F(n) { #n, offsetof(entry_t, n) }
		F(time), F(comm), F(fn), F(label), F(id), F(mech), F(rv), F(prev), F(software),
		F(query), F(pin), F(user), F(pid), F(slot), F(session), F(len), F(card_mech), F(intent),
		F(torn),
#undef F
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(MAP); i++) {
		if (strcmp(MAP[i].name, key) == 0) {
			return (char **)((char *)e + MAP[i].off);
		}
	}
	return NULL;
}

static void skip_ws(cur_t *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* A string literal; *out (may be NULL: skip) gets the decoded text. */
static bool parse_string(cur_t *c, char **out)
{
	if (c->p >= c->end || *c->p != '"') return false;
	c->p++;
	size_t cap = (size_t)(c->end - c->p) * 3 + 1;
	char *buf = out ? malloc(cap) : NULL;
	if (out && !buf) return false;
	size_t n = 0;
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p++;
		if (ch < 0x20) goto bad;
		if (ch != '\\') {
			if (buf) buf[n++] = (char)ch;
			continue;
		}
		if (c->p >= c->end) goto bad;
		char esc = *c->p++;
		char lit = 0;
		switch (esc) {
		case '"': lit = '"'; break;
		case '\\': lit = '\\'; break;
		case '/': lit = '/'; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'u': {
			if (c->end - c->p < 4) goto bad;
			unsigned v = 0;
			for (int i = 0; i < 4; i++) {
				int h = hexval(c->p[i]);
				if (h < 0) goto bad;
				v = v << 4 | (unsigned)h;
			}
			c->p += 4;
			if (buf) {
				if (v < 0x80) {
					buf[n++] = (char)v;
				} else if (v < 0x800) {
					buf[n++] = (char)(0xc0 | v >> 6);
					buf[n++] = (char)(0x80 | (v & 0x3f));
				} else {
					buf[n++] = (char)(0xe0 | v >> 12);
					buf[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
					buf[n++] = (char)(0x80 | (v & 0x3f));
				}
			}
			continue;
		}
		default: goto bad;
		}
		if (buf) buf[n++] = lit;
	}
	if (c->p >= c->end) goto bad;
	c->p++;
	if (out) {
		buf[n] = '\0';
		*out = buf;
	}
	return true;
bad:
	free(buf);
	return false;
}

static bool parse_number(cur_t *c, char **out)
{
	const char *s = c->p;
	if (c->p < c->end && *c->p == '-') c->p++;
	if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
	if (*c->p == '0') {
		c->p++;
	} else {
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
	}
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
	}
	if (out && !(*out = strndup(s, (size_t)(c->p - s)))) return false;
	return true;
}

static bool parse_value(cur_t *c, char **out);

/* An object; at depth 0 the members are stored in e. */
static bool parse_object(cur_t *c, entry_t *e)
{
	if (c->p >= c->end || *c->p != '{' || ++c->depth > 8) return false;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		c->depth--;
		return true;
	}
	for (;;) {
		skip_ws(c);
		char *key = NULL;
		if (!parse_string(c, &key)) return false;
		skip_ws(c);
		if (c->p >= c->end || *c->p != ':') { free(key); return false; }
		c->p++;
		skip_ws(c);
		char **slot = e ? entry_field(e, key) : NULL;
		free(key);
		if (slot && *slot) return false;  /* duplicate member */
		if (!parse_value(c, slot)) return false;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') { c->p++; continue; }
		if (c->p < c->end && *c->p == '}') { c->p++; c->depth--; return true; }
		return false;
	}
}

static bool parse_array(cur_t *c)
{
	if (c->p >= c->end || *c->p != '[' || ++c->depth > 8) return false;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == ']') { c->p++; c->depth--; return true; }
	for (;;) {
		skip_ws(c);
		if (!parse_value(c, NULL)) return false;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') { c->p++; continue; }
		if (c->p < c->end && *c->p == ']') { c->p++; c->depth--; return true; }
		return false;
	}
}

static bool parse_literal(cur_t *c, const char *lit, char **out)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return false;
	c->p += n;
	if (out && !(*out = strdup(lit))) return false;
	return true;
}

static bool parse_value(cur_t *c, char **out)
{
	if (c->p >= c->end) return false;
	switch (*c->p) {
	case '"': return parse_string(c, out);
	case '{': return !out && parse_object(c, NULL);
	case '[': return !out && parse_array(c);
	case 't': return parse_literal(c, "true", out);
	case 'f': return parse_literal(c, "false", out);
	case 'n': return parse_literal(c, "null", out);
	default: return parse_number(c, out);
	}
}

/* A whole line as one object, nothing after it. Known members whose value
 * is an object or array make the line invalid (parse_value refuses). */
static bool parse_line(const char *line, size_t len, entry_t *e)
{
	cur_t c = { line, line + len, 0 };
	if (!parse_object(&c, e)) return false;
	skip_ws(&c);
	return c.p == c.end;
}

/* -- summary -- */

static int sigs_add(khsm_audit_summary_t *s, const char *day, const char *key, bool software)
{
	for (size_t i = 0; i < s->sig_count; i++) {
		if (strcmp(s->sigs[i].day, day) == 0 && strcmp(s->sigs[i].key, key) == 0) {
			s->sigs[i].count++;
			s->sigs[i].software += software;
			return KHSM_EOK;
		}
	}
	khsm_audit_sigs_t *n = realloc(s->sigs, (s->sig_count + 1) * sizeof(*n));
	if (!n) return KHSM_ENOMEM;
	s->sigs = n;
	khsm_audit_sigs_t *e = &n[s->sig_count];
	memset(e, 0, sizeof(*e));
	snprintf(e->day, sizeof(e->day), "%s", day);
	if (!(e->key = strdup(key))) return KHSM_ENOMEM;
	e->count = 1;
	e->software = software;
	s->sig_count++;
	return KHSM_EOK;
}

static int fails_add(khsm_audit_summary_t *s, const char *fn, const char *rv)
{
	for (size_t i = 0; i < s->fail_count; i++) {
		if (strcmp(s->fails[i].fn, fn) == 0 && strcmp(s->fails[i].rv, rv) == 0) {
			s->fails[i].count++;
			return KHSM_EOK;
		}
	}
	khsm_audit_fail_t *n = realloc(s->fails, (s->fail_count + 1) * sizeof(*n));
	if (!n) return KHSM_ENOMEM;
	s->fails = n;
	khsm_audit_fail_t *e = &n[s->fail_count];
	e->fn = strdup(fn);
	e->rv = strdup(rv);
	e->count = 1;
	s->fail_count++;
	return e->fn && e->rv ? KHSM_EOK : KHSM_ENOMEM;
}

/* Results that are part of normal operation, not failures: length queries,
 * GnuTLS probing attributes and mechanisms, a second login. */
static bool benign(const char *rv)
{
	static const char *const OK[] = {
		"CKR_OK", "CKR_BUFFER_TOO_SMALL", "CKR_USER_ALREADY_LOGGED_IN",
		"CKR_ATTRIBUTE_TYPE_INVALID", "CKR_ATTRIBUTE_SENSITIVE", "CKR_MECHANISM_INVALID",
		"CKR_CRYPTOKI_ALREADY_INITIALIZED", "CKR_USER_NOT_LOGGED_IN",
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(OK); i++) {
		if (strcmp(rv, OK[i]) == 0) return true;
	}
	return false;
}

static bool is_true(const char *v) { return v && strcmp(v, "true") == 0; }

static int summarise(khsm_audit_summary_t *s, const entry_t *e)
{
	if (e->time) {
		if (!s->first_time[0]) snprintf(s->first_time, sizeof(s->first_time), "%s", e->time);
		snprintf(s->last_time, sizeof(s->last_time), "%s", e->time);
	}
	if (e->pin) s->pin_lines++;
	if (is_true(e->software)) s->software_ops++;
	const char *fn = e->fn ? e->fn : "?";
	const char *rv = e->rv ? e->rv : "?";
	if (!benign(rv)) {
		s->failed_calls++;
		int r = fails_add(s, fn, rv);
		if (r != KHSM_EOK) return r;
	}
	if (strcmp(fn, "C_Login") == 0) {
		if (strcmp(rv, "CKR_OK") == 0) s->logins_ok++;
		else if (strcmp(rv, "CKR_USER_ALREADY_LOGGED_IN") != 0) s->logins_failed++;
	}
	bool sign = strcmp(fn, "C_Sign") == 0 || strcmp(fn, "C_SignFinal") == 0 ||
	            strcmp(fn, "C_SignRecover") == 0;
	if (sign && strcmp(rv, "CKR_OK") == 0 && !is_true(e->query)) {
		char day[11] = "?";
		if (e->time && strlen(e->time) >= 10) snprintf(day, sizeof(day), "%.10s", e->time);
		char *key = NULL;
		int n;
		if (e->label && e->id) n = asprintf(&key, "%s id=%s", e->label, e->id);
		else if (e->label) n = asprintf(&key, "%s", e->label);
		else if (e->id) n = asprintf(&key, "id=%s", e->id);
		else n = asprintf(&key, "?");
		if (n < 0) return KHSM_ENOMEM;
		int r = sigs_add(s, day, key, is_true(e->software));
		free(key);
		if (r != KHSM_EOK) return r;
	}
	return KHSM_EOK;
}

static bool is_hash(const char *h)
{
	if (!h || strlen(h) != 64) return false;
	for (const char *p = h; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
	}
	return true;
}

_public_
void khsm_audit_summary_free(khsm_audit_summary_t *sum)
{
	if (!sum) return;
	for (size_t i = 0; i < sum->sig_count; i++) free(sum->sigs[i].key);
	for (size_t i = 0; i < sum->fail_count; i++) {
		free(sum->fails[i].fn);
		free(sum->fails[i].rv);
	}
	free(sum->sigs);
	free(sum->fails);
	free(sum->incidents);
	free(sum);
}

#define BROKEN(...) do { \
		s->broken_line = s->lines; \
		snprintf(s->reason, sizeof(s->reason), __VA_ARGS__); \
		goto out; \
	} while (0)

#define RESYNC "audit_resync"

static int incident_add(khsm_audit_summary_t *s, unsigned long line, const char *before,
                        const char *what)
{
	khsm_audit_incident_t *n = realloc(s->incidents, (s->incident_count + 1) * sizeof(*n));
	if (!n) return KHSM_ENOMEM;
	s->incidents = n;
	khsm_audit_incident_t *i = &n[s->incident_count++];
	memset(i, 0, sizeof(*i));
	i->line = line;
	snprintf(i->after, sizeof(i->after), "%s", s->last_time);
	snprintf(i->before, sizeof(i->before), "%s", before ? before : "");
	snprintf(i->what, sizeof(i->what), "%s", what);
	return KHSM_EOK;
}

/* Is the line after p..end a resynchronisation marker for a torn line of
 * hash torn whose chain continues from head? */
static bool resync_follows(const char *next, const char *end, const char *torn, const char *head,
                           char *time_out, size_t time_size)
{
	if (next >= end) return false;
	const char *nl = memchr(next, '\n', (size_t)(end - next));
	if (!nl || !memmem(next, (size_t)(nl - next), "\"" RESYNC "\"", strlen(RESYNC) + 2)) return false;
	entry_t m = { 0 };
	bool ok = parse_line(next, (size_t)(nl - next), &m) && m.fn && strcmp(m.fn, RESYNC) == 0 &&
	          m.torn && strcmp(m.torn, torn) == 0 && m.prev && strcmp(m.prev, head) == 0 && m.time;
	if (ok) snprintf(time_out, time_size, "%s", m.time);
	entry_clear(&m);
	return ok;
}

static int verify_core(const char *text, size_t len, const khsm_audit_anchor_t *anchors, size_t n_anchors,
                       const char *anchor_name, const char *want_head, bool missing,
                       khsm_audit_summary_t *s)
{
	int r = genesis_hash(s->head);
	entry_t e = { 0 };
	const char *p = text, *end = text + len;
	bool resync_due = false;
	char h[KHSM_AUDIT_HASH_SIZE];
	if (r == KHSM_EOK && want_head && strcmp(want_head, s->head) == 0) s->head_line = 0, s->head_found = true;
	while (r == KHSM_EOK && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		s->lines++;
		if (!nl) {
			s->torn_tail = true;
			r = incident_add(s, s->lines, NULL, "torn last line (no newline): a write was cut short "
			                 "(full disk, crash); the next line written resynchronises");
			break;
		}
		s->complete_lines = s->lines;
		r = khsm_audit_hash(p, l, h);
		if (r != KHSM_EOK) break;
		for (size_t i = 0; i < n_anchors; i++) {
			if (anchors[i].lines != s->lines) continue;
			if (strcmp(anchors[i].head, h) != 0) {
				BROKEN("line %lu is not the line the anchor %s:%lu of %s recorded: the log was "
				       "rewritten", s->lines, anchor_name, anchors[i].where, anchors[i].time);
			}
			s->anchors_matched++;
		}
		if (want_head && strcmp(want_head, h) == 0 && !s->head_found) {
			s->head_found = true;
			s->head_line = s->lines;
		}
		/* Torn, then ended by the next writer, who named it in a marker
		 * (even when the cut fell just before the newline, so that the
		 * line itself looks whole). */
		char when[32] = "";
		if (!resync_due && resync_follows(nl + 1, end, h, s->head, when, sizeof(when))) {
			char what[96];
			snprintf(what, sizeof(what), "torn line (%zu bytes): a write was cut short; "
			         "resynchronised on the next line", l);
			r = incident_add(s, s->lines, when, what);
			resync_due = true;
			p = nl + 1;
			continue;
		}
		entry_clear(&e);
		const char *why = NULL;
		char whybuf[160];
		if (memchr(p, '\0', l)) why = "NUL byte in the line";
		else if (!parse_line(p, l, &e)) why = "not a JSON audit object";
		else if (!is_hash(e.prev)) why = "no valid \"prev\" hash";
		else if (strcmp(e.prev, s->head) != 0) {
			if (s->lines == 1) {
				why = "\"prev\" is not the hash of the genesis string: lines were removed from the start";
			} else {
				snprintf(whybuf, sizeof(whybuf), "\"prev\" is not the hash of line %lu: that line was "
				         "altered, or lines were removed, inserted or reordered here", s->lines - 1);
				why = whybuf;
			}
		}
		if (why) BROKEN("%s", why);
		bool marker = e.fn && strcmp(e.fn, RESYNC) == 0;
		if (marker && !resync_due) BROKEN("a resynchronisation marker without the torn line it names");
		if (!marker && resync_due) BROKEN("a torn line is not followed by its resynchronisation marker");
		resync_due = false;
		if (!e.fn || !e.time || (!e.rv && !marker && !is_true(e.intent))) {
			BROKEN("missing \"fn\", \"rv\" or \"time\"");
		}
		if (marker) {
			snprintf(s->last_time, sizeof(s->last_time), "%s", e.time);
		} else if (is_true(e.intent)) {
			s->intents++;
			if (!s->first_time[0]) snprintf(s->first_time, sizeof(s->first_time), "%s", e.time);
			snprintf(s->last_time, sizeof(s->last_time), "%s", e.time);
		} else {
			r = summarise(s, &e);
		}
		if (r == KHSM_EOK) memcpy(s->head, h, sizeof(h));
		p = nl + 1;
	}
	if (r != KHSM_EOK) goto out;
	for (size_t i = 0; i < n_anchors; i++) {
		if (anchors[i].lines <= s->complete_lines) continue;
		s->lines = s->complete_lines + 1;
		if (missing) {
			BROKEN("the log is missing, but the anchor %s:%lu of %s records %lu lines: it was "
			       "deleted or moved", anchor_name, anchors[i].where, anchors[i].time, anchors[i].lines);
		}
		BROKEN("the log ends after line %lu, but the anchor %s:%lu of %s records %lu lines: lines "
		       "were removed from the end, or the log was replaced", s->complete_lines, anchor_name,
		       anchors[i].where, anchors[i].time, anchors[i].lines);
	}
	if (want_head && !s->head_found) {
		s->lines = s->complete_lines + 1;
		BROKEN("the head %.16s… is not the hash of any line: the log was rewritten, cut short or "
		       "replaced since it was recorded", want_head);
	}
out:
	entry_clear(&e);
	return r;
}

static int verify_finish(khsm_audit_summary_t *s, int r, khsm_audit_summary_t **sum_ptr)
{
	if (r != KHSM_EOK) {
		khsm_audit_summary_free(s);
		return r;
	}
	*sum_ptr = s;
	if (s->broken_line) {
		khsm_err_detail("line %lu: %s", s->broken_line, s->reason);
		return KHSM_ECRYPTO;
	}
	return KHSM_EOK;
}

_public_
int khsm_audit_verify_text(const char *text, size_t len, khsm_audit_summary_t **sum_ptr)
{
	if ((!text && len) || !sum_ptr) return KHSM_EINVAL;
	khsm_audit_summary_t *s = calloc(1, sizeof(*s));
	if (!s) return KHSM_ENOMEM;
	int r = verify_core(text ? text : "", len, NULL, 0, NULL, NULL, false, s);
	return verify_finish(s, r, sum_ptr);
}

static int read_all(const char *path, const char *what, char **buf_ptr, size_t *len_ptr, struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		khsm_err_detail("cannot read the %s %s: %s", what, path, strerror(e));
		return e == ENOENT ? KHSM_ENOENT : KHSM_EIO;
	}
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
		khsm_err_detail("cannot read the %s %s: not a regular file", what, path);
		close(fd);
		return KHSM_EIO;
	}
	/* A shared lock: a writer never leaves half a line under our eyes. */
	while (flock(fd, LOCK_SH) != 0 && errno == EINTR) {
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r = KHSM_EOK;
	for (;;) {
		if (len == cap) {
			cap = cap ? 2 * cap : 65536;
			char *n = realloc(buf, cap);
			if (!n) { r = KHSM_ENOMEM; break; }
			buf = n;
		}
		ssize_t n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR) continue;
		if (n < 0) {
			khsm_err_detail("cannot read the %s %s: %s", what, path, strerror(errno));
			r = KHSM_EIO;
			break;
		}
		if (n == 0) break;
		len += (size_t)n;
	}
	close(fd);
	if (r != KHSM_EOK) {
		free(buf);
		return r;
	}
	*buf_ptr = buf;
	*len_ptr = len;
	return KHSM_EOK;
}

_public_
int khsm_audit_anchors_parse(const char *name, const char *text, size_t len,
                             khsm_audit_anchor_t **anchors_ptr, size_t *count_ptr)
{
	khsm_audit_anchor_t *list = NULL;
	size_t count = 0;
	unsigned long where = 0;
	const char *p = text, *end = text + len;
	int r = KHSM_EOK;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		where++;
		if (!nl) {
			khsm_err_detail("%s:%lu: torn last line (no newline)", name, where);
			r = KHSM_EPARSE;
			break;
		}
		char line[512];
		size_t l = (size_t)(nl - p);
		p = nl + 1;
		if (l >= sizeof(line)) {
			khsm_err_detail("%s:%lu: line too long for an anchor", name, where);
			r = KHSM_EPARSE;
			break;
		}
		memcpy(line, nl - l, l);
		line[l] = '\0';
		khsm_audit_anchor_t a = { .where = where };
		bool have_lines = false, have_head = false;
		char *save = NULL;
		char *tok = strtok_r(line, " ", &save);
		if (tok) snprintf(a.time, sizeof(a.time), "%s", tok);
		while (tok && (tok = strtok_r(NULL, " ", &save))) {
			if (strncmp(tok, "lines=", 6) == 0) {
				char *e = NULL;
				errno = 0;
				unsigned long v = strtoul(tok + 6, &e, 10);
				have_lines = e && !*e && e != tok + 6 && errno == 0 && tok[6] != '-';
				a.lines = v;
			} else if (strncmp(tok, "head=", 5) == 0) {
				have_head = is_hash(tok + 5);
				if (have_head) memcpy(a.head, tok + 5, KHSM_AUDIT_HASH_SIZE);
			}
		}
		if (!have_lines || !have_head) {
			khsm_err_detail("%s:%lu: not an anchor line (TIME lines=N head=HEX …)", name, where);
			r = KHSM_EPARSE;
			break;
		}
		khsm_audit_anchor_t *n = realloc(list, (count + 1) * sizeof(*n));
		if (!n) { r = KHSM_ENOMEM; break; }
		list = n;
		list[count++] = a;
	}
	if (r != KHSM_EOK) {
		free(list);
		return r;
	}
	*anchors_ptr = list;
	*count_ptr = count;
	return KHSM_EOK;
}

_public_
int khsm_audit_verify_check(const char *path, const khsm_audit_check_t *check, khsm_audit_summary_t **sum_ptr)
{
	if (!path || !sum_ptr) return KHSM_EINVAL;
	const char *want_head = check ? check->head : NULL;
	const char *anchor_file = check ? check->anchor_file : NULL;
	if (want_head && !is_hash(want_head)) {
		khsm_err_detail("the head must be 64 lowercase hex digits (a SHA-256), not '%s'", want_head);
		return KHSM_EINVAL;
	}
	_cleanup_free_ khsm_audit_anchor_t *anchors = NULL;
	_cleanup_free_ char *abuf = NULL, *buf = NULL;
	size_t n_anchors = 0, alen = 0, len = 0;
	bool weak = false, missing = false;
	struct stat st;
	int r = KHSM_EOK;
	if (anchor_file) {
		r = read_all(anchor_file, "audit anchor", &abuf, &alen, &st);
		if (r != KHSM_EOK) return r;
		weak = st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH));
		r = khsm_audit_anchors_parse(anchor_file, abuf, alen, &anchors, &n_anchors);
		if (r != KHSM_EOK) return r;
	}
	r = read_all(path, "audit log", &buf, &len, &st);
	if (r == KHSM_ENOENT && (n_anchors || want_head)) {
		/* Against an anchor a missing log is a finding, not a read error. */
		khsm_err_clear();
		missing = true;
		r = KHSM_EOK;
	}
	if (r != KHSM_EOK) return r;
	khsm_audit_summary_t *s = calloc(1, sizeof(*s));
	if (!s) return KHSM_ENOMEM;
	s->anchor_count = n_anchors;
	s->anchor_weak = weak;
	s->missing = missing;
	r = verify_core(buf ? buf : "", len, anchors, n_anchors, anchor_file, want_head, missing, s);
	return verify_finish(s, r, sum_ptr);
}

_public_
int khsm_audit_verify(const char *path, khsm_audit_summary_t **sum_ptr)
{
	return khsm_audit_verify_check(path, NULL, sum_ptr);
}

/* Length of the valid UTF-8 sequence at p (not a C1 control), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || n > left || (p[0] >= 0xf8)) return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) return 0;
	}
	if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) return 0;        /* C1 controls */
	if (n == 3 && p[0] == 0xe0 && p[1] < 0xa0) return 0;        /* overlong */
	if (n == 3 && p[0] == 0xed && p[1] >= 0xa0) return 0;       /* surrogates */
	if (n == 4 && p[0] == 0xf0 && p[1] < 0x90) return 0;
	if (n == 4 && p[0] == 0xf4 && p[1] >= 0x90) return 0;
	return n;
}

static void put_escaped(FILE *m, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		if (p[i] == '\\') {
			fputs("\\\\", m);
			i++;
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			fputc(p[i++], m);
		} else {
			size_t n = p[i] >= 0x80 ? utf8_len(p + i, len - i) : 0;
			if (n) {
				fwrite(p + i, 1, n, m);
				i += n;
			} else {
				fprintf(m, "\\x%02x", p[i++]);
			}
		}
	}
}

static void put_text(FILE *m, const char *s)
{
	put_escaped(m, s, strlen(s));
}

_public_
int khsm_audit_text_escape(const char *s, size_t len, char **text_ptr)
{
	if ((!s && len) || !text_ptr) return KHSM_EINVAL;
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);
	if (!m) return KHSM_ENOMEM;
	put_escaped(m, s ? s : "", len);
	if (fclose(m) != 0 || !out) {
		free(out);
		return KHSM_ENOMEM;
	}
	*text_ptr = out;
	return KHSM_EOK;
}

_public_
int khsm_audit_line_text(const char *line, size_t len, char **text_ptr)
{
	entry_t e = { 0 };
	if (!parse_line(line, len, &e) || !e.fn) {
		entry_clear(&e);
		khsm_err_detail("not an audit line");
		return KHSM_EPARSE;
	}
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);
	if (!m) {
		entry_clear(&e);
		return KHSM_ENOMEM;
	}
	/* Card labels and process names are anyone's text: escaped (\xNN). */
	put_text(m, e.time ? e.time : "?");
	fputc(' ', m);
	put_text(m, e.comm ? e.comm : "?");
	fputc('[', m);
	put_text(m, e.pid ? e.pid : "?");
	fputs("] ", m);
	put_text(m, e.fn);
	if (is_true(e.intent)) fputs(" (intent)", m);
	if (e.slot) { fputs(" slot ", m); put_text(m, e.slot); }
	if (e.session) { fputs(" session ", m); put_text(m, e.session); }
	if (e.user) { fputc(' ', m); put_text(m, e.user); }
	if (e.label || e.id) {
		fputc(':', m);
		if (e.label) { fputc(' ', m); put_text(m, e.label); }
		if (e.id) { fputs(" id=", m); put_text(m, e.id); }
	}
	if (e.mech) { fputc(' ', m); put_text(m, e.mech); }
	if (e.card_mech) { fputs(" (card ", m); put_text(m, e.card_mech); fputc(')', m); }
	if (e.len) { fputc(' ', m); put_text(m, e.len); fputs(" bytes", m); }
	if (is_true(e.query)) fprintf(m, " (length query)");
	if (e.rv || !is_true(e.intent)) {
		fputs(" -> ", m);
		put_text(m, e.rv ? e.rv : "?");
	}
	if (is_true(e.software)) fputs(" (software)", m);
	fclose(m);
	entry_clear(&e);
	if (!out) return KHSM_ENOMEM;
	*text_ptr = out;
	return KHSM_EOK;
}
