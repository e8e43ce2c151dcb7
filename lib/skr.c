/* KSR, SKR and show-offline text: key sets parsed, and an SKR checked
 * against the KSR it answers and the card's KSKs. Formats as Knot 3.2.6
 * writes them (see ceremony.c for what keymgr does with them). */
#include <inttypes.h>

#include "error.h"
#include "internal.h"
#include "skr.h"

#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/key.h>
#include <libknot/libknot.h>
#include <libzscanner/scanner.h>

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

/* A TTL no record of keymgr's carries: the record had none (zs_init default). */
#define NO_TTL UINT32_MAX

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One record the scanner parsed, added to set. */
static int add_record(khsm_keyset_t *set, const zs_scanner_t *sc, const knot_dname_t *apex,
                      const char *zone)
{
	if (!knot_dname_is_case_equal(sc->r_owner, apex)) {
		char owner[KNOT_DNAME_TXT_MAXLEN + 1] = "";
		(void)knot_dname_to_str(owner, sc->r_owner, sizeof(owner));
		khsm_err_detail("record of '%s', not of zone %s", owner, zone);
		return KHSM_EPARSE;
	}
	const uint8_t *rd = sc->r_data;
	if (sc->r_type == KNOT_RRTYPE_DNSKEY) {
		/* flags, protocol 3, algorithm, a public key */
		if (sc->r_data_length <= 4 || rd[2] != 3) {
			return KHSM_EPARSE;
		}
		dnssec_binary_t key = { .data = (uint8_t *)rd + 4, .size = sc->r_data_length - 4 };
		dnssec_binary_t b64 = { 0 };
		if (dnssec_binary_to_base64(&key, &b64) != DNSSEC_EOK) {
			return KHSM_ENOMEM;
		}
		unsigned flags = (unsigned)rd[0] << 8 | rd[1];
		char *text = NULL;
		int n = asprintf(&text, "%u 3 %u %.*s", flags, (unsigned)rd[3], (int)b64.size,
		                 (const char *)b64.data);
		dnssec_binary_free(&b64);
		if (n < 0) {
			return KHSM_ENOMEM;
		}
		char **g = realloc(set->dnskeys, (set->dnskey_count + 1) * sizeof(*g));
		if (!g) {
			free(text);
			return KHSM_ENOMEM;
		}
		set->dnskeys = g;
		set->dnskeys[set->dnskey_count++] = text;
		if (flags & 1) set->ksk_count++;
		set->dnskey_ttl = sc->r_ttl == NO_TTL ? -1 : (int64_t)sc->r_ttl;
	} else if (sc->r_type == KNOT_RRTYPE_RRSIG) {
		/* covered(2) alg(1) labels(1) ttl(4) expiration(4) inception(4) tag(2) signer sig */
		if (sc->r_data_length < 18) {
			return KHSM_EPARSE;
		}
		int64_t exp = get32(rd + 8);
		set->rrsig_count++;
		if (set->rrsig_expire == 0 || exp < set->rrsig_expire) set->rrsig_expire = exp;
	} else if (sc->r_type == KNOT_RRTYPE_CDNSKEY || sc->r_type == KNOT_RRTYPE_CDS) {
		/* published with the set; nothing to check here */
	} else {
		char type[32] = "";
		(void)knot_rrtype_to_string(sc->r_type, type, sizeof(type));
		khsm_err_detail("unexpected record type %s", type);
		return KHSM_EPARSE;
	}
	return KHSM_EOK;
}

/* The records between two headers (text[0..len), its first line is first_line),
 * read by libzscanner, the scanner keymgr itself reads them with; added to set
 * (NULL: no set is open, any record is out of place). */
static int parse_records(zs_scanner_t *sc, const char *text, size_t len, size_t first_line,
                         khsm_keyset_t *set, const knot_dname_t *apex, const char *zone)
{
	/* origin ".": an owner is the same with or without the final dot */
	if (zs_init(sc, ".", KNOT_CLASS_IN, NO_TTL) != 0) {
		khsm_err_detail("cannot start the zone scanner");
		return KHSM_ENOMEM;
	}
	int r = KHSM_EOK;
	if (zs_set_input_string(sc, text, len) != 0) {
		khsm_err_detail("line %zu: %s", first_line, zs_strerror(sc->error.code));
		r = KHSM_EPARSE;
	}
	while (r == KHSM_EOK) {
		int z = zs_parse_record(sc);
		size_t line = first_line + (sc->line_counter ? (size_t)sc->line_counter - 1 : 0);
		if (sc->state == ZS_STATE_EOF) {
			break;
		} else if (z != 0 || sc->state == ZS_STATE_ERROR) {
			khsm_err_detail("line %zu: %s", line, zs_strerror(sc->error.code));
			r = KHSM_EPARSE;
		} else if (sc->state == ZS_STATE_INCLUDE) {
			khsm_err_detail("line %zu: $INCLUDE is not allowed here", line);
			r = KHSM_EPARSE;
		} else if (sc->state == ZS_STATE_DATA) {
			if (!set) {
				khsm_err_detail("line %zu: record outside a key set", line);
				r = KHSM_EPARSE;
				break;
			}
			r = add_record(set, sc, apex, zone);
			if (r == KHSM_EPARSE) {
				if (!khsm_err_last_detail()) khsm_err_detail("malformed record");
				khsm_err_prefix("line %zu: ", line);
			}
		} else {
			khsm_err_detail("line %zu: %s", line, zs_strerror(sc->error.code));
			r = KHSM_EPARSE;
		}
	}
	zs_deinit(sc);
	return r;
}

_public_
int khsm_keysets_parse(const char *text, const char *zone, khsm_keysets_t *out)
{
	if (!text || !zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_keysets_t sets = { 0 };
	knot_dname_t *apex = knot_dname_from_str_alloc(zone);
	zs_scanner_t *sc = calloc(1, sizeof(*sc));
	int r = apex && sc ? KHSM_EOK : KHSM_ENOMEM;
	if (r == KHSM_EOK) {
		knot_dname_to_lower(apex);
	}
	size_t lineno = 0, chunk_line = 1;
	bool trailer = false;
	const char *chunk = text, *p = text;
	/* Headers are the lines that start with ";;" (comments to the scanner):
	 * the records between two of them belong to the set the first opened. */
	for (;;) {
		if (r != KHSM_EOK) break;
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		bool header = len >= 2 && p[0] == ';' && p[1] == ';';
		bool end = *p == '\0';
		if (*p) lineno++;
		if (header || end) {
			khsm_keyset_t *open = sets.count && !trailer ? &sets.sets[sets.count - 1] : NULL;
			r = parse_records(sc, chunk, (size_t)(p - chunk), chunk_line, open, apex, zone);
			if (r != KHSM_EOK || end) break;
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
			chunk = nl ? nl + 1 : p + len;
			chunk_line = lineno + 1;
		}
		p = nl ? nl + 1 : p + len;
	}
	free(sc);
	knot_dname_free(apex, NULL);
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
