/* KSR, SKR and show-offline text: key sets parsed, and an SKR checked
 * against the KSR it answers and the card's KSKs. Formats as Knot 3.2.6
 * writes them (see ceremony.c for what keymgr does with them). */
#include <ctype.h>
#include <inttypes.h>
#include <time.h>

#include "error.h"
#include "internal.h"
#include "skr.h"

#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/key.h>

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

_public_
int khsm_keyset_dnskey_wire(const char *text, dnssec_binary_t *out)
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

_public_
int khsm_keyset_dnskey_text(const dnssec_key_t *key, char **text_ptr)
{
	if (!key || !text_ptr) {
		return KHSM_EINVAL;
	}
	dnssec_binary_t pub = { 0 }, b64 = { 0 };
	int r = khsm_error_from_dnssec(dnssec_key_get_pubkey(key, &pub));
	if (r == KHSM_EOK) {
		r = khsm_error_from_dnssec(dnssec_binary_to_base64(&pub, &b64));
	}
	char *text = NULL;
	if (r == KHSM_EOK && asprintf(&text, "%u 3 %u %.*s", (unsigned)dnssec_key_get_flags(key),
	                              (unsigned)dnssec_key_get_algorithm(key), (int)b64.size,
	                              (const char *)b64.data) < 0) {
		r = KHSM_ENOMEM;
	}
	dnssec_binary_free(&b64);
	if (r != KHSM_EOK) {
		return r;
	}
	*text_ptr = text;
	return KHSM_EOK;
}
