/* Unit tests of lib/remote.c: the p11-kit server address for a socket and
 * back, p11-kit's default address, the client module by name, and whether
 * a server answers (a socket in a temp dir: no p11-kit server is started). */
#include "test.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/remote.h"

static void test_address(void **state)
{
	(void)state;
	char *a = NULL;
	assert_int_equal(khsm_remote_address("/run/knot-hsm/p11-kit.sock", &a), KHSM_EOK);
	assert_string_equal(a, "unix:path=/run/knot-hsm/p11-kit.sock");
	free(a);
	a = NULL;
	assert_int_equal(khsm_remote_address("/tmp/a b;c%d=e", &a), KHSM_EOK);
	assert_string_equal(a, "unix:path=/tmp/a%20b%3Bc%25d%3De");
	/* What the client decodes is the path given. */
	assert_int_equal(setenv(KHSM_REMOTE_ENV, a, 1), 0);
	free(a);
	char *s = NULL;
	assert_int_equal(khsm_remote_socket(&s), KHSM_EOK);
	assert_string_equal(s, "/tmp/a b;c%d=e");
	free(s);
	a = NULL;
	assert_int_equal(khsm_remote_address("relative.sock", &a), KHSM_EINVAL);
	assert_null(a);
	assert_non_null(strstr(khsm_err_last_detail(), "not an absolute path"));
	khsm_err_clear();

	assert_int_equal(khsm_remote_use("/srv/x.sock"), KHSM_EOK);
	assert_string_equal(getenv(KHSM_REMOTE_ENV), "unix:path=/srv/x.sock");
}

static void test_socket_from_env(void **state)
{
	(void)state;
	char *s = NULL;
	assert_int_equal(setenv(KHSM_REMOTE_ENV, "tcp:host=192.0.2.1", 1), 0);
	assert_int_equal(khsm_remote_socket(&s), KHSM_ECONFIG);
	assert_null(s);
	assert_non_null(strstr(khsm_err_last_detail(), "not a unix socket address"));
	khsm_err_clear();
	assert_int_equal(setenv(KHSM_REMOTE_ENV, "unix:path=", 1), 0);
	assert_int_equal(khsm_remote_socket(&s), KHSM_ECONFIG);
	khsm_err_clear();

	/* Unset: p11-kit's default under XDG_RUNTIME_DIR, or none at all. */
	unsetenv(KHSM_REMOTE_ENV);
	assert_int_equal(setenv("XDG_RUNTIME_DIR", "/run/user/123", 1), 0);
	assert_int_equal(khsm_remote_socket(&s), KHSM_EOK);
	assert_string_equal(s, "/run/user/123/p11-kit/pkcs11");
	free(s);
	s = NULL;
	unsetenv("XDG_RUNTIME_DIR");
	assert_int_equal(khsm_remote_socket(&s), KHSM_ECONFIG);
	assert_non_null(strstr(khsm_err_last_detail(), "--remote SOCKET"));
	khsm_err_clear();
	assert_int_equal(khsm_remote_check(NULL), KHSM_ECONFIG);
	khsm_err_clear();
}

static void test_check(void **state)
{
	(void)state;
	char dir[] = "/tmp/khsm-remote.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[96];
	snprintf(path, sizeof(path), "%s/pkcs11", dir);
	assert_int_equal(khsm_remote_use(path), KHSM_EOK);

	assert_int_equal(khsm_remote_check(NULL), KHSM_EREMOVED);
	assert_non_null(strstr(khsm_err_last_detail(), path));
	assert_non_null(strstr(khsm_err_last_detail(), "does not exist"));
	assert_non_null(strstr(khsm_err_last_detail(), "knot-hsm-p11-kit-server"));
	khsm_err_clear();

	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	char *got = NULL;
	assert_int_equal(khsm_remote_check(&got), KHSM_EOK);
	assert_string_equal(got, path);
	free(got);
	close(fd);
	/* The socket file of a dead server: nothing answers. */
	got = NULL;
	assert_int_equal(khsm_remote_check(&got), KHSM_EREMOVED);
	assert_null(got);
	assert_non_null(strstr(khsm_err_last_detail(), "no p11-kit server answers"));
	khsm_err_clear();
	unlink(path);
	rmdir(dir);
	unsetenv(KHSM_REMOTE_ENV);
}

static void test_client(void **state)
{
	(void)state;
	assert_true(khsm_remote_is_client(khsm_remote_client_module()));
	assert_true(khsm_remote_is_client("/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"));
	assert_true(khsm_remote_is_client("p11-kit-client.so"));
	assert_false(khsm_remote_is_client("/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-trust.so"));
	assert_false(khsm_remote_is_client("/x/p11-kit-client.so.d/libcardsim.so"));
	assert_false(khsm_remote_is_client(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_address),
		cmocka_unit_test(test_socket_from_env),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_client),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
