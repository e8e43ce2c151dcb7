/* Audit log: verification of the chain and its anchors, and the summary. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "audit_internal.h"
#include "error.h"
#include "files.h"
#include "internal.h"

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


static int summarise(khsm_audit_summary_t *s, const khsm_audit_entry_t *e)
{
	if (e->time) {
		if (!s->first_time[0]) snprintf(s->first_time, sizeof(s->first_time), "%s", e->time);
		snprintf(s->last_time, sizeof(s->last_time), "%s", e->time);
	}
	if (e->pin) s->pin_lines++;
	if (khsm_audit_is_true(e->software)) s->software_ops++;
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
	if (sign && strcmp(rv, "CKR_OK") == 0 && !khsm_audit_is_true(e->query)) {
		char day[11] = "?";
		if (e->time && strlen(e->time) >= 10) snprintf(day, sizeof(day), "%.10s", e->time);
		char *key = NULL;
		int n;
		if (e->label && e->id) n = asprintf(&key, "%s id=%s", e->label, e->id);
		else if (e->label) n = asprintf(&key, "%s", e->label);
		else if (e->id) n = asprintf(&key, "id=%s", e->id);
		else n = asprintf(&key, "?");
		if (n < 0) return KHSM_ENOMEM;
		int r = sigs_add(s, day, key, khsm_audit_is_true(e->software));
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
	khsm_audit_entry_t m = { 0 };
	bool ok = khsm_audit_entry_parse(next, (size_t)(nl - next), &m) && m.fn && strcmp(m.fn, RESYNC) == 0 &&
	          m.torn && strcmp(m.torn, torn) == 0 && m.prev && strcmp(m.prev, head) == 0 && m.time;
	if (ok) snprintf(time_out, time_size, "%s", m.time);
	khsm_audit_entry_clear(&m);
	return ok;
}

static int verify_core(const char *text, size_t len, const khsm_audit_anchor_t *anchors, size_t n_anchors,
                       const char *anchor_name, const char *want_head, bool missing,
                       khsm_audit_summary_t *s)
{
	int r = khsm_audit_genesis_hash(s->head);
	khsm_audit_entry_t e = { 0 };
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
		khsm_audit_entry_clear(&e);
		const char *why = NULL;
		char whybuf[160];
		if (memchr(p, '\0', l)) why = "NUL byte in the line";
		else if (!khsm_audit_entry_parse(p, l, &e)) why = "not a JSON audit object";
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
		if (!e.fn || !e.time || (!e.rv && !marker && !khsm_audit_is_true(e.intent))) {
			BROKEN("missing \"fn\", \"rv\" or \"time\"");
		}
		if (marker) {
			snprintf(s->last_time, sizeof(s->last_time), "%s", e.time);
		} else if (khsm_audit_is_true(e.intent)) {
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
	khsm_audit_entry_clear(&e);
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

/* The log is read whole under a shared lock: a writer never leaves half a
 * line under our eyes. */
#define AUDIT_READ_MAX ((size_t)1 << 30)

static int read_all(const char *path, const char *what, char **buf_ptr, size_t *len_ptr, struct stat *st)
{
	const khsm_file_read_opts_t o = { .max = AUDIT_READ_MAX, .lock_shared = true, .what = what };
	return khsm_file_read(path, &o, buf_ptr, len_ptr, st);
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

