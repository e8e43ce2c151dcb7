/* The offline-KSK cycle of Knot 3.2+ with keymgr: pregenerate ZSKs on the
 * ZSK side (knotd's knot.conf), generate-ksr there, sign-ksr on the KSK side
 * (the card), check the SKR (keymgr validate-skr and our own checks), then
 * import-skr. Also the reading of KSR, SKR and `keymgr show-offline` text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One key set of a KSR, SKR or `show-offline` listing: the DNSKEY RRset in
 * force from timestamp on, with the RRSIGs of an SKR. */
typedef struct {
	int64_t timestamp;
	char **dnskeys;          /* rdata "FLAGS 3 ALG BASE64", base64 joined */
	size_t dnskey_count;
	size_t ksk_count;        /* DNSKEYs with the SEP flag (257) */
	size_t rrsig_count;      /* RRSIGs of this set (DNSKEY, CDNSKEY, CDS) */
	int64_t rrsig_expire;    /* earliest expiration of the RRSIGs; 0 when none */
} khsm_keyset_t;

typedef struct {
	khsm_keyset_t *sets;
	size_t count;
} khsm_keysets_t;

/** Parse a KSR, an SKR or `keymgr ZONE show-offline` output (Knot 3.2.6
 *  format: ";; KeySigningRequest 1.0 T (…) ===", ";; SignedKeyResponse 1.0 T
 *  (…) ===", ";; Offline records for T (…) ===" headers, records in
 *  presentation format with parentheses). Records must belong to zone (any
 *  case, with or without final dot). Anything else is KHSM_EPARSE with the
 *  line number. \param[out] sets  free with khsm_keysets_clear(). */
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

/** The KSK DNSKEYs of a zone on the KSK side: `keymgr -c CONF ZONE dnskey`,
 *  as "257 3 ALG BASE64" strings. \param[out] rdata_ptr free with
 *  khsm_strv_free(). \param[out] count_ptr (0 when the zone has no KSK). */
int khsm_ceremony_ksk_dnskeys(const char *ksk_conf, const char *zone, char ***rdata_ptr,
                              size_t *count_ptr);

/** Free a string vector. */
void khsm_strv_free(char **v, size_t count);

/* The pre-signed period now in the ZSK side's KASP. */
typedef struct {
	bool present;          /* false: no offline records at all */
	int64_t first;         /* first key set */
	int64_t end;           /* last key set: the end of the pre-signed period */
	int64_t valid_until;   /* expiration of the last set's DNSKEY RRSIG */
} khsm_offline_period_t;

/** Read the offline records of a zone on the ZSK side (`keymgr show-offline`).
 *  \param[out] period */
int khsm_offline_period(const char *zsk_conf, const char *zone, khsm_offline_period_t *period);

/* One ceremony run for a zone. */
typedef struct {
	const char *zsk_conf;      /* knotd's knot.conf */
	const char *ksk_conf;      /* the KSK-side configuration keymgr signs with */
	const char *archive_dir;   /* where ZONE.ksr and ZONE.skr are written (exists) */
	int64_t now;
	int64_t until;             /* absolute end of the wanted period */
} khsm_ceremony_t;

typedef struct {
	bool skipped;              /* already covered up to until */
	int64_t from, end;         /* period of the new SKR (skipped: the old end) */
	int64_t valid_until;
	size_t signatures;         /* RRSIGs in the SKR: card signatures used */
	char *ksr_path, *skr_path; /* archived files; NULL when skipped */
} khsm_ceremony_result_t;

/** Run the cycle for one zone: skip when the pre-signed period already
 *  reaches until (less min(1 day, (until - now) / 10), so that a rerun soon
 *  after does not use the card again); otherwise pregenerate, generate-ksr, sign-ksr (card),
 *  validate-skr, khsm_skr_check, import-skr, and read the period back. The
 *  zone's KASP is changed only by pregenerate (future, unpublished ZSKs)
 *  and by the final import: any failure before it leaves the previous SKR
 *  in force. An SKR that fails a check is archived as ZONE.skr.invalid and
 *  never imported. \param[out] res  free with khsm_ceremony_result_clear(). */
int khsm_ceremony_zone(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_result_t *res);

/** Free what a result holds. */
void khsm_ceremony_result_clear(khsm_ceremony_result_t *res);

/** Write data to path atomically (temp file in the same directory, fsync,
 *  rename) with the given mode. */
int khsm_write_atomic(const char *path, const char *data, size_t len, unsigned mode);

/** File name for a zone's archive files: "example.com" for "example.com.",
 *  "root" for ".". \param[out] name_ptr  free with free(). */
int khsm_ceremony_file_stem(const char *zone, char **name_ptr);
