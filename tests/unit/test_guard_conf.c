/* Unit tests of lib/guard/conf.c: the guard's configuration is parsed
 * strictly (unknown, repeated, relative or malformed entries refused with
 * file and line), defaults are filled in, and the file is found. */
#include "test.h"
#include "test_tmpdir.h"

#include <string.h>

#include "lib/error.h"
#include "lib/guard/conf.h"

TEST_TMPDIR_FIXTURE("guardconf")

static void test_defaults(void **state)
{
	(void)state;
	khsm_guard_conf_t c;
	assert_int_equal(khsm_guard_conf_parse("g.conf", "# comment\n\nmodule = /m.so\n  audit_log=/var/log/a.log  \n", &c),
	                 KHSM_EOK);
	assert_string_equal(c.module, "/m.so");
	assert_string_equal(c.audit_log, "/var/log/a.log");
	assert_string_equal(c.lock_file, "/var/log/a.log.lock");
	assert_true(c.fail_closed);
	assert_true(c.fill);
	assert_int_equal(c.verify, KHSM_GUARD_VERIFY_AUTO);
	assert_int_equal(c.fsync, KHSM_GUARD_FSYNC_SECURITY);
	assert_null(c.anchor_file);
	assert_int_equal(c.anchor_every, 100);
	assert_false(c.anchor_syslog);
	assert_false(c.login_final_try);
	assert_true(c.recover);
	assert_int_equal(c.recover_wait, 15);
	khsm_guard_conf_clear(&c);

	assert_int_equal(khsm_guard_conf_parse("g.conf", "module = /m.so\naudit_log = /a\nlock_file = /l\n"
	                                       "fail_closed = no\nverify = software\nfill = no\nfsync = all\n", &c),
	                 KHSM_EOK);
	assert_string_equal(c.lock_file, "/l");
	assert_false(c.fail_closed);
	assert_false(c.fill);
	assert_int_equal(c.verify, KHSM_GUARD_VERIFY_SOFTWARE);
	assert_int_equal(c.fsync, KHSM_GUARD_FSYNC_ALL);
	khsm_guard_conf_clear(&c);

	assert_int_equal(khsm_guard_conf_parse("g.conf", "module = /m.so\naudit_log = /a\nanchor_file = /r/anchor\n"
	                                       "anchor_every = 7\nanchor_syslog = yes\nlogin_final_try = allow\n", &c),
	                 KHSM_EOK);
	assert_string_equal(c.anchor_file, "/r/anchor");
	assert_int_equal(c.anchor_every, 7);
	assert_true(c.anchor_syslog);
	assert_true(c.login_final_try);
	khsm_guard_conf_clear(&c);

	assert_int_equal(khsm_guard_conf_parse("g.conf", "module = /m.so\naudit_log = /a\nrecover = no\n"
	                                       "recover_wait = 0\n", &c),
	                 KHSM_EOK);
	assert_false(c.recover);
	assert_int_equal(c.recover_wait, 0);
	khsm_guard_conf_clear(&c);
	assert_int_equal(khsm_guard_conf_parse("g.conf", "module = /m.so\naudit_log = /a\nrecover_wait = 300\n", &c),
	                 KHSM_EOK);
	assert_int_equal(c.recover_wait, 300);
	khsm_guard_conf_clear(&c);
}

static void refused(const char *text, const char *detail)
{
	khsm_guard_conf_t c;
	khsm_err_clear();
	assert_int_equal(khsm_guard_conf_parse("g.conf", text, &c), KHSM_ECONFIG);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	if (!strstr(d, detail)) fail_msg("'%s' lacks '%s'", d, detail);
	khsm_guard_conf_clear(&c);
}

static void test_strict(void **state)
{
	(void)state;
	refused("module = /m.so\naudit_log = /a\nmodlue = /x\n", "g.conf:3: unknown key 'modlue'");
	refused("module = /m.so\nmodule = /n.so\naudit_log = /a\n", "g.conf:2: 'module' given twice");
	refused("module = m.so\naudit_log = /a\n", "absolute path");
	refused("module = /m.so\naudit_log = /a\nfail_closed = on\n", "yes or no");
	refused("module = /m.so\naudit_log = /a\nverify = maybe\n", "auto, software or card");
	refused("module = /m.so\naudit_log = /a\nfsync = sometimes\n", "security, all or none");
	refused("module = /m.so\naudit_log = /a\njust text\n", "g.conf:3: expected 'key = value'");
	refused("module = /m.so\naudit_log =\n", "'audit_log' has no value");
	refused("module = /m.so  # the card\naudit_log = /a\n", "g.conf:1: comments go on a line of their own");
	refused("module = /m.so\n", "required");
	refused("audit_log = /a\n", "required");
	refused("module = /m.so\naudit_log = /a\nanchor_file = anchor\n", "absolute path");
	refused("module = /m.so\naudit_log = /a\nanchor_every = 0\n", "from 1 to 1000000");
	refused("module = /m.so\naudit_log = /a\nanchor_every = 5x\n", "from 1 to 1000000");
	refused("module = /m.so\naudit_log = /a\nlogin_final_try = yes\n", "refuse or allow");
	refused("module = /m.so\naudit_log = /a\nrecover = on\n", "recover is yes or no");
	refused("module = /m.so\naudit_log = /a\nrecover_wait = 301\n", "from 0 to 300");
	refused("module = /m.so\naudit_log = /a\nrecover_wait = -1\n", "from 0 to 300");
	refused("module = /m.so\naudit_log = /a\nrecover_wait = 5s\n", "from 0 to 300");
}

static void test_locate(void **state)
{
	(void)state;
	char *p = NULL;
	unsetenv(KHSM_GUARD_CONF_ENV);
	assert_int_equal(khsm_guard_conf_locate("/usr/lib/knot-hsm/libknothsm-guard.so", &p), KHSM_EOK);
	assert_string_equal(p, "/usr/lib/knot-hsm/knot-hsm-guard.conf");
	free(p);
	setenv(KHSM_GUARD_CONF_ENV, "/etc/knot/guard.conf", 1);
	assert_int_equal(khsm_guard_conf_locate("/usr/lib/knot-hsm/libknothsm-guard.so", &p), KHSM_EOK);
	assert_string_equal(p, "/etc/knot/guard.conf");
	free(p);
	unsetenv(KHSM_GUARD_CONF_ENV);
	assert_true(khsm_guard_is_module("/opt/x/libknothsm-guard.so"));
	assert_false(khsm_guard_is_module("/usr/lib/softhsm/libsofthsm2.so"));
}

static void test_render(void **state)
{
	(void)state;
	char *text = NULL;
	assert_int_equal(khsm_guard_conf_render("/usr/lib/opensc-pkcs11.so", "/var/lib/knot/audit.log", &text), KHSM_EOK);
	khsm_guard_conf_t c;
	assert_int_equal(khsm_guard_conf_parse("r", text, &c), KHSM_EOK);
	assert_string_equal(c.module, "/usr/lib/opensc-pkcs11.so");
	assert_string_equal(c.audit_log, "/var/lib/knot/audit.log");
	/* the anchor is recommended, not switched on: its directory must exist first */
	assert_non_null(strstr(text, "\n#anchor_file = /var/log/knot-hsm/audit.anchor\n"));
	assert_null(c.anchor_file);
	khsm_guard_conf_clear(&c);
	free(text);
	assert_int_equal(khsm_guard_conf_render("rel.so", "/a", &text), KHSM_EINVAL);
}

/* The file read whole: missing, too long, a NUL byte, a good one; the
 * messages are the guard's own (test_guard_conf_errors.sh shows them). */
static void test_load(void **state)
{
	(void)state;
	char path[128], want[256];
	khsm_guard_conf_t gc = { 0 };
	snprintf(path, sizeof(path), "%s/guard.conf", dir);

	assert_int_equal(khsm_guard_conf_load(path, &gc), KHSM_ENOENT);
	snprintf(want, sizeof(want), "cannot read the guard configuration %s: ", path);
	assert_non_null(khsm_err_last_detail());
	assert_true(strncmp(khsm_err_last_detail(), want, strlen(want)) == 0);
	khsm_err_clear();

	static char big[65536];
	memset(big, '#', sizeof(big));
	tmpdir_write(path, big, sizeof(big), 0644);
	assert_int_equal(khsm_guard_conf_load(path, &gc), KHSM_EIO);
	snprintf(want, sizeof(want), "cannot read the guard configuration %s: longer than 64 KiB", path);
	assert_string_equal(khsm_err_last_detail(), want);
	khsm_err_clear();

	tmpdir_write(path, "module = /x.so\n\0", 16, 0644);
	assert_int_equal(khsm_guard_conf_load(path, &gc), KHSM_ECONFIG);
	snprintf(want, sizeof(want), "%s: NUL byte in the guard configuration", path);
	assert_string_equal(khsm_err_last_detail(), want);
	khsm_err_clear();

	const char good[] = "module = /usr/lib/x.so\naudit_log = /var/log/a.log\n";
	tmpdir_write(path, good, strlen(good), 0644);
	assert_int_equal(khsm_guard_conf_load(path, &gc), KHSM_EOK);
	assert_string_equal(gc.module, "/usr/lib/x.so");
	khsm_guard_conf_clear(&gc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_strict),
		cmocka_unit_test(test_locate),
		cmocka_unit_test(test_render),
		cmocka_unit_test_setup_teardown(test_load, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
