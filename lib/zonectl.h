/* After a KASP change: tell the knotd that serves the zone. In the online
 * mode that is this knot.conf's knotd (knotc zone-keys-load); a KSK side
 * (offline mode) has no knotd of its own, its keys reach the ZSK side with
 * the next ceremony. */
#pragma once

#include <stdbool.h>

#include "knotconf.h"

typedef enum {
	KHSM_ZONECTL_LOADED = 0,   /* knotd answered and loaded the zone's keys */
	KHSM_ZONECTL_NOT_RUNNING,  /* no knotd answers: it loads the keys when it starts */
	KHSM_ZONECTL_KSK_SIDE,     /* conf is a KSK side: see zsk_conf, zsk_running */
} khsm_zonectl_outcome_t;

typedef struct {
	khsm_zonectl_outcome_t outcome;
	char *zsk_conf;            /* KHSM_ZONECTL_KSK_SIDE: the ZSK side's knot.conf */
	bool zsk_running;          /* KHSM_ZONECTL_KSK_SIDE: whether its knotd answers */
} khsm_zonectl_t;

/** Make the knotd of conf load zone's keys when it runs (knotc status, then
 *  knotc zone-keys-load), or say why not (out->outcome). A failed
 *  zone-keys-load is returned with knotc's detail. \param[out] out  clear
 *  with khsm_zonectl_clear(). */
int khsm_zonectl_reload_keys(const khsm_conf_t *conf, const char *zone, khsm_zonectl_t *out);

/** Free what khsm_zonectl_reload_keys() put in out. */
void khsm_zonectl_clear(khsm_zonectl_t *out);
