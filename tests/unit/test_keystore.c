/* Unit tests of lib/keystore.c that need no token: the login precheck's
 * refusals and the unblock procedure they name (the one that works with
 * OpenSC 0.23's SmartCard-HSM driver: C_InitPIN as the security officer). */
#include "test.h"

#include "lib/error.h"
#include "lib/keystore.h"
#include "lib/token.h"

static void test_locked(void **state)
{
	(void)state;
	assert_int_equal(khsm_login_precheck(KHSM_TOKEN_PIN_LOCKED, true), KHSM_EPIN_LOCKED);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	assert_non_null(strstr(d, "--login --login-type so --init-pin --so-pin SO-PIN --new-pin NEW-PIN"));
	assert_null(strstr(d, "--unlock-pin"));                 /* not with OpenSC's sc-hsm driver */
	assert_null(strstr(d, "sc-hsm-tool can"));              /* Debian 12's has no unblock option */
	khsm_err_clear();
}

static void test_final_try(void **state)
{
	(void)state;
	assert_int_equal(khsm_login_precheck(KHSM_TOKEN_PIN_FINAL_TRY, false), KHSM_EPIN_FINAL_TRY);
	assert_non_null(strstr(khsm_err_last_detail(), "--force"));
	khsm_err_clear();
	assert_int_equal(khsm_login_precheck(KHSM_TOKEN_PIN_FINAL_TRY, true), KHSM_EOK);
	assert_int_equal(khsm_login_precheck(0, false), KHSM_EOK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_locked),
		cmocka_unit_test(test_final_try),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
