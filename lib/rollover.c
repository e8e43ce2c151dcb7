/* A planned double-DS KSK rollover read from KASP timers (see rollover.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libdnssec/key.h>

#include "epp.h"
#include "error.h"
#include "dnskey.h"
#include "cardkey.h"
#include "ceremony.h"
#include "internal.h"
#include "kasp.h"
#include "policy.h"
#include "rollover.h"
#include "standby.h"
#include "uri.h"

/* -- where a zone stands --------------------------------------------------- */

static bool is_card_ksk(const khsm_kasp_key_t *k)
{
	return k->ksk && !k->zsk && !k->public_only;
}

/* When a KSK stops signing as the old one: its retire timer, or online its
 * retire_active (knotd keeps a retire-active KSK published and signing the
 * DNSKEY set until it is removed; see roll_stop_old()). */
static int64_t ksk_stop(const khsm_kasp_key_t *k)
{
	return k->retire_active != 0 ? k->retire_active : k->retire;
}

_public_
int khsm_rollover_plan(const khsm_kasp_key_t *keys, size_t count, int64_t now, khsm_roll_t *out)
{
	if ((!keys && count) || !out) {
		return KHSM_EINVAL;
	}
	const khsm_kasp_key_t *live[2] = { NULL, NULL };
	const khsm_kasp_key_t *removed = NULL;
	size_t nlive = 0;
	for (size_t i = 0; i < count; i++) {
		const khsm_kasp_key_t *k = &keys[i];
		if (!is_card_ksk(k) || khsm_standby_is(k)) {
			continue;   /* a standby (standby.h) takes no part in a rollover */
		}
		if (khsm_kasp_reached(k->remove, now)) {
			if (!removed) removed = k;
			continue;
		}
		if (nlive == 2) {
			khsm_err_detail("more than two KSKs are published or coming (%s, %s, %s): this is "
			                "not a rollover knot-hsm plans; remove the extra key", live[0]->id,
			                live[1]->id, k->id);
			return KHSM_EINVAL;
		}
		live[nlive++] = k;
	}
	if (nlive == 0) {
		khsm_err_detail("the zone has no KSK to roll over: generate one first");
		return KHSM_EINVAL;
	}
	khsm_roll_t r = { 0 };
	if (nlive == 1) {
		const khsm_kasp_key_t *k = live[0];
		if (!khsm_kasp_reached(k->active, now) || ksk_stop(k) != 0) {
			khsm_err_detail("the zone's only KSK %s does not sign now (active=%" PRId64
			                ", retire=%" PRId64 "): nothing to roll over", k->id, k->active,
			                k->retire);
			return KHSM_EINVAL;
		}
		if (removed && ksk_stop(removed) != 0) {
			/* the end of a rollover: the old key is out of every DNSKEY set */
			r.step = KHSM_ROLL_REMOVED;
			r.old_key = removed;
			r.new_key = k;
			r.since = removed->remove;
		} else {
			r.step = KHSM_ROLL_IDLE;
			r.old_key = k;
		}
		*out = r;
		return KHSM_EOK;
	}
	/* Two: the old one signs since the earlier moment. */
	const khsm_kasp_key_t *a = live[0], *b = live[1];
	bool a_on = khsm_kasp_reached(a->active, now), b_on = khsm_kasp_reached(b->active, now);
	const khsm_kasp_key_t *old;
	if (a_on && b_on) {
		old = a->active <= b->active ? a : b;
	} else if (a_on || b_on) {
		old = a_on ? a : b;
	} else {
		khsm_err_detail("neither KSK %s nor %s signs now: not a rollover", a->id, b->id);
		return KHSM_EINVAL;
	}
	const khsm_kasp_key_t *new = old == a ? b : a;
	r.old_key = old;
	r.new_key = new;
	if (new->active == 0) {
		if (ksk_stop(old) != 0 || old->remove != 0) {
			khsm_err_detail("KSK %s retires but its successor %s has no active timer", old->id,
			                new->id);
			return KHSM_EINVAL;
		}
		if (khsm_kasp_reached(new->ready, now)) {
			r.step = KHSM_ROLL_SUBMIT;
			r.since = new->ready;
		} else {
			r.step = KHSM_ROLL_PUBLISHED;
			r.since = new->publish;
			r.at = new->ready;
		}
		*out = r;
		return KHSM_EOK;
	}
	r.repair = ksk_stop(old) != new->active;
	/* Only knot-hsm's own switch leaves a KSK that was ready before it
	 * became active; two KSKs made active at once are not a rollover. */
	if (r.repair && !(new->ready != 0 && new->ready < new->active)) {
		khsm_err_detail("KSKs %s and %s both sign and neither retires: not a rollover "
		                "knot-hsm started; retire one (keymgr ZONE set ID retire=TIME) or "
		                "delete it", old->id, new->id);
		return KHSM_EINVAL;
	}
	if (!khsm_kasp_reached(new->active, now)) {
		r.step = KHSM_ROLL_SWITCHING;
		r.since = new->ready;
		r.at = new->active;
	} else if (old->remove == 0) {
		r.step = KHSM_ROLL_WITHDRAW;
		r.since = new->active;
	} else {
		r.step = KHSM_ROLL_REMOVING;
		r.since = new->active;
		r.at = old->remove;
	}
	*out = r;
	return KHSM_EOK;
}

_public_
int64_t khsm_rollover_when(const khsm_roll_delays_t *d, int64_t at)
{
	return d && d->signed_until > at ? d->signed_until : at;
}

_public_
const char *khsm_rollover_step_name(khsm_roll_step_t step)
{
	switch (step) {
	case KHSM_ROLL_IDLE:      return "idle";
	case KHSM_ROLL_PUBLISHED: return "published";
	case KHSM_ROLL_SUBMIT:    return "submit";
	case KHSM_ROLL_SWITCHING: return "switching";
	case KHSM_ROLL_WITHDRAW:  return "withdraw";
	case KHSM_ROLL_REMOVING:  return "removing";
	case KHSM_ROLL_REMOVED:   return "removed";
	}
	return "unknown";
}

/* -- what the parent has --------------------------------------------------- */

/* The DNSKEY of a KSK among `keymgr dnskey`, by tag and algorithm. */
static int find_dnskey(dnssec_key_t **keys, size_t n, const khsm_kasp_key_t *k,
                       const dnssec_key_t **key_ptr)
{
	for (size_t i = 0; i < n; i++) {
		if (dnssec_key_get_keytag(keys[i]) == k->tag &&
		    dnssec_key_get_algorithm(keys[i]) == k->algorithm) {
			*key_ptr = keys[i];
			return KHSM_EOK;
		}
	}
	khsm_err_detail("keymgr dnskey does not list KSK %s (tag %u)", k->id, k->tag);
	return KHSM_ENOENT;
}

/* Append "NAME (ADDR@PORT)" of s to the ", "-joined list *list. */
static int list_server(char **list, const khsm_server_t *s)
{
	char *grown = NULL;
	if (asprintf(&grown, "%s%s%s (%s@%u)", *list ? *list : "", *list ? ", " : "", s->name,
	             s->address, (unsigned)s->port) < 0) {
		return KHSM_ENOMEM;
	}
	free(*list);
	*list = grown;
	return KHSM_EOK;
}

_public_
int khsm_rollover_parent(const char *conf_path, const char *zone, const khsm_kasp_key_t *key,
                         const khsm_server_t *servers, size_t count, khsm_roll_parent_t *out)
{
	if (!zone || !key || (!servers && count) || !out) {
		return KHSM_EINVAL;
	}
	if (count == 0) {
		/* zero of zero servers would wait for ever */
		khsm_err_detail("no parent server to ask for the DS of %s; name one with "
		                "server=ADDR[@PORT]", zone);
		return KHSM_ENOENT;
	}
	dnssec_key_t **dnskeys = NULL;
	size_t nkeys = 0;
	const dnssec_key_t *dnskey = NULL;
	khsm_roll_parent_t res = { .servers = count, .tag = key->tag };
	int r = khsm_keymgr_ksks(conf_path, zone, &dnskeys, &nkeys);
	if (r == KHSM_EOK) r = find_dnskey(dnskeys, nkeys, key, &dnskey);
	for (size_t s = 0; r == KHSM_EOK && s < count; s++) {
		khsm_ds_t *ds = NULL;
		size_t nds = 0;
		r = khsm_parent_query_ds(&servers[s], zone, &ds, &nds, NULL);
		bool seen = false;
		for (size_t i = 0; r == KHSM_EOK && i < nds && !seen; i++) {
			r = khsm_ds_matches(&ds[i], dnskey, &seen);
		}
		khsm_ds_free(ds, nds);
		if (r == KHSM_EOK) r = list_server(seen ? &res.with : &res.without, &servers[s]);
		if (seen) res.with_key++;
	}
	khsm_dnskeys_free(dnskeys, nkeys);
	if (r != KHSM_EOK) {
		khsm_rollover_parent_clear(&res);
		return r;
	}
	*out = res;
	return KHSM_EOK;
}

_public_
void khsm_rollover_parent_clear(khsm_roll_parent_t *p)
{
	if (p) {
		free(p->parent);
		free(p->with);
		free(p->without);
		*p = (khsm_roll_parent_t) { 0 };
	}
}

/* What the parent has for key: on req's servers, or (none given) on every
 * server of the parent zone, found as `submitted` finds them. */
static int roll_parent(const khsm_roll_req_t *req, const khsm_kasp_key_t *key,
                       khsm_roll_parent_t *out)
{
	const char *zone = req->zone->name;
	if (req->servers) {
		return khsm_rollover_parent(khsm_conf_path(req->kconf), zone, key, req->servers,
		                            req->server_count, out);
	}
	_cleanup_free_ char *parent = NULL;
	khsm_server_t *found = NULL;
	size_t nfound = 0;
	int r = khsm_parent_servers(zone, &parent, &found, &nfound);
	if (r == KHSM_EOK) {
		r = khsm_rollover_parent(khsm_conf_path(req->kconf), zone, key, found, nfound, out);
	}
	if (r == KHSM_EOK) out->parent = KHSM_STEAL(parent);
	khsm_servers_free(found, nfound);
	return r;
}

/* -- changing KASP --------------------------------------------------------- */

_public_
int khsm_rollover_ds(const char *conf_path, const char *zone, const khsm_kasp_key_t *key,
                     char **line_ptr)
{
	if (!zone || !key || !line_ptr) {
		return KHSM_EINVAL;
	}
	dnssec_key_t **dnskeys = NULL;
	size_t nkeys = 0;
	const dnssec_key_t *dnskey = NULL;
	char *line = NULL;
	int r = khsm_keymgr_ksks(conf_path, zone, &dnskeys, &nkeys);
	if (r == KHSM_EOK) r = find_dnskey(dnskeys, nkeys, key, &dnskey);
	if (r == KHSM_EOK) r = khsm_ds_line(dnskey, 2, &line);
	khsm_dnskeys_free(dnskeys, nkeys);
	if (r == KHSM_EOK) *line_ptr = line;
	return r;
}

_public_
int khsm_rollover_set_timer(const char *conf_path, const char *zone, const char *id_hex,
                            const char *timer, int64_t at)
{
	if (!zone || !id_hex || !timer || at < 0) {
		return KHSM_EINVAL;
	}
	char word[64];
	snprintf(word, sizeof(word), "%s=%" PRId64, timer, at);
	const char *args[] = { zone, "set", id_hex, word, NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(conf_path, args, &res);
	khsm_run_clear(&res);
	return r;
}

/* -- what a monitor shows -------------------------------------------------- */

_public_
int khsm_rollover_status_keys(const khsm_kasp_key_t *keys, size_t n, int64_t now,
                              khsm_roll_status_t *out)
{
	if (!out) {
		return KHSM_EINVAL;
	}
	khsm_roll_t st = { 0 };
	int r = khsm_rollover_plan(keys, n, now, &st);
	const khsm_kasp_key_t *sb = khsm_standby_find(keys, n);
	if (r == KHSM_EOK) {
		*out = (khsm_roll_status_t) {
			.standby_tag = sb ? sb->tag : 0, .standby_publish = sb ? sb->publish : 0,
			.step = st.step, .since = st.since, .at = st.at,
			.old_tag = st.old_key ? st.old_key->tag : 0,
			.new_tag = st.new_key ? st.new_key->tag : 0,
			.waits_parent = st.step == KHSM_ROLL_SUBMIT || st.step == KHSM_ROLL_WITHDRAW,
		};
	}
	return r;
}

_public_
int khsm_rollover_status(const char *conf_path, const char *zone, int64_t now,
                         khsm_roll_status_t *out)
{
	if (!zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	int r = khsm_keymgr_list(conf_path, zone, &keys, &n);
	if (r == KHSM_EOK) r = khsm_rollover_status_keys(keys, n, now, out);
	free(keys);
	return r;
}

_public_
const char *khsm_rollover_role(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                               const char *id_hex)
{
	const khsm_kasp_key_t *key = NULL;
	for (size_t i = 0; id_hex && i < count; i++) {
		/* public-only: an online standby (standby.h) */
		if (strcmp(keys[i].id, id_hex) == 0 && (is_card_ksk(&keys[i]) || khsm_standby_is(&keys[i]))) {
			key = &keys[i];
		}
	}
	if (!key) {
		return NULL;
	}
	if (khsm_kasp_reached(key->remove, now)) {
		return "removed";
	}
	if (khsm_standby_is(key)) {
		return "standby";
	}
	khsm_roll_t st = { 0 };
	if (khsm_rollover_plan(keys, count, now, &st) != KHSM_EOK) {
		khsm_err_clear();
		return NULL;
	}
	bool switched = st.step >= KHSM_ROLL_WITHDRAW;
	if (key == st.new_key) return switched ? "active" : "incoming";
	if (key == st.old_key) return st.step == KHSM_ROLL_IDLE ? "active" : "outgoing";
	return NULL;
}

/* The keys of zone in idx, once each: an index merged from two sources may
 * list a key twice. Returns them (free with free()), NULL on ENOMEM; *n_ptr: how many. */
static khsm_kasp_key_t *zone_keys(const khsm_kasp_index_t *idx, const char *zone, size_t *n_ptr)
{
	khsm_kasp_key_t *keys = calloc(idx->count ? idx->count : 1, sizeof(*keys));
	if (!keys) {
		return NULL;
	}
	size_t n = 0;
	for (size_t i = 0; i < idx->count; i++) {
		bool seen = strcmp(idx->items[i].zone, zone) != 0;
		for (size_t k = 0; k < n && !seen; k++) {
			seen = strcmp(keys[k].id, idx->items[i].key.id) == 0;
		}
		if (!seen) keys[n++] = idx->items[i].key;
	}
	*n_ptr = n;
	return keys;
}

typedef const char *(*role_fn)(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                               const char *id_hex);

/* fn over the keys of zone in idx (each key once). */
static const char *role_in(const khsm_kasp_index_t *idx, const char *zone, const char *id_hex,
                           int64_t now, role_fn fn)
{
	if (!idx || !zone || !id_hex) {
		return NULL;
	}
	size_t n = 0;
	khsm_kasp_key_t *keys = zone_keys(idx, zone, &n);
	if (!keys) {
		return NULL;
	}
	const char *role = fn(keys, n, now, id_hex);
	free(keys);
	return role;
}

_public_
const char *khsm_rollover_role_in(const khsm_kasp_index_t *idx, const char *zone,
                                  const char *id_hex, int64_t now)
{
	return role_in(idx, zone, id_hex, now, khsm_rollover_role);
}

_public_
const char *khsm_rollover_key_role(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                                   const char *id_hex)
{
	const char *role = khsm_rollover_role(keys, count, now, id_hex);
	if (role) {
		return role;
	}
	const khsm_kasp_key_t *key = NULL;
	for (size_t i = 0; id_hex && i < count && !key; i++) {
		if (strcmp(keys[i].id, id_hex) == 0) key = &keys[i];
	}
	if (!key) {
		return NULL;
	}
	/* Not in a KSK rollover (a ZSK, a CSK, a public-only KSK): the same
	 * words from the key's own timers, as a ZSK rollover moves it. */
	switch (khsm_kasp_key_state(key, now)) {
	case KHSM_KEY_STATE_ACTIVE:
		return "active";
	case KHSM_KEY_STATE_RETIRE_ACTIVE:
	case KHSM_KEY_STATE_POST_ACTIVE:
	case KHSM_KEY_STATE_RETIRED:
	case KHSM_KEY_STATE_REVOKED:
		return "outgoing";
	case KHSM_KEY_STATE_REMOVED:
		return "removed";
	default:
		return "incoming";   /* none, pre-active, published, ready: not signing yet */
	}
}

_public_
const char *khsm_rollover_key_role_in(const khsm_kasp_index_t *idx, const char *zone,
                                      const char *id_hex, int64_t now)
{
	return role_in(idx, zone, id_hex, now, khsm_rollover_key_role);
}

/* -- the registry ---------------------------------------------------------- */

_public_
int khsm_rollover_epp_update(const char *conf_path, const char *zone, int64_t now,
                             khsm_digest_t digest, char **xml_ptr)
{
	if (!zone || !xml_ptr) {
		return KHSM_EINVAL;
	}
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	dnssec_key_t **dnskeys = NULL;
	size_t nkeys = 0;
	khsm_roll_t st = { 0 };
	const dnssec_key_t *key = NULL;
	int r = khsm_keymgr_list(conf_path, zone, &keys, &n);
	if (r == KHSM_EOK) r = khsm_rollover_plan(keys, n, now, &st);
	if (r == KHSM_EOK && st.step == KHSM_ROLL_IDLE) {
		khsm_err_detail("%s: no KSK rollover in progress; format=epp gives the DS of the KSK",
		                zone);
		r = KHSM_ENOENT;
	}
	bool adding = st.step < KHSM_ROLL_WITHDRAW;
	if (r == KHSM_EOK) r = khsm_keymgr_ksks(conf_path, zone, &dnskeys, &nkeys);
	if (r == KHSM_EOK) r = find_dnskey(dnskeys, nkeys, adding ? st.new_key : st.old_key, &key);
	if (r == KHSM_EOK) {
		r = khsm_epp_secdns_update(adding ? &key : NULL, adding ? 1 : 0, adding ? NULL : &key,
		                           adding ? 0 : 1, digest, xml_ptr);
	}
	khsm_dnskeys_free(dnskeys, nkeys);
	free(keys);
	return r;
}

/* -- one run --------------------------------------------------------------- */

static int64_t policy_secs(const char *text, int64_t dflt)
{
	int64_t v = 0;
	if (text && khsm_duration_parse(text, &v) == KHSM_EOK) return v;
	khsm_err_clear();
	return dflt;
}

_public_
int khsm_rollover_delays(const khsm_conf_t *zconf, const char *zone, bool offline,
                         khsm_roll_delays_t *d)
{
	if (!zconf || !zone || !d) {
		return KHSM_EINVAL;
	}
	const khsm_conf_zone_t *z = khsm_conf_zone_find(zconf, zone);
	const khsm_conf_policy_t *p = NULL;
	if (z && khsm_conf_zone_policy(zconf, z, &p) != KHSM_EOK) {
		khsm_err_clear();
		p = NULL;
	}
	khsm_roll_delays_t out = { 0 };
	out.dnskey_ttl = policy_secs(p ? p->dnskey_ttl : NULL, 3600);
	out.propagation_delay = policy_secs(p ? p->propagation_delay : NULL, 3600);
	int64_t max_ttl = policy_secs(p ? p->zone_max_ttl : NULL, 86400);
	out.ds_ttl = max_ttl > out.dnskey_ttl ? max_ttl : out.dnskey_ttl;
	if (offline) {
		khsm_offline_period_t period = { 0 };
		int r = khsm_offline_period(khsm_conf_path(zconf), zone, &period);
		if (r != KHSM_EOK) return r;
		out.signed_until = period.present ? period.end : 0;
	}
	*d = out;
	return KHSM_EOK;
}

_public_
int khsm_rollover_keystore_check(const khsm_zone_t *zone, const char *zconf_path, bool online)
{
	if (!zone || !zone->name || !zone->keystore || !zconf_path) {
		return KHSM_EINVAL;
	}
	const khsm_conf_policy_t *p = zone->policy;
	if (!p || p->keystore_count == 0) {
		return KHSM_EOK;   /* no policy keystore to differ from */
	}
	for (size_t i = 0; i < p->keystore_count; i++) {
		if (strcmp(p->keystores[i], zone->keystore->id) == 0) {
			return KHSM_EOK;
		}
	}
	const char *z = zone->name, *ks = zone->keystore->id;
	if (online) {
		khsm_err_detail("%s: keystore %s is not among the keystores of policy %s, so knotd "
		                "would not find a KSK made there; knot-hsm policy lists every card of "
		                "knot.conf: knot-hsm -c %s %s policy mode=online keystore=ID --write "
		                "FILE --force (with the card and options it was written with), knotc "
		                "reload, then the rollover again", z, ks, p->id, zconf_path, z);
		return KHSM_ENOTSUP;
	}
	if (khsm_conf_keystore_is_pkcs11(zone->keystore)) {
		return KHSM_EOK;   /* the ceremony signs from the card each KSK is on */
	}
	khsm_err_detail("%s: keystore %s is not a card (backend pkcs11): a KSK rollover makes the new "
	                "KSK on a card; name a card's keystore (rollover keystore=ID), or roll on the "
	                "policy's: knot-hsm -c %s %s rollover", z, ks, zconf_path, z);
	return KHSM_ENOTSUP;
}

/* The new KSK on the card, or the pair an interrupted run left there. */
static int roll_generate(const khsm_roll_req_t *req, const khsm_kasp_key_t *old, int64_t now,
                         khsm_roll_result_t *res)
{
	const khsm_roll_delays_t *d = &req->delays;
	int64_t publish = khsm_rollover_when(d, now);
	int64_t ready = publish + d->dnskey_ttl + d->propagation_delay;
	char pub_w[48], ready_w[48], pre_w[48];
	snprintf(pub_w, sizeof(pub_w), "publish=%" PRId64, publish);
	snprintf(ready_w, sizeof(ready_w), "ready=%" PRId64, ready);
	snprintf(pre_w, sizeof(pre_w), "pre_active=%" PRId64, publish);
	const char *timers[] = { pub_w, ready_w, "active=0", NULL };
	/* Online knotd clears a future ready and sets it itself at that moment
	 * (a published KSK is submitted a DNSKEY TTL + propagation delay after
	 * its publish). pre_active (reached, and overridden by publish in Knot's
	 * key state) marks the key as no standby (khsm_standby_is()). */
	const char *online_timers[] = { pub_w, "ready=0", "active=0", pre_w, NULL };
	/* "<zone> KSK after <old tag>": one per rollover, the same in a rerun */
	snprintf(res->label, sizeof(res->label), "%s KSK after %u", req->zone->name, old->tag);
	khsm_enroll_t e = *req->enroll;
	e.ksk = true;
	e.zsk = false;
	e.beside_active = true;   /* the new KSK joins the signing one: that is the rollover */
	e.timers = req->online ? online_timers : timers;
	e.label = res->label;
	khsm_enrolled_t out = { 0 };
	bool adopted = false;
	int r = khsm_zone_key_generate_or_adopt(req->kconf, req->zone, &e, &out, &adopted);
	res->did = adopted ? KHSM_ROLL_DID_ADOPT : KHSM_ROLL_DID_GENERATE;
	if (r == KHSM_EOK) {
		snprintf(res->new_id, sizeof(res->new_id), "%s", out.id_hex ? out.id_hex : "");
		res->step = KHSM_ROLL_PUBLISHED;
		res->since = publish;
		res->at = ready;
	}
	khsm_enrolled_clear(&out);
	return r;
}

/* The keystore whose card holds key, looked for without login: the run's,
 * else another pkcs11 keystore of the zone's policy (online, a rollover from
 * one card to another); the run's when no card here has it (*found_ptr
 * false: its card is lost, as after a failover, or not inserted). */
static const khsm_conf_keystore_t *key_keystore(const khsm_roll_req_t *req,
                                                const khsm_kasp_key_t *key, bool *found_ptr)
{
	const khsm_conf_keystore_t *own = req->zone->keystore;
	const khsm_conf_policy_t *p = req->zone->policy;
	bool force = req->enroll->force;
	bool present = false;
	*found_ptr = true;
	if (khsm_cardkey_present(own->config, key->id, force, &present) == KHSM_EOK && present) {
		return own;
	}
	khsm_err_clear();
	/* the policy's keystores first, then the other cards of this side (an
	 * offline rollover from card to card: the policy names one) */
	size_t np = p ? p->keystore_count : 0, nall = khsm_conf_keystore_count(req->kconf);
	for (size_t i = 0; i < np + nall; i++) {
		const khsm_conf_keystore_t *ks = i < np ? khsm_conf_keystore_find(req->kconf, p->keystores[i])
		                                        : khsm_conf_keystore_at(req->kconf, i - np);
		if (!khsm_conf_keystore_is_pkcs11(ks) || !ks->config || ks == own) continue;
		present = false;
		int r = khsm_cardkey_present(ks->config, key->id, force, &present);
		khsm_err_clear();
		if (r == KHSM_EOK && present) return ks;
	}
	*found_ptr = false;
	return own;
}

/* delete-old: the old KSK out of KASP and off its card. Its card not here
 * (lost): out of KASP alone, res->card_missed. */
static int roll_delete(const khsm_roll_req_t *req, const khsm_kasp_key_t *old,
                       khsm_roll_result_t *res)
{
	khsm_pin_t *pin = NULL;
	khsm_keystore_t *ks = NULL;
	bool found = false;
	/* the PIN rules of the card keymgr logs in to */
	const khsm_conf_keystore_t *store = key_keystore(req, old, &found);
	int r = req->enroll->open(req->enroll->open_ctx, store->config, &pin, &ks);
	khsm_pin_free(pin);
	pin = NULL;
	/* keymgr delete logs in to the policy's keystore: when that is another
	 * card (the new one, after a rollover from card to card), its PIN is
	 * checked by one login of knot-hsm's first too */
	const khsm_conf_policy_t *p = req->zone->policy;
	const khsm_conf_keystore_t *pks = p && p->keystore_count > 0
	                                  ? khsm_conf_keystore_find(req->kconf, p->keystores[0]) : NULL;
	if (r == KHSM_EOK && pks && pks != store && khsm_conf_keystore_is_pkcs11(pks) && pks->config) {
		khsm_keystore_t *pks_ks = NULL;
		r = req->enroll->open(req->enroll->open_ctx, pks->config, &pin, &pks_ks);
		khsm_keystore_close(pks_ks);
		khsm_pin_free(pin);
	}
	bool missed = false;
	if (r == KHSM_EOK) {
		r = khsm_keymgr_delete(khsm_conf_path(req->kconf), req->zone->name, old->id, &missed);
	}
	/* keymgr 3.2 deletes from the policy's keystore only: a KSK on another
	 * card (the old one of a rollover from card to card, once the policy
	 * names the new card) leaves the card here, through this login */
	if (r == KHSM_EOK && missed && found) {
		uint8_t *id = NULL;
		size_t id_len = 0;
		r = khsm_hex_parse(old->id, &id, &id_len);
		if (r == KHSM_EOK) r = khsm_cardkey_delete(ks, id, id_len);
		free(id);
		if (r == KHSM_EOK) missed = false;
		else r = KHSM_ETOOL;
	}
	khsm_keystore_close(ks);
	if (r != KHSM_EOK && missed && found) {
		khsm_err_detail("%s: keymgr deleted KSK %s from KASP but not from the card of keystore %s; "
		                "delete it with knot-hsm keys and pkcs11-tool --delete-object --id %s",
		                req->zone->name, old->id, store->id, old->id);
		r = KHSM_ETOOL;
	}
	res->card_missed = missed;
	return r;
}

/* Offline, a rollover from card to card: once the new KSK is to sign, the
 * KSK side's policy names the keystore of the card it is on, so that
 * ceremonies log in to that card (the old one signs, while it still does,
 * as another card of the KSK side: skr_sign.h) and the old card can go
 * when the rollover is done. Nothing when this side has one card. */
static int roll_follow_card(const khsm_roll_req_t *req, const khsm_kasp_key_t *new_key,
                            khsm_roll_result_t *res)
{
	size_t cards = 0;
	for (size_t i = 0; i < khsm_conf_keystore_count(req->kconf); i++) {
		cards += khsm_conf_keystore_is_pkcs11(khsm_conf_keystore_at(req->kconf, i));
	}
	const khsm_conf_policy_t *p = req->zone->policy;
	if (cards < 2 || !p || p->keystore_count == 0) return KHSM_EOK;
	bool found = false;
	const khsm_conf_keystore_t *ks = key_keystore(req, new_key, &found);
	khsm_err_clear();
	if (!found || strcmp(ks->id, p->keystores[0]) == 0) return KHSM_EOK;
	/* The policy is every zone's of it: moved only when this zone is its
	 * only one; otherwise the operator moves it once all have rolled. */
	size_t zones = 0;
	for (size_t i = 0; i < khsm_conf_zone_count(req->kconf); i++) {
		const khsm_conf_policy_t *zp = NULL;
		if (khsm_conf_zone_policy(req->kconf, khsm_conf_zone_at(req->kconf, i), &zp) == KHSM_EOK &&
		    zp && strcmp(zp->id, p->id) == 0) {
			zones++;
		}
	}
	khsm_err_clear();
	bool changed = false;
	int r = zones == 1 && strcmp(p->id, KHSM_POLICY_KSK_ID) == 0
	        ? khsm_standby_policy_keystore(khsm_conf_path(req->kconf), ks->id, &changed) : KHSM_ENOTSUP;
	if (r == KHSM_EOK) {
		if (changed) snprintf(res->policy_keystore, sizeof(res->policy_keystore), "%s", ks->id);
		return KHSM_EOK;
	}
	/* not a failure of the rollover: its step is done; the note says how */
	const char *d = khsm_err_last_detail();
	snprintf(res->policy_note, sizeof(res->policy_note),
	         "the new KSK is on keystore %s, the KSK side's policy %s still names %s%s%s; once "
	         "every zone of that policy signs with %s, write the policy again naming it (knot-hsm "
	         "ZONE... policy keystore=%s --write FILE --force), so that ceremonies log in to %s "
	         "only", ks->id, p->id, p->keystores[0], r != KHSM_ENOTSUP && d ? ": " : "",
	         r != KHSM_ENOTSUP && d ? d : "", ks->id, ks->id, ks->id);
	khsm_err_clear();
	return KHSM_EOK;
}

/* Online, knotd holds a retire-active KSK whose retire is set: this far off,
 * so that it stays published and signing until knot-hsm removes it. */
#define ONLINE_HOLD (10 * 365 * 86400LL)

/* The old KSK stops signing as the active one at `at`. Offline its retire
 * timer. Online (manual: off) knotd clears every future KSK timer and drops a
 * retired KSK from the DNSKEY set at once (Knot's key-events.c), so the old
 * KSK becomes retire-active now, which keeps it published and signing the
 * DNSKEY set beside the new one, with a retire far off that knotd leaves
 * alone; its removal, once the parent has withdrawn its DS, ends it. */
static int roll_stop_old(const khsm_roll_req_t *req, const khsm_kasp_key_t *old, int64_t at)
{
	const char *kpath = khsm_conf_path(req->kconf);
	if (!req->online) {
		return khsm_rollover_set_timer(kpath, req->zone->name, old->id, "retire", at);
	}
	int r = khsm_rollover_set_timer(kpath, req->zone->name, old->id, "retire_active", at);
	if (r == KHSM_EOK) {
		r = khsm_rollover_set_timer(kpath, req->zone->name, old->id, "retire", at + ONLINE_HOLD);
	}
	return r;
}

_public_
int khsm_rollover_advance(const khsm_roll_req_t *req, int64_t now, khsm_roll_result_t *res)
{
	if (!req || !req->kconf || !req->zone || !req->enroll || !res) {
		return KHSM_EINVAL;
	}
	*res = (khsm_roll_result_t) { 0 };
	const char *kpath = khsm_conf_path(req->kconf);
	const char *zone = req->zone->name;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	khsm_roll_t st = { 0 };
	int r = khsm_keymgr_list(kpath, zone, &keys, &n);
	if (r == KHSM_EOK) r = khsm_rollover_plan(keys, n, now, &st);
	if (r != KHSM_EOK) {
		free(keys);
		return r;
	}
	res->step = st.step;
	res->since = st.since;
	res->at = st.at;
	if (st.step == KHSM_ROLL_PUBLISHED && st.at == 0) {
		/* online knotd clears the future ready and sets it itself then */
		res->at = st.since + req->delays.dnskey_ttl + req->delays.propagation_delay;
	}
	if (st.old_key) {
		snprintf(res->old_id, sizeof(res->old_id), "%s", st.old_key->id);
		res->old_tag = st.old_key->tag;
	}
	if (st.new_key) {
		snprintf(res->new_id, sizeof(res->new_id), "%s", st.new_key->id);
		res->new_tag = st.new_key->tag;
	}
	int64_t settle = khsm_rollover_when(&req->delays,
	                                    now + req->delays.ds_ttl + req->delays.propagation_delay);
	if (st.repair && (st.step == KHSM_ROLL_SWITCHING || st.step == KHSM_ROLL_WITHDRAW)) {
		r = roll_stop_old(req, st.old_key, st.new_key->active);
		res->repaired = r == KHSM_EOK;
	}
	switch (r == KHSM_EOK ? st.step : KHSM_ROLL_IDLE) {
	case KHSM_ROLL_IDLE:
		if (r == KHSM_EOK) r = roll_generate(req, st.old_key, now, res);
		break;
	case KHSM_ROLL_SUBMIT:
		r = khsm_rollover_ds(kpath, zone, st.new_key, &res->ds);
		if (r == KHSM_EOK) {
			r = roll_parent(req, st.new_key, &res->parent);
		}
		/* Online the switch is now: a future active would be cleared, and
		 * the old KSK goes on signing the DNSKEY set (roll_stop_old()). */
		int64_t switch_at = req->online ? now : settle;
		if (r == KHSM_EOK && res->parent.servers > 0 &&
		    res->parent.with_key == res->parent.servers) {
			r = khsm_rollover_set_timer(kpath, zone, st.new_key->id, "active", switch_at);
			if (r == KHSM_EOK) r = roll_stop_old(req, st.old_key, switch_at);
			if (r == KHSM_EOK) {
				res->did = KHSM_ROLL_DID_SWITCH;
				res->step = KHSM_ROLL_SWITCHING;
				res->at = switch_at;
			}
		}
		break;
	case KHSM_ROLL_WITHDRAW:
		r = khsm_rollover_ds(kpath, zone, st.old_key, &res->ds);
		if (r == KHSM_EOK) {
			r = roll_parent(req, st.old_key, &res->parent);
		}
		if (r == KHSM_EOK && res->parent.servers > 0 && res->parent.with_key == 0) {
			/* online the far retire of roll_stop_old() comes down first
			 * (keymgr wants retire <= remove) */
			if (req->online) {
				r = khsm_rollover_set_timer(kpath, zone, st.old_key->id, "retire", settle);
			}
			if (r == KHSM_EOK) {
				r = khsm_rollover_set_timer(kpath, zone, st.old_key->id, "remove", settle);
			}
			if (r == KHSM_EOK) {
				res->did = KHSM_ROLL_DID_REMOVE;
				res->step = KHSM_ROLL_REMOVING;
				res->at = settle;
			}
		}
		break;
	case KHSM_ROLL_REMOVED:
		if (req->delete_old) {
			r = roll_delete(req, st.old_key, res);
			if (r == KHSM_EOK) res->did = KHSM_ROLL_DID_DELETE;
		}
		break;
	case KHSM_ROLL_PUBLISHED:
	case KHSM_ROLL_SWITCHING:
	case KHSM_ROLL_REMOVING:
		break;
	}
	if (r == KHSM_EOK && !req->online && st.new_key &&
	    (res->did == KHSM_ROLL_DID_SWITCH || st.step >= KHSM_ROLL_SWITCHING)) {
		r = roll_follow_card(req, st.new_key, res);
	}
	free(keys);
	return r;
}

_public_
void khsm_rollover_result_clear(khsm_roll_result_t *res)
{
	if (res) {
		free(res->ds);
		res->ds = NULL;
		khsm_rollover_parent_clear(&res->parent);
	}
}
