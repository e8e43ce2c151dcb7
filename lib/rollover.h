/* A planned KSK rollover with double DS (RFC 7583, section 3.3.2) driven by
 * the zone's KASP timers only: the new KSK is published, then (published
 * long enough) its DS is submitted, then (the DS seen at every parent server,
 * the parent's DS TTL passed) the new KSK signs and the old one retires, then
 * (the old DS withdrawn everywhere, its TTL passed) the old KSK is removed.
 * khsm_rollover_plan() reads where a zone stands from its keys and says what
 * may be done now; nothing else is remembered between runs. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dnskey.h"
#include "knot.h"
#include "kasp.h"
#include "enroll.h"
#include "knotconf.h"
#include "parent.h"
#include "zone.h"

/* Where a zone's rollover stands. */
typedef enum {
	KHSM_ROLL_IDLE = 0,     /* one signing KSK, nothing in progress: a run starts one */
	KHSM_ROLL_PUBLISHED,    /* new KSK published, not yet published long enough */
	KHSM_ROLL_SUBMIT,       /* new KSK ready: its DS goes to the parent */
	KHSM_ROLL_SWITCHING,    /* new DS at the parent: the new KSK signs from `at` */
	KHSM_ROLL_WITHDRAW,     /* new KSK signs: the old DS leaves the parent */
	KHSM_ROLL_REMOVING,     /* old DS gone: the old KSK leaves the DNSKEY set at `at` */
	KHSM_ROLL_REMOVED,      /* old KSK out of the DNSKEY set: its KASP entry can go */
} khsm_roll_step_t;

/* The delays of a zone's policy, seconds. */
typedef struct {
	int64_t dnskey_ttl;
	int64_t propagation_delay;
	int64_t ds_ttl;         /* the parent's DS TTL (an upper bound) */
	int64_t signed_until;   /* offline mode: end of the pre-signed period (0: none);
	                           timers are never set before it, so that the next
	                           ceremony signs the change from its first set */
} khsm_roll_delays_t;

/* Where a zone stands and what waits. */
typedef struct {
	khsm_roll_step_t step;
	const khsm_kasp_key_t *old_key;   /* the KSK that signs before the rollover */
	const khsm_kasp_key_t *new_key;   /* NULL at KHSM_ROLL_IDLE */
	int64_t since;                    /* when the step began (a timer), 0: unknown */
	int64_t at;                       /* when the step ends by itself (a timer), 0: never */
	bool repair;                      /* an interrupted run left the old key's retire
	                                     unset: set it to the new key's active */
} khsm_roll_t;

/** Where the rollover of a zone stands at now, from its KSKs (keymgr list).
 *  Removed keys and a standby (standby.h) are left out; keys that are not
 *  KSKs or have no private key are ignored. More than two live KSKs, or a state no rollover leaves, is
 *  KHSM_EINVAL with a detail. \param[out] out */
int khsm_rollover_plan(const khsm_kasp_key_t *keys, size_t count, int64_t now, khsm_roll_t *out);

/** The first moment from which a timer may be set: max(at, d->signed_until). */
int64_t khsm_rollover_when(const khsm_roll_delays_t *d, int64_t at);

/** Short name of a step ("idle", "published", "submit", ...). */
const char *khsm_rollover_step_name(khsm_roll_step_t step);

/* What the parent's servers have for a key. */
typedef struct {
	size_t servers;         /* servers asked */
	size_t with_key;        /* servers whose DS RRset has a DS of the key */
	uint16_t tag;
	char *parent;           /* the parent zone found through the resolver; NULL with server= */
	char *with;             /* "NAME (ADDR@PORT)" of the servers with the DS, ", "-joined; NULL: none */
	char *without;          /* likewise, the servers without it */
} khsm_roll_parent_t;

/** Ask every server for zone's DS RRset and count those that have a DS of
 *  the KSK whose id is id_hex (its DNSKEY from `keymgr -c conf_path ZONE
 *  dnskey`, matched by tag and algorithm), naming them in out->with and
 *  out->without. A server that does not answer is a failure naming it; no
 *  server at all is KHSM_ENOENT with a detail naming server=.
 *  \param[out] out  free with khsm_rollover_parent_clear(). */
int khsm_rollover_parent(const char *conf_path, const char *zone, const khsm_kasp_key_t *key,
                         const khsm_server_t *servers, size_t count, khsm_roll_parent_t *out);

/** Free what a khsm_roll_parent_t holds and zero it. */
void khsm_rollover_parent_clear(khsm_roll_parent_t *p);

/** The DS (SHA-256) of a KSK as a zone-file line, from `keymgr -c conf_path
 *  ZONE dnskey`. \param[out] line_ptr  free with free(). */
int khsm_rollover_ds(const char *conf_path, const char *zone, const khsm_kasp_key_t *key,
                     char **line_ptr);

/** `keymgr -c conf_path ZONE set ID TIMER=AT` (at: UNIX time). */
int khsm_rollover_set_timer(const char *conf_path, const char *zone, const char *id_hex,
                            const char *timer, int64_t at);

/* A zone's rollover as a monitor shows it (copied values, no pointers). */
typedef struct {
	khsm_roll_step_t step;
	int64_t since, at;      /* as in khsm_roll_t */
	uint16_t old_tag, new_tag;
	bool waits_parent;      /* submit or withdraw: the parent has to act */
	uint16_t standby_tag;   /* the zone's standby KSK (standby.h), 0: none */
	int64_t standby_publish;
} khsm_roll_status_t;

/** Where the rollover stands among a zone's keys (khsm_rollover_plan()).
 *  \param[out] out  filled only on success. */
int khsm_rollover_status_keys(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                              khsm_roll_status_t *out);

/** Where the rollover of zone stands (`keymgr -c conf_path -e ZONE list`).
 *  \param[out] out  filled only on success. */
int khsm_rollover_status(const char *conf_path, const char *zone, int64_t now,
                         khsm_roll_status_t *out);

/** Role of the KSK id_hex among a zone's keys at now: "active" (signs, no
 *  rollover, or the new KSK after the switch), "incoming" (published before
 *  the switch), "outgoing" (the old KSK of a rollover), "standby" (published,
 *  never signing: standby.h), "removed"; NULL for
 *  a key that is not a KSK with a private key, or when the keys are in no
 *  state a rollover leaves. */
const char *khsm_rollover_role(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                               const char *id_hex);

/** khsm_rollover_role() of a zone's key in a KASP index (kasp.h). */
const char *khsm_rollover_role_in(const khsm_kasp_index_t *idx, const char *zone,
                                  const char *id_hex, int64_t now);

/** Role of any key id_hex among a zone's keys at now: khsm_rollover_role()
 *  for a card KSK that has one, else from the key's own state (kasp.h):
 *  "incoming" (not signing yet), "active", "outgoing" (retiring, retired or
 *  revoked), "removed"; NULL when no key has that id. */
const char *khsm_rollover_key_role(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                                   const char *id_hex);

/** khsm_rollover_key_role() of a zone's key in a KASP index (kasp.h). */
const char *khsm_rollover_key_role_in(const khsm_kasp_index_t *idx, const char *zone,
                                      const char *id_hex, int64_t now);

/** The EPP <secDNS:update> (epp.h) for the rollover's current step: add the
 *  new KSK's DS before the switch (published, submit, switching), remove the
 *  old one's after it (withdraw, removing, removed). No rollover in progress
 *  is KHSM_ENOENT with a detail. \param[out] xml_ptr  free with free(). */
int khsm_rollover_epp_update(const char *conf_path, const char *zone, int64_t now,
                             khsm_digest_t digest, char **xml_ptr);

/* -- one run --------------------------------------------------------------- */

/** The delays of the policy knotd serves zone with (zconf: knotd's
 *  knot.conf, the ZSK side in offline mode): dnskey-ttl and
 *  propagation-delay (Knot's defaults, 1 h, when unset), the parent's DS TTL
 *  taken as max(zone-max-ttl (default 1 d), dnskey-ttl); offline, the end of
 *  the pre-signed period (`keymgr show-offline`). \param[out] d */
int khsm_rollover_delays(const khsm_conf_t *zconf, const char *zone, bool offline,
                         khsm_roll_delays_t *d);

/** Whether a rollover may make the new KSK on zone->keystore; nothing is
 *  touched. Offline any card (pkcs11 keystore) of the KSK side will do: the
 *  ceremony's signer signs with the KSK on the card it is on (skr_sign.h),
 *  and once the new KSK is to sign the KSK side's policy is made to name
 *  its keystore (khsm_rollover_advance()); another backend is KHSM_ENOTSUP.
 *  Online (Knot 3.5) knotd looks keys up in every keystore of the policy:
 *  one the policy does not list is KHSM_ENOTSUP, the detail naming the
 *  policy run that lists it. Commands printed with -c zconf_path. */
int khsm_rollover_keystore_check(const khsm_zone_t *zone, const char *zconf_path, bool online);

/* What one run is given. */
typedef struct {
	khsm_conf_t *kconf;              /* where the KSK timers live (KSK side offline) */
	const khsm_zone_t *zone;         /* resolved in kconf, with the keystore for a new KSK */
	khsm_roll_delays_t delays;
	const khsm_server_t *servers;    /* the parent's servers to ask; NULL: every server
	                                    of the parent zone (khsm_parent_servers()) */
	size_t server_count;
	bool delete_old;
	bool online;                     /* knotd manages the keys (manual: off): no future
	                                    KSK timer but retire/remove after retire_active */
	khsm_enroll_t *enroll;           /* a new KSK: algorithm, open, conf_arg, force, notice;
	                                    label and timers are set here */
} khsm_roll_req_t;

/* What one run did. */
typedef enum {
	KHSM_ROLL_DID_NOTHING = 0,  /* waits (step, at, parent counts say for what) */
	KHSM_ROLL_DID_GENERATE,     /* the new KSK made on the card and published */
	KHSM_ROLL_DID_ADOPT,        /* the same with a pair an interrupted run left */
	KHSM_ROLL_DID_SWITCH,       /* new DS everywhere: active/retire set to `at` */
	KHSM_ROLL_DID_REMOVE,       /* old DS nowhere: remove set to `at` */
	KHSM_ROLL_DID_DELETE,       /* the old KSK deleted from KASP and the card */
} khsm_roll_did_t;

typedef struct {
	khsm_roll_step_t step;       /* where the zone stands after the run */
	khsm_roll_did_t did;
	bool repaired;               /* the old KSK's missing retire was set */
	int64_t since, at;
	char old_id[257], new_id[257];
	uint16_t old_tag, new_tag;
	char *ds;                    /* submit: the new DS; withdraw: the old DS; else NULL */
	khsm_roll_parent_t parent;   /* submit/withdraw: what the parent has (freed by
	                                khsm_rollover_result_clear()) */
	char label[300];             /* generate/adopt: the new KSK's label */
	bool card_missed;            /* delete: no card here had the old KSK (lost): out of
	                                KASP only */
	char policy_keystore[256];   /* offline, card to card: the KSK side's policy now
	                                names this keystore (the new KSK's card); "": unchanged */
	char policy_note[1024];      /* offline, card to card, the policy not moved (it has
	                                other zones, or is not knot-hsm's): what to do */
} khsm_roll_result_t;

/** Advance a zone's rollover as far as is safe now: read the KSK timers,
 *  make the one change the step allows (generate the new KSK with publish at
 *  khsm_rollover_when(now) and ready a DNSKEY TTL + propagation delay later;
 *  once every server has the new DS, active and retire a DS TTL +
 *  propagation delay later; once none has the old DS, remove likewise; with
 *  delete_old the removed KSK deleted after one login through
 *  req->enroll->open) or none. With req->online no KSK timer is set in the
 *  future but retire/remove after retire_active, as knotd with manual: off
 *  keeps them: no ready (knotd sets it), the switch at once with the old KSK
 *  retire-active (still published and signing), retire and remove together. \param[out] res  free with
 *  khsm_rollover_result_clear() (also on failure). */
int khsm_rollover_advance(const khsm_roll_req_t *req, int64_t now, khsm_roll_result_t *res);

/** Free what a result holds. */
void khsm_rollover_result_clear(khsm_roll_result_t *res);
