/* Card keys and Knot's KASP: generate, import, keys. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdnssec/key.h>

#include "lib/cardkey.h"
#include "cleanup.h"
#include "lib/dnskey.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/json.h"
#include "lib/kasp.h"
#include "lib/knot.h"
#include "lib/token.h"
#include "lib/uri.h"
#include "zonecmd.h"


/* -- shared steps ---------------------------------------------------------- */

/* Open the keystore of knot.conf as knotd does and log in once. The PIN comes
 * from the config's pin-source (as for knotd), else from the command line. */
static int open_keystore(cli_t *cli, const char *config, khsm_pin_t **pin_ptr,
                         khsm_keystore_t **ks_ptr)
{
	khsm_keystore_t *ks = NULL;
	int r = khsm_keystore_open(config, &ks);
	if (r != KHSM_EOK) {
		return cli_error(r, NULL);
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
		return cli_error(r, NULL);
	}
	*ks_ptr = ks;
	return CLI_OK;
}

/* The token behind a keystore config, read through p11-kit without login. */
static int keystore_token(const char *config, khsm_tokens_t **tokens_ptr, const khsm_token_t **token_ptr)
{
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	int r = khsm_uri_split_config(config, &uri, &module);
	khsm_uri_t attrs = { 0 };
	if (r == KHSM_EOK) r = khsm_uri_parse(uri, &attrs);
	if (r == KHSM_EOK) r = khsm_tokens_load(module, false, tokens_ptr);
	if (r == KHSM_EOK) r = attrs.token ? khsm_tokens_find(*tokens_ptr, attrs.token, attrs.serial, token_ptr)
	                                   : KHSM_EINVAL;
	khsm_uri_clear(&attrs);
	return r;
}

static int hex_of(const uint8_t *id, size_t len, char **hex)
{
	return khsm_hex_format(id, len, hex);
}

/* Key id, tag, DNSKEY and DS (SHA-256) of a key that just proved it works. */
static int print_key(const char *zone, const char *id_hex, const dnssec_key_t *key)
{
	khsm_dnskey_info_t info;
	_cleanup_free_ char *dnskey = NULL;
	_cleanup_free_ char *ds = NULL;
	int r = khsm_dnskey_info(key, &info);
	if (r == KHSM_EOK) r = khsm_dnskey_line(key, &dnskey);
	if (r == KHSM_EOK && info.sep) r = khsm_ds_line(key, 2, &ds);
	if (r != KHSM_EOK) {
		return cli_error(r, "%s", zone);
	}
	printf("zone: %s\nkey id: %s\nkey tag: %u\nalgorithm: %s\n%s\n", zone, id_hex,
	       info.key_tag, info.algorithm_name, dnskey);
	if (ds) {
		printf("%s\n", ds);
	}
	return CLI_OK;
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

/* keymgr import-pkcs11 (or share, when another zone already has the key),
 * then confirm with keymgr list. */
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

static int register_key(const khsm_conf_t *conf, const khsm_kasp_index_t *kasp, const char *zone,
                        const char *id_hex, int algorithm, bool ksk, bool zsk,
                        const char *const timers[])
{
	size_t pos = 0;
	const khsm_kasp_entry_t *other = khsm_kasp_next(kasp, id_hex, &pos);
	khsm_run_t res = { 0 };
	char alg[32];
	snprintf(alg, sizeof(alg), "algorithm=%d", algorithm);
	const char *import_args[12] = { zone, "import-pkcs11", id_hex, alg,
	                                ksk ? "ksk=yes" : "ksk=no", zsk ? "zsk=yes" : "zsk=no" };
	for (size_t i = 0, n = 6; timers && timers[i] && n < 11; i++) {
		import_args[n++] = timers[i];
	}
	const char *share_args[] = { zone, "share", id_hex, other ? other->zone : "", NULL };
	int r = khsm_keymgr_card(khsm_conf_path(conf), other ? share_args : import_args, &res);
	khsm_run_clear(&res);
	if (r != KHSM_EOK) {
		return r;
	}
	if (other) {
		printf("shared with %s: the card key now serves both zones\n", other->zone);
	}
	if (other && timers && timers[0]) {
		/* keymgr share takes no timers: set them on this zone's copy. */
		const char *set_args[10] = { zone, "set", id_hex };
		size_t n = 3;
		for (size_t i = 0; timers[i] && n < 9; i++) {
			set_args[n++] = timers[i];
		}
		set_args[n] = NULL;
		r = khsm_keymgr(khsm_conf_path(conf), set_args, &res);
		khsm_run_clear(&res);
		if (r != KHSM_EOK) {
			return r;
		}
	}

	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	r = khsm_keymgr_list(khsm_conf_path(conf), zone, &keys, &n);
	bool found = false;
	for (size_t i = 0; r == KHSM_EOK && i < n; i++) {
		found |= strcmp(keys[i].id, id_hex) == 0 && keys[i].ksk == ksk;
	}
	free(keys);
	if (r == KHSM_EOK && !found) {
		khsm_err_detail("keymgr reported success but 'keymgr %s list' does not show key %s",
		                zone, id_hex);
		r = KHSM_ETOOL;
	}
	return r;
}

static int pick_algorithm(const kv_t *kv, const khsm_zone_t *zone, int *alg)
{
	const char *name = kv_get(kv, "algorithm");
	if (!name && zone->policy && zone->policy->algorithm) {
		name = zone->policy->algorithm;
	}
	if (!name) {
		*alg = 13;
		return KHSM_EOK;
	}
	return khsm_algorithm_from_name(name, alg);
}

/* -- generate -------------------------------------------------------------- */

static int generate_zone(cli_t *cli, khsm_conf_t **conf, const char *zone_arg)
{
	kv_t kv[] = { { "ksk", NULL }, { "zsk", NULL }, { "algorithm", NULL }, { "size", NULL },
	              { "label", NULL }, { "keystore", NULL }, TIMER_KEYS, { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	bool ksk, zsk;
	if ((rc = parse_roles(kv, &ksk, &zsk)) != CLI_OK) return rc;
	const char *timers[6];
	if ((rc = timer_args(kv, timers)) != CLI_OK) return rc;

	_cleanup_zone_ khsm_zone_t zone = { 0 };
	if ((rc = zone_open(cli, zone_arg, kv_get(kv, "keystore"), conf, &zone)) != CLI_OK) return rc;

	int alg = 0;
	int r = pick_algorithm(kv, &zone, &alg);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	unsigned bits = 0;
	const char *size = kv_get(kv, "size");
	bool rsa = alg == 8 || alg == 10;
	if (size) {
		char *end = NULL;
		unsigned long v = strtoul(size, &end, 10);
		if (!*size || *end || v == 0 || v > 16384 || !rsa) {
			return cli_usage_error(cli_current, rsa ? "size= must be a number of bits, not '%s'"
			                       : "size= applies to RSA only ('%s')", size);
		}
		bits = (unsigned)v;
	} else if (rsa) {
		bits = 2048;
	}

	/* Refuse what the token cannot do before touching the card. */
	khsm_tokens_t *tokens = NULL;
	const khsm_token_t *token = NULL;
	r = keystore_token(zone.keystore->config, &tokens, &token);
	if (r != KHSM_EOK) {
		khsm_tokens_free(tokens);
		return cli_error(r, "keystore %s", zone.keystore->id);
	}
	unsigned cap = khsm_cap_for_algorithm(alg);
	if (!(khsm_caps_usable(token->caps) & cap) ||
	    (rsa && (bits < token->rsa_min_bits || (token->rsa_max_bits && bits > token->rsa_max_bits)))) {
		_cleanup_free_ char *caps = khsm_token_caps_text(token);
		khsm_err_detail("token '%s' cannot generate %s keys%s for Knot; it can: %s", token->label,
		                khsm_algorithm_name(alg), rsa ? " of that size" : "", caps ? caps : "?");
		khsm_tokens_free(tokens);
		return cli_error(KHSM_ENOTSUP, NULL);
	}
	khsm_tokens_free(tokens);
	if (rsa) {
		fprintf(stderr, "warning: RSA on a smartcard is slow (a few signatures per second or "
		        "less); ECDSA P-256 (ecdsap256sha256) is the better choice for a card KSK\n");
	}

	char def_label[300];
	snprintf(def_label, sizeof(def_label), "%s %s", zone.name, ksk ? "KSK" : "ZSK");
	const char *label = kv_get(kv, "label") ? kv_get(kv, "label") : def_label;

	_cleanup_kasp_ khsm_kasp_index_t kasp = { 0 };
	r = khsm_kasp_index(*conf, &kasp);
	if (r != KHSM_EOK) return cli_error(r, NULL);

	_cleanup_pin_ khsm_pin_t *pin = NULL;
	_cleanup_keystore_ khsm_keystore_t *ks = NULL;
	if ((rc = open_keystore(cli, zone.keystore->config, &pin, &ks)) != CLI_OK) return rc;

	/* A key with this label that no zone uses is what an interrupted run
	 * leaves behind: finish that one instead of making another. */
	khsm_cardobjs_t objs = { 0 };
	r = khsm_cardkey_find(ks, label, NULL, 0, KHSM_URI_TYPE_PRIVATE, pin, cli->force, &objs);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	for (size_t i = 0; i < objs.count; i++) {
		_cleanup_free_ char *hex = NULL;
		size_t pos = 0;
		if (objs.items[i].id_len && hex_of(objs.items[i].id, objs.items[i].id_len, &hex) == KHSM_EOK &&
		    !khsm_kasp_next(&kasp, hex, &pos)) {
			khsm_err_detail("key '%s' (id %s) is on the card but in no zone's KASP, probably from "
			                "an interrupted run; finish it with: knot-hsm%s%s %s import id=%s, or "
			                "delete it from the card", label, hex, cli->conf ? " -c " : "",
			                cli->conf ? cli->conf : "", zone.name, hex);
			khsm_cardobjs_clear(&objs);
			return cli_error(KHSM_EEXIST, NULL);
		}
	}
	khsm_cardobjs_clear(&objs);

	printf("generating %s %s on token for %s (label '%s')...\n", khsm_algorithm_name(alg),
	       ksk ? "KSK" : "ZSK", zone.name, khsm_esc(label));
	fflush(stdout);
	_cleanup_free_ uint8_t *id = NULL;
	size_t id_len = 0;
	r = khsm_cardkey_generate(ks, alg, bits, label, &id, &id_len);
	if (r != KHSM_EOK) {
		if (r == KHSM_EDEVMEM) {
			khsm_err_detail("the card has no room for another key pair; delete unused keys "
			                "(knot-hsm keys lists them) and retry. Nothing was written to KASP");
		}
		return cli_error(r, "generate");
	}
	_cleanup_free_ char *id_hex = NULL;
	if ((r = hex_of(id, id_len, &id_hex)) != KHSM_EOK) return cli_error(r, NULL);

	/* Prove the key before Knot depends on it; remove it if it fails. */
	dnssec_key_t *key = NULL;
	r = khsm_cardkey_selftest(ks, zone.name, id_hex, alg, ksk, &key);
	if (r == KHSM_EOK) {
		r = register_key(*conf, &kasp, zone.name, id_hex, alg, ksk, zsk, timers);
	}
	if (r != KHSM_EOK) {
		/* The code's text is printed by cli_error(); keep only the detail. */
		char why[2100];
		snprintf(why, sizeof(why), "%s", khsm_err_last_detail() ? khsm_err_last_detail()
		                                                         : "the key failed its checks");
		dnssec_key_free(key);
		/* keymgr may have written KASP before reporting its error: take the
		 * entry out again (keymgr delete also removes the card key). */
		khsm_kasp_key_t *now_keys = NULL;
		size_t now_n = 0;
		bool in_kasp = false;
		if (khsm_keymgr_list(khsm_conf_path(*conf), zone.name, &now_keys, &now_n) == KHSM_EOK) {
			for (size_t k = 0; k < now_n; k++) {
				in_kasp |= strcmp(now_keys[k].id, id_hex) == 0;
			}
		}
		free(now_keys);
		if (in_kasp) {
			const char *del_args[] = { zone.name, "delete", id_hex, NULL };
			khsm_run_t res = { 0 };
			(void)khsm_keymgr_card(khsm_conf_path(*conf), del_args, &res);
			khsm_run_clear(&res);
		}
		int d = khsm_cardkey_delete(ks, id, id_len);
		if (d == KHSM_ENOENT && in_kasp) {
			d = KHSM_EOK;   /* keymgr delete took the card key already */
		}
		if (d == KHSM_EOK) {
			khsm_err_detail("%s; the new card key %s was removed, nothing is left half-done", why, id_hex);
		} else {
			khsm_err_detail("%s; the new card key '%s' (id %s) could not be removed: finish with "
			                "knot-hsm%s%s %s import id=%s", why, label, id_hex, cli->conf ? " -c " : "",
			                cli->conf ? cli->conf : "", zone.name, id_hex);
		}
		return cli_error(r, "generate");
	}
	rc = print_key(zone.name, id_hex, key);
	dnssec_key_free(key);
	if (zone.policy && zone.policy->keystore_count > 1 && ksk && !zsk) {
		/* Online mode (Knot >= 3.5): knotd would otherwise start a signing
		 * scheme rollover and make a KSK of its own. */
		printf("note: policy '%s' has several keystores (online mode); knotd makes its keys "
		       "itself. With a KSK made here, also make the ZSK: keymgr -c %s %s generate "
		       "ksk=no zsk=yes\n", zone.policy->id, khsm_conf_path(*conf), zone.name);
	}
	zone_reload_keys(*conf, zone.name);
	return rc;
}

int cmd_generate(cli_t *cli)
{
	_cleanup_conf_ khsm_conf_t *conf = NULL;
	for (int i = 0; i < cli->zone_count; i++) {
		int rc = generate_zone(cli, &conf, cli->zones[i]);
		if (rc != CLI_OK) return rc;
	}
	return CLI_OK;
}

/* -- import ---------------------------------------------------------------- */

static int import_zone(cli_t *cli, khsm_conf_t **conf, const char *zone_arg)
{
	kv_t kv[] = { { "label", NULL }, { "id", NULL }, { "ksk", NULL }, { "zsk", NULL },
	              { "algorithm", NULL }, { "fix-id", NULL }, { "keystore", NULL }, TIMER_KEYS,
	              { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	const char *label = kv_get(kv, "label"), *id_text = kv_get(kv, "id");
	if (!label == !id_text) {
		return cli_usage_error(cli_current, "give label=TEXT or id=HEX (one of them)");
	}
	bool ksk, zsk, fix = false;
	if ((rc = parse_roles(kv, &ksk, &zsk)) != CLI_OK) return rc;
	const char *timers[6];
	if ((rc = timer_args(kv, timers)) != CLI_OK) return rc;
	if (kv_get(kv, "fix-id") && (rc = kv_bool("fix-id", kv_get(kv, "fix-id"), &fix)) != CLI_OK) return rc;
	int want_alg = 0;
	int r = KHSM_EOK;
	if (kv_get(kv, "algorithm") && (r = khsm_algorithm_from_name(kv_get(kv, "algorithm"), &want_alg)) != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	_cleanup_free_ uint8_t *id = NULL;
	size_t id_len = 0;
	if (id_text && (r = khsm_hex_parse(id_text, &id, &id_len)) != KHSM_EOK) {
		return cli_error(r, "id=");
	}

	_cleanup_zone_ khsm_zone_t zone = { 0 };
	if ((rc = zone_open(cli, zone_arg, kv_get(kv, "keystore"), conf, &zone)) != CLI_OK) return rc;
	_cleanup_kasp_ khsm_kasp_index_t kasp = { 0 };
	if ((r = khsm_kasp_index(*conf, &kasp)) != KHSM_EOK) return cli_error(r, NULL);

	_cleanup_pin_ khsm_pin_t *pin = NULL;
	_cleanup_keystore_ khsm_keystore_t *ks = NULL;
	if ((rc = open_keystore(cli, zone.keystore->config, &pin, &ks)) != CLI_OK) return rc;

	/* Private objects need the login; public ones are looked up too, because
	 * a pair must agree on its id. */
	khsm_cardobjs_t objs = { 0 }, pubs = { 0 };
	r = khsm_cardkey_find(ks, label, id, id_len, KHSM_URI_TYPE_PRIVATE, pin, cli->force, &objs);
	if (r == KHSM_EOK) r = khsm_cardkey_find(ks, label, id, id_len, KHSM_URI_TYPE_PUBLIC, pin, cli->force, &pubs);
	if (r == KHSM_EOK && pubs.count) {
		khsm_cardobj_t *all = realloc(objs.items, (objs.count + pubs.count) * sizeof(*all));
		if (!all) {
			r = KHSM_ENOMEM;
		} else {
			memcpy(all + objs.count, pubs.items, pubs.count * sizeof(*all));
			objs.items = all;
			objs.count += pubs.count;
			free(pubs.items);   /* the strings moved into objs */
			pubs.items = NULL;
			pubs.count = 0;
		}
	}
	khsm_cardobjs_clear(&pubs);
	if (r != KHSM_EOK) {
		khsm_cardobjs_clear(&objs);
		return cli_error(r, NULL);
	}
	bool have_private = false, no_id = false, several = false;
	for (size_t i = 0; i < objs.count; i++) {
		const khsm_cardobj_t *o = &objs.items[i];
		have_private |= o->type == KHSM_URI_TYPE_PRIVATE;
		no_id |= o->id_len == 0;
		const khsm_cardobj_t *f = &objs.items[0];
		several |= o->id_len != f->id_len || (o->id_len && memcmp(o->id, f->id, o->id_len) != 0);
	}
	if (!id && objs.count > 0 && !no_id && !several) {
		id_len = objs.items[0].id_len;
		id = malloc(id_len);
		if (!id) { khsm_cardobjs_clear(&objs); return cli_error(KHSM_ENOMEM, NULL); }
		memcpy(id, objs.items[0].id, id_len);
	}
	size_t count = objs.count;
	khsm_cardobjs_clear(&objs);
	if (count == 0 || !have_private) {
		khsm_err_detail("no private key %s '%s' on the token; knot-hsm keys lists the card's keys",
		                label ? "labelled" : "with id", label ? label : id_text);
		return cli_error(KHSM_ENOENT, NULL);
	}
	if (several) {
		khsm_err_detail("several keys are labelled '%s'; import one by id=HEX", label);
		return cli_error(KHSM_EAMBIGUOUS, NULL);
	}
	if (no_id) {
		if (!fix) {
			khsm_err_detail("key '%s' has no CKA_ID (pkcs11-tool on SoftHSM makes such keys) and "
			                "Knot finds keys only by CKA_ID; rerun with fix-id=yes to give both "
			                "objects the SHA-1 of the public key as id", label);
			return cli_error(KHSM_EINVAL, NULL);
		}
		if ((r = khsm_cardkey_fix_id(ks, label, &id, &id_len)) != KHSM_EOK) {
			return cli_error(r, "fix-id");
		}
		printf("CKA_ID set on both objects of '%s'\n", khsm_esc(label));
	}
	_cleanup_free_ char *id_hex = NULL;
	if ((r = hex_of(id, id_len, &id_hex)) != KHSM_EOK) return cli_error(r, NULL);

	int alg = 0;
	unsigned bits = 0;
	r = khsm_cardkey_algorithm(ks, id, id_len, NULL, want_alg, &alg, &bits);
	if (r != KHSM_EOK) {
		if (!want_alg) return cli_error(r, "algorithm of the key");
		khsm_err_clear();
		alg = want_alg;   /* no public object to read; trust the operator */
	} else if (want_alg && want_alg != alg) {
		khsm_err_detail("algorithm=%s given, but the key on the card is %s", kv_get(kv, "algorithm"),
		                khsm_algorithm_name(alg));
		return cli_error(KHSM_EINVAL, NULL);
	}

	if (khsm_kasp_find(&kasp, zone.name, id_hex)) {
		printf("key %s is already in the KASP of %s; nothing to do\n", id_hex, zone.name);
		return CLI_OK;
	}

	/* Prove it before Knot relies on it; an adopted key is never deleted. */
	dnssec_key_t *key = NULL;
	r = khsm_cardkey_selftest(ks, zone.name, id_hex, alg, ksk, &key);
	if (r == KHSM_EOK) {
		r = register_key(*conf, &kasp, zone.name, id_hex, alg, ksk, zsk, timers);
	}
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return cli_error(r, "import of %s", id_hex);
	}
	rc = print_key(zone.name, id_hex, key);
	dnssec_key_free(key);
	zone_reload_keys(*conf, zone.name);
	return rc;
}

int cmd_import(cli_t *cli)
{
	_cleanup_conf_ khsm_conf_t *conf = NULL;
	for (int i = 0; i < cli->zone_count; i++) {
		int rc = import_zone(cli, &conf, cli->zones[i]);
		if (rc != CLI_OK) return rc;
	}
	return CLI_OK;
}

/* -- keys ------------------------------------------------------------------ */

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
			printf("%s%s (%s)", sep, e->zone, e->key.ksk && e->key.zsk ? "CSK" : e->key.ksk ? "KSK" : "ZSK");
		}
		sep = ", ";
	}
}

/* One of the ids under which knot.conf names this card. */
static bool id_is_one_of(const char *id, const char *const *ids, size_t n_ids)
{
	for (size_t i = 0; i < n_ids; i++) {
		if (strcmp(id, ids[i]) == 0) return true;
	}
	return false;
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

	/* Every key object on the token: search by type with the login. */
	khsm_cardobjs_t priv = { 0 }, pub = { 0 };
	int r = khsm_cardkey_find(ks, NULL, NULL, 0, KHSM_URI_TYPE_PRIVATE, pin, cli->force, &priv);
	if (r == KHSM_EOK) r = khsm_cardkey_find(ks, NULL, NULL, 0, KHSM_URI_TYPE_PUBLIC, pin, cli->force, &pub);
	if (r != KHSM_EOK) {
		khsm_cardobjs_clear(&priv);
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
	for (size_t i = 0; i < priv.count; i++) {
		const khsm_cardobj_t *o = &priv.items[i];
		_cleanup_free_ char *hex = NULL;
		if (o->id_len) hex_of(o->id, o->id_len, &hex);
		int alg = 0;
		unsigned bits = 0;
		for (size_t k = 0; k < pub.count; k++) {
			if (pub.items[k].id_len == o->id_len && o->id_len && memcmp(pub.items[k].id, o->id, o->id_len) == 0) {
				bits = pub.items[k].bits;
			}
		}
		int tag = -1;
		bool used = false;
		if (hex) {
			size_t pos = 0;
			const khsm_kasp_entry_t *e = khsm_kasp_next(kasp, hex, &pos);
			if (e) {
				used = true;
				tag = e->key.tag;
				alg = e->key.algorithm;
			} else if (khsm_cardkey_algorithm(ks, o->id, o->id_len, NULL, 0, &alg, &bits) == KHSM_EOK) {
				/* Not in KASP: the tag as a KSK (flags 257) would have it. */
				dnssec_key_t *key = NULL;
				if (khsm_cardkey_dnskey(ks, ".", hex, alg, true, &key) == KHSM_EOK) {
					tag = dnssec_key_get_keytag(key);
				}
				dnssec_key_free(key);
			}
			khsm_err_clear();
		}
		const char *algname = alg ? khsm_algorithm_name(alg) : NULL;
		if (j) {
			khsm_json_object(j, NULL);
			khsm_json_str(j, "label", o->label);
			khsm_json_str(j, "id", hex);
			khsm_json_str(j, "algorithm", algname);
			khsm_json_uint(j, "bits", bits);
			if (tag >= 0) khsm_json_int(j, "key_tag", tag); else khsm_json_null(j, "key_tag");
			khsm_json_array(j, "zones");
			if (hex) print_zones_using(kasp, hex, j);
			khsm_json_end(j);
			khsm_json_bool(j, "unused", !used);
			khsm_json_end(j);
		} else {
			char tagbuf[16] = "?";
			if (tag >= 0) snprintf(tagbuf, sizeof(tagbuf), "%d", tag);
			printf("  %s  tag %s  %s %u bits  label '%s'\n", hex ? hex : "(no CKA_ID)", tagbuf,
			       algname ? algname : "?", bits, khsm_esc(o->label));
			printf("    zones: ");
			if (used) print_zones_using(kasp, hex, NULL);
			else printf("none: on the card, used by no zone%s", hex ? "" : " (and Knot cannot use "
			            "it without a CKA_ID: knot-hsm ZONE import label=... fix-id=yes)");
			printf("\n");
		}
	}

	/* KASP keys of zones on this keystore whose card object is gone. */
	if (j) {
		khsm_json_end(j);
		khsm_json_array(j, "missing");
	}
	for (size_t i = 0; i < khsm_conf_zone_count(conf); i++) {
		const khsm_conf_zone_t *zc = khsm_conf_zone_at(conf, i);
		khsm_zone_t z = { 0 };
		if (khsm_zone_resolve(conf, zc->domain, NULL, &z) != KHSM_EOK ||
		    !id_is_one_of(z.keystore->id, ids, n_ids)) {
			khsm_zone_clear(&z);
			khsm_err_clear();
			continue;
		}
		for (size_t k = 0; k < kasp->count; k++) {
			const khsm_kasp_entry_t *e = &kasp->items[k];
			if (strcmp(e->zone, z.name) != 0 || e->key.public_only) continue;
			/* Knot >= 3.5 says where each key lives ("PKCS11/<id>"); only
			 * this card's count. */
			static const char PKCS11[] = "PKCS11/";
			const size_t plen = sizeof(PKCS11) - 1;
			if (e->key.keystore[0] && (strncmp(e->key.keystore, PKCS11, plen) != 0 ||
			                           !id_is_one_of(e->key.keystore + plen, ids, n_ids))) continue;
			bool present = false;
			for (size_t p = 0; p < priv.count && !present; p++) {
				_cleanup_free_ char *hex = NULL;
				present = priv.items[p].id_len && hex_of(priv.items[p].id, priv.items[p].id_len, &hex) == KHSM_EOK &&
				          strcmp(hex, e->key.id) == 0;
			}
			if (present) continue;
			if (j) {
				khsm_json_object(j, NULL);
				khsm_json_str(j, "zone", e->zone);
				khsm_json_str(j, "id", e->key.id);
				khsm_json_uint(j, "key_tag", e->key.tag);
				khsm_json_end(j);
			} else {
				printf("  MISSING: %s %s tag %u is in KASP but not on the card\n", e->zone, e->key.id, e->key.tag);
			}
		}
		khsm_zone_clear(&z);
	}
	if (j) {
		khsm_json_end(j);
		khsm_json_end(j);
	}
	khsm_cardobjs_clear(&priv);
	khsm_cardobjs_clear(&pub);
	return CLI_OK;
}

static bool is_pkcs11(const khsm_conf_keystore_t *ks)
{
	return ks->backend && strcmp(ks->backend, "pkcs11") == 0 && ks->config;
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
	if (ksk_side && access(ksk_side, R_OK) == 0) {
		_cleanup_conf_ khsm_conf_t *kconf = NULL;
		_cleanup_kasp_ khsm_kasp_index_t more = { 0 };
		r = khsm_conf_load(ksk_side, &kconf);
		if (r == KHSM_EOK) r = khsm_kasp_index(kconf, &more);
		if (r == KHSM_EOK) r = khsm_kasp_index_merge(&kasp, &more);
		if (r != KHSM_EOK) return cli_error(r, "%s", ksk_side);
	}

	khsm_json_t json;
	khsm_json_t *j = NULL;
	if (cli->json) {
		khsm_json_init(&json, stdout, KHSM_JSON_LINES);
		j = &json;
		khsm_json_array(j, NULL);
	}
	size_t shown = 0;
	size_t n = khsm_conf_keystore_count(conf);
	_cleanup_free_ const char **ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids) return cli_error(KHSM_ENOMEM, NULL);
	for (size_t i = 0; i < n; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(conf, i);
		if (!is_pkcs11(ks)) continue;
		/* A card already listed under an earlier id is not listed again. */
		bool seen = false;
		for (size_t k = 0; k < i && !seen; k++) {
			const khsm_conf_keystore_t *o = khsm_conf_keystore_at(conf, k);
			seen = is_pkcs11(o) && strcmp(o->config, ks->config) == 0;
		}
		if (seen) continue;
		size_t n_ids = 0;
		for (size_t k = i; k < n; k++) {
			const khsm_conf_keystore_t *o = khsm_conf_keystore_at(conf, k);
			if (is_pkcs11(o) && strcmp(o->config, ks->config) == 0) ids[n_ids++] = o->id;
		}
		int rc = keys_of_keystore(cli, conf, &kasp, ks, ids, n_ids, j, shown == 0);
		if (rc != CLI_OK) return rc;
		shown++;
	}
	if (j) {
		khsm_json_end(j);
		putchar('\n');
	}
	if (shown == 0) {
		khsm_err_detail("%s has no pkcs11 keystore", zone_conf_path(cli));
		return cli_error(KHSM_ECONFIG, NULL);
	}
	return CLI_OK;
}
