/* Tests of lib/budget.c: the key-slots header value and one card's budget
 * (the zones of knot.conf and the card read: tests/integration/test_budget.sh). */
#include "test.h"

#include <string.h>

#include "budget.h"
#include "error.h"
#include "policy.h"

static void test_slots_get(void **state)
{
	(void)state;
	long n = 0;
	assert_int_equal(khsm_budget_slots_get("card:32,card2:20", "card", &n), KHSM_EOK);
	assert_int_equal(n, 32);
	assert_int_equal(khsm_budget_slots_get("card:32,card2:20", "card2", &n), KHSM_EOK);
	assert_int_equal(n, 20);
	/* a prefix of an id is not that id */
	assert_int_equal(khsm_budget_slots_get("card2:20", "card", &n), KHSM_ENOENT);
	assert_int_equal(khsm_budget_slots_get("card:32", "card3", &n), KHSM_ENOENT);
	/* no id, no number, a zero, too many digits: not a value */
	assert_int_equal(khsm_budget_slots_get("32", "card", &n), KHSM_ENOENT);
	assert_int_equal(khsm_budget_slots_get("card:", "card", &n), KHSM_ENOENT);
	assert_int_equal(khsm_budget_slots_get("card:0", "card", &n), KHSM_ENOENT);
	assert_int_equal(khsm_budget_slots_get("card:123456", "card", &n), KHSM_ENOENT);
	assert_int_equal(khsm_budget_slots_get("card:3x", "card", &n), KHSM_ENOENT);
	assert_int_equal(khsm_budget_slots_get(NULL, "card", &n), KHSM_EINVAL);
}

static void test_one(void **state)
{
	(void)state;
	khsm_policy_t p;
	khsm_policy_stats_t st;
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);

	/* 100 zones: their figures add up; a ceremony of them is minutes of card time */
	khsm_budget_card_t c;
	assert_int_equal(khsm_budget_one("card", "pkcs11:token=t /m.so", 100, &st, "card:32", NULL, &c), KHSM_EOK);
	assert_int_equal(c.zones, 100);
	assert_int_equal(c.per_year, 100 * st.card_signatures_per_year);
	assert_int_equal(c.peak_day, 100 * st.card_signatures_peak_day);
	assert_int_equal(c.peak_seconds, (c.peak_day + KHSM_BUDGET_RATE - 1) / KHSM_BUDGET_RATE);
	assert_true(c.keeps_up);
	assert_int_equal(c.slots_total, 32);
	/* not read: used and free unknown, and it says why */
	assert_int_equal(c.slots_used, -1);
	assert_int_equal(c.slots_free, -1);
	assert_string_equal(c.note, "the card was not read");
	khsm_budget_card_clear(&c);

	/* Hourly refreshes for 3,000 zones: 72,000 signatures a day need 12,000 s
	 * of card time, within half a day; 20,000 zones need 80,000 s, more than half. */
	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	p.zsk_lifetime = 0;
	p.dnskey_ttl = p.zone_max_ttl = 600;
	p.rrsig_lifetime = 7200;
	p.rrsig_refresh = 3600;
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(khsm_budget_one("card", "c", 3000, &st, NULL, NULL, &c), KHSM_EOK);
	assert_int_equal(c.peak_day, 72000);
	assert_int_equal(c.peak_seconds, 12000);
	assert_true(c.keeps_up);
	assert_int_equal(c.slots_total, -1);
	khsm_budget_card_clear(&c);
	assert_int_equal(khsm_budget_one("card", "c", 2000 * 10, &st, NULL, NULL, &c), KHSM_EOK);
	assert_int_equal(c.peak_seconds, 80000);
	assert_false(c.keeps_up);
	assert_false(c.zone_too_much);   /* more cards would carry them */
	khsm_budget_card_clear(&c);

	/* One zone with lifetimes of seconds (the demo's) and a 90-day ceremony:
	 * no number of cards helps it. */
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	p.zsk_lifetime = 30;
	p.propagation_delay = 1;
	p.rrsig_lifetime = 60;
	p.rrsig_refresh = 20;
	p.dnskey_ttl = p.zone_max_ttl = 5;
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_true(st.card_signatures_peak_day * 100 > 86400ULL * KHSM_BUDGET_RATE * KHSM_BUDGET_BUSY_MAX);
	assert_int_equal(khsm_budget_one("card", "c", 1, &st, NULL, NULL, &c), KHSM_EOK);
	assert_false(c.keeps_up);
	assert_true(c.zone_too_much);
	khsm_budget_card_clear(&c);
}

/* One card through the guard or not, whatever the PIN; a URI without token
 * or serial tells no card apart: only the same config is the same card. */
static void test_same_card(void **state)
{
	(void)state;
	assert_true(khsm_budget_same_card("pkcs11:token=A;pin-source=%2Fa /opensc.so",
	                                  "pkcs11:token=A;pin-source=%2Fb /guard.so"));
	assert_false(khsm_budget_same_card("pkcs11:token=A /m.so", "pkcs11:token=B /m.so"));
	assert_false(khsm_budget_same_card("pkcs11:slot-id=1 /m.so", "pkcs11:slot-id=2 /m.so"));
	assert_true(khsm_budget_same_card("pkcs11:slot-id=1 /m.so", "pkcs11:slot-id=1 /m.so"));
	assert_false(khsm_budget_same_card(NULL, "pkcs11:token=A /m.so"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_get),
		cmocka_unit_test(test_one),
		cmocka_unit_test(test_same_card),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
