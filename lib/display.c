/* Redacting PINs and escaping control characters for human output. */
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
