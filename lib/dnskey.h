/* DNSSEC public keys for operators and registries: algorithm names, DNSKEY,
 * key tag, DS/CDS/CDNSKEY text and JSON (EPP XML: epp.h; zone names: dname.h).
 * Key tags, DNSKEY rdata and DS digests come from libdnssec, names and record
 * text from libknot, so everything matches what knotd and keymgr 3.2.6 print. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

#include "dname.h" /* key owners are zone names */

/* Which DS digests to produce. */
typedef enum {
	KHSM_DIGEST_SHA256 = 0, /* DS digest type 2; the default */
	KHSM_DIGEST_SHA384,     /* DS digest type 4 */
	KHSM_DIGEST_SHA1,       /* DS digest type 1; only on explicit request (deprecated, RFC 8624) */
	KHSM_DIGEST_ALL,        /* types 2 and 4, in that order: what `keymgr ZONE ds` prints */
} khsm_digest_t;

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

/** DNSSEC algorithm by the name keymgr accepts ("ecdsap256sha256" -> 13, any
 *  case); KHSM_EINVAL with a detail listing the names for anything else. */
int khsm_algorithm_from_name(const char *name, int *algorithm_ptr);

/** Name of an algorithm number as khsm_algorithm_from_name() reads it (static
 *  string), NULL for one we do not support. */
const char *khsm_algorithm_name(int algorithm);

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

/** The public key field of the DNSKEY text (base64, as libknot prints it).
 *  \param[out] b64_ptr  free with free(). */
int khsm_dnskey_pubkey_base64(const dnssec_key_t *key, char **b64_ptr);

/** One compact JSON object (no newline) for a key:
 *  {"zone","key_tag","algorithm","algorithm_name","flags","dnskey",
 *   "ds":[{"digest_type","digest","text"}…]}; dnskey and text are the full lines
 *  of khsm_dnskey_line()/khsm_ds_line(), digest is lower-case hex; strings are
 *  escaped by khsm_json_string() (json.h).
 *  \param[out] json_ptr  free with free(). */
int khsm_dnskey_json(const dnssec_key_t *key, khsm_digest_t digest, char **json_ptr);

