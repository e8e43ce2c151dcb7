/* Rendering knot.conf pieces. Values are checked, never pasted blindly:
 * a rendered stanza is valid YAML for Knot's parser. */
#pragma once

#include <stdbool.h>

/** Render a `keystore:` section with one pkcs11 keystore.
 *  \param[out] text_ptr  free with free(). */
int khsm_confgen_keystore(const char *id, const char *config, bool key_label, char **text_ptr);

/** Check that an identifier is usable as a knot.conf id (letters, digits, -_.). */
int khsm_confgen_check_id(const char *id);
