/* Signing KSRs with the card inside knot-hsm: one libdnssec PKCS#11
 * keystore, opened with the KSK side's config string (pin-source), for the
 * whole run: one card login however many zones. It produces the SKR `keymgr
 * sign-ksr` of Knot 3.2.6 produces for the same KSR (same sets, the KSK
 * timers inside the period and the refreshes between KSR sets included,
 * same records, CDS and CDNSKEY of a ready KSK, RRSIG inception set time -
 * 90 min and expiration set time + rrsig-lifetime, same text) except for the
 * ECDSA signature bytes, which are random, the trailer line, and a standby
 * KSK (standby.h), which is published and signs nothing. Unlike keymgr 3.2,
 * which signs with the policy's keystore only, a KSK on another card of the
 * KSK side (khsm_skr_signer_add_card(): a rollover from card to card) signs
 * from that card. Not thread-safe: one thread uses a signer. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "knot.h"

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

/** Another card of the KSK side ("<token-uri> <module-path>"): a KSK whose
 *  public key object is on it and not on the signer's own card signs from
 *  it. It is opened, and logged in to with the same one-try rules as
 *  khsm_skr_signer_login(), only when such a key is to sign; a card that
 *  is absent is simply not looked at. Its operations take the lock of
 *  card_name (khsm_uri_card_name(), retry.h card scopes), not the thread's. */
int khsm_skr_signer_add_card(khsm_skr_signer_t *signer, const char *keystore_config,
                             const char *card_name);

/** Close the keystore (logs out) and the added cards'. NULL accepted. */
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
	int cds;                     /* cds-cdnskey-publish (khsm_cds_t, policy.h) with the
	                                SHA-256 CDS digest; -1: any other (keymgr's) */
	const khsm_ksk_key_t *keys;
	size_t key_count;
} khsm_skr_request_t;

/** Sign a KSR (text) with the card as `keymgr sign-ksr` does.
 *  KHSM_ENOTSUP with the reason when the zone is in a state this signer does
 *  not reproduce (a CDS/CDNSKEY policy of its own, a revoked, public-only or
 *  ZSK key on the KSK side, KSKs of two algorithms, a moment no KSK signs):
 *  use keymgr sign-ksr then.
 *  \param[out] skr_ptr  free with free(). \param[out] sigs_ptr  card signatures. */
int khsm_skr_sign(khsm_skr_signer_t *signer, const khsm_skr_request_t *req, const char *ksr_text,
                  char **skr_ptr, size_t *sigs_ptr);
