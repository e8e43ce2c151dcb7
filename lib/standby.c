/* A standby KSK on a second card, and the failover to it (see standby.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cardkey.h"
#include "ceremony.h"
#include "error.h"
#include "files.h"
#include "internal.h"
#include "kasp.h"
#include "keystore.h"
#include "policy.h"
#include "standby.h"
#include "uri.h"

static bool is_card_ksk(const khsm_kasp_key_t *k)
{
	return k->ksk && !k->zsk && !k->public_only;
}

/* Online the standby is a public-only KASP entry (keymgr import-pub) of the
 * card key's DNSKEY: knotd publishes it and leaves it alone (Knot's key
 * events skip public-only keys), where a card KSK published beside the
 * active one would be made ready, given a CDS and signed with. */
_public_
bool khsm_standby_is(const khsm_kasp_key_t *k)
{
	return k && k->ksk && !k->zsk && k->publish != 0 && k->ready == 0 && k->active == 0 &&
	       k->pre_active == 0 && k->retire_active == 0 && k->retire == 0 &&
	       k->post_active == 0 && k->revoke == 0 && k->remove == 0;
}

_public_
const khsm_kasp_key_t *khsm_standby_find(const khsm_kasp_key_t *keys, size_t count)
{
	for (size_t i = 0; keys && i < count; i++) {
		if (khsm_standby_is(&keys[i])) return &keys[i];
	}
	return NULL;
}

static const khsm_kasp_key_t *find_id(const khsm_kasp_key_t *keys, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].id, id) == 0) return &keys[i];
	}
	return NULL;
}

static void result_key(khsm_standby_result_t *res, const khsm_kasp_key_t *k)
{
	snprintf(res->id, sizeof(res->id), "%s", k->id);
	res->tag = k->tag;
}

/* Whether keystore id of conf and ks name one token (after an online
 * failover knot-hsm-card names the standby's card). */
static bool same_card(const khsm_conf_t *conf, const char *id, const khsm_conf_keystore_t *ks)
{
	const khsm_conf_keystore_t *other = khsm_conf_keystore_find(conf, id);
	if (!khsm_conf_keystore_is_pkcs11(other) || !other->config || !ks->config) return false;
	_cleanup_free_ char *a = NULL, *b = NULL;
	bool same = khsm_uri_card_name(other->config, false, &a) == KHSM_EOK &&
	            khsm_uri_card_name(ks->config, false, &b) == KHSM_EOK && strcmp(a, b) == 0;
	khsm_err_clear();
	return same;
}

/* -- standby --------------------------------------------------------------- */

/* Generate the standby on the card, or adopt the pair an interrupted run left. */
static int standby_generate(const khsm_standby_req_t *req, int64_t publish, khsm_standby_result_t *res,
                            char **id_ptr)
{
	char pub_w[48];
	snprintf(pub_w, sizeof(pub_w), "publish=%" PRId64, publish);
	const char *timers[] = { pub_w, "ready=0", "active=0", NULL };
	snprintf(res->label, sizeof(res->label), "%s KSK standby", req->zone->name);
	khsm_enroll_t e = *req->enroll;
	e.ksk = true;
	e.zsk = false;
	e.beside_active = true;   /* published beside the signing KSK, never active */
	e.public_only = !req->offline;
	e.timers = timers;
	e.label = res->label;
	khsm_enrolled_t out = { 0 };
	bool adopted = false;
	int r = khsm_zone_key_generate_or_adopt(req->kconf, req->zone, &e, &out, &adopted);
	res->did = adopted ? KHSM_STANDBY_DID_ADOPT : KHSM_STANDBY_DID_GENERATE;
	if (r == KHSM_EOK) {
		/* the KASP id: online the public-only entry's */
		const char *id = out.pub_id ? out.pub_id : out.id_hex;
		*id_ptr = strdup(id ? id : "");
		if (!*id_ptr) r = KHSM_ENOMEM;
	}
	khsm_enrolled_clear(&out);
	return r;
}

_public_
int khsm_standby_make(const khsm_standby_req_t *req, int64_t now, khsm_standby_result_t *res)
{
	if (!req || !req->kconf || !req->zone || !req->zone->keystore || !req->enroll || !res) {
		return KHSM_EINVAL;
	}
	*res = (khsm_standby_result_t) { 0 };
	const char *kpath = khsm_conf_path(req->kconf);
	const char *zone = req->zone->name;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	char *new_id = NULL;
	khsm_roll_t st = { 0 };
	int r = khsm_keymgr_list(kpath, zone, &keys, &n);
	if (r != KHSM_EOK) goto fail;
	const khsm_kasp_key_t *sb = khsm_standby_find(keys, n);
	if (!sb) {
		if ((r = khsm_rollover_plan(keys, n, now, &st)) != KHSM_EOK) goto fail;
		/* removed: the old KSK (of a rollover, or lost in a failover) is
		 * out of every DNSKEY set, nothing waits */
		if (st.step != KHSM_ROLL_IDLE && st.step != KHSM_ROLL_REMOVED) {
			khsm_err_detail("%s: a KSK rollover is in progress (step %s): finish it first "
			                "(knot-hsm %s rollover), then make the standby", zone,
			                khsm_rollover_step_name(st.step), zone);
			r = KHSM_EINVAL;
			goto fail;
		}
		const khsm_conf_policy_t *p = req->zone->policy;
		/* online, knot-hsm-card names the standby's card after a failover:
		 * the token tells (offline the KSK side's ids do) */
		if (p && p->keystore_count > 0 &&
		    (strcmp(p->keystores[0], req->zone->keystore->id) == 0 ||
		     (!req->offline && same_card(req->kconf, p->keystores[0], req->zone->keystore)))) {
			khsm_err_detail("%s: keystore %s is the card the signing KSK is on; a standby there is "
			                "lost with it: name the second card's keystore (standby keystore=ID)",
			                zone, req->zone->keystore->id);
			r = KHSM_EINVAL;
			goto fail;
		}
		int64_t publish = khsm_rollover_when(&req->delays, now);
		if ((r = standby_generate(req, publish, res, &new_id)) != KHSM_EOK) goto fail;
		free(keys);
		keys = NULL;
		if ((r = khsm_keymgr_list(kpath, zone, &keys, &n)) != KHSM_EOK) goto fail;
		sb = find_id(keys, n, new_id);
		if (!sb || !khsm_standby_is(sb)) {
			khsm_err_detail("%s: keymgr list does not show the new key %s as a standby "
			                "(published, never active)", zone, new_id);
			r = KHSM_ETOOL;
			goto fail;
		}
	}
	result_key(res, sb);
	res->at = sb->publish;
	r = khsm_rollover_ds(kpath, zone, sb, &res->ds);
fail:
	free(new_id);
	free(keys);
	return r;
}

/* -- the KSK side's policy ---------------------------------------------- */

/* The KSK side's text with its policy naming keystore_id (*out_ptr NULL:
 * it does already). */
static int policy_text(const char *path, const char *text, const char *keystore_id, char **out_ptr)
{
	*out_ptr = NULL;
	static const char head[] = "\n  - id: " KHSM_POLICY_KSK_ID "\n    keystore: ";
	const char *at = strstr(text, head);
	if (!strstr(text, KHSM_POLICY_MARKER) || !at) {
		khsm_err_detail("%s is not a KSK side written by knot-hsm policy (no policy %s with its "
		                "keystore on the next line): set keystore: %s in its policy by hand",
		                path, KHSM_POLICY_KSK_ID, keystore_id);
		return KHSM_ECONFIG;
	}
	const char *value = at + strlen(head);
	size_t vlen = strcspn(value, "\n");
	if (vlen == strlen(keystore_id) && strncmp(value, keystore_id, vlen) == 0) {
		return KHSM_EOK;
	}
	char *out = NULL;
	if (asprintf(&out, "%.*s%s%s", (int)(value - text), text, keystore_id, value + vlen) < 0) {
		return KHSM_ENOMEM;
	}
	/* the header's "The KSK stays on the card of keystore ID." too */
	char said[160];
	snprintf(said, sizeof(said), "on the card of keystore %.*s.\n", (int)vlen, value);
	char *c = strstr(out, said);
	char *fixed = NULL;
	if (c && vlen < 100 &&
	    asprintf(&fixed, "%.*son the card of keystore %s.\n%s", (int)(c - out), out, keystore_id,
	             c + strlen(said)) < 0) {
		free(out);
		return KHSM_ENOMEM;
	}
	if (fixed) {
		free(out);
		out = fixed;
	}
	*out_ptr = out;
	return KHSM_EOK;
}

_public_
int khsm_standby_policy_keystore(const char *path, const char *keystore_id, bool *changed_ptr)
{
	if (!path || !keystore_id || !changed_ptr || strpbrk(keystore_id, " \t\n\"")) {
		return KHSM_EINVAL;
	}
	char *text = NULL, *out = NULL;
	struct stat sb;
	khsm_file_read_opts_t opts = { .nofollow = true, .what = "KSK side" };
	int r = khsm_file_read(path, &opts, &text, NULL, &sb);
	if (r == KHSM_EOK) r = policy_text(path, text, keystore_id, &out);
	if (r == KHSM_EOK && out) r = khsm_file_write_atomic(path, out, strlen(out), sb.st_mode & 07777, KHSM_FILE_DIR_GROUP);
	if (r == KHSM_EOK) *changed_ptr = out != NULL;
	free(out);
	free(text);
	return r;
}

/* Offline, the lost card is the policy's keystore, and keymgr opens it for
 * any command (list included): keymgr works through a private copy of the
 * KSK side (same KASP) whose policy names the standby's keystore. */
typedef struct {
	char *dir, *path;
} side_copy_t;

static int side_copy(const char *kpath, const char *keystore_id, side_copy_t *c)
{
	*c = (side_copy_t) { 0 };
	char *text = NULL, *out = NULL;
	const char *tmp = getenv("TMPDIR");
	int r = khsm_file_read(kpath, NULL, &text, NULL, NULL);
	if (r == KHSM_EOK) r = policy_text(kpath, text, keystore_id, &out);
	if (r == KHSM_EOK && !out) {
		free(text);
		return KHSM_EOK;   /* it names the keystore already: the file itself */
	}
	if (r == KHSM_EOK && asprintf(&c->dir, "%s/knot-hsm-failover.XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		c->dir = NULL;
		r = KHSM_ENOMEM;
	}
	if (r == KHSM_EOK && !mkdtemp(c->dir)) {
		khsm_err_detail("cannot create a temporary directory: %s", strerror(errno));
		free(c->dir);
		c->dir = NULL;
		r = KHSM_EIO;
	}
	if (r == KHSM_EOK && asprintf(&c->path, "%s/ksk.conf", c->dir) < 0) {
		c->path = NULL;
		r = KHSM_ENOMEM;
	}
	if (r == KHSM_EOK) r = khsm_file_write_atomic(c->path, out, strlen(out), 0600, 0);
	free(out);
	free(text);
	return r;
}

static void side_copy_remove(side_copy_t *c)
{
	if (c->path) unlink(c->path);
	if (c->dir) rmdir(c->dir);
	free(c->path);
	free(c->dir);
	*c = (side_copy_t) { 0 };
}

/* -- failover -------------------------------------------------------------- */

/* Is the standby's public key on the card of the keystore (no login)? */
static int on_card(const khsm_standby_req_t *req, const khsm_kasp_key_t *sb)
{
	const khsm_conf_keystore_t *store = req->zone->keystore;
	bool present = false;
	int r = khsm_cardkey_present(store->config, sb->id, req->enroll && req->enroll->force, &present);
	if (r == KHSM_EOK && !present) {
		khsm_err_detail("%s: the standby KSK %s (tag %u) is not on the card of keystore %s: insert "
		                "the card the standby was made on, or name its keystore (failover "
		                "keystore=ID)", req->zone->name, sb->id, sb->tag, store->id);
		r = KHSM_ENOENT;
	} else if (r != KHSM_EOK) {
		if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
		khsm_err_prefix("%s: the card of keystore %s, where the standby KSK %s should be: ",
		                req->zone->name, store->id, sb->id);
	}
	return r;
}

/* The KSK an interrupted failover made active: published before it became
 * active, never ready (a rollover's new KSK always is). */
static bool failed_over(const khsm_kasp_key_t *k, int64_t now)
{
	return is_card_ksk(k) && k->ready == 0 && k->active != 0 && k->publish != 0 &&
	       k->publish < k->active && k->retire == 0 && !khsm_kasp_reached(k->remove, now);
}

/* Retire and remove every other live KSK at `at`. *done_ptr: how many changed. */
static int stop_others(const char *kpath, const char *zone, const khsm_kasp_key_t *keys, size_t n,
                       const khsm_kasp_key_t *keep, int64_t at, int64_t now,
                       khsm_standby_result_t *res, size_t *done_ptr)
{
	int r = KHSM_EOK;
	for (size_t i = 0; i < n && r == KHSM_EOK; i++) {
		const khsm_kasp_key_t *k = &keys[i];
		if (k == keep || !is_card_ksk(k) || khsm_standby_is(k) || khsm_kasp_reached(k->remove, now)) {
			continue;
		}
		if (k->retire == at && k->remove == at) {
			if (!res->lost_id[0]) {
				snprintf(res->lost_id, sizeof(res->lost_id), "%s", k->id);
				res->lost_tag = k->tag;
			}
			continue;
		}
		r = khsm_rollover_set_timer(kpath, zone, k->id, "retire", at);
		if (r == KHSM_EOK) r = khsm_rollover_set_timer(kpath, zone, k->id, "remove", at);
		if (r == KHSM_EOK) {
			snprintf(res->lost_id, sizeof(res->lost_id), "%s", k->id);
			res->lost_tag = k->tag;
			(*done_ptr)++;
		}
	}
	return r;
}

/* Online: the public-only standby becomes the card key it stands for. The
 * card pair (by its label, on the standby's card) is registered active at
 * `at`, published since the standby was; then the public-only entry goes.
 * Interrupted in between, the rerun finds the standby again and its card
 * key registered already (import: known), or, after the deletion, the card
 * key failed over (failed_over()). */
static int failover_online(const khsm_standby_req_t *req, const khsm_kasp_key_t *sb, int64_t at,
                           khsm_standby_result_t *res)
{
	const char *kpath = khsm_conf_path(req->kconf);
	const khsm_conf_keystore_t *store = req->zone->keystore;
	char label[300], pub_w[48], act_w[48];
	snprintf(label, sizeof(label), "%s KSK standby", req->zone->name);
	snprintf(pub_w, sizeof(pub_w), "publish=%" PRId64, sb->publish < at ? sb->publish : at - 1);
	snprintf(act_w, sizeof(act_w), "active=%" PRId64, at);
	const char *timers[] = { pub_w, act_w, NULL };
	/* The card key is the standby's own (its DNSKEY's key id), found
	 * without a login before anything changes or any PIN is tried. */
	khsm_keystore_t *ks = NULL;
	uint8_t *id = NULL;
	size_t id_len = 0;
	bool force = req->enroll && req->enroll->force;
	int r = khsm_keystore_open(store->config, &ks);
	if (r == KHSM_EOK) r = khsm_cardkey_find_keyid(ks, label, sb->id, force, &id, &id_len);
	khsm_keystore_close(ks);
	if (r != KHSM_EOK) {
		if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
		khsm_err_prefix("%s: the standby KSK (tag %u) is not on the card of keystore %s (insert "
		                "the card the standby was made on, or name its keystore: failover "
		                "keystore=ID): ", req->zone->name, sb->tag, store->id);
		return r;
	}
	khsm_enroll_t e = *req->enroll;
	e.ksk = true;
	e.zsk = false;
	e.algorithm = 0;
	e.label = NULL;
	e.id = id;
	e.id_len = id_len;
	e.timers = timers;
	e.public_only = false;
	khsm_enrolled_t out = { 0 };
	r = khsm_zone_key_import(req->kconf, req->zone, &e, &out);
	free(id);
	if (r != KHSM_EOK) {
		if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
		khsm_err_prefix("%s: the standby's card key on keystore %s: ", req->zone->name, store->id);
	}
	if (r == KHSM_EOK && out.id_hex) {
		snprintf(res->id, sizeof(res->id), "%s", out.id_hex);
		res->tag = sb->tag;
	}
	khsm_enrolled_clear(&out);
	if (r == KHSM_EOK) {
		const char *del_args[] = { req->zone->name, "delete", sb->id, NULL };
		khsm_run_t del = { 0 };
		r = khsm_keymgr(kpath, del_args, &del);
		khsm_run_clear(&del);
	}
	return r;
}

_public_
int khsm_standby_failover(const khsm_standby_req_t *req, int64_t now, khsm_standby_result_t *res)
{
	if (!req || !req->kconf || !req->zone || !req->zone->keystore || !res) {
		return KHSM_EINVAL;
	}
	*res = (khsm_standby_result_t) { 0 };
	const char *real = khsm_conf_path(req->kconf);
	const char *zone = req->zone->name;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	side_copy_t copy = { 0 };
	int r = req->offline ? side_copy(real, req->zone->keystore->id, &copy) : KHSM_EOK;
	const char *kpath = copy.path ? copy.path : real;
	if (r == KHSM_EOK) r = khsm_keymgr_list(kpath, zone, &keys, &n);
	if (r != KHSM_EOK) goto fail;
	const khsm_kasp_key_t *sb = khsm_standby_find(keys, n);
	size_t changed = 0;
	const khsm_kasp_key_t *fo = NULL;
	for (size_t i = 0; i < n && !sb && !fo; i++) {
		if (failed_over(&keys[i], now)) fo = &keys[i];
	}
	if (!sb && !fo) {
		khsm_err_detail("%s has no standby KSK to fail over to; while a card is still there, make "
		                "one on another card with: knot-hsm ZONE standby keystore=ID", zone);
		r = KHSM_ENOENT;
		goto fail;
	}
	/* online the standby is public-only: its card key is found by label */
	bool pub = sb && sb->public_only;
	if (!pub && (r = on_card(req, sb ? sb : fo)) != KHSM_EOK) goto fail;
	if (pub) {
		int64_t at = khsm_rollover_when(&req->delays, now);
		if ((r = failover_online(req, sb, at, res)) != KHSM_EOK) goto fail;
		/* the keys as they are now: the card key signing, kept; a rerun's
		 * import found it registered already, with its own active */
		free(keys);
		keys = NULL;
		if ((r = khsm_keymgr_list(kpath, zone, &keys, &n)) != KHSM_EOK) goto fail;
		const khsm_kasp_key_t *signing = find_id(keys, n, res->id);
		if (!signing) {
			khsm_err_detail("%s: keymgr list does not show the standby's card key %s", zone, res->id);
			r = KHSM_ETOOL;
			goto fail;
		}
		at = signing->active ? signing->active : at;
		if ((r = stop_others(kpath, zone, keys, n, signing, at, now, res, &changed)) != KHSM_EOK) goto fail;
		res->at = at;
		res->did = KHSM_STANDBY_DID_FAILOVER;
	} else if (sb) {
		int64_t at = khsm_rollover_when(&req->delays, now);
		/* the standby first: interrupted here, both sign until the rerun
		 * retires the lost one (failed_over()) */
		r = khsm_rollover_set_timer(kpath, zone, sb->id, "active", at);
		if (r == KHSM_EOK) r = stop_others(kpath, zone, keys, n, sb, at, now, res, &changed);
		if (r != KHSM_EOK) goto fail;
		result_key(res, sb);
		res->at = at;
		res->did = KHSM_STANDBY_DID_FAILOVER;
	} else {
		r = stop_others(kpath, zone, keys, n, fo, fo->active, now, res, &changed);
		if (r != KHSM_EOK) goto fail;
		result_key(res, fo);
		res->at = fo->active;
		res->did = changed ? KHSM_STANDBY_DID_COMPLETE : KHSM_STANDBY_DID_NOTHING;
	}
	/* the timers first, then the KSK side itself: interrupted in between,
	 * a rerun finds the failover made and rewrites the file */
	if (req->offline) {
		r = khsm_standby_policy_keystore(real, req->zone->keystore->id, &res->policy_changed);
	}
fail:
	side_copy_remove(&copy);
	free(keys);
	return r;
}

/* Whether the token of a pkcs11 keystore is gone (the lost card). */
static bool keystore_gone(const khsm_conf_keystore_t *ks)
{
	if (!khsm_conf_keystore_is_pkcs11(ks) || !ks->config) return false;
	khsm_keystore_t *k = NULL;
	int r = khsm_keystore_open(ks->config, &k);
	khsm_keystore_close(k);
	khsm_err_clear();
	/* not KHSM_EREMOVED: a card host out of reach is not a card lost */
	return r == KHSM_ENOTOKEN;
}

_public_
int khsm_standby_online_drop_lost(const char *path, const khsm_conf_t *zconf, const char *keep,
                                  char *dropped, size_t size)
{
	if (!path || !zconf || !keep || !dropped || size == 0) {
		return KHSM_EINVAL;
	}
	dropped[0] = '\0';
	char *text = NULL;
	struct stat sb;
	khsm_file_read_opts_t opts = { .nofollow = true, .what = "policy include" };
	int r = khsm_file_read(path, &opts, &text, NULL, &sb);
	if (r != KHSM_EOK) return r;
	static const char head[] = "\n  - id: " KHSM_POLICY_ID "\n";
	const char *pol = strstr(text, head);
	const char *line = pol ? strstr(pol, "\n    keystore: [ ") : NULL;
	const char *next_id = pol ? strstr(pol + 1, "\n  - id: ") : NULL;
	if (!strstr(text, KHSM_POLICY_MARKER) || !line || (next_id && line > next_id)) {
		khsm_err_detail("%s is not an online policy written by knot-hsm policy (no policy %s with "
		                "a keystore list): take the lost card's keystore out of the policy's "
		                "keystores by hand, knotc reload, then the failover again", path,
		                KHSM_POLICY_ID);
		free(text);
		return KHSM_ECONFIG;
	}
	const char *list = line + strlen("\n    keystore: [ ");
	const char *end = strstr(list, " ]\n");
	if (!end || memchr(list, '\n', (size_t)(end - list))) {
		free(text);
		khsm_err_detail("%s: the policy's keystore list is not on one line", path);
		return KHSM_ECONFIG;
	}
	/* the standby's card must be here before its card takes the lost one's place */
	const khsm_conf_keystore_t *keep_ks = khsm_conf_keystore_find(zconf, keep);
	khsm_keystore_t *kk = NULL;
	r = keep_ks && keep_ks->config ? khsm_keystore_open(keep_ks->config, &kk) : KHSM_ENOENT;
	khsm_keystore_close(kk);
	if (r != KHSM_EOK) {
		if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
		khsm_err_prefix("the standby's card (keystore %s) is not usable: ", keep);
		free(text);
		return r;
	}
	char *ids = strndup(list, (size_t)(end - list));
	char kept[1024] = "";
	size_t nkept = 0;
	bool card_gone = false;
	if (!ids) r = KHSM_ENOMEM;
	for (char *save = NULL, *id = ids ? strtok_r(ids, ", ", &save) : NULL; r == KHSM_EOK && id;
	     id = strtok_r(NULL, ", ", &save)) {
		bool gone = strcmp(id, keep) != 0 && keystore_gone(khsm_conf_keystore_find(zconf, id));
		/* knot-hsm's own card keystore stays, on the standby's card: it is
		 * the first, ksk-only one, where Knot 3.5 puts (and keymgr
		 * import-pkcs11 registers) KSKs, ZSKs going to the PEM one */
		if (gone && strcmp(id, KHSM_POLICY_CARD_ID) == 0) {
			card_gone = true;
			gone = false;
		}
		size_t l = strlen(gone ? dropped : kept);
		int w = gone ? snprintf(dropped + l, size - l, "%s%s taken out of the policy's keystores",
		                        l ? "; " : "", id)
		             : snprintf(kept + l, sizeof(kept) - l, "%s%s", nkept++ ? ", " : "", id);
		if (w < 0 || (size_t)w >= (gone ? size : sizeof(kept)) - l) {
			khsm_err_detail("%s: the policy's keystore list is too long to rewrite", path);
			r = KHSM_ECONFIG;   /* never a list cut short */
		}
	}
	free(ids);
	char *out = NULL;
	if (r == KHSM_EOK && (dropped[0] || card_gone) &&
	    asprintf(&out, "%.*s%s%s", (int)(list - text), text, kept, end) < 0) {
		out = NULL;
		r = KHSM_ENOMEM;
	}
	if (r == KHSM_EOK && card_gone) {
		const khsm_conf_keystore_t *k = khsm_conf_keystore_find(zconf, keep);
		static const char sec[] = "\n  - id: " KHSM_POLICY_CARD_ID "\n    backend: pkcs11\n    config: \"";
		char *at = strstr(out, sec);
		char *q = at ? strchr(at + strlen(sec), '"') : NULL;
		char *moved = NULL;
		if (!k || !k->config || strpbrk(k->config, "\"\n\\") || !q) {
			khsm_err_detail("%s: keystore %s (its card is gone) cannot be moved to %s's card: write "
			                "the policy again naming %s (knot-hsm ZONE... policy mode=online "
			                "keystore=%s --write %s --force), knotc reload, then the failover "
			                "again", path, KHSM_POLICY_CARD_ID, keep, keep, keep, path);
			r = KHSM_ECONFIG;
		} else if (asprintf(&moved, "%.*s%s%s", (int)(at + strlen(sec) - out), out, k->config, q) < 0) {
			r = KHSM_ENOMEM;
		} else {
			free(out);
			out = moved;
			size_t l = strlen(dropped);
			snprintf(dropped + l, size - l, "%s%s now on the card of %s", l ? "; " : "",
			         KHSM_POLICY_CARD_ID, keep);
		}
	}
	if (r == KHSM_EOK && out) {
		r = khsm_file_write_atomic(path, out, strlen(out), sb.st_mode & 07777, KHSM_FILE_DIR_GROUP);
	}
	if (r != KHSM_EOK) dropped[0] = '\0';
	free(out);
	free(text);
	return r;
}

_public_
int khsm_standby_failover_zones(const khsm_conf_t *kconf, char *const *zones, size_t count)
{
	if (!kconf || (!zones && count)) {
		return KHSM_EINVAL;
	}
	char others[512] = "";
	size_t missing = 0;
	for (size_t i = 0; i < khsm_conf_zone_count(kconf); i++) {
		const khsm_conf_zone_t *z = khsm_conf_zone_at(kconf, i);
		const khsm_conf_policy_t *p = NULL;
		if (khsm_conf_zone_policy(kconf, z, &p) != KHSM_EOK || !p ||
		    strcmp(p->id, KHSM_POLICY_KSK_ID) != 0) {
			khsm_err_clear();
			continue;
		}
		bool named = false;
		for (size_t k = 0; k < count && !named; k++) named = strcmp(zones[k], z->domain) == 0;
		if (!named) {
			size_t l = strlen(others);
			snprintf(others + l, sizeof(others) - l, "%s%s", missing ? " " : "", z->domain);
			missing++;
		}
	}
	if (missing) {
		khsm_err_detail("a failover moves the KSK side's policy to the standby's card for all of "
		                "its zones: name them all (missing: %s), each with a standby there", others);
		return KHSM_EINVAL;
	}
	return KHSM_EOK;
}

_public_
void khsm_standby_result_clear(khsm_standby_result_t *res)
{
	if (res) {
		free(res->ds);
		res->ds = NULL;
	}
}
