/* Unit tests of lib/parallel.c: every index once, the calls side by side. */
#include "test.h"

#include <pthread.h>
#include <stdbool.h>

#include "lib/parallel.h"

typedef struct {
	pthread_mutex_t mu;
	unsigned calls[200];
	unsigned inside, most_inside;
	pthread_barrier_t two;      /* the first two calls wait for each other */
	bool use_barrier;
} count_t;

static void count_one(void *ctx, size_t i)
{
	count_t *c = ctx;
	pthread_mutex_lock(&c->mu);
	c->calls[i]++;
	c->inside++;
	if (c->inside > c->most_inside) c->most_inside = c->inside;
	pthread_mutex_unlock(&c->mu);
	/* Serial calls would never pass this: the test hangs, meson fails it. */
	if (c->use_barrier && i < 2) pthread_barrier_wait(&c->two);
	pthread_mutex_lock(&c->mu);
	c->inside--;
	pthread_mutex_unlock(&c->mu);
}

static void test_each_once(void **state)
{
	(void)state;
	static count_t c = { .mu = PTHREAD_MUTEX_INITIALIZER };
	khsm_parallel_for(200, 3, count_one, &c);
	for (size_t i = 0; i < 200; i++) assert_int_equal(c.calls[i], 1);
	assert_true(c.most_inside <= 3);
	/* nothing to do: fn is never called */
	memset(c.calls, 0, sizeof(c.calls));
	khsm_parallel_for(0, 3, count_one, &c);
	khsm_parallel_for(5, 3, NULL, &c);
	for (size_t i = 0; i < 200; i++) assert_int_equal(c.calls[i], 0);
}

static void test_side_by_side(void **state)
{
	(void)state;
	static count_t c = { .mu = PTHREAD_MUTEX_INITIALIZER, .use_barrier = true };
	assert_int_equal(pthread_barrier_init(&c.two, NULL, 2), 0);
	/* workers 0: one per CPU, never fewer than two */
	khsm_parallel_for(10, 0, count_one, &c);
	assert_true(c.most_inside >= 2);
	for (size_t i = 0; i < 10; i++) assert_int_equal(c.calls[i], 1);
	pthread_barrier_destroy(&c.two);
}

static void test_one_worker(void **state)
{
	(void)state;
	static count_t c = { .mu = PTHREAD_MUTEX_INITIALIZER };
	khsm_parallel_for(20, 1, count_one, &c);
	assert_int_equal(c.most_inside, 1);
	for (size_t i = 0; i < 20; i++) assert_int_equal(c.calls[i], 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_once),
		cmocka_unit_test(test_side_by_side),
		cmocka_unit_test(test_one_worker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
