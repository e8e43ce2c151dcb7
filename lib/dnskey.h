/* DNSSEC public keys for operators and registries: zone names, DNSKEY, key tag,
 * DS/CDS/CDNSKEY text, EPP secDNS-1.1 (RFC 5910) and JSON.
 * Key tags, DNSKEY rdata and DS digests come from libdnssec, names and record
 * text from libknot, so everything matches what knotd and keymgr 3.2.6 print. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

/* Which DS digests to produce. */
typedef enum {
	KHSM_DIGEST_SHA256 = 0, /* DS digest type 2; the default */
	KHSM_DIGEST_SHA384,     /* DS digest type 4 */
	KHSM_DIGEST_SHA1,       /* DS digest type 1; only on explicit request (deprecated, RFC 8624) */
	KHSM_DIGEST_ALL,        /* types 2 and 4, in that order: what `keymgr ZONE ds` prints */
} khsm_digest_t;

/* EPP secDNS-1.1 variants. */
typedef enum {
	KHSM_EPP_DS = 0,     /* <secDNS:dsData> only */
	KHSM_EPP_DS_KEYDATA, /* <secDNS:dsData> with the <secDNS:keyData> of its key inside */
	KHSM_EPP_KEYDATA,    /* <secDNS:keyData> only, for registries that take keys */
} khsm_epp_mode_t;

/* What an operator wants to know about a key. */
typedef struct {
	uint16_t flags;               /* 257 for a KSK (SEP), 256 for a ZSK */
	uint8_t protocol;             /* always 3 */
	uint8_t algorithm;            /* e.g. 13 */
	char algorithm_name[32];      /* libknot mnemonic, e.g. "ECDSAP256SHA256"; "ALG<n>" if unknown */
	uint16_t key_tag;
	unsigned size_bits;           /* dnssec_key_get_size(), e.g. 256 for P-256 */
	bool sep;                     /* SEP flag set (KSK) */
} khsm_dnskey_info_t;

/** Normalise a zone name: any case, with or without final dot, IDN in xn-- form.
 *  Gives a lower-case FQDN with final dot ("Example.COM" -> "example.com.", "." stays ".").
 *  Rejects empty labels, labels over 63 octets, names over 255 octets, non-ASCII
 *  (asks for the xn-- form) and characters other than letters, digits, '-', '_', '/'.
 *  \param[out] zone_ptr  free with free(). */
int khsm_zone_normalize(const char *input, char **zone_ptr);

/** Parse a DS digest selection: "sha256", "sha384", "sha1" or "all" (any case, nothing else). */
int khsm_digest_from_name(const char *name, khsm_digest_t *digest_ptr);

/** Name of a digest selection as khsm_digest_from_name() reads it (static string). */
const char *khsm_digest_name(khsm_digest_t digest);

/** DS digest type numbers of a selection, in output order; returns how many (1 or 2),
 *  0 for an invalid selection. types must hold 2 entries. */
size_t khsm_digest_types(khsm_digest_t digest, uint8_t types[2]);

/** Build a public key from DNSKEY rdata (flags, protocol 3, algorithm, public key)
 *  with zone as owner (normalised first).
 *  \param[out] key_ptr  free with dnssec_key_free(). */
int khsm_dnskey_from_rdata(const char *zone, const uint8_t *rdata, size_t len,
                           dnssec_key_t **key_ptr);

/** Build a public key from presentation text: "257 3 13 BASE64…" (base64 may be split
 *  by blanks), or a whole record "OWNER [TTL] [IN] DNSKEY|CDNSKEY 257 3 13 BASE64…" such
 *  as `keymgr ZONE dnskey` prints. With an owner, zone may be NULL (the owner is used)
 *  or must name the same zone. Without an owner, zone is required.
 *  \param[out] key_ptr  free with dnssec_key_free(). */
int khsm_dnskey_from_text(const char *zone, const char *text, dnssec_key_t **key_ptr);

/** Flags, algorithm, key tag and size of a key; fills *info_ptr (nothing to free). */
int khsm_dnskey_info(const dnssec_key_t *key, khsm_dnskey_info_t *info_ptr);

/** Owner of a key as lower-case FQDN text, "example.com.".
 *  \param[out] zone_ptr  free with free(). */
int khsm_dnskey_zone(const dnssec_key_t *key, char **zone_ptr);

/** "example.com. DNSKEY 257 3 13 BASE64==", as `keymgr ZONE dnskey` prints it, no newline.
 *  \param[out] line_ptr  free with free(). */
int khsm_dnskey_line(const dnssec_key_t *key, char **line_ptr);

/** "example.com. CDNSKEY 257 3 13 BASE64==", no newline.
 *  \param[out] line_ptr  free with free(). */
int khsm_cdnskey_line(const dnssec_key_t *key, char **line_ptr);

/** "example.com. DS 25668 13 2 4bcf…" (lower-case hex, as `keymgr ZONE ds`), no newline.
 *  digest_type is 1 (SHA-1), 2 (SHA-256) or 4 (SHA-384).
 *  \param[out] line_ptr  free with free(). */
int khsm_ds_line(const dnssec_key_t *key, uint8_t digest_type, char **line_ptr);

/** "example.com. CDS 25668 13 2 4bcf…", no newline.
 *  \param[out] line_ptr  free with free(). */
int khsm_cds_line(const dnssec_key_t *key, uint8_t digest_type, char **line_ptr);

/** DS lines of a key for a digest selection, each ending in "\n"; with
 *  KHSM_DIGEST_ALL byte for byte what `keymgr ZONE ds` prints for that key.
 *  \param[out] text_ptr  free with free(). */
int khsm_ds_lines(const dnssec_key_t *key, khsm_digest_t digest, char **text_ptr);

/** The DS digest alone in lower-case hex (computed by libdnssec, printed by libknot).
 *  \param[out] hex_ptr  free with free(). */
int khsm_ds_digest(const dnssec_key_t *key, uint8_t digest_type, char **hex_ptr);

/** RFC 5910 secDNS-1.1 <secDNS:create> fragment for count keys: per key and per
 *  selected digest one <secDNS:dsData> (digest in UPPER-case hex, the canonical
 *  xsd:hexBinary form and the form of the RFC 5910 examples), with <secDNS:keyData>
 *  inside for KHSM_EPP_DS_KEYDATA; or one <secDNS:keyData> per key for
 *  KHSM_EPP_KEYDATA (digest ignored). Two-space indent, every line ends in "\n".
 *  \param[out] xml_ptr  free with free(). */
int khsm_epp_secdns_create(const dnssec_key_t *const *keys, size_t count,
                           khsm_digest_t digest, khsm_epp_mode_t mode, char **xml_ptr);

/** One compact JSON object (no newline) for a key:
 *  {"zone","key_tag","algorithm","algorithm_name","flags","dnskey",
 *   "ds":[{"digest_type","digest","text"}…]}; dnskey and text are the full lines
 *  of khsm_dnskey_line()/khsm_ds_line(), digest is lower-case hex; strings are
 *  escaped by khsm_json_string() (json.h).
 *  \param[out] json_ptr  free with free(). */
int khsm_dnskey_json(const dnssec_key_t *key, khsm_digest_t digest, char **json_ptr);

/** Escape a string for XML text or attribute values (& < > " ').
 *  Rejects control characters XML 1.0 cannot carry.
 *  \param[out] xml_ptr  free with free(). */
int khsm_xml_escape(const char *text, char **xml_ptr);
