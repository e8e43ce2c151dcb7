/* Private to cardkey.c and cardkey_proof.c. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "keystore.h"
#include "uri.h"

/* URL of objects on the keystore's token with the given label/id/type; it
 * keeps the keystore's pin-source so GnuTLS logs in as knotd would.
 * \param[out] url_ptr  free with free(). */
int khsm_cardkey_object_url(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
                            khsm_uri_type_t type, char **url_ptr);
