/* Unit tests of lib/archive.c: the archive next to the KASP database made
 * without following a link, a day directory claimed per run, records
 * written once and never replaced. */
#include "test.h"
#include "test_tmpdir.h"

#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "error.h"

TEST_TMPDIR_FIXTURE("archive")

/* 2026-12-02 01:00:00 UTC */
#define NOW 1796173200

static void test_open_and_claim(void **state)
{
	(void)state;
	char kasp[128], want[160];
	snprintf(kasp, sizeof(kasp), "%s/var/lib/knot/keys", dir);
	char *base = NULL;
	/* Parents made when missing (mkdir -p), then <parent>/knot-hsm-archive. */
	assert_int_equal(khsm_archive_open(kasp, &base), KHSM_EOK);
	snprintf(want, sizeof(want), "%s/var/lib/knot/knot-hsm-archive", dir);
	assert_string_equal(base, want);
	struct stat st;
	assert_int_equal(lstat(base, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0027, 0);   /* 0750 less the umask */
	/* Again over what exists: the same base. */
	char *again = NULL;
	assert_int_equal(khsm_archive_open(kasp, &again), KHSM_EOK);
	assert_string_equal(again, base);
	free(again);

	/* The day of now, then .2, .3 … for later runs that day. */
	char *d1 = NULL, *d2 = NULL, *d3 = NULL;
	assert_int_equal(khsm_archive_claim(base, NOW, &d1), KHSM_EOK);
	snprintf(want, sizeof(want), "%s/2026-12-02", base);
	assert_string_equal(d1, want);
	assert_int_equal(khsm_archive_claim(base, NOW, &d2), KHSM_EOK);
	snprintf(want, sizeof(want), "%s/2026-12-02.2", base);
	assert_string_equal(d2, want);
	/* A link planted at the next name is skipped, never used. */
	char planted[192], victim[128];
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	assert_int_equal(mkdir(victim, 0700), 0);
	snprintf(planted, sizeof(planted), "%s/2026-12-02.3", base);
	assert_int_equal(symlink(victim, planted), 0);
	assert_int_equal(khsm_archive_claim(base, NOW, &d3), KHSM_EOK);
	snprintf(want, sizeof(want), "%s/2026-12-02.4", base);
	assert_string_equal(d3, want);

	/* A record is written once: never replaced, never through a link. */
	char rec[256], link[256];
	snprintf(rec, sizeof(rec), "%s/example.com.ksr", d1);
	assert_int_equal(khsm_archive_write(rec, "ksr\n", 4, 0640), KHSM_EOK);
	assert_int_equal(lstat(rec, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(khsm_archive_write(rec, "other\n", 6, 0640), KHSM_EIO);
	assert_non_null(strstr(khsm_err_last_detail(), "never replaced"));
	snprintf(link, sizeof(link), "%s/example.com.skr", d1);
	char target[192];
	snprintf(target, sizeof(target), "%s/stolen", victim);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(khsm_archive_write(link, "skr\n", 4, 0640), KHSM_EIO);
	assert_int_equal(lstat(target, &st), -1);   /* nothing written through it */
	free(d1);
	free(d2);
	free(d3);
	free(base);
}

static void test_open_refuses(void **state)
{
	(void)state;
	char elsewhere[128], link[128], kasp[160];
	snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", dir);
	assert_int_equal(mkdir(elsewhere, 0700), 0);
	/* A symlinked component on the way to the KASP database's parent, in a
	 * directory others can write (khsm_file_mkdir_p follows only links no
	 * one else could have planted). */
	snprintf(link, sizeof(link), "%s/lib", dir);
	assert_int_equal(symlink(elsewhere, link), 0);
	snprintf(kasp, sizeof(kasp), "%s/lib/knot/keys", dir);
	char *base = NULL;
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(khsm_archive_open(kasp, &base), KHSM_EPERM);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_null(base);
	struct stat st;
	char behind[160];
	snprintf(behind, sizeof(behind), "%s/knot", elsewhere);
	assert_int_equal(lstat(behind, &st), -1);

	/* The archive itself a link: refused. */
	char parent[128], arch[160];
	snprintf(parent, sizeof(parent), "%s/p", dir);
	assert_int_equal(mkdir(parent, 0750), 0);
	snprintf(arch, sizeof(arch), "%s/knot-hsm-archive", parent);
	assert_int_equal(symlink(elsewhere, arch), 0);
	snprintf(kasp, sizeof(kasp), "%s/keys", parent);
	assert_int_equal(khsm_archive_open(kasp, &base), KHSM_EPERM);
	assert_null(base);
	assert_non_null(strstr(khsm_err_last_detail(), "symbolic link"));

	/* Writable by the group: another user could swap the day directories. */
	assert_int_equal(unlink(arch), 0);
	assert_int_equal(mkdir(arch, 0750), 0);
	assert_int_equal(chmod(arch, 0770), 0);
	assert_int_equal(khsm_archive_open(kasp, &base), KHSM_EPERM);
	assert_null(base);
	assert_non_null(strstr(khsm_err_last_detail(), "can be written by another user"));

	assert_int_equal(khsm_archive_open(NULL, &base), KHSM_EINVAL);
	assert_int_equal(khsm_archive_claim(arch, NOW, NULL), KHSM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_and_claim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_refuses, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
