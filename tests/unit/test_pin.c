/* Unit tests of lib/pin.c: the one PIN-file rule (symlink, FIFO, directory,
 * owner, trailing whitespace), what khsm_pin_from_file reads. */
#include "test.h"
#include "test_tmpdir.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/pin.h"

TEST_TMPDIR_FIXTURE("pin")

static void put(const char *name, const char *text, mode_t mode, char *path, size_t size)
{
	snprintf(path, size, "%s/%s", dir, name);
	tmpdir_write(path, text, strlen(text), mode);
}

static unsigned issues_of(const char *path)
{
	unsigned issues = 0;
	assert_int_equal(khsm_pin_file_check(path, &issues, NULL), KHSM_EOK);
	return issues;
}

static void test_good_file_read_as_is(void **state)
{
	(void)state;
	char path[128];
	put("good", "123456", 0600, path, sizeof(path));
	assert_int_equal(issues_of(path), 0);
	assert_int_equal(khsm_pin_file_verify("PIN file", path, false), KHSM_EOK);
	khsm_pin_t *pin = NULL;
	assert_int_equal(khsm_pin_from_file(path, false, &pin), KHSM_EOK);
	assert_string_equal(khsm_pin_value(pin), "123456");
	assert_int_equal(khsm_pin_len(pin), 6);
	khsm_pin_free(pin);
}

static void test_trailing_whitespace(void **state)
{
	(void)state;
	const char *texts[] = { "1234\n", "1234\r", "1234 ", "1234\t" };
	for (size_t i = 0; i < 4; i++) {
		char path[128], name[16];
		snprintf(name, sizeof(name), "ws%zu", i);
		put(name, texts[i], 0600, path, sizeof(path));
		assert_int_equal(issues_of(path), KHSM_PIN_FILE_NEWLINE);
		/* not forceable: it would cost a try */
		assert_int_equal(khsm_pin_file_verify("PIN file", path, true), KHSM_EPIN_UNSAFE);
	}
}

static void test_symlink_fifo_empty_mode(void **state)
{
	(void)state;
	char good[128], link[128], fifo[128], empty[128], open_mode[128];
	put("target", "1234", 0600, good, sizeof(good));
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(good, link), 0);
	assert_int_equal(issues_of(link), KHSM_PIN_FILE_SYMLINK);
	assert_int_equal(khsm_pin_file_verify("PIN file", link, true), KHSM_EPIN_UNSAFE);
	assert_non_null(strstr(khsm_err_last_detail(), "(here: "));
	khsm_pin_t *pin = NULL;
	assert_int_equal(khsm_pin_from_file(link, true, &pin), KHSM_EPIN_UNSAFE);
	assert_null(pin);

	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(issues_of(fifo), KHSM_PIN_FILE_NOT_REG);   /* returns: never opened */

	put("empty", "", 0600, empty, sizeof(empty));
	assert_int_equal(issues_of(empty), KHSM_PIN_FILE_EMPTY);

	put("open", "1234", 0640, open_mode, sizeof(open_mode));
	assert_int_equal(issues_of(open_mode), KHSM_PIN_FILE_OTHERS);
	assert_int_equal(khsm_pin_file_verify("PIN file", open_mode, false), KHSM_EPIN_UNSAFE);
	assert_non_null(strstr(khsm_err_last_detail(), "(mode 0640)"));
	assert_int_equal(khsm_pin_file_verify("PIN file", open_mode, true), KHSM_EOK);   /* --force */

	char missing[128];
	snprintf(missing, sizeof(missing), "%s/missing", dir);
	unsigned issues = 0;
	assert_int_equal(khsm_pin_file_check(missing, &issues, NULL), KHSM_ENOENT);
}

static void test_unsafe_directory(void **state)
{
	(void)state;
	char sub[96], path[128];
	snprintf(sub, sizeof(sub), "%s/wdir", dir);
	assert_int_equal(mkdir(sub, 0777), 0);
	assert_int_equal(chmod(sub, 0777), 0);
	snprintf(path, sizeof(path), "%s/pin", sub);
	tmpdir_write(path, "1234", 4, 0600);
	assert_int_equal(issues_of(path), KHSM_PIN_FILE_DIR);
	assert_int_equal(khsm_pin_file_verify("PIN file", path, false), KHSM_EPIN_UNSAFE);
	assert_int_equal(chmod(sub, 01777), 0);   /* sticky, as /tmp: still refused */
	assert_int_equal(issues_of(path), KHSM_PIN_FILE_DIR);
	assert_int_equal(khsm_pin_file_verify("PIN file", path, false), KHSM_EPIN_UNSAFE);
	assert_int_equal(chmod(sub, 01770), 0);   /* group-writable with the sticky bit */
	assert_int_equal(issues_of(path), 0);
}

/* /proc/<this pid>/fd/N of a regular file this process holds (lib/handoff's
 * memfd, named as pin-source in the configuration copy it hands to keymgr
 * and to its own sub-commands): read, not refused as a symlink. Another
 * process's path is a symlink like any other. */
static void test_own_descriptor(void **state)
{
	(void)state;
	int fd = memfd_create("pin", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "4711", 4), 4);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)getpid(), fd);
	khsm_pin_t *pin = NULL;
	assert_int_equal(khsm_pin_from_file(path, false, &pin), KHSM_EOK);
	assert_string_equal(khsm_pin_value(pin), "4711");
	khsm_pin_free(pin);
	assert_int_equal(write(fd, "\n", 1), 1);
	assert_int_equal(issues_of(path), KHSM_PIN_FILE_NEWLINE);
	close(fd);
	snprintf(path, sizeof(path), "/proc/1/fd/0");
	unsigned issues = 0;
	if (khsm_pin_file_check(path, &issues, NULL) == KHSM_EOK) {
		assert_int_equal(issues & KHSM_PIN_FILE_SYMLINK, KHSM_PIN_FILE_SYMLINK);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file_read_as_is),
		cmocka_unit_test(test_trailing_whitespace),
		cmocka_unit_test(test_symlink_fifo_empty_mode),
		cmocka_unit_test(test_unsafe_directory),
		cmocka_unit_test(test_own_descriptor),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
