/* Algorithm names; DNSKEY, key tag, DS, CDS/CDNSKEY and JSON for a public key.
 * libdnssec computes (rdata, key tag, DS digests), libknot prints (names, hex,
 * base64); this module only arranges the pieces the way keymgr 3.2.6 does. */
#include <ctype.h>
#include <errno.h>
#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/key.h>
#include <libknot/codes.h>
#include <libknot/descriptor.h>
#include <libknot/dname.h>
#include <libknot/errcode.h>
#include <libknot/error.h>
#include <libknot/lookup.h>
#include <libknot/rrset-dump.h>
#include <libknot/rrset.h>
#include <stdbool.h>
#include <stdio.h>
#include <strings.h>

#include "dname.h"
#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "json.h"

#define DNSKEY_PROTOCOL 3
#define DNSKEY_FLAG_SEP 0x0001

/* A libdnssec failure while building or hashing a key, in our words. */
static int from_dnssec(int rc, const char *what)
{
	if (rc == DNSSEC_ENOMEM) {
		return KHSM_ENOMEM;
	}
	khsm_err_detail("%s: %s", what, dnssec_strerror(rc));
	if (rc == DNSSEC_INVALID_KEY_ALGORITHM || rc == DNSSEC_INVALID_DS_ALGORITHM) {
		return KHSM_ENOTSUP;
	}
	return rc == DNSSEC_EINVAL ? KHSM_EINVAL : KHSM_EPARSE;
}

/* Wire form of a zone name, normalised. */
static int zone_dname(const char *zone, knot_dname_t **dname_ptr)
{
	if (!zone) {
		khsm_err_detail("a zone name is needed for the key owner");
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *norm = NULL;
	int r = khsm_zone_normalize(zone, &norm);
	if (r != KHSM_EOK) {
		return r;
	}
	knot_dname_t *dname = knot_dname_from_str_alloc(norm);
	if (!dname) {
		return KHSM_ENOMEM;
	}
	*dname_ptr = dname;
	return KHSM_EOK;
}

/* -- algorithm names (the ones keymgr's algorithm= takes) -- */

static const struct {
	int number;
	const char *name;
} ALGORITHMS[] = {
	{ 8,  "rsasha256" },
	{ 10, "rsasha512" },
	{ 13, "ecdsap256sha256" },
	{ 14, "ecdsap384sha384" },
	{ 15, "ed25519" },
	{ 16, "ed448" },
};

_public_
int khsm_algorithm_from_name(const char *name, int *algorithm_ptr)
{
	for (size_t i = 0; name && i < KHSM_ARRAY_SIZE(ALGORITHMS); i++) {
		if (strcasecmp(name, ALGORITHMS[i].name) == 0) {
			*algorithm_ptr = ALGORITHMS[i].number;
			return KHSM_EOK;
		}
	}
	khsm_err_detail("unknown algorithm '%s'; use ecdsap256sha256, ecdsap384sha384, rsasha256, "
	                "rsasha512, ed25519 or ed448", name ? name : "");
	return KHSM_EINVAL;
}

_public_
const char *khsm_algorithm_name(int algorithm)
{
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(ALGORITHMS); i++) {
		if (ALGORITHMS[i].number == algorithm) {
			return ALGORITHMS[i].name;
		}
	}
	return NULL;
}

/* -- digest selection -- */

static const struct {
	const char *name;
	khsm_digest_t digest;
	uint8_t types[2];
	size_t count;
} DIGESTS[] = {
	{ "sha256", KHSM_DIGEST_SHA256, { DNSSEC_KEY_DIGEST_SHA256 }, 1 },
	{ "sha384", KHSM_DIGEST_SHA384, { DNSSEC_KEY_DIGEST_SHA384 }, 1 },
	{ "sha1",   KHSM_DIGEST_SHA1,   { DNSSEC_KEY_DIGEST_SHA1 }, 1 },
	{ "all",    KHSM_DIGEST_ALL,    { DNSSEC_KEY_DIGEST_SHA256, DNSSEC_KEY_DIGEST_SHA384 }, 2 },
};

_public_
int khsm_digest_from_name(const char *name, khsm_digest_t *digest_ptr)
{
	if (!name || !digest_ptr) {
		return KHSM_EINVAL;
	}
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(DIGESTS); i++) {
		if (strcasecmp(name, DIGESTS[i].name) == 0) {
			*digest_ptr = DIGESTS[i].digest;
			return KHSM_EOK;
		}
	}
	khsm_err_detail("unknown digest '%s'; use sha256, sha384, all (sha256 and sha384) or sha1", name);
	return KHSM_EINVAL;
}

_public_
const char *khsm_digest_name(khsm_digest_t digest)
{
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(DIGESTS); i++) {
		if (DIGESTS[i].digest == digest) {
			return DIGESTS[i].name;
		}
	}
	return "unknown";
}

_public_
size_t khsm_digest_types(khsm_digest_t digest, uint8_t types[2])
{
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(DIGESTS); i++) {
		if (DIGESTS[i].digest == digest) {
			memcpy(types, DIGESTS[i].types, DIGESTS[i].count);
			return DIGESTS[i].count;
		}
	}
	return 0;
}

static bool digest_type_ok(uint8_t type)
{
	return type == DNSSEC_KEY_DIGEST_SHA1 || type == DNSSEC_KEY_DIGEST_SHA256 ||
	       type == DNSSEC_KEY_DIGEST_SHA384;
}

/* -- building keys -- */

static const char *alg_mnemonic(uint8_t alg)
{
	const knot_lookup_t *l = knot_lookup_by_id(knot_dnssec_alg_names, alg);
	return l ? l->name : NULL;
}

_public_
int khsm_dnskey_from_rdata(const char *zone, const uint8_t *rdata, size_t len,
                           dnssec_key_t **key_ptr)
{
	if (!rdata || !key_ptr) {
		return KHSM_EINVAL;
	}
	if (len <= 4 || len > UINT16_MAX) {
		khsm_err_detail("DNSKEY rdata of %zu bytes: need flags, protocol, algorithm and a public key", len);
		return KHSM_EPARSE;
	}
	if (rdata[2] != DNSKEY_PROTOCOL) {
		khsm_err_detail("DNSKEY protocol is %u; it must be 3", rdata[2]);
		return KHSM_EPARSE;
	}
	uint8_t alg = rdata[3];
	if (!dnssec_algorithm_key_support(alg)) {
		const char *name = alg_mnemonic(alg);
		khsm_err_detail("DNSSEC algorithm %u (%s) is not supported by libdnssec", alg,
		                name ? name : "unknown");
		return KHSM_ENOTSUP;
	}
	_cleanup_dname_ knot_dname_t *dname = NULL;
	int r = zone_dname(zone, &dname);
	if (r != KHSM_EOK) {
		return r;
	}

	_cleanup_key_ dnssec_key_t *key = NULL;
	int dr = dnssec_key_new(&key);
	if (dr != DNSSEC_EOK) {
		return from_dnssec(dr, "cannot create key");
	}
	const dnssec_binary_t bin = { .data = (uint8_t *)rdata, .size = len };
	dr = dnssec_key_set_rdata(key, &bin);
	if (dr != DNSSEC_EOK) {
		return from_dnssec(dr, "DNSKEY public key is not usable");
	}
	dr = dnssec_key_set_dname(key, dname);
	if (dr != DNSSEC_EOK) {
		return from_dnssec(dr, "cannot set key owner");
	}
	*key_ptr = KHSM_STEAL(key);
	return KHSM_EOK;
}


/* Unsigned decimal, digits only, at most max. */
static bool parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
	uint64_t v;
	if (!khsm_parse_u64(s, max, &v)) {
		return false;
	}
	*out = (unsigned long)v;
	return true;
}

static bool parse_algorithm(const char *s, uint8_t *alg)
{
	unsigned long v;
	if (parse_ulong(s, UINT8_MAX, &v)) {
		*alg = v;
		return true;
	}
	for (const knot_lookup_t *l = knot_dnssec_alg_names; l->name; l++) {
		if (strcasecmp(l->name, s) == 0) {
			*alg = l->id;
			return true;
		}
	}
	return false;
}

static bool is_rr_class(const char *s)
{
	return strcasecmp(s, "IN") == 0;
}

static bool is_dnskey_type(const char *s)
{
	return strcasecmp(s, "DNSKEY") == 0 || strcasecmp(s, "CDNSKEY") == 0;
}

/* Whether the text starts with an owner ("OWNER [TTL] [IN] DNSKEY …") rather
 * than with the flags. An owner may start with a digit (2.0.192.in-addr.arpa.)
 * or be all digits, so a numeric first field is an owner only when the record
 * type follows, after at most one TTL and one class: in the rdata-only form the
 * protocol and the algorithm stand there, and an algorithm is never a class. */
static bool has_owner(char *const *tok, size_t n)
{
	unsigned long num;
	if (!parse_ulong(tok[0], UINT16_MAX, &num)) {
		return true;
	}
	bool ttl = false, cls = false;
	for (size_t i = 1; i < n && i <= 3; i++) {
		if (is_dnskey_type(tok[i])) {
			return true;
		}
		if (!ttl && parse_ulong(tok[i], UINT32_MAX, &num)) {
			ttl = true;
		} else if (!cls && is_rr_class(tok[i])) {
			cls = true;
		} else {
			return false;
		}
	}
	return false;
}

enum { MAX_TOKENS = 512 };

_public_
int khsm_dnskey_from_text(const char *zone, const char *text, dnssec_key_t **key_ptr)
{
	if (!text || !key_ptr) {
		return KHSM_EINVAL;
	}
	if (strpbrk(text, "();")) {
		khsm_err_detail("DNSKEY text with parentheses or comments is not supported; "
		                "give the record on one line");
		return KHSM_EPARSE;
	}
	_cleanup_free_ char *copy = strdup(text);
	if (!copy) {
		return KHSM_ENOMEM;
	}
	char *tok[MAX_TOKENS];
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(copy, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == MAX_TOKENS) {
			khsm_err_detail("DNSKEY text has too many fields");
			return KHSM_EPARSE;
		}
		tok[n++] = t;
	}

	size_t i = 0;
	const char *owner = NULL;
	unsigned long num;
	if (n > 0 && has_owner(tok, n)) {
		owner = tok[i++];
		/* TTL and class, in either order, each at most once */
		bool ttl = false, cls = false;
		for (int k = 0; k < 2 && i < n; k++) {
			if (!ttl && parse_ulong(tok[i], UINT32_MAX, &num)) {
				ttl = true;
				i++;
			} else if (!cls && is_rr_class(tok[i])) {
				cls = true;
				i++;
			}
		}
		if (i >= n || !is_dnskey_type(tok[i])) {
			khsm_err_detail("expected 'OWNER [TTL] [IN] DNSKEY FLAGS 3 ALGORITHM KEY', got '%s'", text);
			return KHSM_EPARSE;
		}
		i++;
	}
	if (n - i < 4) {
		khsm_err_detail("expected 'FLAGS 3 ALGORITHM KEY' in DNSKEY text '%s'", text);
		return KHSM_EPARSE;
	}
	unsigned long flags, protocol;
	uint8_t alg;
	if (!parse_ulong(tok[i], UINT16_MAX, &flags)) {
		khsm_err_detail("DNSKEY flags '%s' is not a number from 0 to 65535", tok[i]);
		return KHSM_EPARSE;
	}
	if (!parse_ulong(tok[i + 1], UINT8_MAX, &protocol)) {
		khsm_err_detail("DNSKEY protocol '%s' is not a number from 0 to 255", tok[i + 1]);
		return KHSM_EPARSE;
	}
	if (!parse_algorithm(tok[i + 2], &alg)) {
		khsm_err_detail("DNSKEY algorithm '%s' is neither a number nor a known mnemonic", tok[i + 2]);
		return KHSM_EPARSE;
	}

	/* The key may be split by blanks: join the remaining fields. */
	size_t b64_len = 0;
	for (size_t k = i + 3; k < n; k++) {
		b64_len += strlen(tok[k]);
	}
	_cleanup_free_ char *b64 = malloc(b64_len + 1);
	if (!b64) {
		return KHSM_ENOMEM;
	}
	b64[0] = '\0';
	for (size_t k = i + 3; k < n; k++) {
		strcat(b64, tok[k]);
	}
	const dnssec_binary_t in = { .data = (uint8_t *)b64, .size = b64_len };
	_cleanup_binary_ dnssec_binary_t pubkey = { 0 };
	if (dnssec_binary_from_base64(&in, &pubkey) != DNSSEC_EOK || pubkey.size == 0) {
		khsm_err_detail("DNSKEY public key is not valid base64");
		return KHSM_EPARSE;
	}

	_cleanup_free_ char *zone_norm = NULL;
	if (owner) {
		_cleanup_free_ char *owner_norm = NULL;
		int r = khsm_zone_normalize(owner, &owner_norm);
		if (r != KHSM_EOK) {
			return r;
		}
		if (zone) {
			r = khsm_zone_normalize(zone, &zone_norm);
			if (r != KHSM_EOK) {
				return r;
			}
			if (strcmp(zone_norm, owner_norm) != 0) {
				khsm_err_detail("DNSKEY owner '%s' is not zone '%s'", owner_norm, zone_norm);
				return KHSM_EINVAL;
			}
		} else {
			zone_norm = KHSM_STEAL(owner_norm);
		}
	}

	size_t len = 4 + pubkey.size;
	_cleanup_free_ uint8_t *rdata = malloc(len);
	if (!rdata) {
		return KHSM_ENOMEM;
	}
	rdata[0] = flags >> 8;
	rdata[1] = flags & 0xff;
	rdata[2] = protocol;
	rdata[3] = alg;
	memcpy(rdata + 4, pubkey.data, pubkey.size);
	return khsm_dnskey_from_rdata(zone_norm ? zone_norm : zone, rdata, len, key_ptr);
}

/* -- information -- */

_public_
int khsm_dnskey_info(const dnssec_key_t *key, khsm_dnskey_info_t *info_ptr)
{
	if (!key || !info_ptr) {
		return KHSM_EINVAL;
	}
	khsm_dnskey_info_t info = {
		.flags = dnssec_key_get_flags(key),
		.protocol = dnssec_key_get_protocol(key),
		.algorithm = dnssec_key_get_algorithm(key),
		.key_tag = dnssec_key_get_keytag(key),
		.size_bits = dnssec_key_get_size(key),
	};
	info.sep = info.flags & DNSKEY_FLAG_SEP;
	const char *name = alg_mnemonic(info.algorithm);
	if (name) {
		snprintf(info.algorithm_name, sizeof(info.algorithm_name), "%s", name);
	} else {
		snprintf(info.algorithm_name, sizeof(info.algorithm_name), "ALG%u", info.algorithm);
	}
	*info_ptr = info;
	return KHSM_EOK;
}

_public_
int khsm_dnskey_zone(const dnssec_key_t *key, char **zone_ptr)
{
	if (!key || !zone_ptr) {
		return KHSM_EINVAL;
	}
	const uint8_t *dname = dnssec_key_get_dname(key);
	if (!dname) {
		khsm_err_detail("the key has no owner name");
		return KHSM_EINVAL;
	}
	knot_dname_storage_t lower;
	knot_dname_copy_lower(lower, dname);
	char *text = knot_dname_to_str_alloc(lower);
	if (!text) {
		return KHSM_ENOMEM;
	}
	*zone_ptr = text;
	return KHSM_EOK;
}

/* -- record text -- */

/* Presentation form of one rdata of the given type, as libknot prints it. */
static int dump_rdata(uint16_t type, const dnssec_binary_t *rdata, char **text_ptr)
{
	knot_dump_style_t style = KNOT_DUMP_STYLE_DEFAULT;
	style.wrap = false;
	style.show_class = false;
	style.show_ttl = false;
	style.verbose = false;
	style.generic = false;
	style.hide_crypto = false;
	style.ascii_to_idn = NULL;
	style.color = NULL;

	knot_rrset_t rr;
	knot_rrset_init(&rr, NULL, type, KNOT_CLASS_IN, 0);
	if (knot_rrset_add_rdata(&rr, rdata->data, rdata->size, NULL) != KNOT_EOK) {
		return KHSM_ENOMEM;
	}
	int r = KHSM_EOK;
	size_t size = 2 * rdata->size + 64; /* hex doubles, base64 adds a third */
	char *text = malloc(size);
	if (!text) {
		r = KHSM_ENOMEM;
		goto fail;
	}
	int len = knot_rrset_txt_dump_data(&rr, 0, text, size, &style);
	if (len < 0) {
		khsm_err_detail("libknot cannot print the record: %s", knot_strerror(len));
		r = KHSM_EPARSE;
		goto fail;
	}
	knot_rrset_clear(&rr, NULL);
	*text_ptr = text;
	return KHSM_EOK;
fail:
	free(text);
	knot_rrset_clear(&rr, NULL);
	return r;
}

/* Pointer to the field after the n-th blank of a one-line rdata text. */
static char *field_after(char *text, int n)
{
	char *p = text;
	for (int i = 0; i < n; i++) {
		p = strchr(p, ' ');
		if (!p) {
			return NULL;
		}
		p++;
	}
	return p;
}

static int ds_rdata(const dnssec_key_t *key, uint8_t digest_type, dnssec_binary_t *ds)
{
	if (!digest_type_ok(digest_type)) {
		khsm_err_detail("DS digest type %u is not one of 1 (SHA-1), 2 (SHA-256), 4 (SHA-384)",
		                digest_type);
		return KHSM_EINVAL;
	}
	if (!dnssec_key_get_dname(key)) {
		khsm_err_detail("the key has no owner name");
		return KHSM_EINVAL;
	}
	int dr = dnssec_key_create_ds(key, digest_type, ds);
	if (dr != DNSSEC_EOK) {
		return from_dnssec(dr, "cannot compute the DS");
	}
	return KHSM_EOK;
}

/* DS rdata text "TAG ALG TYPE hex" with the digest in lower case (keymgr's form). */
static int ds_text(const dnssec_key_t *key, uint8_t digest_type, char **text_ptr)
{
	_cleanup_binary_ dnssec_binary_t ds = { 0 };
	int r = ds_rdata(key, digest_type, &ds);
	if (r != KHSM_EOK) {
		return r;
	}
	_cleanup_free_ char *text = NULL;
	r = dump_rdata(KNOT_RRTYPE_DS, &ds, &text);
	if (r != KHSM_EOK) {
		return r;
	}
	char *digest = field_after(text, 3);
	if (!digest || strchr(digest, ' ') || !*digest) {
		khsm_err_detail("unexpected DS text from libknot: '%s'", text);
		return KHSM_EPARSE;
	}
	for (char *p = digest; *p; p++) {
		*p = tolower((unsigned char)*p);
	}
	*text_ptr = KHSM_STEAL(text);
	return KHSM_EOK;
}

static int dnskey_text(const dnssec_key_t *key, char **text_ptr)
{
	/* A reference into the key, not ours to free. */
	dnssec_binary_t rdata = { 0 };
	int dr = dnssec_key_get_rdata(key, &rdata);
	if (dr != DNSSEC_EOK) {
		return from_dnssec(dr, "cannot get DNSKEY rdata");
	}
	if (rdata.size <= 4) {
		khsm_err_detail("the key has no public key");
		return KHSM_EINVAL;
	}
	return dump_rdata(KNOT_RRTYPE_DNSKEY, &rdata, text_ptr);
}

/* "OWNER TYPE RDATA" as keymgr prints it: single blanks, no TTL, no class. */
static int record_line(const dnssec_key_t *key, uint16_t type, const char *rdata_text,
                       char **line_ptr)
{
	_cleanup_free_ char *owner = NULL;
	int r = khsm_dnskey_zone(key, &owner);
	if (r != KHSM_EOK) {
		return r;
	}
	char type_name[16];
	if (knot_rrtype_to_string(type, type_name, sizeof(type_name)) < 0) {
		return KHSM_EINVAL;
	}
	char *line = NULL;
	if (asprintf(&line, "%s %s %s", owner, type_name, rdata_text) < 0) {
		return KHSM_ENOMEM;
	}
	*line_ptr = line;
	return KHSM_EOK;
}

static int key_line(const dnssec_key_t *key, uint16_t type, char **line_ptr)
{
	if (!key || !line_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *text = NULL;
	int r = dnskey_text(key, &text);
	if (r != KHSM_EOK) {
		return r;
	}
	return record_line(key, type, text, line_ptr);
}

static int digest_line(const dnssec_key_t *key, uint16_t type, uint8_t digest_type, char **line_ptr)
{
	if (!key || !line_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *text = NULL;
	int r = ds_text(key, digest_type, &text);
	if (r != KHSM_EOK) {
		return r;
	}
	return record_line(key, type, text, line_ptr);
}

_public_
int khsm_dnskey_line(const dnssec_key_t *key, char **line_ptr)
{
	return key_line(key, KNOT_RRTYPE_DNSKEY, line_ptr);
}

_public_
int khsm_cdnskey_line(const dnssec_key_t *key, char **line_ptr)
{
	return key_line(key, KNOT_RRTYPE_CDNSKEY, line_ptr);
}

_public_
int khsm_ds_line(const dnssec_key_t *key, uint8_t digest_type, char **line_ptr)
{
	return digest_line(key, KNOT_RRTYPE_DS, digest_type, line_ptr);
}

_public_
int khsm_cds_line(const dnssec_key_t *key, uint8_t digest_type, char **line_ptr)
{
	return digest_line(key, KNOT_RRTYPE_CDS, digest_type, line_ptr);
}

_public_
int khsm_ds_digest(const dnssec_key_t *key, uint8_t digest_type, char **hex_ptr)
{
	if (!key || !hex_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *text = NULL;
	int r = ds_text(key, digest_type, &text);
	if (r != KHSM_EOK) {
		return r;
	}
	char *hex = strdup(field_after(text, 3));
	if (!hex) {
		return KHSM_ENOMEM;
	}
	*hex_ptr = hex;
	return KHSM_EOK;
}

_public_
int khsm_ds_lines(const dnssec_key_t *key, khsm_digest_t digest, char **text_ptr)
{
	if (!key || !text_ptr) {
		return KHSM_EINVAL;
	}
	uint8_t types[2];
	size_t count = khsm_digest_types(digest, types);
	if (count == 0) {
		return KHSM_EINVAL;
	}
	khsm_membuf_t m;
	int r = khsm_membuf_open(&m);
	if (r != KHSM_EOK) {
		return r;
	}
	for (size_t i = 0; i < count && r == KHSM_EOK; i++) {
		_cleanup_free_ char *line = NULL;
		r = khsm_ds_line(key, types[i], &line);
		if (r == KHSM_EOK) {
			fprintf(m.f, "%s\n", line);
		}
	}
	return khsm_membuf_close(&m, r, text_ptr);
}

_public_
int khsm_dnskey_pubkey_base64(const dnssec_key_t *key, char **b64_ptr)
{
	if (!key || !b64_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *text = NULL;
	int r = dnskey_text(key, &text);
	if (r != KHSM_EOK) {
		return r;
	}
	const char *b64 = field_after(text, 3);
	if (!b64 || !*b64 || strchr(b64, ' ')) {
		khsm_err_detail("unexpected DNSKEY text from libknot: '%s'", text);
		return KHSM_EPARSE;
	}
	char *out = strdup(b64);
	if (!out) {
		return KHSM_ENOMEM;
	}
	*b64_ptr = out;
	return KHSM_EOK;
}

/* -- JSON (json.c's writer, compact) -- */

static int json_ds(khsm_json_t *j, const dnssec_key_t *key, uint8_t digest_type)
{
	_cleanup_free_ char *hex = NULL;
	_cleanup_free_ char *line = NULL;
	int r = khsm_ds_digest(key, digest_type, &hex);
	if (r == KHSM_EOK) {
		r = khsm_ds_line(key, digest_type, &line);
	}
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_json_object(j, NULL);
	khsm_json_uint(j, "digest_type", digest_type);
	khsm_json_str(j, "digest", hex);
	khsm_json_str(j, "text", line);
	khsm_json_end(j);
	return KHSM_EOK;
}

_public_
int khsm_dnskey_json(const dnssec_key_t *key, khsm_digest_t digest, char **json_ptr)
{
	if (!key || !json_ptr) {
		return KHSM_EINVAL;
	}
	uint8_t types[2];
	size_t ntypes = khsm_digest_types(digest, types);
	if (ntypes == 0) {
		return KHSM_EINVAL;
	}
	khsm_dnskey_info_t info;
	_cleanup_free_ char *zone = NULL;
	_cleanup_free_ char *dnskey = NULL;
	int r = khsm_dnskey_info(key, &info);
	if (r == KHSM_EOK) r = khsm_dnskey_zone(key, &zone);
	if (r == KHSM_EOK) r = khsm_dnskey_line(key, &dnskey);
	if (r != KHSM_EOK) {
		return r;
	}

	khsm_membuf_t m;
	r = khsm_membuf_open(&m);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_json_t j;
	khsm_json_init(&j, m.f, KHSM_JSON_COMPACT);
	khsm_json_object(&j, NULL);
	khsm_json_str(&j, "zone", zone);
	khsm_json_uint(&j, "key_tag", info.key_tag);
	khsm_json_uint(&j, "algorithm", info.algorithm);
	khsm_json_str(&j, "algorithm_name", info.algorithm_name);
	khsm_json_uint(&j, "flags", info.flags);
	khsm_json_str(&j, "dnskey", dnskey);
	khsm_json_array(&j, "ds");
	for (size_t i = 0; i < ntypes && r == KHSM_EOK; i++) {
		r = json_ds(&j, key, types[i]);
	}
	khsm_json_end(&j);
	khsm_json_end(&j);
	return khsm_membuf_close(&m, r, json_ptr);
}
