/* Tests of lib/policy.c: durations, modes, options and refusals, the
 * lifetime arithmetic (the rendered text: test_confgen.c). */
#include "test.h"

#include <stdbool.h>
#include <string.h>

#include "error.h"
#include "confgen.h"
#include "policy.h"

static void test_duration_parse(void **state)
{
	(void)state;
	struct { const char *in; int64_t want; } ok[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "5m", 300 }, { "2h", 7200 },
		{ "30d", 2592000 }, { "007d", 604800 }, { "4294967295", 4294967295LL },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int64_t v = -1;
		assert_int_equal(khsm_duration_parse(ok[i].in, &v), KHSM_EOK);
		assert_int_equal(v, ok[i].want);
	}
	const char *bad[] = { "", "d", "-1d", "+1d", " 1d", "1d ", "1 d", "1w", "1y", "1M", "1mo",
	                      "1ds", "1.5d", "0x10", "1D", "4294967296", "49711d",
	                      "99999999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 42;
		khsm_err_clear();
		assert_int_not_equal(khsm_duration_parse(bad[i], &v), KHSM_EOK);
		assert_int_equal(v, 42);
		assert_non_null(khsm_err_last_detail());
	}
}

static void test_duration_format(void **state)
{
	(void)state;
	char b[32];
	struct { int64_t in; const char *want; } cases[] = {
		{ 0, "0" }, { 90, "90s" }, { 120, "2m" }, { 3600, "1h" }, { 90000, "25h" },
		{ 86400, "1d" }, { 2592000, "30d" }, { 3601, "3601s" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		khsm_duration_format(cases[i].in, b, sizeof(b));
		assert_string_equal(b, cases[i].want);
	}
	khsm_duration_human(80 * 86400, b, sizeof(b));
	assert_string_equal(b, "80 days");
	khsm_duration_human(86400 + 7200, b, sizeof(b));
	assert_string_equal(b, "1 day 2 hours");
	khsm_duration_human(45, b, sizeof(b));
	assert_string_equal(b, "45 seconds");
	khsm_duration_human(-3600, b, sizeof(b));
	assert_string_equal(b, "-1 hour");
}

static void test_modes(void **state)
{
	(void)state;
	khsm_mode_t m;
	assert_int_equal(khsm_mode_from_name("offline", &m), KHSM_EOK);
	assert_int_equal(m, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_mode_from_name("online", &m), KHSM_EOK);
	assert_int_equal(m, KHSM_MODE_ONLINE);
	assert_int_equal(khsm_mode_from_name("Online", &m), KHSM_EINVAL);
	assert_int_equal(khsm_mode_default(3, 2), KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_mode_default(3, 4), KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_mode_default(3, 5), KHSM_MODE_ONLINE);
	assert_int_equal(khsm_mode_default(4, 0), KHSM_MODE_ONLINE);
	khsm_err_clear();
	assert_int_equal(khsm_mode_supported(KHSM_MODE_ONLINE, 3, 2), KHSM_ENOTSUP);
	assert_non_null(strstr(khsm_err_last_detail(), "needs Knot 3.5 or later (installed: 3.2)"));
	assert_int_equal(khsm_mode_supported(KHSM_MODE_ONLINE, 3, 5), KHSM_EOK);
	assert_int_equal(khsm_mode_supported(KHSM_MODE_OFFLINE, 3, 2), KHSM_EOK);
	assert_int_equal(khsm_mode_supported(KHSM_MODE_OFFLINE, 3, 5), KHSM_EOK);
	assert_int_equal(khsm_mode_supported(KHSM_MODE_OFFLINE, 3, 1), KHSM_ENOTSUP);
}

static void test_options(void **state)
{
	(void)state;
	khsm_policy_t p;
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_policy_set(&p, "zsk-lifetime", "7d"), KHSM_EOK);
	assert_int_equal(p.zsk_lifetime, 604800);
	assert_int_equal(khsm_policy_set(&p, "algorithm", "ecdsap384sha384"), KHSM_EOK);
	assert_int_equal(p.algorithm, 14);
	assert_int_equal(khsm_policy_set(&p, "algorithm", "13"), KHSM_EOK);
	assert_int_equal(p.algorithm, 13);
	assert_int_equal(khsm_policy_set(&p, "algorithm", "7"), KHSM_EINVAL);
	assert_int_equal(khsm_policy_set(&p, "algorithm", "dsa"), KHSM_EINVAL);
	assert_int_equal(khsm_policy_set(&p, "shared-ksk", "yes"), KHSM_EOK);
	assert_true(p.shared_ksk);
	assert_int_equal(khsm_policy_set(&p, "shared-ksk", "on"), KHSM_EINVAL);
	/* cds-cdnskey-publish: Knot's names, rollover by default */
	assert_int_equal(p.cds, KHSM_CDS_ROLLOVER);
	assert_int_equal(khsm_policy_set(&p, "cds", "double-ds"), KHSM_EOK);
	assert_int_equal(p.cds, KHSM_CDS_DOUBLE_DS);
	assert_string_equal(khsm_cds_name(p.cds), "double-ds");
	assert_int_equal(khsm_policy_set(&p, "cds", "none"), KHSM_EOK);
	assert_int_equal(p.cds, KHSM_CDS_NONE);
	assert_int_equal(khsm_policy_set(&p, "cds", "always"), KHSM_EOK);
	assert_int_equal(p.cds, KHSM_CDS_ALWAYS);
	khsm_err_clear();
	assert_int_equal(khsm_policy_set(&p, "cds", "delete-dnssec"), KHSM_EINVAL);
	assert_non_null(strstr(khsm_err_last_detail(), "cds= takes rollover, none, always or double-ds"));
	assert_int_equal(p.cds, KHSM_CDS_ALWAYS);
	assert_int_equal(khsm_policy_set(&p, "ksk-lifetime", "1d"), KHSM_ENOENT);
	khsm_err_clear();
	assert_int_equal(khsm_policy_set(&p, "dnskey-ttl", "1w"), KHSM_EINVAL);
	assert_non_null(strstr(khsm_err_last_detail(), "dnskey-ttl=: "));
	assert_non_null(strstr(khsm_err_last_detail(), "s, m, h and d"));
}

static void expect_refused(khsm_policy_t *p, const char *key, const char *value, const char *why)
{
	assert_int_equal(khsm_policy_set(p, key, value), KHSM_EOK);
	khsm_err_clear();
	assert_int_equal(khsm_policy_check(p), KHSM_EINVAL);
	assert_non_null(khsm_err_last_detail());
	if (!strstr(khsm_err_last_detail(), why)) {
		fail_msg("'%s' lacks '%s'", khsm_err_last_detail(), why);
	}
	khsm_policy_stats_t st;
	assert_int_equal(khsm_policy_stats(p, &st), KHSM_EINVAL);
	char *text = NULL;
	const char *zones[] = { "example.com." };
	khsm_render_t in = { zones, 1, "card", "pkcs11:token=t /m.so", "/k.conf", "/kasp", NULL, 0, NULL, NULL, NULL, 0, NULL };
	assert_int_equal(khsm_confgen_policy_main(p, &in, &text), KHSM_EINVAL);
	assert_null(text);
	khsm_policy_defaults(p, p->mode);
}

static void test_refusals(void **state)
{
	(void)state;
	khsm_policy_t p;
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_policy_check(&p), KHSM_EOK);
	expect_refused(&p, "rrsig-refresh", "21d", "is not below rrsig-lifetime=21d");
	expect_refused(&p, "rrsig-refresh", "1d", "is not above the longest TTL (1d)");
	expect_refused(&p, "zsk-lifetime", "2d", "is not above 50h, the time a ZSK rollover needs");
	expect_refused(&p, "dnskey-ttl", "0", "must be above 0");
	expect_refused(&p, "rrsig-lifetime", "0", "must be above 0");
	/* zsk-lifetime 0: no automatic roll, accepted. */
	assert_int_equal(khsm_policy_set(&p, "zsk-lifetime", "0"), KHSM_EOK);
	assert_int_equal(khsm_policy_check(&p), KHSM_EOK);
}

static void test_stats(void **state)
{
	(void)state;
	khsm_policy_t p;
	khsm_policy_stats_t st;

	/* Offline defaults: ZSK cycle 30d + 25h, a DNSKEY signature every 11 days
	 * between rollover events: 58 sets in a year plus 12 ceremonies; a card
	 * outage of 90 - 31 + 21 = 80 days is survived. */
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(st.card_signatures_per_year, 58 + 12);
	assert_int_equal(st.outage_survived, 80 * 86400);
	assert_int_equal(st.rendered_propagation_delay, 25 * 3600);
	assert_true(st.outage_survived >= KHSM_OUTAGE_GOAL);

	/* Online defaults: 1h delay, 10 days survived (refresh). */
	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(st.outage_survived, 10 * 86400);
	assert_int_equal(st.rendered_propagation_delay, 3600);
	assert_int_equal(st.card_signatures_per_year, 61);
	assert_true(st.outage_survived >= KHSM_OUTAGE_GOAL);

	/* No ZSK roll: only refreshes, every 11 days: days 0, 11, ..., 363 -> 34. */
	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	p.zsk_lifetime = 0;
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(st.card_signatures_per_year, 34);

	/* Refresh gaps longer than a ZSK cycle: only the 3 events of each cycle
	 * are signed. lifetime 400d, refresh 10d: step 390d > year.
	 * zsk-lifetime 100d, delay 1h: cycles of 100d + 1h, events at 100d,
	 * 100d+1h, 100d+2h, 200d+1h, ... -> 1 + 3 * 3 = 10 before day 365. */
	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	p.rrsig_lifetime = 400 * 86400;
	p.zsk_lifetime = 100 * 86400;
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(st.card_signatures_per_year, 10);
	/* the busiest day: the three events of one cycle, an hour apart */
	assert_int_equal(st.card_signatures_peak_day, 3);

	/* Hourly refreshes: 24 in any day, 8760 in a year. */
	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	p.zsk_lifetime = 0;
	p.dnskey_ttl = p.zone_max_ttl = 600;
	p.rrsig_lifetime = 7200;
	p.rrsig_refresh = 3600;
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(st.card_signatures_per_year, 8760);
	assert_int_equal(st.card_signatures_peak_day, 24);

	/* A short ceremony horizon survives less: until 10d, weekly. */
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	p.until = 10 * 86400;
	p.interval = 7 * 86400;
	p.rrsig_lifetime = 4 * 86400;
	p.rrsig_refresh = 2 * 86400;
	p.zsk_lifetime = 0;
	assert_int_equal(khsm_policy_stats(&p, &st), KHSM_EOK);
	assert_int_equal(st.outage_survived, 7 * 86400);
	/* days 0, 2, ..., 364 -> 183 sets plus 53 ceremonies */
	assert_int_equal(st.card_signatures_per_year, 183 + 53);
	/* a ceremony signs the sets of days 0, 2, 4, 6 and 8: its busiest day */
	assert_int_equal(st.card_signatures_peak_day, 5);
}

/* knot.conf's policy back to the options: Knot's defaults where unset, and
 * offline the propagation delay knotd was given less the longest TTL. */
static void test_from_conf(void **state)
{
	(void)state;
	khsm_policy_t p;
	khsm_conf_policy_t cp = { .offline_ksk = true, .propagation_delay = "90000", .dnskey_ttl = "3600",
	                          .zone_max_ttl = "86400", .zsk_lifetime = "0" };
	khsm_policy_from_conf(&cp, &p);
	assert_int_equal(p.mode, KHSM_MODE_OFFLINE);
	assert_int_equal(p.propagation_delay, 3600);
	assert_int_equal(khsm_policy_propagation_delay(&p), 90000);
	assert_int_equal(p.zsk_lifetime, 0);
	assert_int_equal(p.rrsig_lifetime, 14 * 86400);
	assert_int_equal(p.rrsig_refresh, 14 * 86400 / 10);
	assert_int_equal(p.cds, KHSM_CDS_ROLLOVER);

	khsm_conf_policy_t online = { .rrsig_lifetime = "1209600", .rrsig_refresh = "604800",
	                              .propagation_delay = "7200", .algorithm = "ed25519",
	                              .cds_cdnskey_publish = "always" };
	khsm_policy_from_conf(&online, &p);
	assert_int_equal(p.mode, KHSM_MODE_ONLINE);
	assert_int_equal(p.propagation_delay, 7200);
	assert_int_equal(p.rrsig_refresh, 7 * 86400);
	assert_int_equal(p.zsk_lifetime, 30 * 86400);
	assert_int_equal(p.algorithm, 15);
	assert_int_equal(p.cds, KHSM_CDS_ALWAYS);
}

static void test_ksk_path(void **state)
{
	(void)state;
	char *path = NULL;
	assert_int_equal(khsm_policy_ksk_path("/etc/knot/knot-hsm.conf", &path), KHSM_EOK);
	assert_string_equal(path, "/etc/knot/knot-hsm-ksk.conf");
	free(path);
	assert_int_equal(khsm_policy_ksk_path("/etc/knot/hsm.inc", &path), KHSM_EOK);
	assert_string_equal(path, "/etc/knot/hsm.inc-ksk.conf");
	free(path);
	assert_int_equal(khsm_policy_ksk_path("/etc/knot.d/.conf", &path), KHSM_EOK);
	assert_string_equal(path, "/etc/knot.d/.conf-ksk.conf");
	free(path);
	path = NULL;
	assert_int_equal(khsm_policy_ksk_path("/etc/knot/", &path), KHSM_EINVAL);
	assert_null(path);
}

/* The KSK side next to knot.conf; one that is not there loads as none. */
static void test_ksk_side(void **state)
{
	(void)state;
	char *path = khsm_policy_ksk_side("/nonexistent-khsm/knot/knot.conf");
	assert_string_equal(path, "/nonexistent-khsm/knot/knot-hsm-ksk.conf");
	khsm_conf_t *kconf = (khsm_conf_t *)1;
	assert_int_equal(khsm_policy_ksk_side_load(path, &kconf), KHSM_EOK);
	assert_null(kconf);
	free(path);
	path = khsm_policy_ksk_side("knot.conf");
	assert_non_null(path);
	assert_true(strlen(path) > 18 && strcmp(path + strlen(path) - 18, "/knot-hsm-ksk.conf") == 0);
	free(path);
}

/* policy's file layout: the defaults next to knot.conf and the KASP, given
 * paths kept, and no two of the three files the same. */
static void test_plan_paths(void **state)
{
	(void)state;
	khsm_policy_paths_t p = { 0 };
	assert_int_equal(khsm_policy_plan_paths("/nonexistent-khsm/etc/knot.conf", "/nonexistent-khsm/var/keys",
	                                        NULL, NULL, NULL, &p), KHSM_EOK);
	assert_string_equal(p.main_path, "/nonexistent-khsm/etc/knot-hsm.conf");
	assert_string_equal(p.ksk_path, "/nonexistent-khsm/etc/knot-hsm-ksk.conf");
	assert_string_equal(p.ksk_db, "/nonexistent-khsm/var/knot-hsm-ksk");
	khsm_policy_paths_clear(&p);
	assert_int_equal(khsm_policy_plan_paths("/nonexistent-khsm/etc/knot.conf", "/nonexistent-khsm/var/keys",
	                                        "/nonexistent-khsm/inc/hsm.conf", "/nonexistent-khsm/k.conf",
	                                        "/nonexistent-khsm/kdb", &p), KHSM_EOK);
	assert_string_equal(p.main_path, "/nonexistent-khsm/inc/hsm.conf");
	assert_string_equal(p.ksk_path, "/nonexistent-khsm/k.conf");
	assert_string_equal(p.ksk_db, "/nonexistent-khsm/kdb");
	khsm_policy_paths_clear(&p);
	assert_int_equal(khsm_policy_plan_paths("/nonexistent-khsm/etc/knot.conf", "/nonexistent-khsm/var/keys",
	                                        "/nonexistent-khsm/etc/knot.conf", NULL, NULL, &p), KHSM_EEXIST);
	assert_string_equal(khsm_err_last_detail(),
	                    "the include, the KSK-side file and knot.conf must be three different files");
	assert_null(p.main_path);
	khsm_err_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration_parse),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_from_conf),
		cmocka_unit_test(test_ksk_path),
		cmocka_unit_test(test_ksk_side),
		cmocka_unit_test(test_plan_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
