/* Tests of lib/enroll.c without a card: the algorithm a new key gets, and the
 * requests refused before anything is opened (the card steps: the integration
 * tests generate, card_generate and card_busy). */
#include "test.h"

#include "enroll.h"
#include "error.h"

static void test_algorithm(void **state)
{
	(void)state;
	khsm_conf_policy_t policy = { .algorithm = (char *)"ecdsap384sha384" };
	khsm_zone_t zone = { .name = (char *)"example.com.", .policy = &policy };
	int alg = 0;

	/* algorithm= wins over the policy */
	assert_int_equal(khsm_zone_key_algorithm(&zone, "ed25519", &alg), KHSM_EOK);
	assert_int_equal(alg, 15);
	/* else the policy's */
	assert_int_equal(khsm_zone_key_algorithm(&zone, NULL, &alg), KHSM_EOK);
	assert_int_equal(alg, 14);
	/* else ECDSA P-256 */
	policy.algorithm = NULL;
	assert_int_equal(khsm_zone_key_algorithm(&zone, NULL, &alg), KHSM_EOK);
	assert_int_equal(alg, 13);
	zone.policy = NULL;
	alg = 0;
	assert_int_equal(khsm_zone_key_algorithm(&zone, NULL, &alg), KHSM_EOK);
	assert_int_equal(alg, 13);

	khsm_err_clear();
	alg = -1;
	assert_int_equal(khsm_zone_key_algorithm(&zone, "dsa", &alg), KHSM_EINVAL);
	assert_int_equal(alg, -1);
	assert_non_null(strstr(khsm_err_last_detail(), "unknown algorithm 'dsa'"));
	assert_int_equal(khsm_zone_key_algorithm(NULL, NULL, &alg), KHSM_EINVAL);
}

static int opened;

static int open_counted(void *ctx, const char *config, khsm_pin_t **pin_ptr, khsm_keystore_t **ks_ptr)
{
	(void)ctx; (void)config; (void)pin_ptr; (void)ks_ptr;
	opened++;
	return KHSM_ENOENT;
}

static void test_refused_requests(void **state)
{
	(void)state;
	khsm_conf_t *conf = (khsm_conf_t *)&opened;   /* never read: refused first */
	khsm_zone_t zone = { .name = (char *)"example.com." };
	khsm_enrolled_t out = { 0 };
	static const uint8_t ID[] = { 0x01 };

	/* no open step */
	khsm_enroll_t req = { .ksk = true, .algorithm = 13, .label = "x" };
	assert_int_equal(khsm_zone_key_generate(conf, &zone, &req, &out), KHSM_EINVAL);
	assert_int_equal(khsm_zone_key_import(conf, &zone, &req, &out), KHSM_EINVAL);
	/* import needs exactly one of label and id */
	req.open = open_counted;
	req.id = ID;
	req.id_len = sizeof(ID);
	assert_int_equal(khsm_zone_key_import(conf, &zone, &req, &out), KHSM_EINVAL);
	req.label = NULL;
	req.id = NULL;
	assert_int_equal(khsm_zone_key_import(conf, &zone, &req, &out), KHSM_EINVAL);
	assert_int_equal(khsm_zone_key_generate(NULL, &zone, &req, &out), KHSM_EINVAL);
	assert_int_equal(khsm_zone_key_generate(conf, NULL, &req, &out), KHSM_EINVAL);
	assert_int_equal(khsm_zone_key_generate(conf, &zone, &req, NULL), KHSM_EINVAL);
	assert_int_equal(opened, 0);
	assert_null(out.id_hex);
	assert_null(out.key);

	/* clearing an empty or cleared result is harmless */
	khsm_enrolled_clear(&out);
	khsm_enrolled_clear(&out);
	khsm_enrolled_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_algorithm),
		cmocka_unit_test(test_refused_requests),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
