/* Names of PKCS#11 codes (CKR_OK, CKM_ECDSA, CKA_LABEL, CKU_USER) for the
 * audit log. Unknown values are written into buf as 0x%08lx; buf holds at
 * least 16 bytes. The result is a static string or buf. */
#pragma once

#include <stddef.h>

const char *khsm_guard_ckr_name(unsigned long rv, char *buf, size_t size);
const char *khsm_guard_ckm_name(unsigned long mech, char *buf, size_t size);
const char *khsm_guard_cka_name(unsigned long attr, char *buf, size_t size);
const char *khsm_guard_cku_name(unsigned long user, char *buf, size_t size);
