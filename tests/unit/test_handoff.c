/* Unit tests of lib/handoff.c: a memfd a child reads by path, the private
 * temporary file when children could not reach it, and the stale cleanup. */
#include "test.h"
#include "test_tmpdir.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/handoff.h"

TEST_TMPDIR_FIXTURE("handoff")

/* What a child process reads from path (as keymgr would). */
static void child_reads(const char *path, const char *want)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		int fd = open(path, O_RDONLY);
		char buf[64] = { 0 };
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		_exit(n >= 0 && write(p[1], buf, (size_t)n) == n ? 0 : 1);
	}
	close(p[1]);
	char got[64] = { 0 };
	ssize_t n = read(p[0], got, sizeof(got) - 1);
	close(p[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(n >= 0);
	assert_string_equal(got, want);
}

static int entries(const char *path)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", path);
	return system(cmd) == 0 ? 0 : 1;
}

static void test_memfd_nothing_on_disk(void **state)
{
	(void)state;
	assert_int_equal(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
	khsm_handoff_t *h = NULL;
	assert_int_equal(khsm_handoff_new(dir, "pin", "4711", 4, &h), KHSM_EOK);
	char want[64];
	snprintf(want, sizeof(want), "/proc/%d/fd/", (int)getpid());
	assert_memory_equal(khsm_handoff_path(h), want, strlen(want));
	assert_null(khsm_handoff_dir(h));
	assert_int_equal(entries(dir), 0);
	child_reads(khsm_handoff_path(h), "4711");
	khsm_handoff_free(h);
}

static int set_ptrace_cap(bool on)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) != 0) return -1;
	if (on) data[0].effective |= 1u << CAP_SYS_PTRACE;
	else data[0].effective &= ~(1u << CAP_SYS_PTRACE);
	return (int)syscall(SYS_capset, &hdr, data);
}

static void test_fallback_file_private_and_removed(void **state)
{
	(void)state;
	/* Not dumpable and without CAP_SYS_PTRACE: a child could not open
	 * /proc/<pid>/fd, so the data goes to a private file. */
	assert_int_equal(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), 0);
	assert_int_equal(set_ptrace_cap(false), 0);
	khsm_handoff_t *h = NULL;
	int r = khsm_handoff_new(dir, "pin", "4711", 4, &h);
	(void)set_ptrace_cap(true);   /* back, when it was ours */
	assert_int_equal(prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), 0);
	assert_int_equal(r, KHSM_EOK);
	assert_non_null(khsm_handoff_dir(h));
	struct stat st;
	assert_int_equal(lstat(khsm_handoff_dir(h), &st), 0);
	assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
	assert_int_equal(lstat(khsm_handoff_path(h), &st), 0);
	assert_true(S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600);
	char want[96];
	snprintf(want, sizeof(want), "%s/knot-hsm-ceremony.%d.", dir, (int)getpid());
	assert_memory_equal(khsm_handoff_dir(h), want, strlen(want));
	child_reads(khsm_handoff_path(h), "4711");
	/* A live run's directory (ours) is not stale. */
	unsigned removed = 99;
	assert_int_equal(khsm_handoff_clean_stale(dir, &removed), KHSM_EOK);
	assert_int_equal(removed, 0);
	khsm_handoff_free(h);
	assert_int_equal(entries(dir), 0);
}

static void test_clean_stale(void **state)
{
	(void)state;
	char d1[128], d2[128], f[160], link[128], victim[128];
	snprintf(d1, sizeof(d1), "%s/knot-hsm-ceremony.99999999.aaaaaa", dir);
	snprintf(d2, sizeof(d2), "%s/knot-hsm-ceremony.bbbbbb", dir);
	assert_int_equal(mkdir(d1, 0700), 0);
	assert_int_equal(mkdir(d2, 0700), 0);
	snprintf(f, sizeof(f), "%s/pin", d1);
	tmpdir_write(f, "4711", 4, 0600);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	assert_int_equal(mkdir(victim, 0700), 0);
	snprintf(link, sizeof(link), "%s/knot-hsm-ceremony.1.cccccc", dir);
	assert_int_equal(symlink(victim, link), 0);
	unsigned removed = 0;
	assert_int_equal(khsm_handoff_clean_stale(dir, &removed), KHSM_EOK);
	assert_int_equal(removed, 2);
	struct stat st;
	assert_int_not_equal(lstat(d1, &st), 0);
	assert_int_not_equal(lstat(d2, &st), 0);
	assert_int_equal(lstat(link, &st), 0);   /* a symlink is never followed nor removed */
	assert_int_equal(lstat(victim, &st), 0);
	unlink(link);
	rmdir(victim);
}

/* An empty private directory of this run: a run killed before it removed
 * its own leaves it to the stale cleanup. */
static void test_empty_dir(void **state)
{
	(void)state;
	char *d = NULL;
	assert_int_equal(khsm_handoff_empty_dir(dir, &d), KHSM_EOK);
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "%s/knot-hsm-empty.%d.", dir, (int)getpid());
	assert_int_equal(strncmp(d, prefix, strlen(prefix)), 0);
	struct stat st;
	assert_int_equal(lstat(d, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(entries(d), 0);
	unsigned removed = 0;
	assert_int_equal(khsm_handoff_clean_stale(dir, &removed), KHSM_EOK);
	assert_int_equal(removed, 0);   /* this run lives */
	assert_int_equal(rmdir(d), 0);
	free(d);
	/* one a killed run left: removed, not counted as a PIN directory */
	char gone[160];
	snprintf(gone, sizeof(gone), "%s/knot-hsm-empty.99999999.aaaaaa", dir);
	assert_int_equal(mkdir(gone, 0700), 0);
	assert_int_equal(khsm_handoff_clean_stale(dir, &removed), KHSM_EOK);
	assert_int_equal(removed, 0);
	assert_int_not_equal(lstat(gone, &st), 0);
	assert_int_equal(khsm_handoff_empty_dir(dir, NULL), KHSM_EINVAL);
}

/* A served card's socket directory: private, this run's; a killed run's,
 * socket and all, goes with the stale cleanup, not counted. */
static void test_socket_dir(void **state)
{
	(void)state;
	char *d = NULL;
	assert_int_equal(khsm_handoff_socket_dir(dir, &d), KHSM_EOK);
	char prefix[160];
	snprintf(prefix, sizeof(prefix), "%s/knot-hsm-serve.%d.", dir, (int)getpid());
	assert_int_equal(strncmp(d, prefix, strlen(prefix)), 0);
	struct stat st;
	assert_int_equal(lstat(d, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	unsigned removed = 1;
	assert_int_equal(khsm_handoff_clean_stale(dir, &removed), KHSM_EOK);
	assert_int_equal(removed, 0);
	assert_int_equal(lstat(d, &st), 0);   /* this run lives: kept */
	assert_int_equal(rmdir(d), 0);
	free(d);
	char gone[160], sock[200];
	snprintf(gone, sizeof(gone), "%s/knot-hsm-serve.99999999.aaaaaa", dir);
	snprintf(sock, sizeof(sock), "%s/pkcs11", gone);
	assert_int_equal(mkdir(gone, 0700), 0);
	assert_int_equal(mknod(sock, S_IFSOCK | 0600, 0), 0);
	assert_int_equal(khsm_handoff_clean_stale(dir, &removed), KHSM_EOK);
	assert_int_equal(removed, 0);
	assert_int_not_equal(lstat(gone, &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memfd_nothing_on_disk),
		cmocka_unit_test(test_fallback_file_private_and_removed),
		cmocka_unit_test(test_clean_stale),
		cmocka_unit_test(test_empty_dir),
		cmocka_unit_test(test_socket_dir),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
