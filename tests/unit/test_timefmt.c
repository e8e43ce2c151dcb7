/* Unit tests of lib/timefmt.c: the two ISO 8601 UTC forms the audit log, the
 * SKR header and the CLI print. */
#include "test.h"

#include <ctype.h>

#include "lib/timefmt.h"

static void test_iso(void **state)
{
	(void)state;
	char buf[KHSM_TIME_ISO_SIZE];
	khsm_time_iso(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	khsm_time_iso(1764633600, buf, sizeof(buf));
	assert_string_equal(buf, "2025-12-02T00:00:00Z");
	khsm_time_iso(1764633600 + 86399, buf, sizeof(buf));
	assert_string_equal(buf, "2025-12-02T23:59:59Z");
}

static void test_now_ms(void **state)
{
	(void)state;
	char buf[KHSM_TIME_ISO_SIZE];
	khsm_time_iso_now_ms(buf, sizeof(buf));
	/* YYYY-MM-DDTHH:MM:SS.mmmZ */
	const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
	assert_int_equal(strlen(buf), strlen(shape));
	for (size_t i = 0; shape[i]; i++) {
		if (shape[i] == 'd') {
			assert_true(isdigit((unsigned char)buf[i]));
		} else {
			assert_int_equal(buf[i], shape[i]);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso),
		cmocka_unit_test(test_now_ms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
