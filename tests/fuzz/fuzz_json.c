/* The JSON string escaper (lib/json.c khsm_json_string_n) on arbitrary bytes,
 * as token labels are: the output must be a JSON string whose raw bytes are
 * UTF-8 by RFC 3629 (checked here by its own table, not by json.c's code)
 * with no raw control character, and decoding it must give the input back. */
#include "fuzz.h"
#include "json.h"

/* Length of the RFC 3629 (section 4) UTF-8 sequence at s, 0 if none. */
static size_t rfc3629_len(const uint8_t *s, size_t n)
{
	static const struct { uint8_t lo, hi, lo2, hi2; size_t len; } ROWS[] = {
		{ 0x00, 0x7f, 0, 0, 1 },
		{ 0xc2, 0xdf, 0x80, 0xbf, 2 },
		{ 0xe0, 0xe0, 0xa0, 0xbf, 3 }, { 0xe1, 0xec, 0x80, 0xbf, 3 },
		{ 0xed, 0xed, 0x80, 0x9f, 3 }, { 0xee, 0xef, 0x80, 0xbf, 3 },
		{ 0xf0, 0xf0, 0x90, 0xbf, 4 }, { 0xf1, 0xf3, 0x80, 0xbf, 4 },
		{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
	};
	for (size_t r = 0; r < sizeof(ROWS) / sizeof(ROWS[0]); r++) {
		if (s[0] < ROWS[r].lo || s[0] > ROWS[r].hi) continue;
		size_t len = ROWS[r].len;
		if (len == 1) return 1;
		if (n < len || s[1] < ROWS[r].lo2 || s[1] > ROWS[r].hi2) return 0;
		for (size_t i = 2; i < len; i++) {
			if (s[i] < 0x80 || s[i] > 0xbf) return 0;
		}
		return len;
	}
	return 0;
}

static int hexval(uint8_t c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = NULL;
	size_t out_len = 0;
	FILE *f = open_memstream(&out, &out_len);
	if (!f) return 0;
	khsm_json_string_n(f, (const char *)data, size);
	FUZZ_ASSERT(fclose(f) == 0);

	const uint8_t *o = (const uint8_t *)out;
	FUZZ_ASSERT(out_len >= 2 && o[0] == '"' && o[out_len - 1] == '"');
	uint8_t *back = malloc(size + 1);
	FUZZ_ASSERT(back != NULL);
	size_t n = 0;
	for (size_t i = 1; i < out_len - 1;) {
		FUZZ_ASSERT(n < size + 1);
		if (o[i] == '\\') {
			FUZZ_ASSERT(i + 1 < out_len - 1);
			uint8_t e = o[i + 1];
			const char *simple = strchr("\"\\bfnrt", e);
			if (e != 'u' && simple) {
				back[n++] = (uint8_t)"\"\\\b\f\n\r\t"[simple - "\"\\bfnrt"];
				i += 2;
				continue;
			}
			/* \u00XX: a control character or a byte that is not UTF-8. */
			FUZZ_ASSERT(e == 'u' && i + 5 < out_len - 1 && o[i + 2] == '0' && o[i + 3] == '0');
			int hi = hexval(o[i + 4]), lo = hexval(o[i + 5]);
			FUZZ_ASSERT(hi >= 0 && lo >= 0);
			back[n++] = (uint8_t)(hi * 16 + lo);
			i += 6;
			continue;
		}
		FUZZ_ASSERT(o[i] >= 0x20 && o[i] != 0x7f && o[i] != '"');
		size_t len = rfc3629_len(o + i, out_len - 1 - i);
		FUZZ_ASSERT(len > 0);
		FUZZ_ASSERT(n + len <= size);
		memcpy(back + n, o + i, len);
		n += len;
		i += len;
	}
	FUZZ_ASSERT(n == size && memcmp(back, data, size) == 0);
	free(back);
	free(out);
	return 0;
}
