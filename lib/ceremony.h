/* The offline-KSK cycle of Knot 3.2+ with keymgr: pregenerate ZSKs on the
 * ZSK side (knotd's knot.conf), generate-ksr there, sign-ksr on the KSK side
 * (the card), check the SKR (keymgr validate-skr and our own checks), then
 * import-skr. The key sets are read by skr.h, the card signs with skr_sign.h. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "knot.h"
#include "skr.h"
#include "skr_sign.h"

/** The KSK DNSKEYs of a zone on the KSK side: `keymgr -c CONF ZONE dnskey`,
 *  as "257 3 ALG BASE64" strings. \param[out] rdata_ptr free with
 *  khsm_strv_free(). \param[out] count_ptr (0 when the zone has no KSK). */
int khsm_ceremony_ksk_dnskeys(const char *ksk_conf, const char *zone, char ***rdata_ptr,
                              size_t *count_ptr);

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
	khsm_skr_signer_t *signer; /* NULL: keymgr sign-ksr per zone (a login each) */
	int64_t rrsig_lifetime;    /* KSK-side policy, for the signer; 0: unknown */
	int64_t rrsig_refresh;
	int cds;                   /* the KSK side's cds-cdnskey-publish (khsm_cds_t), -1: one
	                              the signer does not reproduce */
	const char *ksk_display;   /* KSK-side path named in messages (NULL: ksk_conf) */
	const char *card_config;   /* card keystore config: knot-hsm logs in with it once
	                              before keymgr sign-ksr does (signer NULL), and tells a
	                              removed card after a keymgr failure (NULL: neither) */
	bool force;                /* --force: a login at the final PIN try is allowed */
	const char *card_lock;     /* this card's name for its own lock (khsm_card_scope_begin()),
	                              taken by khsm_ceremony_run()'s calling thread; NULL: the
	                              machine-wide card lock */
	/* Called for each zone (index: its place in that call's zones), in zone
	 * order, by a thread of khsm_ceremony_run() of its own, one zone ahead of
	 * the preparer, which prepares the zone once it returned; meanwhile the
	 * card signs the zone before (khsm_ceremony_run_cards(): one such thread
	 * per card, at the same time):
	 * ceremony generate-ksk=yes makes or shares the zone's KSK there, so that
	 * the KASP work of onboarding runs beside the ZSK side's while the card is
	 * busy. A failure (a KHSM_E* code, with its detail) stops the run at that
	 * zone as a failed prepare step does; a run stopped meanwhile prepares
	 * nothing of that zone. NULL: none. */
	int (*before_prepare)(size_t index, const char *zone, void *data);
	void *before_data;
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

/* Called once per zone, in zone order, from the pipeline's finisher thread
 * (a failure of the before_prepare hook, prepare or sign step: from the
 * calling thread, after the workers ended):
 * r is KHSM_EOK with res filled, or the failure (detail in this thread). The
 * callback returns false to stop the run. */
typedef bool (*khsm_ceremony_cb_t)(size_t index, const char *zone, int r,
                                   const khsm_ceremony_result_t *res, void *data);

/** The cycle for many zones, pipelined: with before_prepare a hook thread
 *  runs it for zone i+2, a preparer thread prepares zone i+1 (ZSK side) and
 *  a finisher thread finishes zone i-1 (validate, import), while the calling
 *  thread signs zone i with the card, so the card never waits for keymgr
 *  when it is the slower side. Zones are imported strictly in order; at the
 *  first failure no later zone is imported (a later zone may have had its
 *  hook run, been prepared, i.e. pregenerated, or even signed and archived,
 *  never imported).
 *  \param[out] done_ptr  zones finished (imported or skipped) before the
 *  failure; all of them on success. Returns the first failure. */
int khsm_ceremony_run(const khsm_ceremony_t *c, const char *const *zones, size_t count,
                      khsm_ceremony_cb_t cb, void *data, size_t *done_ptr);

/** The cycle for zones on several cards, one card after the other no more:
 *  khsm_ceremony_run() for each card in a thread of its own (each with its
 *  preparer and finisher), cards[card_of[i]] for zone i, the zones of one card in
 *  their order. cb is called for every zone with its index in zones, from
 *  the cards' threads, never two at a time. A failure stops the zones of its
 *  own card only, except a refused or locked PIN, which stops every card
 *  after the zone it is at (one PIN try per run, lib/keystore.h): the other
 *  cards' zones finished before are done. \param[out] done_ptr  zones done
 *  (imported or skipped). Returns the failure of the lowest zone index. */
int khsm_ceremony_run_cards(const khsm_ceremony_t *const *cards, size_t card_count,
                            const char *const *zones, const size_t *card_of, size_t count,
                            khsm_ceremony_cb_t cb, void *data, size_t *done_ptr);

/** Free what a result holds. */
void khsm_ceremony_result_clear(khsm_ceremony_result_t *res);


/** File name for a zone's archive files: "example.com" for "example.com.",
 *  "root" for ".". \param[out] name_ptr  free with free(). */
int khsm_ceremony_file_stem(const char *zone, char **name_ptr);

/** The KSK-side configuration for keymgr when its card keystore has no
 *  pin-source: ksk_text (the file ksk_path, keystore ks_id with config) with
 *  that config replaced by one naming pin_path as pin-source. KHSM_ECONFIG
 *  when the config is not written in ksk_text as knotc exports it.
 *  \param[out] config_ptr  the new keystore config; free().
 *  \param[out] text_ptr    the new configuration text (a path, never a PIN); free(). */
int khsm_ceremony_ksk_conf_pin(const char *ksk_path, const char *ksk_text, const char *ks_id,
                               const char *config, const char *pin_path,
                               char **config_ptr, char **text_ptr);
