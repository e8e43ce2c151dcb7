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
#include "lib/parent.h"
#include "lib/rollover.h"
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
static void print_result(const roll_run_t *rr, const char *zone, const khsm_roll_result_t *res)
{
	char a[32], b[32];
	khsm_time_iso(res->since, a, sizeof(a));
	khsm_time_iso(res->at, b, sizeof(b));
	const khsm_roll_parent_t *p = &res->parent;
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
		printf("%s: old KSK %s deleted from KASP and from the card\n", zone, res->old_id);
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
		       "new DS (tag %u)\n", zone, a, p->with_key, p->servers, p->tag);
		break;
	case KHSM_ROLL_SWITCHING:
		printf("%s: step switching: the new KSK %s signs from %s\n", zone, res->new_id, b);
		break;
	case KHSM_ROLL_WITHDRAW:
		printf("%s: withdraw the old DS: %s\n", zone, res->ds);
		printf("%s: step withdraw since %s: waits for the parent: %zu of %zu server(s) still "
		       "have the old DS (tag %u)\n", zone, a, p->with_key, p->servers, p->tag);
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
	                        .enroll = &enroll };
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
