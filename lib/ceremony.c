/* Offline-KSK cycle and the reading of KSR, SKR and show-offline text.
 *
 * Verified on Knot 3.2.6:
 *  - `keymgr ZONE generate-ksr FROM TO` prints one ";; KeySigningRequest 1.0
 *    T (ISO) ===" set per DNSKEY-set change and one at TO; without FROM it
 *    starts at the last offline record.
 *  - `keymgr ZONE sign-ksr FILE` (KSK side) answers every KSR set and adds
 *    a set whenever the previous signature has only rrsig-refresh left.
 *  - `keymgr ZONE validate-skr FILE` on a tampered SKR prints "error: invalid
 *    SignedKeyResponse …", then "OK", and exits 0: only the error line tells.
 *  - `keymgr ZONE import-skr FILE` replaces the offline records from the
 *    SKR's first set on and keeps the earlier ones.
 *  - after the last set, knotd keeps serving it ("using last offline KSK
 *    records available") until its RRSIG expires. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

#include "ceremony.h"
#include "error.h"
#include "internal.h"
#include "knot.h"

/* -- parsing --------------------------------------------------------------- */

_public_
void khsm_strv_free(char **v, size_t count)
{
	for (size_t i = 0; v && i < count; i++) {
		free(v[i]);
	}
	free(v);
}

_public_
void khsm_keysets_clear(khsm_keysets_t *sets)
{
	if (!sets) {
		return;
	}
	for (size_t i = 0; i < sets->count; i++) {
		khsm_strv_free(sets->sets[i].dnskeys, sets->sets[i].dnskey_count);
	}
	free(sets->sets);
	sets->sets = NULL;
	sets->count = 0;
}

_public_
size_t khsm_keysets_rrsig_count(const khsm_keysets_t *sets)
{
	size_t n = 0;
	for (size_t i = 0; sets && i < sets->count; i++) {
		n += sets->sets[i].rrsig_count;
	}
	return n;
}


/* RRSIG time: YYYYMMDDHHMMSS (UTC) or a plain number of seconds. */
static bool parse_sig_time(const char *s, int64_t *out)
{
	uint64_t v;
	if (!khsm_parse_u64(s, UINT64_MAX, &v)) {
		return false;
	}
	if (strlen(s) != 14) {
		*out = (int64_t)v;
		return v <= UINT32_MAX;
	}
	struct tm tm = { 0 };
	if (sscanf(s, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &tm.tm_sec) != 6) {
		return false;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	*out = (int64_t)timegm(&tm);
	return true;
}

static bool same_name(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.') la--;
	if (lb && b[lb - 1] == '.') lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

typedef struct {
	char **tok;
	size_t n, cap;
} toks_t;

static void toks_clear(toks_t *t)
{
	khsm_strv_free(t->tok, t->n);
	*t = (toks_t) { 0 };
}

static int toks_add(toks_t *t, const char *s, size_t len)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **g = realloc(t->tok, cap * sizeof(*g));
		if (!g) return KHSM_ENOMEM;
		t->tok = g;
		t->cap = cap;
	}
	t->tok[t->n] = strndup(s, len);
	if (!t->tok[t->n]) return KHSM_ENOMEM;
	t->n++;
	return KHSM_EOK;
}

/* Split one line into tokens, dropping a ';' comment; track parentheses. */
static int tokenize_line(const char *line, size_t len, toks_t *t, int *depth)
{
	size_t i = 0;
	while (i < len) {
		char c = line[i];
		if (c == ';') {
			break;
		}
		if (c == '(' || c == ')') {
			*depth += c == '(' ? 1 : -1;
			if (*depth < 0 || *depth > 1) {
				return KHSM_EPARSE;
			}
			i++;
			continue;
		}
		if (isspace((unsigned char)c)) {
			i++;
			continue;
		}
		size_t s = i;
		while (i < len && !isspace((unsigned char)line[i]) && line[i] != '(' && line[i] != ')' &&
		       line[i] != ';') {
			i++;
		}
		int r = toks_add(t, line + s, i - s);
		if (r != KHSM_EOK) return r;
	}
	return KHSM_EOK;
}

/* ";; KeySigningRequest 1.0 T (…) ===", ";; SignedKeyResponse 1.0 T (…) ===",
 * ";; Offline records for T (…) ===". *ts = -1 for the trailer. */
static int parse_header(const char *line, int64_t *ts)
{
	char kind[32], w2[32], w3[32];
	if (sscanf(line, ";; %31s %31s %31s", kind, w2, w3) != 3) {
		return KHSM_EPARSE;
	}
	const char *num = NULL;
	if (strcmp(kind, "KeySigningRequest") == 0 || strcmp(kind, "SignedKeyResponse") == 0) {
		if (strcmp(w2, "1.0") != 0) {
			return KHSM_EPARSE;
		}
		if (strcmp(w3, "generated") == 0) {
			*ts = -1;
			return KHSM_EOK;
		}
		num = w3;
	} else if (strcmp(kind, "Offline") == 0 && strcmp(w2, "records") == 0 &&
	           strcmp(w3, "for") == 0) {
		char w4[32];
		if (sscanf(line, ";; Offline records for %31s", w4) != 1) {
			return KHSM_EPARSE;
		}
		uint64_t v;
		if (!khsm_parse_u64(w4, UINT64_MAX, &v) || v > INT64_MAX) return KHSM_EPARSE;
		*ts = (int64_t)v;
		return KHSM_EOK;
	} else {
		return KHSM_EPARSE;
	}
	uint64_t v;
	if (!khsm_parse_u64(num, UINT64_MAX, &v) || v > INT64_MAX) {
		return KHSM_EPARSE;
	}
	*ts = (int64_t)v;
	return KHSM_EOK;
}

static int add_record(khsm_keyset_t *set, const toks_t *t, const char *zone)
{
	size_t i = 0;
	if (t->n < 3 || !same_name(t->tok[0], zone)) {
		khsm_err_detail("record of '%s', not of zone %s", t->n ? t->tok[0] : "", zone);
		return KHSM_EPARSE;
	}
	i = 1;
	uint64_t ttl;
	if (khsm_parse_u64(t->tok[i], UINT64_MAX, &ttl)) i++;
	if (i < t->n && strcasecmp(t->tok[i], "IN") == 0) i++;
	if (i >= t->n) return KHSM_EPARSE;
	const char *type = t->tok[i++];
	if (strcasecmp(type, "DNSKEY") == 0) {
		if (t->n - i < 4) return KHSM_EPARSE;
		uint64_t flags, proto, alg;
		if (!khsm_parse_u64(t->tok[i], UINT16_MAX, &flags) || !khsm_parse_u64(t->tok[i + 1], 255, &proto) ||
		    !khsm_parse_u64(t->tok[i + 2], 255, &alg) || proto != 3) {
			return KHSM_EPARSE;
		}
		size_t len = 64;
		for (size_t k = i + 3; k < t->n; k++) len += strlen(t->tok[k]);
		char *rd = malloc(len);
		if (!rd) return KHSM_ENOMEM;
		int off = snprintf(rd, len, "%" PRIu64 " 3 %" PRIu64 " ", flags, alg);
		for (size_t k = i + 3; k < t->n; k++) {
			off += snprintf(rd + off, len - (size_t)off, "%s", t->tok[k]);
		}
		char **g = realloc(set->dnskeys, (set->dnskey_count + 1) * sizeof(*g));
		if (!g) { free(rd); return KHSM_ENOMEM; }
		set->dnskeys = g;
		set->dnskeys[set->dnskey_count++] = rd;
		if (flags & 1) set->ksk_count++;
	} else if (strcasecmp(type, "RRSIG") == 0) {
		/* covered alg labels ttl expiration inception tag signer sig */
		if (t->n - i < 9) return KHSM_EPARSE;
		int64_t exp;
		if (!parse_sig_time(t->tok[i + 4], &exp)) return KHSM_EPARSE;
		set->rrsig_count++;
		if (set->rrsig_expire == 0 || exp < set->rrsig_expire) set->rrsig_expire = exp;
	} else if (strcasecmp(type, "CDNSKEY") == 0 || strcasecmp(type, "CDS") == 0) {
		/* published with the set; nothing to check here */
	} else {
		khsm_err_detail("unexpected record type %s", type);
		return KHSM_EPARSE;
	}
	return KHSM_EOK;
}

_public_
int khsm_keysets_parse(const char *text, const char *zone, khsm_keysets_t *out)
{
	if (!text || !zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_keysets_t sets = { 0 };
	toks_t t = { 0 };
	int depth = 0, r = KHSM_EOK;
	size_t lineno = 0, rec_line = 0;
	bool trailer = false;
	const char *p = text;
	while (*p && r == KHSM_EOK) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		lineno++;
		if (depth == 0 && len >= 2 && p[0] == ';' && p[1] == ';') {
			char *line = strndup(p, len);
			int64_t ts = 0;
			r = line ? parse_header(line, &ts) : KHSM_ENOMEM;
			free(line);
			if (r != KHSM_EOK) {
				khsm_err_detail("line %zu: not a KSR/SKR header", lineno);
				break;
			}
			if (ts < 0) {
				trailer = true;
			} else if (trailer || (sets.count && ts < sets.sets[sets.count - 1].timestamp)) {
				khsm_err_detail("line %zu: key set out of order", lineno);
				r = KHSM_EPARSE;
			} else {
				khsm_keyset_t *g = realloc(sets.sets, (sets.count + 1) * sizeof(*g));
				if (!g) { r = KHSM_ENOMEM; break; }
				sets.sets = g;
				sets.sets[sets.count++] = (khsm_keyset_t) { .timestamp = ts };
			}
		} else {
			if (depth == 0 && t.n == 0) rec_line = lineno;
			r = tokenize_line(p, len, &t, &depth);
			if (r != KHSM_EOK) {
				khsm_err_detail("line %zu: unbalanced parentheses", lineno);
			} else if (depth == 0 && t.n > 0) {
				if (sets.count == 0 || trailer) {
					khsm_err_detail("line %zu: record outside a key set", rec_line);
					r = KHSM_EPARSE;
				} else {
					r = add_record(&sets.sets[sets.count - 1], &t, zone);
					if (r == KHSM_EPARSE) {
						const char *d = khsm_err_last_detail();
						char why[300];
						snprintf(why, sizeof(why), "%s", d ? d : "malformed record");
						khsm_err_detail("line %zu: %s", rec_line, why);
					}
				}
				toks_clear(&t);
			}
		}
		p = nl ? nl + 1 : p + len;
	}
	if (r == KHSM_EOK && depth != 0) {
		khsm_err_detail("line %zu: unterminated record", rec_line);
		r = KHSM_EPARSE;
	}
	toks_clear(&t);
	if (r != KHSM_EOK) {
		khsm_keysets_clear(&sets);
		return r;
	}
	*out = sets;
	return KHSM_EOK;
}

/* -- checks ---------------------------------------------------------------- */

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(s, list[i]) == 0) return true;
	}
	return false;
}

static const khsm_keyset_t *find_set(const khsm_keysets_t *sets, int64_t ts)
{
	for (size_t i = 0; i < sets->count; i++) {
		if (sets->sets[i].timestamp == ts) return &sets->sets[i];
	}
	return NULL;
}

static bool is_ksk(const char *rdata) { return strncmp(rdata, "257 ", 4) == 0; }

_public_
int khsm_skr_check(const khsm_keysets_t *ksr, const khsm_keysets_t *skr,
                   const char *const *ksk, size_t ksk_count)
{
	if (!ksr || !skr || (ksk_count && !ksk)) {
		return KHSM_EINVAL;
	}
	if (ksr->count == 0 || skr->count == 0) {
		khsm_err_detail("the %s has no key set", skr->count == 0 ? "SKR" : "KSR");
		return KHSM_ECRYPTO;
	}
	if (ksk_count == 0) {
		khsm_err_detail("no KSK on the KSK side to check the SKR against");
		return KHSM_ECRYPTO;
	}
	for (size_t i = 0; i < skr->count; i++) {
		const khsm_keyset_t *s = &skr->sets[i];
		if (s->rrsig_count == 0 || s->ksk_count == 0) {
			khsm_err_detail("SKR set %" PRId64 " has %s", s->timestamp,
			                s->rrsig_count ? "no KSK" : "no signature");
			return KHSM_ECRYPTO;
		}
		for (size_t k = 0; k < s->dnskey_count; k++) {
			if (is_ksk(s->dnskeys[k]) && !in_list(s->dnskeys[k], ksk, ksk_count)) {
				khsm_err_detail("SKR set %" PRId64 " has a KSK that is not the card's KSK: %.40s…",
				                s->timestamp, s->dnskeys[k]);
				return KHSM_ECRYPTO;
			}
		}
	}
	if (skr->sets[0].timestamp != ksr->sets[0].timestamp ||
	    skr->sets[skr->count - 1].timestamp != ksr->sets[ksr->count - 1].timestamp) {
		khsm_err_detail("the SKR covers %" PRId64 "..%" PRId64 ", the KSR %" PRId64 "..%" PRId64,
		                skr->sets[0].timestamp, skr->sets[skr->count - 1].timestamp,
		                ksr->sets[0].timestamp, ksr->sets[ksr->count - 1].timestamp);
		return KHSM_ECRYPTO;
	}
	for (size_t i = 0; i < ksr->count; i++) {
		const khsm_keyset_t *q = &ksr->sets[i];
		const khsm_keyset_t *s = find_set(skr, q->timestamp);
		if (!s) {
			khsm_err_detail("KSR set %" PRId64 " is missing from the SKR", q->timestamp);
			return KHSM_ECRYPTO;
		}
		size_t zsk_in_s = 0;
		for (size_t k = 0; k < s->dnskey_count; k++) {
			if (!is_ksk(s->dnskeys[k])) {
				zsk_in_s++;
				if (!in_list(s->dnskeys[k], (const char *const *)q->dnskeys, q->dnskey_count)) {
					khsm_err_detail("SKR set %" PRId64 " has a ZSK the KSR did not ask for",
					                q->timestamp);
					return KHSM_ECRYPTO;
				}
			}
		}
		if (zsk_in_s != q->dnskey_count) {
			khsm_err_detail("SKR set %" PRId64 " lacks a ZSK of the KSR", q->timestamp);
			return KHSM_ECRYPTO;
		}
	}
	return KHSM_EOK;
}

/* -- keymgr steps ---------------------------------------------------------- */

_public_
int khsm_ceremony_ksk_dnskeys(const char *ksk_conf, const char *zone, char ***rdata_ptr,
                              size_t *count_ptr)
{
	const char *args[] = { zone, "dnskey", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(ksk_conf, args, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	/* "zone. DNSKEY 257 3 13 BASE64" lines: reuse the set parser. */
	size_t len = strlen(res.out) + 64;
	char *text = malloc(len);
	if (!text) {
		khsm_run_clear(&res);
		return KHSM_ENOMEM;
	}
	snprintf(text, len, ";; Offline records for 0 (x) ===\n%s", res.out);
	khsm_run_clear(&res);
	khsm_keysets_t sets = { 0 };
	r = khsm_keysets_parse(text, zone, &sets);
	free(text);
	if (r != KHSM_EOK) {
		return r;
	}
	char **v = sets.sets[0].dnskeys;
	size_t n = sets.sets[0].dnskey_count;
	sets.sets[0].dnskeys = NULL;
	sets.sets[0].dnskey_count = 0;
	khsm_keysets_clear(&sets);
	*rdata_ptr = v;
	*count_ptr = n;
	return KHSM_EOK;
}

_public_
int khsm_offline_period(const char *zsk_conf, const char *zone, khsm_offline_period_t *period)
{
	const char *args[] = { zone, "show-offline", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(zsk_conf, args, &res);
	if (r != KHSM_EOK) {
		/* 3.2.6 with no records at all: "error: not exists" */
		const char *d = khsm_err_last_detail();
		if (d && strstr(d, "not exists")) {
			khsm_err_clear();
			*period = (khsm_offline_period_t) { 0 };
			return KHSM_EOK;
		}
		return r;
	}
	khsm_keysets_t sets = { 0 };
	r = khsm_keysets_parse(res.out, zone, &sets);
	khsm_run_clear(&res);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_offline_period_t p = { 0 };
	if (sets.count > 0) {
		p.present = true;
		p.first = sets.sets[0].timestamp;
		p.end = sets.sets[sets.count - 1].timestamp;
		p.valid_until = sets.sets[sets.count - 1].rrsig_expire;
	}
	khsm_keysets_clear(&sets);
	*period = p;
	return KHSM_EOK;
}

_public_
int khsm_write_atomic(const char *path, const char *data, size_t len, unsigned mode)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		return KHSM_ENOMEM;
	}
	int fd = mkstemp(tmp);
	if (fd < 0) {
		khsm_err_detail("cannot create a file next to %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	bool ok = fchmod(fd, (mode_t)mode) == 0;
	for (size_t off = 0; ok && off < len;) {
		ssize_t w = write(fd, data + off, len - off);
		if (w < 0 && errno == EINTR) continue;
		ok = w > 0;
		if (ok) off += (size_t)w;
	}
	ok = ok && fsync(fd) == 0;
	int err = errno;
	ok = (close(fd) == 0) && ok;
	if (ok && rename(tmp, path) != 0) {
		err = errno;
		ok = false;
	}
	if (!ok) {
		unlink(tmp);
		khsm_err_detail("cannot write %s: %s", path, strerror(err));
		return KHSM_EIO;
	}
	return KHSM_EOK;
}

_public_
int khsm_ceremony_file_stem(const char *zone, char **name_ptr)
{
	if (!zone || !*zone || strchr(zone, '/')) {
		return KHSM_EINVAL;
	}
	char *s = strcmp(zone, ".") == 0 ? strdup("root") : strdup(zone);
	if (!s) return KHSM_ENOMEM;
	size_t l = strlen(s);
	if (l > 1 && s[l - 1] == '.') s[l - 1] = '\0';
	*name_ptr = s;
	return KHSM_EOK;
}

_public_
void khsm_ceremony_result_clear(khsm_ceremony_result_t *res)
{
	if (!res) return;
	free(res->ksr_path);
	free(res->skr_path);
	*res = (khsm_ceremony_result_t) { 0 };
}

static int keymgr_text(const char *conf, const char *const *args, char **out_ptr)
{
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(conf, args, &res);
	if (r != KHSM_EOK) return r;
	*out_ptr = KHSM_STEAL(res.out);
	khsm_run_clear(&res);
	return KHSM_EOK;
}

/* Prefix the current detail with the step that failed. */
static int step_failed(int r, const char *step)
{
	const char *d = khsm_err_last_detail();
	char why[1500];
	snprintf(why, sizeof(why), "%s", d ? d : khsm_strerror(r));
	khsm_err_detail("%s: %s", step, why);
	return r;
}

_public_
int khsm_ceremony_zone(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_result_t *out)
{
	if (!c || !zone || !out || !c->zsk_conf || !c->ksk_conf || !c->archive_dir) {
		return KHSM_EINVAL;
	}
	khsm_ceremony_result_t res = { 0 };
	khsm_offline_period_t before = { 0 };
	int r = khsm_offline_period(c->zsk_conf, zone, &before);
	if (r != KHSM_EOK) return step_failed(r, "show-offline (ZSK side)");
	/* Reruns shortly after a ceremony must not use the card again: a period
	 * that ends at most min(1 day, a tenth of the span) before until counts
	 * as covered. */
	int64_t slack = (c->until - c->now) / 10;
	if (slack > 86400) slack = 86400;
	if (slack < 0) slack = 0;
	if (before.present && before.end >= c->until - slack) {
		res.skipped = true;
		res.from = before.first;
		res.end = before.end;
		res.valid_until = before.valid_until;
		*out = res;
		return KHSM_EOK;
	}
	/* Continue from the last pre-signed set while it lies ahead; a period
	 * that already ended (or none) starts now. */
	char from_s[24], until_s[24];
	if (before.present && before.end > c->now) {
		snprintf(from_s, sizeof(from_s), "%" PRId64, before.end);
	} else {
		/* keymgr's own now, after pregenerate made the first ZSK active */
		snprintf(from_s, sizeof(from_s), "+0");
	}
	snprintf(until_s, sizeof(until_s), "%" PRId64, c->until);

	char **ksk = NULL;
	size_t nksk = 0;
	r = khsm_ceremony_ksk_dnskeys(c->ksk_conf, zone, &ksk, &nksk);
	if (r != KHSM_EOK) return step_failed(r, "dnskey (KSK side)");

	_cleanup_free_ char *stem = NULL;
	_cleanup_free_ char *ksr_text = NULL;
	_cleanup_free_ char *skr_text = NULL;
	khsm_keysets_t ksr = { 0 }, skr = { 0 };
	const char *pre_args[] = { zone, "pregenerate", until_s, NULL };
	const char *ksr_args[] = { zone, "generate-ksr", from_s, until_s, NULL };
	r = khsm_ceremony_file_stem(zone, &stem);
	if (r == KHSM_EOK && (asprintf(&res.ksr_path, "%s/%s.ksr", c->archive_dir, stem) < 0 ||
	                      asprintf(&res.skr_path, "%s/%s.skr", c->archive_dir, stem) < 0)) {
		r = KHSM_ENOMEM;
	}
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, pre_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) step_failed(r, "pregenerate (ZSK side)");
	}
	if (r == KHSM_EOK && (r = keymgr_text(c->zsk_conf, ksr_args, &ksr_text)) != KHSM_EOK) {
		step_failed(r, "generate-ksr (ZSK side)");
	}
	if (r == KHSM_EOK && (r = khsm_keysets_parse(ksr_text, zone, &ksr)) != KHSM_EOK) {
		step_failed(r, "KSR");
	}
	if (r == KHSM_EOK) {
		r = khsm_write_atomic(res.ksr_path, ksr_text, strlen(ksr_text), 0640);
	}
	const char *sign_args[] = { zone, "sign-ksr", res.ksr_path, NULL };
	if (r == KHSM_EOK && (r = keymgr_text(c->ksk_conf, sign_args, &skr_text)) != KHSM_EOK) {
		step_failed(r, "sign-ksr (KSK side, card)");
	}
	if (r == KHSM_EOK) {
		r = khsm_write_atomic(res.skr_path, skr_text, strlen(skr_text), 0640);
	}
	/* From here on a failure means the SKR is bad: keep it as .invalid. */
	bool bad = false;
	const char *val_args[] = { zone, "validate-skr", res.skr_path, NULL };
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, val_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) {
			bad = true;
			step_failed(r, "validate-skr");
		}
	}
	if (r == KHSM_EOK && (r = khsm_keysets_parse(skr_text, zone, &skr)) != KHSM_EOK) {
		bad = true;
		step_failed(r, "SKR");
	}
	if (r == KHSM_EOK && (r = khsm_skr_check(&ksr, &skr, (const char *const *)ksk, nksk)) != KHSM_EOK) {
		bad = true;
		step_failed(r, "SKR check");
	}
	if (bad) {
		_cleanup_free_ char *inv = NULL;
		if (asprintf(&inv, "%s.invalid", res.skr_path) >= 0 && rename(res.skr_path, inv) == 0) {
			free(res.skr_path);
			res.skr_path = KHSM_STEAL(inv);
		}
		const char *d = khsm_err_last_detail();
		char why[1500];
		snprintf(why, sizeof(why), "%s", d ? d : "");
		khsm_err_detail("%s; not imported, kept as %s", why, res.skr_path);
	}
	const char *imp_args[] = { zone, "import-skr", res.skr_path, NULL };
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, imp_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) step_failed(r, "import-skr (ZSK side)");
	}
	khsm_offline_period_t after = { 0 };
	if (r == KHSM_EOK && (r = khsm_offline_period(c->zsk_conf, zone, &after)) != KHSM_EOK) {
		step_failed(r, "show-offline after import");
	}
	if (r == KHSM_EOK && (!after.present || after.end != skr.sets[skr.count - 1].timestamp)) {
		khsm_err_detail("after import-skr the offline records end at %" PRId64 ", not at the "
		                "SKR's end %" PRId64, after.end, skr.sets[skr.count - 1].timestamp);
		r = KHSM_ETOOL;
	}
	if (r == KHSM_EOK) {
		res.from = skr.sets[0].timestamp;
		res.end = after.end;
		res.valid_until = after.valid_until;
		res.signatures = khsm_keysets_rrsig_count(&skr);
	}
	khsm_keysets_clear(&ksr);
	khsm_keysets_clear(&skr);
	khsm_strv_free(ksk, nksk);
	if (r != KHSM_EOK) {
		khsm_ceremony_result_clear(&res);
		return r;
	}
	*out = res;
	return KHSM_EOK;
}
