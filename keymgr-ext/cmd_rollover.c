/* rollover: parse, read where the zone stands (lib/rollover.c), make the one
 * change that is safe now (generate, a timer, the parent asked, a delete),
 * print the step and what waits. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "lib/ceremony.h"
#include "lib/enroll.h"
#include "lib/error.h"
#include "lib/kasp.h"
#include "lib/knot.h"
#include "lib/parent.h"
#include "lib/policy.h"
#include "lib/rollover.h"
#include "zonecmd.h"

static void iso(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* What one run needs besides the arguments. */
typedef struct {
	cli_t *cli;
	const khsm_conf_t *zconf;   /* -c: knotd's knot.conf (ZSK side offline) */
	khsm_conf_t *kconf;         /* where the KSK's KASP lives (the KSK side offline) */
	bool offline;
	const char *keystore;       /* keystore= */
	const char *algorithm;      /* algorithm= */
	bool delete_old;
	khsm_server_t *servers;
	size_t server_count;
} roll_run_t;

static int64_t policy_secs(const char *text, int64_t dflt)
{
	int64_t v = 0;
	if (text && khsm_duration_parse(text, &v) == KHSM_EOK) return v;
	return dflt;
}

/* The delays of the policy knotd serves the zone with (the ZSK side in
 * offline mode), Knot's defaults where it leaves one unset. */
static void zone_delays(const khsm_conf_t *zconf, const char *zone, khsm_roll_delays_t *d)
{
	const khsm_conf_zone_t *z = khsm_conf_zone_find(zconf, zone);
	const khsm_conf_policy_t *p = NULL;
	if (z && khsm_conf_zone_policy(zconf, z, &p) != KHSM_EOK) {
		khsm_err_clear();
		p = NULL;
	}
	d->dnskey_ttl = policy_secs(p ? p->dnskey_ttl : NULL, 3600);
	d->propagation_delay = policy_secs(p ? p->propagation_delay : NULL, 3600);
	/* The parent's DS TTL is taken not to exceed the zone's max TTL. */
	int64_t max_ttl = policy_secs(p ? p->zone_max_ttl : NULL, 86400);
	d->ds_ttl = max_ttl > d->dnskey_ttl ? max_ttl : d->dnskey_ttl;
}

static void ceremony_hint(const roll_run_t *rr, const char *zone)
{
	if (rr->offline) {
		printf("%s: the change reaches the DNSKEY sets with the next ceremony: knot-hsm -c %s %s "
		       "ceremony\n", zone, khsm_conf_path(rr->zconf), zone);
	} else {
		zone_reload_keys(rr->kconf, zone);
	}
}

static int set_timer(const roll_run_t *rr, const char *zone, const khsm_kasp_key_t *k,
                     const char *timer, int64_t at)
{
	int r = khsm_rollover_set_timer(khsm_conf_path(rr->kconf), zone, k->id, timer, at);
	if (r != KHSM_EOK) return cli_error(r, "keymgr %s set %s %s", zone, k->id, timer);
	return CLI_OK;
}

/* Step 1: the new KSK on the card, published from `from`, ready once its
 * DNSKEY has reached every cache. */
static int start(const roll_run_t *rr, const khsm_zone_t *zone, const khsm_roll_delays_t *d,
                 const khsm_kasp_key_t *old, int64_t now)
{
	int64_t publish = khsm_rollover_when(d, now);
	int64_t ready = publish + d->dnskey_ttl + d->propagation_delay;
	char pub_w[48], ready_w[48];
	snprintf(pub_w, sizeof(pub_w), "publish=%" PRId64, publish);
	snprintf(ready_w, sizeof(ready_w), "ready=%" PRId64, ready);
	const char *timers[] = { pub_w, ready_w, "active=0", NULL };
	khsm_enroll_t req = { .ksk = true, .timers = timers, .conf_arg = rr->cli->conf,
	                      .force = rr->cli->force, .open = cli_open_card, .open_ctx = rr->cli };
	int r = khsm_zone_key_algorithm(zone, rr->algorithm, &req.algorithm);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	if (req.algorithm == 8 || req.algorithm == 10) req.bits = 2048;
	/* Label "<zone> KSK after <old tag>": one per rollover, the same in a
	 * rerun, so that a pair a killed run left on the card is adopted. */
	char label[300];
	snprintf(label, sizeof(label), "%s KSK after %u", zone->name, old->tag);
	req.label = label;
	printf("%s: generating the new KSK on keystore %s (label '%s')...\n", zone->name,
	       zone->keystore->id, label);
	fflush(stdout);
	khsm_enrolled_t out = { 0 };
	r = khsm_zone_key_generate(rr->kconf, zone, &req, &out);
	if (r == KHSM_EEXIST) {
		/* made on the card by an interrupted run, never registered */
		khsm_err_clear();
		khsm_enrolled_clear(&out);
		out = (khsm_enrolled_t) { 0 };
		printf("%s: '%s' is on the card from an interrupted run: adopting it\n", zone->name,
		       label);
		req.algorithm = 0;
		req.bits = 0;
		r = khsm_zone_key_import(rr->kconf, zone, &req, &out);
	}
	if (r != KHSM_EOK) {
		khsm_enrolled_clear(&out);
		return cli_error(r, "generate the new KSK");
	}
	char a[32], b[32];
	iso(publish, a, sizeof(a));
	iso(ready, b, sizeof(b));
	printf("%s: step published: new KSK %s published from %s; waits until %s (DNSKEY TTL + "
	       "propagation delay), then submit its DS\n", zone->name, out.id_hex, a, b);
	khsm_enrolled_clear(&out);
	ceremony_hint(rr, zone->name);
	return CLI_OK;
}

static int ask_parent(const roll_run_t *rr, const char *zone, const khsm_kasp_key_t *k,
                      khsm_roll_parent_t *p)
{
	int r = khsm_rollover_parent(khsm_conf_path(rr->kconf), zone, k, rr->servers,
	                             rr->server_count, p);
	if (r != KHSM_EOK) return cli_error(r, "%s: the parent's DS", zone);
	return CLI_OK;
}

static int print_ds(const roll_run_t *rr, const char *zone, const khsm_kasp_key_t *k,
                    const char *what)
{
	_cleanup_free_ char *ds = NULL;
	int r = khsm_rollover_ds(khsm_conf_path(rr->kconf), zone, k, &ds);
	if (r != KHSM_EOK) return cli_error(r, "%s: DS of KSK %s", zone, k->id);
	printf("%s: %s: %s\n", zone, what, ds);
	return CLI_OK;
}

/* Delete the old KSK (delete-old=yes): KASP and the card, after one login. */
static int delete_old(const roll_run_t *rr, const khsm_zone_t *zone, const khsm_kasp_key_t *k)
{
	_cleanup_pin_ khsm_pin_t *pin = NULL;
	khsm_keystore_t *ks = NULL;
	int r = cli_open_card(rr->cli, zone->keystore->config, &pin, &ks);
	khsm_keystore_close(ks);
	if (r != KHSM_EOK) return cli_error(r, "keystore %s", zone->keystore->id);
	r = khsm_rollover_delete(khsm_conf_path(rr->kconf), zone->name, k->id);
	if (r != KHSM_EOK) return cli_error(r, "keymgr %s delete %s", zone->name, k->id);
	printf("%s: old KSK %s deleted from KASP and from the card\n", zone->name, k->id);
	return CLI_OK;
}

static int roll_zone(roll_run_t *rr, const char *zone_arg)
{
	_cleanup_zone_ khsm_zone_t zone = { 0 };
	int r = khsm_zone_resolve(rr->kconf, zone_arg, rr->keystore, &zone);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	const char *kpath = khsm_conf_path(rr->kconf);
	int64_t now = (int64_t)time(NULL);
	khsm_roll_delays_t d = { 0 };
	zone_delays(rr->zconf, zone.name, &d);
	if (rr->offline) {
		khsm_offline_period_t period = { 0 };
		r = khsm_offline_period(khsm_conf_path(rr->zconf), zone.name, &period);
		if (r != KHSM_EOK) return cli_error(r, "%s: the pre-signed period", zone.name);
		d.signed_until = period.present ? period.end : 0;
	}
	_cleanup_free_ khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	r = khsm_keymgr_list(kpath, zone.name, &keys, &n);
	if (r != KHSM_EOK) return cli_error(r, "keymgr %s list", zone.name);
	khsm_roll_t st = { 0 };
	r = khsm_rollover_plan(keys, n, now, &st);
	if (r != KHSM_EOK) return cli_error(r, "%s", zone.name);

	char a[32], b[32];
	iso(st.since, a, sizeof(a));
	iso(st.at, b, sizeof(b));
	int64_t settle = d.ds_ttl + d.propagation_delay;
	khsm_roll_parent_t p = { 0 };
	int rc = CLI_OK;
	switch (st.step) {
	case KHSM_ROLL_IDLE:
		return start(rr, &zone, &d, st.old_key, now);
	case KHSM_ROLL_PUBLISHED:
		printf("%s: step published: new KSK %s (tag %u) published since %s; waits until %s\n",
		       zone.name, st.new_key->id, st.new_key->tag, a, b);
		return CLI_OK;
	case KHSM_ROLL_SUBMIT:
		if ((rc = print_ds(rr, zone.name, st.new_key, "submit this DS")) != CLI_OK) return rc;
		if ((rc = ask_parent(rr, zone.name, st.new_key, &p)) != CLI_OK) return rc;
		if (p.with_key < p.servers || p.servers == 0) {
			printf("%s: step submit since %s: waits for the parent: %zu of %zu server(s) have "
			       "the new DS (tag %u)\n", zone.name, a, p.with_key, p.servers, p.tag);
			return CLI_OK;
		} else {
			int64_t at = khsm_rollover_when(&d, now + settle);
			if ((rc = set_timer(rr, zone.name, st.new_key, "active", at)) != CLI_OK ||
			    (rc = set_timer(rr, zone.name, st.old_key, "retire", at)) != CLI_OK) {
				return rc;
			}
			iso(at, b, sizeof(b));
			printf("%s: step switching: the new DS is at all %zu parent server(s); the new KSK "
			       "%s signs and the old one %s stops from %s\n", zone.name, p.servers,
			       st.new_key->id, st.old_key->id, b);
			ceremony_hint(rr, zone.name);
		}
		return CLI_OK;
	case KHSM_ROLL_SWITCHING:
		if (st.repair && (rc = set_timer(rr, zone.name, st.old_key, "retire",
		                                 st.new_key->active)) != CLI_OK) {
			return rc;
		}
		printf("%s: step switching: the new KSK %s signs from %s\n", zone.name, st.new_key->id, b);
		return CLI_OK;
	case KHSM_ROLL_WITHDRAW:
		if (st.repair && (rc = set_timer(rr, zone.name, st.old_key, "retire",
		                                 st.new_key->active)) != CLI_OK) {
			return rc;
		}
		if ((rc = print_ds(rr, zone.name, st.old_key, "withdraw the old DS")) != CLI_OK) return rc;
		if ((rc = ask_parent(rr, zone.name, st.old_key, &p)) != CLI_OK) return rc;
		if (p.with_key > 0 || p.servers == 0) {
			printf("%s: step withdraw since %s: waits for the parent: %zu of %zu server(s) still "
			       "have the old DS (tag %u)\n", zone.name, a, p.with_key, p.servers, p.tag);
			return CLI_OK;
		} else {
			int64_t at = khsm_rollover_when(&d, now + settle);
			if ((rc = set_timer(rr, zone.name, st.old_key, "remove", at)) != CLI_OK) return rc;
			iso(at, b, sizeof(b));
			printf("%s: step removing: no parent server has the old DS; the old KSK %s leaves "
			       "the DNSKEY set at %s\n", zone.name, st.old_key->id, b);
			ceremony_hint(rr, zone.name);
		}
		return CLI_OK;
	case KHSM_ROLL_REMOVING:
		printf("%s: step removing: the old KSK %s leaves the DNSKEY set at %s\n", zone.name,
		       st.old_key->id, b);
		return CLI_OK;
	case KHSM_ROLL_REMOVED:
		if (rr->delete_old) {
			if ((rc = delete_old(rr, &zone, st.old_key)) != CLI_OK) return rc;
			printf("%s: rollover done: KSK %s signs alone\n", zone.name, st.new_key->id);
		} else {
			printf("%s: rollover done: KSK %s signs alone; the old KSK %s is out of the DNSKEY "
			       "set but still in KASP and on the card (delete-old=yes deletes it; a new "
			       "rollover starts after that)\n", zone.name, st.new_key->id, st.old_key->id);
		}
		return CLI_OK;
	}
	return CLI_OK;
}

static int parse_servers(roll_run_t *rr, const char *server_arg)
{
	if (!server_arg) return CLI_OK;
	rr->servers = calloc(1, sizeof(*rr->servers));
	if (!rr->servers) return cli_error(KHSM_ENOMEM, NULL);
	int r = khsm_server_parse(server_arg, rr->servers);
	if (r != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		return cli_usage_error(cli_current, "server=%s", d ? d : khsm_strerror(r));
	}
	rr->server_count = 1;
	return CLI_OK;
}

int cmd_rollover(cli_t *cli)
{
	kv_t kv[] = { { "keystore", NULL }, { "algorithm", NULL }, { "delete-old", NULL },
	              { "server", NULL }, { "ksk-conf", NULL }, { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	roll_run_t rr = { .cli = cli, .keystore = kv_get(kv, "keystore"),
	                  .algorithm = kv_get(kv, "algorithm") };
	if (kv_get(kv, "delete-old") &&
	    kv_bool("delete-old", kv_get(kv, "delete-old"), &rr.delete_old) != CLI_OK) {
		return CLI_USAGE;
	}
	_cleanup_conf_ khsm_conf_t *zconf = NULL;
	_cleanup_conf_ khsm_conf_t *kconf = NULL;
	if ((rc = parse_servers(&rr, kv_get(kv, "server"))) != CLI_OK) goto fail;
	int r = khsm_conf_load(zone_conf_path(cli), &zconf);
	if (r != KHSM_EOK) {
		rc = cli_error(r, "%s", zone_conf_path(cli));
		goto fail;
	}
	rr.zconf = zconf;
	/* Offline mode when the first zone's policy on this side is offline-ksk. */
	const khsm_conf_zone_t *z0 = khsm_conf_zone_find(zconf, cli->zones[0]);
	const khsm_conf_policy_t *p0 = NULL;
	if (z0 && khsm_conf_zone_policy(zconf, z0, &p0) != KHSM_EOK) {
		khsm_err_clear();
		p0 = NULL;
	}
	rr.offline = p0 && p0->offline_ksk;
	if (rr.offline) {
		_cleanup_free_ char *kpath = kv_get(kv, "ksk-conf") ? strdup(kv_get(kv, "ksk-conf"))
		                                                   : ksk_side_path(khsm_conf_path(zconf));
		if (!kpath) {
			rc = cli_error(KHSM_ENOMEM, NULL);
			goto fail;
		}
		if (access(kpath, R_OK) != 0) {
			khsm_err_detail("no KSK-side configuration %s (%s); name it with ksk-conf=PATH",
			                kpath, strerror(errno));
			rc = cli_error(KHSM_ENOENT, NULL);
			goto fail;
		}
		if ((r = khsm_conf_load(kpath, &kconf)) != KHSM_EOK) {
			rc = cli_error(r, "%s", kpath);
			goto fail;
		}
		rr.kconf = kconf;
	} else {
		rr.kconf = zconf;
	}
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		rc = roll_zone(&rr, cli->zones[i]);
	}
fail:
	khsm_servers_free(rr.servers, rr.server_count ? rr.server_count : (rr.servers ? 1 : 0));
	return rc;
}
