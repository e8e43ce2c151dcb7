/* Unit tests of lib/zonelock.c: a zone locked by one holder is refused to
 * another (without waiting when told so), released on release, and a
 * symlinked lock directory is refused. */
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/zonelock.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/khsm-zonelock-test.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static unsigned notified;
static void notify(const char *zone, pid_t holder, unsigned wait_ms, void *data)
{
	(void)zone; (void)wait_ms; (void)data;
	assert_int_equal(holder, getpid());
	notified++;
}

static void test_lock_refuse_release(void **state)
{
	(void)state;
	const char *zones[] = { "example.net.", "example.com.", "example.com." };
	khsm_zonelock_t *a = NULL, *b = NULL;
	assert_int_equal(khsm_zonelock_take(dir, zones, 3, 0, NULL, NULL, &a), KHSM_EOK);
	/* flock conflicts between two open file descriptions, also in one process */
	const char *one[] = { "example.com." };
	assert_int_equal(khsm_zonelock_take(dir, one, 1, 0, NULL, NULL, &b), KHSM_EBUSY);
	assert_null(b);
	assert_non_null(strstr(khsm_err_last_detail(), "another ceremony (pid"));
	notified = 0;
	assert_int_equal(khsm_zonelock_take(dir, one, 1, 30, notify, NULL, &b), KHSM_EBUSY);
	assert_int_equal(notified, 1);   /* told once, then gave up after 30 ms of waiting */
	const char *other[] = { "example.org." };
	assert_int_equal(khsm_zonelock_take(dir, other, 1, 0, NULL, NULL, &b), KHSM_EOK);
	khsm_zonelock_release(b);
	khsm_zonelock_release(a);
	assert_int_equal(khsm_zonelock_take(dir, one, 1, 0, NULL, NULL, &b), KHSM_EOK);
	khsm_zonelock_release(b);
	khsm_zonelock_release(NULL);
}

static void test_wait_env(void **state)
{
	(void)state;
	setenv("KHSM_CEREMONY_WAIT_MS", "0", 1);
	assert_int_equal(khsm_zonelock_wait_ms(), 0);
	setenv("KHSM_CEREMONY_WAIT_MS", "12x", 1);
	assert_int_equal(khsm_zonelock_wait_ms(), 600000);
	unsetenv("KHSM_CEREMONY_WAIT_MS");
	assert_int_equal(khsm_zonelock_wait_ms(), 600000);
}

static void test_symlinked_lock_dir(void **state)
{
	(void)state;
	char base[96], target[96], link[128];
	snprintf(base, sizeof(base), "%s/base", dir);
	snprintf(target, sizeof(target), "%s/target", dir);
	snprintf(link, sizeof(link), "%s/.lock", base);
	assert_int_equal(mkdir(base, 0750), 0);
	assert_int_equal(mkdir(target, 0700), 0);
	assert_int_equal(symlink(target, link), 0);
	const char *one[] = { "example.com." };
	khsm_zonelock_t *l = NULL;
	assert_int_equal(khsm_zonelock_take(base, one, 1, 0, NULL, NULL, &l), KHSM_EPERM);
	assert_null(l);
	char made[128];
	snprintf(made, sizeof(made), "%s/example.com.lock", target);
	struct stat st;
	assert_int_not_equal(lstat(made, &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lock_refuse_release),
		cmocka_unit_test(test_wait_env),
		cmocka_unit_test(test_symlinked_lock_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
