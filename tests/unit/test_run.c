/* Tests of lib/run.c: real programs, exit codes, big outputs, stdin. */
#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "run.h"

static void test_echo(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/echo", "hello", "world", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "hello world\n");
	assert_int_equal(res.out_len, 12);
	assert_string_equal(res.err, "");
	assert_int_equal(res.err_len, 0);
	khsm_run_clear(&res);
	assert_null(res.out);
}

static void test_exit_status(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/sh", "-c", "echo oops >&2; exit 3", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	assert_int_equal(res.status, 3);
	assert_string_equal(res.err, "oops\n");
	assert_string_equal(res.out, "");
	khsm_run_clear(&res);
}

static void test_signal_status(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/sh", "-c", "kill -TERM $$", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	assert_int_equal(res.status, 128 + 15);
	khsm_run_clear(&res);
}

/* 1 MiB on both stdout and stderr, interleaved: a reader that drains only one
 * pipe at a time would block forever once the other pipe's buffer is full. */
static void test_large_output(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/sh", "-c",
		"head -c 1048576 /dev/zero | tr '\\0' a & "
		"head -c 1048576 /dev/zero | tr '\\0' b >&2; wait", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	assert_int_equal(res.out_len, 1048576);
	assert_int_equal(res.err_len, 1048576);
	assert_int_equal(strlen(res.out), 1048576);
	assert_int_equal(res.out[0], 'a');
	assert_int_equal(res.out[1048575], 'a');
	assert_int_equal(res.err[0], 'b');
	assert_int_equal(res.err[1048575], 'b');
	khsm_run_clear(&res);
}

static void test_stdin(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/cat", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, "line one\nline two\n", &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "line one\nline two\n");
	khsm_run_clear(&res);

	/* Large input, bigger than a pipe buffer, comes back unchanged. */
	size_t n = 300000;
	char *big = malloc(n + 1);
	assert_non_null(big);
	for (size_t i = 0; i < n; i++) {
		big[i] = 'a' + i % 26;
	}
	big[n] = '\0';
	assert_int_equal(khsm_run(argv, big, &res), KHSM_EOK);
	assert_int_equal(res.out_len, n);
	assert_memory_equal(res.out, big, n);
	khsm_run_clear(&res);
	free(big);
}

/* A child that ignores its stdin and exits must not kill us with SIGPIPE. */
static void test_stdin_not_read(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/true", NULL };
	size_t n = 1 << 20;
	char *big = malloc(n + 1);
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, big, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	khsm_run_clear(&res);
	free(big);
}

static void test_missing_binary(void **state)
{
	(void)state;
	const char *argv[] = { "/nonexistent/keymgr", "-V", NULL };
	khsm_run_t res = { 0 };
	khsm_err_clear();
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_ENOENT);
	assert_null(res.out);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	assert_non_null(strstr(d, "keymgr not found at /nonexistent/keymgr"));
	assert_non_null(strstr(d, "install"));
}

static void test_environment_passed(void **state)
{
	(void)state;
	setenv("KHSM_TEST_VAR", "visible", 1);
	const char *argv[] = { "/bin/sh", "-c", "printf %s \"$KHSM_TEST_VAR\"", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	assert_string_equal(res.out, "visible");
	khsm_run_clear(&res);
	unsetenv("KHSM_TEST_VAR");
}

/* khsm_run_env: a variable replaced and one added for the child only, the
 * rest of the environment passed as it is. */
static void test_environment_changed(void **state)
{
	(void)state;
	setenv("KHSM_TEST_VAR", "parent", 1);
	setenv("KHSM_TEST_KEEP", "kept", 1);
	const char *argv[] = { "/bin/sh", "-c",
	                       "printf '%s %s %s %s' \"$KHSM_TEST_VAR\" \"$KHSM_TEST_NEW\" \"$KHSM_TEST_KEEP\" "
	                       "\"$(env | grep -c '^KHSM_TEST_VAR=')\"", NULL };
	const char *add[] = { "KHSM_TEST_VAR=child", "KHSM_TEST_NEW=new", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run_env(argv, NULL, add, &res), KHSM_EOK);
	assert_string_equal(res.out, "child new kept 1");
	khsm_run_clear(&res);
	assert_string_equal(getenv("KHSM_TEST_VAR"), "parent");
	assert_null(getenv("KHSM_TEST_NEW"));
	unsetenv("KHSM_TEST_VAR");
	unsetenv("KHSM_TEST_KEEP");
}

static void test_tool_path(void **state)
{
	(void)state;
	unsetenv("KHSM_KEYMGR");
	assert_string_equal(khsm_tool_path("keymgr"), KHSM_SBINDIR "/keymgr");
	assert_string_equal(khsm_tool_path("knotc"), KHSM_SBINDIR "/knotc");
	assert_null(khsm_tool_path("kdig"));   /* parent.c asks with libknot itself */
	setenv("KHSM_KEYMGR", "/opt/knot35/sbin/keymgr", 1);
	assert_string_equal(khsm_tool_path("keymgr"), "/opt/knot35/sbin/keymgr");
	unsetenv("KHSM_KEYMGR");
	assert_null(khsm_tool_path("rm"));
	assert_null(khsm_tool_path(NULL));
}

/* Descriptor numbers the child (the shell) has open, one a line; ls is the
 * shell's child, so its own directory descriptor is not in the list. */
#define LIST_FDS "ls -1 /proc/$$/fd"

/* A descriptor without close-on-exec (what --pin-fd N is) never reaches a
 * child: only 0, 1 and 2 are open there. */
static void test_no_descriptor_inherited(void **state)
{
	(void)state;
	int fd = open("/dev/null", O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(dup2(fd, 57), 57);
	assert_int_equal(fcntl(57, F_GETFD) & FD_CLOEXEC, 0);
	const char *argv[] = { "/bin/sh", "-c", LIST_FDS, NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "0\n1\n2\n");
	khsm_run_clear(&res);
	close(57);
	close(fd);
}

/* Named descriptors are passed on as 3, 4, ... in their order, with nothing
 * else, and keep what they point to; the parent's copies stay open. */
static void test_keep_descriptors(void **state)
{
	(void)state;
	int a = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int b = open("/dev/zero", O_RDONLY);
	int stray = open("/dev/null", O_RDONLY);
	assert_true(a >= 0 && b >= 0 && stray >= 0);
	int keep[] = { b, a };
	const char *argv[] = { "/bin/sh", "-c",
		LIST_FDS "; readlink /proc/$$/fd/3 /proc/$$/fd/4", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run_keep(argv, NULL, keep, 2, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	assert_string_equal(res.out, "0\n1\n2\n3\n4\n/dev/zero\n/dev/null\n");
	khsm_run_clear(&res);
	assert_true(fcntl(a, F_GETFD) >= 0 && fcntl(b, F_GETFD) >= 0);

	/* Not open, or one of 0-2: refused before anything runs. */
	int closed[] = { stray };
	close(stray);
	assert_int_equal(khsm_run_keep(argv, NULL, closed, 1, &res), KHSM_EINVAL);
	assert_null(res.out);
	int std[] = { 1 };
	assert_int_equal(khsm_run_keep(argv, NULL, std, 1, &res), KHSM_EINVAL);
	assert_int_equal(khsm_run_keep(argv, NULL, NULL, 1, &res), KHSM_EINVAL);
	close(a);
	close(b);
}

static void test_invalid(void **state)
{
	(void)state;
	khsm_run_t res = { 0 };
	const char *empty[] = { NULL };
	assert_int_equal(khsm_run(empty, NULL, &res), KHSM_EINVAL);
	assert_int_equal(khsm_run(NULL, NULL, &res), KHSM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo),
		cmocka_unit_test(test_exit_status),
		cmocka_unit_test(test_signal_status),
		cmocka_unit_test(test_large_output),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_stdin_not_read),
		cmocka_unit_test(test_missing_binary),
		cmocka_unit_test(test_environment_passed),
		cmocka_unit_test(test_environment_changed),
		cmocka_unit_test(test_tool_path),
		cmocka_unit_test(test_no_descriptor_inherited),
		cmocka_unit_test(test_keep_descriptors),
		cmocka_unit_test(test_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
