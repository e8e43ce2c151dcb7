/* Bounds on input that ends on a card or in Knot: what a card or Knot cannot
 * hold is refused up front, with the limit and its reason in the message,
 * instead of failing halfway (or being cut) on the card. Zone names are
 * bounded by khsm_zone_normalize() (63 octets a label, 255 in wire form). */
#pragma once

#include <stddef.h>

/* Object label (CKA_LABEL): OpenSC, the driver of SmartCard-HSM and Nitrokey
 * HSM, keeps at most SC_PKCS15_MAX_LABEL_SIZE = 255 bytes of it. */
#define KHSM_BOUND_KEY_LABEL 255
/* Object id (CKA_ID): OpenSC's SC_PKCS15_MAX_ID_SIZE = 255 bytes (Knot makes
 * 20-byte ids). */
#define KHSM_BOUND_ID 255
/* Token label: CK_TOKEN_INFO.label is a fixed 32-byte field. */
#define KHSM_BOUND_TOKEN_LABEL 32
/* A path: PATH_MAX (4096) bytes including the terminating NUL. */
#define KHSM_BOUND_PATH 4095

typedef enum {
	KHSM_BOUND_KIND_KEY_LABEL,
	KHSM_BOUND_KIND_ID_HEX,      /* hex "a1b2", "a1:b2" or "%a1%b2": the bytes count */
	KHSM_BOUND_KIND_TOKEN_LABEL, /* a token label, or a token URI (then as a path) */
	KHSM_BOUND_KIND_PATH,
} khsm_bound_kind_t;

/** KHSM_EOK when value fits kind; KHSM_ERANGE with a detail that names what
 *  (e.g. "label=" or "--pin-file"), the length, the limit and its reason. */
int khsm_bound_check(khsm_bound_kind_t kind, const char *what, const char *value);
