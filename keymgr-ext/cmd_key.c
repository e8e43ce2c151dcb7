/* generate, import, keys: parse the arguments, call lib/enroll.c or
 * lib/inventory.c once, print. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libdnssec/key.h>

#include "cleanup.h"
#include "lib/dnskey.h"
#include "lib/enroll.h"
#include "lib/keydelete.h"
#include "lib/inventory.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/json.h"
#include "lib/kasp.h"
#include "lib/knot.h"
#include "lib/rollover.h"
#include "lib/uri.h"
#include "lib/zoneconf.h"
#include "zonecmd.h"


/* -- shared steps ---------------------------------------------------------- */

/* Open the keystore of knot.conf as knotd does and log in once. The PIN comes
 * from the config's pin-source (as for knotd), else from the command line.
 * An enrolment's open step (ctx: the cli); returns a KHSM_E* code. */
int cli_open_card(void *ctx, const char *config, khsm_pin_t **pin_ptr, khsm_keystore_t **ks_ptr)
{
	cli_t *cli = ctx;
	khsm_keystore_t *ks = NULL;
	int r = khsm_keystore_open(config, &ks);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_uri_t attrs = { 0 };
	r = khsm_uri_parse(khsm_keystore_uri(ks), &attrs);
	if (r == KHSM_EOK && attrs.pin_source) {
		/* Some GnuTLS calls log in with an object's own URL, which has no
		 * pin-source: give them the same bytes knotd reads from the file. */
		r = khsm_pin_from_file(attrs.pin_source, cli->force, pin_ptr);
	} else if (r == KHSM_EOK && !attrs.pin_value) {
		r = cli_pin(cli, true, pin_ptr);
	}
	khsm_uri_clear(&attrs);
	if (r == KHSM_EOK) {
		khsm_keystore_set_pin(ks, *pin_ptr);
	}
	if (r == KHSM_EOK) {
		r = khsm_keystore_login(ks, *pin_ptr, cli->force);
	}
	if (r != KHSM_EOK) {
		khsm_keystore_close(ks);
		return r;
	}
	khsm_login_hold_keep(cli->login_hold, ks);
	*ks_ptr = ks;
	return KHSM_EOK;
}

static int open_keystore(cli_t *cli, const char *config, khsm_pin_t **pin_ptr,
                         khsm_keystore_t **ks_ptr)
{
	int r = cli_open_card(cli, config, pin_ptr, ks_ptr);
	return r == KHSM_EOK ? CLI_OK : cli_error(r, NULL);
}

/* Where generate and import print their text: stdout, or stderr under
 * --json (stdout then holds the JSON array alone). */
static FILE *info_out(const cli_t *cli)
{
	return cli->json ? stderr : stdout;
}

/* Key id, tag, DNSKEY and DS (SHA-256) of a key that just proved it works:
 * text, or one object of the --json array j. */
static int print_key(const char *zone, const char *id_hex, const dnssec_key_t *key, khsm_json_t *j)
{
	khsm_dnskey_info_t info;
	_cleanup_free_ char *dnskey = NULL;
	_cleanup_free_ char *ds = NULL;
	_cleanup_free_ char *digest = NULL;
	int r = khsm_dnskey_info(key, &info);
	if (r == KHSM_EOK) r = khsm_dnskey_line(key, &dnskey);
	if (r == KHSM_EOK && info.sep) r = khsm_ds_line(key, 2, &ds);
	if (r == KHSM_EOK && info.sep && j) r = khsm_ds_digest(key, 2, &digest);
	if (r != KHSM_EOK) {
		return cli_error(r, "%s", zone);
	}
	if (j) {
		/* The names and types of ds --json, plus the key id. */
		khsm_json_object(j, NULL);
		khsm_json_str(j, "zone", zone);
		khsm_json_str(j, "id", id_hex);
		khsm_json_uint(j, "key_tag", info.key_tag);
		khsm_json_uint(j, "algorithm", info.algorithm);
		khsm_json_str(j, "algorithm_name", info.algorithm_name);
		khsm_json_uint(j, "flags", info.flags);
		khsm_json_bool(j, "ksk", info.sep);
		khsm_json_str(j, "dnskey", dnskey);
		khsm_json_array(j, "ds");
		if (ds) {
			khsm_json_object(j, NULL);
			khsm_json_uint(j, "digest_type", 2);
			khsm_json_str(j, "digest", digest);
			khsm_json_str(j, "text", ds);
			khsm_json_end(j);
		}
		khsm_json_end(j);
		khsm_json_end(j);
		return CLI_OK;
	}
	printf("zone: %s\nkey id: %s\nkey tag: %u\nalgorithm: %s\n%s\n", zone, id_hex,
	       info.key_tag, info.algorithm_name, dnskey);
	if (ds) {
		printf("%s\n", ds);
	}
	return CLI_OK;
}

/* --json for generate and import: the array of the keys made or adopted,
 * written to memory and printed only when every zone succeeded (on an error,
 * stdout stays empty). */
typedef struct {
	char *buf;
	size_t len;
	FILE *mem;
	khsm_json_t j;
} json_keys_t;

static int json_keys_open(const cli_t *cli, json_keys_t *jk, khsm_json_t **j_ptr)
{
	*j_ptr = NULL;
	if (!cli->json) return CLI_OK;
	if (!(jk->mem = open_memstream(&jk->buf, &jk->len))) return cli_error(KHSM_ENOMEM, NULL);
	khsm_json_init(&jk->j, jk->mem, KHSM_JSON_LINES);
	khsm_json_array(&jk->j, NULL);
	*j_ptr = &jk->j;
	return CLI_OK;
}

static int json_keys_close(json_keys_t *jk, int rc)
{
	if (!jk->mem) return rc;
	khsm_json_end(&jk->j);
	fclose(jk->mem);
	if (rc == CLI_OK) printf("%s\n", jk->buf);
	free(jk->buf);
	return rc;
}

static int parse_roles(const kv_t *kv, bool *ksk, bool *zsk)
{
	const char *k = kv_get(kv, "ksk"), *z = kv_get(kv, "zsk");
	*ksk = !z;   /* a KSK unless only zsk= is given */
	*zsk = false;
	if (k && kv_bool("ksk", k, ksk) != CLI_OK) return CLI_USAGE;
	if (z && kv_bool("zsk", z, zsk) != CLI_OK) return CLI_USAGE;
	if (z && !k && *zsk) *ksk = false;
	if (!*ksk && !*zsk) {
		return cli_usage_error(cli_current, "the key must be a KSK or a ZSK (ksk=yes or zsk=yes)");
	}
	return CLI_OK;
}

/* Timers an operator may set when registering (keymgr's own names and
 * formats: UNIX time, YYYYMMDDHHMMSS, +/-offset, 0 to unset). */
#define TIMER_KEYS { "publish", NULL }, { "ready", NULL }, { "active", NULL }, \
                   { "retire", NULL }, { "remove", NULL }

/* The timer=value arguments given (NULL-terminated), checked before anything
 * touches the card. */
static int timer_args(const kv_t *kv, const char *out[6])
{
	static const char *const NAMES[] = { "publish", "ready", "active", "retire", "remove" };
	size_t n = 0;
	for (size_t i = 0; i < 5; i++) {
		const char *v = kv_get(kv, NAMES[i]);
		if (v) {
			int rc = kv_timer(NAMES[i], v);
			if (rc != CLI_OK) {
				return rc;
			}
			out[n++] = v - strlen(NAMES[i]) - 1;   /* the whole argv word */
		}
	}
	out[n] = NULL;
	return CLI_OK;
}

static void print_notice(void *ctx, khsm_enroll_event_t event, const khsm_enrolled_t *key,
                         const char *arg)
{
	const khsm_enroll_t *req = ctx;
	switch (event) {
	case KHSM_ENROLL_RSA_SLOW:
		fprintf(stderr, "warning: RSA on a smartcard is slow (a few signatures per second or "
		        "less); ECDSA P-256 (ecdsap256sha256) is the better choice for a card KSK\n");
		break;
	case KHSM_ENROLL_GENERATING:
		fprintf(info_out(req->open_ctx), "generating %s %s on token for %s (label '%s')...\n",
		       khsm_algorithm_name(key->algorithm), req->ksk ? "KSK" : "ZSK", arg,
		       khsm_esc(key->label));
		fflush(stdout);
		break;
	case KHSM_ENROLL_SHARED:
		fprintf(info_out(req->open_ctx), "shared with %s: the card key now serves both zones\n", arg);
		break;
	case KHSM_ENROLL_ID_FIXED:
		fprintf(info_out(req->open_ctx), "CKA_ID set on both objects of '%s'\n", khsm_esc(arg));
		break;
	}
}

/* The error of a failed enrolment, named by the step that failed. */
static int enroll_error(int r, const khsm_zone_t *zone, const khsm_enrolled_t *out)
{
	switch (out->failed_at) {
	case KHSM_ENROLL_AT_TOKEN:     return cli_error(r, "keystore %s", zone->keystore->id);
	case KHSM_ENROLL_AT_GENERATE:  return cli_error(r, "generate");
	case KHSM_ENROLL_AT_FIX_ID:    return cli_error(r, "fix-id");
	case KHSM_ENROLL_AT_ALGORITHM: return cli_error(r, "algorithm of the key");
	case KHSM_ENROLL_AT_IMPORT:    return cli_error(r, "import of %s", out->id_hex);
	case KHSM_ENROLL_AT_NONE:      break;
	}
	return cli_error(r, NULL);
}

/* generate or import, zone after zone: --json collects the keys; over several
 * zones every zone's KASP is listed once, not once per zone, and each keymgr
 * run reads its zone's cut (zoneconf.h). */
typedef int (*enroll_zone_fn)(cli_t *cli, khsm_conf_t **conf, const char *zone_arg, khsm_json_t *j,
                              khsm_kasp_keep_t *keep);

static int enroll_each(cli_t *cli, enroll_zone_fn zone_fn)
{
	_cleanup_conf_ khsm_conf_t *own_conf = NULL;
	khsm_conf_t **conf = cli->enroll_conf ? cli->enroll_conf : &own_conf;
	json_keys_t jk = { 0 };
	khsm_json_t *j = NULL;
	int rc = json_keys_open(cli, &jk, &j);
	khsm_kasp_keep_t own = { 0 };
	khsm_kasp_keep_t *keep = cli->kasp_keep ? cli->kasp_keep : cli->zone_count > 1 ? &own : NULL;
	const char *path = zone_conf_path(cli);
	bool cut = cli->zone_count > 1 && khsm_zoneconf_use(path) == KHSM_EOK;
	/* one login per card for the zones, not one each, and keymgr
	 * import-pkcs11 served with it (lib/serve.h) */
	khsm_login_hold_t *hold = NULL;
	if (!cli->login_hold && khsm_login_hold_new(&hold) == KHSM_EOK) {
		cli->login_hold = hold;
	}
	/* one key imported in zone after zone is asked of the card once */
	khsm_enroll_memo_t memo = { 0 };
	bool own_memo = !cli->enroll_memo && cli->zone_count > 1;
	if (own_memo) cli->enroll_memo = &memo;
	khsm_err_clear();
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		rc = zone_fn(cli, conf, cli->zones[i], j, keep);
	}
	if (own_memo) cli->enroll_memo = NULL;
	khsm_enroll_memo_clear(&memo);
	if (hold) {
		cli->login_hold = NULL;
		khsm_login_hold_free(hold);
	}
	if (cut) khsm_zoneconf_release(path);
	khsm_kasp_keep_clear(&own);
	return json_keys_close(&jk, rc);
}

/* -- generate -------------------------------------------------------------- */

static int generate_zone(cli_t *cli, khsm_conf_t **conf, const char *zone_arg, khsm_json_t *j,
                         khsm_kasp_keep_t *keep)
{
	kv_t kv[] = { { "ksk", NULL }, { "zsk", NULL }, { "algorithm", NULL }, { "size", NULL },
	              { "label", NULL }, { "keystore", NULL }, TIMER_KEYS, { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	khsm_enroll_t req = { .label = kv_get(kv, "label"), .conf_arg = cli->conf, .force = cli->force,
	                      .open = cli_open_card, .open_ctx = cli, .notice = print_notice,
	                      .kasp_keep = keep, .login_hold = cli->login_hold, .memo = cli->enroll_memo };
	req.notice_ctx = &req;
	if ((rc = parse_roles(kv, &req.ksk, &req.zsk)) != CLI_OK) return rc;
	const char *timers[6];
	if ((rc = timer_args(kv, timers)) != CLI_OK) return rc;
	req.timers = timers;

	_cleanup_zone_ khsm_zone_t zone = { 0 };
	if ((rc = zone_open(cli, zone_arg, kv_get(kv, "keystore"), conf, &zone)) != CLI_OK) return rc;

	int r = khsm_zone_key_algorithm(&zone, kv_get(kv, "algorithm"), &req.algorithm);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	const char *size = kv_get(kv, "size");
	bool rsa = req.algorithm == 8 || req.algorithm == 10;
	if (size) {
		char *end = NULL;
		unsigned long v = strtoul(size, &end, 10);
		if (!*size || *end || v == 0 || v > 16384 || !rsa) {
			return cli_usage_error(cli_current, rsa ? "size= must be a number of bits, not '%s'"
			                       : "size= applies to RSA only ('%s')", size);
		}
		req.bits = (unsigned)v;
	} else if (rsa) {
		req.bits = 2048;
	}

	khsm_enrolled_t out = { 0 };
	r = khsm_zone_key_generate(*conf, &zone, &req, &out);
	if (r != KHSM_EOK) {
		rc = enroll_error(r, &zone, &out);
		khsm_enrolled_clear(&out);
		return rc;
	}
	rc = print_key(zone.name, out.id_hex, out.key, j);
	khsm_enrolled_clear(&out);
	if (zone.policy && zone.policy->keystore_count > 1 && req.ksk && !req.zsk) {
		/* Online mode (Knot >= 3.5): knotd would otherwise start a signing
		 * scheme rollover and make a KSK of its own. */
		fprintf(info_out(cli), "note: policy '%s' has several keystores (online mode); knotd makes its keys "
		       "itself. With a KSK made here, also make the ZSK: keymgr -c %s %s generate "
		       "ksk=no zsk=yes\n", zone.policy->id, khsm_conf_path(*conf), zone.name);
	}
	if (!cli->in_ceremony) zone_reload_keys(*conf, zone.name, info_out(cli));
	return rc;
}

int cmd_generate(cli_t *cli)
{
	return enroll_each(cli, generate_zone);
}

/* -- import ---------------------------------------------------------------- */

static int import_zone(cli_t *cli, khsm_conf_t **conf, const char *zone_arg, khsm_json_t *j,
                       khsm_kasp_keep_t *keep)
{
	kv_t kv[] = { { "label", NULL }, { "id", NULL }, { "ksk", NULL }, { "zsk", NULL },
	              { "algorithm", NULL }, { "fix-id", NULL }, { "keystore", NULL }, TIMER_KEYS,
	              { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	khsm_enroll_t req = { .label = kv_get(kv, "label"), .id_arg = kv_get(kv, "id"),
	                      .algorithm_arg = kv_get(kv, "algorithm"), .conf_arg = cli->conf,
	                      .force = cli->force, .open = cli_open_card, .open_ctx = cli,
	                      .notice = print_notice, .kasp_keep = keep, .login_hold = cli->login_hold,
	                      .memo = cli->enroll_memo };
	req.notice_ctx = &req;
	if (!req.label == !req.id_arg) {
		return cli_usage_error(cli_current, "give label=TEXT or id=HEX (one of them)");
	}
	if ((rc = parse_roles(kv, &req.ksk, &req.zsk)) != CLI_OK) return rc;
	const char *timers[6];
	if ((rc = timer_args(kv, timers)) != CLI_OK) return rc;
	req.timers = timers;
	if (kv_get(kv, "fix-id") && (rc = kv_bool("fix-id", kv_get(kv, "fix-id"), &req.fix_id)) != CLI_OK) return rc;
	int r = KHSM_EOK;
	if (req.algorithm_arg && (r = khsm_algorithm_from_name(req.algorithm_arg, &req.algorithm)) != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	_cleanup_free_ uint8_t *id = NULL;
	if (req.id_arg && (r = khsm_hex_parse(req.id_arg, &id, &req.id_len)) != KHSM_EOK) {
		return cli_error(r, "id=");
	}
	req.id = id;

	_cleanup_zone_ khsm_zone_t zone = { 0 };
	if ((rc = zone_open(cli, zone_arg, kv_get(kv, "keystore"), conf, &zone)) != CLI_OK) return rc;

	khsm_enrolled_t out = { 0 };
	r = khsm_zone_key_import(*conf, &zone, &req, &out);
	if (r != KHSM_EOK) {
		rc = enroll_error(r, &zone, &out);
		khsm_enrolled_clear(&out);
		return rc;
	}
	if (out.known) {
		fprintf(info_out(cli), "key %s is already in the KASP of %s; nothing to do\n", out.id_hex, zone.name);
		khsm_enrolled_clear(&out);
		return CLI_OK;
	}
	rc = print_key(zone.name, out.id_hex, out.key, j);
	khsm_enrolled_clear(&out);
	if (!cli->in_ceremony) zone_reload_keys(*conf, zone.name, info_out(cli));
	return rc;
}

int cmd_import(cli_t *cli)
{
	return enroll_each(cli, import_zone);
}

/* -- delete ---------------------------------------------------------------- */

int cmd_delete(cli_t *cli)
{
	kv_t kv[] = { { "id", NULL }, { "label", NULL }, { "keystore", NULL }, { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	khsm_key_delete_t req = { .id_hex = kv_get(kv, "id"), .label = kv_get(kv, "label"),
	                          .conf_arg = cli->conf, .force = cli->force, .open = cli_open_card,
	                          .open_ctx = cli };
	if (!req.label == !req.id_hex) {
		return cli_usage_error(cli_current, "give id=HEX or label=TEXT (one of them)");
	}
	if (cli->zone_count != 1) {
		return cli_usage_error(cli_current, "delete takes one zone");
	}
	_cleanup_free_ uint8_t *id = NULL;
	size_t id_len = 0;
	int r = KHSM_EOK;
	if (req.id_hex && (r = khsm_hex_parse(req.id_hex, &id, &id_len)) != KHSM_EOK) {
		return cli_error(r, "id=");
	}
	_cleanup_conf_ khsm_conf_t *conf = NULL;
	_cleanup_zone_ khsm_zone_t zone = { 0 };
	if ((rc = zone_open(cli, cli->zones[0], kv_get(kv, "keystore"), &conf, &zone)) != CLI_OK) return rc;
	khsm_key_deleted_t out = { 0 };
	if ((r = khsm_zone_key_delete(conf, &zone, &req, &out)) != KHSM_EOK) {
		return cli_error(r, "delete");
	}
	printf("deleted %s %s (tag %u) of %s from KASP%s\n", out.ksk ? "KSK" : "ZSK", out.id_hex,
	       out.tag, zone.name, out.card_missed ? "; no card here holds it (a lost card), so "
	       "nothing was deleted on a card" : " and the card");
	zone_reload_keys(conf, zone.name, stdout);
	return CLI_OK;
}

/* -- keys ------------------------------------------------------------------ */

/* KSK, ZSK or CSK as KASP has it; lower-case for JSON. */
static const char *key_kind(const khsm_kasp_key_t *key, bool lower)
{
	if (key->ksk && key->zsk) return lower ? "csk" : "CSK";
	return key->ksk ? (lower ? "ksk" : "KSK") : (lower ? "zsk" : "ZSK");
}

/* The zones whose KASP uses the key: JSON strings to j, or text. */
static void print_zones_using(const khsm_kasp_index_t *kasp, const char *id_hex, khsm_json_t *j)
{
	size_t pos = 0;
	const khsm_kasp_entry_t *e;
	const char *sep = "";
	while ((e = khsm_kasp_next(kasp, id_hex, &pos))) {
		if (j) {
			khsm_json_str(j, NULL, e->zone);
		} else {
			/* text: the role only when it is not plain "active"; a KSK's
			 * only when it is in a rollover or a standby, as before */
			int64_t now = (int64_t)time(NULL);
			bool ksk = e->key.ksk && !e->key.zsk;
			const char *role = ksk ? khsm_rollover_role_in(kasp, e->zone, id_hex, now)
			                       : khsm_rollover_key_role_in(kasp, e->zone, id_hex, now);
			if (role && strcmp(role, "active") == 0) role = NULL;
			printf("%s%s (%s%s%s)", sep, e->zone, key_kind(&e->key, false),
			       role ? ", " : "", role ? role : "");
		}
		sep = ", ";
	}
}

/* The KSK's role in each zone that uses it (lib/rollover.c), as JSON objects. */
static void print_roles(const khsm_kasp_index_t *kasp, const char *id_hex, khsm_json_t *j)
{
	size_t pos = 0;
	const khsm_kasp_entry_t *e;
	while ((e = khsm_kasp_next(kasp, id_hex, &pos))) {
		const char *role = khsm_rollover_role_in(kasp, e->zone, id_hex, (int64_t)time(NULL));
		if (!role) continue;
		khsm_json_object(j, NULL);
		khsm_json_str(j, "zone", e->zone);
		khsm_json_str(j, "role", role);
		khsm_json_end(j);
	}
}

/* Every zone's use of the key, whatever its kind, as JSON objects: kind,
 * role (khsm_rollover_key_role_in()) and the KASP state. */
static void print_uses(const khsm_kasp_index_t *kasp, const char *id_hex, khsm_json_t *j)
{
	size_t pos = 0;
	const khsm_kasp_entry_t *e;
	while ((e = khsm_kasp_next(kasp, id_hex, &pos))) {
		int64_t now = (int64_t)time(NULL);
		khsm_json_object(j, NULL);
		khsm_json_str(j, "zone", e->zone);
		khsm_json_str(j, "kind", key_kind(&e->key, true));
		khsm_json_str(j, "role", khsm_rollover_key_role_in(kasp, e->zone, id_hex, now));
		khsm_json_str(j, "state", khsm_kasp_key_state_name(khsm_kasp_key_state(&e->key, now)));
		khsm_json_end(j);
	}
}

/* ids: every keystore id of knot.conf with this same config (online mode's
 * policy adds a second id for the card of the operator's keystore), so each
 * card is listed once. */
static int keys_of_keystore(cli_t *cli, const khsm_conf_t *conf, const khsm_kasp_index_t *kasp,
                            const khsm_conf_keystore_t *kscfg, const char *const *ids, size_t n_ids,
                            khsm_json_t *j, bool first)
{
	_cleanup_pin_ khsm_pin_t *pin = NULL;
	_cleanup_keystore_ khsm_keystore_t *ks = NULL;
	int rc = open_keystore(cli, kscfg->config, &pin, &ks);
	if (rc != CLI_OK) return rc;

	khsm_inventory_t inv = { 0 };
	int r = khsm_inventory_card(conf, kasp, ks, pin, cli->force, ids, n_ids, &inv);
	if (r != KHSM_EOK) {
		return cli_error(r, "keystore %s", kscfg->id);
	}

	if (j) {
		khsm_json_object(j, NULL);
		khsm_json_str(j, "keystore", kscfg->id);
		khsm_json_array(j, "ids");
		for (size_t i = 0; i < n_ids; i++) khsm_json_str(j, NULL, ids[i]);
		khsm_json_end(j);
		khsm_json_array(j, "keys");
	} else {
		printf("%skeystore %s", first ? "" : "\n", ids[0]);
		for (size_t i = 1; i < n_ids; i++) printf(", %s", ids[i]);
		_cleanup_free_ char *shown = NULL;
		printf(": %s\n", khsm_redact(khsm_keystore_uri(ks), &shown) == KHSM_EOK ? shown : "");
	}
	for (size_t i = 0; i < inv.key_count; i++) {
		const khsm_inventory_key_t *k = &inv.keys[i];
		const char *algname = k->algorithm ? khsm_algorithm_name(k->algorithm) : NULL;
		if (j) {
			khsm_json_object(j, NULL);
			khsm_json_str(j, "label", k->label);
			khsm_json_str(j, "id", k->id_hex);
			khsm_json_str(j, "algorithm", algname);
			khsm_json_uint(j, "bits", k->bits);
			if (k->tag >= 0) khsm_json_int(j, "key_tag", k->tag); else khsm_json_null(j, "key_tag");
			khsm_json_array(j, "zones");
			if (k->kasp_id) print_zones_using(kasp, k->kasp_id, j);
			khsm_json_end(j);
			khsm_json_array(j, "roles");
			if (k->kasp_id) print_roles(kasp, k->kasp_id, j);
			khsm_json_end(j);
			khsm_json_array(j, "uses");
			if (k->kasp_id) print_uses(kasp, k->kasp_id, j);
			khsm_json_end(j);
			khsm_json_bool(j, "unused", !k->used);
			khsm_json_end(j);
		} else {
			char tagbuf[16] = "?";
			if (k->tag >= 0) snprintf(tagbuf, sizeof(tagbuf), "%d", k->tag);
			printf("  %s  tag %s  %s %u bits  label '%s'\n", k->id_hex ? k->id_hex : "(no CKA_ID)",
			       tagbuf, algname ? algname : "?", k->bits, khsm_esc(k->label));
			printf("    zones: ");
			if (k->used) print_zones_using(kasp, k->kasp_id, NULL);
			else printf("none: on the card, used by no zone%s", k->id_hex ? "" : " (and Knot cannot use "
			            "it without a CKA_ID: knot-hsm ZONE import label=... fix-id=yes)");
			printf("\n");
		}
	}

	/* KASP keys of zones on this keystore whose card object is gone. */
	if (j) {
		khsm_json_end(j);
		khsm_json_array(j, "missing");
	}
	for (size_t i = 0; i < inv.missing_count; i++) {
		const khsm_inventory_missing_t *m = &inv.missing[i];
		if (j) {
			khsm_json_object(j, NULL);
			khsm_json_str(j, "zone", m->zone);
			khsm_json_str(j, "id", m->id_hex);
			khsm_json_uint(j, "key_tag", m->tag);
			khsm_json_end(j);
		} else {
			printf("  MISSING: %s %s tag %u is in KASP but not on the card\n", m->zone, m->id_hex, m->tag);
		}
	}
	if (j) {
		khsm_json_end(j);
		khsm_json_end(j);
	}
	khsm_inventory_clear(&inv);
	return CLI_OK;
}

/* A card keystore to list: pkcs11, with a config to open. */
static bool listable(const khsm_conf_keystore_t *ks)
{
	return khsm_conf_keystore_is_pkcs11(ks) && ks->config;
}

int cmd_keys(cli_t *cli)
{
	_cleanup_conf_ khsm_conf_t *conf = NULL;
	int r = khsm_conf_load(zone_conf_path(cli), &conf);
	if (r != KHSM_EOK) return cli_error(r, "%s", zone_conf_path(cli));
	_cleanup_kasp_ khsm_kasp_index_t kasp = { 0 };
	if ((r = khsm_kasp_index(conf, &kasp)) != KHSM_EOK) return cli_error(r, NULL);

	/* Offline-KSK mode: the card KSKs are in the KASP of the KSK side, which
	 * knot-hsm policy --write puts next to knot.conf. */
	_cleanup_free_ char *ksk_side = ksk_side_path(khsm_conf_path(conf));
	if (ksk_side && (r = khsm_kasp_index_add_ksk_side(ksk_side, &kasp)) != KHSM_EOK) {
		return cli_error(r, "%s", ksk_side);
	}

	khsm_json_t json;
	khsm_json_t *j = NULL;
	if (cli->json) {
		khsm_json_init(&json, stdout, KHSM_JSON_LINES);
		j = &json;
		khsm_json_array(j, NULL);
	}
	size_t shown = 0;
	int first_rc = CLI_OK;
	size_t n = khsm_conf_keystore_count(conf);
	_cleanup_free_ const char **ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids) return cli_error(KHSM_ENOMEM, NULL);
	for (size_t i = 0; i < n; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(conf, i);
		if (!listable(ks)) continue;
		/* A card already listed under an earlier id is not listed again. */
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++) {
			const khsm_conf_keystore_t *o = khsm_conf_keystore_at(conf, k);
			seen = listable(o) && strcmp(o->config, ks->config) == 0;
		}
		if (seen) continue;
		size_t n_ids = 0;
		for (size_t k = i; k < n; k++) {
			const khsm_conf_keystore_t *o = khsm_conf_keystore_at(conf, k);
			if (listable(o) && strcmp(o->config, ks->config) == 0) ids[n_ids++] = o->id;
		}
		/* a card that fails (absent, lost) is an error; the others are
		 * still listed */
		int rc = keys_of_keystore(cli, conf, &kasp, ks, ids, n_ids, j, shown == 0);
		if (rc != CLI_OK) {
			fprintf(stderr, "keystore %s: not listed; a card lost for good leaves knot.conf "
			        "(then write the policy again)\n", ids[0]);
			if (first_rc == CLI_OK) first_rc = rc;
			continue;
		}
		shown++;
	}
	if (j) {
		khsm_json_end(j);
		putchar('\n');
	}
	if (first_rc != CLI_OK) {
		return first_rc;
	}
	if (shown == 0) {
		khsm_err_detail("%s has no pkcs11 keystore", zone_conf_path(cli));
		return cli_error(KHSM_ECONFIG, NULL);
	}
	return CLI_OK;
}
