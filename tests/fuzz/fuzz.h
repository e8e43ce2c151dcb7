/* Shared by the libFuzzer targets: the input as a C string, and checks that
 * abort (libFuzzer reports an abort as a crash, with the input saved). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* Parsers read text: a NUL-terminated copy of the input (an embedded NUL
 * ends the text, as it would for a C caller). NULL when out of memory. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
	}
	return text;
}

/* A property that must hold for every input. */
#define FUZZ_ASSERT(cond) do { \
	if (!(cond)) { \
		fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
		abort(); \
	} \
} while (0)

/* A libknothsm result: success or one of its own codes, never anything else. */
#define FUZZ_ASSERT_CODE(r) FUZZ_ASSERT((r) == KHSM_EOK || \
	((r) >= KHSM_ENOMEM && (r) < KHSM_ERROR_LAST))
