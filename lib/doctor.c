/* doctor: every check of a keystore as knotd would use it (module, URI,
 * PIN source, token, PIN flags, mechanisms, libdnssec, one login), of the
 * guard in front of the card, and of knot.conf's pkcs11 keystores. Each
 * result is handed to the caller's report function as it is found; the CLI
 * prints them. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "display.h"
#include "doctor.h"
#include "error.h"
#include "guard/conf.h"
#include "guardsetup.h"
#include "internal.h"
#include "keystore.h"
#include "knotconf.h"
#include "pcscd.h"
#include "pin.h"
#include "remote.h"
#include "token.h"
#include "uri.h"

_public_
const char *khsm_doctor_status_name(khsm_doctor_status_t status)
{
	switch (status) {
	case KHSM_DOCTOR_OK:   return "ok";
	case KHSM_DOCTOR_WARN: return "warn";
	default:               return "FAIL";
	}
}

static void line(khsm_doctor_t *rep, khsm_doctor_status_t status, const char *check, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void line(khsm_doctor_t *rep, khsm_doctor_status_t status, const char *check, const char *fmt, ...)
{
	if (status == KHSM_DOCTOR_FAIL) rep->failed++;
	if (status == KHSM_DOCTOR_WARN) rep->warned++;
	va_list ap;
	va_start(ap, fmt);
	char *detail = NULL;
	int n = vasprintf(&detail, fmt, ap);
	va_end(ap);
	rep->report(status, check, n >= 0 ? detail : NULL, rep->data);
	if (n >= 0) free(detail);
}

/* The last libknothsm error as "text: detail". */
static const char *why(int r)
{
	static __thread char buf[2100];
	const char *d = khsm_err_last_detail();
	snprintf(buf, sizeof(buf), "%s%s%s", khsm_strerror(r), d ? ": " : "", khsm_esc(d));
	khsm_err_clear();
	return buf;
}

/* A URI for display: the value of a pin-value attribute is never shown. */
static const char *redact(const char *uri)
{
	static __thread char buf[600];
	snprintf(buf, sizeof(buf), "%s", uri);
	khsm_redact_buf(buf, sizeof(buf));
	return buf;
}

/* RFC 7512 path and query characters that may stand unencoded in a URI. */
static const char *first_unencoded(const char *uri)
{
	static const char OK[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	                         "-._~%:;=&?/";
	for (const char *p = uri; *p; p++) {
		if (!strchr(OK, *p)) {
			return p;
		}
	}
	return NULL;
}

/* Returns false when the file must not be used for a login (each wrong PIN
 * costs one of the card's few tries). */
static bool check_pin_file(khsm_doctor_t *rep, const char *check, const char *path)
{
	unsigned issues = 0;
	mode_t mode = 0;
	int r = khsm_pin_file_check(path, &issues, &mode);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, check, "%s; knotd cannot read the PIN", why(r));
		return false;
	}
	/* The rule every command applies (lib/pin.c), with its one message. */
	if (khsm_pin_file_verify("", path, false) != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, check, "%s", khsm_err_last_detail());
		return false;
	}
	line(rep, KHSM_DOCTOR_OK, check, "%s readable, mode %04o", path, (unsigned)mode);
	return true;
}

/* The guard module between knotd and the card: its configuration, the card
 * module it loads, its audit log (writable, chain intact). */
static void check_guard(khsm_doctor_t *rep, const char *name, const char *guard, const char *uri)
{
	char check[128];
#define GCHECK(what) (snprintf(check, sizeof(check), "%s%s%s", name, name[0] ? ": " : "", what), check)
	char *path = NULL;
	khsm_guard_conf_t conf = { 0 };
	int r = khsm_guard_conf_locate(guard, &path);
	if (r == KHSM_EOK) r = khsm_guard_conf_load(path, &conf);
	bool unset = false;
	if (r != KHSM_EOK && path && khsm_guard_conf_unset(path, &unset) == KHSM_EOK && unset) {
		/* None yet, or the package's all-comments file: one command sets it up. */
		khsm_err_clear();
		char *cmd = NULL;
		if (khsm_guard_setup_command_uri(uri, &cmd) == KHSM_EOK) {
			line(rep, KHSM_DOCTOR_FAIL, GCHECK("guard config"), "%s %s; run %s: it writes the "
			     "configuration and creates the audit log for knotd's user", path,
			     access(path, F_OK) == 0 ? "sets nothing (comments only)" : "does not exist", cmd);
			free(cmd);
			goto done;
		}
	}
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, GCHECK("guard config"), "%s; fix it or set %s", why(r), KHSM_GUARD_CONF_ENV);
		goto done;
	}
	line(rep, KHSM_DOCTOR_OK, GCHECK("guard config"), "%s parses; card module %s, audit log %s", path,
	     conf.module, conf.audit_log);
	khsm_tokens_t *tokens = NULL;
	r = khsm_tokens_load(conf.module, false, &tokens);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, GCHECK("guard card module"), "%s", why(r));
	} else {
		line(rep, KHSM_DOCTOR_OK, GCHECK("guard card module"), "%s loads, %zu token(s)", conf.module,
		     khsm_tokens_count(tokens));
		khsm_tokens_free(tokens);
	}
	struct stat st;
	if (stat(conf.audit_log, &st) == 0) {
		if (!S_ISREG(st.st_mode) || access(conf.audit_log, W_OK) != 0) {
			line(rep, KHSM_DOCTOR_FAIL, GCHECK("audit log"), "%s is not a writable file: the guard refuses "
			     "logins and signatures%s", conf.audit_log, conf.fail_closed ? "" : " (or goes on "
			     "unlogged: fail_closed = no)");
		} else {
			line(rep, KHSM_DOCTOR_OK, GCHECK("audit log"),
			     "%s writable (owner uid %u; knotd's user must be able to append)", conf.audit_log,
			     (unsigned)st.st_uid);
		}
		khsm_audit_summary_t *sum = NULL;
		r = khsm_audit_verify(conf.audit_log, &sum);
		if (r == KHSM_EOK) {
			line(rep, KHSM_DOCTOR_OK, GCHECK("audit chain"), "%lu lines, chain intact, head %.16s…", sum->lines,
			     sum->head);
		} else if (r == KHSM_ECRYPTO) {
			line(rep, KHSM_DOCTOR_FAIL, GCHECK("audit chain"), "%s: line %lu: %s (knot-hsm audit verify %s)",
			     conf.audit_log, sum->broken_line, sum->reason, conf.audit_log);
			khsm_err_clear();
		} else {
			line(rep, KHSM_DOCTOR_FAIL, GCHECK("audit chain"), "%s", why(r));
		}
		khsm_audit_summary_free(sum);
	} else {
		char *copy = strdup(conf.audit_log);
		char *slash = copy ? strrchr(copy, '/') : NULL;
		if (slash) *slash = '\0';
		if (copy && access(*copy ? copy : "/", W_OK) == 0) {
			line(rep, KHSM_DOCTOR_OK, GCHECK("audit log"), "%s will be created on the first call", conf.audit_log);
		} else {
			line(rep, KHSM_DOCTOR_FAIL, GCHECK("audit log"), "%s does not exist and its directory is not "
			     "writable", conf.audit_log);
		}
		free(copy);
	}
done:
	free(path);
	khsm_guard_conf_clear(&conf);
#undef GCHECK
}

/* Every check of one keystore config string, as knotd would use it. */
_public_
int khsm_doctor_config(khsm_doctor_t *rep, const char *name, const char *config,
                       const khsm_pin_t *pin, bool force)
{
	if (!rep || !rep->report || !name || !config) {
		return KHSM_EINVAL;
	}
	char check[128];
#define CHECK(what) (snprintf(check, sizeof(check), "%s%s%s", name, name[0] ? ": " : "", what), check)

	char *uri = NULL, *module = NULL;
	int r = khsm_uri_split_config(config, &uri, &module);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("config"), "%s; write \"<pkcs11-uri> <module-path>\"", why(r));
		return KHSM_EOK;
	}

	struct stat st;
	bool module_ok = stat(module, &st) == 0 && S_ISREG(st.st_mode);
	const char *raw = first_unencoded(uri);
	if (!module_ok && strchr(module, ' ')) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("uri encoding"),
		     "the token URI has an unencoded space: Knot splits the config at the first space "
		     "and tries to load module '%s' (\"failed to load PKCS #11 module\"); percent-encode "
		     "the label, e.g. with: knot-hsm uri --token 'LABEL'", module);
		goto done;
	}
	if (raw) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("uri encoding"), "'%c' must be percent-encoded in '%s'; "
		     "knot-hsm uri --token 'LABEL' prints a correct URI", *raw, redact(uri));
	} else {
		line(rep, KHSM_DOCTOR_OK, CHECK("uri encoding"), "%s", redact(uri));
	}
	if (!module_ok) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("module path"), "%s does not exist; give the full path of the "
		     "PKCS #11 module (p11-kit list-modules shows the registered ones)", module);
		goto done;
	}
	if (khsm_guard_is_module(module)) {
		check_guard(rep, name, module, uri);
	}
	char *sock = NULL;
	if (khsm_remote_is_client(module) && (r = khsm_remote_check(&sock)) != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("remote socket"), "%s", why(r));
		goto done;
	} else if (sock) {
		line(rep, KHSM_DOCTOR_OK, CHECK("remote socket"), "a p11-kit server answers on %s", sock);
		free(sock);
	}

	khsm_uri_t attrs = { 0 };
	r = khsm_uri_parse(uri, &attrs);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("uri"), "%s", why(r));
		goto done;
	}
	bool has_pin = attrs.pin_source || attrs.pin_value || pin;
	bool pin_usable = true;
	if (attrs.pin_value) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("pin source"), "the PIN is in clear text in the config "
		     "(pin-value); put it in a 0600 file and use pin-source (knot-hsm keystore --pin-file)");
	} else if (attrs.pin_source) {
		pin_usable = check_pin_file(rep, CHECK("pin source"), attrs.pin_source);
	} else if (pin) {
		line(rep, KHSM_DOCTOR_WARN, CHECK("pin source"), "PIN given on a descriptor; knotd itself needs "
		     "pin-source=<file> in the URI");
	}

	khsm_tokens_t *tokens = NULL;
	r = khsm_tokens_load(module, false, &tokens);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("module"), "%s", why(r));
		khsm_uri_clear(&attrs);
		goto done;
	}
	line(rep, KHSM_DOCTOR_OK, CHECK("module"), "%s loads", module);
	bool pcscd_down = false;
	if (khsm_pcscd_module_uses(module)) {
		pcscd_down = khsm_pcscd_check() != KHSM_EOK;
		if (pcscd_down) {
			line(rep, KHSM_DOCTOR_FAIL, CHECK("pcscd"), "%s", khsm_esc(khsm_err_last_detail()));
			khsm_err_clear();
		} else {
			line(rep, KHSM_DOCTOR_OK, CHECK("pcscd"), "answers on %s", khsm_pcscd_socket());
		}
	}

	const khsm_token_t *t = NULL;
	r = attrs.token ? khsm_tokens_find(tokens, attrs.token, attrs.serial, &t) : KHSM_EINVAL;
	if (r == KHSM_EAMBIGUOUS) {
		line(rep, KHSM_DOCTOR_OK, CHECK("token present"), "'%s'", attrs.token);
		line(rep, KHSM_DOCTOR_FAIL, CHECK("label unique"), "%s", why(r));
	} else if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("token present"), "%s", attrs.token ? why(r) :
		     "the URI names no token (token=LABEL)");
		if (!pcscd_down && khsm_tokens_count(tokens) == 0 && khsm_tokens_empty_slots(tokens) > 0) {
			line(rep, KHSM_DOCTOR_FAIL, CHECK("card in reader"), "the module sees a reader (%zu empty "
			     "slot(s)) but no card in it: insert the card", khsm_tokens_empty_slots(tokens));
		}
	} else {
		line(rep, KHSM_DOCTOR_OK, CHECK("token present"), "'%s' serial %s", t->label, t->serial);
		line(rep, KHSM_DOCTOR_OK, CHECK("label unique"), "one token labelled '%s'", t->label);
	}
	khsm_uri_clear(&attrs);
	if (!t) {
		khsm_tokens_free(tokens);
		goto done;
	}

	unsigned flags = t->flags;
	bool may_login = true;
	if (flags & KHSM_TOKEN_PIN_LOCKED) {
		r = khsm_login_precheck(flags, force);
		line(rep, KHSM_DOCTOR_FAIL, CHECK("pin flags"), "%s", why(r));
		may_login = false;
	} else if (flags & KHSM_TOKEN_PIN_FINAL_TRY) {
		r = khsm_login_precheck(flags, force);
		line(rep, force ? KHSM_DOCTOR_WARN : KHSM_DOCTOR_FAIL, CHECK("pin flags"), "final try: one more wrong PIN "
		     "locks the token%s", force ? "" : "; login check skipped (use --force)");
		may_login = force;
	} else if (flags & KHSM_TOKEN_PIN_COUNT_LOW) {
		line(rep, KHSM_DOCTOR_WARN, CHECK("pin flags"), "a wrong PIN was entered recently; few tries left");
	} else if (!(flags & KHSM_TOKEN_INITIALIZED)) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("pin flags"), "token not initialised (sc-hsm-tool --initialize "
		     "or softhsm2-util --init-token)");
	} else {
		line(rep, KHSM_DOCTOR_OK, CHECK("pin flags"), "no failed logins reported");
	}

	char *caps = khsm_token_caps_text(t);
	if (t->caps) {
		line(rep, KHSM_DOCTOR_OK, CHECK("dnssec mechanisms"), "%s", caps ? caps : "?");
	} else {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("dnssec mechanisms"), "the token offers no DNSSEC algorithm "
		     "(needs key generation and CKM_ECDSA, CKM_EDDSA or CKM_RSA_PKCS signing)");
	}
	free(caps);
	khsm_tokens_free(tokens);

	khsm_keystore_t *ks = NULL;
	r = khsm_keystore_open(config, &ks);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("libdnssec"), "%s", why(r));
		goto done;
	}
	line(rep, KHSM_DOCTOR_OK, CHECK("libdnssec"), "keystore opens as knotd opens it");

	if (!(flags & KHSM_TOKEN_LOGIN_REQUIRED)) {
		line(rep, KHSM_DOCTOR_OK, CHECK("login"), "the token needs no login");
	} else if (!may_login) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("login"), "not attempted (PIN flags above)");
	} else if (!pin_usable) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("login"), "not attempted: a wrong PIN costs one of the card's "
		     "few tries; fix the PIN file first");
	} else if (!has_pin && !(flags & KHSM_TOKEN_PROTECTED_PATH)) {
		line(rep, KHSM_DOCTOR_FAIL, CHECK("login"), "no PIN source: knotd needs pin-source=<file> "
		     "(give --pin-file, or fix the keystore config)");
	} else {
		r = khsm_keystore_login(ks, pin, force);
		if (r == KHSM_EOK) {
			line(rep, KHSM_DOCTOR_OK, CHECK("login"), "one login through GnuTLS succeeded");
		} else {
			line(rep, KHSM_DOCTOR_FAIL, CHECK("login"), "%s", why(r));
		}
	}
	khsm_keystore_close(ks);
done:
	free(uri);
	free(module);
	return KHSM_EOK;
#undef CHECK
}


_public_
int khsm_doctor_token(khsm_doctor_t *rep, const char *module, const char *token,
                      const char *pin_file, int pin_fd, bool force)
{
	if (!rep || !rep->report || !token) {
		return KHSM_EINVAL;
	}
	khsm_tokens_t *tokens = NULL;
	int r = khsm_tokens_load(module, module == NULL, &tokens);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, "module", "%s", why(r));
		return KHSM_EOK;
	}
	line(rep, KHSM_DOCTOR_OK, "module", "%s", module ? module : "modules registered with p11-kit load");
	const char *failures = khsm_tokens_failures(tokens);
	if (failures) {
		line(rep, KHSM_DOCTOR_WARN, "module", "some modules failed: %s", failures);
	}

	const khsm_token_t *t = NULL;
	khsm_uri_t want = { 0 };
	char label[64];
	snprintf(label, sizeof(label), "%s", token);
	if (strncmp(token, "pkcs11:", 7) == 0) {
		r = khsm_uri_parse(token, &want);
		if (r != KHSM_EOK || !want.token) {
			line(rep, KHSM_DOCTOR_FAIL, "token present", "%s", r != KHSM_EOK ? why(r) :
			     "the token URI has no token= attribute");
			khsm_uri_clear(&want);
			khsm_tokens_free(tokens);
			return KHSM_EOK;
		}
		snprintf(label, sizeof(label), "%s", want.token);
	}
	r = khsm_tokens_find(tokens, label, want.serial, &t);
	bool by_serial = want.serial != NULL;
	khsm_uri_clear(&want);
	if (r == KHSM_EAMBIGUOUS) {
		line(rep, KHSM_DOCTOR_OK, "token present", "'%s'", label);
		line(rep, KHSM_DOCTOR_FAIL, "label unique", "%s", why(r));
	} else if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, "token present", "%s", why(r));
	}
	if (r != KHSM_EOK) {
		khsm_tokens_free(tokens);
		return KHSM_EOK;
	}

	_cleanup_pin_ khsm_pin_t *pin = NULL;
	char *pin_path = NULL;
	if (pin_file) {
		/* Absolute, final component as given: a symlink meets the PIN-file rule. */
		char cwd[4096];
		if (pin_file[0] == '/') {
			pin_path = strdup(pin_file);
		} else if (getcwd(cwd, sizeof(cwd)) && asprintf(&pin_path, "%s/%s", cwd, pin_file) < 0) {
			pin_path = NULL;
		}
		if (!pin_path || access(pin_path, F_OK) != 0) {
			free(pin_path);
			pin_path = NULL;
			line(rep, KHSM_DOCTOR_FAIL, "pin source", "%s does not exist", pin_file);
		}
	} else if (pin_fd >= 0) {
		r = khsm_pin_from_fd(pin_fd, &pin);
		if (r != KHSM_EOK) {
			line(rep, KHSM_DOCTOR_FAIL, "pin source", "%s", why(r));
		}
	}
	char *config = NULL;
	r = t->module_path ? khsm_uri_keystore_config(by_serial ? t->uri_serial : t->uri_short, pin_path,
	                                              NULL, t->module_path, &config)
	                   : KHSM_EMODULE;
	free(pin_path);
	khsm_tokens_free(tokens);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, "config", "%s", why(r));
		return KHSM_EOK;
	}
	khsm_doctor_config(rep, "", config, pin, force);
	free(config);
	return KHSM_EOK;
}

_public_
int khsm_doctor_conf(khsm_doctor_t *rep, const char *conf_path, bool force)
{
	if (!rep || !rep->report || !conf_path) {
		return KHSM_EINVAL;
	}
	khsm_conf_t *conf = NULL;
	int r = khsm_conf_load(conf_path, &conf);
	if (r != KHSM_EOK) {
		line(rep, KHSM_DOCTOR_FAIL, "knot.conf", "%s", why(r));
		return KHSM_EOK;
	}
	line(rep, KHSM_DOCTOR_OK, "knot.conf", "%s is valid for knotc", conf_path);
	size_t n = khsm_conf_keystore_count(conf), checked = 0;
	for (size_t i = 0; i < n; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(conf, i);
		if (!ks->backend || strcmp(ks->backend, "pkcs11") != 0) {
			continue;
		}
		checked++;
		char name[96];
		snprintf(name, sizeof(name), "keystore %s", ks->id);
		if (!ks->config) {
			line(rep, KHSM_DOCTOR_FAIL, name, "no config");
			continue;
		}
		khsm_doctor_config(rep, name, ks->config, NULL, force);
		if (!ks->key_label) {
			line(rep, KHSM_DOCTOR_WARN, name, "key-label is off: keys Knot generates get no label on "
			     "the card; set 'key-label: on'");
		}
	}
	if (checked == 0) {
		line(rep, KHSM_DOCTOR_FAIL, "keystore", "%s has no pkcs11 keystore; add one "
		     "(knot-hsm keystore --token LABEL --pin-file FILE prints it)", conf_path);
	}
	khsm_conf_free(conf);
	return KHSM_EOK;
}
