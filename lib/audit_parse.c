/* Audit log: reading one line, a strict parser for the JSON objects the guard
 * writes, and its one-line text rendering. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "audit_internal.h"
#include "error.h"
#include "internal.h"

/* -- reading: a strict parser for the JSON objects the guard writes -- */

typedef struct {
	const char *p;
	const char *end;
	int depth;
} cur_t;

void khsm_audit_entry_clear(khsm_audit_entry_t *e)
{
	char **fields[] = { &e->time, &e->comm, &e->fn, &e->label, &e->id, &e->mech, &e->rv, &e->prev,
	                    &e->software, &e->query, &e->pin, &e->user, &e->pid, &e->slot, &e->session,
	                    &e->len, &e->card_mech, &e->intent, &e->torn };
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(fields); i++) {
		free(*fields[i]);
		*fields[i] = NULL;
	}
}

static char **entry_field(khsm_audit_entry_t *e, const char *key)
{
	static const struct { const char *name; size_t off; } MAP[] = {
#define F(n) { #n, offsetof(khsm_audit_entry_t, n) }
		F(time), F(comm), F(fn), F(label), F(id), F(mech), F(rv), F(prev), F(software),
		F(query), F(pin), F(user), F(pid), F(slot), F(session), F(len), F(card_mech), F(intent),
		F(torn),
#undef F
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(MAP); i++) {
		if (strcmp(MAP[i].name, key) == 0) {
			return (char **)((char *)e + MAP[i].off);
		}
	}
	return NULL;
}

static void skip_ws(cur_t *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9') return ch - '0';
	if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
	return -1;
}

/* A string literal; *out (may be NULL: skip) gets the decoded text. */
static bool parse_string(cur_t *c, char **out)
{
	if (c->p >= c->end || *c->p != '"') return false;
	c->p++;
	size_t cap = (size_t)(c->end - c->p) * 3 + 1;
	char *buf = out ? malloc(cap) : NULL;
	if (out && !buf) return false;
	size_t n = 0;
	while (c->p < c->end && *c->p != '"') {
		unsigned char ch = (unsigned char)*c->p++;
		if (ch < 0x20) goto bad;
		if (ch != '\\') {
			if (buf) buf[n++] = (char)ch;
			continue;
		}
		if (c->p >= c->end) goto bad;
		char esc = *c->p++;
		char lit = 0;
		switch (esc) {
		case '"': lit = '"'; break;
		case '\\': lit = '\\'; break;
		case '/': lit = '/'; break;
		case 'b': lit = '\b'; break;
		case 'f': lit = '\f'; break;
		case 'n': lit = '\n'; break;
		case 'r': lit = '\r'; break;
		case 't': lit = '\t'; break;
		case 'u': {
			if (c->end - c->p < 4) goto bad;
			unsigned v = 0;
			for (int i = 0; i < 4; i++) {
				int h = hexval(c->p[i]);
				if (h < 0) goto bad;
				v = v << 4 | (unsigned)h;
			}
			c->p += 4;
			if (buf) {
				if (v < 0x80) {
					buf[n++] = (char)v;
				} else if (v < 0x800) {
					buf[n++] = (char)(0xc0 | v >> 6);
					buf[n++] = (char)(0x80 | (v & 0x3f));
				} else {
					buf[n++] = (char)(0xe0 | v >> 12);
					buf[n++] = (char)(0x80 | ((v >> 6) & 0x3f));
					buf[n++] = (char)(0x80 | (v & 0x3f));
				}
			}
			continue;
		}
		default: goto bad;
		}
		if (buf) buf[n++] = lit;
	}
	if (c->p >= c->end) goto bad;
	c->p++;
	if (out) {
		buf[n] = '\0';
		*out = buf;
	}
	return true;
bad:
	free(buf);
	return false;
}

static bool parse_number(cur_t *c, char **out)
{
	const char *s = c->p;
	if (c->p < c->end && *c->p == '-') c->p++;
	if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
	if (*c->p == '0') {
		c->p++;
	} else {
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
	}
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-')) c->p++;
		if (c->p >= c->end || *c->p < '0' || *c->p > '9') return false;
		while (c->p < c->end && *c->p >= '0' && *c->p <= '9') c->p++;
	}
	if (out && !(*out = strndup(s, (size_t)(c->p - s)))) return false;
	return true;
}

static bool parse_value(cur_t *c, char **out);

/* An object; at depth 0 the members are stored in e. */
static bool parse_object(cur_t *c, khsm_audit_entry_t *e)
{
	if (c->p >= c->end || *c->p != '{' || ++c->depth > 8) return false;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == '}') {
		c->p++;
		c->depth--;
		return true;
	}
	for (;;) {
		skip_ws(c);
		char *key = NULL;
		if (!parse_string(c, &key)) return false;
		skip_ws(c);
		if (c->p >= c->end || *c->p != ':') { free(key); return false; }
		c->p++;
		skip_ws(c);
		char **slot = e ? entry_field(e, key) : NULL;
		free(key);
		if (slot && *slot) return false;  /* duplicate member */
		if (!parse_value(c, slot)) return false;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') { c->p++; continue; }
		if (c->p < c->end && *c->p == '}') { c->p++; c->depth--; return true; }
		return false;
	}
}

static bool parse_array(cur_t *c)
{
	if (c->p >= c->end || *c->p != '[' || ++c->depth > 8) return false;
	c->p++;
	skip_ws(c);
	if (c->p < c->end && *c->p == ']') { c->p++; c->depth--; return true; }
	for (;;) {
		skip_ws(c);
		if (!parse_value(c, NULL)) return false;
		skip_ws(c);
		if (c->p < c->end && *c->p == ',') { c->p++; continue; }
		if (c->p < c->end && *c->p == ']') { c->p++; c->depth--; return true; }
		return false;
	}
}

static bool parse_literal(cur_t *c, const char *lit, char **out)
{
	size_t n = strlen(lit);
	if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0) return false;
	c->p += n;
	if (out && !(*out = strdup(lit))) return false;
	return true;
}

static bool parse_value(cur_t *c, char **out)
{
	if (c->p >= c->end) return false;
	switch (*c->p) {
	case '"': return parse_string(c, out);
	case '{': return !out && parse_object(c, NULL);
	case '[': return !out && parse_array(c);
	case 't': return parse_literal(c, "true", out);
	case 'f': return parse_literal(c, "false", out);
	case 'n': return parse_literal(c, "null", out);
	default: return parse_number(c, out);
	}
}

/* A whole line as one object, nothing after it. Known members whose value
 * is an object or array make the line invalid (parse_value refuses). */
bool khsm_audit_entry_parse(const char *line, size_t len, khsm_audit_entry_t *e)
{
	cur_t c = { line, line + len, 0 };
	if (!parse_object(&c, e)) return false;
	skip_ws(&c);
	return c.p == c.end;
}

/* -- one line as text -- */

static size_t utf8_len(const unsigned char *p, size_t left)
{
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || n > left || (p[0] >= 0xf8)) return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) return 0;
	}
	if (n == 2 && p[0] == 0xc2 && p[1] < 0xa0) return 0;        /* C1 controls */
	if (n == 3 && p[0] == 0xe0 && p[1] < 0xa0) return 0;        /* overlong */
	if (n == 3 && p[0] == 0xed && p[1] >= 0xa0) return 0;       /* surrogates */
	if (n == 4 && p[0] == 0xf0 && p[1] < 0x90) return 0;
	if (n == 4 && p[0] == 0xf4 && p[1] >= 0x90) return 0;
	return n;
}

static void put_escaped(FILE *m, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		if (p[i] == '\\') {
			fputs("\\\\", m);
			i++;
		} else if (p[i] >= 0x20 && p[i] < 0x7f) {
			fputc(p[i++], m);
		} else {
			size_t n = p[i] >= 0x80 ? utf8_len(p + i, len - i) : 0;
			if (n) {
				fwrite(p + i, 1, n, m);
				i += n;
			} else {
				fprintf(m, "\\x%02x", p[i++]);
			}
		}
	}
}

static void put_text(FILE *m, const char *s)
{
	put_escaped(m, s, strlen(s));
}

_public_
int khsm_audit_text_escape(const char *s, size_t len, char **text_ptr)
{
	if ((!s && len) || !text_ptr) return KHSM_EINVAL;
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);
	if (!m) return KHSM_ENOMEM;
	put_escaped(m, s ? s : "", len);
	if (fclose(m) != 0 || !out) {
		free(out);
		return KHSM_ENOMEM;
	}
	*text_ptr = out;
	return KHSM_EOK;
}

_public_
int khsm_audit_line_text(const char *line, size_t len, char **text_ptr)
{
	khsm_audit_entry_t e = { 0 };
	if (!khsm_audit_entry_parse(line, len, &e) || !e.fn) {
		khsm_audit_entry_clear(&e);
		khsm_err_detail("not an audit line");
		return KHSM_EPARSE;
	}
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);
	if (!m) {
		khsm_audit_entry_clear(&e);
		return KHSM_ENOMEM;
	}
	/* Card labels and process names are anyone's text: escaped (\xNN). */
	put_text(m, e.time ? e.time : "?");
	fputc(' ', m);
	put_text(m, e.comm ? e.comm : "?");
	fputc('[', m);
	put_text(m, e.pid ? e.pid : "?");
	fputs("] ", m);
	put_text(m, e.fn);
	if (khsm_audit_is_true(e.intent)) fputs(" (intent)", m);
	if (e.slot) { fputs(" slot ", m); put_text(m, e.slot); }
	if (e.session) { fputs(" session ", m); put_text(m, e.session); }
	if (e.user) { fputc(' ', m); put_text(m, e.user); }
	if (e.label || e.id) {
		fputc(':', m);
		if (e.label) { fputc(' ', m); put_text(m, e.label); }
		if (e.id) { fputs(" id=", m); put_text(m, e.id); }
	}
	if (e.mech) { fputc(' ', m); put_text(m, e.mech); }
	if (e.card_mech) { fputs(" (card ", m); put_text(m, e.card_mech); fputc(')', m); }
	if (e.len) { fputc(' ', m); put_text(m, e.len); fputs(" bytes", m); }
	if (khsm_audit_is_true(e.query)) fprintf(m, " (length query)");
	if (e.rv || !khsm_audit_is_true(e.intent)) {
		fputs(" -> ", m);
		put_text(m, e.rv ? e.rv : "?");
	}
	if (khsm_audit_is_true(e.software)) fputs(" (software)", m);
	fclose(m);
	khsm_audit_entry_clear(&e);
	if (!out) return KHSM_ENOMEM;
	*text_ptr = out;
	return KHSM_EOK;
}
