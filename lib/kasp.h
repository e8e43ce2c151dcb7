/* The KASP as keymgr lists it: the state of a key at a moment (from its
 * timers, as Knot's get_key_state() judges it), and which zones of knot.conf
 * use which keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "knot.h"
#include "knotconf.h"

/* The state of a key at a moment. Timers drive it: unset (0) is never
 * reached, a timer at the moment itself is reached. */
typedef enum {
	KHSM_KEY_STATE_NONE = 0,       /* no timer reached yet */
	KHSM_KEY_STATE_PRE_ACTIVE,     /* signatures before the key is published */
	KHSM_KEY_STATE_PUBLISHED,      /* in the DNSKEY set, not ready */
	KHSM_KEY_STATE_READY,          /* published long enough; a KSK waits for its DS */
	KHSM_KEY_STATE_ACTIVE,         /* signs */
	KHSM_KEY_STATE_RETIRE_ACTIVE,  /* still signs while its successor takes over */
	KHSM_KEY_STATE_POST_ACTIVE,    /* signatures linger after the key stopped signing */
	KHSM_KEY_STATE_RETIRED,        /* published, no longer signs */
	KHSM_KEY_STATE_REVOKED,        /* published with the REVOKE flag */
	KHSM_KEY_STATE_REMOVED,        /* gone from the zone */
} khsm_key_state_t;

/** Whether timer t (0: unset) is reached at now. */
static inline bool khsm_kasp_reached(int64_t t, int64_t now)
{
	return t != 0 && t <= now;
}

/** State of key at now: the last phase of its life whose timer is reached,
 *  the withdrawal timers (remove, revoke, retire, post-active, retire-active)
 *  before the introduction ones (active, ready, publish, pre-active). */
khsm_key_state_t khsm_kasp_key_state(const khsm_kasp_key_t *key, int64_t now);

/** The state's name: "none", "pre-active", "published", "ready", "active",
 *  "retire-active", "post-active", "retired", "revoked" or "removed" (static); NULL for no state of the enum. */
const char *khsm_kasp_key_state_name(khsm_key_state_t state);

typedef struct {
	char *zone;
	khsm_kasp_key_t key;
} khsm_kasp_entry_t;

typedef struct {
	khsm_kasp_entry_t *items;
	size_t count;
} khsm_kasp_index_t;

/** List the keys of every zone in knot.conf (keymgr only, no card access).
 *  \param[out] idx  free with khsm_kasp_index_clear(). */
int khsm_kasp_index(const khsm_conf_t *conf, khsm_kasp_index_t *idx);

/** After a change to zone's KASP: its keys listed again (one keymgr list)
 *  in place of the entries idx had for it; zone as idx names it. On an
 *  error idx may lack the zone's entries. */
int khsm_kasp_index_refresh(khsm_kasp_index_t *idx, const khsm_conf_t *conf, const char *zone);

/** Move the entries of from into idx (from is left empty); a zone's key
 *  that idx lists already is dropped, not listed twice. */
int khsm_kasp_index_merge(khsm_kasp_index_t *idx, khsm_kasp_index_t *from);

/** Offline mode: the card KSKs are in the KASP of the KSK side; merge its
 *  index into idx when the KSK side at ksk_path (khsm_policy_ksk_side) is
 *  readable, else leave idx as it is. */
int khsm_kasp_index_add_ksk_side(const char *ksk_path, khsm_kasp_index_t *idx);

/** Free an index. */
void khsm_kasp_index_clear(khsm_kasp_index_t *idx);

/** Entry i-th (from *pos on) whose key id equals id_hex, or NULL; advances *pos. */
const khsm_kasp_entry_t *khsm_kasp_next(const khsm_kasp_index_t *idx, const char *id_hex,
                                        size_t *pos);

/** The entry of zone for id_hex, or NULL. */
const khsm_kasp_entry_t *khsm_kasp_find(const khsm_kasp_index_t *idx, const char *zone,
                                        const char *id_hex);

/* What one `keymgr list` of a zone tells a monitor. */
typedef struct {
	bool ksk_waiting;          /* a KSK is ready: its DS is not confirmed at the parent */
	bool has_ksk;              /* a KSK with a private key */
	char ksk_id[257];          /* the first such KSK, as keymgr lists it */
	char last_ksk_id[257];     /* the last such KSK, as keymgr lists it */
	int64_t next_zsk_at;       /* the next ZSK timer after now; 0: none */
	uint16_t next_zsk_tag;
	const char *next_zsk_timer; /* "publish", "active", "retire" or "remove" */
} khsm_kasp_summary_t;

/** Summarise a zone's keys at now (no keymgr run: keys from khsm_keymgr_list()).
 *  \param[out] out */
void khsm_kasp_summarize(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                         khsm_kasp_summary_t *out);

/** khsm_kasp_summarize() of the keys idx lists for zone (as idx names it:
 *  lower case, final dot); none is a zone without keys. \param[out] out */
void khsm_kasp_index_summarize(const khsm_kasp_index_t *idx, const char *zone, int64_t now,
                               khsm_kasp_summary_t *out);

/* A zone's keys from one `keymgr list`, handed to each reader (status, its
 * health check, heal) so that keymgr runs once for them all. */
typedef struct {
	khsm_kasp_key_t *keys;     /* NULL when none or the list failed */
	size_t count;
} khsm_kasp_keys_t;

/** `keymgr -c CONF -e ZONE list` into out; on failure out is empty (no key
 *  at all) and the error is returned with its detail. Free with
 *  khsm_kasp_keys_clear(). \param[out] out */
int khsm_kasp_keys_list(const char *conf_path, const char *zone, khsm_kasp_keys_t *out);

/** Free the keys of a list (NULL is fine); out is empty afterwards. */
void khsm_kasp_keys_clear(khsm_kasp_keys_t *keys);

/** khsm_kasp_summarize() of `keymgr -c CONF -e ZONE list`: keymgr runs once.
 *  \param[out] out  filled only on success. */
int khsm_kasp_zone_summary(const char *conf_path, const char *zone, int64_t now,
                           khsm_kasp_summary_t *out);
