/* Keys on the card, seen through GnuTLS PKCS#11: lookup by label or CKA_ID. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keystore.h"
#include "uri.h"

typedef struct {
	char *label;
	uint8_t *id;
	size_t id_len;
	khsm_uri_type_t type;   /* private or public */
	int pk_algorithm;       /* gnutls_pk_algorithm_t */
	unsigned bits;
} khsm_cardobj_t;

typedef struct {
	khsm_cardobj_t *items;
	size_t count;
} khsm_cardobjs_t;

/** Find key objects on the keystore's token by label and/or id. Public
 *  objects are searched without login; a login (one try, PIN rules of
 *  khsm_keystore_login) happens only when private objects are wanted, or
 *  when nothing public matched and the token hides objects behind a login.
 *  \param[out] objs  free with khsm_cardobjs_clear(). */
int khsm_cardkey_find(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
                      khsm_uri_type_t type, const khsm_pin_t *pin, bool force,
                      khsm_cardobjs_t *objs);

/** Free found objects. */
void khsm_cardobjs_clear(khsm_cardobjs_t *objs);
