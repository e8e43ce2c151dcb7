/* A zone as knot.conf defines it for knot-hsm: its policy, its PKCS#11
 * keystore and its KASP database, resolved once and checked. */
#pragma once

#include "knotconf.h"

typedef struct {
	char *name;                           /* lower-case FQDN with the final dot */
	const khsm_conf_zone_t *conf;
	const khsm_conf_policy_t *policy;     /* NULL when the zone has none */
	const khsm_conf_keystore_t *keystore; /* the pkcs11 keystore used for card keys */
} khsm_zone_t;

/** Resolve a zone of knot.conf. keystore_id picks a keystore explicitly;
 *  otherwise the first pkcs11 keystore of the zone's policy is used.
 *  Unknown zone, no pkcs11 keystore or a missing KASP directory fail with a
 *  detail that says what to change. \param[out] zone  free with khsm_zone_clear(). */
int khsm_zone_resolve(const khsm_conf_t *conf, const char *name, const char *keystore_id,
                      khsm_zone_t *zone);

/** Free what khsm_zone_resolve() allocated. */
void khsm_zone_clear(khsm_zone_t *zone);
