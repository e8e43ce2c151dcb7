/* Tests of lib/run.c: real programs, exit codes, big outputs, stdin. */
#include "test.h"

#include <stdio.h>

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

static void test_tool_path(void **state)
{
	(void)state;
	unsetenv("KHSM_KEYMGR");
	unsetenv("KHSM_KDIG");
	assert_string_equal(khsm_tool_path("keymgr"), KHSM_SBINDIR "/keymgr");
	assert_string_equal(khsm_tool_path("knotc"), KHSM_SBINDIR "/knotc");
	assert_string_equal(khsm_tool_path("kdig"), "/usr/bin/kdig");
	setenv("KHSM_KEYMGR", "/opt/knot35/sbin/keymgr", 1);
	assert_string_equal(khsm_tool_path("keymgr"), "/opt/knot35/sbin/keymgr");
	unsetenv("KHSM_KEYMGR");
	assert_null(khsm_tool_path("rm"));
	assert_null(khsm_tool_path(NULL));
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
		cmocka_unit_test(test_tool_path),
		cmocka_unit_test(test_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
