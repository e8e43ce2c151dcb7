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
#include "lib/enroll.h"
#include "lib/error.h"
#include "lib/knot.h"
#include "lib/display.h"
#include "lib/parent.h"
#include "lib/policy.h"
#include "lib/dname.h"
#include "lib/rollover.h"
#include "lib/standby.h"
#include "lib/timefmt.h"
#include "zonecmd.h"

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

static void ceremony_hint(const roll_run_t *rr, const char *zone)
{
	if (rr->offline) {
		printf("%s: the change reaches the DNSKEY sets with the next ceremony: knot-hsm -c %s %s "
		       "ceremony\n", zone, khsm_conf_path(rr->zconf), zone);
	} else {
		zone_reload_keys(rr->kconf, zone, stdout);
	}
}

/* Print what a run did and what waits. */
static void print_step(const roll_run_t *rr, const char *zone, const khsm_roll_result_t *res)
{
	char a[32], b[32];
	khsm_time_iso(res->since, a, sizeof(a));
	khsm_time_iso(res->at, b, sizeof(b));
	const khsm_roll_parent_t *p = &res->parent;
	if (p->parent) {
		printf("%s: parent zone %s: %zu server address%s\n", zone, p->parent, p->servers,
		       p->servers == 1 ? "" : "es");
	}
	if (res->repaired) {
		printf("%s: the old KSK %s's retire timer, left unset by an interrupted run, is set\n",
		       zone, res->old_id);
	}
	switch (res->did) {
	case KHSM_ROLL_DID_GENERATE:
	case KHSM_ROLL_DID_ADOPT:
		if (res->did == KHSM_ROLL_DID_ADOPT) {
			printf("%s: '%s' is on the card from an interrupted run: adopted\n", zone,
			       res->label);
		}
		printf("%s: step published: new KSK %s (label '%s') published from %s; waits until %s "
		       "(DNSKEY TTL + propagation delay), then submit its DS\n", zone, res->new_id,
		       res->label, a, b);
		ceremony_hint(rr, zone);
		return;
	case KHSM_ROLL_DID_SWITCH:
		printf("%s: submit this DS: %s\n", zone, res->ds);
		printf("%s: step switching: the new DS is at all %zu parent server(s); the new KSK %s "
		       "signs and the old one %s stops from %s\n", zone, p->servers, res->new_id,
		       res->old_id, b);
		ceremony_hint(rr, zone);
		return;
	case KHSM_ROLL_DID_REMOVE:
		printf("%s: withdraw the old DS: %s\n", zone, res->ds);
		printf("%s: step removing: no parent server has the old DS; the old KSK %s leaves the "
		       "DNSKEY set at %s\n", zone, res->old_id, b);
		ceremony_hint(rr, zone);
		return;
	case KHSM_ROLL_DID_DELETE:
		if (res->card_missed) {
			printf("%s: old KSK %s deleted from KASP; no card here holds it (a lost card), so "
			       "nothing was deleted on a card\n", zone, res->old_id);
		} else {
			printf("%s: old KSK %s deleted from KASP and from the card\n", zone, res->old_id);
		}
		printf("%s: rollover done: KSK %s signs alone\n", zone, res->new_id);
		return;
	case KHSM_ROLL_DID_NOTHING:
		break;
	}
	switch (res->step) {
	case KHSM_ROLL_PUBLISHED:
		printf("%s: step published: new KSK %s (tag %u) published since %s; waits until %s\n",
		       zone, res->new_id, res->new_tag, a, b);
		break;
	case KHSM_ROLL_SUBMIT:
		printf("%s: submit this DS: %s\n", zone, res->ds);
		printf("%s: step submit since %s: waits for the parent: %zu of %zu server(s) have the "
		       "new DS (tag %u); lacking it: %s\n", zone, a, p->with_key, p->servers, p->tag,
		       p->without ? p->without : "none");
		break;
	case KHSM_ROLL_SWITCHING:
		printf("%s: step switching: the new KSK %s signs from %s\n", zone, res->new_id, b);
		break;
	case KHSM_ROLL_WITHDRAW:
		printf("%s: withdraw the old DS: %s\n", zone, res->ds);
		printf("%s: step withdraw since %s: waits for the parent: %zu of %zu server(s) still "
		       "have the old DS (tag %u): %s\n", zone, a, p->with_key, p->servers, p->tag,
		       p->with ? p->with : "none");
		break;
	case KHSM_ROLL_REMOVING:
		printf("%s: step removing: the old KSK %s leaves the DNSKEY set at %s\n", zone,
		       res->old_id, b);
		break;
	case KHSM_ROLL_REMOVED:
		printf("%s: rollover done: KSK %s signs alone; the old KSK %s is out of the DNSKEY set "
		       "but still in KASP and on the card (delete-old=yes deletes it; a new rollover "
		       "starts after that)\n", zone, res->new_id, res->old_id);
		break;
	case KHSM_ROLL_IDLE:
		break;
	}
}

static void print_result(const roll_run_t *rr, const char *zone, const khsm_roll_result_t *res)
{
	print_step(rr, zone, res);
	if (res->policy_keystore[0]) {
		printf("%s: the KSK side's policy in %s now names keystore %s, the new KSK's card: "
		       "ceremonies log in to it, and to the old card only while the old KSK signs\n",
		       zone, khsm_conf_path(rr->kconf), res->policy_keystore);
	}
	if (res->policy_note[0]) printf("%s: note: %s\n", zone, res->policy_note);
}

static int roll_zone(roll_run_t *rr, const char *zone_arg)
{
	_cleanup_zone_ khsm_zone_t zone = { 0 };
	int r = khsm_zone_resolve(rr->kconf, zone_arg, rr->keystore, &zone);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	khsm_enroll_t enroll = { .conf_arg = rr->cli->conf, .force = rr->cli->force,
	                         .open = cli_open_card, .open_ctx = rr->cli };
	r = khsm_zone_key_algorithm(&zone, rr->algorithm, &enroll.algorithm);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	if (enroll.algorithm == 8 || enroll.algorithm == 10) enroll.bits = 2048;
	khsm_roll_req_t req = { .kconf = rr->kconf, .zone = &zone, .servers = rr->servers,
	                        .server_count = rr->server_count, .delete_old = rr->delete_old,
	                        .online = !rr->offline, .enroll = &enroll };
	r = khsm_rollover_delays(rr->zconf, zone.name, rr->offline, &req.delays);
	if (r != KHSM_EOK) return cli_error(r, "%s: the policy's delays", zone.name);
	khsm_roll_result_t res = { 0 };
	r = khsm_rollover_advance(&req, (int64_t)time(NULL), &res);
	int rc = CLI_OK;
	if (r != KHSM_EOK) {
		rc = cli_error(r, "%s: rollover", zone.name);
	} else {
		print_result(rr, zone.name, &res);
	}
	khsm_rollover_result_clear(&res);
	return rc;
}

/* The new KSK must be on a card that signs: offline the ceremony's, online
 * one of the policy's keystores. */
static int check_keystore(const roll_run_t *rr, const char *zone_arg)
{
	_cleanup_zone_ khsm_zone_t zone = { 0 };
	int r = khsm_zone_resolve(rr->kconf, zone_arg, rr->keystore, &zone);
	if (r == KHSM_EOK) r = khsm_rollover_keystore_check(&zone, khsm_conf_path(rr->zconf), !rr->offline);
	return r == KHSM_EOK ? CLI_OK : cli_error(r, NULL);
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

/* -c (knotd's knot.conf) and, offline, the KSK side (ksk-conf= or the
 * one next to it) into rr; *zconf_ptr and *kconf_ptr hold what was loaded. */
static int open_sides(cli_t *cli, const char *ksk_conf, roll_run_t *rr, khsm_conf_t **zconf_ptr,
                      khsm_conf_t **kconf_ptr)
{
	int r = khsm_conf_load(zone_conf_path(cli), zconf_ptr);
	if (r != KHSM_EOK) return cli_error(r, "%s", zone_conf_path(cli));
	const khsm_conf_t *zconf = *zconf_ptr;
	rr->zconf = zconf;
	/* Offline mode when the first zone's policy on this side is offline-ksk. */
	const khsm_conf_zone_t *z0 = khsm_conf_zone_find(zconf, cli->zones[0]);
	const khsm_conf_policy_t *p0 = NULL;
	if (z0 && khsm_conf_zone_policy(zconf, z0, &p0) != KHSM_EOK) {
		khsm_err_clear();
		p0 = NULL;
	}
	rr->offline = p0 && p0->offline_ksk;
	if (!rr->offline) {
		rr->kconf = *zconf_ptr;
		return CLI_OK;
	}
	_cleanup_free_ char *kpath = ksk_conf ? strdup(ksk_conf) : ksk_side_path(khsm_conf_path(zconf));
	if (!kpath) return cli_error(KHSM_ENOMEM, NULL);
	if (access(kpath, R_OK) != 0) {
		khsm_err_detail("no KSK-side configuration %s (%s); name it with ksk-conf=PATH", kpath,
		                strerror(errno));
		return cli_error(KHSM_ENOENT, NULL);
	}
	if ((r = khsm_conf_load(kpath, kconf_ptr)) != KHSM_EOK) return cli_error(r, "%s", kpath);
	rr->kconf = *kconf_ptr;
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
	if ((rc = open_sides(cli, kv_get(kv, "ksk-conf"), &rr, &zconf, &kconf)) != CLI_OK) goto fail;
	/* every zone checked before the first one changes */
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		rc = check_keystore(&rr, cli->zones[i]);
	}
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		rc = roll_zone(&rr, cli->zones[i]);
	}
fail:
	khsm_servers_free(rr.servers, rr.server_count ? rr.server_count : (rr.servers ? 1 : 0));
	return rc;
}

/* -- standby and failover (lib/standby.c) ----------------------------------- */

/* standby and failover: offline (Knot 3.2-3.4, the KSK side) and online
 * (Knot 3.5, knotd's KASP; the standby's card among the policy's keystores,
 * so that knotd signs with it after the failover). */
static int standby_open(cli_t *cli, const kv_t *kv, roll_run_t *rr, khsm_conf_t **zconf_ptr,
                        khsm_conf_t **kconf_ptr)
{
	rr->cli = cli;
	rr->keystore = kv_get(kv, "keystore");
	if (!rr->keystore) {
		return cli_usage_error(cli_current, "keystore=ID is required: the keystore of the "
		                       "second card");
	}
	int rc = open_sides(cli, kv_get(kv, "ksk-conf"), rr, zconf_ptr, kconf_ptr);
	for (int i = 0; i < cli->zone_count && rc == CLI_OK && !rr->offline; i++) {
		rc = check_keystore(rr, cli->zones[i]);
	}
	return rc;
}

static int standby_zone(roll_run_t *rr, const char *zone_arg, bool failover)
{
	_cleanup_zone_ khsm_zone_t zone = { 0 };
	int r = khsm_zone_resolve(rr->kconf, zone_arg, rr->keystore, &zone);
	if (r != KHSM_EOK) return cli_error(r, NULL);
	khsm_enroll_t enroll = { .conf_arg = rr->cli->conf, .force = rr->cli->force,
	                         .open = cli_open_card, .open_ctx = rr->cli };
	if (!failover) {
		r = khsm_zone_key_algorithm(&zone, rr->algorithm, &enroll.algorithm);
		if (r != KHSM_EOK) return cli_error(r, NULL);
		if (enroll.algorithm == 8 || enroll.algorithm == 10) enroll.bits = 2048;
	}
	khsm_standby_req_t req = { .kconf = rr->kconf, .zone = &zone, .enroll = &enroll,
	                           .offline = rr->offline };
	r = khsm_rollover_delays(rr->zconf, zone.name, rr->offline, &req.delays);
	if (r != KHSM_EOK) return cli_error(r, "%s: the policy's delays", zone.name);
	khsm_standby_result_t res = { 0 };
	r = failover ? khsm_standby_failover(&req, (int64_t)time(NULL), &res)
	             : khsm_standby_make(&req, (int64_t)time(NULL), &res);
	if (r != KHSM_EOK) {
		khsm_standby_result_clear(&res);
		return cli_error(r, "%s: %s", zone.name, failover ? "failover" : "standby");
	}
	char at[32];
	khsm_time_iso(res.at, at, sizeof(at));
	const char *z = zone.name;
	switch (res.did) {
	case KHSM_STANDBY_DID_ADOPT:
		printf("%s: '%s' is on the card from an interrupted run: adopted\n", z, res.label);
		/* fall through */
	case KHSM_STANDBY_DID_GENERATE:
		printf("%s: standby KSK %s (tag %u, label '%s') on keystore %s, published from %s; it "
		       "never signs\n", z, res.id, res.tag, res.label, zone.keystore->id, at);
		break;
	case KHSM_STANDBY_DID_NOTHING:
		if (!failover) {
			printf("%s: standby KSK %s (tag %u) published since %s: nothing to do\n", z, res.id,
			       res.tag, at);
		} else {
			printf("%s: failover done already: KSK %s (tag %u) signs from %s\n", z, res.id,
			       res.tag, at);
		}
		break;
	case KHSM_STANDBY_DID_FAILOVER:
	case KHSM_STANDBY_DID_COMPLETE:
		printf("%s: failover: the standby KSK %s (tag %u) on keystore %s signs from %s", z, res.id,
		       res.tag, zone.keystore->id, at);
		if (res.lost_id[0]) {
			printf("; KSK %s (tag %u) stops and leaves the DNSKEY set then", res.lost_id,
			       res.lost_tag);
		}
		printf("; no parent change: the standby's DS is there already\n");
		break;
	}
	if (!failover && res.ds) {
		printf("%s: give the parent this DS beside the active one: %s\n", z, res.ds);
	}
	if (res.policy_changed) {
		printf("the KSK side's policy (%s) now names keystore %s: ceremonies log in to and sign "
		       "with that card; name it in later policy runs (keystore=%s)\n",
		       khsm_conf_path(rr->kconf), zone.keystore->id, zone.keystore->id);
	}
	if (res.did != KHSM_STANDBY_DID_NOTHING) ceremony_hint(rr, z);
	khsm_standby_result_clear(&res);
	return CLI_OK;
}

int cmd_standby(cli_t *cli)
{
	kv_t kv[] = { { "keystore", NULL }, { "algorithm", NULL }, { "ksk-conf", NULL },
	              { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	roll_run_t rr = { .algorithm = kv_get(kv, "algorithm") };
	_cleanup_conf_ khsm_conf_t *zconf = NULL;
	_cleanup_conf_ khsm_conf_t *kconf = NULL;
	if ((rc = standby_open(cli, kv, &rr, &zconf, &kconf)) != CLI_OK) return rc;
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		rc = standby_zone(&rr, cli->zones[i], false);
	}
	return rc;
}

/* Online, before any keymgr run: the policy stops listing the lost card's
 * keystore (keymgr and knotd refuse a policy with a keystore whose token is
 * gone), knotd reads it again, and the run goes on with the new files. */
static int online_drop_lost(cli_t *cli, roll_run_t *rr, khsm_conf_t **zconf_ptr)
{
	_cleanup_free_ char *include = khsm_policy_include(zone_conf_path(cli));
	if (!include) return cli_error(KHSM_ENOMEM, NULL);
	char dropped[512];
	int r = khsm_standby_online_drop_lost(include, rr->zconf, rr->keystore, dropped, sizeof(dropped));
	if (r == KHSM_ENOENT) {
		khsm_err_clear();
		return CLI_OK;   /* the policy is elsewhere: nothing knot-hsm may rewrite */
	}
	if (r != KHSM_EOK) return cli_error(r, "%s", include);
	if (!dropped[0]) return CLI_OK;
	printf("the policy in %s: %s; the card is gone (knotd and keymgr refuse a policy keystore "
	       "whose token is not there)\n", include, dropped);
	r = khsm_knotc_reload(rr->zconf);
	if (r == KHSM_EOK) {
		printf("knotd: reload done\n");
	} else if (r != KHSM_ENOENT) {
		/* knotd would go on with the lost card: stop here, the rewrite stands */
		khsm_err_prefix("knotc reload (the policy is rewritten; reload knotd, then the failover "
		                "again): ");
		return cli_error(r, NULL);
	}
	khsm_err_clear();
	khsm_conf_t *fresh = NULL;
	if ((r = khsm_conf_load(zone_conf_path(cli), &fresh)) != KHSM_EOK) {
		return cli_error(r, "%s", zone_conf_path(cli));
	}
	khsm_conf_free(*zconf_ptr);
	*zconf_ptr = fresh;
	rr->zconf = rr->kconf = fresh;
	return CLI_OK;
}

int cmd_failover(cli_t *cli)
{
	kv_t kv[] = { { "keystore", NULL }, { "ksk-conf", NULL }, { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	roll_run_t rr = { 0 };
	_cleanup_conf_ khsm_conf_t *zconf = NULL;
	_cleanup_conf_ khsm_conf_t *kconf = NULL;
	if ((rc = standby_open(cli, kv, &rr, &zconf, &kconf)) != CLI_OK) return rc;
	if (!khsm_conf_keystore_find(rr.kconf, rr.keystore)) {
		khsm_err_detail("%s names no keystore %s: the standby's card must be a keystore of the KSK "
		                "side", khsm_conf_path(rr.kconf), rr.keystore);
		return cli_error(KHSM_ECONFIG, NULL);
	}
	if (!rr.offline && (rc = online_drop_lost(cli, &rr, &zconf)) != CLI_OK) return rc;
	/* every zone of the KSK side's policy, before any timer changes */
	char **zones = calloc((size_t)cli->zone_count + 1, sizeof(*zones));
	if (!zones) return cli_error(KHSM_ENOMEM, NULL);
	int r = KHSM_EOK;
	for (int i = 0; i < cli->zone_count && r == KHSM_EOK; i++) {
		r = khsm_zone_normalize(cli->zones[i], &zones[i]);
		if (r != KHSM_EOK) rc = cli_error(r, "zone '%s'", cli->zones[i]);
	}
	if (rc == CLI_OK && rr.offline &&
	    (r = khsm_standby_failover_zones(rr.kconf, zones, (size_t)cli->zone_count)) != KHSM_EOK) {
		rc = cli_error(r, NULL);
	}
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		rc = standby_zone(&rr, zones[i], true);
	}
	for (int i = 0; i < cli->zone_count; i++) free(zones[i]);
	free(zones);
	return rc;
}
