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

#include "archive.h"
#include "ceremony.h"
#include "retry.h"
#include "error.h"
#include "internal.h"
#include "kasp.h"
#include "knot.h"
#include "keystore.h"

#include <pthread.h>
#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/key.h>
#include <libdnssec/keystore.h>
#include <libdnssec/sign.h>
#include <libknot/libknot.h>

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
	uint64_t ttl = 0;
	bool has_ttl = khsm_parse_u64(t->tok[i], UINT32_MAX, &ttl);
	if (has_ttl) i++;
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
		set->dnskey_ttl = has_ttl ? (int64_t)ttl : -1;
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
				sets.sets[sets.count++] = (khsm_keyset_t) { .timestamp = ts, .dnskey_ttl = -1 };
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
	free(res->keymgr_reason);
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

/* -- signing KSRs with the card ------------------------------------------- */

/* Knot 3.2.6 src/knot/dnssec/rrset-sign.c: RRSIG_INCEPT_IN_PAST */
#define KHSM_RRSIG_INCEPT_IN_PAST (90 * 60)

typedef struct {
	char id[257];
	dnssec_key_t *key;         /* public and private (card) key */
} signer_key_t;

struct khsm_skr_signer {
	khsm_keystore_t *ks;
	bool force;                /* a login at the final PIN try is allowed */
	bool logged_in;            /* the first login succeeded */
	signer_key_t *keys;        /* private keys stay loaded: one card session */
	size_t count;
};

_public_
int khsm_skr_signer_open(const char *config, khsm_skr_signer_t **signer_ptr)
{
	if (!config || !signer_ptr) {
		return KHSM_EINVAL;
	}
	khsm_skr_signer_t *s = calloc(1, sizeof(*s));
	if (!s) return KHSM_ENOMEM;
	int r = khsm_keystore_open(config, &s->ks);
	if (r != KHSM_EOK) {
		free(s);
		return r;
	}
	*signer_ptr = s;
	return KHSM_EOK;
}

/*
 * The signer logs in explicitly, once, before any card key is loaded: token
 * flags first (final try refused unless force, locked always), then one
 * login through the URI's pin-source, outside any retry loop, held by the
 * keystore's keeper session for the whole run. libdnssec and GnuTLS never
 * get to log in on their own: they report a refused PIN as "not found" or
 * "signing error", which reads as a busy card and would be retried, one
 * try of the card each time. Only when the card forgot the login (removed
 * and back) does a retried operation log in again, with one explicit login
 * and the PIN the card accepted at the start of the run.
 */
_public_
int khsm_skr_signer_login(khsm_skr_signer_t *s, bool force)
{
	if (!s) {
		return KHSM_EINVAL;
	}
	if (s->logged_in) {
		return KHSM_EOK;
	}
	s->force = force;
	/* a busy card is waited for before the login, never by repeating it */
	int r = khsm_keystore_wait_ready(s->ks);
	if (r == KHSM_EOK) r = khsm_keystore_login(s->ks, NULL, force);
	s->logged_in = r == KHSM_EOK;
	return r;
}

/* Inside a card operation: the login holds, or is renewed once per try
 * after a removal; never a first login (that one is never retried). */
static int signer_relogin(khsm_skr_signer_t *s)
{
	if (!s->logged_in) {
		khsm_err_detail("the card keystore is not logged in");
		return KHSM_ELOGIN;
	}
	return khsm_keystore_relogin(s->ks, s->force);
}

_public_
void khsm_skr_signer_close(khsm_skr_signer_t *s)
{
	if (!s) return;
	for (size_t i = 0; i < s->count; i++) {
		dnssec_key_free(s->keys[i].key);
	}
	free(s->keys);
	khsm_keystore_close(s->ks);
	free(s);
}

/* "FLAGS 3 ALG BASE64" -> DNSKEY wire rdata. */
static int dnskey_text_to_wire(const char *text, dnssec_binary_t *out)
{
	unsigned flags, proto, alg;
	char b64[4096];
	if (sscanf(text, "%u %u %u %4095s", &flags, &proto, &alg, b64) != 4 || flags > 0xffff ||
	    proto > 255 || alg > 255) {
		return KHSM_EPARSE;
	}
	dnssec_binary_t in = { .data = (uint8_t *)b64, .size = strlen(b64) }, key = { 0 };
	if (dnssec_binary_from_base64(&in, &key) != DNSSEC_EOK) {
		return KHSM_EPARSE;
	}
	uint8_t *w = malloc(4 + key.size);
	if (!w) {
		dnssec_binary_free(&key);
		return KHSM_ENOMEM;
	}
	w[0] = (uint8_t)(flags >> 8);
	w[1] = (uint8_t)flags;
	w[2] = (uint8_t)proto;
	w[3] = (uint8_t)alg;
	memcpy(w + 4, key.data, key.size);
	out->data = w;
	out->size = 4 + key.size;
	dnssec_binary_free(&key);
	return KHSM_EOK;
}

struct load_op {
	khsm_skr_signer_t *s;
	const char *id;
	dnssec_key_t *key;
};

/* One try of loading a card key through libdnssec, which reports a busy card
 * as "not found": retried as busy while the login holds (a key really
 * missing costs the budget). A login lost meanwhile is a removal, retried
 * with one explicit login, never with GnuTLS's own. */
static int load_once(void *data)
{
	struct load_op *o = data;
	int r = signer_relogin(o->s);
	if (r != KHSM_EOK) return r;
	r = khsm_error_from_dnssec(dnssec_keystore_get_private(khsm_keystore_dnssec(o->s->ks),
	                                                       o->id, o->key));
	if (r == KHSM_ENOENT) {
		r = khsm_keystore_logged_in(o->s->ks) ? KHSM_EBUSY : KHSM_EREMOVED;
	}
	return r;
}

/* The card key of a KSK, loaded once per run. */
static int signer_key(khsm_skr_signer_t *s, const uint8_t *owner, const khsm_ksk_key_t *k,
                      dnssec_key_t **key_ptr)
{
	dnssec_binary_t rd = { 0 };
	int r = dnskey_text_to_wire(k->rdata, &rd);
	if (r != KHSM_EOK) return r;
	for (size_t i = 0; i < s->count; i++) {
		dnssec_binary_t have = { 0 };
		if (strcmp(s->keys[i].id, k->kasp.id) == 0 &&
		    dnssec_key_get_rdata(s->keys[i].key, &have) == DNSSEC_EOK &&
		    dnssec_binary_cmp(&have, &rd) == 0) {
			dnssec_binary_free(&rd);
			/* a shared KSK signs for several zones: set the signer name */
			r = khsm_error_from_dnssec(dnssec_key_set_dname(s->keys[i].key, owner));
			*key_ptr = s->keys[i].key;
			return r;
		}
	}
	dnssec_key_t *key = NULL;
	r = khsm_error_from_dnssec(dnssec_key_new(&key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_rdata(key, &rd));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_dname(key, owner));
	dnssec_binary_free(&rd);
	if (r == KHSM_EOK) {
		struct load_op op = { .s = s, .id = k->kasp.id, .key = key };
		r = khsm_card_op("loading the card key", load_once, &op);
		if (r != KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			char why[1024];
			snprintf(why, sizeof(why), "%s", d ? d : "");
			if (r == KHSM_EPIN_INCORRECT || r == KHSM_EPIN_LOCKED || r == KHSM_EPIN_FINAL_TRY) {
				khsm_err_detail("%s", why);   /* the login's own words and remedy */
			} else {
				khsm_err_detail("the card key %s cannot be used for signing: %s%s%s", k->kasp.id,
				                r == KHSM_EBUSY ? "the card stayed busy, or the key is not on it"
				                                : khsm_strerror(r), why[0] ? "; " : "", why);
			}
		}
	}
	signer_key_t *g = r == KHSM_EOK ? realloc(s->keys, (s->count + 1) * sizeof(*g)) : NULL;
	if (r == KHSM_EOK && !g) r = KHSM_ENOMEM;
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	s->keys = g;
	snprintf(s->keys[s->count].id, sizeof(s->keys[s->count].id), "%s", k->kasp.id);
	s->keys[s->count++].key = key;
	*key_ptr = key;
	return KHSM_EOK;
}

/* The states keymgr would compute for the KSK at every time of [first, last]
 * are "published, active, not ready", with no timer in between: the case the
 * signer reproduces (Knot 3.2.6 zone-keys.c set_key()). Active at first and
 * still at last, published at first, and no introduction timer (pre-active,
 * ready) still ahead. */
static int ksk_steady(const khsm_ksk_key_t *key, int64_t first, int64_t last)
{
	const khsm_kasp_key_t *k = &key->kasp;
	if (!k->ksk || k->zsk || k->public_only) {
		khsm_err_detail("key %s on the KSK side is %s", k->id,
		                k->public_only ? "public-only" : "not a plain KSK");
		return KHSM_ENOTSUP;
	}
	bool ahead = (k->pre_active != 0 && !khsm_kasp_reached(k->pre_active, first)) ||
	             (k->ready != 0 && !khsm_kasp_reached(k->ready, first));
	if (khsm_kasp_key_state(k, first) != KHSM_KEY_STATE_ACTIVE ||
	    khsm_kasp_key_state(k, last) != KHSM_KEY_STATE_ACTIVE ||
	    !khsm_kasp_reached(k->publish, first) || ahead) {
		khsm_err_detail("KSK %s is not published and active for the whole period (a KSK "
		                "rollover or removal is planned in it)", k->id);
		return KHSM_ENOTSUP;
	}
	return KHSM_EOK;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

typedef struct {
	char *buf;
	size_t len;
	FILE *f;
} text_t;

/* One SKR set at time now: KSKs + the KSR's ZSKs, signed by every KSK. */
struct sign_op {
	khsm_skr_signer_t *s;
	dnssec_key_t *key;
	const dnssec_binary_t *part1, *part2;
	dnssec_binary_t *sig;
};

/* One try of one RRSIG on the card. */
static int sign_once(void *data)
{
	struct sign_op *o = data;
	dnssec_binary_free(o->sig);
	int r = signer_relogin(o->s);   /* see khsm_skr_signer_login(): never GnuTLS's own */
	if (r != KHSM_EOK) return r;
	dnssec_sign_ctx_t *ctx = NULL;
	r = khsm_error_from_dnssec(dnssec_sign_new(&ctx, o->key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(ctx, o->part1));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(ctx, o->part2));
	if (r == KHSM_EOK) {
		int d = dnssec_sign_write(ctx, DNSSEC_SIGN_NORMAL, o->sig);
		r = d != DNSSEC_SIGN_ERROR ? khsm_error_from_dnssec(d) :
		    khsm_keystore_logged_in(o->s->ks) ? KHSM_EBUSY : KHSM_EREMOVED;
	}
	dnssec_sign_free(ctx);
	return r;
}

static int sign_set(khsm_skr_signer_t *s, dnssec_key_t *const *keys, size_t nkeys,
                    const knot_dname_t *owner, const knot_rdataset_t *zsks, uint32_t ttl,
                    int64_t now, int64_t lifetime, FILE *out, size_t *sigs)
{
	int r = KHSM_ENOMEM;
	knot_rrset_t *dnskey = knot_rrset_new(owner, KNOT_RRTYPE_DNSKEY, KNOT_CLASS_IN, ttl, NULL);
	knot_rrset_t *rrsig = knot_rrset_new(owner, KNOT_RRTYPE_RRSIG, KNOT_CLASS_IN, ttl, NULL);
	uint8_t *wire = malloc(KNOT_WIRE_MAX_PKTSIZE);
	char *dump = NULL;
	size_t dump_size = 0;
	if (!dnskey || !rrsig || !wire) goto done;
	r = KHSM_EOK;
	for (size_t i = 0; i < nkeys && r == KHSM_EOK; i++) {
		dnssec_binary_t rd = { 0 };
		r = khsm_error_from_dnssec(dnssec_key_get_rdata(keys[i], &rd));
		if (r == KHSM_EOK && knot_rrset_add_rdata(dnskey, rd.data, (uint16_t)rd.size, NULL) != KNOT_EOK) {
			r = KHSM_ENOMEM;
		}
	}
	if (r == KHSM_EOK && knot_rdataset_merge(&dnskey->rrs, zsks, NULL) != KNOT_EOK) r = KHSM_ENOMEM;
	int wlen = r == KHSM_EOK ? knot_rrset_to_wire(dnskey, wire, KNOT_WIRE_MAX_PKTSIZE, NULL) : 0;
	if (r == KHSM_EOK && wlen < 0) {
		khsm_err_detail("DNSKEY set too large");
		r = KHSM_EINVAL;
	}
	size_t owner_size = knot_dname_size(owner);
	uint8_t labels = (uint8_t)knot_dname_labels(owner, NULL);
	for (size_t i = 0; i < nkeys && r == KHSM_EOK; i++) {
		uint8_t rd[18 + KNOT_DNAME_MAXLEN + 512];
		put16(rd, KNOT_RRTYPE_DNSKEY);
		rd[2] = dnssec_key_get_algorithm(keys[i]);
		rd[3] = labels;
		put32(rd + 4, ttl);
		put32(rd + 8, (uint32_t)(now + lifetime));
		put32(rd + 12, (uint32_t)(now - KHSM_RRSIG_INCEPT_IN_PAST));
		put16(rd + 16, dnssec_key_get_keytag(keys[i]));
		memcpy(rd + 18, owner, owner_size);
		size_t hdr = 18 + owner_size;
		dnssec_binary_t part1 = { .data = rd, .size = hdr };
		dnssec_binary_t part2 = { .data = wire, .size = (size_t)wlen };
		dnssec_binary_t sig = { 0 };
		struct sign_op op = { .s = s, .key = keys[i], .part1 = &part1, .part2 = &part2, .sig = &sig };
		/* Under the card lock shared with other knot-hsm processes, and retried
		 * while the card is busy (libdnssec reports that as a signing error). */
		r = khsm_card_op("signing the DNSKEY set", sign_once, &op);
		if (r != KHSM_EOK) {
			khsm_err_detail("the card did not sign: %s", khsm_strerror(r));
			break;
		}
		if (hdr + sig.size > sizeof(rd)) {
			dnssec_binary_free(&sig);
			r = KHSM_EINVAL;
			break;
		}
		memcpy(rd + hdr, sig.data, sig.size);
		if (knot_rrset_add_rdata(rrsig, rd, (uint16_t)(hdr + sig.size), NULL) != KNOT_EOK) r = KHSM_ENOMEM;
		dnssec_binary_free(&sig);
		(*sigs)++;
	}
	/* Knot 3.2.6 key_records_dump(), verbose style */
	const knot_dump_style_t style = { .wrap = true, .show_ttl = true, .verbose = true,
	                                  .original_ttl = true, .human_timestamp = true };
	const knot_rrset_t *all[] = { dnskey, rrsig };
	char when[32];
	time_t tt = (time_t)now;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (r == KHSM_EOK) fprintf(out, ";; SignedKeyResponse 1.0 %" PRId64 " (%s) =========\n", now, when);
	for (size_t i = 0; i < 2 && r == KHSM_EOK; i++) {
		if (!dump) {
			dump_size = 4096;
			dump = malloc(dump_size);
			if (!dump) { r = KHSM_ENOMEM; break; }
		}
		int n = knot_rrset_txt_dump(all[i], &dump, &dump_size, &style); /* grows dump */
		if (n < 0) {
			r = KHSM_EINVAL;
			break;
		}
		fputs(dump, out);
	}
done:
	free(dump);
	free(wire);
	knot_rrset_free(dnskey, NULL);
	knot_rrset_free(rrsig, NULL);
	return r;
}

_public_
int khsm_skr_sign(khsm_skr_signer_t *s, const khsm_skr_request_t *req, const char *ksr_text,
                  char **skr_ptr, size_t *sigs_ptr)
{
	if (!s || !req || !req->zone || !ksr_text || !skr_ptr) {
		return KHSM_EINVAL;
	}
	if (req->rrsig_lifetime <= 0 || req->rrsig_refresh <= 0 || req->rrsig_refresh >= req->rrsig_lifetime) {
		khsm_err_detail("the KSK side's rrsig-lifetime/rrsig-refresh are not both set");
		return KHSM_ENOTSUP;
	}
	if (!req->cds_default) {
		khsm_err_detail("the KSK side sets cds-cdnskey-publish");
		return KHSM_ENOTSUP;
	}
	/* the first login, outside any retry (khsm_skr_signer_login()) */
	int r = khsm_skr_signer_login(s, s->force);
	if (r != KHSM_EOK) return r;
	khsm_keysets_t ksr = { 0 };
	r = khsm_keysets_parse(ksr_text, req->zone, &ksr);
	if (r != KHSM_EOK) return r;
	if (ksr.count == 0 || !strstr(ksr_text, "\n;; KeySigningRequest 1.0 generated")) {
		khsm_keysets_clear(&ksr);
		khsm_err_detail("the KSR has no key set or no trailer");
		return KHSM_EPARSE;
	}
	int64_t first = ksr.sets[0].timestamp, last = ksr.sets[ksr.count - 1].timestamp;
	knot_dname_t *owner = knot_dname_from_str_alloc(req->zone);
	dnssec_key_t **keys = calloc(req->key_count + 1, sizeof(*keys));
	size_t nkeys = 0;
	if (!owner || !keys) r = KHSM_ENOMEM;
	if (r == KHSM_EOK) knot_dname_to_lower(owner);
	if (r == KHSM_EOK && req->key_count == 0) {
		khsm_err_detail("%s has no KSK on the KSK side", req->zone);
		r = KHSM_ENOENT;
	}
	for (size_t i = 0; i < req->key_count && r == KHSM_EOK; i++) {
		r = ksk_steady(&req->keys[i], first, last);
		if (r == KHSM_EOK && !req->keys[i].rdata) {
			khsm_err_detail("no DNSKEY for key %s", req->keys[i].kasp.id);
			r = KHSM_ENOTSUP;
		}
	}
	for (size_t i = 0; i < req->key_count && r == KHSM_EOK; i++) {
		r = signer_key(s, owner, &req->keys[i], &keys[nkeys]);
		if (r == KHSM_EOK) nkeys++;
	}
	char *buf = NULL;
	size_t len = 0, sigs = 0;
	FILE *out = r == KHSM_EOK ? open_memstream(&buf, &len) : NULL;
	if (r == KHSM_EOK && !out) r = KHSM_ENOMEM;
	/* Knot 3.2.6 offline_ksk.c ksr_sign_header()/process_skr_between_ksrs():
	 * each KSR set is signed at its time; while the next KSR set is further
	 * away than the signature's expiration less rrsig-refresh, the same set
	 * is signed again at that moment. */
	for (size_t i = 0; i < ksr.count && r == KHSM_EOK; i++) {
		const khsm_keyset_t *set = &ksr.sets[i];
		knot_rdataset_t zsks = { 0 };
		if (set->dnskey_count == 0 || set->dnskey_ttl < 0) {
			khsm_err_detail("KSR set %" PRId64 " has no DNSKEY with a TTL", set->timestamp);
			r = KHSM_EPARSE;
		}
		for (size_t k = 0; k < set->dnskey_count && r == KHSM_EOK; k++) {
			dnssec_binary_t rd = { 0 };
			r = dnskey_text_to_wire(set->dnskeys[k], &rd);
			if (r == KHSM_EOK) {
				uint8_t tmp[knot_rdata_size((uint16_t)rd.size)];
				knot_rdata_t *kr = (knot_rdata_t *)tmp;
				knot_rdata_init(kr, (uint16_t)rd.size, rd.data);
				if (knot_rdataset_add(&zsks, kr, NULL) != KNOT_EOK) r = KHSM_ENOMEM;
			}
			dnssec_binary_free(&rd);
		}
		int64_t t = set->timestamp;
		int64_t next = i + 1 < ksr.count ? ksr.sets[i + 1].timestamp : 0;
		if (r == KHSM_EOK) {
			r = sign_set(s, keys, nkeys, owner, &zsks, (uint32_t)set->dnskey_ttl, t,
			             req->rrsig_lifetime, out, &sigs);
		}
		for (t = t + req->rrsig_lifetime - req->rrsig_refresh; next && t < next && r == KHSM_EOK;
		     t += req->rrsig_lifetime - req->rrsig_refresh) {
			r = sign_set(s, keys, nkeys, owner, &zsks, (uint32_t)set->dnskey_ttl, t,
			             req->rrsig_lifetime, out, &sigs);
		}
		knot_rdataset_clear(&zsks, NULL);
	}
	if (r == KHSM_EOK) {
		char when[32];
		time_t tt = time(NULL);
		struct tm tm;
		gmtime_r(&tt, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		fprintf(out, ";; SignedKeyResponse 1.0 generated at %s by knot-hsm (card keystore "
		        "through libdnssec)\n", when);
	}
	if (out) fclose(out);
	if (r != KHSM_EOK && r != KHSM_ENOTSUP && r != KHSM_ENOMEM && r != KHSM_EPARSE && r != KHSM_ENOENT) {
		/* libdnssec says only "signing failed": ask the token whether the
		 * card is still there, so that a removal is reported as one. */
		unsigned flags = 0;
		int pr = khsm_keystore_flags(s->ks, &flags);
		if (pr == KHSM_ENOTOKEN || pr == KHSM_EREMOVED) {
			khsm_err_detail("the card was removed or is not present (token not available) while "
			                "signing %s", req->zone);
			r = KHSM_EREMOVED;
		}
	}
	khsm_keysets_clear(&ksr);
	free(keys);
	knot_dname_free(owner, NULL);
	if (r != KHSM_EOK) {
		free(buf);
		return r;
	}
	*skr_ptr = buf;
	if (sigs_ptr) *sigs_ptr = sigs;
	return KHSM_EOK;
}

/* -- the cycle, step by step ----------------------------------------------- */

_public_
void khsm_ceremony_prep_clear(khsm_ceremony_prep_t *p)
{
	if (!p) return;
	free(p->zone);
	khsm_ceremony_result_clear(&p->res);
	free(p->ksr_text);
	free(p->skr_text);
	for (size_t i = 0; i < p->key_count; i++) free(p->keys[i].rdata);
	free(p->keys);
	khsm_strv_free(p->ksk_rdata, p->ksk_count);
	*p = (khsm_ceremony_prep_t) { 0 };
}

/* The KSK side's keys of a zone with the DNSKEY of each (matched by key tag). */
static int ksk_side_keys(const khsm_ceremony_t *c, khsm_ceremony_prep_t *p)
{
	khsm_kasp_key_t *list = NULL;
	size_t n = 0;
	int r = khsm_keymgr_list(c->ksk_conf, p->zone, &list, &n);
	if (r != KHSM_EOK) return step_failed(r, "keymgr list (KSK side)");
	bool have = false;
	for (size_t i = 0; i < n; i++) have = have || (list[i].ksk && !list[i].public_only);
	if (!have) {
		free(list);
		khsm_err_detail("%s has no KSK on the KSK side; make it on the card with: knot-hsm -c %s %s "
		                "generate (or run the ceremony with generate-ksk=yes)", p->zone,
		                c->ksk_display ? c->ksk_display : c->ksk_conf, p->zone);
		return KHSM_ENOENT;
	}
	r = khsm_ceremony_ksk_dnskeys(c->ksk_conf, p->zone, &p->ksk_rdata, &p->ksk_count);
	if (r != KHSM_EOK) {
		free(list);
		return step_failed(r, "dnskey (KSK side)");
	}
	p->keys = calloc(n ? n : 1, sizeof(*p->keys));
	if (!p->keys) {
		free(list);
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		khsm_ksk_key_t *k = &p->keys[p->key_count++];
		const khsm_kasp_key_t *l = &list[i];
		k->kasp = *l;
		for (size_t j = 0; j < p->ksk_count && !k->rdata; j++) {
			dnssec_binary_t rd = { 0 };
			dnssec_key_t *key = NULL;
			if (dnskey_text_to_wire(p->ksk_rdata[j], &rd) == KHSM_EOK && dnssec_key_new(&key) == DNSSEC_EOK &&
			    dnssec_key_set_rdata(key, &rd) == DNSSEC_EOK && dnssec_key_get_keytag(key) == l->tag &&
			    dnssec_key_get_algorithm(key) == l->algorithm) {
				k->rdata = strdup(p->ksk_rdata[j]);
			}
			dnssec_key_free(key);
			dnssec_binary_free(&rd);
		}
	}
	free(list);
	return KHSM_EOK;
}

_public_
int khsm_ceremony_prepare(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_prep_t *p)
{
	if (!c || !zone || !p || !c->zsk_conf || !c->ksk_conf || !c->archive_dir) {
		return KHSM_EINVAL;
	}
	*p = (khsm_ceremony_prep_t) { 0 };
	p->zone = strdup(zone);
	if (!p->zone) return KHSM_ENOMEM;
	khsm_ceremony_result_t *res = &p->res;
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
		res->skipped = true;
		res->from = before.first;
		res->end = before.end;
		res->valid_until = before.valid_until;
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

	if ((r = ksk_side_keys(c, p)) != KHSM_EOK) return r;

	_cleanup_free_ char *stem = NULL;
	const char *pre_args[] = { zone, "pregenerate", until_s, NULL };
	const char *ksr_args[] = { zone, "generate-ksr", from_s, until_s, NULL };
	r = khsm_ceremony_file_stem(zone, &stem);
	if (r == KHSM_EOK && (asprintf(&res->ksr_path, "%s/%s.ksr", c->archive_dir, stem) < 0 ||
	                      asprintf(&res->skr_path, "%s/%s.skr", c->archive_dir, stem) < 0)) {
		return KHSM_ENOMEM;
	}
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, pre_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) return step_failed(r, "pregenerate (ZSK side)");
	}
	if (r == KHSM_EOK && (r = keymgr_text(c->zsk_conf, ksr_args, &p->ksr_text)) != KHSM_EOK) {
		return step_failed(r, "generate-ksr (ZSK side)");
	}
	khsm_keysets_t ksr = { 0 };
	if (r == KHSM_EOK && (r = khsm_keysets_parse(p->ksr_text, zone, &ksr)) != KHSM_EOK) {
		return step_failed(r, "KSR");
	}
	khsm_keysets_clear(&ksr);
	return khsm_archive_write(res->ksr_path, p->ksr_text, strlen(p->ksr_text), 0640);
}

/* keymgr says "signing error" when the card goes away: ask the token, and
 * add to the detail that the card is gone when it is. */
static void card_gone(const char *config, const char *zone)
{
	if (!config) return;
	const char *d = khsm_err_last_detail();
	char why[1500];
	snprintf(why, sizeof(why), "%s", d ? d : "");
	khsm_keystore_t *ks = NULL;
	unsigned flags = 0;
	int pr = khsm_keystore_open(config, &ks);
	if (pr == KHSM_EOK) pr = khsm_keystore_flags(ks, &flags);
	khsm_keystore_close(ks);
	if (pr == KHSM_ENOTOKEN || pr == KHSM_EREMOVED) {
		khsm_err_detail("%s; the card was removed or is not present (token not available) while "
		                "signing %s", why, zone);
	} else {
		khsm_err_detail("%s", why);
	}
}

_public_
int khsm_ceremony_sign(const khsm_ceremony_t *c, khsm_ceremony_prep_t *p)
{
	if (!c || !p || !p->zone) {
		return KHSM_EINVAL;
	}
	if (p->res.skipped) {
		return KHSM_EOK;
	}
	int r = KHSM_ENOTSUP;
	if (c->signer) {
		khsm_skr_request_t req = {
			.zone = p->zone, .rrsig_lifetime = c->rrsig_lifetime, .rrsig_refresh = c->rrsig_refresh,
			.cds_default = c->cds_default, .keys = p->keys, .key_count = p->key_count,
		};
		khsm_err_clear();
		r = khsm_skr_sign(c->signer, &req, p->ksr_text, &p->skr_text, &p->res.signatures);
		if (r == KHSM_ENOTSUP) {
			const char *d = khsm_err_last_detail();
			p->res.keymgr_reason = strdup(d ? d : "not supported");
		} else if (r != KHSM_EOK) {
			return step_failed(r, "signing on the card");
		}
	}
	if (r == KHSM_ENOTSUP) {
		const char *sign_args[] = { p->zone, "sign-ksr", p->res.ksr_path, NULL };
		p->res.by_keymgr = true;
		/* keymgr logs in through the same pin-source: knot-hsm has checked
		 * that PIN with one login of its own first (card_login()). keymgr
		 * does not take knot-hsm's card lock: hold it for keymgr, so that no
		 * other knot-hsm uses the card meanwhile. */
		if (c->signer && (r = khsm_skr_signer_login(c->signer, c->force)) != KHSM_EOK) {
			return step_failed(r, "card login (KSK side)");
		}
		khsm_run_t out = { 0 };
		r = khsm_keymgr_card(c->ksk_conf, sign_args, &out);
		if (r == KHSM_EOK) p->skr_text = KHSM_STEAL(out.out);
		khsm_run_clear(&out);
		if (r != KHSM_EOK) {
			step_failed(r, "sign-ksr (KSK side, card)");
			card_gone(c->card_config, p->zone);
			return r;
		}
	}
	return khsm_archive_write(p->res.skr_path, p->skr_text, strlen(p->skr_text), 0640);
}

_public_
int khsm_ceremony_finish(const khsm_ceremony_t *c, khsm_ceremony_prep_t *p, khsm_ceremony_result_t *out)
{
	if (!c || !p || !p->zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_ceremony_result_t *res = &p->res;
	if (res->skipped) {
		*out = *res;
		*res = (khsm_ceremony_result_t) { 0 };
		return KHSM_EOK;
	}
	const char *zone = p->zone;
	khsm_keysets_t ksr = { 0 }, skr = { 0 };
	int r = khsm_keysets_parse(p->ksr_text, zone, &ksr);
	/* From here on a failure means the SKR is bad: keep it as .invalid. */
	bool bad = false;
	const char *val_args[] = { zone, "validate-skr", res->skr_path, NULL };
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, val_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) {
			bad = true;
			step_failed(r, "validate-skr");
		}
	}
	if (r == KHSM_EOK && (r = khsm_keysets_parse(p->skr_text, zone, &skr)) != KHSM_EOK) {
		bad = true;
		step_failed(r, "SKR");
	}
	if (r == KHSM_EOK &&
	    (r = khsm_skr_check(&ksr, &skr, (const char *const *)p->ksk_rdata, p->ksk_count)) != KHSM_EOK) {
		bad = true;
		step_failed(r, "SKR check");
	}
	if (bad) {
		_cleanup_free_ char *inv = NULL;
		if (asprintf(&inv, "%s.invalid", res->skr_path) >= 0 && rename(res->skr_path, inv) == 0) {
			free(res->skr_path);
			res->skr_path = KHSM_STEAL(inv);
		}
		const char *d = khsm_err_last_detail();
		char why[1500];
		snprintf(why, sizeof(why), "%s", d ? d : "");
		khsm_err_detail("%s; not imported, kept as %s", why, res->skr_path);
	}
	const char *imp_args[] = { zone, "import-skr", res->skr_path, NULL };
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
		res->from = skr.sets[0].timestamp;
		res->end = after.end;
		res->valid_until = after.valid_until;
		res->signatures = khsm_keysets_rrsig_count(&skr);
		*out = *res;
		*res = (khsm_ceremony_result_t) { 0 };
	}
	khsm_keysets_clear(&ksr);
	khsm_keysets_clear(&skr);
	return r;
}

/* Before the first zone that needs the card: knot-hsm's own login, once per
 * run. The signer's login (held for the run), or, when keymgr sign-ksr signs,
 * one login through the card keystore config keymgr will use: token flags
 * first (final try refused unless force, locked always), then one try. A
 * wrong PIN thus costs one try, found by knot-hsm, and keymgr never starts
 * with it. *checked: the keymgr-side check is done. */
static int card_login(const khsm_ceremony_t *c, bool *checked)
{
	int r = KHSM_EOK;
	if (c->signer) {
		r = khsm_skr_signer_login(c->signer, c->force);
	} else if (!*checked && c->card_config) {
		r = khsm_keystore_login_check(c->card_config, c->force);
		*checked = r == KHSM_EOK;
	}
	return r == KHSM_EOK ? r : step_failed(r, "card login (KSK side)");
}

_public_
int khsm_ceremony_zone(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_result_t *out)
{
	if (!c || !zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_ceremony_prep_t p = { 0 };
	bool checked = false;
	int r = khsm_ceremony_prepare(c, zone, &p);
	if (r == KHSM_EOK && !p.res.skipped) r = card_login(c, &checked);
	if (r == KHSM_EOK) r = khsm_ceremony_sign(c, &p);
	if (r == KHSM_EOK) r = khsm_ceremony_finish(c, &p, out);
	khsm_ceremony_prep_clear(&p);
	return r;
}

/* -- the pipeline ---------------------------------------------------------- */

/* Zone i goes PREPARED (worker) -> SIGNED (caller, card) -> FINISHED (worker).
 * The worker prepares at most one zone ahead of the one being signed, and
 * finishes signed zones first, in order. */
enum { Z_NEW, Z_PREPARED, Z_SIGNED, Z_DONE };

typedef struct {
	const khsm_ceremony_t *c;
	const char *const *zones;
	size_t count;
	khsm_ceremony_prep_t *prep;
	int *state, *rc;
	char **detail;             /* failure detail, carried across threads */
	size_t prepared, signing, finished;  /* next zone for each step */
	bool stop;
	int stop_rc;
	size_t stop_at;
	khsm_ceremony_cb_t cb;
	void *data;
	pthread_mutex_t mu;
	pthread_cond_t cv;
} pipe_t;

static void pipe_fail(pipe_t *pp, size_t i, int r)
{
	const char *d = khsm_err_last_detail();
	free(pp->detail[i]);
	pp->detail[i] = d ? strdup(d) : NULL;
	pp->rc[i] = r;
	if (!pp->stop || i < pp->stop_at) {
		pp->stop = true;
		pp->stop_at = i;
		pp->stop_rc = r;
	}
}

static void *pipe_worker(void *arg)
{
	pipe_t *pp = arg;
	pthread_mutex_lock(&pp->mu);
	for (;;) {
		if (pp->finished == pp->count || (pp->stop && pp->finished >= pp->stop_at)) {
			break;
		}
		size_t i;
		bool finish = pp->state[pp->finished] == Z_SIGNED;
		bool prepare = !finish && !pp->stop && pp->prepared < pp->count && pp->prepared <= pp->signing + 1;
		if (!finish && !prepare) {
			pthread_cond_wait(&pp->cv, &pp->mu);
			continue;
		}
		i = finish ? pp->finished : pp->prepared;
		pthread_mutex_unlock(&pp->mu);
		khsm_err_clear();
		int r;
		khsm_ceremony_result_t res = { 0 };
		if (finish) {
			r = khsm_ceremony_finish(pp->c, &pp->prep[i], &res);
			bool go = pp->cb ? pp->cb(i, pp->zones[i], r, r == KHSM_EOK ? &res : NULL, pp->data) : true;
			khsm_ceremony_result_clear(&res);
			pthread_mutex_lock(&pp->mu);
			if (r != KHSM_EOK) {
				pipe_fail(pp, i, r);
			} else if (!go) {
				pipe_fail(pp, i + 1 < pp->count ? i + 1 : i, KHSM_EOK);
			}
			pp->state[i] = Z_DONE;
			pp->finished++;
		} else {
			r = khsm_ceremony_prepare(pp->c, pp->zones[i], &pp->prep[i]);
			pthread_mutex_lock(&pp->mu);
			if (r != KHSM_EOK) pipe_fail(pp, i, r);
			pp->state[i] = Z_PREPARED;
			pp->prepared++;
		}
		pthread_cond_broadcast(&pp->cv);
	}
	pp->stop = pp->stop || pp->finished < pp->count;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	return NULL;
}

_public_
int khsm_ceremony_run(const khsm_ceremony_t *c, const char *const *zones, size_t count,
                      khsm_ceremony_cb_t cb, void *data, size_t *done_ptr)
{
	if (!c || (count && !zones)) {
		return KHSM_EINVAL;
	}
	pipe_t pp = { .c = c, .zones = zones, .count = count, .cb = cb, .data = data };
	pp.prep = calloc(count + 1, sizeof(*pp.prep));
	pp.state = calloc(count + 1, sizeof(*pp.state));
	pp.rc = calloc(count + 1, sizeof(*pp.rc));
	pp.detail = calloc(count + 1, sizeof(*pp.detail));
	if (!pp.prep || !pp.state || !pp.rc || !pp.detail) {
		free(pp.prep); free(pp.state); free(pp.rc); free(pp.detail);
		return KHSM_ENOMEM;
	}
	pthread_mutex_init(&pp.mu, NULL);
	pthread_cond_init(&pp.cv, NULL);
	pthread_t worker;
	int r = KHSM_EOK;
	bool login_checked = false;
	if (pthread_create(&worker, NULL, pipe_worker, &pp) != 0) {
		r = KHSM_ENOMEM;
	}
	/* The caller's thread: the card, zone after zone. */
	pthread_mutex_lock(&pp.mu);
	while (r == KHSM_EOK && pp.signing < count) {
		size_t i = pp.signing;
		while (pp.state[i] == Z_NEW && !(pp.stop && pp.stop_at <= i)) {
			pthread_cond_wait(&pp.cv, &pp.mu);
		}
		if (pp.stop && pp.stop_at <= i) break;
		pthread_mutex_unlock(&pp.mu);
		khsm_err_clear();
		int sr = pp.prep[i].res.skipped ? KHSM_EOK : card_login(c, &login_checked);
		if (sr == KHSM_EOK) sr = khsm_ceremony_sign(c, &pp.prep[i]);
		pthread_mutex_lock(&pp.mu);
		if (sr != KHSM_EOK) pipe_fail(&pp, i, sr);
		else pp.state[i] = Z_SIGNED;
		pp.signing++;
		pthread_cond_broadcast(&pp.cv);
		if (sr != KHSM_EOK) break;
	}
	/* nothing more to sign: let the worker finish what is signed */
	if (pp.signing < count && !pp.stop) {
		pp.stop = true;
		pp.stop_at = pp.signing;
	}
	pp.signing = count;
	pthread_cond_broadcast(&pp.cv);
	pthread_mutex_unlock(&pp.mu);
	if (r == KHSM_EOK) pthread_join(worker, NULL);

	size_t done = pp.finished;
	if (pp.stop && pp.stop_at < done) done = pp.stop_at;
	if (r == KHSM_EOK && pp.stop && pp.stop_rc != KHSM_EOK) {
		r = pp.stop_rc;
		khsm_err_clear();
		if (pp.detail[pp.stop_at]) khsm_err_detail("%s", pp.detail[pp.stop_at]);
		/* a failure in the prepare or sign step was not reported yet */
		if (cb && pp.state[pp.stop_at] != Z_DONE) cb(pp.stop_at, zones[pp.stop_at], r, NULL, data);
	}
	for (size_t i = 0; i < count; i++) {
		khsm_ceremony_prep_clear(&pp.prep[i]);
		free(pp.detail[i]);
	}
	free(pp.prep); free(pp.state); free(pp.rc); free(pp.detail);
	pthread_mutex_destroy(&pp.mu);
	pthread_cond_destroy(&pp.cv);
	if (done_ptr) *done_ptr = done;
	return r;
}
