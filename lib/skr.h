/* KSR, SKR and `keymgr show-offline` text as key sets, and the checks of
 * an SKR against the KSR it answers and the card's KSKs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/binary.h>
#include <libdnssec/key.h>

/* One key set of a KSR, SKR or `show-offline` listing: the DNSKEY RRset in
 * force from timestamp on, with the RRSIGs of an SKR. */
typedef struct {
	int64_t timestamp;
	char **dnskeys;          /* rdata "FLAGS 3 ALG BASE64", base64 joined */
	size_t dnskey_count;
	size_t ksk_count;        /* DNSKEYs with the SEP flag (257) */
	size_t rrsig_count;      /* RRSIGs of this set (DNSKEY, CDNSKEY, CDS) */
	int64_t rrsig_expire;    /* earliest expiration of the RRSIGs; 0 when none */
	int64_t dnskey_ttl;      /* TTL of the last DNSKEY record; -1 when none had one */
} khsm_keyset_t;

typedef struct {
	khsm_keyset_t *sets;
	size_t count;
} khsm_keysets_t;

/** Parse a KSR, an SKR or `keymgr ZONE show-offline` output (Knot 3.2.6
 *  format: ";; KeySigningRequest 1.0 T (…) ===", ";; SignedKeyResponse 1.0 T
 *  (…) ===", ";; Offline records for T (…) ===" headers, records in
 *  presentation format with parentheses). Records must belong to zone (any
 *  case, with or without final dot). The records are read by libzscanner,
 *  as keymgr reads them; $INCLUDE is refused. Anything else is KHSM_EPARSE
 *  with the line number. \param[out] sets  free with khsm_keysets_clear(). */
int khsm_keysets_parse(const char *text, const char *zone, khsm_keysets_t *sets);

/** Free parsed key sets and zero them. */
void khsm_keysets_clear(khsm_keysets_t *sets);

/** Total RRSIGs: the card signatures an SKR used. */
size_t khsm_keysets_rrsig_count(const khsm_keysets_t *sets);

/** Check an SKR against the KSR it answers and the card's KSKs, beyond what
 *  `keymgr validate-skr` checks: every set is signed and carries only card
 *  KSKs (at least one), every KSR set is in the SKR with the same ZSKs, and
 *  both cover the same period. ksk_rdata: "257 3 ALG BASE64" of the KSKs on
 *  the KSK side. KHSM_ECRYPTO with the reason. */
int khsm_skr_check(const khsm_keysets_t *ksr, const khsm_keysets_t *skr,
                   const char *const *ksk_rdata, size_t ksk_count);

/** Free a string vector. */
void khsm_strv_free(char **v, size_t count);

/** DNSKEY rdata text "FLAGS 3 ALG BASE64" (as in khsm_keyset_t) to wire.
 *  \param[out] out  free with dnssec_binary_free(). */
int khsm_keyset_dnskey_wire(const char *text, dnssec_binary_t *out);

/** The DNSKEY rdata text of a key as khsm_keyset_t holds it ("257 3 13 BASE64").
 *  \param[out] text_ptr  free with free(). */
int khsm_keyset_dnskey_text(const dnssec_key_t *key, char **text_ptr);
