/* JSON output: string escaping (RFC 8259 §7) and the writer. */
#include "internal.h"
#include "json.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Length of a valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	uint32_t cp;
	if (s[0] < 0x80) return 1;
	if ((s[0] & 0xe0) == 0xc0) { need = 2; cp = s[0] & 0x1f; }
	else if ((s[0] & 0xf0) == 0xe0) { need = 3; cp = s[0] & 0x0f; }
	else if ((s[0] & 0xf8) == 0xf0) { need = 4; cp = s[0] & 0x07; }
	else return 0;
	if (n < need) return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80) return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	static const uint32_t MIN[] = { 0, 0, 0x80, 0x800, 0x10000 };
	if (cp < MIN[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
	return need;
}

_public_
void khsm_json_string_n(FILE *f, const char *s, size_t len)
{
	fputc('"', f);
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		size_t n = 1;
		switch (c) {
		case '"':  fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			/* Token labels are bytes, not always UTF-8: a byte that starts
			 * no valid sequence is written as the code point of its value,
			 * so the output stays valid JSON. */
			n = c < 0x80 ? 1 : utf8_len(p + i, len - i);
			if (c < 0x20 || c == 0x7f || n == 0) {
				fprintf(f, "\\u%04x", c);
				n = 1;
			} else {
				fwrite(p + i, 1, n, f);
			}
		}
		i += n;
	}
	fputc('"', f);
}

_public_
void khsm_json_string(FILE *f, const char *s)
{
	if (!s) {
		fputs("null", f);
		return;
	}
	khsm_json_string_n(f, s, strlen(s));
}

/* -- the writer -- */

_public_
void khsm_json_init(khsm_json_t *j, FILE *f, khsm_json_style_t style)
{
	*j = (khsm_json_t){ .f = f, .style = style };
}

/* A new line, indented two spaces per array open (objects add no level:
 * their members stay on the line of the object). */
static void indent(khsm_json_t *j)
{
	fputc('\n', j->f);
	for (unsigned i = 0; i < j->depth; i++) {
		if (j->close[i] == ']') {
			fputs("  ", j->f);
		}
	}
}

/* Before any value: the separator from the previous element, a new line
 * for an object in an array (LINES), and the key inside an object. */
static void element(khsm_json_t *j, const char *key, bool is_object)
{
	const bool compact = j->style == KHSM_JSON_COMPACT;
	if (j->depth > 0) {
		unsigned d = j->depth - 1;
		bool own_line = j->style == KHSM_JSON_LINES && is_object && j->close[d] == ']';
		if (j->any[d]) {
			fputs(compact || own_line ? "," : ", ", j->f);
		}
		if (own_line) {
			indent(j);
			j->broken[d] = true;
		}
		j->any[d] = true;
		if (key && j->close[d] == '}') {
			khsm_json_string(j->f, key);
			fputs(compact ? ":" : ": ", j->f);
		}
	}
}

static void open_container(khsm_json_t *j, const char *key, char open, char close)
{
	element(j, key, open == '{');
	if (j->depth >= KHSM_JSON_DEPTH) {
		abort();
	}
	fputc(open, j->f);
	j->close[j->depth] = close;
	j->any[j->depth] = false;
	j->broken[j->depth] = false;
	j->depth++;
}

_public_
void khsm_json_object(khsm_json_t *j, const char *key)
{
	open_container(j, key, '{', '}');
}

_public_
void khsm_json_array(khsm_json_t *j, const char *key)
{
	open_container(j, key, '[', ']');
}

_public_
void khsm_json_end(khsm_json_t *j)
{
	if (j->depth == 0) {
		abort();
	}
	j->depth--;
	if (j->broken[j->depth]) {
		indent(j);
	}
	fputc(j->close[j->depth], j->f);
}

_public_
void khsm_json_str(khsm_json_t *j, const char *key, const char *value)
{
	element(j, key, false);
	khsm_json_string(j->f, value);
}

_public_
void khsm_json_int(khsm_json_t *j, const char *key, int64_t value)
{
	element(j, key, false);
	fprintf(j->f, "%" PRId64, value);
}

_public_
void khsm_json_uint(khsm_json_t *j, const char *key, uint64_t value)
{
	element(j, key, false);
	fprintf(j->f, "%" PRIu64, value);
}

_public_
void khsm_json_bool(khsm_json_t *j, const char *key, bool value)
{
	element(j, key, false);
	fputs(value ? "true" : "false", j->f);
}

_public_
void khsm_json_null(khsm_json_t *j, const char *key)
{
	element(j, key, false);
	fputs("null", j->f);
}
