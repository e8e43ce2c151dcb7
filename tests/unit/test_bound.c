/* Unit tests of lib/bound.c: each limit at the limit and one above. */
#include "test.h"

#include "lib/bound.h"
#include "lib/error.h"

static char *rep(char c, size_t n)
{
	char *s = malloc(n + 1);
	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void at_limit(khsm_bound_kind_t kind, char c, size_t limit, const char *want)
{
	char *ok = rep(c, limit), *over = rep(c, limit + 1);
	assert_int_equal(khsm_bound_check(kind, "x=", ok), KHSM_EOK);
	khsm_err_clear();
	assert_int_equal(khsm_bound_check(kind, "x=", over), KHSM_ERANGE);
	assert_non_null(khsm_err_last_detail());
	assert_non_null(strstr(khsm_err_last_detail(), want));
	free(ok);
	free(over);
}

static void test_limits(void **state)
{
	(void)state;
	at_limit(KHSM_BOUND_KIND_KEY_LABEL, 'k', 255, "x= is 256 bytes long; a key label (CKA_LABEL) holds at most 255 bytes");
	at_limit(KHSM_BOUND_KIND_ID_HEX, 'a', 510, "at most 255 bytes");
	at_limit(KHSM_BOUND_KIND_TOKEN_LABEL, 't', 32, "x= is 33 bytes long; a token label holds at most 32 bytes");
	at_limit(KHSM_BOUND_KIND_PATH, 'p', 4095, "x= is 4096 bytes long; a path is at most 4095 bytes (PATH_MAX)");
}

/* An id counts its bytes, not its separators; a token URI is not a label. */
static void test_id_and_uri(void **state)
{
	(void)state;
	char id[3 * 255];
	for (size_t i = 0; i < 255; i++) {
		memcpy(id + 3 * i, "ab:", 3);
	}
	id[3 * 255 - 1] = '\0';
	assert_int_equal(khsm_bound_check(KHSM_BOUND_KIND_ID_HEX, "id=", id), KHSM_EOK);
	assert_int_equal(khsm_bound_check(KHSM_BOUND_KIND_TOKEN_LABEL, "--token",
	                                  "pkcs11:token=SmartCard-HSM%20%28UserPIN%29;serial=1234"), KHSM_EOK);
	assert_int_equal(khsm_bound_check(KHSM_BOUND_KIND_PATH, NULL, "x"), KHSM_EINVAL);
	assert_int_equal(khsm_bound_check(KHSM_BOUND_KIND_PATH, "x", NULL), KHSM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_id_and_uri),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
