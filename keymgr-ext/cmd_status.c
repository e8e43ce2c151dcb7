/* status: per zone, how long the zone stays signed without the card, in the
 * style of a monitoring plugin: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
 * (also for this command's own usage errors). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "lib/display.h"
#include "lib/error.h"
#include "lib/heal.h"
#include "lib/json.h"
#include "budget_print.h"
#include "cleanup.h"
#include "lib/policy.h"
#include "lib/rollover.h"
#include "lib/status.h"
#include "lib/timefmt.h"
#include "lib/zoneconf.h"
#include "zonecmd.h"

static int parse_days(const char *opt, const char *text, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || !*text || *end || v < 0 || v > 36500) {
		fprintf(stderr, "error: %s takes a number of days, not '%s'\nusage: %s\n", opt, khsm_esc(text),
		        cli_current->synopsis);
		return -1;
	}
	*out = (int64_t)v * 86400;
	return 0;
}

static bool any_online(const khsm_zone_status_t *st, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(st[i].mode, "online") == 0) return true;
	}
	return false;
}

int cmd_status(cli_t *cli)
{
	int64_t warn = 14 * 86400, crit = 7 * 86400;
	if (cli->warn && parse_days("--warn", cli->warn, &warn) != 0) return KHSM_STATUS_UNKNOWN;
	if (cli->crit && parse_days("--crit", cli->crit, &crit) != 0) return KHSM_STATUS_UNKNOWN;
	if (crit > warn) {
		fprintf(stderr, "error: --crit (%" PRId64 " days) must not exceed --warn (%" PRId64 " days)\n"
		        "usage: %s\n", crit / 86400, warn / 86400, cli_current->synopsis);
		return KHSM_STATUS_UNKNOWN;
	}
	khsm_conf_t *conf = NULL;
	int r = khsm_conf_load(zone_conf_path(cli), &conf);
	if (r != KHSM_EOK) {
		cli_error(r, "%s", zone_conf_path(cli));
		return KHSM_STATUS_UNKNOWN;
	}
	/* The KSK side next to knot.conf, as policy --write puts it. */
	char *ksk_path = ksk_side_path(khsm_conf_path(conf));
	khsm_conf_t *kconf = NULL;
	if (khsm_policy_ksk_side_load(ksk_path, &kconf) != KHSM_EOK) {
		kconf = NULL;
	}
	khsm_err_clear();

	/* The signed zones, or ZONE... of them; each given must be a zone of knot.conf. */
	const khsm_conf_zone_t **zones = NULL;
	size_t n = 0;
	r = khsm_conf_signed_zones(conf, (const char *const *)cli->zones, (size_t)cli->zone_count, &zones, &n);
	if (r != KHSM_EOK) {
		cli_error(r, "status");
		khsm_conf_free(conf);
		khsm_conf_free(kconf);
		free(ksk_path);
		return KHSM_STATUS_UNKNOWN;
	}
	/* several keymgr runs per zone: each reads its zone's cut (zoneconf.h) */
	bool cut = n > 1 && khsm_zoneconf_use(khsm_conf_path(conf)) == KHSM_EOK;
	bool kcut = cut && kconf && khsm_zoneconf_use(ksk_path) == KHSM_EOK;
	khsm_err_clear();
	/* Each card read once: by the zones' probes and the budget alike. */
	khsm_card_probes_t *probes = khsm_card_probes_new();
	khsm_zone_status_t *st = calloc(n ? n : 1, sizeof(*st));
	size_t count = 0;
	int64_t now = (int64_t)time(NULL);
	if (st && !cli->heal) {
		/* side by side: each zone waits for keymgr and knotc */
		khsm_zones_status(conf, kconf, ksk_path, zones, n, now, warn, crit,
		                  !cli->warn && !cli->crit, probes, st);
		for (size_t i = 0; i < n; i++) {
			if (strcmp(st[i].mode, "other") != 0) st[count++] = st[i];
		}
	}
	for (size_t i = 0; st && cli->heal && i < n; i++) {
		const khsm_conf_zone_t *z = zones[i];
		const khsm_conf_keystore_t *card = NULL;
		/* heal and the status that follows read one list of the zone's keys */
		khsm_kasp_keys_t keys = { 0 };
		bool listed = false;
		if (cli->heal && khsm_online_card(conf, z->domain, &card) == KHSM_EOK) {
			(void)khsm_kasp_keys_list(khsm_conf_path(conf), z->domain, &keys);
			listed = true;
			khsm_err_clear();
			/* Its own verdict shows in the status that follows. */
			openlog("knot-hsm", LOG_PID, LOG_DAEMON);
			(void)heal_zone(conf, z->domain, true, &keys);
			closelog();
			khsm_err_clear();
			now = time(NULL);
		}
		khsm_zone_status(conf, kconf, ksk_path, z, now, warn, crit, !cli->warn && !cli->crit,
		                 listed ? &keys : NULL, &st[count]);
		khsm_kasp_keys_clear(&keys);
		if (strcmp(st[count].mode, "other") != 0) count++;
	}
	if (cut) khsm_zoneconf_release(khsm_conf_path(conf));
	if (kcut) khsm_zoneconf_release(ksk_path);
	int worst = KHSM_STATUS_OK;
	bool any_crit = false, any_unknown = false, any_warn = false;
	for (size_t i = 0; i < count; i++) {
		any_crit |= st[i].state == KHSM_STATUS_CRIT;
		any_unknown |= st[i].state == KHSM_STATUS_UNKNOWN;
		any_warn |= st[i].state == KHSM_STATUS_WARN;
	}
	worst = any_crit ? KHSM_STATUS_CRIT : any_unknown ? KHSM_STATUS_UNKNOWN : any_warn ? KHSM_STATUS_WARN : KHSM_STATUS_OK;
	if (count == 0) worst = KHSM_STATUS_UNKNOWN;

	if (cli->json) {
		khsm_json_t j;
		khsm_json_init(&j, stdout, KHSM_JSON_LINES);
		khsm_json_object(&j, NULL);
		khsm_json_str(&j, "state", khsm_status_name(worst));
		khsm_json_int(&j, "exit", worst);
		khsm_json_int(&j, "warn_days", warn / 86400);
		khsm_json_int(&j, "crit_days", crit / 86400);
		khsm_json_array(&j, "zones");
		for (size_t i = 0; i < count; i++) {
			khsm_zone_status_t *s = &st[i];
			char a[32] = "", b[32] = "";
			if (s->period_end) khsm_time_iso(s->period_end, a, sizeof(a));
			if (s->valid_until) khsm_time_iso(s->valid_until, b, sizeof(b));
			khsm_json_object(&j, NULL);
			khsm_json_str(&j, "zone", s->zone);
			khsm_json_str(&j, "mode", s->mode);
			khsm_json_str(&j, "card_ksk", s->card_ksk);
			khsm_json_str(&j, "state", khsm_status_name(s->state));
			if (s->period_end) {
				khsm_json_int(&j, "period_end", s->period_end);
				khsm_json_str(&j, "period_end_iso", a);
				khsm_json_int(&j, "remaining_seconds", s->period_end - now);
			} else {
				khsm_json_null(&j, "period_end");
				khsm_json_null(&j, "period_end_iso");
				khsm_json_null(&j, "remaining_seconds");
			}
			if (s->valid_until) {
				khsm_json_int(&j, "valid_until", s->valid_until);
				khsm_json_str(&j, "valid_until_iso", b);
			} else {
				khsm_json_null(&j, "valid_until");
				khsm_json_null(&j, "valid_until_iso");
			}
			khsm_json_str(&j, "next_zsk_event", s->next_event[0] ? s->next_event : NULL);
			khsm_json_str(&j, "ds_at_parent", s->ds_waiting ? "waiting" : NULL);
			khsm_json_int(&j, "warn_seconds", s->warn);
			khsm_json_int(&j, "crit_seconds", s->crit);
			khsm_json_str(&j, "signing", s->signing);
			if (s->resign_at) {
				char at[32] = "";
				khsm_time_iso(s->resign_at, at, sizeof(at));
				khsm_json_int(&j, "resign_at", s->resign_at);
				khsm_json_str(&j, "resign_at_iso", at);
			} else {
				khsm_json_null(&j, "resign_at");
				khsm_json_null(&j, "resign_at_iso");
			}
			khsm_json_str(&j, "rollover", s->rollover[0] ? s->rollover : NULL);
			khsm_json_str(&j, "standby", s->standby[0] ? s->standby : NULL);
			khsm_json_str(&j, "message", s->message);
			khsm_json_end(&j);
		}
		khsm_json_end(&j);
		/* The card budget over all zones of knot.conf, each card read (no login). */
		khsm_json_array(&j, "cards");
		khsm_budget_zone_t *bz = NULL;
		size_t n_bz = 0;
		khsm_budget_t budget = { 0 };
		_cleanup_free_ char *slots = NULL;
		(void)khsm_budget_slots_read(kconf ? ksk_path : khsm_conf_path(conf), &slots);
		if (khsm_budget_zones(conf, kconf, &bz, &n_bz) == KHSM_EOK &&
		    khsm_budget_count(kconf ? kconf : conf, bz, n_bz, slots, probes, &budget) == KHSM_EOK) {
			for (size_t i = 0; i < budget.count; i++) budget_card_json(&j, NULL, &budget.cards[i]);
		}
		khsm_err_clear();
		khsm_budget_clear(&budget);
		free(bz);
		khsm_json_end(&j);
		khsm_json_end(&j);
		putchar('\n');
	} else {
		printf("%s: %zu zone(s), warn %" PRId64 " d, crit %" PRId64 " d%s",
		       worst == KHSM_STATUS_OK ? "OK" : worst == KHSM_STATUS_WARN ? "WARNING" : worst == KHSM_STATUS_CRIT ? "CRITICAL" : "UNKNOWN",
		       count, warn / 86400, crit / 86400,
		       !cli->warn && !cli->crit && any_online(st, count) ? " (online zones: from their rrsig-refresh)" : "");
		/* Perfdata for monitoring: the zone with the least time left, then each zone. */
		const khsm_zone_status_t *least = NULL;
		for (size_t i = 0; i < count; i++) {
			if (st[i].period_end && (!least || st[i].period_end < least->period_end)) least = &st[i];
		}
		if (least) {
			printf(" | remaining=%" PRId64 "s;%" PRId64 ";%" PRId64, least->period_end - now,
			       least->warn, least->crit);
			for (size_t i = 0; count > 1 && i < count; i++) {
				if (st[i].period_end) {
					printf(" 'remaining %s'=%" PRId64 "s;%" PRId64 ";%" PRId64, st[i].zone,
					       st[i].period_end - now, st[i].warn, st[i].crit);
				}
			}
		}
		putchar('\n');
		for (size_t i = 0; i < count; i++) {
			khsm_zone_status_t *s = &st[i];
			char b[32] = "-";
			if (s->valid_until) khsm_time_iso(s->valid_until, b, sizeof(b));
			printf("%s\n  state: %s\n  mode: %s\n  card KSK: %s\n  %s\n  DNSKEY signature valid until: %s\n"
			       "  next ZSK event: %s\n  DS at parent: %s knot-hsm -c %s %s submitted\n",
			       s->zone, khsm_status_name(s->state), s->mode, s->card_ksk, s->message, b,
			       s->next_event[0] ? s->next_event : "none planned",
			       s->ds_waiting ? "a KSK waits for its DS, not confirmed yet; confirm with"
			                     : "not checked; check with",
			       /* offline: the KSK and its KASP are on the KSK side */
			       s->mode && strcmp(s->mode, "offline") == 0 && ksk_path ? ksk_path : khsm_conf_path(conf),
			       s->zone);
			if (s->signing) {
				char at[32] = "";
				if (s->resign_at) khsm_time_iso(s->resign_at, at, sizeof(at));
				printf("  signing by knotd: %s%s%s\n", s->signing, s->resign_at ? " at " : "", at);
			}
			if (s->rollover[0]) printf("  KSK rollover: %s\n", s->rollover);
			if (s->standby[0]) printf("  standby KSK: %s\n", s->standby);
		}
		if (count == 0) {
			printf("no signed zone of %s uses a card KSK\n", khsm_conf_path(conf));
		}
	}
	khsm_card_probes_free(probes);
	free(st);
	free(zones);
	free(ksk_path);
	khsm_conf_free(kconf);
	khsm_conf_free(conf);
	return worst;
}
