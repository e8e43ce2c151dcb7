/* Unit tests of lib/audit.c: the hash-chained writer (also from several
 * processes and threads at once), chain verification of intact and tampered
 * logs (edited, deleted, reordered, inserted lines, truncated last line), the
 * summary, and JSON string escaping. */
#include "test.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "lib/audit.h"
#include "lib/error.h"

typedef struct {
	char dir[64];
	char path[128];
} fx_t;

static int setup(void **state)
{
	fx_t *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/khsm-audit.XXXXXX");
	if (!mkdtemp(fx->dir)) return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/audit.log", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	fx_t *fx = *state;
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	int r = system(cmd);
	free(fx);
	return r == 0 ? 0 : -1;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char *buf = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&buf, &n);
	char chunk[4096];
	size_t k;
	while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) fwrite(chunk, 1, k, m);
	fclose(f);
	fclose(m);
	*len = n;
	return buf;
}

static void spit(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	fclose(f);
}

/* SHA-256 hex computed here, independently of khsm_audit_hash(). */
static void sha256_hex(const char *data, size_t len, char out[65])
{
	unsigned char d[32];
	assert_int_equal(gnutls_hash_fast(GNUTLS_DIG_SHA256, data, len, d), 0);
	for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

static void write_lines(const char *path, int n)
{
	for (int i = 0; i < n; i++) {
		char body[128];
		snprintf(body, sizeof(body), "\"time\":\"2025-03-0%dT10:00:00.000Z\",\"pid\":1,\"fn\":\"C_Sign\","
		         "\"label\":\"k\",\"rv\":\"CKR_OK\",\"n\":%d", 1 + i % 2, i);
		assert_int_equal(khsm_audit_write(path, body, i % 2 == 0), KHSM_EOK);
	}
}

static int verify_file(const char *path, khsm_audit_summary_t **s)
{
	return khsm_audit_verify(path, s);
}

/* Lines of a text as an array (pointers into a copy). */
static int split(char *text, char **lines, int max)
{
	int n = 0;
	for (char *p = text; *p && n < max;) {
		lines[n++] = p;
		char *nl = strchr(p, '\n');
		if (!nl) break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

static void join_write(const char *path, char **lines, int n)
{
	FILE *f = fopen(path, "w");
	for (int i = 0; i < n; i++) fprintf(f, "%s\n", lines[i]);
	fclose(f);
}

static void test_writer_chain(void **state)
{
	fx_t *fx = *state;
	write_lines(fx->path, 4);
	size_t len;
	char *text = slurp(fx->path, &len);
	char *lines[8] = { 0 };
	int n = split(text, lines, 8);
	assert_int_equal(n, 4);
	char want[65];
	sha256_hex(KHSM_AUDIT_GENESIS, strlen(KHSM_AUDIT_GENESIS), want);
	char expect[200];
	snprintf(expect, sizeof(expect), ",\"prev\":\"%s\"}", want);
	assert_non_null(strstr(lines[0], expect));
	assert_true(lines[0][0] == '{');
	for (int i = 1; i < n; i++) {
		sha256_hex(lines[i - 1], strlen(lines[i - 1]), want);
		snprintf(expect, sizeof(expect), ",\"prev\":\"%s\"}", want);
		assert_non_null(strstr(lines[i], expect));
	}
	khsm_audit_summary_t *s = NULL;
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->lines, 4);
	assert_int_equal(s->broken_line, 0);
	sha256_hex(lines[3], strlen(lines[3]), want);
	assert_string_equal(s->head, want);
	khsm_audit_summary_free(s);
	free(text);

	/* Reopened later (another process would do the same): the chain goes on. */
	write_lines(fx->path, 2);
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->lines, 6);
	khsm_audit_summary_free(s);
}

static void test_writer_refuses(void **state)
{
	fx_t *fx = *state;
	assert_int_equal(khsm_audit_write(fx->path, "\"fn\":\"x\"\n,\"rv\":\"y\"", false), KHSM_EINVAL);
	/* Not a regular file: refused (this is how the fail-closed test breaks the log). */
	assert_int_equal(mkdir(fx->path, 0700), 0);
	assert_int_not_equal(khsm_audit_write(fx->path, "\"fn\":\"x\"", false), KHSM_EOK);
	rmdir(fx->path);
	char missing[200];
	snprintf(missing, sizeof(missing), "%s/no/such/dir/log", fx->dir);
	assert_int_equal(khsm_audit_write(missing, "\"fn\":\"x\"", false), KHSM_EIO);
}

static void test_empty_and_missing(void **state)
{
	fx_t *fx = *state;
	khsm_audit_summary_t *s = NULL;
	assert_int_equal(verify_file(fx->path, &s), KHSM_ENOENT);
	spit(fx->path, "", 0);
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->lines, 0);
	khsm_audit_summary_free(s);
}

/* Tampering with a copy of a 6-line log; returns the broken line. */
static unsigned long tampered(fx_t *fx, void (*edit)(char **lines, int *n))
{
	unlink(fx->path);
	write_lines(fx->path, 6);
	size_t len;
	char *text = slurp(fx->path, &len);
	char *lines[8] = { 0 };
	int n = split(text, lines, 8);
	assert_int_equal(n, 6);
	edit(lines, &n);
	join_write(fx->path, lines, n);
	khsm_audit_summary_t *s = NULL;
	int r = verify_file(fx->path, &s);
	assert_int_equal(r, KHSM_ECRYPTO);
	assert_non_null(s);
	unsigned long b = s->broken_line;
	assert_true(s->reason[0] != '\0');
	khsm_audit_summary_free(s);
	free(text);
	return b;
}

static void edit_label(char **lines, int *n)
{
	(void)n;
	char *p = strstr(lines[2], "\"label\":\"k\"");
	assert_non_null(p);
	p[9] = 'K';   /* same length, still valid JSON */
}

static void delete_line(char **lines, int *n)
{
	for (int i = 2; i < *n - 1; i++) lines[i] = lines[i + 1];
	(*n)--;
}

static void delete_first(char **lines, int *n)
{
	for (int i = 0; i < *n - 1; i++) lines[i] = lines[i + 1];
	(*n)--;
}

static void reorder(char **lines, int *n)
{
	(void)n;
	char *t = lines[3];
	lines[3] = lines[4];
	lines[4] = t;
}

static void duplicate(char **lines, int *n)
{
	lines[*n] = lines[1];   /* a replayed line */
	(*n)++;
}

static void test_tampered(void **state)
{
	fx_t *fx = *state;
	/* Line 3 edited: line 4 no longer names its hash. */
	assert_int_equal(tampered(fx, edit_label), 4);
	/* Line 3 deleted: the new line 3 (old 4) points at the deleted one. */
	assert_int_equal(tampered(fx, delete_line), 3);
	assert_int_equal(tampered(fx, delete_first), 1);
	/* Lines 4 and 5 swapped. */
	assert_int_equal(tampered(fx, reorder), 4);
	assert_int_equal(tampered(fx, duplicate), 7);
}

static void test_truncated_last_line(void **state)
{
	fx_t *fx = *state;
	write_lines(fx->path, 3);
	size_t len;
	char *text = slurp(fx->path, &len);
	const size_t len0 = len;
	/* Cut inside the last line (as a crash mid-write or a careless edit). */
	spit(fx->path, text, len - 20);
	khsm_audit_summary_t *s = NULL;
	/* A torn tail is an incident (a full disk, a crash), not a broken chain. */
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->broken_line, 0);
	assert_true(s->torn_tail);
	assert_int_equal(s->incident_count, 1);
	assert_int_equal(s->incidents[0].line, 3);
	assert_non_null(strstr(s->incidents[0].what, "torn last line"));
	assert_int_equal(s->sig_count > 0 ? s->sigs[0].count + (s->sig_count > 1 ? s->sigs[1].count : 0) : 0, 2);
	khsm_audit_summary_free(s);
	/* The same with a newline put back: not an audit object, and no marker. */
	char *cut = strndup(text, len - 20);
	char *fixed = NULL;
	assert_true(asprintf(&fixed, "%s\n", cut) > 0);
	spit(fx->path, fixed, strlen(fixed));
	assert_int_equal(verify_file(fx->path, &s), KHSM_ECRYPTO);
	assert_int_equal(s->broken_line, 3);
	khsm_audit_summary_free(s);
	/* A writer after a torn line ends it and writes a resynchronisation
	 * marker: the torn line is reported with its time, the rest verified. */
	spit(fx->path, text, len - 20);
	write_lines(fx->path, 2);
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->lines, 6);   /* 2 good, the torn one, the marker, 2 new */
	assert_int_equal(s->incident_count, 1);
	assert_int_equal(s->incidents[0].line, 3);
	assert_true(s->incidents[0].after[0] != '\0');
	assert_true(s->incidents[0].before[0] != '\0');
	assert_non_null(strstr(s->incidents[0].what, "resynchronised"));
	assert_false(s->torn_tail);
	khsm_audit_summary_free(s);
	/* Cut just before the newline: the torn line looks whole, the marker
	 * after it still makes it an incident, not a broken chain. */
	char *whole = slurp(fx->path, &len);
	spit(fx->path, text, len0 - 1);
	write_lines(fx->path, 1);
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->incident_count, 1);
	assert_int_equal(s->incidents[0].line, 3);
	khsm_audit_summary_free(s);
	spit(fx->path, whole, len);
	free(whole);
	/* A marker moved or forged elsewhere is tampering. */
	char *all = slurp(fx->path, &len);
	char *m = strstr(all, "\"fn\":\"audit_resync\"");
	assert_non_null(m);
	while (m > all && m[-1] != '\n') m--;
	/* Drop the torn line and keep the marker: the marker names nothing. */
	char *moved = NULL;
	char *torn_start = m - 1;
	while (torn_start > all && torn_start[-1] != '\n') torn_start--;
	assert_true(asprintf(&moved, "%.*s%s", (int)(torn_start - all), all, m) > 0);
	spit(fx->path, moved, strlen(moved));
	assert_int_equal(verify_file(fx->path, &s), KHSM_ECRYPTO);
	khsm_audit_summary_free(s);
	free(moved);
	free(all);
	free(cut);
	free(fixed);
	free(text);
}

static void test_summary(void **state)
{
	(void)state;
	/* A log built by hand through the writer's hashing, so the summary sees
	 * exactly these calls. */
	const char *bodies[] = {
		"\"time\":\"2025-03-01T10:00:00.000Z\",\"fn\":\"C_Login\",\"user\":\"CKU_USER\",\"rv\":\"CKR_PIN_INCORRECT\"",
		"\"time\":\"2025-03-01T10:00:01.000Z\",\"fn\":\"C_Login\",\"user\":\"CKU_USER\",\"rv\":\"CKR_OK\"",
		"\"time\":\"2025-03-01T10:00:02.000Z\",\"fn\":\"C_Sign\",\"label\":\"example.com. KSK\",\"id\":\"ab01\",\"query\":true,\"rv\":\"CKR_OK\"",
		"\"time\":\"2025-03-01T10:00:02.100Z\",\"fn\":\"C_Sign\",\"label\":\"example.com. KSK\",\"id\":\"ab01\",\"len\":32,\"out\":64,\"rv\":\"CKR_OK\"",
		"\"time\":\"2025-03-01T10:00:03.000Z\",\"fn\":\"C_Sign\",\"label\":\"example.com. KSK\",\"id\":\"ab01\",\"software\":true,\"rv\":\"CKR_OK\"",
		"\"time\":\"2025-03-02T00:00:00.000Z\",\"fn\":\"C_Sign\",\"label\":\"example.com. KSK\",\"id\":\"ab01\",\"rv\":\"CKR_OK\"",
		"\"time\":\"2025-03-02T00:00:01.000Z\",\"fn\":\"C_SignFinal\",\"id\":\"cd02\",\"rv\":\"CKR_OK\"",
		"\"time\":\"2025-03-02T00:00:02.000Z\",\"fn\":\"C_Sign\",\"id\":\"cd02\",\"rv\":\"CKR_DEVICE_ERROR\"",
		"\"time\":\"2025-03-02T00:00:03.000Z\",\"fn\":\"C_GetAttributeValue\",\"objects\":[{\"handle\":1,\"label\":\"x\"}],\"attrs\":[\"CKA_LABEL\"],\"rv\":\"CKR_ATTRIBUTE_TYPE_INVALID\"",
	};
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	char prev[KHSM_AUDIT_HASH_SIZE];
	assert_int_equal(khsm_audit_hash(KHSM_AUDIT_GENESIS, strlen(KHSM_AUDIT_GENESIS), prev), KHSM_EOK);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		char *line = NULL;
		int n = asprintf(&line, "{%s,\"prev\":\"%s\"}", bodies[i], prev);
		assert_true(n > 0);
		fprintf(m, "%s\n", line);
		assert_int_equal(khsm_audit_hash(line, (size_t)n, prev), KHSM_EOK);
		free(line);
	}
	fclose(m);
	khsm_audit_summary_t *s = NULL;
	assert_int_equal(khsm_audit_verify_text(text, len, &s), KHSM_EOK);
	assert_int_equal(s->lines, 9);
	assert_int_equal(s->logins_ok, 1);
	assert_int_equal(s->logins_failed, 1);
	assert_int_equal(s->sig_count, 3);
	assert_string_equal(s->sigs[0].day, "2025-03-01");
	assert_string_equal(s->sigs[0].key, "example.com. KSK id=ab01");
	assert_int_equal(s->sigs[0].count, 2);      /* the length query is no signature */
	assert_int_equal(s->sigs[0].software, 1);
	assert_string_equal(s->sigs[1].day, "2025-03-02");
	assert_int_equal(s->sigs[1].count, 1);
	assert_string_equal(s->sigs[2].key, "id=cd02");
	assert_int_equal(s->sigs[2].count, 1);
	assert_int_equal(s->failed_calls, 2);       /* PIN_INCORRECT, DEVICE_ERROR; not ATTRIBUTE_TYPE_INVALID */
	assert_int_equal(s->fail_count, 2);
	assert_string_equal(s->fails[1].fn, "C_Sign");
	assert_string_equal(s->fails[1].rv, "CKR_DEVICE_ERROR");
	assert_string_equal(s->first_time, "2025-03-01T10:00:00.000Z");
	assert_string_equal(s->last_time, "2025-03-02T00:00:03.000Z");
	khsm_audit_summary_free(s);

	char *words = NULL;
	const char *l4 = strchr(strchr(strchr(text, '\n') + 1, '\n') + 1, '\n') + 1;
	assert_int_equal(khsm_audit_line_text(l4, strcspn(l4, "\n"), &words), KHSM_EOK);
	assert_non_null(strstr(words, "C_Sign: example.com. KSK id=ab01 32 bytes -> CKR_OK"));
	free(words);
	assert_int_equal(khsm_audit_line_text("{\"fn\":", 6, &words), KHSM_EPARSE);
	free(text);
}

static void test_bad_json(void **state)
{
	(void)state;
	const char *bad[] = {
		"{\"fn\":\"C_Sign\",\"fn\":\"C_Login\",\"rv\":\"CKR_OK\",\"time\":\"t\",\"prev\":\"%s\"}",   /* duplicate */
		"{\"fn\":\"C_Sign\",\"rv\":\"CKR_OK\",\"time\":\"t\",\"prev\":\"%s\"} x",                  /* trailing */
		"{\"fn\":\"C_Sign\",\"rv\":\"CKR_OK\",\"time\":\"t\",\"prev\":\"%s\",}",                   /* comma */
		"{\"fn\":\"C_Sign\",\"rv\":\"CKR_OK\",\"time\":\"t\",\"prev\":\"%.63s\"}",                 /* short hash */
		"{\"fn\":\"C_Sign\",\"rv\":\"CKR_OK\",\"prev\":\"%s\"}",                                   /* no time */
		"[\"%s\"]",
	};
	char prev[KHSM_AUDIT_HASH_SIZE];
	khsm_audit_hash(KHSM_AUDIT_GENESIS, strlen(KHSM_AUDIT_GENESIS), prev);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[512];
		int n = snprintf(line, sizeof(line), bad[i], prev);
		line[n++] = '\n';
		khsm_audit_summary_t *s = NULL;
		assert_int_equal(khsm_audit_verify_text(line, (size_t)n, &s), KHSM_ECRYPTO);
		assert_int_equal(s->broken_line, 1);
		khsm_audit_summary_free(s);
	}
}

static void test_json_string(void **state)
{
	(void)state;
	char *j = NULL;
	const char in[] = "a\"b\\c\n\x01\xc3\xa9\xff z";
	assert_int_equal(khsm_audit_json_string(in, sizeof(in) - 1, &j), KHSM_EOK);
	assert_string_equal(j, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\u00ff z\"");
	free(j);
}

/* -- several processes and threads append at once: one consistent chain -- */

static const char *g_path;

static void *appender(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < 40; i++) {
		char body[96];
		snprintf(body, sizeof(body), "\"time\":\"t\",\"pid\":%ld,\"fn\":\"C_Sign\",\"rv\":\"CKR_OK\",\"i\":%d",
		         id, i);
		if (khsm_audit_write(g_path, body, false) != KHSM_EOK) return (void *)1;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	fx_t *fx = *state;
	g_path = fx->path;
	pid_t kids[3];
	for (int k = 0; k < 3; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			pthread_t t[3];
			for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, appender, (void *)(k * 10 + i));
			int bad = 0;
			for (int i = 0; i < 3; i++) {
				void *r;
				pthread_join(t[i], &r);
				bad |= r != NULL;
			}
			_exit(bad);
		}
	}
	for (int k = 0; k < 3; k++) {
		int st;
		assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	khsm_audit_summary_t *s = NULL;
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	assert_int_equal(s->lines, 3 * 3 * 40);
	khsm_audit_summary_free(s);
}

/* -- files the guard appends to: never through a link, never someone else's -- */

static void test_open_refuses_planted(void **state)
{
	fx_t *fx = *state;
	char target[200], other[200];
	snprintf(target, sizeof(target), "%s/target", fx->dir);
	snprintf(other, sizeof(other), "%s/not-yet", fx->dir);
	/* A symbolic link to an existing file: refused, the file untouched. */
	spit(target, "precious\n", 9);
	assert_int_equal(symlink(target, fx->path), 0);
	assert_int_equal(khsm_audit_write(fx->path, "\"fn\":\"x\",\"rv\":\"y\"", false), KHSM_EPERM);
	assert_non_null(strstr(khsm_err_last_detail(), "symbolic link"));
	size_t len;
	char *t = slurp(target, &len);
	assert_int_equal(len, 9);
	free(t);
	/* A dangling link to a path that does not exist yet: nothing is created. */
	unlink(fx->path);
	assert_int_equal(symlink(other, fx->path), 0);
	int fd = -1;
	assert_int_equal(khsm_audit_open_file(fx->path, "lock file", KHSM_AUDIT_FILE_SHARED, &fd), KHSM_EPERM);
	assert_int_equal(access(other, F_OK), -1);
	unlink(fx->path);
	/* A FIFO: refused at once (no hang waiting for a reader). */
	assert_int_equal(mkfifo(fx->path, 0600), 0);
	assert_int_equal(khsm_audit_open(fx->path, &fd), KHSM_EIO);
	assert_non_null(strstr(khsm_err_last_detail(), "a FIFO"));
	unlink(fx->path);
	/* A hard link to another file: refused. */
	assert_int_equal(link(target, fx->path), 0);
	assert_int_equal(khsm_audit_open(fx->path, &fd), KHSM_EPERM);
	assert_non_null(strstr(khsm_err_last_detail(), "hard links"));
	unlink(fx->path);
	if (geteuid() == 0) {
		/* Someone else's file (nobody, 65534): refused, naming who is expected. */
		spit(fx->path, "", 0);
		assert_int_equal(chown(fx->path, 65534, 65534), 0);
		assert_int_equal(khsm_audit_open(fx->path, &fd), KHSM_EPERM);
		assert_non_null(strstr(khsm_err_last_detail(), "expected root"));
		/* Unless the directory is shared with the file's group (Debian's
		 * /var/lib/knot, root:knot 0770): the service's own file. */
		assert_int_equal(chown(fx->dir, 0, 65534), 0);
		assert_int_equal(chmod(fx->dir, 0770), 0);
		assert_int_equal(khsm_audit_open(fx->path, &fd), KHSM_EOK);
		close(fd);
		assert_int_equal(chmod(fx->dir, 0700), 0);
		assert_int_equal(chown(fx->dir, 0, 0), 0);
		unlink(fx->path);
		/* Created by root in a directory of another user: that user's, 0660,
		 * set through the descriptor. */
		assert_int_equal(chown(fx->dir, 65534, 65534), 0);
		assert_int_equal(khsm_audit_open(fx->path, &fd), KHSM_EOK);
		close(fd);
		struct stat st;
		assert_int_equal(lstat(fx->path, &st), 0);
		assert_int_equal(st.st_uid, 65534);
		assert_int_equal(st.st_mode & 07777, 0660);
		/* The anchor must be root's, in a directory only root writes. */
		char anchor[200];
		snprintf(anchor, sizeof(anchor), "%s/anchor", fx->dir);
		assert_int_equal(khsm_audit_anchor_write(anchor, 1, "00", "t"), KHSM_EPERM);
		assert_non_null(strstr(khsm_err_last_detail(), "must belong to root"));
		assert_int_equal(chown(fx->dir, 0, 0), 0);
	}
}

/* -- anchors: what the writer of the log cannot forge -- */

static char *anchor_path(fx_t *fx)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/anchor", fx->dir) > 0);
	return p;
}

/* Anchor the log as the guard does: head of the file, appended to the anchor. */
static void anchor_now(const char *log, const char *anchor)
{
	int fd = -1;
	assert_int_equal(khsm_audit_open(log, &fd), KHSM_EOK);
	unsigned long lines = 0;
	char head[KHSM_AUDIT_HASH_SIZE];
	assert_int_equal(khsm_audit_head(fd, &lines, head), KHSM_EOK);
	close(fd);
	assert_int_equal(khsm_audit_anchor_write(anchor, lines, head, "test"), KHSM_EOK);
}

static int verify_anchor(const char *log, const char *anchor, const char *head, khsm_audit_summary_t **s)
{
	khsm_audit_check_t c = { .head = head, .anchor_file = anchor };
	*s = NULL;
	return khsm_audit_verify_check(log, &c, s);
}

/* Rewrite the log from scratch with n lines (recomputed chain). */
static void rewrite(const char *log, int n)
{
	unlink(log);
	for (int i = 0; i < n; i++) {
		char body[128];
		snprintf(body, sizeof(body), "\"time\":\"2025-03-01T10:00:00.000Z\",\"fn\":\"C_Verify\",\"rv\":\"CKR_OK\",\"f\":%d", i);
		assert_int_equal(khsm_audit_write(log, body, false), KHSM_EOK);
	}
}

static void test_anchor(void **state)
{
	fx_t *fx = *state;
	if (geteuid() != 0) {
		/* An anchor is root's by design; the suite runs as root (tests/run.sh). */
		fail_msg("test_anchor needs root");
	}
	char *anchor = anchor_path(fx);
	write_lines(fx->path, 4);
	anchor_now(fx->path, anchor);
	write_lines(fx->path, 3);
	anchor_now(fx->path, anchor);
	struct stat st;
	assert_int_equal(stat(anchor, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(st.st_mode & 07777, 0644);
	khsm_audit_summary_t *s = NULL;
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_EOK);
	assert_int_equal(s->anchor_count, 2);
	assert_int_equal(s->anchors_matched, 2);
	char head[KHSM_AUDIT_HASH_SIZE];
	memcpy(head, s->head, sizeof(head));
	khsm_audit_summary_free(s);
	/* More lines after the last anchor are fine. */
	write_lines(fx->path, 1);
	assert_int_equal(verify_anchor(fx->path, anchor, head, &s), KHSM_EOK);
	assert_true(s->head_found);
	assert_int_equal(s->head_line, 7);
	khsm_audit_summary_free(s);
	size_t len;
	char *saved = slurp(fx->path, &len);

	/* A full rewrite with a recomputed chain: its own chain is intact ... */
	rewrite(fx->path, 8);
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	khsm_audit_summary_free(s);
	/* ... but neither the anchor nor the recorded head match. */
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_ECRYPTO);
	assert_int_equal(s->broken_line, 4);
	assert_non_null(strstr(s->reason, "the log was rewritten"));
	khsm_audit_summary_free(s);
	assert_int_equal(verify_anchor(fx->path, NULL, head, &s), KHSM_ECRYPTO);
	assert_non_null(strstr(s->reason, "is not the hash of any line"));
	khsm_audit_summary_free(s);

	/* The log deleted: a finding, not a read error. */
	unlink(fx->path);
	assert_int_equal(verify_file(fx->path, &s), KHSM_ENOENT);
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_ECRYPTO);
	assert_true(s->missing);
	assert_non_null(strstr(s->reason, "the log is missing"));
	khsm_audit_summary_free(s);
	/* A new chain in its place (deleted, then the guard wrote on). */
	rewrite(fx->path, 2);
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_ECRYPTO);
	assert_non_null(strstr(s->reason, "lines were removed from the end"));
	khsm_audit_summary_free(s);

	/* Tail truncation: the last 3 lines (two of them anchored) cut. */
	char *copy = strdup(saved);
	char *cut = copy + len;
	for (int i = 0; i < 4; i++) {
		do cut--; while (cut > copy && cut[-1] != '\n');
	}
	spit(fx->path, copy, (size_t)(cut - copy));
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);   /* the file alone cannot tell */
	khsm_audit_summary_free(s);
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_ECRYPTO);
	assert_non_null(strstr(s->reason, "the log ends after line 4"));
	khsm_audit_summary_free(s);
	free(copy);

	/* A forged tail: the last 4 lines replaced by others that chain. */
	spit(fx->path, saved, len);
	char *lines_copy = strdup(saved);
	char *tail = lines_copy + len;
	for (int i = 0; i < 4; i++) {
		do tail--; while (tail > lines_copy && tail[-1] != '\n');
	}
	spit(fx->path, lines_copy, (size_t)(tail - lines_copy));
	for (int i = 0; i < 4; i++) {
		assert_int_equal(khsm_audit_write(fx->path, "\"time\":\"2025-03-09T00:00:00.000Z\",\"fn\":\"C_Verify\",\"rv\":\"CKR_OK\"", false), KHSM_EOK);
	}
	assert_int_equal(verify_file(fx->path, &s), KHSM_EOK);
	khsm_audit_summary_free(s);
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_ECRYPTO);
	assert_int_equal(s->broken_line, 7);
	khsm_audit_summary_free(s);
	free(lines_copy);

	/* A torn line then more lines: reported, the rest verified, anchors too. */
	spit(fx->path, saved, len - 10);
	write_lines(fx->path, 2);
	anchor_now(fx->path, anchor);
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_EOK);
	assert_int_equal(s->incident_count, 1);
	assert_int_equal(s->incidents[0].line, 8);
	assert_int_equal(s->anchors_matched, 3);
	khsm_audit_summary_free(s);

	/* A malformed anchor file is a usage problem, not a verdict on the log. */
	spit(anchor, "2025 lines=x head=00\n", 21);
	assert_int_equal(verify_anchor(fx->path, anchor, NULL, &s), KHSM_EPARSE);
	assert_int_equal(verify_anchor(fx->path, NULL, "xyz", &s), KHSM_EINVAL);
	free(saved);
	free(anchor);
}

static void test_text_escape(void **state)
{
	(void)state;
	char *t = NULL;
	assert_int_equal(khsm_audit_text_escape("a\x1b[2Jb\\c\xc3\xa9\xc2\x9b\xff", 13, &t), KHSM_EOK);
	assert_string_equal(t, "a\\x1b[2Jb\\\\c\xc3\xa9\\xc2\\x9b\\xff");
	free(t);
	/* A line in words: a label with an escape sequence is printed escaped. */
	char prev[KHSM_AUDIT_HASH_SIZE];
	assert_int_equal(khsm_audit_hash("x", 1, prev), KHSM_EOK);
	char *line = NULL;
	assert_true(asprintf(&line, "{\"time\":\"T\",\"fn\":\"C_Sign\",\"label\":\"k\\u001b]0;owned\\u0007\",\"rv\":\"CKR_OK\",\"prev\":\"%s\"}", prev) > 0);
	assert_int_equal(khsm_audit_line_text(line, strlen(line), &t), KHSM_EOK);
	assert_non_null(strstr(t, ": k\\x1b]0;owned\\x07 -> CKR_OK"));
	assert_null(strchr(t, '\x1b'));
	free(t);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_writer_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_last_line, setup, teardown),
		cmocka_unit_test(test_summary),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_json_string),
		cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses_planted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_anchor, setup, teardown),
		cmocka_unit_test(test_text_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
