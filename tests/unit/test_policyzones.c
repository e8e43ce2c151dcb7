/* Unit tests of lib/policyzones.c: the zones of knot-hsm's written policy
 * files (marker required, both files' forms, recorded removals) and the plan
 * of a new run: kept, added, removed, and every refusal with its detail. */
#include "test.h"

#include "lib/error.h"
#include "lib/policy.h"
#include "lib/policyzones.h"

static void list_of(khsm_zonelist_t *l, const char *const *names)
{
	for (size_t i = 0; names[i]; i++) {
		assert_int_equal(khsm_zonelist_add(l, names[i]), KHSM_EOK);
	}
}

static void assert_list(const khsm_zonelist_t *l, const char *want)
{
	char got[512] = "";
	for (size_t i = 0; i < l->count; i++) {
		strcat(got, i ? " " : "");
		strcat(got, l->names[i]);
	}
	assert_string_equal(got, want);
}

static void test_read(void **state)
{
	(void)state;
	khsm_zonelist_t zones = { 0 }, removed = { 0 };
	const char include[] = KHSM_POLICY_MARKER "\n"
		"# knot-hsm offline mode, ZSK side (knotd).\n"
		"# zones: example.com. Example.NET\n"
		"# knot-hsm: removed: example.org.\n"
		"keystore:\n";
	const char ksk[] = KHSM_POLICY_MARKER "\n"
		"zone:\n"
		"  - domain: example.com.\n"
		"    dnssec-policy: knot-hsm-ksk\n"
		"  - domain: example.info.\n";
	assert_int_equal(khsm_policyzones_read(include, &zones, &removed), KHSM_EOK);
	assert_int_equal(khsm_policyzones_read(ksk, &zones, &removed), KHSM_EOK);
	assert_list(&zones, "example.com. example.net. example.info.");
	assert_list(&removed, "example.org.");
	/* A file without the marker is the operator's: it lists nothing. */
	khsm_zonelist_t none = { 0 }, none_removed = { 0 };
	assert_int_equal(khsm_policyzones_read("# zones: example.com.\n", &none, &none_removed), KHSM_EOK);
	assert_int_equal(none.count, 0);
	assert_int_equal(khsm_policyzones_read(KHSM_POLICY_MARKER "x\n# zones: a.\n", &none,
	                                       &none_removed), KHSM_EOK);
	assert_int_equal(none.count, 0);
	khsm_zonelist_clear(&zones);
	khsm_zonelist_clear(&removed);
	assert_int_equal(zones.count, 0);
}

static void test_plan(void **state)
{
	(void)state;
	khsm_zonelist_t listed = { 0 }, was_removed = { 0 }, kasp = { 0 };
	list_of(&listed, (const char *[]){ "a.", "b.", NULL });
	list_of(&kasp, (const char *[]){ "a.", "b.", NULL });
	khsm_policyzones_plan_t plan;

	/* A new zone: the others are kept. */
	const char *c[] = { "c." };
	assert_int_equal(khsm_policyzones_plan(&listed, &was_removed, &kasp, c, 1, false, &plan), KHSM_EOK);
	assert_list(&plan.zones, "a. b. c.");
	assert_list(&plan.kept, "a. b.");
	assert_list(&plan.added, "c.");
	assert_int_equal(plan.removed.count, 0);
	khsm_policyzones_plan_clear(&plan);

	/* A zone already listed is not added again. */
	const char *a[] = { "a." };
	assert_int_equal(khsm_policyzones_plan(&listed, &was_removed, &kasp, a, 1, false, &plan), KHSM_EOK);
	assert_list(&plan.zones, "a. b.");
	assert_int_equal(plan.added.count, 0);
	khsm_policyzones_plan_clear(&plan);

	/* remove=yes: only the named zone leaves, and is recorded. */
	assert_int_equal(khsm_policyzones_plan(&listed, &was_removed, &kasp, a, 1, true, &plan), KHSM_EOK);
	assert_list(&plan.zones, "b.");
	assert_list(&plan.removed, "a.");
	assert_list(&plan.removed_now, "a.");
	khsm_policyzones_plan_clear(&plan);

	/* A recorded removal stays recorded, and its KSK does not count as dropped. */
	khsm_zonelist_t only_b = { 0 }, rem_a = { 0 };
	list_of(&only_b, (const char *[]){ "b.", NULL });
	list_of(&rem_a, (const char *[]){ "a.", NULL });
	assert_int_equal(khsm_policyzones_plan(&only_b, &rem_a, &kasp, c, 1, false, &plan), KHSM_EOK);
	assert_list(&plan.zones, "b. c.");
	assert_list(&plan.removed, "a.");
	assert_int_equal(plan.removed_now.count, 0);
	khsm_policyzones_plan_clear(&plan);
	/* ... until it comes back. */
	assert_int_equal(khsm_policyzones_plan(&only_b, &rem_a, &kasp, a, 1, false, &plan), KHSM_EOK);
	assert_list(&plan.zones, "b. a.");
	assert_int_equal(plan.removed.count, 0);
	khsm_policyzones_plan_clear(&plan);

	/* Refusals. */
	khsm_zonelist_t empty = { 0 };
	khsm_err_clear();
	assert_int_equal(khsm_policyzones_plan(&empty, &empty, &kasp, c, 1, false, &plan), KHSM_ECONFIG);
	assert_non_null(strstr(khsm_err_last_detail(), "would drop a., b. from the KSK side"));
	assert_non_null(strstr(khsm_err_last_detail(), "remove=yes"));
	khsm_err_clear();
	assert_int_equal(khsm_policyzones_plan(&listed, &was_removed, &kasp, c, 1, true, &plan), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "zone c. is not in the files"));
	const char *ab[] = { "a.", "b." };
	khsm_err_clear();
	assert_int_equal(khsm_policyzones_plan(&listed, &was_removed, NULL, ab, 2, true, &plan), KHSM_EINVAL);
	assert_non_null(strstr(khsm_err_last_detail(), "no zone would be left"));
	/* A zone only in KASP can be removed by name. */
	assert_int_equal(khsm_policyzones_plan(&only_b, &empty, &kasp, a, 1, true, &plan), KHSM_EOK);
	assert_list(&plan.zones, "b.");
	assert_list(&plan.removed, "a.");
	khsm_policyzones_plan_clear(&plan);

	khsm_zonelist_clear(&listed);
	khsm_zonelist_clear(&kasp);
	khsm_zonelist_clear(&only_b);
	khsm_zonelist_clear(&rem_a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_plan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
