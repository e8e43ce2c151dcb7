/* status: a zone's state for monitoring (see status.h). */
#include <inttypes.h>
#include <string.h>

#include "ceremony.h"
#include "dnskey.h"
#include "error.h"
#include "heal.h"
#include "internal.h"
#include "kasp.h"
#include "knot.h"
#include "parallel.h"
#include "policy.h"
#include "rollover.h"
#include "status.h"
#include "timefmt.h"
#include "zone.h"

/* Is a key with this hex id on the card of keystore config (khsm_card_probe:
 * no login)? Offline status tells only present, absent or unknown. */
static const char *card_has(khsm_card_probes_t *probes, const char *config, const char *id_hex)
{
	khsm_card_state_t st = khsm_card_probes_get(probes, config, id_hex);
	return st == KHSM_CARD_PRESENT ? "present" : st == KHSM_CARD_UNKNOWN ? "unknown" : "absent";
}

/* The next ZSK timer of a summary, for people. */
static void next_zsk_event(const khsm_kasp_summary_t *sum, khsm_zone_status_t *s)
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

/* A zone's keys from one keymgr list (a failed list is empty: no key at
 * all); rs: the KSK rollover among them (step idle when none). */
static khsm_kasp_summary_t zone_keys(const khsm_kasp_keys_t *keys, int64_t now,
                                     khsm_roll_status_t *rs)
{
	khsm_kasp_summary_t sum = { 0 };
	khsm_kasp_summarize(keys->keys, keys->count, now, &sum);
	if (khsm_rollover_status_keys(keys->keys, keys->count, now, rs) != KHSM_EOK) {
		*rs = (khsm_roll_status_t) { 0 };
	}
	khsm_err_clear();
	return sum;
}

static void judge(khsm_zone_status_t *s, int64_t now, int64_t warn, int64_t crit, const char *what)
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
		s->state = KHSM_STATUS_CRIT;
		khsm_duration_human(-remaining, left, sizeof(left));
		snprintf(s->message, sizeof(s->message), "expired: the zone no longer validates (%s ended "
		         "%s, %s ago)", what, when, left);
		return;
	}
	if (remaining < crit) {
		s->state = KHSM_STATUS_CRIT;
	} else if (remaining < warn) {
		s->state = KHSM_STATUS_WARN;
	} else {
		s->state = KHSM_STATUS_OK;
	}
	snprintf(s->message, sizeof(s->message), "%s ends %s (in %s)", what, when, left);
}

/* A KSK rollover's step (lib/rollover.c); a wait on the parent longer than
 * warn seconds is a warning. */
static void rollover_status(const khsm_roll_status_t *r, const char *zone, int64_t now,
                            int64_t warn, khsm_zone_status_t *s)
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
		if (s->state == KHSM_STATUS_OK) s->state = KHSM_STATUS_WARN;
		size_t l = strlen(s->message);
		snprintf(s->message + l, sizeof(s->message) - l, "; KSK rollover waits on the parent "
		         "for more than %" PRId64 " days: knot-hsm %s rollover", warn / 86400, zone);
	}
}

_public_
const char *khsm_status_name(int state)
{
	static const char *const NAMES[] = { "ok", "warning", "critical", "unknown" };
	return state >= 0 && state <= KHSM_STATUS_UNKNOWN ? NAMES[state] : "unknown";
}

/* khsm_zone_status(); without keys, the list is made into own (the caller
 * frees it), after the policy: a zone without one is not listed. */
static void zone_status(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                        const khsm_conf_zone_t *z, int64_t now, int64_t warn, int64_t crit,
                        bool derived, const khsm_kasp_keys_t *keys, khsm_kasp_keys_t *own,
                        khsm_card_probes_t *probes, khsm_zone_status_t *s)
{
	*s = (khsm_zone_status_t) { .zone = z->domain, .mode = "other", .card_ksk = "unknown",
	                       .state = KHSM_STATUS_UNKNOWN };
	const khsm_conf_policy_t *p = NULL;
	if (khsm_conf_zone_policy(conf, z, &p) != KHSM_EOK) {
		khsm_err_clear();
		snprintf(s->message, sizeof(s->message), "no dnssec-policy");
		return;
	}
	/* What KASP knows about the DS: a KSK in the ready state waits for its
	 * DS at the parent; knot-hsm ZONE submitted confirms it. Asking the
	 * parent itself is submitted's job, not a monitor's. */
	/* One list of the ZSK side for the status and the health check below. */
	if (!keys) {
		(void)khsm_kasp_keys_list(khsm_conf_path(conf), z->domain, own);
		khsm_err_clear();
		keys = own;
	}
	khsm_roll_status_t zsk_roll = { 0 }, ksk_roll = { 0 };
	khsm_kasp_summary_t zsk_side = zone_keys(keys, now, &zsk_roll);
	next_zsk_event(&zsk_side, s);
	if (p->offline_ksk) {
		s->mode = "offline";
		khsm_zone_t kz = { 0 };
		if (kconf && khsm_zone_resolve(kconf, z->domain, NULL, &kz) == KHSM_EOK) {
			khsm_kasp_keys_t kkeys = { 0 };
			(void)khsm_kasp_keys_list(ksk_path, z->domain, &kkeys);
			khsm_kasp_summary_t ksk_side = zone_keys(&kkeys, now, &ksk_roll);
			khsm_kasp_keys_clear(&kkeys);
			s->ds_waiting = ksk_side.ksk_waiting;
			if (ksk_side.has_ksk) {
				s->card_ksk = card_has(probes, kz.keystore->config, ksk_side.ksk_id);
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
			s->state = KHSM_STATUS_CRIT;
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
		if (khsm_online_card(conf, z->domain, &card) != KHSM_EOK) {
			/* the zone and its policy are known: only the card can be missing */
			khsm_err_clear();
			snprintf(s->message, sizeof(s->message), "policy %s keeps no key on a card", p->id);
			return;
		}
		s->mode = "online";
		s->ds_waiting = zsk_side.ksk_waiting;
		s->signing = "unknown";
		khsm_health_t h = { 0 };
		if (khsm_health_check(conf, z->domain, now, keys, probes, &h) != KHSM_EOK) {
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
			int st = now >= h.refresh_at ? KHSM_STATUS_CRIT : KHSM_STATUS_WARN;
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
	if (strcmp(s->card_ksk, "present") != 0 && s->state == KHSM_STATUS_OK && strcmp(s->mode, "online") == 0) {
		s->state = KHSM_STATUS_WARN;
		size_t l = strlen(s->message);
		/* pcscd not running has its remedy above already */
		bool gone = strcmp(s->card_ksk, khsm_card_state_name(KHSM_CARD_ABSENT)) == 0;
		snprintf(s->message + l, sizeof(s->message) - l, "; card %s%s%s%s", s->card_ksk,
		         gone ? ": reconnect the card (knot-hsm -c " : "", gone ? khsm_conf_path(conf) : "",
		         gone ? " doctor checks it)" : "");
	} else if (strcmp(s->card_ksk, "present") != 0 && s->state == KHSM_STATUS_OK) {
		s->state = KHSM_STATUS_WARN;
		size_t l = strlen(s->message);
		snprintf(s->message + l, sizeof(s->message) - l, "; card KSK %s", s->card_ksk);
	}
}

/* zone_status() with the zone's own key list, when keys is NULL, freed after. */
static void zone_status_listed(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                               const khsm_conf_zone_t *z, int64_t now, int64_t warn, int64_t crit,
                               bool derived, const khsm_kasp_keys_t *keys, khsm_card_probes_t *probes,
                               khsm_zone_status_t *s)
{
	khsm_kasp_keys_t own = { 0 };
	zone_status(conf, kconf, ksk_path, z, now, warn, crit, derived, keys, &own, probes, s);
	khsm_kasp_keys_clear(&own);
}

_public_
void khsm_zone_status(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                      const khsm_conf_zone_t *z, int64_t now, int64_t warn, int64_t crit,
                      bool derived, const khsm_kasp_keys_t *keys, khsm_zone_status_t *s)
{
	zone_status_listed(conf, kconf, ksk_path, z, now, warn, crit, derived, keys, NULL, s);
}

/* What each call of zones_one() needs. */
typedef struct {
	const khsm_conf_t *conf, *kconf;
	const char *ksk_path;
	const khsm_conf_zone_t *const *zones;
	int64_t now, warn, crit;
	bool derived;
	khsm_card_probes_t *probes;   /* each card read once for all the zones */
	khsm_zone_status_t *out;
} zones_job_t;

static void zones_one(void *ctx, size_t i)
{
	zones_job_t *job = ctx;
	zone_status_listed(job->conf, job->kconf, job->ksk_path, job->zones[i], job->now, job->warn,
	                   job->crit, job->derived, NULL, job->probes, &job->out[i]);
	khsm_err_clear();
}

_public_
void khsm_zones_status(const khsm_conf_t *conf, const khsm_conf_t *kconf, const char *ksk_path,
                       const khsm_conf_zone_t *const *zones, size_t n, int64_t now, int64_t warn,
                       int64_t crit, bool derived, khsm_card_probes_t *probes, khsm_zone_status_t *out)
{
	if (!conf || (!zones && n) || (!out && n)) {
		return;
	}
	zones_job_t job = { .conf = conf, .kconf = kconf, .ksk_path = ksk_path, .zones = zones,
	                    .now = now, .warn = warn, .crit = crit, .derived = derived,
	                    .probes = probes, .out = out };
	/* Without memory for them, each zone probes its card itself. */
	khsm_card_probes_t *own = probes ? NULL : khsm_card_probes_new();
	if (own) job.probes = own;
	khsm_parallel_for(n, 0, zones_one, &job);
	khsm_card_probes_free(own);
}
