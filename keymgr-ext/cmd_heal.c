/* heal: for each online zone (those given, else every online card zone of
 * knot.conf), restart the signing Knot did not reschedule (knotc zone-sign)
 * when the card answers again; a no-op when knotd will sign by itself. One
 * line per zone on stdout, the same line to syslog. */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "lib/dname.h"
#include "lib/error.h"
#include "lib/heal.h"
#include "lib/knot.h"
#include "lib/timefmt.h"
#include "lib/zoneconf.h"
#include "zonecmd.h"

/* One line to stdout (ok, healed) or stderr (error), and to syslog. */
static bool quiet_stdout;

static void say(int prio, const char *line)
{
	fprintf(prio <= LOG_ERR || quiet_stdout ? stderr : stdout, "%s\n", line);
	syslog(prio, "%s", line);
}

int heal_zone(const khsm_conf_t *conf, const char *zone, bool to_stderr)
{
	quiet_stdout = to_stderr;
	char line[768], a[32];
	khsm_heal_t h = { 0 };
	int r = khsm_heal(conf, zone, time(NULL), &h);
	if (r != KHSM_EOK) {
		snprintf(line, sizeof(line), "error: %s: %s", zone,
		         khsm_err_last_detail() ? khsm_err_last_detail() : khsm_strerror(r));
		say(LOG_ERR, line);
		return CLI_FAIL;
	}
	switch (h.outcome) {
	case KHSM_HEAL_NO_KNOTD:
		snprintf(line, sizeof(line), "error: %s: knotd is not running: start it (it signs the zone "
		         "when it starts)", zone);
		say(LOG_ERR, line);
		return CLI_FAIL;
	case KHSM_HEAL_SCHEDULED:
		khsm_time_iso(h.health.resign_at, a, sizeof(a));
		snprintf(line, sizeof(line), "ok: %s: signing scheduled at %s%s", zone, a,
		         h.health.card_state == KHSM_CARD_PRESENT ? "" : "; note: the card does not answer now");
		say(LOG_INFO, line);
		return CLI_OK;
	case KHSM_HEAL_NO_CARD:
		snprintf(line, sizeof(line), "error: %s: %s, and the card KSK is %s: not asking knotd to "
		         "sign (it would fail); reconnect the card (knot-hsm doctor checks it), then run "
		         "knot-hsm %s heal again", zone, h.why, khsm_card_state_name(h.health.card_state), zone);
		say(LOG_ERR, line);
		return CLI_FAIL;
	case KHSM_HEAL_SIGNED:
		break;
	}
	snprintf(a, sizeof(a), "-");
	if (h.next_at) {
		khsm_time_iso(h.next_at, a, sizeof(a));
	}
	snprintf(line, sizeof(line), "healed: %s: %s; knotc zone-sign: knotd signed the zone with the "
	         "card, next signing at %s", zone, h.why, a);
	say(LOG_NOTICE, line);
	return CLI_OK;
}

/* Without ZONE...: the signed zones of knot.conf that keep their KSK on a
 * card in online mode; the others have nothing for heal to do (offline mode:
 * knotd never signs with the card), so they are left out without a word.
 * \param[out] zones_ptr  free(); entries owned by conf */
static int online_zones(const khsm_conf_t *conf, const khsm_conf_zone_t ***zones_ptr, size_t *count_ptr)
{
	const khsm_conf_zone_t **zones = NULL;
	size_t n = 0, count = 0;
	int r = khsm_conf_signed_zones(conf, NULL, 0, &zones, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		const khsm_conf_keystore_t *card = NULL;
		if (khsm_online_card(conf, zones[i]->domain, &card) == KHSM_EOK) {
			zones[count++] = zones[i];
		}
	}
	khsm_err_clear();
	*zones_ptr = zones;
	*count_ptr = count;
	return KHSM_EOK;
}

int cmd_heal(cli_t *cli)
{
	if (cli->arg_count > 0) {
		return cli_usage_error(cli_current, "heal takes no key=value argument ('%s')", cli->args[0]);
	}
	khsm_conf_t *conf = NULL;
	int r = khsm_conf_load(zone_conf_path(cli), &conf);
	if (r != KHSM_EOK) {
		return cli_error(r, "%s", zone_conf_path(cli));
	}
	const khsm_conf_zone_t **all = NULL;
	size_t all_count = 0;
	if (cli->zone_count == 0) {
		if ((r = online_zones(conf, &all, &all_count)) != KHSM_EOK) {
			khsm_conf_free(conf);
			return cli_error(r, "%s", zone_conf_path(cli));
		}
		if (all_count == 0) {
			/* Not a failure: the timer runs heal on installs without one too. */
			printf("ok: no zone of %s keeps its KSK on a card in online mode: nothing to heal\n",
			       khsm_conf_path(conf));
			khsm_conf_free(conf);
			return CLI_OK;
		}
	}
	/* keymgr runs per zone: each reads its zone's cut (zoneconf.h) */
	size_t n = cli->zone_count ? (size_t)cli->zone_count : all_count;
	bool cut = n > 1 && khsm_zoneconf_use(khsm_conf_path(conf)) == KHSM_EOK;
	khsm_err_clear();
	openlog("knot-hsm", LOG_PID, LOG_DAEMON);
	int rc = CLI_OK;
	for (size_t i = 0; i < n; i++) {
		char *zone = NULL;
		const char *name = cli->zone_count ? cli->zones[i] : all[i]->domain;
		if (khsm_zone_normalize(name, &zone) != KHSM_EOK) {
			cli_error(KHSM_EINVAL, "zone '%s'", name);
			rc = CLI_FAIL;
			continue;
		}
		if (heal_zone(conf, zone, false) != CLI_OK) {
			rc = CLI_FAIL;
		}
		free(zone);
	}
	closelog();
	if (cut) khsm_zoneconf_release(khsm_conf_path(conf));
	free(all);
	khsm_conf_free(conf);
	return rc;
}
