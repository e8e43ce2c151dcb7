/* Tests of lib/kasp.c: key states from KASP timers at, before and after each
 * timer, and the lookups of the KASP index. */
#include "test.h"

#include "error.h"
#include "kasp.h"

/* Every timer set, in the order of a key's life. */
static const khsm_kasp_key_t LIFE = {
	.id = "d27d623dcaa081e9258785366b011cf506bdcff6", .tag = 7423, .ksk = true,
	.pre_active = 1000, .publish = 2000, .ready = 3000, .active = 4000,
	.retire_active = 5000, .post_active = 6000, .retire = 7000, .revoke = 8000,
	.remove = 9000,
};

static void test_state_life(void **state)
{
	(void)state;
	const struct {
		int64_t at;
		khsm_key_state_t before, from;
	} steps[] = {
		{ LIFE.pre_active, KHSM_KEY_STATE_NONE, KHSM_KEY_STATE_PRE_ACTIVE },
		{ LIFE.publish, KHSM_KEY_STATE_PRE_ACTIVE, KHSM_KEY_STATE_PUBLISHED },
		{ LIFE.ready, KHSM_KEY_STATE_PUBLISHED, KHSM_KEY_STATE_READY },
		{ LIFE.active, KHSM_KEY_STATE_READY, KHSM_KEY_STATE_ACTIVE },
		{ LIFE.retire_active, KHSM_KEY_STATE_ACTIVE, KHSM_KEY_STATE_RETIRE_ACTIVE },
		{ LIFE.post_active, KHSM_KEY_STATE_RETIRE_ACTIVE, KHSM_KEY_STATE_POST_ACTIVE },
		{ LIFE.retire, KHSM_KEY_STATE_POST_ACTIVE, KHSM_KEY_STATE_RETIRED },
		{ LIFE.revoke, KHSM_KEY_STATE_RETIRED, KHSM_KEY_STATE_REVOKED },
		{ LIFE.remove, KHSM_KEY_STATE_REVOKED, KHSM_KEY_STATE_REMOVED },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		/* before the timer, at it (reached), and after it */
		assert_int_equal(khsm_kasp_key_state(&LIFE, steps[i].at - 1), steps[i].before);
		assert_int_equal(khsm_kasp_key_state(&LIFE, steps[i].at), steps[i].from);
		assert_int_equal(khsm_kasp_key_state(&LIFE, steps[i].at + 1), steps[i].from);
	}
	assert_int_equal(khsm_kasp_key_state(&LIFE, 0), KHSM_KEY_STATE_NONE);
	assert_int_equal(khsm_kasp_key_state(&LIFE, INT64_MAX), KHSM_KEY_STATE_REMOVED);
}

/* An unset timer (0) is never reached: keys made by keymgr leave most unset. */
static void test_state_unset(void **state)
{
	(void)state;
	khsm_kasp_key_t none = { .ksk = true };
	assert_int_equal(khsm_kasp_key_state(&none, 0), KHSM_KEY_STATE_NONE);
	assert_int_equal(khsm_kasp_key_state(&none, INT64_MAX), KHSM_KEY_STATE_NONE);

	/* a ZSK as keymgr 3.2.6 lists it: publish and active at once, no ready */
	khsm_kasp_key_t zsk = { .zsk = true, .publish = 100, .active = 100 };
	assert_int_equal(khsm_kasp_key_state(&zsk, 99), KHSM_KEY_STATE_NONE);
	assert_int_equal(khsm_kasp_key_state(&zsk, 100), KHSM_KEY_STATE_ACTIVE);
	assert_int_equal(khsm_kasp_key_state(&zsk, 101), KHSM_KEY_STATE_ACTIVE);

	/* a new KSK waiting for its DS: ready reached, active not set yet */
	khsm_kasp_key_t ksk = { .ksk = true, .publish = 100, .ready = 200 };
	assert_int_equal(khsm_kasp_key_state(&ksk, 150), KHSM_KEY_STATE_PUBLISHED);
	assert_int_equal(khsm_kasp_key_state(&ksk, 200), KHSM_KEY_STATE_READY);
	assert_int_equal(khsm_kasp_key_state(&ksk, INT64_MAX), KHSM_KEY_STATE_READY);

	/* zone-ksk-submitted sets active: the key leaves ready */
	ksk.active = 300;
	assert_int_equal(khsm_kasp_key_state(&ksk, 299), KHSM_KEY_STATE_READY);
	assert_int_equal(khsm_kasp_key_state(&ksk, 300), KHSM_KEY_STATE_ACTIVE);

	assert_int_equal(khsm_kasp_key_state(NULL, 100), KHSM_KEY_STATE_NONE);
}

/* A withdrawal timer wins over the introduction ones, whatever their order. */
static void test_state_precedence(void **state)
{
	(void)state;
	/* keymgr 3.2.6: an RSA ZSK with retire and post-active at the same time */
	khsm_kasp_key_t zsk = { .zsk = true, .publish = 100, .active = 100, .retire = 200,
	                        .post_active = 200, .remove = 300 };
	assert_int_equal(khsm_kasp_key_state(&zsk, 199), KHSM_KEY_STATE_ACTIVE);
	assert_int_equal(khsm_kasp_key_state(&zsk, 200), KHSM_KEY_STATE_RETIRED);
	assert_int_equal(khsm_kasp_key_state(&zsk, 300), KHSM_KEY_STATE_REMOVED);

	/* removed though never active */
	khsm_kasp_key_t gone = { .ksk = true, .publish = 100, .ready = 100, .remove = 150 };
	assert_int_equal(khsm_kasp_key_state(&gone, 149), KHSM_KEY_STATE_READY);
	assert_int_equal(khsm_kasp_key_state(&gone, 150), KHSM_KEY_STATE_REMOVED);

	/* retire-active ends the active state although active is still reached */
	khsm_kasp_key_t roll = { .ksk = true, .publish = 1, .ready = 1, .active = 1, .retire_active = 50 };
	assert_int_equal(khsm_kasp_key_state(&roll, 49), KHSM_KEY_STATE_ACTIVE);
	assert_int_equal(khsm_kasp_key_state(&roll, 50), KHSM_KEY_STATE_RETIRE_ACTIVE);

	assert_true(khsm_kasp_reached(5, 5));
	assert_true(khsm_kasp_reached(5, 6));
	assert_false(khsm_kasp_reached(5, 4));
	assert_false(khsm_kasp_reached(0, INT64_MAX));
}

/* The index: find by zone and id, iterate over the zones of one id, merge. */
/* The names keymgr's timers give the states; NULL for a value off the enum. */
static void test_state_name(void **state)
{
	(void)state;
	assert_string_equal(khsm_kasp_key_state_name(KHSM_KEY_STATE_NONE), "none");
	assert_string_equal(khsm_kasp_key_state_name(KHSM_KEY_STATE_PUBLISHED), "published");
	assert_string_equal(khsm_kasp_key_state_name(KHSM_KEY_STATE_READY), "ready");
	assert_string_equal(khsm_kasp_key_state_name(KHSM_KEY_STATE_RETIRE_ACTIVE), "retire-active");
	assert_string_equal(khsm_kasp_key_state_name(KHSM_KEY_STATE_REMOVED), "removed");
	assert_null(khsm_kasp_key_state_name((khsm_key_state_t)(KHSM_KEY_STATE_REMOVED + 1)));
}

static void test_index(void **state)
{
	(void)state;
	khsm_kasp_index_t a = { 0 }, b = { 0 };
	a.items = calloc(2, sizeof(*a.items));
	b.items = calloc(1, sizeof(*b.items));
	assert_non_null(a.items);
	assert_non_null(b.items);
	a.items[0].zone = strdup("example.com.");
	snprintf(a.items[0].key.id, sizeof(a.items[0].key.id), "aa");
	a.items[1].zone = strdup("example.net.");
	snprintf(a.items[1].key.id, sizeof(a.items[1].key.id), "bb");
	a.count = 2;
	b.items[0].zone = strdup("example.org.");
	snprintf(b.items[0].key.id, sizeof(b.items[0].key.id), "aa");
	b.count = 1;

	assert_int_equal(khsm_kasp_index_merge(&a, &b), KHSM_EOK);
	assert_int_equal(a.count, 3);
	assert_int_equal(b.count, 0);
	assert_null(b.items);

	size_t pos = 0;
	const khsm_kasp_entry_t *e = khsm_kasp_next(&a, "aa", &pos);
	assert_non_null(e);
	assert_string_equal(e->zone, "example.com.");
	e = khsm_kasp_next(&a, "aa", &pos);
	assert_non_null(e);
	assert_string_equal(e->zone, "example.org.");
	assert_null(khsm_kasp_next(&a, "aa", &pos));

	e = khsm_kasp_find(&a, "example.net.", "bb");
	assert_non_null(e);
	assert_string_equal(e->key.id, "bb");
	assert_null(khsm_kasp_find(&a, "example.com.", "bb"));
	assert_null(khsm_kasp_find(&a, "example.com.", "cc"));

	assert_int_equal(khsm_kasp_index_merge(NULL, &b), KHSM_EINVAL);
	khsm_kasp_index_clear(&a);
	assert_int_equal(a.count, 0);
	assert_null(a.items);
	khsm_kasp_index_clear(&b);
}

/* The summary status prints: DS waiting, the first KSK, the next ZSK timer. */
/* Merging the same KASP twice (knot.conf is the KSK side itself): a zone's
 * key is listed once; the dropped entries' strings are freed (ASan). */
static void test_index_merge_same(void **state)
{
	(void)state;
	khsm_kasp_index_t a = { 0 }, b = { 0 };
	a.items = calloc(1, sizeof(*a.items));
	b.items = calloc(2, sizeof(*b.items));
	assert_non_null(a.items);
	assert_non_null(b.items);
	a.items[0].zone = strdup("a.example.");
	snprintf(a.items[0].key.id, sizeof(a.items[0].key.id), "aa");
	a.count = 1;
	b.items[0].zone = strdup("a.example.");
	snprintf(b.items[0].key.id, sizeof(b.items[0].key.id), "aa");
	b.items[1].zone = strdup("b.example.");
	snprintf(b.items[1].key.id, sizeof(b.items[1].key.id), "aa");
	b.count = 2;

	assert_int_equal(khsm_kasp_index_merge(&a, &b), KHSM_EOK);
	assert_int_equal(a.count, 2);
	assert_int_equal(b.count, 0);
	size_t pos = 0;
	const khsm_kasp_entry_t *e = khsm_kasp_next(&a, "aa", &pos);
	assert_non_null(e);
	assert_string_equal(e->zone, "a.example.");
	e = khsm_kasp_next(&a, "aa", &pos);
	assert_non_null(e);
	assert_string_equal(e->zone, "b.example.");
	assert_null(khsm_kasp_next(&a, "aa", &pos));
	khsm_kasp_index_clear(&a);
}

static void test_summarize(void **state)
{
	(void)state;
	const khsm_kasp_key_t keys[] = {
		{ .id = "pub", .ksk = true, .public_only = true, .publish = 10 },
		{ .id = "ksk1", .ksk = true, .publish = 10, .ready = 20 },
		{ .id = "zsk1", .tag = 1, .zsk = true, .publish = 10, .active = 10, .retire = 500, .remove = 900 },
		{ .id = "zsk2", .tag = 2, .zsk = true, .publish = 300, .active = 600 },
		{ .id = "csk", .tag = 3, .ksk = true, .zsk = true, .publish = 10, .active = 100 },
	};
	khsm_kasp_summary_t s;
	khsm_kasp_summarize(keys, 5, 50, &s);
	assert_true(s.ksk_waiting);
	assert_true(s.has_ksk);
	assert_string_equal(s.ksk_id, "ksk1");
	assert_string_equal(s.last_ksk_id, "csk");
	assert_int_equal(s.next_zsk_at, 300);
	assert_int_equal(s.next_zsk_tag, 2);
	assert_string_equal(s.next_zsk_timer, "publish");

	/* the CSK's timer (100) is no ZSK event; the KSK is still ready */
	khsm_kasp_summarize(keys, 5, 300, &s);
	assert_true(s.ksk_waiting);
	assert_int_equal(s.next_zsk_at, 500);
	assert_int_equal(s.next_zsk_tag, 1);
	assert_string_equal(s.next_zsk_timer, "retire");

	khsm_kasp_summarize(keys, 5, 900, &s);
	assert_int_equal(s.next_zsk_at, 0);

	/* only the public-only KSK: no KSK to look for on the card */
	khsm_kasp_summarize(keys, 1, 50, &s);
	assert_false(s.has_ksk);
	assert_false(s.ksk_waiting);
	khsm_kasp_summarize(NULL, 0, 50, &s);
	assert_false(s.has_ksk);
}

/* The summary of one zone's entries in an index of several zones: the same
 * as of its keys alone, the other zones' keys left out. */
static void test_index_summarize(void **state)
{
	(void)state;
	khsm_kasp_entry_t items[] = {
		{ .zone = "a.example.", .key = { .id = "ka1", .ksk = true, .publish = 10 } },
		{ .zone = "b.example.", .key = { .id = "kb", .ksk = true, .publish = 10, .ready = 20 } },
		{ .zone = "a.example.", .key = { .id = "za", .tag = 7, .zsk = true, .publish = 10, .active = 10,
		                                 .retire = 500 } },
		{ .zone = "a.example.", .key = { .id = "ka2", .ksk = true, .publish = 400 } },
	};
	khsm_kasp_index_t idx = { .items = items, .count = 4 };
	khsm_kasp_summary_t s;
	khsm_kasp_index_summarize(&idx, "a.example.", 50, &s);
	assert_true(s.has_ksk);
	assert_false(s.ksk_waiting);   /* b's ready KSK is not a's */
	assert_string_equal(s.ksk_id, "ka1");
	assert_string_equal(s.last_ksk_id, "ka2");
	assert_int_equal(s.next_zsk_at, 500);
	assert_int_equal(s.next_zsk_tag, 7);

	khsm_kasp_index_summarize(&idx, "b.example.", 50, &s);
	assert_true(s.ksk_waiting);
	assert_string_equal(s.last_ksk_id, "kb");
	assert_int_equal(s.next_zsk_at, 0);

	/* a zone without keys (a fresh one at onboarding): no KSK */
	khsm_kasp_index_summarize(&idx, "c.example.", 50, &s);
	assert_false(s.has_ksk);
	khsm_kasp_index_summarize(NULL, "a.example.", 50, &s);
	assert_false(s.has_ksk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_life),
		cmocka_unit_test(test_state_unset),
		cmocka_unit_test(test_state_precedence),
		cmocka_unit_test(test_state_name),
		cmocka_unit_test(test_index),
		cmocka_unit_test(test_index_merge_same),
		cmocka_unit_test(test_summarize),
		cmocka_unit_test(test_index_summarize),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
