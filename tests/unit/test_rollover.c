/* Tests of lib/rollover.c: where a double-DS KSK rollover stands, read from
 * the KASP timers of a zone's keys at each moment of its life, and the
 * refusals for key sets no rollover leaves. */
#include "test.h"

#include "error.h"
#include "rollover.h"

/* The old KSK signs since 1000; the new one is published at 2000, ready at
 * 3000, signs from 4000 (the old one retires then) and the old one leaves
 * the DNSKEY set at 5000. A ZSK and a public-only KSK are ignored. */
static khsm_kasp_key_t keys[4];

static void setup_keys(int64_t new_active, int64_t old_retire, int64_t old_remove)
{
	memset(keys, 0, sizeof(keys));
	keys[0] = (khsm_kasp_key_t) { .id = "aa", .tag = 1, .ksk = true, .algorithm = 13,
	                              .publish = 1000, .ready = 1000, .active = 1000,
	                              .retire = old_retire, .remove = old_remove };
	keys[1] = (khsm_kasp_key_t) { .id = "zz", .tag = 9, .zsk = true, .publish = 500,
	                              .active = 500 };
	keys[2] = (khsm_kasp_key_t) { .id = "bb", .tag = 2, .ksk = true, .algorithm = 13,
	                              .publish = 2000, .ready = 3000, .active = new_active };
	keys[3] = (khsm_kasp_key_t) { .id = "pp", .tag = 3, .ksk = true, .public_only = true,
	                              .publish = 100, .active = 100 };
}

static void test_plan_steps(void **state)
{
	(void)state;
	khsm_roll_t st;
	/* before: only the old KSK */
	setup_keys(0, 0, 0);
	assert_int_equal(khsm_rollover_plan(keys, 2, 1500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_IDLE);
	assert_string_equal(st.old_key->id, "aa");
	assert_null(st.new_key);
	/* published, not ready */
	assert_int_equal(khsm_rollover_plan(keys, 4, 2500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_PUBLISHED);
	assert_string_equal(st.new_key->id, "bb");
	assert_int_equal(st.since, 2000);
	assert_int_equal(st.at, 3000);
	/* ready: submit (also exactly at the timer) */
	assert_int_equal(khsm_rollover_plan(keys, 4, 3000, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_SUBMIT);
	assert_int_equal(st.since, 3000);
	/* the switch is set: the new one signs from 4000 */
	setup_keys(4000, 4000, 0);
	assert_int_equal(khsm_rollover_plan(keys, 4, 3500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_SWITCHING);
	assert_int_equal(st.at, 4000);
	assert_false(st.repair);
	assert_int_equal(khsm_rollover_plan(keys, 4, 4000, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_WITHDRAW);
	assert_string_equal(st.old_key->id, "aa");
	assert_string_equal(st.new_key->id, "bb");
	/* the old one leaves at 5000 */
	setup_keys(4000, 4000, 5000);
	assert_int_equal(khsm_rollover_plan(keys, 4, 4500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_REMOVING);
	assert_int_equal(st.at, 5000);
	assert_int_equal(khsm_rollover_plan(keys, 4, 5000, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_REMOVED);
	assert_string_equal(st.old_key->id, "aa");
	assert_string_equal(st.new_key->id, "bb");
	/* the old one deleted from KASP: idle again, the new one is the old */
	assert_int_equal(khsm_rollover_plan(&keys[1], 3, 6000, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_IDLE);
	assert_string_equal(st.old_key->id, "bb");
}

/* A run stopped between the two timers of the switch: the old key's
 * retire is missing; the plan says so, before and after the switch. */
static void test_plan_repair(void **state)
{
	(void)state;
	khsm_roll_t st;
	setup_keys(4000, 0, 0);
	assert_int_equal(khsm_rollover_plan(keys, 4, 3500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_SWITCHING);
	assert_true(st.repair);
	assert_int_equal(khsm_rollover_plan(keys, 4, 4500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_WITHDRAW);
	assert_true(st.repair);
	assert_string_equal(st.old_key->id, "aa");
}

/* Online (knotd with manual: off): the switch makes the old KSK
 * retire-active at the new one's active, with a retire far off (knotd would
 * drop a retired KSK from the DNSKEY set at once); no repair is due, and the
 * old one is withdrawn, removed and done as offline. */
static void test_plan_online(void **state)
{
	(void)state;
	khsm_roll_t st;
	setup_keys(4000, 4000 + 315360000, 0);
	keys[0].retire_active = 4000;
	assert_int_equal(khsm_rollover_plan(keys, 4, 4000, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_WITHDRAW);
	assert_false(st.repair);
	assert_string_equal(st.old_key->id, "aa");
	keys[0].retire = 5000;
	keys[0].remove = 5000;
	assert_int_equal(khsm_rollover_plan(keys, 4, 4500, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_REMOVING);
	assert_int_equal(khsm_rollover_plan(keys, 4, 5000, &st), KHSM_EOK);
	assert_int_equal(st.step, KHSM_ROLL_REMOVED);
	/* the new KSK alone, retire-active and not retired: not a signing KSK */
	keys[0].remove = 0;
	keys[0].retire = 0;
	assert_int_equal(khsm_rollover_plan(keys, 2, 4500, &st), KHSM_EINVAL);
}

static void test_roles(void **state)
{
	(void)state;
	setup_keys(0, 0, 0);
	assert_string_equal(khsm_rollover_role(keys, 2, 1500, "aa"), "active");
	assert_string_equal(khsm_rollover_role(keys, 4, 2500, "aa"), "outgoing");   /* from the start of the rollover */
	assert_string_equal(khsm_rollover_role(keys, 4, 2500, "bb"), "incoming");
	assert_null(khsm_rollover_role(keys, 4, 2500, "zz"));   /* a ZSK */
	assert_null(khsm_rollover_role(keys, 4, 2500, "pp"));   /* public only */
	setup_keys(4000, 4000, 5000);
	assert_string_equal(khsm_rollover_role(keys, 4, 4500, "aa"), "outgoing");
	assert_string_equal(khsm_rollover_role(keys, 4, 4500, "bb"), "active");
	assert_string_equal(khsm_rollover_role(keys, 4, 5000, "aa"), "removed");
}

/* Every key gets a role: a KSK's rollover role, else the words from its own
 * timers (a ZSK, a public-only KSK, a KSK in no plannable state). */
static void test_key_roles(void **state)
{
	(void)state;
	setup_keys(0, 0, 0);
	assert_string_equal(khsm_rollover_key_role(keys, 4, 2500, "aa"), "outgoing");
	assert_string_equal(khsm_rollover_key_role(keys, 4, 2500, "bb"), "incoming");
	assert_string_equal(khsm_rollover_key_role(keys, 4, 2500, "zz"), "active");
	assert_string_equal(khsm_rollover_key_role(keys, 4, 2500, "pp"), "active");
	assert_null(khsm_rollover_key_role(keys, 4, 2500, "nope"));
	/* a ZSK through its life: pre-published, signing, retired, removed */
	keys[1].publish = 1000;
	keys[1].active = 2000;
	keys[1].retire = 3000;
	keys[1].remove = 4000;
	assert_string_equal(khsm_rollover_key_role(keys, 2, 500, "zz"), "incoming");
	assert_string_equal(khsm_rollover_key_role(keys, 2, 1500, "zz"), "incoming");
	assert_string_equal(khsm_rollover_key_role(keys, 2, 2500, "zz"), "active");
	assert_string_equal(khsm_rollover_key_role(keys, 2, 3500, "zz"), "outgoing");
	assert_string_equal(khsm_rollover_key_role(keys, 2, 4500, "zz"), "removed");
	/* no plannable rollover (two KSKs active at once): from the timers */
	setup_keys(4000, 0, 0);
	keys[2].ready = 4000;
	assert_null(khsm_rollover_role(keys, 4, 4500, "aa"));
	assert_string_equal(khsm_rollover_key_role(keys, 4, 4500, "aa"), "active");
	/* the index form: a key listed twice for a zone counts once */
	khsm_kasp_entry_t items[] = {
		{ .zone = "a.", .key = keys[0] }, { .zone = "a.", .key = keys[1] },
		{ .zone = "a.", .key = keys[1] }, { .zone = "b.", .key = keys[2] },
	};
	khsm_kasp_index_t idx = { .items = items, .count = 4 };
	assert_string_equal(khsm_rollover_key_role_in(&idx, "a.", "zz", 4500), "active");
	assert_string_equal(khsm_rollover_key_role_in(&idx, "a.", "aa", 4500), "active");
	assert_null(khsm_rollover_key_role_in(&idx, "a.", "bb", 4500));   /* b.'s key */
	assert_null(khsm_rollover_key_role_in(NULL, "a.", "zz", 4500));
}

static void test_plan_refusals(void **state)
{
	(void)state;
	khsm_roll_t st = { 0 };
	/* no KSK at all */
	setup_keys(0, 0, 0);
	assert_int_equal(khsm_rollover_plan(&keys[1], 1, 1500, &st), KHSM_EINVAL);
	/* a third live KSK */
	khsm_kasp_key_t three[3];
	setup_keys(0, 0, 0);
	three[0] = keys[0];
	three[1] = keys[2];
	three[2] = keys[2];
	memcpy(three[2].id, "cc", 3);
	assert_int_equal(khsm_rollover_plan(three, 3, 2500, &st), KHSM_EINVAL);
	/* the only KSK retires */
	setup_keys(0, 4000, 0);
	assert_int_equal(khsm_rollover_plan(keys, 2, 1500, &st), KHSM_EINVAL);
	/* old retires while the new one has no active timer */
	assert_int_equal(khsm_rollover_plan(keys, 4, 2500, &st), KHSM_EINVAL);
	/* two KSKs made active at once (ready not before active): no rollover */
	setup_keys(4000, 0, 0);
	keys[2].ready = 4000;
	assert_int_equal(khsm_rollover_plan(keys, 4, 4500, &st), KHSM_EINVAL);
	assert_null(khsm_rollover_role(keys, 4, 4500, "aa"));
	/* neither signs */
	setup_keys(0, 0, 0);
	assert_int_equal(khsm_rollover_plan(keys, 4, 900, &st), KHSM_EINVAL);
	assert_int_equal(khsm_rollover_plan(NULL, 1, 0, &st), KHSM_EINVAL);
}

static void test_when(void **state)
{
	(void)state;
	khsm_roll_delays_t d = { .signed_until = 5000 };
	assert_int_equal(khsm_rollover_when(&d, 4000), 5000);
	assert_int_equal(khsm_rollover_when(&d, 6000), 6000);
	d.signed_until = 0;
	assert_int_equal(khsm_rollover_when(&d, 4000), 4000);
	assert_string_equal(khsm_rollover_step_name(KHSM_ROLL_SUBMIT), "submit");
	assert_string_equal(khsm_rollover_step_name(KHSM_ROLL_REMOVED), "removed");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plan_steps),
		cmocka_unit_test(test_plan_repair),
		cmocka_unit_test(test_plan_online),
		cmocka_unit_test(test_plan_refusals),
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_key_roles),
		cmocka_unit_test(test_when),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
