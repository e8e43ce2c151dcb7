/* Error codes, detail messages and translation of foreign codes. */
#include <gnutls/gnutls.h>
#include <libdnssec/error.h>
#include <p11-kit/pkcs11.h>
#include <stdio.h>

#include "error.h"
#include "internal.h"
#include "display.h"

static const char *const MESSAGES[] = {
	[KHSM_ENOMEM - KHSM_ENOMEM]         = "not enough memory",
	[KHSM_EINVAL - KHSM_ENOMEM]         = "invalid argument",
	[KHSM_ENOENT - KHSM_ENOMEM]         = "not found",
	[KHSM_EEXIST - KHSM_ENOMEM]         = "already exists",
	[KHSM_EAMBIGUOUS - KHSM_ENOMEM]     = "ambiguous: several matches",
	[KHSM_EIO - KHSM_ENOMEM]            = "input/output error",
	[KHSM_EMODULE - KHSM_ENOMEM]        = "failed to load PKCS #11 module",
	[KHSM_ENOTOKEN - KHSM_ENOMEM]       = "token not present",
	[KHSM_ETOKEN - KHSM_ENOMEM]         = "token refused the operation",
	[KHSM_EPIN_INCORRECT - KHSM_ENOMEM] = "wrong PIN",
	[KHSM_EPIN_FINAL_TRY - KHSM_ENOMEM] = "final PIN try: one more wrong PIN locks the token",
	[KHSM_EPIN_LOCKED - KHSM_ENOMEM]    = "user PIN is locked",
	[KHSM_EPIN_UNSAFE - KHSM_ENOMEM]    = "PIN file is not private",
	[KHSM_ENOPIN - KHSM_ENOMEM]         = "no PIN source given",
	[KHSM_ELOGIN - KHSM_ENOMEM]         = "login failed",
	[KHSM_EKEYSTORE - KHSM_ENOMEM]      = "keystore cannot be opened",
	[KHSM_ENOTSUP - KHSM_ENOMEM]        = "not supported",
	[KHSM_EREMOVED - KHSM_ENOMEM]       = "token removed",
	[KHSM_EBUSY - KHSM_ENOMEM]          = "token busy",
	[KHSM_EDEVMEM - KHSM_ENOMEM]        = "token out of memory",
	[KHSM_ECONFIG - KHSM_ENOMEM]        = "configuration error",
	[KHSM_ETOOL - KHSM_ENOMEM]          = "external tool failed",
	[KHSM_EPARSE - KHSM_ENOMEM]         = "cannot parse",
	[KHSM_ECRYPTO - KHSM_ENOMEM]        = "cryptographic check failed",
	[KHSM_ERANGE - KHSM_ENOMEM]         = "value out of range",
	[KHSM_EPERM - KHSM_ENOMEM]          = "permission denied",
	[KHSM_ESIGN - KHSM_ENOMEM]          = "signing on the token failed",
};

_public_
const char *khsm_strerror(int code)
{
	if (code == KHSM_EOK) {
		return "ok";
	}
	if (code >= KHSM_ENOMEM && code < KHSM_ERROR_LAST) {
		const char *msg = MESSAGES[code - KHSM_ENOMEM];
		if (msg) {
			return msg;
		}
	}
	return "unknown error";
}

static __thread char detail[2048];

_public_
void khsm_err_detail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	/* Whatever a message quotes (a URI, a config, a tool's output), it never
	 * shows a PIN written as pin-value. */
	khsm_redact_buf(detail, sizeof(detail));
}

_public_
void khsm_err_prefix(const char *fmt, ...)
{
	char old[sizeof(detail)];
	memcpy(old, detail, sizeof(old));
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < sizeof(detail)) {
		snprintf(detail + n, sizeof(detail) - (size_t)n, "%s", old);
	}
	khsm_redact_buf(detail, sizeof(detail));
}

_public_
void khsm_err_suffix(const char *fmt, ...)
{
	size_t n = strlen(detail);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail + n, sizeof(detail) - n, fmt, ap);
	va_end(ap);
	khsm_redact_buf(detail, sizeof(detail));
}

_public_
const char *khsm_err_last_detail(void)
{
	return detail[0] ? detail : NULL;
}

_public_
void khsm_err_clear(void)
{
	detail[0] = '\0';
}

_public_
int khsm_error_from_ckr(unsigned long rv)
{
	switch (rv) {
	case CKR_OK:                      return KHSM_EOK;
	case CKR_HOST_MEMORY:             return KHSM_ENOMEM;
	case CKR_DEVICE_MEMORY:           return KHSM_EDEVMEM;
	case CKR_PIN_INCORRECT:
	case CKR_PIN_INVALID:
	case CKR_PIN_LEN_RANGE:           return KHSM_EPIN_INCORRECT;
	case CKR_PIN_LOCKED:              return KHSM_EPIN_LOCKED;
	case CKR_PIN_EXPIRED:             return KHSM_ELOGIN;
	case CKR_USER_NOT_LOGGED_IN:
	case CKR_USER_PIN_NOT_INITIALIZED:return KHSM_ELOGIN;
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SLOT_ID_INVALID:         return KHSM_ENOTOKEN;
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:          return KHSM_EREMOVED;
	case CKR_FUNCTION_NOT_SUPPORTED:
	case CKR_MECHANISM_INVALID:
	case CKR_KEY_SIZE_RANGE:          return KHSM_ENOTSUP;
	case CKR_OPERATION_ACTIVE:
	case CKR_SESSION_COUNT:
	case CKR_FUNCTION_FAILED:         return KHSM_EBUSY;
	case CKR_ARGUMENTS_BAD:
	case CKR_TEMPLATE_INCOMPLETE:
	case CKR_TEMPLATE_INCONSISTENT:
	case CKR_ATTRIBUTE_VALUE_INVALID: return KHSM_EINVAL;
	case CKR_CRYPTOKI_NOT_INITIALIZED:
	case CKR_GENERAL_ERROR:           return KHSM_EMODULE;
	default:                          return KHSM_ETOKEN;
	}
}

_public_
int khsm_error_from_gnutls(int rc)
{
	switch (rc) {
	case GNUTLS_E_SUCCESS:                    return KHSM_EOK;
	case GNUTLS_E_MEMORY_ERROR:               return KHSM_ENOMEM;
	case GNUTLS_E_PKCS11_PIN_ERROR:           return KHSM_EPIN_INCORRECT;
	case GNUTLS_E_PKCS11_PIN_LOCKED:    return KHSM_EPIN_LOCKED;
	case GNUTLS_E_PKCS11_PIN_EXPIRED:         return KHSM_ELOGIN;
	case GNUTLS_E_PKCS11_USER_ERROR:          return KHSM_ELOGIN;
	case GNUTLS_E_PKCS11_LOAD_ERROR:          return KHSM_EMODULE;
	case GNUTLS_E_PKCS11_TOKEN_ERROR:
	case GNUTLS_E_PKCS11_SLOT_ERROR:          return KHSM_ENOTOKEN;
	case GNUTLS_E_PKCS11_DEVICE_ERROR:
	case GNUTLS_E_PKCS11_SESSION_ERROR:       return KHSM_EREMOVED;
	case GNUTLS_E_PKCS11_REQUESTED_OBJECT_NOT_AVAILBLE:
	case GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE: return KHSM_ENOENT;
	case GNUTLS_E_PKCS11_UNSUPPORTED_FEATURE_ERROR:
	case GNUTLS_E_UNIMPLEMENTED_FEATURE:      return KHSM_ENOTSUP;
	case GNUTLS_E_PKCS11_ATTRIBUTE_ERROR:
	case GNUTLS_E_INVALID_REQUEST:
	case GNUTLS_E_PARSING_ERROR:
	case GNUTLS_E_PKCS11_DATA_ERROR:          return KHSM_EINVAL;
	case GNUTLS_E_PK_SIGN_FAILED:
	case GNUTLS_E_PK_SIG_VERIFY_FAILED:       return KHSM_ECRYPTO;
	case GNUTLS_E_FILE_ERROR:                 return KHSM_EIO;
	default:                                  return KHSM_ETOKEN;
	}
}

_public_
int khsm_error_from_dnssec(int rc)
{
	switch (rc) {
	case DNSSEC_EOK:                          return KHSM_EOK;
	case DNSSEC_ENOMEM:                       return KHSM_ENOMEM;
	case DNSSEC_EINVAL:                       return KHSM_EINVAL;
	case DNSSEC_ENOENT:
	case DNSSEC_NOT_FOUND:                    return KHSM_ENOENT;
	case DNSSEC_P11_FAILED_TO_LOAD_MODULE:    return KHSM_EMODULE;
	case DNSSEC_P11_TOO_MANY_MODULES:         return KHSM_EMODULE;
	case DNSSEC_P11_TOKEN_NOT_AVAILABLE:      return KHSM_ENOTOKEN;
	case DNSSEC_KEYSTORE_INVALID_CONFIG:      return KHSM_ECONFIG;
	case DNSSEC_INVALID_KEY_ALGORITHM:
	case DNSSEC_INVALID_KEY_SIZE:             return KHSM_ENOTSUP;
	case DNSSEC_INVALID_SIGNATURE:            return KHSM_ECRYPTO;
	case DNSSEC_SIGN_INIT_ERROR:
	case DNSSEC_SIGN_ERROR:                   return KHSM_ESIGN;
	default:                                  return KHSM_EKEYSTORE;
	}
}
