/* doctor: one line per check, ok / warn / FAIL with a remedy. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cleanup.h"
#include "lib/audit.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/guard/conf.h"
#include "lib/json.h"
#include "lib/keystore.h"
#include "lib/knotconf.h"
#include "lib/pcscd.h"
#include "lib/remote.h"
#include "lib/token.h"
#include "lib/uri.h"

typedef struct {
	int failed;
	int warned;
	khsm_json_t *json;   /* --json: each check is an object of the "checks" array */
} report_t;

static void line(report_t *rep, const char *status, const char *check, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void line(report_t *rep, const char *status, const char *check, const char *fmt, ...)
{
	if (strcmp(status, "FAIL") == 0) rep->failed++;
	if (strcmp(status, "warn") == 0) rep->warned++;
	va_list ap;
	va_start(ap, fmt);
	if (rep->json) {
		char *detail = NULL;
		int n = vasprintf(&detail, fmt, ap);
		khsm_json_object(rep->json, NULL);
		khsm_json_str(rep->json, "check", check);
		khsm_json_str(rep->json, "result", strcmp(status, "FAIL") == 0 ? "fail" : status);
		khsm_json_str(rep->json, "detail", n >= 0 ? detail : NULL);
		khsm_json_end(rep->json);
		free(detail);
	} else {
		printf("%-4s  %s: ", status, check);
		vprintf(fmt, ap);
		putchar('\n');
	}
	va_end(ap);
}

/* The last libknothsm error as "text: detail". */
static const char *why(int r)
{
	static char buf[2100];
	const char *d = khsm_err_last_detail();
	snprintf(buf, sizeof(buf), "%s%s%s", khsm_strerror(r), d ? ": " : "", khsm_esc(d));
	khsm_err_clear();
	return buf;
}

/* A URI for display: the value of a pin-value attribute is never shown. */
static const char *redact(const char *uri)
{
	static char buf[600];
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
static bool check_pin_file(report_t *rep, const char *check, const char *path)
{
	unsigned issues = 0;
	mode_t mode = 0;
	int r = khsm_pin_file_check(path, &issues, &mode);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", check, "%s; knotd cannot read the PIN", why(r));
		return false;
	}
	/* The rule every command applies (lib/pin.c), with its one message. */
	if (khsm_pin_file_verify("", path, false) != KHSM_EOK) {
		line(rep, "FAIL", check, "%s", khsm_err_last_detail());
		return false;
	}
	line(rep, "ok", check, "%s readable, mode %04o", path, (unsigned)mode);
	return true;
}

/* The guard module between knotd and the card: its configuration, the card
 * module it loads, its audit log (writable, chain intact). */
static void check_guard(report_t *rep, const char *name, const char *guard)
{
	char check[128];
#define GCHECK(what) (snprintf(check, sizeof(check), "%s%s%s", name, name[0] ? ": " : "", what), check)
	char *path = NULL;
	khsm_guard_conf_t conf = { 0 };
	int r = khsm_guard_conf_locate(guard, &path);
	if (r == KHSM_EOK) r = khsm_guard_conf_load(path, &conf);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", GCHECK("guard config"), "%s; write it (knot-hsm keystore --guard prints one) "
		     "or set %s", why(r), KHSM_GUARD_CONF_ENV);
		goto done;
	}
	line(rep, "ok", GCHECK("guard config"), "%s parses; card module %s, audit log %s", path,
	     conf.module, conf.audit_log);
	khsm_tokens_t *tokens = NULL;
	r = khsm_tokens_load(conf.module, false, &tokens);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", GCHECK("guard card module"), "%s", why(r));
	} else {
		line(rep, "ok", GCHECK("guard card module"), "%s loads, %zu token(s)", conf.module,
		     khsm_tokens_count(tokens));
		khsm_tokens_free(tokens);
	}
	struct stat st;
	if (stat(conf.audit_log, &st) == 0) {
		if (!S_ISREG(st.st_mode) || access(conf.audit_log, W_OK) != 0) {
			line(rep, "FAIL", GCHECK("audit log"), "%s is not a writable file: the guard refuses "
			     "logins and signatures%s", conf.audit_log, conf.fail_closed ? "" : " (or goes on "
			     "unlogged: fail_closed = no)");
		} else {
			line(rep, "ok", GCHECK("audit log"),
			     "%s writable (owner uid %u; knotd's user must be able to append)", conf.audit_log,
			     (unsigned)st.st_uid);
		}
		khsm_audit_summary_t *sum = NULL;
		r = khsm_audit_verify(conf.audit_log, &sum);
		if (r == KHSM_EOK) {
			line(rep, "ok", GCHECK("audit chain"), "%lu lines, chain intact, head %.16s…", sum->lines,
			     sum->head);
		} else if (r == KHSM_ECRYPTO) {
			line(rep, "FAIL", GCHECK("audit chain"), "%s: line %lu: %s (knot-hsm audit verify %s)",
			     conf.audit_log, sum->broken_line, sum->reason, conf.audit_log);
			khsm_err_clear();
		} else {
			line(rep, "FAIL", GCHECK("audit chain"), "%s", why(r));
		}
		khsm_audit_summary_free(sum);
	} else {
		char *copy = strdup(conf.audit_log);
		char *slash = copy ? strrchr(copy, '/') : NULL;
		if (slash) *slash = '\0';
		if (copy && access(*copy ? copy : "/", W_OK) == 0) {
			line(rep, "ok", GCHECK("audit log"), "%s will be created on the first call", conf.audit_log);
		} else {
			line(rep, "FAIL", GCHECK("audit log"), "%s does not exist and its directory is not "
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
static void check_config(report_t *rep, const char *name, const char *config,
                         const khsm_pin_t *pin, bool force)
{
	char check[128];
#define CHECK(what) (snprintf(check, sizeof(check), "%s%s%s", name, name[0] ? ": " : "", what), check)

	char *uri = NULL, *module = NULL;
	int r = khsm_uri_split_config(config, &uri, &module);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", CHECK("config"), "%s; write \"<pkcs11-uri> <module-path>\"", why(r));
		return;
	}

	struct stat st;
	bool module_ok = stat(module, &st) == 0 && S_ISREG(st.st_mode);
	const char *raw = first_unencoded(uri);
	if (!module_ok && strchr(module, ' ')) {
		line(rep, "FAIL", CHECK("uri encoding"),
		     "the token URI has an unencoded space: Knot splits the config at the first space "
		     "and tries to load module '%s' (\"failed to load PKCS #11 module\"); percent-encode "
		     "the label, e.g. with: knot-hsm uri --token 'LABEL'", module);
		goto done;
	}
	if (raw) {
		line(rep, "FAIL", CHECK("uri encoding"), "'%c' must be percent-encoded in '%s'; "
		     "knot-hsm uri --token 'LABEL' prints a correct URI", *raw, redact(uri));
	} else {
		line(rep, "ok", CHECK("uri encoding"), "%s", redact(uri));
	}
	if (!module_ok) {
		line(rep, "FAIL", CHECK("module path"), "%s does not exist; give the full path of the "
		     "PKCS #11 module (p11-kit list-modules shows the registered ones)", module);
		goto done;
	}
	if (khsm_guard_is_module(module)) {
		check_guard(rep, name, module);
	}
	char *sock = NULL;
	if (khsm_remote_is_client(module) && (r = khsm_remote_check(&sock)) != KHSM_EOK) {
		line(rep, "FAIL", CHECK("remote socket"), "%s", why(r));
		goto done;
	} else if (sock) {
		line(rep, "ok", CHECK("remote socket"), "a p11-kit server answers on %s", sock);
		free(sock);
	}

	khsm_uri_t attrs = { 0 };
	r = khsm_uri_parse(uri, &attrs);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", CHECK("uri"), "%s", why(r));
		goto done;
	}
	bool has_pin = attrs.pin_source || attrs.pin_value || pin;
	bool pin_usable = true;
	if (attrs.pin_value) {
		line(rep, "FAIL", CHECK("pin source"), "the PIN is in clear text in the config "
		     "(pin-value); put it in a 0600 file and use pin-source (knot-hsm keystore --pin-file)");
	} else if (attrs.pin_source) {
		pin_usable = check_pin_file(rep, CHECK("pin source"), attrs.pin_source);
	} else if (pin) {
		line(rep, "warn", CHECK("pin source"), "PIN given on a descriptor; knotd itself needs "
		     "pin-source=<file> in the URI");
	}

	khsm_tokens_t *tokens = NULL;
	r = khsm_tokens_load(module, false, &tokens);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", CHECK("module"), "%s", why(r));
		khsm_uri_clear(&attrs);
		goto done;
	}
	line(rep, "ok", CHECK("module"), "%s loads", module);
	bool pcscd_down = false;
	if (khsm_pcscd_module_uses(module)) {
		pcscd_down = khsm_pcscd_check() != KHSM_EOK;
		if (pcscd_down) {
			line(rep, "FAIL", CHECK("pcscd"), "%s", khsm_esc(khsm_err_last_detail()));
			khsm_err_clear();
		} else {
			line(rep, "ok", CHECK("pcscd"), "answers on %s", khsm_pcscd_socket());
		}
	}

	const khsm_token_t *t = NULL;
	r = attrs.token ? khsm_tokens_find(tokens, attrs.token, attrs.serial, &t) : KHSM_EINVAL;
	if (r == KHSM_EAMBIGUOUS) {
		line(rep, "ok", CHECK("token present"), "'%s'", attrs.token);
		line(rep, "FAIL", CHECK("label unique"), "%s", why(r));
	} else if (r != KHSM_EOK) {
		line(rep, "FAIL", CHECK("token present"), "%s", attrs.token ? why(r) :
		     "the URI names no token (token=LABEL)");
		if (!pcscd_down && khsm_tokens_count(tokens) == 0 && khsm_tokens_empty_slots(tokens) > 0) {
			line(rep, "FAIL", CHECK("card in reader"), "the module sees a reader (%zu empty "
			     "slot(s)) but no card in it: insert the card", khsm_tokens_empty_slots(tokens));
		}
	} else {
		line(rep, "ok", CHECK("token present"), "'%s' serial %s", t->label, t->serial);
		line(rep, "ok", CHECK("label unique"), "one token labelled '%s'", t->label);
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
		line(rep, "FAIL", CHECK("pin flags"), "%s", why(r));
		may_login = false;
	} else if (flags & KHSM_TOKEN_PIN_FINAL_TRY) {
		r = khsm_login_precheck(flags, force);
		line(rep, force ? "warn" : "FAIL", CHECK("pin flags"), "final try: one more wrong PIN "
		     "locks the token%s", force ? "" : "; login check skipped (use --force)");
		may_login = force;
	} else if (flags & KHSM_TOKEN_PIN_COUNT_LOW) {
		line(rep, "warn", CHECK("pin flags"), "a wrong PIN was entered recently; few tries left");
	} else if (!(flags & KHSM_TOKEN_INITIALIZED)) {
		line(rep, "FAIL", CHECK("pin flags"), "token not initialised (sc-hsm-tool --initialize "
		     "or softhsm2-util --init-token)");
	} else {
		line(rep, "ok", CHECK("pin flags"), "no failed logins reported");
	}

	char *caps = khsm_token_caps_text(t);
	if (t->caps) {
		line(rep, "ok", CHECK("dnssec mechanisms"), "%s", caps ? caps : "?");
	} else {
		line(rep, "FAIL", CHECK("dnssec mechanisms"), "the token offers no DNSSEC algorithm "
		     "(needs key generation and CKM_ECDSA, CKM_EDDSA or CKM_RSA_PKCS signing)");
	}
	free(caps);
	khsm_tokens_free(tokens);

	khsm_keystore_t *ks = NULL;
	r = khsm_keystore_open(config, &ks);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", CHECK("libdnssec"), "%s", why(r));
		goto done;
	}
	line(rep, "ok", CHECK("libdnssec"), "keystore opens as knotd opens it");

	if (!(flags & KHSM_TOKEN_LOGIN_REQUIRED)) {
		line(rep, "ok", CHECK("login"), "the token needs no login");
	} else if (!may_login) {
		line(rep, "FAIL", CHECK("login"), "not attempted (PIN flags above)");
	} else if (!pin_usable) {
		line(rep, "FAIL", CHECK("login"), "not attempted: a wrong PIN costs one of the card's "
		     "few tries; fix the PIN file first");
	} else if (!has_pin && !(flags & KHSM_TOKEN_PROTECTED_PATH)) {
		line(rep, "FAIL", CHECK("login"), "no PIN source: knotd needs pin-source=<file> "
		     "(give --pin-file, or fix the keystore config)");
	} else {
		r = khsm_keystore_login(ks, pin, force);
		if (r == KHSM_EOK) {
			line(rep, "ok", CHECK("login"), "one login through GnuTLS succeeded");
		} else {
			line(rep, "FAIL", CHECK("login"), "%s", why(r));
		}
	}
	khsm_keystore_close(ks);
done:
	free(uri);
	free(module);
#undef CHECK
}


static int doctor_token(report_t *rep, cli_t *cli)
{
	khsm_tokens_t *tokens = NULL;
	int r = khsm_tokens_load(cli->module, cli->module == NULL, &tokens);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", "module", "%s", why(r));
		return CLI_FAIL;
	}
	line(rep, "ok", "module", "%s", cli->module ? cli->module : "modules registered with p11-kit load");
	const char *failures = khsm_tokens_failures(tokens);
	if (failures) {
		line(rep, "warn", "module", "some modules failed: %s", failures);
	}

	const khsm_token_t *t = NULL;
	khsm_uri_t want = { 0 };
	char label[64];
	snprintf(label, sizeof(label), "%s", cli->token);
	if (strncmp(cli->token, "pkcs11:", 7) == 0) {
		r = khsm_uri_parse(cli->token, &want);
		if (r != KHSM_EOK || !want.token) {
			line(rep, "FAIL", "token present", "%s", r != KHSM_EOK ? why(r) :
			     "the token URI has no token= attribute");
			khsm_uri_clear(&want);
			khsm_tokens_free(tokens);
			return CLI_FAIL;
		}
		snprintf(label, sizeof(label), "%s", want.token);
	}
	r = khsm_tokens_find(tokens, label, want.serial, &t);
	bool by_serial = want.serial != NULL;
	khsm_uri_clear(&want);
	if (r == KHSM_EAMBIGUOUS) {
		line(rep, "ok", "token present", "'%s'", label);
		line(rep, "FAIL", "label unique", "%s", why(r));
	} else if (r != KHSM_EOK) {
		line(rep, "FAIL", "token present", "%s", why(r));
	}
	if (r != KHSM_EOK) {
		khsm_tokens_free(tokens);
		return CLI_FAIL;
	}

	_cleanup_pin_ khsm_pin_t *pin = NULL;
	char *pin_path = NULL;
	if (cli->pin_file) {
		/* Absolute, final component as given: a symlink meets the PIN-file rule. */
		char cwd[4096];
		if (cli->pin_file[0] == '/') {
			pin_path = strdup(cli->pin_file);
		} else if (getcwd(cwd, sizeof(cwd)) && asprintf(&pin_path, "%s/%s", cwd, cli->pin_file) < 0) {
			pin_path = NULL;
		}
		if (!pin_path || access(pin_path, F_OK) != 0) {
			free(pin_path);
			pin_path = NULL;
			line(rep, "FAIL", "pin source", "%s does not exist", cli->pin_file);
		}
	} else if (cli->pin_fd >= 0) {
		r = khsm_pin_from_fd(cli->pin_fd, &pin);
		if (r != KHSM_EOK) {
			line(rep, "FAIL", "pin source", "%s", why(r));
		}
	}
	char *config = NULL;
	r = t->module_path ? khsm_uri_keystore_config(by_serial ? t->uri_serial : t->uri_short, pin_path,
	                                              NULL, t->module_path, &config)
	                   : KHSM_EMODULE;
	free(pin_path);
	khsm_tokens_free(tokens);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", "config", "%s", why(r));
		return CLI_FAIL;
	}
	check_config(rep, "", config, pin, cli->force);
	free(config);
	return CLI_OK;
}

static int doctor_conf(report_t *rep, cli_t *cli)
{
	khsm_conf_t *conf = NULL;
	int r = khsm_conf_load(cli->conf, &conf);
	if (r != KHSM_EOK) {
		line(rep, "FAIL", "knot.conf", "%s", why(r));
		return CLI_FAIL;
	}
	line(rep, "ok", "knot.conf", "%s is valid for knotc", cli->conf);
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
			line(rep, "FAIL", name, "no config");
			continue;
		}
		check_config(rep, name, ks->config, NULL, cli->force);
		if (!ks->key_label) {
			line(rep, "warn", name, "key-label is off: keys Knot generates get no label on "
			     "the card; set 'key-label: on'");
		}
	}
	if (checked == 0) {
		line(rep, "FAIL", "keystore", "%s has no pkcs11 keystore; add one "
		     "(knot-hsm keystore --token LABEL --pin-file FILE prints it)", cli->conf);
	}
	khsm_conf_free(conf);
	return CLI_OK;
}

int cmd_doctor(cli_t *cli)
{
	if (!cli->conf && !cli->token) {
		return cli_usage_error(cli_current, "doctor needs --token LABEL or -c knot.conf");
	}
	if (cli->remote) {
		int r = cli->module ? KHSM_EINVAL : khsm_remote_use(cli->remote);
		if (r != KHSM_EOK) {
			return cli->module ? cli_usage_error(cli_current, "--remote takes no --module")
			                   : cli_error(r, "--remote");
		}
		cli->module = khsm_remote_client_module();
	}
	report_t rep = { 0 };
	khsm_json_t j;
	if (cli->json) {
		khsm_json_init(&j, stdout, KHSM_JSON_LINES);
		khsm_json_object(&j, NULL);
		khsm_json_array(&j, "checks");
		rep.json = &j;
	}
	if (cli->conf) {
		doctor_conf(&rep, cli);
	} else {
		doctor_token(&rep, cli);
	}
	if (cli->json) {
		khsm_json_end(&j);
		khsm_json_int(&j, "failed", rep.failed);
		khsm_json_int(&j, "warnings", rep.warned);
		khsm_json_end(&j);
		putchar('\n');
	} else {
		printf("%d failed, %d warnings\n", rep.failed, rep.warned);
	}
	return rep.failed ? CLI_FAIL : CLI_OK;
}
