/* Running keymgr/knotc and parsing what they print. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <time.h>
#include <libknot/codes.h>
#include <libknot/lookup.h>

#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "keystore.h"
#include "parallel.h"
#include "knot.h"
#include "remote.h"
#include "retry.h"
#include "uri.h"
#include "zoneconf.h"

/* -- small parsers -- */


static bool parse_yes_no(const char *s, bool *out)
{
	if (strcmp(s, "yes") == 0) {
		*out = true;
	} else if (strcmp(s, "no") == 0) {
		*out = false;
	} else {
		return false;
	}
	return true;
}

static bool is_hex_string(const char *s, size_t len_exact)
{
	size_t n = 0;
	for (; s[n]; n++) {
		if (!isxdigit((unsigned char)s[n]) || isupper((unsigned char)s[n])) {
			return false;
		}
	}
	return n > 0 && (len_exact == 0 || n == len_exact);
}

/* Split a line into at most max space-separated tokens, in place. */
static size_t split(char *line, char **tok, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (n == max) {
			return max + 1;
		}
		tok[n++] = t;
	}
	return n;
}

/* Calls fn for every non-empty line with its 1-based number; stops on error. */
typedef int (*line_fn)(char *line, size_t lineno, void *ctx);

static int for_each_line(const char *text, line_fn fn, void *ctx)
{
	size_t lineno = 0;
	for (const char *p = text; p && *p; ) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		lineno++;
		_cleanup_free_ char *line = strndup(p, len);
		if (!line) {
			return KHSM_ENOMEM;
		}
		bool blank = true;
		for (char *c = line; *c; c++) {
			if (!isspace((unsigned char)*c)) {
				blank = false;
			}
		}
		if (!blank) {
			int r = fn(line, lineno, ctx);
			if (r != KHSM_EOK) {
				return r;
			}
		}
		p = end ? end + 1 : NULL;
	}
	return KHSM_EOK;
}

/* First line starting with "error:" in text, or NULL. */
static char *find_error_line(const char *text)
{
	for (const char *p = text; p && *p; ) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len >= 6 && strncmp(p, "error:", 6) == 0) {
			return strndup(p, len);
		}
		p = end ? end + 1 : NULL;
	}
	return NULL;
}

static char *first_line(const char *text)
{
	const char *end = strchr(text, '\n');
	return strndup(text, end ? (size_t)(end - text) : strlen(text));
}

/* -- version -- */

_public_
int khsm_knot_version(const char *tool, int *major, int *minor, int *patch)
{
	if (!tool || !major || !minor || !patch) {
		return KHSM_EINVAL;
	}
	const char *path = khsm_tool_path(tool);
	if (!path) {
		khsm_err_detail("'%s' is not a Knot tool knot-hsm runs", tool);
		return KHSM_EINVAL;
	}
	const char *argv[] = { path, "--version", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	/* Knot <= 3.4 prints "keymgr (Knot DNS), version 3.2.6"; 3.5 prints
	 * "knotd, Knot DNS 3.5.8". */
	const char *v = strstr(res.out, "(Knot DNS), version ");
	const char *fmt = "(Knot DNS), version %d.%d.%d%n";
	if (!v) {
		v = strstr(res.out, ", Knot DNS ");
		fmt = ", Knot DNS %d.%d.%d%n";
	}
	int a, b, c, n = 0;
	if (res.status != 0 || !v || sscanf(v, fmt, &a, &b, &c, &n) != 3 ||
	    !(v[n] == '\0' || v[n] == '\n' || v[n] == '-' || v[n] == '.')) {
		_cleanup_free_ char *line = first_line(res.out);
		khsm_err_detail("cannot read the version of %s from '%s'", path, line ? line : "");
		khsm_run_clear(&res);
		return KHSM_EPARSE;
	}
	khsm_run_clear(&res);
	*major = a;
	*minor = b;
	*patch = c;
	return KHSM_EOK;
}

/* -- keymgr -- */

/* Whether explains(module) holds for a keystore module of conf_path. */
static bool some_keystore(const char *conf_path, bool (*explains)(const char *module))
{
	khsm_conf_t *conf = NULL;
	bool found = false;
	if (khsm_conf_load(conf_path, &conf) != KHSM_EOK) {
		khsm_err_clear();
		return false;
	}
	for (size_t i = 0; i < khsm_conf_keystore_count(conf) && !found; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(conf, i);
		char *uri = NULL, *module = NULL;
		if (ks->config && khsm_uri_split_config(ks->config, &uri, &module) == KHSM_EOK) {
			found = explains(module);
		}
		free(uri);
		free(module);
	}
	khsm_conf_free(conf);
	return found;
}

/* keymgr could not load a PKCS #11 module: a guard that cannot start says
 * why in its words (khsm_keystore_guard_check() sets the detail). */
static bool guard_fails(const char *module)
{
	return khsm_keystore_guard_check(module) != KHSM_EOK;
}

/* keymgr could not reach a token: a card host whose p11-kit server does not
 * answer (lib/remote.h; khsm_remote_check() sets the detail). */
static bool remote_fails(const char *module)
{
	return khsm_remote_is_client(module) && khsm_remote_check(NULL) != KHSM_EOK;
}

_public_
bool khsm_keymgr_kasp_only(const char *command)
{
	static const char *const KASP_ONLY[] = { "list", "dnskey", "ds", "share" };
	for (size_t i = 0; command && i < KHSM_ARRAY_SIZE(KASP_ONLY); i++) {
		if (strcmp(command, KASP_ONLY[i]) == 0) return true;
	}
	return false;
}

static int keymgr_env(const char *conf_path, const char *const args[], const char *const *env_add,
                      khsm_run_t *res);

_public_
int khsm_keymgr(const char *conf_path, const char *const args[], khsm_run_t *res)
{
	return keymgr_env(conf_path, args, NULL, res);
}

static int keymgr_env(const char *conf_path, const char *const args[], const char *const *env_add,
                      khsm_run_t *res)
{
	if (!args || !res) {
		return KHSM_EINVAL;
	}
	size_t n = 0;
	while (args[n]) {
		n++;
	}
	const char *argv[n + 4];
	size_t i = 0;
	argv[i++] = khsm_tool_path("keymgr");
	/* A command over many zones split conf_path (zoneconf.h): a run for one
	 * zone (its first argument that is not an option) reads that zone's cut,
	 * keyless when its command (the next one) works on KASP alone. */
	khsm_handoff_t *cut = NULL;
	bool lock = false;
	for (size_t j = 0; conf_path && j < n; j++) {
		if (args[j][0] != '-') {
			const char *cmd = j + 1 < n ? args[j + 1] : "";
			bool keyless = khsm_keymgr_kasp_only(cmd);
			if (khsm_zoneconf_for(conf_path, args[j], keyless, &cut) != KHSM_EOK) {
				cut = NULL;
				khsm_err_clear();
				/* the caller counted on a keyless run and did not lock the
				 * card: the whole file may open it */
				lock = keyless && khsm_zoneconf_keyless(conf_path);
			}
			break;
		}
	}
	int lr = lock ? khsm_card_lock() : KHSM_EOK;
	if (lr != KHSM_EOK) {
		return lr;
	}
	if (conf_path) {
		argv[i++] = "-c";
		argv[i++] = cut ? khsm_handoff_path(cut) : conf_path;
	}
	for (size_t j = 0; j < n; j++) {
		argv[i++] = args[j];
	}
	argv[i] = NULL;

	khsm_run_t out = { 0 };
	int r = env_add ? khsm_run_env(argv, NULL, env_add, &out) : khsm_run(argv, NULL, &out);
	khsm_handoff_free(cut);
	if (lock) khsm_card_unlock();
	if (r != KHSM_EOK) {
		return r;
	}
	_cleanup_free_ char *err = find_error_line(out.err);
	if (!err) {
		err = find_error_line(out.out);
	}
	if (err || out.status != 0) {
		if (err && strstr(err, "failed to load PKCS #11 module") && some_keystore(conf_path, guard_fails)) {
			khsm_run_clear(&out);
			return KHSM_ECONFIG;
		}
		/* a card this run serves (env_add) is not a card host out of reach */
		if (err && strstr(err, "PKCS #11") && !env_add && some_keystore(conf_path, remote_fails)) {
			khsm_err_prefix("keymgr reports %s: ", err);
			khsm_run_clear(&out);
			return KHSM_EREMOVED;
		}
		if (err) {
			khsm_err_detail("keymgr reports %s", err);
		} else {
			_cleanup_free_ char *line = first_line(out.err[0] ? out.err : out.out);
			khsm_err_detail("keymgr exited with code %d: %s", out.status, line ? line : "");
		}
		khsm_run_clear(&out);
		return KHSM_ETOOL;
	}
	*res = out;
	return KHSM_EOK;
}

_public_
int khsm_keymgr_card(const char *conf_path, const char *const args[], khsm_run_t *res)
{
	int r = khsm_card_lock();
	if (r != KHSM_EOK) {
		return r;
	}
	r = keymgr_env(conf_path, args, NULL, res);
	khsm_card_unlock();
	return r;
}

_public_
int khsm_keymgr_served(const char *conf_path, const char *const args[], const khsm_serve_t *serve,
                       khsm_run_t *res)
{
	if (!serve || khsm_card_lock_held()) {
		return KHSM_EINVAL;   /* the served calls would wait for this thread */
	}
	_cleanup_free_ char *env = NULL;
	if (asprintf(&env, "%s=%s", KHSM_REMOTE_ENV, khsm_serve_address(serve)) < 0) {
		env = NULL;
		return KHSM_ENOMEM;
	}
	const char *env_add[] = { env, NULL };
	return keymgr_env(conf_path, args, env_add, res);
}

_public_
int khsm_keymgr_delete(const char *conf_path, const char *zone, const char *id_hex,
                       bool *card_missed_ptr)
{
	if (!zone || !id_hex) {
		return KHSM_EINVAL;
	}
	if (card_missed_ptr) *card_missed_ptr = false;
	const char *args[] = { zone, "delete", id_hex, NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr_card(conf_path, args, &res);
	khsm_run_clear(&res);
	if (r != KHSM_ETOOL) {
		return r;
	}
	/* Did only the keystore part fail? Then the key is out of KASP. */
	const char *d = khsm_err_last_detail();
	char *said = d ? strdup(d) : NULL;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	bool listed = true;
	if (khsm_keymgr_list(conf_path, zone, &keys, &n) == KHSM_EOK) {
		listed = false;
		for (size_t i = 0; i < n && !listed; i++) listed = strcmp(keys[i].id, id_hex) == 0;
	}
	free(keys);
	if (listed) {
		khsm_err_detail("%s", said ? said : "keymgr delete failed; the key is still in KASP");
		free(said);
		return KHSM_ETOOL;
	}
	free(said);
	khsm_err_clear();
	if (card_missed_ptr) *card_missed_ptr = true;
	return KHSM_EOK;
}

/* -- keymgr list -- */

typedef struct {
	khsm_kasp_key_t *keys;
	size_t count;
} key_list_t;

static int64_t *timer_field(khsm_kasp_key_t *k, const char *name)
{
	static const struct { const char *name; size_t off; } TIMERS[] = {
		{ "created",       offsetof(khsm_kasp_key_t, created) },
		{ "pre-active",    offsetof(khsm_kasp_key_t, pre_active) },
		{ "publish",       offsetof(khsm_kasp_key_t, publish) },
		{ "ready",         offsetof(khsm_kasp_key_t, ready) },
		{ "active",        offsetof(khsm_kasp_key_t, active) },
		{ "retire-active", offsetof(khsm_kasp_key_t, retire_active) },
		{ "retire",        offsetof(khsm_kasp_key_t, retire) },
		{ "post-active",   offsetof(khsm_kasp_key_t, post_active) },
		{ "revoke",        offsetof(khsm_kasp_key_t, revoke) },
		{ "remove",        offsetof(khsm_kasp_key_t, remove) },
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(TIMERS); i++) {
		if (strcmp(name, TIMERS[i].name) == 0) {
			return (int64_t *)((char *)k + TIMERS[i].off);
		}
	}
	return NULL;
}

static bool is_field_name(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (!(islower((unsigned char)s[i]) || s[i] == '-' || s[i] == '_')) {
			return false;
		}
	}
	return len > 0;
}

/* Bits for the fields every extended line must have. */
enum { F_KSK = 1, F_ZSK = 2, F_TAG = 4, F_ALG = 8, F_REQUIRED = 15,
       F_SIZE = 16, F_PUB = 32, F_KEYSTORE = 64 };

/* id ksk=yes zsk=no tag=NNNNN algorithm=N size=N public-only=no timer=N… */
static int parse_extended(char **tok, size_t n, size_t lineno, khsm_kasp_key_t *k)
{
	unsigned seen = 0;
	for (size_t i = 1; i < n; i++) {
		char *eq = strchr(tok[i], '=');
		if (!eq || !is_field_name(tok[i], eq - tok[i]) || !eq[1]) {
			khsm_err_detail("keymgr list line %zu: '%s' is not name=value", lineno, tok[i]);
			return KHSM_EPARSE;
		}
		*eq = '\0';
		const char *name = tok[i], *val = eq + 1;
		uint64_t u = 0;
		unsigned bit = 0;
		bool ok = true;
		int64_t *timer = timer_field(k, name);
		if (strcmp(name, "ksk") == 0) {
			bit = F_KSK; ok = parse_yes_no(val, &k->ksk);
		} else if (strcmp(name, "zsk") == 0) {
			bit = F_ZSK; ok = parse_yes_no(val, &k->zsk);
		} else if (strcmp(name, "public-only") == 0) {
			bit = F_PUB; ok = parse_yes_no(val, &k->public_only);
		} else if (strcmp(name, "tag") == 0) {
			bit = F_TAG; ok = khsm_parse_u64(val, UINT16_MAX, &u); k->tag = (uint16_t)u;
		} else if (strcmp(name, "algorithm") == 0) {
			bit = F_ALG; ok = khsm_parse_u64(val, 255, &u); k->algorithm = (int)u;
		} else if (strcmp(name, "size") == 0) {
			bit = F_SIZE; ok = khsm_parse_u64(val, UINT32_MAX, &u); k->size = (unsigned)u;
		} else if (strcmp(name, "keystore") == 0) {
			/* Knot >= 3.5: BACKEND/KEYSTORE, e.g. PKCS11/card or PEM/soft */
			bit = F_KEYSTORE;
			ok = strlen(val) < sizeof(k->keystore) && strchr(val, '/') != NULL;
			if (ok) {
				strcpy(k->keystore, val);
			}
		} else if (timer) {
			ok = khsm_parse_u64(val, INT64_MAX, &u) && *timer == 0;
			*timer = (int64_t)u;
		} else {
			continue;  /* a field of a newer keymgr */
		}
		if (!ok || (seen & bit)) {
			khsm_err_detail("keymgr list line %zu: bad or repeated value in '%s=%s'",
			                lineno, name, val);
			return KHSM_EPARSE;
		}
		seen |= bit;
	}
	if ((seen & F_REQUIRED) != F_REQUIRED) {
		khsm_err_detail("keymgr list line %zu: ksk=, zsk=, tag= or algorithm= missing", lineno);
		return KHSM_EPARSE;
	}
	return KHSM_EOK;
}

/* id TAG KSK|ZSK|CSK ALGNAME[/bits] [public-only] [timer=N…] */
static int parse_plain(char **tok, size_t n, size_t lineno, khsm_kasp_key_t *k)
{
	uint64_t u = 0;
	if (n < 4 || !khsm_parse_u64(tok[1], UINT16_MAX, &u)) {
		khsm_err_detail("keymgr list line %zu: expected 'ID TAG KSK|ZSK|CSK ALGORITHM …'", lineno);
		return KHSM_EPARSE;
	}
	k->tag = (uint16_t)u;

	if (strcmp(tok[2], "KSK") == 0) {
		k->ksk = true;
	} else if (strcmp(tok[2], "ZSK") == 0) {
		k->zsk = true;
	} else if (strcmp(tok[2], "CSK") == 0) {
		k->ksk = k->zsk = true;
	} else {
		khsm_err_detail("keymgr list line %zu: key type '%s' is not KSK, ZSK or CSK", lineno, tok[2]);
		return KHSM_EPARSE;
	}

	char *slash = strchr(tok[3], '/');
	if (slash) {
		*slash = '\0';
		if (!khsm_parse_u64(slash + 1, UINT32_MAX, &u)) {
			khsm_err_detail("keymgr list line %zu: bad key size '%s'", lineno, slash + 1);
			return KHSM_EPARSE;
		}
		k->size = (unsigned)u;
	}
	const knot_lookup_t *alg = knot_lookup_by_name(knot_dnssec_alg_names, tok[3]);
	if (alg) {
		k->algorithm = alg->id;
	} else if (khsm_parse_u64(tok[3], 255, &u)) {
		k->algorithm = (int)u;
	} else {
		khsm_err_detail("keymgr list line %zu: unknown algorithm '%s'", lineno, tok[3]);
		return KHSM_EPARSE;
	}

	size_t i = 4;
	if (i < n && strcmp(tok[i], "public-only") == 0) {
		k->public_only = true;
		i++;
	}
	for (; i < n; i++) {
		char *eq = strchr(tok[i], '=');
		int64_t *timer = NULL;
		if (eq) {
			*eq = '\0';
			timer = timer_field(k, tok[i]);
		}
		if (!timer || !khsm_parse_u64(eq + 1, INT64_MAX, &u) || *timer != 0) {
			if (eq) *eq = '=';
			khsm_err_detail("keymgr list line %zu: unexpected '%s'", lineno, tok[i]);
			return KHSM_EPARSE;
		}
		*timer = (int64_t)u;
	}
	return KHSM_EOK;
}

static int list_line(char *line, size_t lineno, void *ctx)
{
	key_list_t *list = ctx;
	char *tok[64];
	size_t n = split(line, tok, KHSM_ARRAY_SIZE(tok));
	/* Knot makes 40-digit IDs, but keys adopted with import-pkcs11 keep the
	 * token's CKA_ID, which may be of any (even) length. */
	size_t id_len = n >= 1 ? strlen(tok[0]) : 0;
	if (n > KHSM_ARRAY_SIZE(tok) || n < 2 || !is_hex_string(tok[0], 0) || id_len % 2 != 0 ||
	    id_len >= sizeof(((khsm_kasp_key_t *)0)->id)) {
		khsm_err_detail("keymgr list line %zu: does not start with a hex key ID", lineno);
		return KHSM_EPARSE;
	}
	khsm_kasp_key_t k = { 0 };
	memcpy(k.id, tok[0], id_len + 1);
	int r = strncmp(tok[1], "ksk=", 4) == 0 ? parse_extended(tok, n, lineno, &k)
	                                         : parse_plain(tok, n, lineno, &k);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_kasp_key_t *grown = realloc(list->keys, (list->count + 1) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	list->keys = grown;
	list->keys[list->count++] = k;
	return KHSM_EOK;
}

_public_
int khsm_keymgr_list_parse(const char *text, khsm_kasp_key_t **keys_ptr, size_t *count_ptr)
{
	if (!text || !keys_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	key_list_t list = { 0 };
	int r = for_each_line(text, list_line, &list);
	if (r != KHSM_EOK) {
		free(list.keys);
		return r;
	}
	*keys_ptr = list.keys;
	*count_ptr = list.count;
	return KHSM_EOK;
}

_public_
int khsm_keymgr_list(const char *conf_path, const char *zone,
                     khsm_kasp_key_t **keys_ptr, size_t *count_ptr)
{
	if (!zone || !keys_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	const char *args[] = { "-e", zone, "list", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(conf_path, args, &res);
	/* Knot 3.5's keymgr opens the policy's keystores even to list KASP; a
	 * token another process is rewriting (SoftHSM) or a card that just
	 * reappeared reads as "token not available" for a moment: asked again
	 * twice, no PIN involved (list never logs in) */
	for (unsigned ms = 100; r == KHSM_ETOOL && ms <= 300; ms += 200) {
		const char *d = khsm_err_last_detail();
		if (!d || !strstr(d, "token not available")) break;
		khsm_run_clear(&res);
		struct timespec ts = { 0, (long)ms * 1000000L };
		nanosleep(&ts, NULL);
		khsm_err_clear();
		r = khsm_keymgr(conf_path, args, &res);
	}
	if (r != KHSM_EOK) {
		khsm_run_clear(&res);
		return r;
	}
	r = khsm_keymgr_list_parse(res.out, keys_ptr, count_ptr);
	khsm_run_clear(&res);
	return r;
}

/* -- keymgr ds -- */

typedef struct {
	khsm_ds_t *ds;
	size_t count;
} ds_list_t;

_public_
void khsm_ds_free(khsm_ds_t *ds, size_t count)
{
	for (size_t i = 0; ds && i < count; i++) {
		free(ds[i].owner);
		free(ds[i].digest);
	}
	free(ds);
}

static int ds_line(char *line, size_t lineno, void *ctx)
{
	ds_list_t *list = ctx;
	char *tok[7];
	uint64_t tag, alg, type;
	size_t n = split(line, tok, 6);
	size_t olen = n >= 1 ? strlen(tok[0]) : 0;
	if (n != 6 || olen == 0 || tok[0][olen - 1] != '.' || strcmp(tok[1], "DS") != 0 ||
	    !khsm_parse_u64(tok[2], UINT16_MAX, &tag) || !khsm_parse_u64(tok[3], 255, &alg) ||
	    !khsm_parse_u64(tok[4], 255, &type) || !is_hex_string(tok[5], 0) || strlen(tok[5]) % 2) {
		khsm_err_detail("keymgr ds line %zu: expected 'OWNER. DS TAG ALGORITHM DIGEST-TYPE HEX'",
		                lineno);
		return KHSM_EPARSE;
	}
	khsm_ds_t *grown = realloc(list->ds, (list->count + 1) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	list->ds = grown;
	khsm_ds_t *d = &list->ds[list->count];
	*d = (khsm_ds_t){ .tag = (uint16_t)tag, .algorithm = (uint8_t)alg,
	                  .digest_type = (uint8_t)type };
	d->owner = strdup(tok[0]);
	d->digest = strdup(tok[5]);
	list->count++;
	return d->owner && d->digest ? KHSM_EOK : KHSM_ENOMEM;
}

_public_
int khsm_keymgr_ds_parse(const char *text, khsm_ds_t **ds_ptr, size_t *count_ptr)
{
	if (!text || !ds_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	ds_list_t list = { 0 };
	int r = for_each_line(text, ds_line, &list);
	if (r != KHSM_EOK) {
		khsm_ds_free(list.ds, list.count);
		return r;
	}
	*ds_ptr = list.ds;
	*count_ptr = list.count;
	return KHSM_EOK;
}

/* -- knotc -- */

/* Run knotc -c CONF args… and judge the result. */
static int knotc(const khsm_conf_t *conf, const char *const args[], bool quiet)
{
	const char *path = khsm_conf_path(conf);
	if (!path) {
		return KHSM_EINVAL;
	}
	const char *argv[8] = { khsm_tool_path("knotc"), "-c", path };
	size_t i = 3;
	for (size_t j = 0; args[j] && i < KHSM_ARRAY_SIZE(argv) - 1; j++) {
		argv[i++] = args[j];
	}
	argv[i] = NULL;

	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	_cleanup_free_ char *err = find_error_line(res.err);
	if (!err) {
		err = find_error_line(res.out);
	}
	int status = res.status;
	khsm_run_clear(&res);
	if (!err && status == 0) {
		return KHSM_EOK;
	}

	const char *sock = khsm_conf_control_socket(conf);
	if (err && strstr(err, "failed to connect to socket")) {
		if (strstr(err, "(permission denied)") || strstr(err, "(operation not permitted)")) {
			khsm_err_detail("no access to knotd's control socket %s: run as root or as knotd's user",
			                sock);
			return KHSM_EPERM;
		}
		if (!quiet) {
			khsm_err_detail("knotd is not running (nothing answers on %s): start it, "
			                "it loads the keys when it starts", sock);
		}
		return KHSM_ENOENT;
	}
	khsm_err_detail("knotc %s: %s", args[0], err ? err : "failed without a message");
	return KHSM_ETOOL;
}

_public_
int khsm_knotc_ping(const khsm_conf_t *conf)
{
	if (!conf) {
		return KHSM_EINVAL;
	}
	const char *args[] = { "status", NULL };
	return knotc(conf, args, true);
}

_public_
int khsm_knotc_zone_keys_load(const khsm_conf_t *conf, const char *zone)
{
	if (!conf || !zone) {
		return KHSM_EINVAL;
	}
	const char *args[] = { "zone-keys-load", zone, NULL };
	return knotc(conf, args, false);
}

_public_
int khsm_knotc_reload(const khsm_conf_t *conf)
{
	if (!conf) {
		return KHSM_EINVAL;
	}
	const char *args[] = { "reload", NULL };
	return knotc(conf, args, false);
}

_public_
int khsm_knotc_zone_ksk_submitted(const khsm_conf_t *conf, const char *zone)
{
	if (!conf || !zone) {
		return KHSM_EINVAL;
	}
	const char *args[] = { "zone-ksk-submitted", zone, NULL };
	return knotc(conf, args, false);
}

_public_
int khsm_knotc_dnskey_expiry(const khsm_conf_t *conf, const char *zone, int64_t *exp)
{
	const char *argv[] = { khsm_tool_path("knotc"), "-c", khsm_conf_path(conf), "zone-read", zone,
	                       "@", "RRSIG", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r != KHSM_EOK) return r;
	*exp = 0;
	for (char *line = strtok(res.out, "\n"); line; line = strtok(NULL, "\n")) {
		char *p = strstr(line, " RRSIG DNSKEY ");
		char t[32];
		if (p && sscanf(p, " RRSIG DNSKEY %*s %*s %*s %31s", t) == 1) {
			struct tm tm = { 0 };
			if (strlen(t) == 14 && sscanf(t, "%4d%2d%2d%2d%2d%2d", &tm.tm_year, &tm.tm_mon,
			                              &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6) {
				tm.tm_year -= 1900;
				tm.tm_mon -= 1;
				int64_t e = (int64_t)timegm(&tm);
				if (*exp == 0 || e < *exp) *exp = e;
			}
		}
	}
	r = res.status == 0 && *exp > 0 ? KHSM_EOK : KHSM_ENOENT;
	khsm_run_clear(&res);
	return r;
}

typedef struct {
	const char *conf_path;
	const char *const *zones;
	khsm_ksks_t *out;
} ksks_job_t;

static void ksks_one(void *ctx, size_t i)
{
	ksks_job_t *job = ctx;
	khsm_ksks_t *k = &job->out[i];
	k->r = khsm_keymgr_ksks(job->conf_path, job->zones[i], &k->keys, &k->count);
	const char *d = khsm_err_last_detail();
	if (k->r != KHSM_EOK && d) k->detail = strdup(d);
	khsm_err_clear();
}

_public_
void khsm_keymgr_ksks_each(const char *conf_path, const char *const *zones, size_t n,
                           khsm_ksks_t *out)
{
	if ((!zones || !out) && n) {
		return;
	}
	for (size_t i = 0; i < n; i++) out[i] = (khsm_ksks_t) { .r = KHSM_EINVAL };
	ksks_job_t job = { .conf_path = conf_path, .zones = zones, .out = out };
	/* each zone's run reads its keyless cut (zoneconf.h), else the whole file */
	bool cut = n > 1 && conf_path && khsm_zoneconf_use(conf_path) == KHSM_EOK;
	khsm_err_clear();
	khsm_parallel_for(n, 0, ksks_one, &job);
	if (cut) khsm_zoneconf_release(conf_path);
}

_public_
void khsm_ksks_clear(khsm_ksks_t *k)
{
	if (k) {
		khsm_dnskeys_free(k->keys, k->count);
		free(k->detail);
		*k = (khsm_ksks_t) { 0 };
	}
}

_public_
void khsm_dnskeys_free(dnssec_key_t **keys, size_t count)
{
	for (size_t i = 0; keys && i < count; i++) {
		dnssec_key_free(keys[i]);
	}
	free(keys);
}

_public_
int khsm_keymgr_ksks(const char *conf_path, const char *zone, dnssec_key_t ***keys_ptr,
                     size_t *count_ptr)
{
	const char *args[] = { zone, "dnskey", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(conf_path, args, &res);
	if (r != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		if (d && strstr(d, "token not available")) {
			khsm_err_suffix("; keymgr opens the zone's keystore even to print public keys: "
			                "connect the card (knot-hsm doctor checks it)");
		}
		return r;
	}
	struct { dnssec_key_t **keys; size_t count; } s = { 0 };
	for (char *line = res.out; line && *line; ) {
		char *end = strchr(line, '\n');
		if (end) {
			*end = '\0';
		}
		if (line[strspn(line, " \t")] != '\0') {
			dnssec_key_t *key = NULL;
			r = khsm_dnskey_from_text(zone, line, &key);
			if (r != KHSM_EOK) {
				if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
				khsm_err_prefix("keymgr %s dnskey printed '%.200s': ", zone, line);
				r = KHSM_EPARSE;
				break;
			}
			dnssec_key_t **grown = realloc(s.keys, (s.count + 1) * sizeof(*grown));
			if (!grown) {
				dnssec_key_free(key);
				r = KHSM_ENOMEM;
				break;
			}
			s.keys = grown;
			s.keys[s.count++] = key;
		}
		line = end ? end + 1 : NULL;
	}
	khsm_run_clear(&res);
	if (r != KHSM_EOK) {
		khsm_dnskeys_free(s.keys, s.count);
		return r;
	}
	*keys_ptr = s.keys;
	*count_ptr = s.count;
	return KHSM_EOK;
}
