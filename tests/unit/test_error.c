/* Unit tests of lib/error.c: every KHSM_E* code has its own message, the
 * detail buffer (redacted, cleared), and the CKR_*, GNUTLS_E_* and DNSSEC_*
 * translation tables, code by code as the table says. */
#include "test.h"

#include <gnutls/gnutls.h>
#include <libdnssec/error.h>
#include <p11-kit/pkcs11.h>

#include "lib/error.h"

static void test_messages(void **state)
{
	(void)state;
	assert_string_equal(khsm_strerror(KHSM_EOK), "ok");
	/* Every code between KHSM_ENOMEM and KHSM_ERROR_LAST has a message of
	 * its own: none falls back to "unknown error", no two are the same. */
	const char *seen[KHSM_ERROR_LAST - KHSM_ENOMEM] = { 0 };
	for (int code = KHSM_ENOMEM; code < KHSM_ERROR_LAST; code++) {
		const char *msg = khsm_strerror(code);
		assert_non_null(msg);
		if (strcmp(msg, "unknown error") == 0 || msg[0] == '\0') {
			fail_msg("KHSM_E code %d has no message", code);
		}
		for (int j = 0; j < code - KHSM_ENOMEM; j++) {
			if (strcmp(seen[j], msg) == 0) {
				fail_msg("codes %d and %d share the message '%s'", KHSM_ENOMEM + j, code, msg);
			}
		}
		seen[code - KHSM_ENOMEM] = msg;
	}
	/* Specific texts the CLI and the manual rely on. */
	assert_string_equal(khsm_strerror(KHSM_ENOMEM), "not enough memory");
	assert_string_equal(khsm_strerror(KHSM_EPIN_INCORRECT), "wrong PIN");
	assert_string_equal(khsm_strerror(KHSM_EPIN_LOCKED), "user PIN is locked");
	assert_string_equal(khsm_strerror(KHSM_EPIN_FINAL_TRY),
	                    "final PIN try: one more wrong PIN locks the token");
	assert_string_equal(khsm_strerror(KHSM_EPIN_UNSAFE), "PIN file is not private");
	assert_string_equal(khsm_strerror(KHSM_EREMOVED), "token removed");
	assert_string_equal(khsm_strerror(KHSM_ESIGN), "signing on the token failed");
}

static void test_unknown_codes(void **state)
{
	(void)state;
	assert_string_equal(khsm_strerror(KHSM_ERROR_LAST), "unknown error");
	assert_string_equal(khsm_strerror(KHSM_ENOMEM - 1), "unknown error");
	assert_string_equal(khsm_strerror(-1), "unknown error");
	assert_string_equal(khsm_strerror(1), "unknown error");
}

static void test_detail(void **state)
{
	(void)state;
	khsm_err_clear();
	assert_null(khsm_err_last_detail());
	khsm_err_detail("zone %s: %d keys", "example.com.", 3);
	assert_string_equal(khsm_err_last_detail(), "zone example.com.: 3 keys");
	/* A PIN written as pin-value never reaches the detail. */
	khsm_err_detail("cannot open pkcs11:token=card;pin-value=648219?module-path=/x.so");
	assert_string_equal(khsm_err_last_detail(), "cannot open pkcs11:token=card;pin-value=***?module-path=/x.so");
	assert_null(strstr(khsm_err_last_detail(), "648219"));
	khsm_err_clear();
	assert_null(khsm_err_last_detail());
}

static void test_prefix(void **state)
{
	(void)state;
	khsm_err_clear();
	/* No detail yet: the prefix alone becomes it. */
	khsm_err_prefix("step %d: ", 1);
	assert_string_equal(khsm_err_last_detail(), "step 1: ");
	khsm_err_detail("no answer from %s", "192.0.2.1");
	khsm_err_prefix("%s: ", "signing on the card");
	khsm_err_prefix("zone %s: ", "example.com.");
	assert_string_equal(khsm_err_last_detail(),
	                    "zone example.com.: signing on the card: no answer from 192.0.2.1");
	/* A detail that fills the buffer: cut, still terminated, prefix first. */
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	khsm_err_detail("%s", big);
	size_t full = strlen(khsm_err_last_detail());
	khsm_err_prefix("ab: ");
	const char *d = khsm_err_last_detail();
	assert_int_equal(strlen(d), full);
	assert_memory_equal(d, "ab: xxx", 7);
	/* A PIN in the prefix is redacted like any detail. */
	khsm_err_detail("token missing");
	khsm_err_prefix("pkcs11:token=card;pin-value=648219; ");
	assert_string_equal(khsm_err_last_detail(), "pkcs11:token=card;pin-value=***; token missing");
	khsm_err_clear();
}

static void test_suffix(void **state)
{
	(void)state;
	khsm_err_clear();
	khsm_err_suffix("; kept as %s", "x.skr");
	assert_string_equal(khsm_err_last_detail(), "; kept as x.skr");
	khsm_err_detail("SKR check failed");
	khsm_err_suffix("; not imported, kept as %s", "/a/z.skr.invalid");
	assert_string_equal(khsm_err_last_detail(), "SKR check failed; not imported, kept as /a/z.skr.invalid");
	/* A full detail stays terminated; a PIN in the suffix is redacted. */
	char big[4096];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	khsm_err_detail("%s", big);
	size_t full = strlen(khsm_err_last_detail());
	khsm_err_suffix("; more");
	assert_int_equal(strlen(khsm_err_last_detail()), full);
	khsm_err_detail("token missing");
	khsm_err_suffix(" (pkcs11:token=card;pin-value=648219)");
	assert_string_equal(khsm_err_last_detail(), "token missing (pkcs11:token=card;pin-value=***)");
	khsm_err_clear();
}

static void test_from_ckr(void **state)
{
	(void)state;
	assert_int_equal(khsm_error_from_ckr(CKR_OK), KHSM_EOK);
	assert_int_equal(khsm_error_from_ckr(CKR_HOST_MEMORY), KHSM_ENOMEM);
	assert_int_equal(khsm_error_from_ckr(CKR_DEVICE_MEMORY), KHSM_EDEVMEM);
	assert_int_equal(khsm_error_from_ckr(CKR_PIN_INCORRECT), KHSM_EPIN_INCORRECT);
	assert_int_equal(khsm_error_from_ckr(CKR_PIN_INVALID), KHSM_EPIN_INCORRECT);
	assert_int_equal(khsm_error_from_ckr(CKR_PIN_LEN_RANGE), KHSM_EPIN_INCORRECT);
	assert_int_equal(khsm_error_from_ckr(CKR_PIN_LOCKED), KHSM_EPIN_LOCKED);
	assert_int_equal(khsm_error_from_ckr(CKR_PIN_EXPIRED), KHSM_ELOGIN);
	assert_int_equal(khsm_error_from_ckr(CKR_USER_NOT_LOGGED_IN), KHSM_ELOGIN);
	assert_int_equal(khsm_error_from_ckr(CKR_USER_PIN_NOT_INITIALIZED), KHSM_ELOGIN);
	assert_int_equal(khsm_error_from_ckr(CKR_TOKEN_NOT_PRESENT), KHSM_ENOTOKEN);
	assert_int_equal(khsm_error_from_ckr(CKR_TOKEN_NOT_RECOGNIZED), KHSM_ENOTOKEN);
	assert_int_equal(khsm_error_from_ckr(CKR_SLOT_ID_INVALID), KHSM_ENOTOKEN);
	assert_int_equal(khsm_error_from_ckr(CKR_DEVICE_REMOVED), KHSM_EREMOVED);
	assert_int_equal(khsm_error_from_ckr(CKR_SESSION_HANDLE_INVALID), KHSM_EREMOVED);
	assert_int_equal(khsm_error_from_ckr(CKR_SESSION_CLOSED), KHSM_EREMOVED);
	assert_int_equal(khsm_error_from_ckr(CKR_FUNCTION_NOT_SUPPORTED), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_ckr(CKR_MECHANISM_INVALID), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_ckr(CKR_KEY_SIZE_RANGE), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_ckr(CKR_OPERATION_ACTIVE), KHSM_EBUSY);
	assert_int_equal(khsm_error_from_ckr(CKR_SESSION_COUNT), KHSM_EBUSY);
	assert_int_equal(khsm_error_from_ckr(CKR_FUNCTION_FAILED), KHSM_EBUSY);
	assert_int_equal(khsm_error_from_ckr(CKR_ARGUMENTS_BAD), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_ckr(CKR_TEMPLATE_INCOMPLETE), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_ckr(CKR_TEMPLATE_INCONSISTENT), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_ckr(CKR_ATTRIBUTE_VALUE_INVALID), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_ckr(CKR_CRYPTOKI_NOT_INITIALIZED), KHSM_EMODULE);
	assert_int_equal(khsm_error_from_ckr(CKR_GENERAL_ERROR), KHSM_EMODULE);
	/* Anything else the token says: it refused. */
	assert_int_equal(khsm_error_from_ckr(CKR_DEVICE_ERROR), KHSM_ETOKEN);
	assert_int_equal(khsm_error_from_ckr(CKR_KEY_HANDLE_INVALID), KHSM_ETOKEN);
	assert_int_equal(khsm_error_from_ckr(CKR_VENDOR_DEFINED | 1), KHSM_ETOKEN);
}

static void test_from_gnutls(void **state)
{
	(void)state;
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_SUCCESS), KHSM_EOK);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_MEMORY_ERROR), KHSM_ENOMEM);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_PIN_ERROR), KHSM_EPIN_INCORRECT);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_PIN_LOCKED), KHSM_EPIN_LOCKED);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_PIN_EXPIRED), KHSM_ELOGIN);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_USER_ERROR), KHSM_ELOGIN);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_LOAD_ERROR), KHSM_EMODULE);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_TOKEN_ERROR), KHSM_ENOTOKEN);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_SLOT_ERROR), KHSM_ENOTOKEN);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_DEVICE_ERROR), KHSM_EREMOVED);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_SESSION_ERROR), KHSM_EREMOVED);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_REQUESTED_OBJECT_NOT_AVAILBLE), KHSM_ENOENT);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE), KHSM_ENOENT);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_UNSUPPORTED_FEATURE_ERROR), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_UNIMPLEMENTED_FEATURE), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_ATTRIBUTE_ERROR), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_INVALID_REQUEST), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PARSING_ERROR), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_DATA_ERROR), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PK_SIGN_FAILED), KHSM_ECRYPTO);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PK_SIG_VERIFY_FAILED), KHSM_ECRYPTO);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_FILE_ERROR), KHSM_EIO);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_PKCS11_ERROR), KHSM_ETOKEN);
	assert_int_equal(khsm_error_from_gnutls(GNUTLS_E_INTERNAL_ERROR), KHSM_ETOKEN);
}

static void test_from_dnssec(void **state)
{
	(void)state;
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_EOK), KHSM_EOK);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_ENOMEM), KHSM_ENOMEM);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_EINVAL), KHSM_EINVAL);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_ENOENT), KHSM_ENOENT);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_NOT_FOUND), KHSM_ENOENT);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_P11_FAILED_TO_LOAD_MODULE), KHSM_EMODULE);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_P11_TOO_MANY_MODULES), KHSM_EMODULE);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_P11_TOKEN_NOT_AVAILABLE), KHSM_ENOTOKEN);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_KEYSTORE_INVALID_CONFIG), KHSM_ECONFIG);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_INVALID_KEY_ALGORITHM), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_INVALID_KEY_SIZE), KHSM_ENOTSUP);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_INVALID_SIGNATURE), KHSM_ECRYPTO);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_SIGN_INIT_ERROR), KHSM_ESIGN);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_SIGN_ERROR), KHSM_ESIGN);
	/* Any other libdnssec failure: the keystore. */
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_ERROR), KHSM_EKEYSTORE);
	assert_int_equal(khsm_error_from_dnssec(DNSSEC_MALFORMED_DATA), KHSM_EKEYSTORE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_unknown_codes),
		cmocka_unit_test(test_detail),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_suffix),
		cmocka_unit_test(test_from_ckr),
		cmocka_unit_test(test_from_gnutls),
		cmocka_unit_test(test_from_dnssec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
