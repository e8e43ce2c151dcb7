/* Redacting PINs and escaping control characters for human output. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "display.h"
#include "error.h"
#include "internal.h"

/* -- redaction -- */

#define PIN_VALUE "pin-value="

/* The next "pin-value=" in text, any case, or NULL. */
static char *next_pin_value(const char *text)
{
	return strcasestr(text, PIN_VALUE);
}

_public_
void khsm_redact_buf(char *buf, size_t size)
{
	if (!buf || size == 0) {
		return;
	}
	buf[size - 1] = '\0';
	for (char *p = next_pin_value(buf); p; p = next_pin_value(p)) {
		p += strlen(PIN_VALUE);
		/* A value ends where a URI attribute, a config or a sentence goes on. */
		size_t vlen = strcspn(p, ";?&#, \t\r\n'\")>");
		size_t tail = strlen(p + vlen);
		size_t room = size - 1 - (size_t)(p - buf);
		size_t mask = room < 3 ? room : 3;
		size_t keep = tail < room - mask ? tail : room - mask;
		memmove(p + mask, p + vlen, keep);
		memcpy(p, "***", mask);
		p[mask + keep] = '\0';
		p += mask;
	}
}

_public_
int khsm_redact(const char *text, char **out_ptr)
{
	if (!text || !out_ptr) {
		return KHSM_EINVAL;
	}
	size_t n = 0;
	for (const char *p = next_pin_value(text); p; p = next_pin_value(p + 1)) {
		n++;
	}
	size_t size = strlen(text) + 3 * n + 1;
	char *out = malloc(size);
	if (!out) {
		return KHSM_ENOMEM;
	}
	memcpy(out, text, size - 3 * n);
	khsm_redact_buf(out, size);
	*out_ptr = out;
	return KHSM_EOK;
}

/* -- escaping -- */

/* Length of the valid UTF-8 sequence at s (1-4), 0 when it is not one.
 * Overlong forms, surrogates and code points above U+10FFFF are not valid. */
static size_t utf8_len(const unsigned char *s, uint32_t *cp_ptr)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;
	if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
	else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
	else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
	else return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) return 0;   /* also stops at the NUL */
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff)) {
		return 0;
	}
	*cp_ptr = cp;
	return len;
}

/* Escape text into out (room for size bytes, NUL included); the length the
 * whole escaped text needs, as snprintf() returns it. */
static size_t escape_into(const char *text, char *out, size_t size)
{
	static const char HEX[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)text;
	size_t n = 0;
#define PUT(ch) do { if (n + 1 < size) out[n] = (char)(ch); n++; } while (0)
	while (*s) {
		uint32_t cp = 0;
		size_t len = *s < 0x80 ? (*s >= 0x20 && *s != 0x7f) : utf8_len(s, &cp);
		if (len > 1 && !(cp >= 0x80 && cp <= 0x9f)) {
			for (size_t i = 0; i < len; i++) PUT(s[i]);
			s += len;
		} else if (len == 1) {
			PUT(*s);
			s++;
		} else {
			/* A control character or a byte that is not UTF-8: each byte. */
			size_t bytes = len > 1 ? len : 1;
			for (size_t i = 0; i < bytes; i++, s++) {
				PUT('\\');
				PUT('x');
				PUT(HEX[*s >> 4]);
				PUT(HEX[*s & 0xf]);
			}
		}
	}
#undef PUT
	if (size > 0) out[n < size ? n : size - 1] = '\0';
	return n;
}

static bool needs_escape(const char *text)
{
	const unsigned char *s = (const unsigned char *)text;
	while (*s) {
		uint32_t cp = 0;
		size_t len = *s < 0x80 ? (*s >= 0x20 && *s != 0x7f) : utf8_len(s, &cp);
		if (len == 0 || (len > 1 && cp >= 0x80 && cp <= 0x9f)) {
			return true;
		}
		s += len;
	}
	return false;
}

_public_
int khsm_escape(const char *text, char **out_ptr)
{
	if (!text || !out_ptr) {
		return KHSM_EINVAL;
	}
	size_t need = escape_into(text, NULL, 0) + 1;
	char *out = malloc(need);
	if (!out) {
		return KHSM_ENOMEM;
	}
	escape_into(text, out, need);
	*out_ptr = out;
	return KHSM_EOK;
}

#define ESC_SLOTS 8
#define ESC_SIZE 4096

_public_
const char *khsm_esc(const char *text)
{
	static __thread char slots[ESC_SLOTS][ESC_SIZE];
	static __thread unsigned next;
	if (!text) {
		return "";
	}
	if (!needs_escape(text)) {
		return text;
	}
	char *out = slots[next++ % ESC_SLOTS];
	if (escape_into(text, out, ESC_SIZE) >= ESC_SIZE) {
		memcpy(out + ESC_SIZE - 4, "...", 4);
	}
	return out;
}
