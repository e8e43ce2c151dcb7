/* Unit tests of lib/pcscd.c: pcscd answers or not on its socket
 * ($PCSCLITE_CSOCK_NAME, set to a temp dir here: the host's pcscd is never
 * asked), and which modules use it. */
#include "test.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/pcscd.h"

static void test_socket(void **state)
{
	(void)state;
	char dir[] = "/tmp/khsm-pcscd.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[96];
	snprintf(path, sizeof(path), "%s/pcscd.comm", dir);
	assert_int_equal(setenv("PCSCLITE_CSOCK_NAME", path, 1), 0);
	assert_string_equal(khsm_pcscd_socket(), path);

	assert_int_equal(khsm_pcscd_check(), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "pcscd is not running"));
	assert_non_null(strstr(khsm_err_last_detail(), "systemctl start pcscd.socket"));
	khsm_err_clear();

	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(khsm_pcscd_check(), KHSM_EOK);
	close(fd);
	/* A stale socket file of a dead pcscd: nothing answers. */
	assert_int_equal(khsm_pcscd_check(), KHSM_ENOENT);
	khsm_err_clear();
	unlink(path);
	rmdir(dir);
	unsetenv("PCSCLITE_CSOCK_NAME");
	assert_string_equal(khsm_pcscd_socket(), "/run/pcscd/pcscd.comm");
}

static void test_modules(void **state)
{
	(void)state;
	assert_true(khsm_pcscd_module_uses("/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"));
	assert_true(khsm_pcscd_module_uses("/usr/lib/x86_64-linux-gnu/pkcs11/opensc-pkcs11.so"));
	assert_true(khsm_pcscd_module_uses("opensc-pkcs11.so"));
	assert_false(khsm_pcscd_module_uses("/usr/lib/softhsm/libsofthsm2.so"));
	assert_false(khsm_pcscd_module_uses("/x/opensc-pkcs11.so.d/libcardsim.so"));
	assert_false(khsm_pcscd_module_uses(NULL));
}

/* guard_conf DIR MODULE: $KHSM_GUARD_CONF in DIR naming MODULE. */
static void guard_conf(const char *dir, const char *module)
{
	char path[96];
	snprintf(path, sizeof(path), "%s/knot-hsm-guard.conf", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "module = %s\naudit_log = %s/audit.log\n", module, dir);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(setenv("KHSM_GUARD_CONF", path, 1), 0);
}

/* The guard in front of a module: the module behind it decides (knot-hsm
 * keystore --guard renders the guard for OpenSC, so that status says
 * "pcscd not running" and a ceremony waits for pcscd through it too). */
static void test_guard_modules(void **state)
{
	(void)state;
	char dir[] = "/tmp/khsm-pcscd.XXXXXX";
	assert_non_null(mkdtemp(dir));
	const char *guard = "/usr/lib/x86_64-linux-gnu/knot-hsm/libknothsm-guard.so";
	guard_conf(dir, "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");
	assert_true(khsm_pcscd_module_uses(guard));
	assert_null(khsm_err_last_detail());
	guard_conf(dir, "/usr/lib/softhsm/libsofthsm2.so");
	assert_false(khsm_pcscd_module_uses(guard));
	/* A configuration the guard refuses: no pcscd check (the keystore's
	 * open says what is wrong), and no detail left behind. */
	assert_int_equal(setenv("KHSM_GUARD_CONF", "/nonexistent/knot-hsm-guard.conf", 1), 0);
	assert_false(khsm_pcscd_module_uses(guard));
	assert_null(khsm_err_last_detail());
	unsetenv("KHSM_GUARD_CONF");
	char path[96];
	snprintf(path, sizeof(path), "%s/knot-hsm-guard.conf", dir);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_socket),
		cmocka_unit_test(test_modules),
		cmocka_unit_test(test_guard_modules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
