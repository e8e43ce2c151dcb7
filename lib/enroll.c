/* Card keys into a zone's KASP: generate or import, self-test, register,
 * and the rollback of a generated key that failed a step. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include <libdnssec/error.h>
#include <libdnssec/key.h>

#include "budget.h"
#include "cardkey.h"
#include "dnskey.h"
#include "enroll.h"
#include "error.h"
#include "files.h"
#include "handoff.h"
#include "internal.h"
#include "kasp.h"
#include "policy.h"
#include "remote.h"
#include "knot.h"
#include "run.h"
#include "serve.h"
#include "token.h"
#include "uri.h"

static void notice(const khsm_enroll_t *req, khsm_enroll_event_t ev, const khsm_enrolled_t *out,
                   const char *arg)
{
	if (req->notice) {
		req->notice(req->notice_ctx, ev, out, arg);
	}
}

/* " -c PATH" when the operator gave one, for the commands a remedy names. */
static const char *conf_opt(const khsm_enroll_t *req) { return req->conf_arg ? " -c " : ""; }
static const char *conf_val(const khsm_enroll_t *req) { return req->conf_arg ? req->conf_arg : ""; }

_public_
void khsm_enrolled_clear(khsm_enrolled_t *out)
{
	if (!out) {
		return;
	}
	free(out->id_hex);
	free(out->pub_id);
	if (out->key) {
		dnssec_key_free(out->key);
	}
	*out = (khsm_enrolled_t){ 0 };
}

_public_
int khsm_zone_key_algorithm(const khsm_zone_t *zone, const char *name, int *algorithm_ptr)
{
	if (!zone || !algorithm_ptr) {
		return KHSM_EINVAL;
	}
	if (!name && zone->policy && zone->policy->algorithm) {
		name = zone->policy->algorithm;
	}
	if (!name) {
		*algorithm_ptr = 13;
		return KHSM_EOK;
	}
	return khsm_algorithm_from_name(name, algorithm_ptr);
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

/* Can the token make this key for Knot? Checked before the card is opened. */
static int check_token(const khsm_zone_t *zone, int alg, unsigned bits, khsm_enrolled_t *out)
{
	bool rsa = alg == 8 || alg == 10;
	khsm_tokens_t *tokens = NULL;
	const khsm_token_t *token = NULL;
	int r = keystore_token(zone->keystore->config, &tokens, &token);
	if (r != KHSM_EOK) {
		khsm_tokens_free(tokens);
		out->failed_at = KHSM_ENROLL_AT_TOKEN;
		return r;
	}
	unsigned cap = khsm_cap_for_algorithm(alg);
	if (!(khsm_caps_usable(token->caps) & cap) ||
	    (rsa && (bits < token->rsa_min_bits || (token->rsa_max_bits && bits > token->rsa_max_bits)))) {
		_cleanup_free_ char *caps = khsm_token_caps_text(token);
		khsm_err_detail("token '%s' cannot generate %s keys%s for Knot; it can: %s", token->label,
		                khsm_algorithm_name(alg), rsa ? " of that size" : "", caps ? caps : "?");
		r = KHSM_ENOTSUP;
	}
	khsm_tokens_free(tokens);
	return r;
}

/* Does the zone's KASP list the key, in the role asked for (any role: ksk NULL)? */
static int kasp_lists(const khsm_conf_t *conf, const char *zone, const char *id_hex,
                      const bool *ksk, bool *found_ptr)
{
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	int r = khsm_keymgr_list(khsm_conf_path(conf), zone, &keys, &n);
	bool found = false;
	for (size_t i = 0; r == KHSM_EOK && i < n; i++) {
		found |= strcmp(keys[i].id, id_hex) == 0 && (!ksk || keys[i].ksk == *ksk);
	}
	free(keys);
	if (r == KHSM_EOK) {
		*found_ptr = found;
	}
	return r;
}

/* kasp_lists() after a change: with a kept index, its one keymgr list is
 * also the index's new view of the zone (nothing left for kasp_keep_update). */
static int kasp_confirm(const khsm_conf_t *conf, const khsm_enroll_t *req, const char *zone,
                        const char *id_hex, bool *found_ptr)
{
	khsm_kasp_keep_t *keep = req->kasp_keep;
	if (!keep || !keep->valid) {
		return kasp_lists(conf, zone, id_hex, &req->ksk, found_ptr);
	}
	int r = khsm_kasp_index_refresh(&keep->idx, conf, zone);
	if (r != KHSM_EOK) {
		khsm_kasp_keep_clear(keep);   /* listed whole at the next call */
		return r;
	}
	const khsm_kasp_entry_t *e = khsm_kasp_find(&keep->idx, zone, id_hex);
	*found_ptr = e && e->key.ksk == req->ksk;
	return KHSM_EOK;
}

/* Knot 3.2-3.4 (one keystore per policy): keymgr import-pkcs11 looks for
 * the key in the zone policy's keystore only ("not exists" for a key on
 * another card). A key on another keystore is registered through a private
 * copy of the essentials: the same KASP, that keystore, a policy naming it,
 * the zone. KASP entries of these versions name no keystore. The same copy
 * serves a card this run serves (serve.h): its keystore is then the token
 * through p11-kit's client, without pin-value or pin-source, so that keymgr
 * never logs in itself (a login lost means a failed import, not a second
 * PIN try). The copy is a handoff (a memfd, never a file left on disk).
 * NULL *h_ptr when the zone's own configuration does. */
/* Whether such a copy can be made: one keystore in the zone's policy. */
static bool import_conf_possible(const khsm_zone_t *kz)
{
	return kz->policy && kz->policy->keystore_count == 1 && kz->keystore;
}

static int import_conf(const khsm_conf_t *conf, const khsm_zone_t *kz, bool served,
                       khsm_handoff_t **h_ptr)
{
	*h_ptr = NULL;
	const khsm_conf_policy_t *p = kz->policy;
	if (!import_conf_possible(kz) || (!served && strcmp(p->keystores[0], kz->keystore->id) == 0)) {
		return KHSM_EOK;
	}
	char *config = NULL, *text = NULL, *alg = NULL;
	int r = KHSM_EOK;
	if (served) {
		_cleanup_free_ char *uri = NULL, *module = NULL, *token_uri = NULL;
		khsm_uri_t attrs = { 0 };
		r = khsm_uri_split_config(kz->keystore->config, &uri, &module);
		if (r == KHSM_EOK) r = khsm_uri_parse(uri, &attrs);
		if (r == KHSM_EOK) r = khsm_uri_format(&attrs, &token_uri);   /* no PIN attribute */
		if (r == KHSM_EOK) {
			r = khsm_uri_keystore_config(token_uri, NULL, NULL, khsm_remote_client_module(), &config);
		}
		khsm_uri_clear(&attrs);
		if (uri) explicit_bzero(uri, strlen(uri));
		if (r != KHSM_EOK) {
			return r;
		}
	}
	r = KHSM_ENOMEM;
	if ((!p->algorithm || asprintf(&alg, "    algorithm: %s\n", p->algorithm) >= 0) &&
	    asprintf(&text, "database:\n    kasp-db: \"%s\"\n"
	                    "keystore:\n  - id: %s\n    backend: pkcs11\n    config: \"%s\"\n"
	                    "policy:\n  - id: knot-hsm-import\n    keystore: %s\n    manual: on\n%s%s"
	                    "zone:\n  - domain: %s\n    dnssec-policy: knot-hsm-import\n",
	             khsm_conf_kasp_db(conf), kz->keystore->id, config ? config : kz->keystore->config,
	             kz->keystore->id, p->offline_ksk ? "    offline-ksk: on\n" : "",
	             alg ? alg : "", kz->name) >= 0) {
		r = khsm_handoff_new(getenv("TMPDIR"), "import.conf", text, strlen(text), h_ptr);
	} else {
		text = NULL;
	}
	if (text) explicit_bzero(text, strlen(text));   /* a config may hold a pin-value */
	free(text);
	free(alg);
	free(config);
	return r;
}

/* keymgr import-pkcs11 (or share, when another zone already has the key),
 * then confirm with keymgr list. */
/* public_only: the proven key's DNSKEY, as BIND's K*.key file keymgr
 * import-pub reads (a public key: a private directory, removed after), then
 * the timers on the KASP id keymgr prints. */
static int register_pub(const khsm_conf_t *conf, const khsm_zone_t *kz, const khsm_enroll_t *req,
                        khsm_enrolled_t *out)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *dir = NULL, *file = NULL, *line = NULL;
	if (asprintf(&dir, "%s/knot-hsm-pub.XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp") < 0) {
		dir = NULL;
		return KHSM_ENOMEM;
	}
	if (!mkdtemp(dir)) {
		khsm_err_detail("cannot make a directory for the public key in %s: %s",
		                tmp && tmp[0] == '/' ? tmp : "/tmp", strerror(errno));
		return KHSM_EIO;
	}
	int r = khsm_dnskey_line(out->key, &line);
	if (r == KHSM_EOK && asprintf(&file, "%s/K.key", dir) < 0) {
		file = NULL;
		r = KHSM_ENOMEM;
	}
	if (r == KHSM_EOK) {
		int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0) {
			r = KHSM_EIO;
		} else {
			r = khsm_file_write_all(fd, line, strlen(line));
			if (r == KHSM_EOK) r = khsm_file_write_all(fd, "\n", 1);
			close(fd);
		}
	}
	/* keymgr files it under libdnssec's id of the key (what it prints) */
	char id[257] = "";
	char *kid = NULL;
	if (r == KHSM_EOK && dnssec_key_get_keyid(out->key, &kid) != DNSSEC_EOK) r = KHSM_ECRYPTO;
	if (r == KHSM_EOK) snprintf(id, sizeof(id), "%s", kid);
	free(kid);
	khsm_run_t res = { 0 };
	const char *import_args[] = { kz->name, "import-pub", file, NULL };
	if (r == KHSM_EOK) r = khsm_keymgr(khsm_conf_path(conf), import_args, &res);
	if (file) unlink(file);
	rmdir(dir);
	khsm_run_clear(&res);
	if (r == KHSM_EOK && !(out->pub_id = strdup(id))) r = KHSM_ENOMEM;
	const char *const *timers = req->timers;
	if (r == KHSM_EOK && timers && timers[0]) {
		const char *set_args[10] = { kz->name, "set", id };
		size_t n = 3;
		for (size_t i = 0; timers[i] && n < 9; i++) set_args[n++] = timers[i];
		set_args[n] = NULL;
		r = khsm_keymgr(khsm_conf_path(conf), set_args, &res);
		khsm_run_clear(&res);
	}
	bool found = false;
	if (r == KHSM_EOK) r = kasp_confirm(conf, req, kz->name, id, &found);
	if (r == KHSM_EOK && !found) {
		khsm_err_detail("keymgr import-pub reported success but 'keymgr %s list' does not show "
		                "key %s", kz->name, id);
		r = KHSM_ETOOL;
	}
	if (r != KHSM_EOK && id[0]) {
		/* nothing half-done: the public-only entry goes again (the card
		 * pair is the caller's roll-back) */
		const char *del_args[] = { kz->name, "delete", id, NULL };
		khsm_run_t del = { 0 };
		const char *d = khsm_err_last_detail();
		_cleanup_free_ char *said = d ? strdup(d) : NULL;
		(void)khsm_keymgr(khsm_conf_path(conf), del_args, &del);
		khsm_run_clear(&del);
		khsm_err_clear();
		if (said) khsm_err_detail("%s", said);
	}
	return r;
}

static int register_key(const khsm_conf_t *conf, const khsm_kasp_index_t *kasp, const khsm_zone_t *kz,
                        const khsm_enroll_t *req, khsm_enrolled_t *out)
{
	if (req->public_only) {
		return register_pub(conf, kz, req, out);
	}
	const char *zone = kz->name;
	const char *id_hex = out->id_hex;
	const char *const *timers = req->timers;
	size_t pos = 0;
	const khsm_kasp_entry_t *other = khsm_kasp_next(kasp, id_hex, &pos);
	khsm_run_t res = { 0 };
	char alg[32];
	snprintf(alg, sizeof(alg), "algorithm=%d", out->algorithm);
	const char *import_args[12] = { zone, "import-pkcs11", id_hex, alg,
	                                req->ksk ? "ksk=yes" : "ksk=no", req->zsk ? "zsk=yes" : "zsk=no" };
	for (size_t i = 0, n = 6; timers && timers[i] && n < 11; i++) {
		import_args[n++] = timers[i];
	}
	const char *share_args[] = { zone, "share", id_hex, other ? other->zone : "", NULL };
	/* import-pkcs11 loads the private key: through the card this run serves
	 * with its kept login (serve.h), it costs no login of keymgr's own */
	khsm_serve_t *serve = NULL;
	khsm_handoff_t *tmp_conf = NULL;
	/* served only through a copy naming the client (not with several keystores) */
	int r = other || !import_conf_possible(kz) ? KHSM_EOK
	        : khsm_login_hold_serve(req->login_hold, kz->keystore->config, &serve);
	if (r == KHSM_EOK && !other) r = import_conf(conf, kz, serve != NULL, &tmp_conf);
	const char *import_path = tmp_conf ? khsm_handoff_path(tmp_conf) : khsm_conf_path(conf);
	if (r == KHSM_EOK && other) {
		/* KASP work alone: over many zones keymgr reads a keyless cut and
		 * never opens the card, which signs on meanwhile (zoneconf.h) */
		r = khsm_keymgr(khsm_conf_path(conf), share_args, &res);
	} else if (r == KHSM_EOK && serve) {
		/* the card locked per call, not for keymgr's whole run (knot.h) */
		r = khsm_keymgr_served(import_path, import_args, serve, &res);
	} else if (r == KHSM_EOK) {
		r = khsm_keymgr_card(import_path, import_args, &res);
	}
	khsm_serve_stop(serve);
	khsm_handoff_free(tmp_conf);
	khsm_run_clear(&res);
	if (r != KHSM_EOK) {
		return r;
	}
	if (other) {
		notice(req, KHSM_ENROLL_SHARED, out, other->zone);
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

	bool found = false;
	r = kasp_confirm(conf, req, zone, id_hex, &found);
	if (r == KHSM_EOK && !found) {
		khsm_err_detail("keymgr reported success but 'keymgr %s list' does not show key %s",
		                zone, id_hex);
		r = KHSM_ETOOL;
	}
	return r;
}

/* A key with this label that no zone uses is what an interrupted run
 * leaves behind: finish that one instead of making another. */
static int refuse_orphan(khsm_keystore_t *ks, const khsm_pin_t *pin, const khsm_kasp_index_t *kasp,
                         const khsm_zone_t *zone, const khsm_enroll_t *req, const char *label)
{
	khsm_cardobjs_t objs = { 0 };
	int r = khsm_cardkey_find(ks, label, NULL, 0, KHSM_URI_TYPE_PRIVATE, pin, req->force, &objs);
	for (size_t i = 0; r == KHSM_EOK && i < objs.count; i++) {
		_cleanup_free_ char *hex = NULL;
		size_t pos = 0;
		if (objs.items[i].id_len &&
		    khsm_hex_format(objs.items[i].id, objs.items[i].id_len, &hex) == KHSM_EOK &&
		    !khsm_kasp_next(kasp, hex, &pos)) {
			khsm_err_detail("key '%s' (id %s) is on the card but in no zone's KASP, probably from "
			                "an interrupted run; finish it with: knot-hsm%s%s %s import id=%s, or "
			                "delete it from the card", label, hex, conf_opt(req), conf_val(req),
			                zone->name, hex);
			r = KHSM_EEXIST;
		}
	}
	khsm_cardobjs_clear(&objs);
	return r;
}

/* A card whose key slots are known (policy key-slots=) is not asked for a
 * pair it has no room for, and a new zone's KSK leaves the last slot free:
 * the rollover of any KSK on the card needs one (rollover and standby, which
 * make that key, may take it). The refusal names what can go: keys on the
 * card no zone's KASP has, keys whose zones are done with them (removed), and
 * the other cards of knot.conf. Slots not known: the card answers. */
static int refuse_full(const khsm_conf_t *conf, khsm_keystore_t *ks, const khsm_pin_t *pin,
                       const khsm_kasp_index_t *kasp, const khsm_zone_t *zone, const khsm_enroll_t *req)
{
	long total = 0;
	if (khsm_budget_slots_of(conf, zone->keystore, &total) != KHSM_EOK) {
		khsm_err_clear();
		return KHSM_EOK;
	}
	khsm_cardobjs_t objs = { 0 };
	int r = khsm_cardkey_find(ks, NULL, NULL, 0, KHSM_URI_TYPE_PRIVATE, pin, req->force, &objs);
	if (r != KHSM_EOK) {
		return r;
	}
	long used = (long)objs.count, need = req->beside_active ? 1 : 2;
	if (total - used >= need) {
		khsm_cardobjs_clear(&objs);
		return KHSM_EOK;
	}
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	if (!f) {
		khsm_cardobjs_clear(&objs);
		return KHSM_ENOMEM;
	}
	int64_t now = (int64_t)time(NULL);
	size_t named = 0;
	for (size_t i = 0; i < objs.count && named < 3; i++) {
		_cleanup_free_ char *hex = NULL;
		if (!objs.items[i].id_len || khsm_hex_format(objs.items[i].id, objs.items[i].id_len, &hex) != KHSM_EOK) {
			continue;
		}
		size_t pos = 0;
		const khsm_kasp_entry_t *e = khsm_kasp_next(kasp, hex, &pos), *first = e;
		bool removed = e != NULL;
		for (; e; e = khsm_kasp_next(kasp, hex, &pos)) {
			removed = removed && khsm_kasp_key_state(&e->key, now) == KHSM_KEY_STATE_REMOVED;
		}
		if (!first) {
			fprintf(f, "; '%s' (id %s) is in no zone's KASP: import it for a zone or remove it "
			        "(pkcs11-tool --delete-object --type privkey --id %s, and --type pubkey)",
			        objs.items[i].label ? objs.items[i].label : "", hex, hex);
			named++;
		} else if (removed) {
			fprintf(f, "; '%s' (id %s) is removed from %s: knot-hsm%s%s %s delete id=%s",
			        objs.items[i].label ? objs.items[i].label : "", hex, first->zone, conf_opt(req),
			        conf_val(req), first->zone, hex);
			named++;
		}
	}
	const char **ids = NULL, **configs = NULL;
	size_t n_other = 0;
	if (khsm_policy_other_cards(conf, zone->keystore, &ids, &configs, &n_other) == KHSM_EOK) {
		for (size_t i = 0; i < n_other; i++) {
			if (khsm_budget_same_card(configs[i], zone->keystore->config)) {
				continue;   /* the same card under another id */
			}
			fprintf(f, "; or make it on card %s: knot-hsm%s%s %s generate ... keystore=%s", ids[i],
			        conf_opt(req), conf_val(req), zone->name, ids[i]);
		}
	}
	free(ids);
	free(configs);
	khsm_err_clear();
	int failed = fclose(f);
	if (used >= total) {
		khsm_err_detail("the card of keystore %s is full: %ld of its %ld key slots are used (policy "
		                "key-slots=)%s%s. Nothing was made", zone->keystore->id, used, total,
		                failed || !*buf ? "; free one first" : "", failed ? "" : buf);
	} else {
		khsm_err_detail("the card of keystore %s has one free key slot of %ld, kept for a KSK rollover "
		                "(knot-hsm ZONE rollover takes it)%s%s. Nothing was made", zone->keystore->id,
		                total, failed || !*buf ? "; free one first" : "", failed ? "" : buf);
	}
	free(buf);
	khsm_cardobjs_clear(&objs);
	return KHSM_EDEVMEM;
}

/* A zone has one KSK that signs: a second generate would make another
 * active KSK beside it, which the ceremony ignores and a DS at the parent
 * never names. Refused whenever a KSK of the zone signs now or is scheduled
 * to (active timer set, not yet retired or removed), --force or not; a
 * KSK that never signs (no active timer) or no longer does (retired,
 * post-active, revoked, removed) does not stand in the way. */
static int refuse_second_ksk(const khsm_kasp_index_t *kasp, const khsm_zone_t *zone,
                             const khsm_enroll_t *req, int64_t now)
{
	for (size_t i = 0; req->ksk && !req->beside_active && i < kasp->count; i++) {
		const khsm_kasp_entry_t *e = &kasp->items[i];
		const khsm_kasp_key_t *k = &e->key;
		if (!k->ksk || strcmp(e->zone, zone->name) != 0) {
			continue;
		}
		khsm_key_state_t st = khsm_kasp_key_state(k, now);
		bool signs = st == KHSM_KEY_STATE_ACTIVE || st == KHSM_KEY_STATE_RETIRE_ACTIVE;
		bool scheduled = k->active != 0 && !signs && st != KHSM_KEY_STATE_POST_ACTIVE &&
		                 st != KHSM_KEY_STATE_RETIRED && st != KHSM_KEY_STATE_REVOKED &&
		                 st != KHSM_KEY_STATE_REMOVED;
		if (signs) {
			khsm_err_detail("%s already has an active KSK (tag %u, id %s); a second one would "
			                "sign beside it without a DS at the parent. To replace it, use "
			                "'knot-hsm%s%s %s rollover'; --force does not override this",
			                zone->name, k->tag, k->id, conf_opt(req), conf_val(req), zone->name);
			return KHSM_EEXIST;
		}
		if (scheduled) {
			khsm_err_detail("%s already has a KSK on its way to signing (tag %u, id %s); finish "
			                "that with 'knot-hsm%s%s %s rollover', or take it out with "
			                "'knot-hsm%s%s %s delete id=%s'; --force does not override this",
			                zone->name, k->tag, k->id, conf_opt(req), conf_val(req), zone->name,
			                conf_opt(req), conf_val(req), zone->name, k->id);
			return KHSM_EEXIST;
		}
	}
	return KHSM_EOK;
}

/* Take a generated key that failed a step out of KASP and off the card. */
static void roll_back(const khsm_conf_t *conf, khsm_keystore_t *ks, const khsm_zone_t *zone,
                      const khsm_enroll_t *req, const khsm_enrolled_t *out,
                      const uint8_t *id, size_t id_len)
{
	/* The code's text is printed by the caller; keep only the detail. */
	char why[2100];
	snprintf(why, sizeof(why), "%s", khsm_err_last_detail() ? khsm_err_last_detail()
	                                                         : "the key failed its checks");
	/* keymgr may have written KASP before reporting its error: take the
	 * entry out again (keymgr delete also removes the card key). */
	bool in_kasp = false;
	if (kasp_lists(conf, zone->name, out->id_hex, NULL, &in_kasp) != KHSM_EOK) {
		in_kasp = false;
	}
	if (in_kasp) {
		const char *del_args[] = { zone->name, "delete", out->id_hex, NULL };
		khsm_run_t res = { 0 };
		(void)khsm_keymgr_card(khsm_conf_path(conf), del_args, &res);
		khsm_run_clear(&res);
	}
	int d = khsm_cardkey_delete(ks, id, id_len);
	if (d == KHSM_ENOENT && in_kasp) {
		d = KHSM_EOK;   /* keymgr delete took the card key already */
	}
	if (d == KHSM_EOK) {
		khsm_err_detail("%s; the new card key %s was removed, nothing is left half-done", why,
		                out->id_hex);
	} else {
		khsm_err_detail("%s; the new card key '%s' (id %s) could not be removed: finish with "
		                "knot-hsm%s%s %s import id=%s", why, out->label, out->id_hex, conf_opt(req),
		                conf_val(req), zone->name, out->id_hex);
	}
}

_public_
void khsm_kasp_keep_clear(khsm_kasp_keep_t *keep)
{
	if (keep) {
		khsm_kasp_index_clear(&keep->idx);
		keep->valid = false;
	}
}

_public_
void khsm_enroll_memo_clear(khsm_enroll_memo_t *memo)
{
	if (!memo) {
		return;
	}
	free(memo->config);
	free(memo->id_hex);
	dnssec_key_free(memo->key);
	*memo = (khsm_enroll_memo_t){ 0 };
}

/* After a key is proven and registered: it is the one the memo names. A
 * memo that cannot hold it names none (the next import asks the card). */
static void memo_remember(const khsm_enroll_t *req, const khsm_zone_t *zone, const khsm_enrolled_t *out)
{
	khsm_enroll_memo_t *m = req->memo;
	if (!m || req->public_only) {
		return;
	}
	khsm_enroll_memo_clear(m);
	m->config = strdup(zone->keystore->config);
	m->id_hex = strdup(out->id_hex);
	m->key = dnssec_key_dup(out->key);   /* the public part only */
	m->algorithm = out->algorithm;
	m->ksk = req->ksk;
	if (!m->config || !m->id_hex || !m->key) {
		khsm_enroll_memo_clear(m);
	}
}

/* An import of the key the memo names, in the same role, through the same
 * keystore. */
static bool memo_names(const khsm_enroll_t *req, const khsm_zone_t *zone, const char *id_hex)
{
	const khsm_enroll_memo_t *m = req->memo;
	return m && m->key && id_hex && !req->public_only && !req->fix_id && req->ksk == m->ksk &&
	       (!req->algorithm || req->algorithm == m->algorithm) &&
	       strcmp(m->id_hex, id_hex) == 0 && strcmp(m->config, zone->keystore->config) == 0;
}

/* The memo's key for this zone: its DNSKEY under the zone's name. */
static int memo_key(const khsm_enroll_memo_t *m, const char *zone, dnssec_key_t **key_ptr)
{
	dnssec_binary_t rdata = { 0 };   /* the key's own, not a copy */
	int r = khsm_error_from_dnssec(dnssec_key_get_rdata(m->key, &rdata));
	return r == KHSM_EOK ? khsm_dnskey_from_rdata(zone, rdata.data, rdata.size, key_ptr) : r;
}

/* The index to decide with: the kept one (listed now when not valid), else
 * one of this call's own in *local. */
static int kasp_index_get(const khsm_conf_t *conf, const khsm_enroll_t *req, khsm_kasp_index_t *local,
                          khsm_kasp_index_t **kp)
{
	khsm_kasp_keep_t *keep = req->kasp_keep;
	if (!keep) {
		*kp = local;
		return khsm_kasp_index(conf, local);
	}
	if (!keep->valid) {
		khsm_kasp_index_clear(&keep->idx);
		int r = khsm_kasp_index(conf, &keep->idx);
		if (r != KHSM_EOK) return r;
		keep->valid = true;
	}
	*kp = &keep->idx;
	return KHSM_EOK;
}

/* After the zone's KASP may have changed (registered, or rolled back): the
 * kept index lists it again; if that fails, the next call lists every zone. */
static void kasp_keep_update(const khsm_conf_t *conf, const khsm_enroll_t *req, const khsm_zone_t *zone)
{
	khsm_kasp_keep_t *keep = req->kasp_keep;
	if (!keep || !keep->valid) {
		return;
	}
	/* the call's own error detail (a roll-back's remedy) stays what it reports */
	const char *d = khsm_err_last_detail();
	_cleanup_free_ char *saved = d ? strdup(d) : NULL;
	if (khsm_kasp_index_refresh(&keep->idx, conf, zone->name) != KHSM_EOK) {
		khsm_kasp_keep_clear(keep);
	}
	khsm_err_clear();
	if (saved) khsm_err_detail("%s", saved);
}

_public_
int khsm_zone_key_generate(khsm_conf_t *conf, const khsm_zone_t *zone, const khsm_enroll_t *req,
                           khsm_enrolled_t *out)
{
	if (!conf || !zone || !req || !req->open || !out) {
		return KHSM_EINVAL;
	}
	*out = (khsm_enrolled_t){ .algorithm = req->algorithm };
	khsm_kasp_index_t kasp = { 0 };
	khsm_pin_t *pin = NULL;
	khsm_keystore_t *ks = NULL;
	uint8_t *id = NULL;
	size_t id_len = 0;
	bool rsa = req->algorithm == 8 || req->algorithm == 10;

	/* Refuse what the token cannot do before touching the card. */
	int r = check_token(zone, req->algorithm, req->bits, out);
	if (r != KHSM_EOK) {
		goto fail;
	}
	if (rsa) {
		notice(req, KHSM_ENROLL_RSA_SLOW, out, NULL);
	}
	snprintf(out->label_buf, sizeof(out->label_buf), "%s %s", zone->name, req->ksk ? "KSK" : "ZSK");
	out->label = req->label ? req->label : out->label_buf;

	khsm_kasp_index_t *kp = &kasp;
	if ((r = kasp_index_get(conf, req, &kasp, &kp)) != KHSM_EOK) {
		goto fail;
	}
	if ((r = refuse_second_ksk(kp, zone, req, (int64_t)time(NULL))) != KHSM_EOK) {
		goto fail;
	}
	if ((r = req->open(req->open_ctx, zone->keystore->config, &pin, &ks)) != KHSM_EOK) {
		goto fail;
	}
	if ((r = refuse_orphan(ks, pin, kp, zone, req, out->label)) != KHSM_EOK ||
	    (r = refuse_full(conf, ks, pin, kp, zone, req)) != KHSM_EOK) {
		goto fail;
	}

	notice(req, KHSM_ENROLL_GENERATING, out, zone->name);
	r = khsm_cardkey_generate(ks, req->algorithm, req->bits, out->label, &id, &id_len);
	if (r != KHSM_EOK) {
		if (r == KHSM_EDEVMEM) {
			khsm_err_detail("the card has no room for another key pair; delete unused keys "
			                "(knot-hsm keys lists them) and retry. Nothing was written to KASP");
		}
		out->failed_at = KHSM_ENROLL_AT_GENERATE;
		goto fail;
	}
	if ((r = khsm_hex_format(id, id_len, &out->id_hex)) != KHSM_EOK) {
		goto fail;
	}

	/* Prove the key before Knot depends on it; remove it if it fails. */
	r = khsm_cardkey_selftest(ks, zone->name, out->id_hex, req->algorithm, req->ksk, &out->key);
	if (r == KHSM_EOK) {
		r = register_key(conf, kp, zone, req, out);
	}
	if (r == KHSM_EOK) {
		memo_remember(req, zone, out);   /* the kept index saw it (kasp_confirm) */
	} else {
		if (out->key) {
			dnssec_key_free(out->key);
			out->key = NULL;
		}
		roll_back(conf, ks, zone, req, out, id, id_len);
		out->failed_at = KHSM_ENROLL_AT_GENERATE;
		kasp_keep_update(conf, req, zone);
	}
fail:
	free(id);
	khsm_keystore_close(ks);
	khsm_pin_free(pin);
	khsm_kasp_index_clear(&kasp);
	return r;
}

/* Private and public objects by label or id: a pair must agree on its id. */
static int find_pair(khsm_keystore_t *ks, const khsm_pin_t *pin, const khsm_enroll_t *req,
                     khsm_cardobjs_t *objs)
{
	khsm_cardobjs_t pubs = { 0 };
	int r = khsm_cardkey_find(ks, req->label, req->id, req->id_len, KHSM_URI_TYPE_PRIVATE, pin,
	                          req->force, objs);
	if (r == KHSM_EOK) {
		r = khsm_cardkey_find(ks, req->label, req->id, req->id_len, KHSM_URI_TYPE_PUBLIC, pin,
		                      req->force, &pubs);
	}
	if (r == KHSM_EOK && pubs.count) {
		khsm_cardobj_t *all = realloc(objs->items, (objs->count + pubs.count) * sizeof(*all));
		if (!all) {
			r = KHSM_ENOMEM;
		} else {
			memcpy(all + objs->count, pubs.items, pubs.count * sizeof(*all));
			objs->items = all;
			objs->count += pubs.count;
			free(pubs.items);   /* the strings moved into objs */
			pubs.items = NULL;
			pubs.count = 0;
		}
	}
	khsm_cardobjs_clear(&pubs);
	if (r != KHSM_EOK) {
		khsm_cardobjs_clear(objs);
	}
	return r;
}

/* The one pair the request names: its id (set with fix_id if it has none). */
static int pick_pair(khsm_keystore_t *ks, const khsm_pin_t *pin, const khsm_enroll_t *req,
                     khsm_enrolled_t *out, uint8_t **id_ptr, size_t *id_len_ptr)
{
	khsm_cardobjs_t objs = { 0 };
	int r = find_pair(ks, pin, req, &objs);
	if (r != KHSM_EOK) {
		return r;
	}
	bool have_private = false, no_id = false, several = false;
	for (size_t i = 0; i < objs.count; i++) {
		const khsm_cardobj_t *o = &objs.items[i];
		have_private |= o->type == KHSM_URI_TYPE_PRIVATE;
		no_id |= o->id_len == 0;
		const khsm_cardobj_t *f = &objs.items[0];
		several |= o->id_len != f->id_len || (o->id_len && memcmp(o->id, f->id, o->id_len) != 0);
	}
	uint8_t *id = NULL;
	size_t id_len = req->id_len;
	if (req->id) {
		id = malloc(id_len ? id_len : 1);
		if (id) memcpy(id, req->id, id_len);
	} else if (objs.count > 0 && !no_id && !several) {
		id_len = objs.items[0].id_len;
		id = malloc(id_len);
		if (id) memcpy(id, objs.items[0].id, id_len);
	}
	size_t count = objs.count;
	khsm_cardobjs_clear(&objs);
	if ((req->id || (count > 0 && !no_id && !several)) && !id) {
		return KHSM_ENOMEM;
	}
	if (count == 0 || !have_private) {
		khsm_err_detail("no private key %s '%s' on the token; knot-hsm keys lists the card's keys",
		                req->label ? "labelled" : "with id", req->label ? req->label : req->id_arg);
		r = KHSM_ENOENT;
	} else if (several) {
		khsm_err_detail("several keys are labelled '%s'; import one by id=HEX", req->label);
		r = KHSM_EAMBIGUOUS;
	} else if (no_id && !req->fix_id) {
		khsm_err_detail("key '%s' has no CKA_ID (pkcs11-tool on SoftHSM makes such keys) and "
		                "Knot finds keys only by CKA_ID; rerun with fix-id=yes to give both "
		                "objects the SHA-1 of the public key as id", req->label);
		r = KHSM_EINVAL;
	} else if (no_id) {
		if ((r = khsm_cardkey_fix_id(ks, req->label, &id, &id_len)) != KHSM_EOK) {
			out->failed_at = KHSM_ENROLL_AT_FIX_ID;
		} else {
			notice(req, KHSM_ENROLL_ID_FIXED, out, req->label);
		}
	}
	if (r != KHSM_EOK) {
		free(id);
		return r;
	}
	*id_ptr = id;
	*id_len_ptr = id_len;
	return KHSM_EOK;
}

/* import's card steps: the pair the request names, its id (out->id_hex, as
 * given or as found) and its algorithm, checked against algorithm=. */
static int import_pick(khsm_keystore_t *ks, const khsm_pin_t *pin, const khsm_enroll_t *req,
                       khsm_enrolled_t *out)
{
	uint8_t *id = NULL;
	size_t id_len = 0;
	int r = pick_pair(ks, pin, req, out, &id, &id_len);
	if (r == KHSM_EOK && !out->id_hex) r = khsm_hex_format(id, id_len, &out->id_hex);
	if (r != KHSM_EOK) {
		free(id);
		return r;
	}
	unsigned bits = 0;
	r = khsm_cardkey_algorithm(ks, id, id_len, NULL, req->algorithm, &out->algorithm, &bits);
	free(id);
	if (r != KHSM_EOK) {
		if (!req->algorithm) {
			out->failed_at = KHSM_ENROLL_AT_ALGORITHM;
			return r;
		}
		khsm_err_clear();
		out->algorithm = req->algorithm;   /* no public object to read; trust the operator */
	} else if (req->algorithm && req->algorithm != out->algorithm) {
		khsm_err_detail("algorithm=%s given, but the key on the card is %s", req->algorithm_arg,
		                khsm_algorithm_name(out->algorithm));
		return KHSM_EINVAL;
	}
	return KHSM_EOK;
}

_public_
int khsm_zone_key_import(khsm_conf_t *conf, const khsm_zone_t *zone, const khsm_enroll_t *req,
                         khsm_enrolled_t *out)
{
	if (!conf || !zone || !req || !req->open || !out || !req->label == !req->id) {
		return KHSM_EINVAL;
	}
	*out = (khsm_enrolled_t){ 0 };
	khsm_kasp_index_t kasp = { 0 };
	khsm_pin_t *pin = NULL;
	khsm_keystore_t *ks = NULL;

	khsm_kasp_index_t *kp = &kasp;
	int r = kasp_index_get(conf, req, &kasp, &kp);
	if (r != KHSM_EOK) {
		goto fail;
	}
	if (req->id && (r = khsm_hex_format(req->id, req->id_len, &out->id_hex)) != KHSM_EOK) {
		goto fail;
	}
	/* A key proven in this run is registered without the card. */
	bool proven = memo_names(req, zone, out->id_hex);
	if (proven) {
		out->algorithm = req->memo->algorithm;
	} else if ((r = req->open(req->open_ctx, zone->keystore->config, &pin, &ks)) != KHSM_EOK ||
	           (r = import_pick(ks, pin, req, out)) != KHSM_EOK) {
		goto fail;
	}

	if (khsm_kasp_find(kp, zone->name, out->id_hex)) {
		out->known = true;
		goto fail;
	}

	/* Prove it before Knot relies on it; an adopted key is never deleted. */
	r = proven ? memo_key(req->memo, zone->name, &out->key)
	           : khsm_cardkey_selftest(ks, zone->name, out->id_hex, out->algorithm, req->ksk, &out->key);
	if (r == KHSM_EOK) {
		r = register_key(conf, kp, zone, req, out);
	}
	if (r == KHSM_EOK) {
		if (!proven) memo_remember(req, zone, out);   /* the kept index saw it (kasp_confirm) */
	} else {
		out->failed_at = KHSM_ENROLL_AT_IMPORT;
		kasp_keep_update(conf, req, zone);
	}
fail:
	khsm_keystore_close(ks);
	khsm_pin_free(pin);
	khsm_kasp_index_clear(&kasp);
	return r;
}

_public_
int khsm_zone_key_generate_or_adopt(khsm_conf_t *conf, const khsm_zone_t *zone,
                                    const khsm_enroll_t *req, khsm_enrolled_t *out, bool *adopted)
{
	if (!req || !out || !adopted) {
		return KHSM_EINVAL;
	}
	*adopted = false;
	int r = khsm_zone_key_generate(conf, zone, req, out);
	if (r == KHSM_EEXIST) {
		khsm_err_clear();
		khsm_enrolled_clear(out);
		*out = (khsm_enrolled_t) { 0 };
		khsm_enroll_t e = *req;
		e.algorithm = 0;   /* the pair's own */
		e.bits = 0;
		*adopted = true;
		r = khsm_zone_key_import(conf, zone, &e, out);
	}
	return r;
}
