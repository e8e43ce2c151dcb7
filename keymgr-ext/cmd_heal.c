/* heal: for each online zone, restart the signing Knot did not reschedule
 * (knotc zone-sign) when the card answers again; a no-op when knotd will sign
 * by itself. One line per zone on stdout, the same line to syslog. */
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "lib/dname.h"
#include "lib/error.h"
#include "lib/heal.h"
#include "lib/knot.h"
#include "lib/timefmt.h"
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
	openlog("knot-hsm", LOG_PID, LOG_DAEMON);
	int rc = CLI_OK;
	for (int i = 0; i < cli->zone_count; i++) {
		char *zone = NULL;
		if (khsm_zone_normalize(cli->zones[i], &zone) != KHSM_EOK) {
			cli_error(KHSM_EINVAL, "zone '%s'", cli->zones[i]);
			rc = CLI_FAIL;
			continue;
		}
		if (heal_zone(conf, zone, false) != CLI_OK) {
			rc = CLI_FAIL;
		}
		free(zone);
	}
	closelog();
	khsm_conf_free(conf);
	return rc;
}
