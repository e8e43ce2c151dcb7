/* A private temporary directory for each test, /tmp/khsm-NAME-test.XXXXXX,
 * removed with everything in it afterwards: TEST_TMPDIR_FIXTURE("name")
 * defines `dir` and the cmocka setup() and teardown() that make and remove
 * it; tmpdir_write() puts a file there. Shared by test_handoff.c,
 * test_pin.c and test_files.c. */
#pragma once

#include "test.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEST_TMPDIR_FIXTURE(name)                                              \
	static char dir[64];                                                       \
	static int setup(void **state)                                             \
	{                                                                          \
		(void)state;                                                           \
		snprintf(dir, sizeof(dir), "/tmp/khsm-%s-test.XXXXXX", name);          \
		return mkdtemp(dir) ? 0 : -1;                                          \
	}                                                                          \
	static int teardown(void **state)                                          \
	{                                                                          \
		(void)state;                                                           \
		char cmd[128];                                                         \
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);                        \
		return system(cmd) == 0 ? 0 : -1;                                      \
	}

/* Write len bytes of text to path (created or truncated), mode set through
 * the descriptor (the umask does not change it). */
static inline void tmpdir_write(const char *path, const char *text, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}
