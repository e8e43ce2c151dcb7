/* Unit tests of lib/heal.c: knotd's re-sign event read from `knotc -e
 * zone-status ZONE +events` as Knot 3.5.8 prints it (not scheduled, due,
 * running, a relative time in Knot's mixed units), and refusals of what is
 * not that. */
#include "test.h"

#include "lib/error.h"
#include "lib/heal.h"

#define NOW 1700000000

static const char HEAD[] = "[example.com.] role: master | serial: 7 | transaction: none | "
                           "freeze: no | refresh: - | update: - | expiration: - | journal flush: - | "
                           "notify: - | ";

static int64_t parse(const char *event, int want)
{
	char text[512];
	snprintf(text, sizeof(text), "%sre-sign: %s | ds-check: - | ds-push: -\n", HEAD, event);
	int64_t at = -1;
	assert_int_equal(khsm_heal_resign_parse(text, NOW, &at), want);
	khsm_err_clear();
	return at;
}

static void test_events(void **state)
{
	(void)state;
	assert_int_equal(parse("-", KHSM_EOK), 0);
	assert_int_equal(parse("+9s", KHSM_EOK), NOW + 9);
	assert_int_equal(parse("+1D2h3m4s", KHSM_EOK), NOW + 86400 + 7200 + 180 + 4);
	assert_int_equal(parse("+1Y1M", KHSM_EOK), NOW + 365 * 86400 + 30 * 86400);
	assert_int_equal(parse("running(+0s)", KHSM_EOK), NOW);
	assert_int_equal(parse("pending(-3s)", KHSM_EOK), NOW);
	/* The last item of a line, no " |" after it. */
	char text[256];
	snprintf(text, sizeof(text), "%sre-sign: +10s\n", HEAD);
	int64_t at = 0;
	assert_int_equal(khsm_heal_resign_parse(text, NOW, &at), KHSM_EOK);
	assert_int_equal(at, NOW + 10);
}

static void test_refusals(void **state)
{
	(void)state;
	parse("+", KHSM_EPARSE);
	parse("9s", KHSM_EPARSE);
	parse("+9", KHSM_EPARSE);
	parse("+9x", KHSM_EPARSE);
	parse("+3s2m", KHSM_EPARSE);       /* units out of order */
	parse("+99999999999999s", KHSM_EPARSE);
	int64_t at = 0;
	assert_int_equal(khsm_heal_resign_parse("[example.com.] role: master | serial: 7\n", NOW, &at),
	                 KHSM_EPARSE);
	assert_non_null(strstr(khsm_err_last_detail(), "no re-sign event"));
	khsm_err_clear();
	assert_int_equal(khsm_heal_resign_parse(NULL, NOW, &at), KHSM_EINVAL);
}

static void test_card_state_names(void **state)
{
	(void)state;
	assert_string_equal(khsm_card_state_name(KHSM_CARD_PRESENT), "present");
	assert_string_equal(khsm_card_state_name(KHSM_CARD_ABSENT), "absent");
	assert_string_equal(khsm_card_state_name(KHSM_CARD_NOPCSCD), "pcscd not running");
	/* A probe of nothing can tell nothing, and logs in to nothing. */
	assert_int_equal(khsm_card_probe(NULL, NULL), KHSM_CARD_UNKNOWN);
	assert_int_equal(khsm_card_probe("pkcs11:token=x /nonexistent.so", "zz"), KHSM_CARD_UNKNOWN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_card_state_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
