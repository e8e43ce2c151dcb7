/* Tests of lib/dname.c: zone names as the operator types them. */
#include "test.h"

#include <stdio.h>
#include <string.h>

#include "dname.h"
#include "error.h"

static void test_zone_normalize(void **state)
{
	(void)state;
	static const struct { const char *in, *out; } good[] = {
		{ "Example.COM", "example.com." },
		{ "example.com.", "example.com." },
		{ "EXAMPLE.COM.", "example.com." },
		{ "xn--BCHER-kva.Example", "xn--bcher-kva.example." },
		{ ".", "." },
		{ "com", "com." },
		{ "_Tcp.example.com", "_tcp.example.com." },
		{ "0/25.2.0.192.IN-ADDR.ARPA", "0/25.2.0.192.in-addr.arpa." },
		/* 63-octet label is the maximum */
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com." },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *out = NULL;
		assert_int_equal(khsm_zone_normalize(good[i].in, &out), KHSM_EOK);
		assert_string_equal(out, good[i].out);
		free(out);
	}

	/* 255 octets in wire form is the maximum: 3 x (1+63) + (1+61) + 1 */
	char name[300];
	memset(name, 'a', sizeof(name));
	name[63] = name[127] = name[191] = '.';
	name[253] = '\0';
	char *out = NULL;
	assert_int_equal(khsm_zone_normalize(name, &out), KHSM_EOK);
	assert_int_equal(strlen(out), 254);
	free(out);
	name[253] = 'a';
	name[254] = '\0'; /* 256 octets */
	out = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_zone_normalize(name, &out), KHSM_EINVAL);
	assert_null(out);
	assert_non_null(strstr(khsm_err_last_detail(), "255"));

	static const char *const bad[] = {
		"", "..", ".com", "a..b", "example.com..", "exa mple.com", "ex\\097mple.com",
		"*.example.com", "example.com\n", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = NULL;
		khsm_err_clear();
		if (khsm_zone_normalize(bad[i], &out) != KHSM_EINVAL) {
			fail_msg("'%s' was accepted", bad[i]);
		}
		assert_null(out);
		assert_non_null(khsm_err_last_detail());
	}

	khsm_err_clear();
	assert_int_equal(khsm_zone_normalize(
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com", &out), KHSM_EINVAL);
	assert_non_null(strstr(khsm_err_last_detail(), "longer than 63"));

	khsm_err_clear();
	assert_int_equal(khsm_zone_normalize("b\xc3\xbc" "cher.example", &out), KHSM_EINVAL);
	assert_null(out);
	assert_non_null(strstr(khsm_err_last_detail(), "xn--"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zone_normalize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
