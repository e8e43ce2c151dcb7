/* Tests of lib/inventory.c without a card: what is refused before the card is
 * read, and freeing (the card listing itself: integration.generate, .online). */
#include "test.h"

#include "error.h"
#include "inventory.h"

static void test_refused(void **state)
{
	(void)state;
	int dummy = 0;
	const khsm_conf_t *conf = (const khsm_conf_t *)&dummy;   /* never read: refused first */
	khsm_keystore_t *ks = (khsm_keystore_t *)&dummy;
	khsm_kasp_index_t kasp = { 0 };
	const char *ids[] = { "hsm" };
	khsm_inventory_t inv = { 0 };

	assert_int_equal(khsm_inventory_card(NULL, &kasp, ks, NULL, false, ids, 1, &inv), KHSM_EINVAL);
	assert_int_equal(khsm_inventory_card(conf, NULL, ks, NULL, false, ids, 1, &inv), KHSM_EINVAL);
	assert_int_equal(khsm_inventory_card(conf, &kasp, NULL, NULL, false, ids, 1, &inv), KHSM_EINVAL);
	/* a card is named by at least one keystore id */
	assert_int_equal(khsm_inventory_card(conf, &kasp, ks, NULL, false, ids, 0, &inv), KHSM_EINVAL);
	assert_int_equal(khsm_inventory_card(conf, &kasp, ks, NULL, false, NULL, 1, &inv), KHSM_EINVAL);
	assert_int_equal(khsm_inventory_card(conf, &kasp, ks, NULL, false, ids, 1, NULL), KHSM_EINVAL);
	assert_null(inv.keys);
	assert_null(inv.missing);
}

static void test_clear(void **state)
{
	(void)state;
	khsm_inventory_t inv = { 0 };
	inv.keys = calloc(2, sizeof(*inv.keys));
	inv.missing = calloc(1, sizeof(*inv.missing));
	assert_non_null(inv.keys);
	assert_non_null(inv.missing);
	inv.key_count = 2;
	inv.keys[0].label = strdup("example.com. KSK");
	inv.keys[0].id_hex = strdup("0a1b");
	inv.missing_count = 1;
	inv.missing[0].zone = strdup("example.net.");
	inv.missing[0].id_hex = strdup("ff");
	khsm_inventory_clear(&inv);   /* ASan: nothing leaks */
	assert_null(inv.keys);
	assert_int_equal(inv.key_count, 0);
	assert_int_equal(inv.missing_count, 0);
	khsm_inventory_clear(&inv);
	khsm_inventory_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_clear),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
