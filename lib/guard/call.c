/* The audit line of a call: one hash-chained JSON line per call (lib/audit.c)
 * saying who (pid, process name), what (function, slot, session, mechanism,
 * key label and id, data length) and the result; never a PIN, never
 * attribute values or data. A call that changes keys, objects or PINs writes
 * an intent line first. When the log cannot be written and the guard fails
 * closed, security-relevant calls fail with CKR_FUNCTION_FAILED (fail_closed
 * = no: they go on, with a warning on stderr). */
#include <stdarg.h>
#include <syslog.h>
#include <time.h>

#include "internal.h"
#include "../timefmt.h"

void khsm_guard_call_add(call_t *c, const char *fmt, ...)
{
	if (!c->m) return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(c->m, fmt, ap);
	va_end(ap);
}

static void warn_log(const char *what)
{
	if (__atomic_exchange_n(&khsm_guard.warned_log, true, __ATOMIC_RELAXED)) return;
	const char *d = khsm_err_last_detail();
	khsm_guard_warn("%s%s", d ? d : what, khsm_guard.conf.fail_closed
	                ? "; logins, signatures and key changes are refused (fail_closed = yes)"
	                : "; going on without it (fail_closed = no)");
}

void khsm_guard_call_begin(call_t *c, const char *fn, unsigned flags)
{
	memset(c, 0, sizeof(*c));
	c->fn = fn;
	c->flags = flags;
	c->fd = -1;
	c->m = open_memstream(&c->extra, &c->extra_len);
	khsm_err_clear();
	c->open_error = khsm_audit_open(khsm_guard.conf.audit_log, &c->fd);
	if (c->open_error != KHSM_EOK) warn_log("cannot open the audit log");
}

/* May the call go to the card? Not when its line cannot be written and the
 * guard fails closed. */
static bool call_allowed(const call_t *c)
{
	return c->open_error == KHSM_EOK || !(c->flags & SEC) || !khsm_guard.conf.fail_closed;
}

static CK_RV take_card(call_t *c, CK_SLOT_ID slot)
{
	if (!call_allowed(c)) return CKR_FUNCTION_FAILED;
	c->card = khsm_guard_slot_get(slot);
	if (!c->card) return CKR_HOST_MEMORY;
	khsm_guard_card_lock(c->card);
	return CKR_OK;
}

CK_RV khsm_guard_call_on_slot(call_t *c, const char *fn, unsigned flags, CK_SLOT_ID slot)
{
	khsm_guard_call_begin(c, fn, flags);
	c->have_slot = true;
	c->slot = slot;
	return take_card(c, slot);
}

CK_RV khsm_guard_call_on_session(call_t *c, const char *fn, unsigned flags, CK_SESSION_HANDLE h,
                                 session_t **s_ptr)
{
	khsm_guard_call_begin(c, fn, flags);
	c->have_session = true;
	c->session = h;
	session_t *s = khsm_guard_session_find(h);
	*s_ptr = s;
	if (!s) return CKR_SESSION_HANDLE_INVALID;
	c->have_slot = true;
	c->slot = s->slot;
	return take_card(c, s->slot);
}

static bool want_sync(const call_t *c)
{
	switch (khsm_guard.conf.fsync) {
	case KHSM_GUARD_FSYNC_ALL: return true;
	case KHSM_GUARD_FSYNC_NONE: return false;
	default: return c->flags & SEC;
	}
}

/* Record the log's head (line count and hash of the last line) where the
 * log's writers cannot change it: the anchor file (root's; only a process
 * running as root writes it) and/or syslog. A failure is warned about once;
 * it never fails a call. */
static void anchor(int fd)
{
	if (!khsm_guard.conf.anchor_file && !khsm_guard.conf.anchor_syslog) return;
	unsigned long lines = 0;
	char head[KHSM_AUDIT_HASH_SIZE];
	khsm_err_clear();
	int r = khsm_audit_head(fd, &lines, head);
	if (r == KHSM_EOK && khsm_guard.conf.anchor_syslog) {
		syslog(LOG_AUTHPRIV | LOG_NOTICE, "knot-hsm-guard: audit log %s lines=%lu head=%s",
		       khsm_guard.conf.audit_log, lines, head);
	}
	if (r == KHSM_EOK && khsm_guard.conf.anchor_file && geteuid() == 0) {
		r = khsm_audit_anchor_write(khsm_guard.conf.anchor_file, lines, head, khsm_guard.comm);
	}
	if (r != KHSM_EOK && !__atomic_exchange_n(&khsm_guard.warned_anchor, true, __ATOMIC_RELAXED)) {
		const char *d = khsm_err_last_detail();
		khsm_guard_warn("%s; the audit log is not anchored", d ? d : "cannot write the audit anchor");
	}
}

void khsm_guard_call_anchor(void)
{
	const khsm_guard_conf_t *conf = &khsm_guard.conf;
	int fd = -1;
	if ((conf->anchor_file || conf->anchor_syslog) && khsm_audit_open(conf->audit_log, &fd) == KHSM_EOK) {
		anchor(fd);
		close(fd);
	}
}

/* Append one line with what was collected so far and the given closing
 * members (,"rv":"…" or ,"intent":true). KHSM_E* code. */
static int write_line(call_t *c, const char *closing, bool sync)
{
	if (c->open_error != KHSM_EOK) return c->open_error;
	if (c->m) fflush(c->m);
	char when[KHSM_TIME_ISO_SIZE];
	khsm_time_iso_now_ms(when, sizeof(when));
	char *comm = NULL;
	khsm_audit_json_string(khsm_guard.comm, strlen(khsm_guard.comm), &comm);
	char slot_txt[48] = "", sess_txt[48] = "";
	if (c->have_slot) snprintf(slot_txt, sizeof(slot_txt), ",\"slot\":%lu", c->slot);
	if (c->have_session) snprintf(sess_txt, sizeof(sess_txt), ",\"session\":%lu", c->session);
	char *body = NULL;
	if (asprintf(&body, "\"time\":\"%s\",\"pid\":%ld,\"comm\":%s,\"fn\":\"%s\"%s%s%s%s",
	             when, (long)getpid(), comm ? comm : "\"?\"", c->fn, slot_txt, sess_txt,
	             c->extra ? c->extra : "", closing) < 0) {
		body = NULL;
	}
	free(comm);
	khsm_err_clear();
	int r = body ? khsm_audit_append(c->fd, body, sync) : KHSM_ENOMEM;
	free(body);
	if (r != KHSM_EOK) {
		warn_log("cannot write the audit log");
	} else {
		__atomic_store_n(&khsm_guard.warned_log, false, __ATOMIC_RELAXED);
		if (khsm_guard.conf.anchor_every && __atomic_add_fetch(&khsm_guard.appended, 1, __ATOMIC_RELAXED) %
		                           khsm_guard.conf.anchor_every == 0) {
			anchor(c->fd);
		}
	}
	return r;
}

CK_RV khsm_guard_call_intent(call_t *c)
{
	if ((c->flags & CHANGE) != CHANGE || c->intent_done) return CKR_OK;
	c->intent_done = true;
	int r = write_line(c, ",\"intent\":true", khsm_guard.conf.fsync != KHSM_GUARD_FSYNC_NONE);
	return r != KHSM_EOK && khsm_guard.conf.fail_closed ? CKR_FUNCTION_FAILED : CKR_OK;
}

CK_RV khsm_guard_call_end(call_t *c, CK_RV rv)
{
	if (c->card) {
		khsm_guard_card_unlock(c->card);
		c->card = NULL;
	}
	char rvbuf[32], closing[64];
	snprintf(closing, sizeof(closing), ",\"rv\":\"%s\"", khsm_guard_ckr_name(rv, rvbuf, sizeof(rvbuf)));
	int r = write_line(c, closing, want_sync(c));
	if (c->m) fclose(c->m);
	c->m = NULL;
	if (c->fd >= 0) close(c->fd);
	free(c->extra);
	c->extra = NULL;
	if (r != KHSM_EOK && (c->flags & SEC) && khsm_guard.conf.fail_closed && rv == CKR_OK) {
		if (c->wipe && c->wipe_len) {
			explicit_bzero(c->wipe, *c->wipe_len);
		}
		return CKR_FUNCTION_FAILED;
	}
	return rv;
}

/* -- object descriptions (label and id, never values) -- */

CK_RV khsm_guard_attr(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type,
                      unsigned char **out_ptr, CK_ULONG *len_ptr)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv = khsm_guard.fl->C_GetAttributeValue(h, obj, &a, 1);
	if (rv != CKR_OK) return rv;
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 65536) return CKR_ATTRIBUTE_TYPE_INVALID;
	a.pValue = malloc(a.ulValueLen + 1);
	if (!a.pValue) return CKR_HOST_MEMORY;
	rv = a.ulValueLen ? khsm_guard.fl->C_GetAttributeValue(h, obj, &a, 1) : CKR_OK;
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	((unsigned char *)a.pValue)[a.ulValueLen] = '\0';
	*out_ptr = a.pValue;
	*len_ptr = a.ulValueLen;
	return CKR_OK;
}

char *khsm_guard_describe(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const char *handle_key)
{
	char *out = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&out, &n);
	if (!m) return NULL;
	fprintf(m, ",\"%s\":%lu", handle_key, obj);
	unsigned char *v = NULL;
	CK_ULONG len = 0;
	if (khsm_guard_attr(h, obj, CKA_LABEL, &v, &len) == CKR_OK) {
		char *j = NULL;
		if (khsm_audit_json_string((char *)v, len, &j) == KHSM_EOK) fprintf(m, ",\"label\":%s", j);
		free(j);
		free(v);
	}
	if (khsm_guard_attr(h, obj, CKA_ID, &v, &len) == CKR_OK) {
		fputs(",\"id\":\"", m);
		for (CK_ULONG i = 0; i < len; i++) fprintf(m, "%02x", v[i]);
		fputc('"', m);
		free(v);
	}
	fclose(m);
	return out;
}

void khsm_guard_call_object(call_t *c, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE obj, const char *handle_key)
{
	char *d = khsm_guard_describe(h, obj, handle_key);
	if (d) khsm_guard_call_add(c, "%s", d);
	free(d);
}

void khsm_guard_call_attr_types(call_t *c, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
	khsm_guard_call_add(c, ",\"attrs\":[");
	for (CK_ULONG i = 0; tmpl && i < n && i < 64; i++) {
		char b[32];
		khsm_guard_call_add(c, "%s\"%s\"", i ? "," : "", khsm_guard_cka_name(tmpl[i].type, b, sizeof(b)));
	}
	khsm_guard_call_add(c, "]");
}
