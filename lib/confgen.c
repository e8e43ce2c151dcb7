/* knot.conf rendering. */
#include <ctype.h>

#include "confgen.h"
#include "error.h"
#include "internal.h"

_public_
int khsm_confgen_check_id(const char *id)
{
	if (!id || !*id) {
		khsm_err_detail("empty keystore id");
		return KHSM_EINVAL;
	}
	for (const char *p = id; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
			khsm_err_detail("id '%s' has '%c'; use letters, digits, '-', '_' or '.'", id, *p);
			return KHSM_EINVAL;
		}
	}
	return KHSM_EOK;
}

_public_
int khsm_confgen_keystore(const char *id, const char *config, bool key_label, char **text_ptr)
{
	if (!config || !text_ptr) {
		return KHSM_EINVAL;
	}
	int r = khsm_confgen_check_id(id);
	if (r != KHSM_EOK) {
		return r;
	}
	/* Inside a double-quoted knot.conf string these would need escaping. */
	if (strpbrk(config, "\"\\\n\r")) {
		khsm_err_detail("keystore config contains a quote, backslash or newline");
		return KHSM_EINVAL;
	}
	char *text = NULL;
	if (asprintf(&text,
	             "keystore:\n"
	             "  - id: %s\n"
	             "    backend: pkcs11\n"
	             "    config: \"%s\"\n"
	             "    key-label: %s\n",
	             id, config, key_label ? "on" : "off") < 0) {
		return KHSM_ENOMEM;
	}
	*text_ptr = text;
	return KHSM_EOK;
}
