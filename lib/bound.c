/* Length limits of card and Knot inputs. */
#include <ctype.h>
#include <string.h>

#include "bound.h"
#include "error.h"
#include "internal.h"

/* Bytes of a hex id: its hex digits over two (separators not counted). */
static size_t hex_bytes(const char *hex)
{
	size_t digits = 0;
	for (const char *p = hex; *p; p++) {
		digits += isxdigit((unsigned char)*p) != 0;
	}
	return (digits + 1) / 2;
}

_public_
int khsm_bound_check(khsm_bound_kind_t kind, const char *what, const char *value)
{
	if (!what || !value) {
		return KHSM_EINVAL;
	}
	size_t len = strlen(value);
	switch (kind) {
	case KHSM_BOUND_KIND_KEY_LABEL:
		if (len <= KHSM_BOUND_KEY_LABEL) return KHSM_EOK;
		khsm_err_detail("%s is %zu bytes long; a key label (CKA_LABEL) holds at most %d bytes "
		                "on a card (OpenSC's limit): use a shorter one", what, len,
		                KHSM_BOUND_KEY_LABEL);
		return KHSM_ERANGE;
	case KHSM_BOUND_KIND_ID_HEX:
		if (hex_bytes(value) <= KHSM_BOUND_ID && len <= 3 * KHSM_BOUND_ID) return KHSM_EOK;
		khsm_err_detail("%s is %zu bytes long; a key id (CKA_ID) holds at most %d bytes on a card "
		                "(OpenSC's limit; Knot makes 20-byte ids)", what, hex_bytes(value),
		                KHSM_BOUND_ID);
		return KHSM_ERANGE;
	case KHSM_BOUND_KIND_TOKEN_LABEL:
		if (strncmp(value, "pkcs11:", 7) == 0 ? len <= KHSM_BOUND_PATH
		                                      : len <= KHSM_BOUND_TOKEN_LABEL) {
			return KHSM_EOK;
		}
		if (strncmp(value, "pkcs11:", 7) == 0) {
			khsm_err_detail("%s is %zu bytes long; a token URI is at most %d", what, len,
			                KHSM_BOUND_PATH);
		} else {
			khsm_err_detail("%s is %zu bytes long; a token label holds at most %d bytes "
			                "(CK_TOKEN_INFO.label), so no token can match it", what, len,
			                KHSM_BOUND_TOKEN_LABEL);
		}
		return KHSM_ERANGE;
	case KHSM_BOUND_KIND_PATH:
		if (len <= KHSM_BOUND_PATH) return KHSM_EOK;
		khsm_err_detail("%s is %zu bytes long; a path is at most %d bytes (PATH_MAX)", what, len,
		                KHSM_BOUND_PATH);
		return KHSM_ERANGE;
	}
	return KHSM_EINVAL;
}
