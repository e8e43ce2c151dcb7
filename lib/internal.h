/* Private helpers shared by libknothsm modules: cleanup attributes, visibility. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "error.h"

#define _public_ __attribute__((visibility("default")))
#define _unused_ __attribute__((unused))

#define KHSM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Take ownership of a pointer: returns it and clears the source. */
#define KHSM_STEAL(p) ({ __typeof__(p) _s = (p); (p) = NULL; _s; })

/* Strict unsigned decimal: digits only (no sign, space or trailing garbage),
 * at most max. The tools' output and the operator's input are parsed with it. */
static inline bool khsm_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !*s) {
		return false;
	}
	uint64_t v = 0;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9') {
			return false;
		}
		unsigned d = (unsigned)(*p - '0');
		if (v > (max - d) / 10) {
			return false;
		}
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Text built in memory with stdio: open, write to .f, then close (which hands
 * the text over on success and frees it otherwise). */
typedef struct {
	char *buf;
	size_t size;
	FILE *f;
} khsm_membuf_t;

static inline int khsm_membuf_open(khsm_membuf_t *m)
{
	*m = (khsm_membuf_t){ 0 };
	m->f = open_memstream(&m->buf, &m->size);
	return m->f ? KHSM_EOK : KHSM_ENOMEM;
}

static inline int khsm_membuf_close(khsm_membuf_t *m, int r, char **text_ptr)
{
	if (fclose(m->f) != 0 && r == KHSM_EOK) {
		r = KHSM_ENOMEM;
	}
	if (r != KHSM_EOK) {
		free(m->buf);
		return r;
	}
	*text_ptr = m->buf;
	return KHSM_EOK;
}
