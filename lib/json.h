/* JSON output for --json and format=json: string escaping, and a small writer
 * that places the commas, colons and line breaks so commands only say what
 * goes where. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Write s as a JSON string literal (with quotes) to f; NULL writes null.
 *  Control characters and bytes that are not valid UTF-8 are escaped as
 *  \u00XX, so the output is valid JSON whatever the input. */
void khsm_json_string(FILE *f, const char *s);
/** The same for len bytes of s (which may hold NULs, e.g. a CKA_LABEL). */
void khsm_json_string_n(FILE *f, const char *s, size_t len);

/** How a writer lays its output out. */
typedef enum {
	/** ", " and ": "; an object inside an array starts a line of its own,
	 *  indented two spaces per level, and that array closes on its own line. */
	KHSM_JSON_LINES,
	/** ", " and ": ", all on one line. */
	KHSM_JSON_INLINE,
	/** "," and ":", no spaces (for registries' tools). */
	KHSM_JSON_COMPACT,
} khsm_json_style_t;

#define KHSM_JSON_DEPTH 8

typedef struct {
	FILE *f;
	khsm_json_style_t style;
	unsigned depth;
	char close[KHSM_JSON_DEPTH];     /**< '}' or ']' of each open container */
	bool any[KHSM_JSON_DEPTH];       /**< it has an element already */
	bool broken[KHSM_JSON_DEPTH];    /**< an element of it started a new line */
} khsm_json_t;

/** Start writing one JSON value to f. */
void khsm_json_init(khsm_json_t *j, FILE *f, khsm_json_style_t style);

/* In an object, key names the member; in an array (or at the top) key is
 * NULL. Deeper than KHSM_JSON_DEPTH containers is a programming error and
 * aborts. */
void khsm_json_object(khsm_json_t *j, const char *key);
void khsm_json_array(khsm_json_t *j, const char *key);
/** Close the innermost open object or array. */
void khsm_json_end(khsm_json_t *j);

/** A string member or element; NULL writes null. */
void khsm_json_str(khsm_json_t *j, const char *key, const char *value);
void khsm_json_int(khsm_json_t *j, const char *key, int64_t value);
void khsm_json_uint(khsm_json_t *j, const char *key, uint64_t value);
void khsm_json_bool(khsm_json_t *j, const char *key, bool value);
void khsm_json_null(khsm_json_t *j, const char *key);
