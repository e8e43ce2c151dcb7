/* A standby KSK on a second card: generated there, registered in the zone's
 * KASP published and never active (publish set; ready, active, retire and
 * remove unset), so that it is in every DNSKEY set and its DS can wait at the
 * parent beside the active one. The day the first card is lost, a failover
 * makes the standby the signing KSK from the next moment a change may take
 * effect (offline mode: the end of the pre-signed period, so the next
 * ceremony signs with it from its first set) and the lost KSK leaves the
 * DNSKEY set then: no parent change, no TTL to wait for. As the rollover
 * (rollover.h), the state is the KASP timers only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "enroll.h"
#include "knot.h"
#include "knotconf.h"
#include "rollover.h"
#include "zone.h"

/** Is k a standby KSK: a KSK with a private key, published (publish set),
 *  with no ready, active, retire, revoke or remove timer. */
bool khsm_standby_is(const khsm_kasp_key_t *k);

/** The standby KSK among a zone's keys, or NULL (the first when several). */
const khsm_kasp_key_t *khsm_standby_find(const khsm_kasp_key_t *keys, size_t count);

/* What a standby or failover run is given. */
typedef struct {
	khsm_conf_t *kconf;           /* where the KSK timers live (the KSK side offline) */
	const khsm_zone_t *zone;      /* resolved in kconf with keystore=ID: the standby's card */
	khsm_roll_delays_t delays;    /* rollover.h: signed_until bounds every timer */
	khsm_enroll_t *enroll;        /* standby: algorithm, open, conf_arg, force */
	bool offline;                 /* failover: kconf is a KSK side written by knot-hsm policy */
} khsm_standby_req_t;

typedef enum {
	KHSM_STANDBY_DID_NOTHING = 0, /* the zone had its standby (or its failover) already */
	KHSM_STANDBY_DID_GENERATE,    /* standby: made on the card and registered */
	KHSM_STANDBY_DID_ADOPT,       /* standby: the pair an interrupted run left, registered */
	KHSM_STANDBY_DID_FAILOVER,    /* failover: the standby signs from `at`, the lost KSK stops */
	KHSM_STANDBY_DID_COMPLETE,    /* failover: an interrupted failover's second half done */
} khsm_standby_did_t;

typedef struct {
	khsm_standby_did_t did;
	char id[257];                 /* the standby KSK (after a failover: the signing one) */
	uint16_t tag;
	int64_t at;                   /* standby: published from; failover: signs from */
	char lost_id[257];            /* failover: the KSK that stops (none: "") */
	uint16_t lost_tag;
	char label[300];              /* generate/adopt: the standby's label */
	char *ds;                     /* standby: its DS (SHA-256) as a zone-file line */
	bool policy_changed;          /* failover: the KSK side's policy now names the keystore */
} khsm_standby_result_t;

/** Give the zone a standby KSK on req->zone->keystore: refused while a
 *  rollover is in progress, with no signing KSK, or on the keystore the KSK
 *  side's policy names (the card of the active KSK); nothing when the zone
 *  has one already. Generated with publish at khsm_rollover_when(now), label
 *  "<zone> KSK standby" (a pair with that label left by an interrupted run is
 *  adopted), one login through req->enroll->open. \param[out] res  free with
 *  khsm_standby_result_clear() (also on failure). */
int khsm_standby_make(const khsm_standby_req_t *req, int64_t now, khsm_standby_result_t *res);

/** Fail over to the zone's standby KSK, which must be on req->zone->keystore
 *  (its public key object is looked for there, without a login). Offline,
 *  the KSK side's policy is made to name that keystore first
 *  (khsm_standby_policy_keystore(): keymgr opens the policy's keystore, the
 *  lost card's no more). Then the standby's active timer, and the other
 *  KSK's retire and remove timers, are set to khsm_rollover_when(now). A rerun after an interruption between the two
 *  finishes the second; after a whole failover it does nothing.
 *  \param[out] res  free with khsm_standby_result_clear(). */
int khsm_standby_failover(const khsm_standby_req_t *req, int64_t now, khsm_standby_result_t *res);

/** Before a failover of zones (normalized names) on the KSK side kconf:
 *  every zone of its policy is among them (the policy's keystore moves to
 *  the standby's card for all of them), else KHSM_EINVAL naming the others. */
int khsm_standby_failover_zones(const khsm_conf_t *kconf, char *const *zones, size_t count);

/** Offline mode, after a failover: the KSK side's policy (written by knot-hsm
 *  policy) names keystore_id, so that ceremonies log in to and sign with the
 *  card the signing KSK is on. Rewrites the file atomically, keeping its
 *  mode; *changed_ptr false when it named keystore_id already. */
int khsm_standby_policy_keystore(const char *ksk_conf_path, const char *keystore_id,
                                 bool *changed_ptr);

/** Online, the day a card is lost: knotd and keymgr (Knot 3.5) refuse a
 *  policy one of whose keystores has no token ("PKCS #11 token not
 *  available"), so the policy knot-hsm in the include at path (written by
 *  knot-hsm policy) stops listing the pkcs11 keystores of zconf whose token
 *  is absent, keep (the standby's) excepted; knot-hsm's own card keystore
 *  (KHSM_POLICY_CARD_ID, first and ksk-only: Knot 3.5 makes and keymgr
 *  import-pkcs11 registers KSKs there) stays and gets keep's config. The
 *  include is rewritten atomically, keeping its mode; dropped says what
 *  changed ("; "-joined, "" when nothing). */
int khsm_standby_online_drop_lost(const char *path, const khsm_conf_t *zconf, const char *keep,
                                  char *dropped, size_t size);

/** Free what a result holds. */
void khsm_standby_result_clear(khsm_standby_result_t *res);
