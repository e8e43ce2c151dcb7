/* The offline-KSK cycle of Knot 3.2+ with keymgr: pregenerate ZSKs on the
 * ZSK side (knotd's knot.conf), generate-ksr there, sign-ksr on the KSK side
 * (the card), check the SKR (keymgr validate-skr and our own checks), then
 * import-skr. Also the reading of KSR, SKR and `keymgr show-offline` text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "knot.h"

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

/* Signing KSRs with the card inside knot-hsm: one libdnssec PKCS#11
 * keystore, opened with the KSK side's config string (pin-source), for the
 * whole run: one card login however many zones. It produces, for the cases it
 * covers, the SKR `keymgr sign-ksr` of Knot 3.2.6 produces for the same KSR
 * (same sets, same timestamps, same records, RRSIG inception now - 90 min and
 * expiration now + rrsig-lifetime, same text) except for the ECDSA signature
 * bytes, which are random, and the trailer line. Not thread-safe: one thread
 * uses a signer. */
typedef struct khsm_skr_signer khsm_skr_signer_t;

/** Open the card keystore ("<token-uri> <module-path>", as in knot.conf).
 *  \param[out] signer_ptr  close with khsm_skr_signer_close(). */
int khsm_skr_signer_open(const char *keystore_config, khsm_skr_signer_t **signer_ptr);

/** Log in once, explicitly, and keep the login for the run: token flags
 *  first (final try refused unless force, locked always), one try through
 *  the config's pin-source, never retried. Nothing when already logged in.
 *  khsm_skr_sign() calls it (with the force of an earlier call, else false);
 *  card operations after it never let libdnssec or GnuTLS log in by
 *  themselves, and log in again (once per try) only after the card forgot
 *  the login. */
int khsm_skr_signer_login(khsm_skr_signer_t *signer, bool force);

/** Close the keystore (logs out). NULL accepted. */
void khsm_skr_signer_close(khsm_skr_signer_t *signer);

/* A key of the KSK side as keymgr lists it, with its DNSKEY rdata text. */
typedef struct {
	khsm_kasp_key_t kasp;
	char *rdata;                 /* "257 3 ALG BASE64"; NULL when no DNSKEY matched */
} khsm_ksk_key_t;

/* What the signer needs from the KSK side of a zone. */
typedef struct {
	const char *zone;
	int64_t rrsig_lifetime;      /* KSK-side policy, seconds */
	int64_t rrsig_refresh;
	bool cds_default;            /* cds-cdnskey-publish not set (rollover) */
	const khsm_ksk_key_t *keys;
	size_t key_count;
} khsm_skr_request_t;

/** Sign a KSR (text) with the card as `keymgr sign-ksr` does.
 *  KHSM_ENOTSUP with the reason when the zone is in a state this signer does
 *  not reproduce (a KSK timer inside the period, a CDS/CDNSKEY policy, a
 *  public-only or ZSK key on the KSK side): use keymgr sign-ksr then.
 *  \param[out] skr_ptr  free with free(). \param[out] sigs_ptr  card signatures. */
int khsm_skr_sign(khsm_skr_signer_t *signer, const khsm_skr_request_t *req, const char *ksr_text,
                  char **skr_ptr, size_t *sigs_ptr);

/* One ceremony run for a zone. */
typedef struct {
	const char *zsk_conf;      /* knotd's knot.conf */
	const char *ksk_conf;      /* the KSK-side configuration keymgr signs with */
	const char *archive_dir;   /* where ZONE.ksr and ZONE.skr are written (exists) */
	int64_t now;
	int64_t until;             /* absolute end of the wanted period */
	khsm_skr_signer_t *signer; /* NULL: keymgr sign-ksr per zone (a login each) */
	int64_t rrsig_lifetime;    /* KSK-side policy, for the signer; 0: unknown */
	int64_t rrsig_refresh;
	bool cds_default;          /* KSK side leaves cds-cdnskey-publish at its default */
	const char *ksk_display;   /* KSK-side path named in messages (NULL: ksk_conf) */
	const char *card_config;   /* card keystore config: knot-hsm logs in with it once
	                              before keymgr sign-ksr does (signer NULL), and tells a
	                              removed card after a keymgr failure (NULL: neither) */
	bool force;                /* --force: a login at the final PIN try is allowed */
} khsm_ceremony_t;

typedef struct {
	bool skipped;              /* already covered up to until */
	int64_t from, end;         /* period of the new SKR (skipped: the old end) */
	int64_t valid_until;
	size_t signatures;         /* RRSIGs in the SKR: card signatures used */
	char *ksr_path, *skr_path; /* archived files; NULL when skipped */
	bool by_keymgr;            /* signed by keymgr sign-ksr (own login), not the signer */
	char *keymgr_reason;       /* why the signer handed the zone to keymgr, or NULL */
} khsm_ceremony_result_t;

/* A zone between the steps of the cycle (see khsm_ceremony_zone()). */
typedef struct {
	char *zone;
	khsm_ceremony_result_t res;
	char *ksr_text, *skr_text;
	khsm_ksk_key_t *keys;      /* KSK side: keys with their DNSKEY */
	size_t key_count;
	char **ksk_rdata;          /* KSK side: `keymgr dnskey` */
	size_t ksk_count;
} khsm_ceremony_prep_t;

/** Step 1, ZSK side and KSK-side reading, no card: show-offline and the skip
 *  rule, the KSKs, pregenerate, generate-ksr, the KSR archived.
 *  \param[out] prep  free with khsm_ceremony_prep_clear() (also on failure). */
int khsm_ceremony_prepare(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_prep_t *prep);

/** Step 2, the card: sign the KSR (c->signer, or keymgr sign-ksr when it is
 *  NULL or the signer answers KHSM_ENOTSUP) and archive the SKR. Nothing for
 *  a skipped zone. keymgr sign-ksr runs under khsm_card_lock(). With signer
 *  NULL the caller checks the PIN first (khsm_keystore_login_check() on
 *  card_config), as khsm_ceremony_zone() and khsm_ceremony_run() do. */
int khsm_ceremony_sign(const khsm_ceremony_t *c, khsm_ceremony_prep_t *prep);

/** Step 3, ZSK side: validate-skr, khsm_skr_check, import-skr, read back.
 *  \param[out] res  moved out of prep; free with khsm_ceremony_result_clear(). */
int khsm_ceremony_finish(const khsm_ceremony_t *c, khsm_ceremony_prep_t *prep,
                         khsm_ceremony_result_t *res);

/** Free a prepared zone. */
void khsm_ceremony_prep_clear(khsm_ceremony_prep_t *prep);

/** Run the cycle for one zone: skip when the pre-signed period already
 *  reaches until (less min(1 day, (until - now) / 10), so that a rerun soon
 *  after does not use the card again); otherwise pregenerate, generate-ksr, sign-ksr (card),
 *  validate-skr, khsm_skr_check, import-skr, and read the period back. The
 *  zone's KASP is changed only by pregenerate (future, unpublished ZSKs)
 *  and by the final import: any failure before it leaves the previous SKR
 *  in force. An SKR that fails a check is archived as ZONE.skr.invalid and
 *  never imported. \param[out] res  free with khsm_ceremony_result_clear(). */
int khsm_ceremony_zone(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_result_t *res);

/* Called once per zone, in zone order, from the pipeline's worker thread:
 * r is KHSM_EOK with res filled, or the failure (detail in this thread). The
 * callback returns false to stop the run. */
typedef bool (*khsm_ceremony_cb_t)(size_t index, const char *zone, int r,
                                   const khsm_ceremony_result_t *res, void *data);

/** The cycle for many zones, pipelined: a worker thread prepares zone i+1
 *  (ZSK side) and finishes zone i-1 (validate, import) while the calling
 *  thread signs zone i with the card, so the card never waits for keymgr
 *  when it is the slower side. Zones are imported strictly in order; at the
 *  first failure no later zone is imported (a later zone may have been
 *  prepared, i.e. pregenerated, or even signed and archived, never imported).
 *  \param[out] done_ptr  zones finished (imported or skipped) before the
 *  failure; all of them on success. Returns the first failure. */
int khsm_ceremony_run(const khsm_ceremony_t *c, const char *const *zones, size_t count,
                      khsm_ceremony_cb_t cb, void *data, size_t *done_ptr);

/** Free what a result holds. */
void khsm_ceremony_result_clear(khsm_ceremony_result_t *res);

/** Write data to path atomically (temp file in the same directory, fsync,
 *  rename) with the given mode. */
int khsm_write_atomic(const char *path, const char *data, size_t len, unsigned mode);

/** File name for a zone's archive files: "example.com" for "example.com.",
 *  "root" for ".". \param[out] name_ptr  free with free(). */
int khsm_ceremony_file_stem(const char *zone, char **name_ptr);
