/* Unit tests of lib/status.c with the real knotc and keymgr on a knot.conf in
 * a temp dir: the state names, and the verdicts that need no card and no
 * knotd (no policy, a policy without a card, an offline zone never
 * pre-signed). */
#include "test.h"

#include <string.h>

#include "lib/error.h"
#include "lib/knotconf.h"
#include "lib/status.h"
#include "test_tmpdir.h"

TEST_TMPDIR_FIXTURE("status")

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(khsm_status_name(KHSM_STATUS_OK), "ok");
	assert_string_equal(khsm_status_name(KHSM_STATUS_WARN), "warning");
	assert_string_equal(khsm_status_name(KHSM_STATUS_CRIT), "critical");
	assert_string_equal(khsm_status_name(KHSM_STATUS_UNKNOWN), "unknown");
	assert_string_equal(khsm_status_name(7), "unknown");
	assert_string_equal(khsm_status_name(-1), "unknown");
}

static const khsm_conf_zone_t *zone_named(const khsm_conf_t *conf, const char *name)
{
	const khsm_conf_zone_t *z = khsm_conf_zone_find(conf, name);
	assert_non_null(z);
	return z;
}

static void test_verdicts(void **state)
{
	(void)state;
	char path[128], text[1024];
	snprintf(path, sizeof(path), "%s/knot.conf", dir);
	snprintf(text, sizeof(text),
	         "database:\n    kasp-db: %s/kasp\n"
	         "policy:\n  - id: soft\n    manual: on\n"
	         "  - id: off\n    manual: on\n    offline-ksk: on\n"
	         "zone:\n  - domain: plain.example.\n"
	         "  - domain: soft.example.\n    dnssec-policy: soft\n"
	         "  - domain: off.example.\n    dnssec-policy: off\n", dir);
	tmpdir_write(path, text, strlen(text), 0600);
	khsm_conf_t *conf = NULL;
	assert_int_equal(khsm_conf_load(path, &conf), KHSM_EOK);
	khsm_zone_status_t s;

	khsm_zone_status(conf, NULL, NULL, zone_named(conf, "plain.example."), 1000, 14 * 86400,
	                 7 * 86400, false, NULL, &s);
	assert_int_equal(s.state, KHSM_STATUS_UNKNOWN);
	assert_string_equal(s.mode, "other");
	assert_string_equal(s.message, "no dnssec-policy");

	khsm_zone_status(conf, NULL, NULL, zone_named(conf, "soft.example."), 1000, 14 * 86400,
	                 7 * 86400, false, NULL, &s);
	assert_int_equal(s.state, KHSM_STATUS_UNKNOWN);
	assert_string_equal(s.mode, "other");
	assert_string_equal(s.message, "policy soft keeps no key on a card");

	/* offline, no SKR imported yet: critical, naming the ceremony to run */
	khsm_zone_status(conf, NULL, NULL, zone_named(conf, "off.example."), 1000, 14 * 86400,
	                 7 * 86400, false, NULL, &s);
	assert_int_equal(s.state, KHSM_STATUS_CRIT);
	assert_string_equal(s.mode, "offline");
	assert_non_null(strstr(s.message, "no pre-signed DNSKEY set: run knot-hsm -c "));
	assert_non_null(strstr(s.message, " off.example. ceremony"));
	assert_string_equal(s.card_ksk, "unknown");
	khsm_conf_free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
