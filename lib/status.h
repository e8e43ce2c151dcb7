/* status: per zone, how long it stays signed without the card (the
 * pre-signed period offline, the served DNSKEY signature online), judged
 * against thresholds, with the card, the signer, a KSK rollover and a standby
 * KSK. keymgr-ext/cmd_status.c prints it (text, perfdata, JSON). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "heal.h"
#include "kasp.h"
#include "knotconf.h"

/** A zone's state, as a monitoring plugin exits: 0 OK … 3 UNKNOWN. */
enum { KHSM_STATUS_OK = 0, KHSM_STATUS_WARN = 1, KHSM_STATUS_CRIT = 2, KHSM_STATUS_UNKNOWN = 3 };

typedef struct {
	const char *zone;
	const char *mode;          /* offline, online, other */
	const char *card_ksk;      /* present, absent, unknown */
	int64_t period_end;        /* offline: last pre-signed set; online: DNSKEY RRSIG expiry */
	int64_t valid_until;       /* expiry of the DNSKEY signature at the end */
	char next_event[128];      /* "ZSK 12345 active 2026-…" or "" */
	int64_t next_event_at;
	int state;
	bool ds_waiting;           /* a KSK is ready: its DS is not confirmed at the parent */
	int64_t warn, crit;        /* thresholds used for this zone, seconds */
	const char *signing;       /* online: "scheduled", "not scheduled", "unknown"; else NULL */
	int64_t resign_at;         /* online: knotd's next re-sign, 0 when none */
	char rollover[200];        /* the KSK rollover's step and since when, or "" */
	char standby[160];         /* the standby KSK (lib/standby.c), or "" */
	char message[512];
} khsm_zone_status_t;


/** "ok", "warning", "critical", "unknown". */
const char *khsm_status_name(int state);

/** The status of zone z of conf (kconf, ksk_path: the KSK side, offline; may
 *  be NULL) at now, against warn and crit seconds; derived: online zones
 *  take their thresholds from the policy's rrsig-refresh instead; keys: the
 *  zone's keys in conf already listed (khsm_kasp_keys_list), or NULL to list
 *  them here. keymgr lists each side once. Never logs in. The strings in s
 *  point into z or are static. */
void khsm_zone_status(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                      const khsm_conf_zone_t *z, int64_t now, int64_t warn, int64_t crit,
                      bool derived, const khsm_kasp_keys_t *keys, khsm_zone_status_t *s);

/** khsm_zone_status() of each of zones[0..n), keys listed here, side by
 *  side (khsm_parallel_for()): each zone waits for keymgr and knotc, not for
 *  the CPU; each card is read once for all of them: through probes (the
 *  caller's, to read the cards once for more than the status), or NULL for
 *  probes of this call. out[i] is zone i's. */
void khsm_zones_status(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                       const khsm_conf_zone_t *const *zones, size_t n, int64_t now, int64_t warn,
                       int64_t crit, bool derived, khsm_card_probes_t *probes, khsm_zone_status_t *out);
