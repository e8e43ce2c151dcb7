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

#include "lib/cardkey.h"
#include "lib/ceremony.h"
#include "lib/dnskey.h"
#include "lib/error.h"
#include "lib/heal.h"
#include "lib/json.h"
#include "lib/kasp.h"
#include "lib/keystore.h"
#include "lib/knot.h"
#include "lib/policy.h"
#include "lib/rollover.h"
#include "lib/timefmt.h"
#include "lib/uri.h"
#include "lib/zone.h"
#include "lib/zoneconf.h"
#include "zonecmd.h"

enum { ST_OK = 0, ST_WARN = 1, ST_CRIT = 2, ST_UNKNOWN = 3 };
static const char *const ST_NAME[] = { "ok", "warning", "critical", "unknown" };

typedef struct {
	const char *zone;
	const char *mode;          /* offline, online, other */
	const char *card_ksk;      /* present, absent, unknown */
	int64_t period_end;        /* offline: last pre-signed set; online: DNSKEY RRSIG expiry */
	int64_t valid_until;       /* expiry of the DNSKEY signature at the end */
	char next_event[128];      /* "ZSK 12345 active 2026-…" or "" */
	int64_t next_event_at;
	int state;
	bool ds_waiting;           /* a KSK is ready: its DS is not confirmed at the parent */
	int64_t warn, crit;        /* thresholds used for this zone, seconds */
	const char *signing;       /* online: "scheduled", "not scheduled", "unknown"; else NULL */
	int64_t resign_at;         /* online: knotd's next re-sign, 0 when none */
	char rollover[200];        /* the KSK rollover's step and since when, or "" */
	char standby[160];         /* the standby KSK (lib/standby.c), or "" */
	char message[512];
} zone_status_t;

static int parse_days(const char *opt, const char *text, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || !*text || *end || v < 0 || v > 36500) {
		fprintf(stderr, "error: %s takes a number of days, not '%s'\nusage: %s\n", opt, text,
		        cli_current->synopsis);
		return -1;
	}
	*out = (int64_t)v * 86400;
	return 0;
}

/* Is a key with this hex id on the card of keystore config? Public objects
 * only: no login, no PIN. */
static const char *card_has(const char *config, const char *id_hex)
{
	khsm_keystore_t *ks = NULL;
	uint8_t *id = NULL;
	size_t id_len = 0;
	const char *answer = "unknown";
	if (khsm_hex_parse(id_hex, &id, &id_len) != KHSM_EOK) return answer;
	if (khsm_keystore_open(config, &ks) == KHSM_EOK) {
		khsm_cardobjs_t objs = { 0 };
		int r = khsm_cardkey_find(ks, NULL, id, id_len, KHSM_URI_TYPE_PUBLIC, NULL, false, &objs);
		if (r == KHSM_EOK) {
			answer = objs.count > 0 ? "present" : "absent";
		} else if (r == KHSM_ENOTOKEN || r == KHSM_EREMOVED) {
			answer = "absent";
		}
		khsm_cardobjs_clear(&objs);
		khsm_keystore_close(ks);
	} else {
		answer = "absent";
	}
	khsm_err_clear();
	free(id);
	return answer;
}

/* The next ZSK timer of a summary, for people. */
static void next_zsk_event(const khsm_kasp_summary_t *sum, zone_status_t *s)
{
	if (sum->next_zsk_at == 0) {
		return;
	}
	char when[32];
	khsm_time_iso(sum->next_zsk_at, when, sizeof(when));
	s->next_event_at = sum->next_zsk_at;
	snprintf(s->next_event, sizeof(s->next_event), "ZSK %u %s %s", sum->next_zsk_tag,
	         sum->next_zsk_timer, when);
}

/* A zone's keys from one keymgr list; a failure reads as no key at all.
 * rs (may be NULL): the KSK rollover among them (step idle when none). */
static khsm_kasp_summary_t zone_keys(const char *conf_path, const char *zone, int64_t now,
                                     khsm_roll_status_t *rs)
{
	khsm_kasp_summary_t sum = { 0 };
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	if (khsm_keymgr_list(conf_path, zone, &keys, &n) == KHSM_EOK) {
		khsm_kasp_summarize(keys, n, now, &sum);
		if (rs && khsm_rollover_status_keys(keys, n, now, rs) != KHSM_EOK) {
			*rs = (khsm_roll_status_t) { 0 };
		}
	}
	free(keys);
	khsm_err_clear();
	return sum;
}

static void judge(zone_status_t *s, int64_t now, int64_t warn, int64_t crit, const char *what)
{
	char left[64], when[32];
	int64_t remaining = s->period_end - now;
	khsm_duration_human(remaining, left, sizeof(left));
	khsm_time_iso(s->period_end, when, sizeof(when));
	s->warn = warn;
	s->crit = crit;
	/* A validator accepts a signature up to and including its expiration
	 * second (RFC 4034 3.1.5; BIND: expired only when now > expiration). */
	if (remaining < 0) {
		s->state = ST_CRIT;
		khsm_duration_human(-remaining, left, sizeof(left));
		snprintf(s->message, sizeof(s->message), "expired: the zone no longer validates (%s ended "
		         "%s, %s ago)", what, when, left);
		return;
	}
	if (remaining < crit) {
		s->state = ST_CRIT;
	} else if (remaining < warn) {
		s->state = ST_WARN;
	} else {
		s->state = ST_OK;
	}
	snprintf(s->message, sizeof(s->message), "%s ends %s (in %s)", what, when, left);
}

/* A KSK rollover's step (lib/rollover.c); a wait on the parent longer than
 * warn seconds is a warning. */
static void rollover_status(const khsm_roll_status_t *r, const char *zone, int64_t now,
                            int64_t warn, zone_status_t *s)
{
	khsm_roll_status_t rs = *r;
	if (rs.standby_tag) {
		char p[32] = "-";
		if (rs.standby_publish) khsm_time_iso(rs.standby_publish, p, sizeof(p));
		snprintf(s->standby, sizeof(s->standby), "KSK %u, %s %s, never signs (its DS at the "
		         "parent beside the active one; knot-hsm ZONE failover if the card is lost)",
		         rs.standby_tag, rs.standby_publish <= now ? "published since" : "published from", p);
	}
	if (rs.step == KHSM_ROLL_IDLE) return;
	char a[32] = "-";
	if (rs.since) khsm_time_iso(rs.since, a, sizeof(a));
	snprintf(s->rollover, sizeof(s->rollover), "%s since %s (old KSK %u, new KSK %u)%s",
	         khsm_rollover_step_name(rs.step), a, rs.old_tag, rs.new_tag,
	         rs.waits_parent ? ", waits on the parent" : "");
	if (rs.waits_parent && rs.since && now - rs.since > warn) {
		if (s->state == ST_OK) s->state = ST_WARN;
		size_t l = strlen(s->message);
		snprintf(s->message + l, sizeof(s->message) - l, "; KSK rollover waits on the parent "
		         "for more than %" PRId64 " days: knot-hsm %s rollover", warn / 86400, zone);
	}
}

static void zone_status(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                        const khsm_conf_zone_t *z, int64_t now, int64_t warn, int64_t crit,
                        bool derived, zone_status_t *s)
{
	*s = (zone_status_t) { .zone = z->domain, .mode = "other", .card_ksk = "unknown",
	                       .state = ST_UNKNOWN };
	const khsm_conf_policy_t *p = NULL;
	if (khsm_conf_zone_policy(conf, z, &p) != KHSM_EOK) {
		khsm_err_clear();
		snprintf(s->message, sizeof(s->message), "no dnssec-policy");
		return;
	}
	/* What KASP knows about the DS: a KSK in the ready state waits for its
	 * DS at the parent; knot-hsm ZONE submitted confirms it. Asking the
	 * parent itself is submitted's job, not a monitor's. */
	khsm_roll_status_t zsk_roll = { 0 }, ksk_roll = { 0 };
	khsm_kasp_summary_t zsk_side = zone_keys(khsm_conf_path(conf), z->domain, now, &zsk_roll);
	next_zsk_event(&zsk_side, s);
	if (p->offline_ksk) {
		s->mode = "offline";
		khsm_zone_t kz = { 0 };
		if (kconf && khsm_zone_resolve(kconf, z->domain, NULL, &kz) == KHSM_EOK) {
			khsm_kasp_summary_t ksk_side = zone_keys(ksk_path, z->domain, now, &ksk_roll);
			s->ds_waiting = ksk_side.ksk_waiting;
			if (ksk_side.has_ksk) {
				s->card_ksk = card_has(kz.keystore->config, ksk_side.ksk_id);
			} else {
				s->card_ksk = "absent";
			}
			khsm_zone_clear(&kz);
		}
		khsm_err_clear();
		khsm_offline_period_t per = { 0 };
		int r = khsm_offline_period(khsm_conf_path(conf), z->domain, &per);
		if (r != KHSM_EOK) {
			snprintf(s->message, sizeof(s->message), "cannot read the offline records: %s",
			         khsm_err_last_detail() ? khsm_err_last_detail() : khsm_strerror(r));
			khsm_err_clear();
			return;
		}
		if (!per.present) {
			s->state = ST_CRIT;
			snprintf(s->message, sizeof(s->message), "no pre-signed DNSKEY set: run knot-hsm -c %s %s "
			         "ceremony", khsm_conf_path(conf), z->domain);
			return;
		}
		s->period_end = per.end;
		s->valid_until = per.valid_until;
		judge(s, now, warn, crit, "pre-signed period");
	} else {
		/* online: a pkcs11 keystore with ksk-only among the policy's keystores */
		const khsm_conf_keystore_t *card = NULL;
		for (size_t i = 0; i < p->keystore_count; i++) {
			const khsm_conf_keystore_t *ks = khsm_conf_keystore_find(conf, p->keystores[i]);
			if (ks && ks->backend && strcmp(ks->backend, "pkcs11") == 0) card = ks;
		}
		if (!card) {
			snprintf(s->message, sizeof(s->message), "policy %s keeps no key on a card", p->id);
			return;
		}
		s->mode = "online";
		s->ds_waiting = zsk_side.ksk_waiting;
		s->signing = "unknown";
		khsm_health_t h = { 0 };
		if (khsm_health_check(conf, z->domain, now, &h) != KHSM_EOK) {
			snprintf(s->message, sizeof(s->message), "%s", khsm_err_last_detail() ?
			         khsm_err_last_detail() : "cannot check the signer");
			khsm_err_clear();
			return;
		}
		/* Without pcscd keymgr may not list the keys either: the card
		 * cannot be reached, whatever KASP holds. */
		s->card_ksk = zsk_side.has_ksk || h.card_state == KHSM_CARD_NOPCSCD ?
		              khsm_card_state_name(h.card_state) : "absent";
		if (!h.knotd_running || h.expiry == 0) {
			snprintf(s->message, sizeof(s->message), "knotd serves no DNSKEY signature (not running?)");
			return;
		}
		s->signing = h.resign_at ? "scheduled" : "not scheduled";
		s->resign_at = h.resign_at;
		/* Thresholds from the policy: knotd signs again when rrsig-refresh is
		 * left, so less than that, minus a fifth of it for knotd's own
		 * scheduling, is a signing that did not happen; half of it is critical. */
		if (derived) {
			warn = h.refresh - h.refresh / 5;
			crit = h.refresh / 2;
		}
		s->period_end = h.expiry;
		s->valid_until = h.expiry;
		judge(s, now, warn, crit, "served DNSKEY signature");
		if (h.due && h.expiry > now) {
			/* Knot does not sign by itself any more: the signatures run out. */
			int st = now >= h.refresh_at ? ST_CRIT : ST_WARN;
			if (st > s->state) s->state = st;
			size_t l = strlen(s->message);
			snprintf(s->message + l, sizeof(s->message) - l, "; signing not scheduled%s: %s"
			         "knot-hsm %s heal", h.resign_at ? " before the signature's refresh point" : "",
			         h.card_state == KHSM_CARD_PRESENT ? "run " : "reconnect the card, then run ",
			         z->domain);
		}
		if (h.card_state == KHSM_CARD_NOPCSCD) {
			size_t l = strlen(s->message);
			snprintf(s->message + l, sizeof(s->message) - l, "; pcscd not running: start it "
			         "(systemctl start pcscd.socket)");
		}
	}
	rollover_status(p->offline_ksk ? &ksk_roll : &zsk_roll, z->domain, now, warn, s);
	/* A card KSK that cannot be seen is worth a warning, never an OK. */
	if (strcmp(s->card_ksk, "present") != 0 && s->state == ST_OK && strcmp(s->mode, "online") == 0) {
		s->state = ST_WARN;
		size_t l = strlen(s->message);
		snprintf(s->message + l, sizeof(s->message) - l, "; card %s", s->card_ksk);
	} else if (strcmp(s->card_ksk, "present") != 0 && s->state == ST_OK) {
		s->state = ST_WARN;
		size_t l = strlen(s->message);
		snprintf(s->message + l, sizeof(s->message) - l, "; card KSK %s", s->card_ksk);
	}
}

static bool any_online(const zone_status_t *st, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(st[i].mode, "online") == 0) return true;
	}
	return false;
}

int cmd_status(cli_t *cli)
{
	int64_t warn = 14 * 86400, crit = 7 * 86400;
	if (cli->warn && parse_days("--warn", cli->warn, &warn) != 0) return ST_UNKNOWN;
	if (cli->crit && parse_days("--crit", cli->crit, &crit) != 0) return ST_UNKNOWN;
	if (crit > warn) {
		fprintf(stderr, "error: --crit (%" PRId64 " days) must not exceed --warn (%" PRId64 " days)\n"
		        "usage: %s\n", crit / 86400, warn / 86400, cli_current->synopsis);
		return ST_UNKNOWN;
	}
	khsm_conf_t *conf = NULL;
	int r = khsm_conf_load(zone_conf_path(cli), &conf);
	if (r != KHSM_EOK) {
		cli_error(r, "%s", zone_conf_path(cli));
		return ST_UNKNOWN;
	}
	/* The KSK side next to knot.conf, as policy --write puts it. */
	char *ksk_path = ksk_side_path(khsm_conf_path(conf));
	khsm_conf_t *kconf = NULL;
	if (ksk_path && access(ksk_path, R_OK) == 0 && khsm_conf_load(ksk_path, &kconf) != KHSM_EOK) {
		kconf = NULL;
	}
	khsm_err_clear();

	/* ZONE... limits the check; each must be a zone of knot.conf. */
	char **want = cli->zone_count ? calloc(cli->zone_count, sizeof(*want)) : NULL;
	for (int w = 0; w < cli->zone_count; w++) {
		if (!want || khsm_zone_normalize(cli->zones[w], &want[w]) != KHSM_EOK ||
		    !khsm_conf_zone_find(conf, want[w])) {
			if (want && want[w]) {
				khsm_err_detail("zone %s is not in %s", want[w], khsm_conf_path(conf));
			}
			cli_error(want && want[w] ? KHSM_ENOENT : KHSM_EINVAL, "status");
			for (int k = 0; want && k <= w && k < cli->zone_count; k++) free(want[k]);
			free(want);
			khsm_conf_free(conf);
			khsm_conf_free(kconf);
			free(ksk_path);
			return ST_UNKNOWN;
		}
	}

	size_t n = khsm_conf_zone_count(conf);
	/* several keymgr runs per zone: each reads its zone's cut (zoneconf.h) */
	bool cut = (cli->zone_count == 0 ? n : (size_t)cli->zone_count) > 1 &&
	           khsm_zoneconf_use(khsm_conf_path(conf)) == KHSM_EOK;
	bool kcut = cut && kconf && khsm_zoneconf_use(ksk_path) == KHSM_EOK;
	khsm_err_clear();
	zone_status_t *st = calloc(n ? n : 1, sizeof(*st));
	size_t count = 0;
	int64_t now = (int64_t)time(NULL);
	for (size_t i = 0; st && i < n; i++) {
		const khsm_conf_zone_t *z = khsm_conf_zone_at(conf, i);
		bool wanted = cli->zone_count == 0;
		for (int w = 0; w < cli->zone_count && !wanted; w++) {
			wanted = strcmp(want[w], z->domain) == 0;
		}
		if (!wanted) {
			continue;
		}
		const khsm_conf_policy_t *p = NULL;
		bool signing = false;
		if (khsm_conf_zone_signing(conf, z, &signing) != KHSM_EOK || !signing ||
		    khsm_conf_zone_policy(conf, z, &p) != KHSM_EOK) {
			khsm_err_clear();
			continue;
		}
		const khsm_conf_keystore_t *card = NULL;
		if (cli->heal && khsm_online_card(conf, z->domain, &card) == KHSM_EOK) {
			/* Its own verdict shows in the status that follows. */
			openlog("knot-hsm", LOG_PID, LOG_DAEMON);
			(void)heal_zone(conf, z->domain, true);
			closelog();
			khsm_err_clear();
			now = time(NULL);
		}
		zone_status(conf, kconf, ksk_path, z, now, warn, crit, !cli->warn && !cli->crit, &st[count]);
		if (strcmp(st[count].mode, "other") != 0) count++;
	}
	if (cut) khsm_zoneconf_release(khsm_conf_path(conf));
	if (kcut) khsm_zoneconf_release(ksk_path);
	int worst = ST_OK;
	bool any_crit = false, any_unknown = false, any_warn = false;
	for (size_t i = 0; i < count; i++) {
		any_crit |= st[i].state == ST_CRIT;
		any_unknown |= st[i].state == ST_UNKNOWN;
		any_warn |= st[i].state == ST_WARN;
	}
	worst = any_crit ? ST_CRIT : any_unknown ? ST_UNKNOWN : any_warn ? ST_WARN : ST_OK;
	if (count == 0) worst = ST_UNKNOWN;

	if (cli->json) {
		khsm_json_t j;
		khsm_json_init(&j, stdout, KHSM_JSON_LINES);
		khsm_json_object(&j, NULL);
		khsm_json_str(&j, "state", ST_NAME[worst]);
		khsm_json_int(&j, "exit", worst);
		khsm_json_int(&j, "warn_days", warn / 86400);
		khsm_json_int(&j, "crit_days", crit / 86400);
		khsm_json_array(&j, "zones");
		for (size_t i = 0; i < count; i++) {
			zone_status_t *s = &st[i];
			char a[32] = "", b[32] = "";
			if (s->period_end) khsm_time_iso(s->period_end, a, sizeof(a));
			if (s->valid_until) khsm_time_iso(s->valid_until, b, sizeof(b));
			khsm_json_object(&j, NULL);
			khsm_json_str(&j, "zone", s->zone);
			khsm_json_str(&j, "mode", s->mode);
			khsm_json_str(&j, "card_ksk", s->card_ksk);
			khsm_json_str(&j, "state", ST_NAME[s->state]);
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
				khsm_json_int(&j, "resign_at", s->resign_at);
			} else {
				khsm_json_null(&j, "resign_at");
			}
			khsm_json_str(&j, "rollover", s->rollover[0] ? s->rollover : NULL);
			khsm_json_str(&j, "standby", s->standby[0] ? s->standby : NULL);
			khsm_json_str(&j, "message", s->message);
			khsm_json_end(&j);
		}
		khsm_json_end(&j);
		khsm_json_end(&j);
		putchar('\n');
	} else {
		printf("%s: %zu zone(s), warn %" PRId64 " d, crit %" PRId64 " d%s",
		       worst == ST_OK ? "OK" : worst == ST_WARN ? "WARNING" : worst == ST_CRIT ? "CRITICAL" : "UNKNOWN",
		       count, warn / 86400, crit / 86400,
		       !cli->warn && !cli->crit && any_online(st, count) ? " (online zones: from their rrsig-refresh)" : "");
		/* Perfdata for monitoring: the zone with the least time left, then each zone. */
		const zone_status_t *least = NULL;
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
			zone_status_t *s = &st[i];
			char b[32] = "-";
			if (s->valid_until) khsm_time_iso(s->valid_until, b, sizeof(b));
			printf("%s\n  state: %s\n  mode: %s\n  card KSK: %s\n  %s\n  DNSKEY signature valid until: %s\n"
			       "  next ZSK event: %s\n  DS at parent: %s knot-hsm -c %s %s submitted\n",
			       s->zone, ST_NAME[s->state], s->mode, s->card_ksk, s->message, b,
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
	free(st);
	for (int w = 0; want && w < cli->zone_count; w++) free(want[w]);
	free(want);
	free(ksk_path);
	khsm_conf_free(kconf);
	khsm_conf_free(conf);
	return worst;
}
