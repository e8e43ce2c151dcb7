/* Unit tests of lib/submitted.c's decision, without the network: which KSK's
 * DS is wanted, published on every server or on some only, and which servers
 * lag behind. */
#include "test.h"

#include "lib/error.h"
#include "lib/submitted.h"

/* servers[s] has ds_count[s] DS records, DS d for KSK ksk_of[s][d] (-1: none);
 * a server with ds_count -1 did not answer. */
typedef struct {
	khsm_submitted_t res;
	khsm_submitted_server_t servers[3];
	khsm_submitted_ksk_t ksks[3];
	khsm_ds_t ds[3][3];
	int ds_ksk[3][3];
} fixture_t;

static void setup(fixture_t *f, size_t nsrv, const int *ds_count, int ksk_of[][3],
                  size_t nksk, const khsm_key_state_t *state)
{
	memset(f, 0, sizeof(*f));
	f->res.servers = f->servers;
	f->res.server_count = nsrv;
	f->res.ksks = f->ksks;
	f->res.ksk_count = nksk;
	for (size_t s = 0; s < nsrv; s++) {
		f->servers[s].error = ds_count[s] < 0 ? KHSM_ETOOL : KHSM_EOK;
		f->servers[s].ds_count = ds_count[s] < 0 ? 0 : (size_t)ds_count[s];
		f->servers[s].ds = f->ds[s];
		f->servers[s].ds_ksk = f->ds_ksk[s];
		for (int d = 0; d < ds_count[s]; d++) {
			f->ds_ksk[s][d] = ksk_of[s][d];
		}
	}
	for (size_t k = 0; k < nksk; k++) {
		f->ksks[k].state = state[k];
	}
}

static void test_ready_published_everywhere(void **state)
{
	(void)state;
	fixture_t f;
	int counts[] = { 1, 2 };
	int of[3][3] = { { 0 }, { -1, 0 } };
	khsm_key_state_t st[] = { KHSM_KEY_STATE_READY };
	setup(&f, 2, counts, of, 1, st);
	khsm_submitted_decide(&f.res);
	assert_int_equal(f.res.verdict, KHSM_SUBMITTED_SUBMITTED);
	assert_true(f.res.ready_any);
	assert_int_equal(f.res.answered, 2);
	assert_true(f.ksks[0].wanted);
	assert_true(f.ksks[0].published);
	assert_int_equal(f.ksks[0].servers_with, 2);
	assert_ptr_equal(f.ksks[0].ds, &f.ds[0][0]);   /* the first DS for it */
	assert_false(f.servers[0].lagging);
	assert_false(f.servers[1].lagging);
	assert_string_equal(khsm_submitted_verdict_name(f.res.verdict), "submitted");
}

static void test_ready_wants_its_own_ds(void **state)
{
	(void)state;
	/* The active KSK's DS is published, but a ready KSK waits: only its DS will do. */
	fixture_t f;
	int counts[] = { 1 };
	int of[3][3] = { { 1 } };
	khsm_key_state_t st[] = { KHSM_KEY_STATE_READY, KHSM_KEY_STATE_ACTIVE };
	setup(&f, 1, counts, of, 2, st);
	khsm_submitted_decide(&f.res);
	assert_int_equal(f.res.verdict, KHSM_SUBMITTED_NONE);
	assert_true(f.ksks[0].wanted);
	assert_false(f.ksks[1].wanted);
	assert_true(f.ksks[1].published);
	assert_false(f.ksks[0].published);
}

static void test_active_current_and_retired_not(void **state)
{
	(void)state;
	fixture_t f;
	int counts[] = { 1 };
	int of[3][3] = { { 0 } };
	khsm_key_state_t st[] = { KHSM_KEY_STATE_ACTIVE };
	setup(&f, 1, counts, of, 1, st);
	khsm_submitted_decide(&f.res);
	assert_int_equal(f.res.verdict, KHSM_SUBMITTED_CURRENT);
	assert_false(f.res.ready_any);
	/* A retired KSK's DS does not keep the zone valid. */
	khsm_key_state_t st2[] = { KHSM_KEY_STATE_RETIRED, KHSM_KEY_STATE_ACTIVE };
	setup(&f, 1, counts, of, 2, st2);
	khsm_submitted_decide(&f.res);
	assert_int_equal(f.res.verdict, KHSM_SUBMITTED_NONE);
	assert_true(f.ksks[1].wanted);
	assert_false(f.ksks[0].wanted);
}

static void test_partial_names_lagging(void **state)
{
	(void)state;
	/* Server 0 has it, server 1 has a foreign DS, server 2 did not answer. */
	fixture_t f;
	int counts[] = { 1, 1, -1 };
	int of[3][3] = { { 0 }, { -1 } };
	khsm_key_state_t st[] = { KHSM_KEY_STATE_ACTIVE };
	setup(&f, 3, counts, of, 1, st);
	khsm_submitted_decide(&f.res);
	assert_int_equal(f.res.verdict, KHSM_SUBMITTED_PARTIAL);
	assert_int_equal(f.res.answered, 2);
	assert_int_equal(f.ksks[0].servers_with, 1);
	assert_false(f.ksks[0].published);
	assert_false(f.servers[0].lagging);
	assert_true(f.servers[1].lagging);
	assert_true(f.servers[2].lagging);
	assert_string_equal(khsm_submitted_verdict_name(f.res.verdict), "partial");
}

static void test_unanswered(void **state)
{
	(void)state;
	fixture_t f;
	int counts[] = { -1, -1 };
	int of[3][3] = { { 0 } };
	khsm_key_state_t st[] = { KHSM_KEY_STATE_READY };
	setup(&f, 2, counts, of, 1, st);
	khsm_submitted_decide(&f.res);
	assert_int_equal(f.res.verdict, KHSM_SUBMITTED_UNANSWERED);
	assert_int_equal(f.res.answered, 0);
	assert_false(f.servers[0].lagging);
}

static void test_free_null(void **state)
{
	(void)state;
	khsm_submitted_free(NULL);
	assert_string_equal(khsm_submitted_verdict_name(KHSM_SUBMITTED_NONE), "none");
	assert_string_equal(khsm_submitted_verdict_name(KHSM_SUBMITTED_CURRENT), "current");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ready_published_everywhere),
		cmocka_unit_test(test_ready_wants_its_own_ds),
		cmocka_unit_test(test_active_current_and_retired_not),
		cmocka_unit_test(test_partial_names_lagging),
		cmocka_unit_test(test_unanswered),
		cmocka_unit_test(test_free_null),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
