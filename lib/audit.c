/* Audit log: hash-chained JSON lines, appended under flock; verification. */
#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <libgen.h>
#include <sys/file.h>
#include <sys/stat.h>

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

_public_
int khsm_audit_open(const char *path, int *fd_ptr)
{
	if (!path || !fd_ptr) return KHSM_EINVAL;
	bool created = false;
	int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT) {
		/* 0660: knotd (group knot on Debian) appends to a log root created;
		 * it holds no secret, and the hash chain shows any edit. */
		fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY | O_CREAT | O_EXCL, 0660);
		created = fd >= 0;
		if (created) {
			(void)fchmod(fd, 0660);
		}
		if (fd < 0 && errno == EEXIST) {
			fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOCTTY);
		}
	}
	if (fd < 0) {
		int e = errno;
		khsm_err_detail("cannot open the audit log %s for appending: %s", path, strerror(e));
		return e == EACCES || e == EPERM || e == EROFS ? KHSM_EPERM : KHSM_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		khsm_err_detail("the audit log %s is not a regular file", path);
		close(fd);
		return KHSM_EIO;
	}
	if (created && geteuid() == 0) {
		char *copy = strdup(path);
		struct stat dst;
		if (copy && stat(dirname(copy), &dst) == 0 && (dst.st_uid != 0 || dst.st_gid != 0)) {
			/* Best effort: a failure leaves root:root, which doctor reports. */
			if (fchown(fd, dst.st_uid, dst.st_gid) != 0) {
				(void)0;
			}
		}
		free(copy);
	}
	*fd_ptr = fd;
	return KHSM_EOK;
}

/* The last line of the file (without its newline) and whether the file ends
 * with a newline. An empty file gives an empty line and complete = true. */
static int read_last_line(int fd, char **line_ptr, size_t *len_ptr, bool *complete_ptr)
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
	size_t want = size < TAIL_MAX ? (size_t)size : TAIL_MAX;
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
	if (start == 0 && (size_t)size > want) {
		khsm_err_detail("the last line of the audit log is longer than %d bytes", TAIL_MAX);
		free(buf);
		return KHSM_EPARSE;
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
	char prev[KHSM_AUDIT_HASH_SIZE];
	char *line = NULL;
	int r = read_last_line(fd, &last, &last_len, &complete);
	if (r == KHSM_EOK) {
		r = last ? khsm_audit_hash(last, last_len, prev) : genesis_hash(prev);
	}
	if (r == KHSM_EOK) {
		/* A torn last line stays visible: ours starts on a line of its own. */
		int n = asprintf(&line, "%s{%s,\"prev\":\"%s\"}\n", complete ? "" : "\n", body, prev);
		r = n < 0 ? KHSM_ENOMEM : write_all(fd, line, (size_t)n);
	}
	if (r == KHSM_EOK && sync && fsync(fd) != 0) {
		khsm_err_detail("cannot fsync the audit log: %s", strerror(errno));
		r = KHSM_EIO;
	}
	flock(fd, LOCK_UN);
	free(last);
	free(line);
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
	char *pid, *slot, *session, *len, *card_mech;
} entry_t;

static void entry_clear(entry_t *e)
{
	char **fields[] = { &e->time, &e->comm, &e->fn, &e->label, &e->id, &e->mech, &e->rv, &e->prev,
	                    &e->software, &e->query, &e->pin, &e->user, &e->pid, &e->slot, &e->session,
	                    &e->len, &e->card_mech };
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
		F(query), F(pin), F(user), F(pid), F(slot), F(session), F(len), F(card_mech),
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
	free(sum);
}

#define BROKEN(...) do { \
		s->broken_line = s->lines; \
		snprintf(s->reason, sizeof(s->reason), __VA_ARGS__); \
		goto out; \
	} while (0)

_public_
int khsm_audit_verify_text(const char *text, size_t len, khsm_audit_summary_t **sum_ptr)
{
	if ((!text && len) || !sum_ptr) return KHSM_EINVAL;
	khsm_audit_summary_t *s = calloc(1, sizeof(*s));
	if (!s) return KHSM_ENOMEM;
	int r = genesis_hash(s->head);
	entry_t e = { 0 };
	const char *p = text, *end = text + len;
	while (r == KHSM_EOK && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
		s->lines++;
		if (!nl) BROKEN("incomplete last line (no newline): cut short or still being written");
		if (memchr(p, '\0', l)) BROKEN("NUL byte in the line");
		entry_clear(&e);
		if (!parse_line(p, l, &e)) BROKEN("not a JSON audit object");
		if (!is_hash(e.prev)) BROKEN("no valid \"prev\" hash");
		if (strcmp(e.prev, s->head) != 0) {
			if (s->lines == 1) BROKEN("\"prev\" is not the hash of the genesis string: "
			                          "lines were removed from the start");
			BROKEN("\"prev\" is not the hash of line %lu: that line was altered, or lines "
			       "were removed, inserted or reordered here", s->lines - 1);
		}
		if (!e.fn || !e.rv || !e.time) BROKEN("missing \"fn\", \"rv\" or \"time\"");
		r = summarise(s, &e);
		if (r == KHSM_EOK) r = khsm_audit_hash(p, l, s->head);
		p = nl + 1;
	}
out:
	entry_clear(&e);
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
int khsm_audit_verify(const char *path, khsm_audit_summary_t **sum_ptr)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		khsm_err_detail("cannot read %s: %s", path, strerror(e));
		return e == ENOENT ? KHSM_ENOENT : KHSM_EIO;
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
			khsm_err_detail("cannot read %s: %s", path, strerror(errno));
			r = KHSM_EIO;
			break;
		}
		if (n == 0) break;
		len += (size_t)n;
	}
	close(fd);
	if (r == KHSM_EOK) r = khsm_audit_verify_text(buf ? buf : "", len, sum_ptr);
	free(buf);
	return r;
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
	fprintf(m, "%s %s[%s] %s", e.time ? e.time : "?", e.comm ? e.comm : "?", e.pid ? e.pid : "?", e.fn);
	if (e.slot) fprintf(m, " slot %s", e.slot);
	if (e.session) fprintf(m, " session %s", e.session);
	if (e.user) fprintf(m, " %s", e.user);
	if (e.label || e.id) {
		fprintf(m, ":%s%s%s%s", e.label ? " " : "", e.label ? e.label : "", e.id ? " id=" : "",
		        e.id ? e.id : "");
	}
	if (e.mech) fprintf(m, " %s", e.mech);
	if (e.card_mech) fprintf(m, " (card %s)", e.card_mech);
	if (e.len) fprintf(m, " %s bytes", e.len);
	if (is_true(e.query)) fprintf(m, " (length query)");
	fprintf(m, " -> %s%s", e.rv ? e.rv : "?", is_true(e.software) ? " (software)" : "");
	fclose(m);
	entry_clear(&e);
	if (!out) return KHSM_ENOMEM;
	*text_ptr = out;
	return KHSM_EOK;
}
