/* Unit tests of lib/json.c: the string escaper (control characters, bytes
 * that are not UTF-8, NULs inside a length-delimited label) and the writer
 * (separators, keys and line breaks in each style, empty containers,
 * nesting, null strings). */
#include "test.h"

#include "lib/json.h"

static char *quote_n(const char *text, size_t len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	assert_non_null(f);
	khsm_json_string_n(f, text, len);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void test_escape(void **state)
{
	(void)state;
	const char in[] = "a\"b\\c\x01" "d\n\t\x1f/\xc3\xbc\x7f";
	char *out = quote_n(in, sizeof(in) - 1);
	assert_string_equal(out, "\"a\\\"b\\\\c\\u0001d\\n\\t\\u001f/\xc3\xbc\\u007f\"");
	free(out);
	out = quote_n("", 0);
	assert_string_equal(out, "\"\"");
	free(out);
	/* Not UTF-8: a lone continuation byte, a truncated sequence, an overlong
	 * '/', a surrogate; and a NUL inside the label. */
	const char bad[] = "\x80x\xe2\x82" "y\xc0\xaf\xed\xa0\x80" "\0z";
	out = quote_n(bad, sizeof(bad) - 1);
	assert_string_equal(out, "\"\\u0080x\\u00e2\\u0082y\\u00c0\\u00af\\u00ed\\u00a0\\u0080\\u0000z\"");
	free(out);
	/* 4-byte UTF-8 passes as it is. */
	out = quote_n("\xf0\x9f\x94\x91", 4);
	assert_string_equal(out, "\"\xf0\x9f\x94\x91\"");
	free(out);
	/* khsm_json_string: NULL is null. */
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	khsm_json_string(f, NULL);
	fputc(' ', f);
	khsm_json_string(f, "t\u00e9");
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, "null \"t\u00e9\"");
	free(buf);
}

typedef struct {
	char *buf;
	size_t size;
	FILE *f;
	khsm_json_t j;
} out_t;

static void out_open(out_t *o, khsm_json_style_t style)
{
	o->buf = NULL;
	o->f = open_memstream(&o->buf, &o->size);
	assert_non_null(o->f);
	khsm_json_init(&o->j, o->f, style);
}

/* Closes the stream and returns what was written (owned by o). */
static const char *out_text(out_t *o)
{
	assert_int_equal(o->j.depth, 0);
	assert_int_equal(fclose(o->f), 0);
	return o->buf;
}

/* The document every style writes: an array of two objects with scalars,
 * a nested array of strings, an array of objects and an empty array. */
static void sample(khsm_json_t *j)
{
	khsm_json_array(j, NULL);
	khsm_json_object(j, NULL);
	khsm_json_str(j, "id", "card");
	khsm_json_array(j, "ids");
	khsm_json_str(j, NULL, "card");
	khsm_json_str(j, NULL, "knot-hsm-card");
	khsm_json_end(j);
	khsm_json_array(j, "keys");
	khsm_json_object(j, NULL);
	khsm_json_int(j, "tag", -1);
	khsm_json_uint(j, "bits", 256);
	khsm_json_end(j);
	khsm_json_object(j, NULL);
	khsm_json_bool(j, "unused", true);
	khsm_json_null(j, "zone");
	khsm_json_str(j, "label", NULL);
	khsm_json_end(j);
	khsm_json_end(j);
	khsm_json_array(j, "missing");
	khsm_json_end(j);
	khsm_json_end(j);
	khsm_json_object(j, NULL);
	khsm_json_str(j, "id", "x\"y");
	khsm_json_end(j);
	khsm_json_end(j);
}

/* The sample in each style. */
static void test_styles(void **state)
{
	(void)state;
	static const struct {
		khsm_json_style_t style;
		const char *want;
	} CASES[] = {
		{ KHSM_JSON_LINES,
		  "[\n"
		  "  {\"id\": \"card\", \"ids\": [\"card\", \"knot-hsm-card\"], \"keys\": [\n"
		  "    {\"tag\": -1, \"bits\": 256},\n"
		  "    {\"unused\": true, \"zone\": null, \"label\": null}\n"
		  "  ], \"missing\": []},\n"
		  "  {\"id\": \"x\\\"y\"}\n"
		  "]" },
		{ KHSM_JSON_INLINE,
		  "[{\"id\": \"card\", \"ids\": [\"card\", \"knot-hsm-card\"], \"keys\": "
		  "[{\"tag\": -1, \"bits\": 256}, {\"unused\": true, \"zone\": null, \"label\": null}], "
		  "\"missing\": []}, {\"id\": \"x\\\"y\"}]" },
		{ KHSM_JSON_COMPACT,
		  "[{\"id\":\"card\",\"ids\":[\"card\",\"knot-hsm-card\"],\"keys\":"
		  "[{\"tag\":-1,\"bits\":256},{\"unused\":true,\"zone\":null,\"label\":null}],"
		  "\"missing\":[]},{\"id\":\"x\\\"y\"}]" },
	};
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		out_t o;
		out_open(&o, CASES[i].style);
		sample(&o.j);
		assert_string_equal(out_text(&o), CASES[i].want);
		free(o.buf);
	}
}

/* A top-level object, and a writer reused after its document ended. */
static void test_object_top(void **state)
{
	(void)state;
	out_t o;
	out_open(&o, KHSM_JSON_LINES);
	khsm_json_object(&o.j, NULL);
	khsm_json_str(&o.j, "state", "OK");
	khsm_json_array(&o.j, "zones");
	khsm_json_end(&o.j);
	khsm_json_end(&o.j);
	fputc('\n', o.f);
	khsm_json_object(&o.j, NULL);
	khsm_json_end(&o.j);
	assert_string_equal(out_text(&o), "{\"state\": \"OK\", \"zones\": []}\n{}");
	free(o.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_styles),
		cmocka_unit_test(test_object_top),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
