/* lib/files.c: whole-file read with a cap, atomic write that never follows a
 * link, mkdir -p through directory descriptors, path helpers.
 * getrandom() is wrapped (-Wl,--wrap=getrandom) so a test can plant a link
 * at the temporary name the atomic write is about to use. */
#include "test.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "files.h"
#include "test_tmpdir.h"

/* -- the getrandom() seam ---------------------------------------------------- */

ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);

static bool rnd_fixed;
static uint32_t rnd_values[2];   /* the first call gets [0], every later one [1] */
static unsigned rnd_calls;

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags)
{
	if (!rnd_fixed || len != sizeof(uint32_t)) {
		return __real_getrandom(buf, len, flags);
	}
	uint32_t v = rnd_values[rnd_calls ? 1 : 0];
	rnd_calls++;
	memcpy(buf, &v, sizeof(v));
	return (ssize_t)sizeof(v);
}

static void rnd_set(uint32_t first, uint32_t later)
{
	rnd_fixed = true;
	rnd_values[0] = first;
	rnd_values[1] = later;
	rnd_calls = 0;
}

/* -- fixture: a private temporary directory per test ----------------------- */

TEST_TMPDIR_FIXTURE("files")

/* The getrandom() seam off again, then the directory removed. */
static int teardown_rnd(void **state)
{
	rnd_fixed = false;
	return teardown(state);
}

/* dir/name, in a buffer the next call reuses. */
static const char *at(const char *name)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static void put(const char *path, const char *text, size_t len)
{
	tmpdir_write(path, text, len, 0600);
}

static void expect_text(const char *path, const char *want)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(khsm_file_read(path, NULL, &text, &len, NULL), KHSM_EOK);
	assert_int_equal(len, strlen(want));
	assert_string_equal(text, want);
	free(text);
}

/* Entries in the fixture directory, "." and ".." not counted. */
static unsigned entries(void)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", dir);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	unsigned n = 0;
	assert_int_equal(fscanf(p, "%u", &n), 1);
	assert_int_equal(pclose(p), 0);
	return n;
}

/* -- read --------------------------------------------------------------------- */

static void test_read(void **state)
{
	(void)state;
	put(at("a"), "one\ntwo\n", 8);
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	assert_int_equal(khsm_file_read(at("a"), NULL, &text, &len, &st), KHSM_EOK);
	assert_int_equal(len, 8);
	assert_string_equal(text, "one\ntwo\n");
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_size, 8);
	free(text);

	/* Empty file: "" and length 0, not NULL. */
	put(at("empty"), "", 0);
	text = NULL;
	assert_int_equal(khsm_file_read(at("empty"), NULL, &text, &len, NULL), KHSM_EOK);
	assert_non_null(text);
	assert_int_equal(len, 0);
	assert_string_equal(text, "");
	free(text);

	/* Missing: KHSM_ENOENT and the path in the detail; nothing handed over. */
	text = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_file_read(at("missing"), NULL, &text, &len, NULL), KHSM_ENOENT);
	assert_null(text);
	assert_non_null(strstr(khsm_err_last_detail(), "cannot read "));
	assert_non_null(strstr(khsm_err_last_detail(), "/missing"));

	/* The caller's word for the file in the detail. */
	khsm_file_read_opts_t o = { .what = "audit log" };
	assert_int_equal(khsm_file_read(at("missing"), &o, &text, &len, NULL), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "cannot read the audit log "));
}

static void test_read_cap(void **state)
{
	(void)state;
	/* A buffer larger than the first allocation (64 KiB) too. */
	size_t big = 200000;
	char *data = malloc(big);
	assert_non_null(data);
	for (size_t i = 0; i < big; i++) data[i] = (char)('a' + i % 26);
	put(at("big"), data, big);

	char *text = NULL;
	size_t len = 0;
	khsm_file_read_opts_t o = { .max = big };   /* exactly at the cap: read */
	assert_int_equal(khsm_file_read(at("big"), &o, &text, &len, NULL), KHSM_EOK);
	assert_int_equal(len, big);
	assert_memory_equal(text, data, big);
	assert_int_equal(text[big], '\0');
	free(text);

	text = NULL;
	o.max = big - 1;                            /* one byte over: refused */
	assert_int_equal(khsm_file_read(at("big"), &o, &text, &len, NULL), KHSM_ERANGE);
	assert_null(text);
	assert_non_null(strstr(khsm_err_last_detail(), "larger than"));

	o.max = 10;                                 /* a small cap, first buffer included */
	assert_int_equal(khsm_file_read(at("big"), &o, &text, &len, NULL), KHSM_ERANGE);
	assert_null(text);
	free(data);
}

static void test_read_special(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	/* A FIFO nobody writes to: refused at once, the open does not block. */
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(khsm_file_read(at("fifo"), NULL, &text, &len, NULL), KHSM_EIO);
	assert_non_null(strstr(khsm_err_last_detail(), "not a regular file"));
	/* A directory neither. */
	assert_int_equal(khsm_file_read(dir, NULL, &text, &len, NULL), KHSM_EIO);
	assert_null(text);

	/* A link: followed by default, refused with nofollow. */
	put(at("real"), "x", 1);
	char real[256];
	snprintf(real, sizeof(real), "%s", at("real"));
	assert_int_equal(symlink(real, at("link")), 0);
	expect_text(at("link"), "x");
	/* The same file by a link (device and inode), not the directory or a missing one. */
	assert_true(khsm_path_same_file(real, at("link")));
	assert_true(khsm_path_same_file(real, real));
	assert_false(khsm_path_same_file(real, dir));
	assert_false(khsm_path_same_file(at("missing"), real));
	khsm_file_read_opts_t o = { .nofollow = true };
	assert_int_equal(khsm_file_read(at("link"), &o, &text, &len, NULL), KHSM_EPERM);
	assert_null(text);
	assert_non_null(strstr(khsm_err_last_detail(), "symbolic link"));
	assert_int_equal(khsm_file_read(real, &o, &text, &len, NULL), KHSM_EOK);
	free(text);

	/* The shared lock is taken and given back with the descriptor. */
	o = (khsm_file_read_opts_t) { .lock_shared = true };
	assert_int_equal(khsm_file_read(real, &o, &text, &len, NULL), KHSM_EOK);
	free(text);
	int fd = open(real, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
}

/* -- atomic write -------------------------------------------------------------- */

static void test_write_atomic(void **state)
{
	(void)state;
	const char *path = at("f");
	char f[256];
	snprintf(f, sizeof(f), "%s", path);
	assert_int_equal(khsm_file_write_atomic(f, "one\n", 4, 0640, 0), KHSM_EOK);
	assert_int_equal(khsm_file_write_atomic(f, "two\n", 4, 0640, 0), KHSM_EOK);
	struct stat st;
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	expect_text(f, "two\n");
	/* Replaced by rename: a reader holding the old file keeps the old text. */
	int old = open(f, O_RDONLY | O_CLOEXEC);
	assert_true(old >= 0);
	assert_int_equal(khsm_file_write_atomic(f, "three\n", 6, 0600, KHSM_FILE_DIR_GROUP), KHSM_EOK);
	char buf[8] = { 0 };
	assert_int_equal(read(old, buf, sizeof(buf) - 1), 4);
	assert_string_equal(buf, "two\n");
	close(old);
	expect_text(f, "three\n");
	assert_int_equal(stat(f, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(entries(), 1);      /* no temporary file left */

	/* No directory: KHSM_EIO, nothing made. */
	assert_int_equal(khsm_file_write_atomic(at("missing/f"), "x", 1, 0640, 0), KHSM_EIO);
	assert_int_equal(entries(), 1);
	/* Not a file name. */
	assert_int_equal(khsm_file_write_atomic(at(".."), "x", 1, 0640, 0), KHSM_EINVAL);
}

/* dir/victim holding "precious\n": what a planted link points at. */
static void plant_victim(char *victim, size_t size)
{
	snprintf(victim, size, "%s", at("victim"));
	put(victim, "precious\n", 9);
}

static void test_write_refuses_link_target(void **state)
{
	(void)state;
	char victim[256], link[256];
	plant_victim(victim, sizeof(victim));
	snprintf(link, sizeof(link), "%s", at("conf"));
	assert_int_equal(symlink(victim, link), 0);
	assert_int_equal(khsm_file_write_atomic(link, "evil\n", 5, 0640, 0), KHSM_EPERM);
	assert_non_null(strstr(khsm_err_last_detail(), "symbolic link"));
	expect_text(victim, "precious\n");
	struct stat st;
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));      /* the link itself is not replaced either */
	assert_int_equal(entries(), 2);      /* victim and link, no temporary file */

	/* A FIFO at the target: refused, never opened. */
	assert_int_equal(mkfifo(at("fifo"), 0600), 0);
	assert_int_equal(khsm_file_write_atomic(at("fifo"), "x", 1, 0640, 0), KHSM_EPERM);
	assert_non_null(strstr(khsm_err_last_detail(), "not a regular file"));
}

static void test_write_refuses_link_temp(void **state)
{
	(void)state;
	char victim[256], f[256];
	plant_victim(victim, sizeof(victim));
	snprintf(f, sizeof(f), "%s", at("f"));
	/* The first temporary name the write will pick is a planted link. */
	assert_int_equal(symlink(victim, at(".f.11111111")), 0);
	rnd_set(0x11111111u, 0x22222222u);
	assert_int_equal(khsm_file_write_atomic(f, "new\n", 4, 0640, 0), KHSM_EOK);
	assert_int_equal(rnd_calls, 2);        /* the planted name was skipped, not used */
	expect_text(f, "new\n");
	expect_text(victim, "precious\n");     /* nothing written through the link */
	struct stat st;
	assert_int_equal(lstat(at(".f.11111111"), &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(lstat(at(".f.22222222"), &st), -1);   /* renamed away */

	/* Every name taken (the seam always gives the planted one): KHSM_EIO
	 * after a bounded number of tries, nothing written, f unchanged. */
	rnd_set(0x11111111u, 0x11111111u);
	assert_int_equal(khsm_file_write_atomic(f, "other\n", 6, 0640, 0), KHSM_EIO);
	assert_int_equal(rnd_calls, 100);
	assert_non_null(strstr(khsm_err_last_detail(), "cannot create a file next to"));
	expect_text(f, "new\n");
	expect_text(victim, "precious\n");
	assert_int_equal(entries(), 3);      /* victim, f, the planted link */
}

static void test_write_all(void **state)
{
	(void)state;
	int fd = open(at("w"), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(khsm_file_write_all(fd, "abc", 3), KHSM_EOK);
	assert_int_equal(khsm_file_write_all(fd, NULL, 0), KHSM_EOK);
	close(fd);
	expect_text(at("w"), "abc");
	fd = open(at("w"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	errno = 0;
	assert_int_equal(khsm_file_write_all(fd, "x", 1), KHSM_EIO);   /* read-only descriptor */
	assert_int_equal(errno, EBADF);
	close(fd);
}

/* -- mkdir -p --------------------------------------------------------------------- */

static void test_mkdir_p(void **state)
{
	(void)state;
	char deep[256];
	snprintf(deep, sizeof(deep), "%s//a/b/c/", dir);
	assert_int_equal(khsm_file_mkdir_p(deep, 0750), KHSM_EOK);
	struct stat st;
	assert_int_equal(lstat(at("a/b/c"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0022, 0);
	/* Over existing directories, and part of them: fine, nothing changes. */
	assert_int_equal(khsm_file_mkdir_p(deep, 0750), KHSM_EOK);
	assert_int_equal(khsm_file_mkdir_p(at("a/b/d"), 0750), KHSM_EOK);
	assert_int_equal(lstat(at("a/b/d"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(khsm_file_mkdir_p("/", 0750), KHSM_EOK);
	assert_int_equal(khsm_file_mkdir_p("", 0750), KHSM_EINVAL);
}

static void test_mkdir_p_links(void **state)
{
	(void)state;
	char elsewhere[256], link[256];
	snprintf(elsewhere, sizeof(elsewhere), "%s", at("elsewhere"));
	snprintf(link, sizeof(link), "%s", at("lib"));
	assert_int_equal(mkdir(elsewhere, 0700), 0);
	assert_int_equal(symlink(elsewhere, link), 0);
	struct stat st;

	/* Our own link in our own 0700 directory (as /var/lib/knot -> /srv/knot
	 * made by root): followed, the directories made behind it. */
	assert_int_equal(khsm_file_mkdir_p(at("lib/knot/archive"), 0750), KHSM_EOK);
	assert_int_equal(lstat(at("elsewhere/knot/archive"), &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	/* The same link in a directory others can write (they could swap it):
	 * refused, nothing made behind it. */
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(khsm_file_mkdir_p(at("lib/spool/archive"), 0750), KHSM_EPERM);
	assert_int_equal(chmod(dir, 0700), 0);
	assert_non_null(strstr(khsm_err_last_detail(), "symbolic link"));
	assert_non_null(strstr(khsm_err_last_detail(), "/lib"));
	assert_null(strstr(khsm_err_last_detail(), "/lib/spool"));
	assert_int_equal(lstat(at("elsewhere/spool"), &st), -1);

	/* A link someone else made (as the knot user would plant one): refused,
	 * as the last component too. Only root can give a link away. */
	if (geteuid() == 0) {
		char planted[256];
		snprintf(planted, sizeof(planted), "%s", at("planted"));
		assert_int_equal(symlink(elsewhere, planted), 0);
		assert_int_equal(lchown(planted, 65534, 65534), 0);
		assert_int_equal(khsm_file_mkdir_p(at("planted/knot"), 0750), KHSM_EPERM);
		assert_int_equal(khsm_file_mkdir_p(planted, 0750), KHSM_EPERM);
		assert_non_null(strstr(khsm_err_last_detail(), "symbolic link"));
		assert_int_equal(unlink(planted), 0);
	}
	/* A regular file in the way. */
	put(at("file"), "x", 1);
	assert_int_equal(khsm_file_mkdir_p(at("file/sub"), 0750), KHSM_EPERM);
	assert_non_null(strstr(khsm_err_last_detail(), "not a directory"));
	assert_int_equal(entries(), 3);
}

/* -- paths ---------------------------------------------------------------------- */

static void test_paths(void **state)
{
	(void)state;
	static const struct { const char *path, *base, *want; } abs[] = {
		{ "/etc/knot/knot.conf", "/x", "/etc/knot/knot.conf" },
		{ "keys", "/var/lib/knot/", "/var/lib/knot/keys" },
		{ "keys", "/", "/keys" },
		{ "a/b", "rel", "rel/a/b" },
	};
	char *s = NULL;
	for (size_t i = 0; i < sizeof(abs) / sizeof(abs[0]); i++) {
		assert_int_equal(khsm_path_absolute(abs[i].path, abs[i].base, &s), KHSM_EOK);
		assert_string_equal(s, abs[i].want);
		free(s);
	}

	static const struct { const char *path, *dir, *base; } split[] = {
		{ "/etc/knot/a.conf", "/etc/knot", "a.conf" },
		{ "/a//", "/", "a" },
		{ "a", ".", "a" },
	};
	for (size_t i = 0; i < sizeof(split) / sizeof(split[0]); i++) {
		char *d = NULL, *b = NULL;
		assert_int_equal(khsm_path_split(split[i].path, &d, &b), KHSM_EOK);
		assert_string_equal(d, split[i].dir);
		assert_string_equal(b, split[i].base);
		free(d);
		free(b);
	}
	char *d = NULL, *b = NULL;
	assert_int_equal(khsm_path_split("/x/..", &d, &b), KHSM_EINVAL);
	assert_int_equal(khsm_path_split("/", &d, &b), KHSM_EINVAL);
	assert_null(d);
	assert_null(b);

	s = khsm_path_dir("/var/lib/knot/keys");
	assert_string_equal(s, "/var/lib/knot");
	free(s);
	s = khsm_path_dir("knot.conf");
	assert_string_equal(s, ".");
	free(s);
}

/* knotd's user as the system names it, the same on every call. */
static void test_knot_ids(void **state)
{
	(void)state;
	uid_t uid = 0;
	gid_t gid = 0;
	bool found = khsm_knot_ids(&uid, &gid);
	struct passwd *pw = getpwnam("knot");
	assert_int_equal(found, pw != NULL);
	if (pw) {
		struct group *gr = getgrnam("knot");
		assert_int_equal(uid, pw->pw_uid);
		assert_int_equal(gid, gr ? gr->gr_gid : (gid_t)-1);
	} else {
		assert_int_equal(uid, (uid_t)-1);
		assert_int_equal(gid, (gid_t)-1);
	}
	uid_t again = 0;
	assert_int_equal(khsm_knot_ids(&again, NULL), found);
	assert_int_equal(again, uid);
	assert_int_equal(khsm_knot_ids(NULL, NULL), found);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_cap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_read_special, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_atomic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_refuses_link_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_refuses_link_temp, setup, teardown_rnd),
		cmocka_unit_test_setup_teardown(test_write_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p_links, setup, teardown),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_knot_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
