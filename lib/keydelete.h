/* Deleting a zone's card key: out of the zone's KASP (keymgr delete) and off
 * the card, only when nothing depends on it: not published, not signing, not
 * used by another zone. The checks come before the card; one login. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "enroll.h"
#include "knotconf.h"
#include "zone.h"

/* Which key to delete, and how to reach the card. */
typedef struct {
	const char *id_hex;          /* id= as given (hex), or NULL */
	const char *label;           /* label= (the card object's label), or NULL */
	const char *conf_arg;        /* knot.conf as the operator gave it (-c), for remedies */
	bool force;                  /* PIN rules: as --force */
	khsm_enroll_open_t open;     /* opens the zone's keystore and logs in once */
	void *open_ctx;
} khsm_key_delete_t;

/* What was deleted. */
typedef struct {
	char id_hex[257];
	uint16_t tag;
	bool ksk;
	bool card_missed;            /* out of KASP only: no card here holds it (lost) */
} khsm_key_deleted_t;

/** Delete the key given by id or label from zone's KASP and from the card.
 *  Refused (KHSM_EBUSY, detail says why and what to do) while the key is in
 *  the DNSKEY set (published, ready, active, retired but not removed),
 *  signs, or is in another zone's KASP (a shared KSK); KHSM_ENOENT when the
 *  zone's KASP has no such key; KHSM_EAMBIGUOUS when a label names several.
 *  keymgr runs under the card lock after this process logged in once.
 *  \param[out] out */
int khsm_zone_key_delete(khsm_conf_t *conf, const khsm_zone_t *zone, const khsm_key_delete_t *req,
                         khsm_key_deleted_t *out);
