/* The signer's health in online mode (Knot >= 3.5, KSK on a card): the card
 * reachable, knotd's next signing scheduled, the served DNSKEY signature
 * before its refresh point; and the one repair knot-hsm can make, asking
 * knotd to sign (knotc zone-sign) when Knot did not reschedule a signing that
 * failed while the card was away. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "kasp.h"
#include "knotconf.h"

/* Can the card holding the zone's KSK be reached now? Public objects only,
 * no login. */
typedef enum {
	KHSM_CARD_UNKNOWN = 0,  /* could not tell (no KSK id, bad id) */
	KHSM_CARD_PRESENT,      /* the token answers and shows the KSK */
	KHSM_CARD_NOKEY,        /* the token answers but has no such key */
	KHSM_CARD_ABSENT,       /* no token (removed, or the module cannot reach it) */
	KHSM_CARD_NOPCSCD,      /* the module uses pcscd and pcscd does not answer */
} khsm_card_state_t;

/** Word for a card state: "present", "absent (no key)", "absent", "pcscd not
 *  running", "unknown". Static string. */
const char *khsm_card_state_name(khsm_card_state_t state);

/** Probe the card of keystore config ("<uri> <module>") for the public key
 *  with CKA_ID id_hex (NULL: only the token). Never logs in. */
khsm_card_state_t khsm_card_probe(const char *config, const char *id_hex);

/* The card probes of one run (status over many zones): each card read once,
 * its public key ids kept, so a zone's probe costs no card call. Thread-safe. */
typedef struct khsm_card_probes khsm_card_probes_t;

/** New, empty probes; NULL without memory. */
khsm_card_probes_t *khsm_card_probes_new(void);

/** khsm_card_probe() answered from the run's read of the card (config
 *  compared as written); probes NULL: khsm_card_probe() itself. */
khsm_card_state_t khsm_card_probes_get(khsm_card_probes_t *probes, const char *config, const char *id_hex);

/** The number of public key objects (key pairs) on the card of config, from
 *  the run's read of it: *count_ptr set when the card answered
 *  (KHSM_CARD_PRESENT), else its state. */
khsm_card_state_t khsm_card_probes_keys(khsm_card_probes_t *probes, const char *config, size_t *count_ptr);

/** Free probes (NULL is fine). */
void khsm_card_probes_free(khsm_card_probes_t *probes);

/** knotd's re-sign event in the output of `knotc -e zone-status ZONE +events`
 *  at now: *at_ptr the time it is due (now when pending or running), 0 when
 *  not scheduled ("re-sign: -"). KHSM_EPARSE when the output has no re-sign
 *  item or an unreadable time. \param[out] at_ptr */
int khsm_heal_resign_parse(const char *text, int64_t now, int64_t *at_ptr);

/** The re-sign event of zone in the running knotd (`knotc -e zone-status`).
 *  KHSM_ENOENT when knotd is not running. \param[out] at_ptr as above. */
int khsm_knotc_resign_at(const khsm_conf_t *conf, const char *zone, int64_t now, int64_t *at_ptr);

/* What the health check of one online zone found. */
typedef struct {
	const khsm_conf_keystore_t *card; /* the policy's pkcs11 keystore; owned by the conf */
	int64_t refresh;           /* the policy's rrsig-refresh, seconds (Knot's default when unset) */
	int64_t lifetime;          /* the policy's rrsig-lifetime, seconds */
	int64_t expiry;            /* earliest expiration of the served DNSKEY RRSIGs; 0: none served */
	int64_t refresh_at;        /* expiry - refresh: when knotd should have signed again */
	int64_t resign_at;         /* knotd's re-sign event; 0: not scheduled */
	bool knotd_running;
	khsm_card_state_t card_state;
	bool due;                  /* knotd will not sign by itself: heal would zone-sign */
} khsm_health_t;

/** The online card keystore of the zone's policy (pkcs11, the last such one
 *  of its keystores). KHSM_ENOENT with a detail when the zone has no policy,
 *  runs the offline mode, or keeps no key on a card. \param[out] card_ptr */
int khsm_online_card(const khsm_conf_t *conf, const char *zone, const khsm_conf_keystore_t **card_ptr);

/** Check one online zone at now (knotc zone-read and zone-status, a probe of
 *  the card; no login), with keys, the zone's keys already listed
 *  (khsm_kasp_keys_list), or NULL to list them here. A knotd that does not
 *  run is reported in out, not as an error; KHSM_ENOENT (khsm_online_card)
 *  when the zone is not an online card zone. probes: the run's
 *  (khsm_card_probes_get), or NULL to probe the card here. \param[out] out */
int khsm_health_check(const khsm_conf_t *conf, const char *zone, int64_t now,
                      const khsm_kasp_keys_t *keys, khsm_card_probes_t *probes, khsm_health_t *out);

/** Ask knotd to sign zone now and wait for the result (`knotc -b zone-sign`).
 *  KHSM_ENOENT when knotd is not running, KHSM_ETOOL with knotc's message when
 *  the signing failed. */
int khsm_knotc_zone_sign(const khsm_conf_t *conf, const char *zone);

/* What heal did for one online zone. */
typedef enum {
	KHSM_HEAL_SCHEDULED = 0, /* nothing to do: knotd signs by itself at health.resign_at */
	KHSM_HEAL_SIGNED,        /* knotd was asked (zone-sign) and signed; next_at follows */
	KHSM_HEAL_NO_KNOTD,      /* knotd is not running (it signs the zone when it starts) */
	KHSM_HEAL_NO_CARD,       /* a signing is due but the card does not answer: not asked */
} khsm_heal_outcome_t;

typedef struct {
	khsm_heal_outcome_t outcome;
	khsm_health_t health;    /* the check before any repair */
	const char *why;         /* when a signing was due: why (static text), else NULL */
	int64_t next_at;         /* KHSM_HEAL_SIGNED: knotd's next re-sign event; 0 unknown */
} khsm_heal_t;

/** heal one online zone at now: check it (khsm_health_check, with keys as
 *  there: already listed, or NULL), and when knotd
 *  runs, will not sign by itself and the card answers, ask knotd to sign
 *  (khsm_knotc_zone_sign), then read the new re-sign event. An error of the
 *  check or of the signing is returned with its detail (the signing's
 *  prefixed with why it was due). \param[out] out */
int khsm_heal(const khsm_conf_t *conf, const char *zone, int64_t now,
              const khsm_kasp_keys_t *keys, khsm_heal_t *out);
