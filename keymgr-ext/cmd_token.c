/* Token-wide commands: tokens, uri, keystore. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cleanup.h"
#include "lib/cardkey.h"
#include "lib/confgen.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/guard/conf.h"
#include "lib/guardsetup.h"
#include "lib/json.h"
#include "lib/keystore.h"
#include "lib/remote.h"
#include "lib/token.h"
#include "lib/uri.h"


int cli_pin(const cli_t *cli, bool prompt, khsm_pin_t **pin_ptr)
{
	*pin_ptr = NULL;
	if (cli->pin_file && cli->pin_fd >= 0) {
		khsm_err_detail("give --pin-file or --pin-fd, not both");
		return KHSM_EINVAL;
	}
	if (cli->pin_file) {
		return khsm_pin_from_file(cli->pin_file, cli->force, pin_ptr);
	}
	if (cli->pin_fd >= 0) {
		return khsm_pin_from_fd(cli->pin_fd, pin_ptr);
	}
	if (prompt) {
		return khsm_pin_prompt("User PIN: ", pin_ptr);
	}
	return KHSM_EOK;
}

static const struct { unsigned bit; const char *name; } FLAG_NAMES[] = {
	{ KHSM_TOKEN_LOGIN_REQUIRED, "login-required" },
	{ KHSM_TOKEN_PROTECTED_PATH, "protected-authentication-path" },
	{ KHSM_TOKEN_USER_PIN_INIT, "user-pin-initialized" },
	{ KHSM_TOKEN_INITIALIZED, "token-initialized" },
	{ KHSM_TOKEN_PIN_COUNT_LOW, "user-pin-count-low" },
	{ KHSM_TOKEN_PIN_FINAL_TRY, "user-pin-final-try" },
	{ KHSM_TOKEN_PIN_LOCKED, "user-pin-locked" },
	{ KHSM_TOKEN_WRITE_PROTECTED, "write-protected" },
	{ KHSM_TOKEN_RNG, "rng" },
};

static const struct { unsigned cap; const char *name; } CAP_NAMES[] = {
	{ KHSM_CAP_ECDSA_P256, "ECDSAP256SHA256" },
	{ KHSM_CAP_ECDSA_P384, "ECDSAP384SHA384" },
	{ KHSM_CAP_ED25519, "ED25519" },
	{ KHSM_CAP_ED448, "ED448" },
	{ KHSM_CAP_RSA, "RSASHA256" },
};

static void print_token_text(const khsm_token_t *t)
{
	printf("token: %s\n", t->label[0] || (t->flags & KHSM_TOKEN_INITIALIZED) ? khsm_esc(t->label)
	       : "(not initialised)");
	printf("  manufacturer: %s\n", khsm_esc(t->manufacturer));
	printf("  model: %s\n", khsm_esc(t->model));
	printf("  serial: %s\n", khsm_esc(t->serial));
	printf("  module: %s%s%s%s\n", t->module_path ? khsm_esc(t->module_path) : "?",
	       t->module_name ? " (" : "", t->module_name ? t->module_name : "", t->module_name ? ")" : "");
	printf("  slot: %lu\n", t->slot_id);
	printf("  flags:");
	const char *sep = " ";
	for (size_t i = 0; i < sizeof(FLAG_NAMES) / sizeof(FLAG_NAMES[0]); i++) {
		if (t->flags & FLAG_NAMES[i].bit) {
			printf("%s%s", sep, FLAG_NAMES[i].name);
			sep = ", ";
		}
	}
	printf("\n  uri: %s\n", t->uri);
	char *caps = khsm_token_caps_text(t);
	printf("  dnssec: %s\n", caps ? caps : "?");
	free(caps);
}

static void print_token_json(khsm_json_t *j, const khsm_token_t *t)
{
	khsm_json_object(j, NULL);
	khsm_json_str(j, "label", t->label);
	khsm_json_str(j, "manufacturer", t->manufacturer);
	khsm_json_str(j, "model", t->model);
	khsm_json_str(j, "serial", t->serial);
	khsm_json_str(j, "module", t->module_path);
	khsm_json_str(j, "module_name", t->module_name);
	khsm_json_uint(j, "slot", t->slot_id);
	khsm_json_array(j, "flags");
	for (size_t i = 0; i < sizeof(FLAG_NAMES) / sizeof(FLAG_NAMES[0]); i++) {
		if (t->flags & FLAG_NAMES[i].bit) khsm_json_str(j, NULL, FLAG_NAMES[i].name);
	}
	khsm_json_end(j);
	khsm_json_str(j, "uri", t->uri);
	unsigned usable = khsm_caps_usable(t->caps);
	khsm_json_array(j, "dnssec");
	for (size_t i = 0; i < sizeof(CAP_NAMES) / sizeof(CAP_NAMES[0]); i++) {
		if (usable & CAP_NAMES[i].cap) khsm_json_str(j, NULL, CAP_NAMES[i].name);
	}
	khsm_json_end(j);
	khsm_json_array(j, "dnssec_token_only");
	for (size_t i = 0; i < sizeof(CAP_NAMES) / sizeof(CAP_NAMES[0]); i++) {
		if ((t->caps & ~usable) & CAP_NAMES[i].cap) khsm_json_str(j, NULL, CAP_NAMES[i].name);
	}
	khsm_json_end(j);
	if (t->caps & KHSM_CAP_RSA) {
		khsm_json_array(j, "rsa_bits");
		khsm_json_uint(j, NULL, t->rsa_min_bits);
		khsm_json_uint(j, NULL, t->rsa_max_bits);
		khsm_json_end(j);
	}
	khsm_json_end(j);
}

int cmd_tokens(cli_t *cli)
{
	_cleanup_tokens_ khsm_tokens_t *tokens = NULL;
	int r = khsm_tokens_load(cli->module, true, &tokens);
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	const char *failures = khsm_tokens_failures(tokens);
	if (failures) {
		fprintf(stderr, "warning: %s", failures);
	}
	size_t n = khsm_tokens_count(tokens);
	if (cli->json) {
		khsm_json_t j;
		khsm_json_init(&j, stdout, KHSM_JSON_LINES);
		khsm_json_array(&j, NULL);
		for (size_t i = 0; i < n; i++) {
			print_token_json(&j, khsm_tokens_at(tokens, i));
		}
		khsm_json_end(&j);
		putchar('\n');
	} else {
		for (size_t i = 0; i < n; i++) {
			printf("%s", i ? "\n" : "");
			print_token_text(khsm_tokens_at(tokens, i));
		}
	}
	if (n == 0) {
		khsm_err_detail("no PKCS #11 module reports a token; insert the card, check pcscd "
		                "(systemctl status pcscd) or give the module with --module");
		return cli_error(KHSM_ENOTOKEN, NULL);
	}
	bool any_dnssec = false;
	for (size_t i = 0; i < n; i++) {
		any_dnssec |= khsm_caps_usable(khsm_tokens_at(tokens, i)->caps) != 0;
	}
	if (!any_dnssec) {
		fprintf(stderr, "warning: no token can sign DNSSEC; is the card inserted and pcscd "
		        "running (systemctl status pcscd)? Give its module with --module if it is "
		        "not registered with p11-kit\n");
	}
	return CLI_OK;
}

/* --token takes a label, or a token URI to tell apart tokens with one label. */
static int select_token(const cli_t *cli, khsm_tokens_t **tokens_ptr, const khsm_token_t **token_ptr,
                        bool *by_serial)
{
	if (!cli->token) {
		return cli_usage_error(cli_current, "'%s' needs --token LABEL", cli_current->name);
	}
	int r = khsm_tokens_load(cli->module, cli->module == NULL, tokens_ptr);
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	khsm_uri_t want = { 0 };
	const char *label = cli->token;
	if (strncmp(cli->token, "pkcs11:", 7) == 0) {
		r = khsm_uri_parse(cli->token, &want);
		if (r != KHSM_EOK) {
			return cli_error(r, "--token");
		}
		if (!want.token) {
			khsm_uri_clear(&want);
			khsm_err_detail("the token URI has no token= attribute");
			return cli_error(KHSM_EINVAL, "--token");
		}
		label = want.token;
	}
	*by_serial = want.serial != NULL;
	r = khsm_tokens_find(*tokens_ptr, label, want.serial, token_ptr);
	khsm_uri_clear(&want);
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	return CLI_OK;
}

/* The keystore config for a token: its URI (label, or label+serial when the
 * operator had to disambiguate) and the module's full path. */
static int token_config(const khsm_token_t *t, bool by_serial, const char *pin_source,
                        const char *pin_value, char **config_ptr)
{
	if (!t->module_path) {
		khsm_err_detail("the module path of token '%s' is unknown", t->label);
		return KHSM_EMODULE;
	}
	return khsm_uri_keystore_config(by_serial ? t->uri_serial : t->uri_short, pin_source,
	                                 pin_value, t->module_path, config_ptr);
}

static int parse_type(const char *text, khsm_uri_type_t *type)
{
	if (!text) {
		*type = KHSM_URI_TYPE_ANY;
	} else if (strcmp(text, "private") == 0) {
		*type = KHSM_URI_TYPE_PRIVATE;
	} else if (strcmp(text, "public") == 0) {
		*type = KHSM_URI_TYPE_PUBLIC;
	} else {
		return -1;
	}
	return 0;
}

int cmd_uri(cli_t *cli)
{
	khsm_uri_type_t type;
	if (parse_type(cli->type, &type) != 0) {
		return cli_usage_error(cli_current, "--type is private or public, not '%s'", cli->type);
	}
	if (cli->object && cli->id) {
		return cli_usage_error(cli_current, "give --object or --id, not both");
	}
	if (cli->type && !cli->object && !cli->id) {
		return cli_usage_error(cli_current, "--type needs --object or --id");
	}
	_cleanup_free_ uint8_t *id = NULL;
	size_t id_len = 0;
	if (cli->id) {
		int r = khsm_hex_parse(cli->id, &id, &id_len);
		if (r != KHSM_EOK) {
			return cli_error(r, "--id");
		}
	}

	_cleanup_tokens_ khsm_tokens_t *tokens = NULL;
	const khsm_token_t *t = NULL;
	bool by_serial = false;
	int rc = select_token(cli, &tokens, &t, &by_serial);
	if (rc != CLI_OK) {
		return rc;
	}
	const char *token_uri = by_serial ? t->uri_serial : t->uri_short;
	if (!cli->object && !cli->id) {
		printf("%s\n", token_uri);
		return CLI_OK;
	}

	_cleanup_free_ char *config = NULL;
	int r = token_config(t, by_serial, NULL, NULL, &config);
	_cleanup_keystore_ khsm_keystore_t *ks = NULL;
	if (r == KHSM_EOK) {
		r = khsm_keystore_open(config, &ks);
	}
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}

	/* A PIN is read only if a private object has to be looked up. */
	_cleanup_pin_ khsm_pin_t *pin = NULL;
	if (type == KHSM_URI_TYPE_PRIVATE || cli->pin_file || cli->pin_fd >= 0) {
		r = cli_pin(cli, true, &pin);
		if (r != KHSM_EOK) {
			return cli_error(r, NULL);
		}
	}
	khsm_cardobjs_t objs = { 0 };
	r = khsm_cardkey_find(ks, cli->object, id, id_len, type, pin, cli->force, &objs);
	if (r == KHSM_ENOPIN && !pin) {
		/* Nothing public matched; the object may be private. Ask once. */
		khsm_err_clear();
		r = cli_pin(cli, true, &pin);
		if (r == KHSM_ENOPIN) {
			khsm_err_detail("no public key object %s '%s' on token '%s'; a private one can "
			                "only be seen after a login: give --pin-file or --pin-fd",
			                cli->object ? "labelled" : "with id", cli->object ? cli->object : cli->id,
			                t->label);
			return cli_error(KHSM_ENOENT, NULL);
		}
		if (r == KHSM_EOK) {
			r = khsm_cardkey_find(ks, cli->object, id, id_len, type, pin, cli->force, &objs);
		}
	}
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	if (objs.count == 0) {
		khsm_err_detail("no %skey object %s '%s' on token '%s'; list them with "
		                "p11tool --list-all --login '%s'",
		                type == KHSM_URI_TYPE_PRIVATE ? "private " :
		                type == KHSM_URI_TYPE_PUBLIC ? "public " : "",
		                cli->object ? "labelled" : "with id", cli->object ? cli->object : cli->id,
		                t->label, token_uri);
		khsm_cardobjs_clear(&objs);
		return cli_error(KHSM_ENOENT, NULL);
	}
	/* All matches must be one key (same id); a public/private pair is one key. */
	const khsm_cardobj_t *first = &objs.items[0];
	for (size_t i = 1; i < objs.count; i++) {
		const khsm_cardobj_t *o = &objs.items[i];
		if (o->id_len != first->id_len || (o->id_len && memcmp(o->id, first->id, o->id_len) != 0)) {
			khsm_err_detail("several keys match on token '%s' (different ids); use --id", t->label);
			khsm_cardobjs_clear(&objs);
			return cli_error(KHSM_EAMBIGUOUS, NULL);
		}
	}
	khsm_uri_t token_attrs = { 0 };
	r = khsm_uri_parse(token_uri, &token_attrs);
	khsm_uri_t out = { .token = token_attrs.token, .serial = token_attrs.serial,
	                   .object = cli->object ? (char *)cli->object : first->label,
	                   .id = first->id, .id_len = first->id_len, .type = type };
	_cleanup_free_ char *uri = NULL;
	if (r == KHSM_EOK) {
		r = khsm_uri_format(&out, &uri);
	}
	khsm_uri_clear(&token_attrs);
	khsm_cardobjs_clear(&objs);
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	printf("%s\n", uri);
	return CLI_OK;
}

/* keystore --guard: the guard module and its configuration for the token's
 * module, written first (with the audit log) when there is none yet. */
static int guard_prepare(const cli_t *cli, const khsm_token_t *t, char **conf_path_ptr,
                         khsm_guard_conf_t *conf, khsm_guard_setup_t *done)
{
	_cleanup_free_ char *who = NULL, *cmd = NULL, *as_root = NULL;
	if (asprintf(&who, "token '%s'", t->label) < 0) {
		who = NULL;
		return KHSM_ENOMEM;
	}
	int r = khsm_guard_setup_command(cli->module, cli->token, cli->pin_file, &cmd);
	if (r != KHSM_EOK) return r;
	if (asprintf(&as_root, "sudo %s", cmd) < 0) {
		as_root = NULL;
		return KHSM_ENOMEM;
	}
	return khsm_guard_setup(t->module_path, who, as_root, conf_path_ptr, conf, done);
}

int cmd_keystore(cli_t *cli)
{
	const char *id = cli->id ? cli->id : "hsm";
	int r = khsm_confgen_check_id(id);
	if (r != KHSM_EOK) {
		return cli_error(r, "--id");
	}
	if (cli->pin_in_config && cli->pin_file && cli->pin_fd >= 0) {
		return cli_usage_error(cli_current, "give --pin-file or --pin-fd, not both");
	}
	_cleanup_free_ char *remote_address = NULL;
	if (cli->remote) {
		/* The card host's guard is in front of its card; here only the client. */
		if (cli->module || cli->guard) {
			return cli_usage_error(cli_current, "--remote takes no %s: the card host's p11-kit "
			                       "server loads the card's module (through the guard)",
			                       cli->module ? "--module" : "--guard");
		}
		r = khsm_remote_address(cli->remote, &remote_address);
		if (r == KHSM_EOK) r = khsm_remote_use(cli->remote);
		if (r == KHSM_EOK) r = khsm_remote_check(NULL);
		if (r != KHSM_EOK) {
			return cli_error(r, "--remote");
		}
		cli->module = khsm_remote_client_module();
	}

	_cleanup_tokens_ khsm_tokens_t *tokens = NULL;
	const khsm_token_t *t = NULL;
	bool by_serial = false;
	int rc = select_token(cli, &tokens, &t, &by_serial);
	if (rc != CLI_OK) {
		return rc;
	}

	_cleanup_free_ char *pin_path = NULL;
	_cleanup_pin_ khsm_pin_t *pin = NULL;
	if (cli->pin_in_config) {
		r = cli_pin(cli, true, &pin);
		if (r != KHSM_EOK) {
			return cli_error(r, NULL);
		}
		fprintf(stderr, "warning: the PIN is written in clear text into the config (pin-value); "
		        "anyone who can read knot.conf can use the card. Prefer --pin-file.\n");
	} else if (cli->pin_file) {
		/* knotd reads the file itself; check it the way it will be used. */
		r = khsm_pin_from_file(cli->pin_file, cli->force, &pin);
		if (r != KHSM_EOK) {
			return cli_error(r, NULL);
		}
		unsigned issues = 0;
		if (khsm_pin_file_check(cli->pin_file, &issues, NULL) == KHSM_EOK) {
			if (issues & KHSM_PIN_FILE_OTHERS) {
				fprintf(stderr, "warning: PIN file %s %s\n", khsm_esc(cli->pin_file),
				        khsm_pin_file_issue_text(KHSM_PIN_FILE_OTHERS));
			}
			if (issues & KHSM_PIN_FILE_OWNER) {
				fprintf(stderr, "warning: PIN file %s %s\n", khsm_esc(cli->pin_file),
				        khsm_pin_file_issue_text(KHSM_PIN_FILE_OWNER));
			}
		}
		khsm_pin_free(pin);
		pin = NULL;
		pin_path = realpath(cli->pin_file, NULL);
		if (!pin_path) {
			return cli_error(KHSM_EIO, "PIN file %s", cli->pin_file);
		}
	} else if (cli->pin_fd >= 0) {
		return cli_usage_error(cli_current, "knotd cannot read a descriptor: give --pin-file "
		                       "(or --pin-in-config with --pin-fd)");
	} else if ((t->flags & KHSM_TOKEN_LOGIN_REQUIRED) && !(t->flags & KHSM_TOKEN_PROTECTED_PATH)) {
		khsm_err_detail("token '%s' needs a login and knotd reads the PIN from a file: "
		                "give --pin-file PATH (mode 0600, owned by the knotd user)", t->label);
		return cli_error(KHSM_ENOPIN, NULL);
	}

	_cleanup_free_ char *config = NULL;
	_cleanup_free_ char *guard_conf_path = NULL;
	khsm_guard_conf_t guard_conf = { 0 };
	khsm_guard_setup_t guard_done = { 0 };
	r = token_config(t, by_serial, pin_path, cli->pin_in_config ? khsm_pin_value(pin) : NULL, &config);
	if (r == KHSM_EOK && cli->guard) {
		/* the direct config is replaced by the one through the guard */
		explicit_bzero(config, strlen(config));
		free(config);
		config = NULL;
		/* knotd loads the guard; the guard loads the token's module. */
		r = guard_prepare(cli, t, &guard_conf_path, &guard_conf, &guard_done);
		if (guard_done.wrote_conf) {
			/* Said even when a later step fails: the files are there. */
			fprintf(stderr, "note: wrote the guard configuration %s (module = %s, audit_log = %s)\n",
			        khsm_esc(guard_done.conf_written), khsm_esc(t->module_path),
			        khsm_esc(guard_done.audit_log));
			fprintf(stderr, "note: %s the audit log %s, owner %s, mode 0640\n",
			        guard_done.created_log ? "created" : "kept", khsm_esc(guard_done.audit_log),
			        guard_done.owner);
			fprintf(stderr, "note: %s its lock file %s, owner %s, mode 0640\n",
			        guard_done.created_lock ? "created" : "kept", khsm_esc(guard_done.lock_file),
			        guard_done.owner);
		}
		if (r == KHSM_EOK) {
			r = khsm_uri_keystore_config(by_serial ? t->uri_serial : t->uri_short, pin_path,
			                             cli->pin_in_config ? khsm_pin_value(pin) : NULL,
			                             khsm_guard_module_path(), &config);
		}
	}
	khsm_guard_setup_clear(&guard_done);
	if (r != KHSM_EOK) {
		khsm_guard_conf_clear(&guard_conf);
		return cli_error(r, NULL);
	}
	khsm_pin_free(pin);
	pin = NULL;

	/* The proof that the stanza works: libdnssec opens it and GnuTLS logs in
	 * with exactly the PIN source knotd will use. */
	_cleanup_keystore_ khsm_keystore_t *ks = NULL;
	r = khsm_keystore_open(config, &ks);
	if (r == KHSM_EOK) {
		r = khsm_keystore_login(ks, NULL, cli->force);
	}
	if (r != KHSM_EOK) {
		explicit_bzero(config, strlen(config));
		khsm_guard_conf_clear(&guard_conf);
		return cli_error(r, "keystore check");
	}

	_cleanup_free_ char *stanza = NULL;
	r = khsm_confgen_keystore(id, config, true, &stanza);
	explicit_bzero(config, strlen(config));
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	fputs(stanza, stdout);
	explicit_bzero(stanza, strlen(stanza));
	if (cli->guard) {
		printf("# through the knot-hsm guard (%s): audit log %s\n", guard_conf_path, guard_conf.audit_log);
	}
	if (remote_address) {
		/* Knot's config cannot carry it: knotd's unit sets it (samples/). */
		printf("# knotd needs %s=%s in its environment\n"
		       "# (systemd: Environment= in a drop-in, see samples/knot-hsm-remote.conf)\n",
		       KHSM_REMOTE_ENV, remote_address);
	}
	khsm_guard_conf_clear(&guard_conf);
	return CLI_OK;
}
