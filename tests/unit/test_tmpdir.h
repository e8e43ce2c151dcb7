/* A private temporary directory for each test, /tmp/khsm-NAME-test.XXXXXX,
 * removed with everything in it afterwards: TEST_TMPDIR_FIXTURE("name")
 * defines `dir` and the cmocka setup() and teardown() that make and remove
 * it. Shared by test_handoff.c, test_pin.c and test_files.c. */
#pragma once

#include "test.h"

#include <stdio.h>
#include <stdlib.h>

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
