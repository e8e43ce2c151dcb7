/* heal: the online signer's health, and knotc zone-sign when Knot did not
 * reschedule a signing that failed while the card was away (Knot 3.5.8's
 * event_dnssec() logs "next signing not scheduled" and waits for an
 * operator). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cardkey.h"
#include "error.h"
#include "heal.h"
#include "internal.h"
#include "kasp.h"
#include "keystore.h"
#include "knot.h"
#include "pcscd.h"
#include "policy.h"
#include "run.h"
#include "uri.h"

_public_
const char *khsm_card_state_name(khsm_card_state_t state)
{
	switch (state) {
	case KHSM_CARD_PRESENT: return "present";
	case KHSM_CARD_NOKEY:   return "absent (the card answers, the key is not on it)";
	case KHSM_CARD_ABSENT:  return "absent";
	case KHSM_CARD_NOPCSCD: return "pcscd not running";
	default:                return "unknown";
	}
}

/* Only an absent card is worth asking pcscd about: a card that answers
 * proves pcscd runs. */
static khsm_card_state_t absent(const char *config)
{
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	khsm_card_state_t st = KHSM_CARD_ABSENT;
	if (khsm_uri_split_config(config, &uri, &module) == KHSM_EOK &&
	    khsm_pcscd_module_uses(module) && khsm_pcscd_check() != KHSM_EOK) {
		st = KHSM_CARD_NOPCSCD;
	}
	return st;
}

/* One card as a run has seen it: its state, and the CKA_IDs (hex) of its
 * public keys when it answered. */
typedef struct {
	char *config;
	khsm_card_state_t state;
	char **ids;
	size_t n_ids;
	size_t n_keys;             /* public key objects, with a CKA_ID or not */
} probed_card_t;

struct khsm_card_probes {
	pthread_mutex_t lock;
	probed_card_t *cards;
	size_t count;
};

_public_
khsm_card_probes_t *khsm_card_probes_new(void)
{
	khsm_card_probes_t *p = calloc(1, sizeof(*p));
	if (p) {
		pthread_mutex_init(&p->lock, NULL);
	}
	return p;
}

_public_
void khsm_card_probes_free(khsm_card_probes_t *p)
{
	if (!p) {
		return;
	}
	for (size_t i = 0; i < p->count; i++) {
		for (size_t j = 0; j < p->cards[i].n_ids; j++) free(p->cards[i].ids[j]);
		free(p->cards[i].ids);
		free(p->cards[i].config);
	}
	free(p->cards);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* Read a card once: every public key object, no login. */
static void probe_read(probed_card_t *c)
{
	khsm_keystore_t *ks = NULL;
	khsm_cardobjs_t objs = { 0 };
	c->state = KHSM_CARD_UNKNOWN;
	if (khsm_keystore_open(c->config, &ks) != KHSM_EOK) {
		c->state = absent(c->config);
		goto fail;
	}
	int r = khsm_cardkey_find(ks, NULL, NULL, 0, KHSM_URI_TYPE_PUBLIC, NULL, false, &objs);
	if (r == KHSM_ENOTOKEN || r == KHSM_EREMOVED) {
		c->state = absent(c->config);
	} else if (r == KHSM_EOK && (c->ids = calloc(objs.count ? objs.count : 1, sizeof(char *)))) {
		c->state = KHSM_CARD_PRESENT;
		c->n_keys = objs.count;
		for (size_t i = 0; i < objs.count; i++) {
			if (objs.items[i].id_len &&
			    khsm_hex_format(objs.items[i].id, objs.items[i].id_len, &c->ids[c->n_ids]) == KHSM_EOK) {
				c->n_ids++;
			}
		}
	}
fail:
	khsm_cardobjs_clear(&objs);
	khsm_keystore_close(ks);
	khsm_err_clear();
}

/* The run's entry of the card of config, read now if it was not; NULL
 * without memory. Called with p->lock held. */
static probed_card_t *probed(khsm_card_probes_t *p, const char *config)
{
	for (size_t i = 0; i < p->count; i++) {
		if (strcmp(p->cards[i].config, config) == 0) return &p->cards[i];
	}
	probed_card_t *grown = realloc(p->cards, (p->count + 1) * sizeof(*grown));
	if (!grown) {
		return NULL;
	}
	p->cards = grown;
	char *copy = strdup(config);
	if (!copy) {
		return NULL;
	}
	probed_card_t *c = &p->cards[p->count++];
	*c = (probed_card_t){ .config = copy };
	probe_read(c);
	return c;
}

_public_
khsm_card_state_t khsm_card_probes_get(khsm_card_probes_t *p, const char *config, const char *id_hex)
{
	if (!p) {
		return khsm_card_probe(config, id_hex);
	}
	if (!config) {
		return KHSM_CARD_UNKNOWN;
	}
	/* The first zone of a card reads it while the others wait: one read per card. */
	pthread_mutex_lock(&p->lock);
	probed_card_t *c = probed(p, config);
	khsm_card_state_t st = c ? c->state : KHSM_CARD_UNKNOWN;
	if (c && st == KHSM_CARD_PRESENT && id_hex) {
		st = KHSM_CARD_NOKEY;
		for (size_t i = 0; i < c->n_ids; i++) {
			if (strcasecmp(c->ids[i], id_hex) == 0) st = KHSM_CARD_PRESENT;
		}
	}
	pthread_mutex_unlock(&p->lock);
	return st;
}

_public_
khsm_card_state_t khsm_card_probes_keys(khsm_card_probes_t *p, const char *config, size_t *count_ptr)
{
	if (!p || !config || !count_ptr) {
		return KHSM_CARD_UNKNOWN;
	}
	pthread_mutex_lock(&p->lock);
	probed_card_t *c = probed(p, config);
	khsm_card_state_t st = c ? c->state : KHSM_CARD_UNKNOWN;
	if (st == KHSM_CARD_PRESENT) {
		*count_ptr = c->n_keys;
	}
	pthread_mutex_unlock(&p->lock);
	return st;
}

_public_
khsm_card_state_t khsm_card_probe(const char *config, const char *id_hex)
{
	/* A run of its own: the card read once, as for many zones. */
	_cleanup_free_ uint8_t *id = NULL;
	size_t id_len = 0;
	if (!config || (id_hex && khsm_hex_parse(id_hex, &id, &id_len) != KHSM_EOK)) {
		khsm_err_clear();
		return KHSM_CARD_UNKNOWN;
	}
	khsm_card_probes_t *p = khsm_card_probes_new();
	khsm_card_state_t st = p ? khsm_card_probes_get(p, config, id_hex) : KHSM_CARD_UNKNOWN;
	khsm_card_probes_free(p);
	return st;
}

/* "+1D2h3m4s" as Knot's knot_time_print(TIME_PRINT_HUMAN_MIXED) writes a
 * time relative to now. */
static int mixed_time(const char *text, int64_t now, int64_t *at)
{
	static const struct { char unit; int64_t secs; } UNITS[] = {
		{ 'Y', 365 * 86400 }, { 'M', 30 * 86400 }, { 'D', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
	};
	int sign = text[0] == '-' ? -1 : text[0] == '+' ? 1 : 0;
	if (sign == 0 || !text[1]) {
		return KHSM_EPARSE;
	}
	int64_t total = 0;
	size_t next_unit = 0;
	for (const char *p = text + 1; *p; ) {
		if (*p < '0' || *p > '9') {
			return KHSM_EPARSE;
		}
		int64_t v = 0;
		while (*p >= '0' && *p <= '9') {
			if (v > INT32_MAX) return KHSM_EPARSE;
			v = v * 10 + (*p++ - '0');
		}
		size_t u = next_unit;
		while (u < KHSM_ARRAY_SIZE(UNITS) && UNITS[u].unit != *p) u++;
		if (u == KHSM_ARRAY_SIZE(UNITS)) {
			return KHSM_EPARSE;
		}
		total += v * UNITS[u].secs;
		next_unit = u + 1;
		p++;
	}
	*at = now + sign * total;
	return KHSM_EOK;
}

_public_
int khsm_heal_resign_parse(const char *text, int64_t now, int64_t *at_ptr)
{
	if (!text || !at_ptr) {
		return KHSM_EINVAL;
	}
	const char *p = strstr(text, " re-sign: ");
	if (!p) {
		khsm_err_detail("knotc zone-status shows no re-sign event");
		return KHSM_EPARSE;
	}
	p += strlen(" re-sign: ");
	char value[64];
	size_t n = strcspn(p, " |\n");
	if (n == 0 || n >= sizeof(value)) {
		khsm_err_detail("knotc zone-status: unreadable re-sign event");
		return KHSM_EPARSE;
	}
	memcpy(value, p, n);
	value[n] = '\0';
	if (strcmp(value, "-") == 0) {
		*at_ptr = 0;
		return KHSM_EOK;
	}
	/* Due or in progress: running(T), pending(T), frozen(T). */
	if (strncmp(value, "running(", 8) == 0 || strncmp(value, "pending(", 8) == 0) {
		*at_ptr = now;
		return KHSM_EOK;
	}
	int64_t at = 0;
	if (mixed_time(value, now, &at) != KHSM_EOK) {
		khsm_err_detail("knotc zone-status: unreadable re-sign event '%s'", value);
		return KHSM_EPARSE;
	}
	*at_ptr = at;
	return KHSM_EOK;
}

_public_
int khsm_knotc_resign_at(const khsm_conf_t *conf, const char *zone, int64_t now, int64_t *at_ptr)
{
	if (!conf || !zone || !at_ptr) {
		return KHSM_EINVAL;
	}
	const char *argv[] = { khsm_tool_path("knotc"), "-e", "-c", khsm_conf_path(conf), "zone-status",
	                       zone, "+events", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	if (res.status != 0 || strstr(res.out, "error:") || strstr(res.err, "error:")) {
		const char *e = strstr(res.err, "error:") ? res.err : res.out;
		if (strstr(e, "failed to connect")) {
			khsm_err_detail("knotd is not running (knotc zone-status: %.*s)",
			                (int)strcspn(e, "\n"), e);
			r = KHSM_ENOENT;
		} else {
			khsm_err_detail("knotc zone-status %s: %.*s", zone, (int)strcspn(e, "\n"), e);
			r = KHSM_ETOOL;
		}
	} else {
		r = khsm_heal_resign_parse(res.out, now, at_ptr);
	}
	khsm_run_clear(&res);
	return r;
}

_public_
int khsm_online_card(const khsm_conf_t *conf, const char *zone, const khsm_conf_keystore_t **card_ptr)
{
	const khsm_conf_zone_t *z = khsm_conf_zone_find(conf, zone);
	const khsm_conf_policy_t *p = NULL;
	if (!z) {
		khsm_err_detail("zone %s is not in %s", zone, khsm_conf_path(conf));
		return KHSM_ENOENT;
	}
	if (khsm_conf_zone_policy(conf, z, &p) != KHSM_EOK) {
		khsm_err_detail("zone %s has no dnssec-policy", zone);
		return KHSM_ENOENT;
	}
	if (p->offline_ksk) {
		khsm_err_detail("zone %s runs the offline mode: knotd never signs with the card "
		                "(knot-hsm status shows the pre-signed period)", zone);
		return KHSM_ENOENT;
	}
	const khsm_conf_keystore_t *card = NULL;
	/* the first: knotd makes KSKs there; other cards follow in the list */
	for (size_t i = 0; i < p->keystore_count && !card; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_find(conf, p->keystores[i]);
		if (khsm_conf_keystore_is_pkcs11(ks)) card = ks;
	}
	if (!card) {
		khsm_err_detail("policy %s of zone %s keeps no key on a card", p->id, zone);
		return KHSM_ENOENT;
	}
	*card_ptr = card;
	return KHSM_EOK;
}

/* A policy duration, or fallback when unset or unreadable. */
static int64_t policy_secs(const char *text, int64_t fallback)
{
	int64_t v = 0;
	if (text && khsm_duration_parse(text, &v) == KHSM_EOK && v > 0) {
		return v;
	}
	khsm_err_clear();
	return fallback;
}

_public_
int khsm_health_check(const khsm_conf_t *conf, const char *zone, int64_t now,
                      const khsm_kasp_keys_t *keys, khsm_card_probes_t *probes, khsm_health_t *out)
{
	if (!conf || !zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_health_t h = { 0 };
	int r = khsm_online_card(conf, zone, &h.card);
	if (r != KHSM_EOK) {
		return r;
	}
	const khsm_conf_policy_t *p = NULL;
	(void)khsm_conf_zone_policy(conf, khsm_conf_zone_find(conf, zone), &p);
	/* Knot's defaults: rrsig-lifetime 14 days, rrsig-refresh about a tenth of it. */
	h.lifetime = policy_secs(p->rrsig_lifetime, 14 * 86400);
	h.refresh = policy_secs(p->rrsig_refresh, h.lifetime / 10);

	/* A list that failed reads as no key at all: the card is probed alone. */
	khsm_kasp_keys_t own = { 0 };
	if (!keys) {
		(void)khsm_kasp_keys_list(khsm_conf_path(conf), zone, &own);
		keys = &own;
	}
	khsm_err_clear();
	khsm_kasp_summary_t sum = { 0 };
	khsm_kasp_summarize(keys->keys, keys->count, now, &sum);
	khsm_kasp_keys_clear(&own);
	h.card_state = khsm_card_probes_get(probes, h.card->config, sum.has_ksk ? sum.ksk_id : NULL);

	r = khsm_knotc_resign_at(conf, zone, now, &h.resign_at);
	if (r == KHSM_ENOENT) {
		khsm_err_clear();
		*out = h;
		return KHSM_EOK;
	}
	if (r != KHSM_EOK) {
		return r;
	}
	h.knotd_running = true;
	if (khsm_knotc_dnskey_expiry(conf, zone, &h.expiry) != KHSM_EOK) {
		h.expiry = 0;
	}
	khsm_err_clear();
	if (h.expiry) {
		h.refresh_at = h.expiry - h.refresh;
	}
	/* knotd signs by itself when a re-sign is scheduled before the served
	 * signature runs out; past the refresh point (with a tenth of the
	 * refresh interval, at most an hour, for knotd to get to it) a later
	 * event is no use either. */
	int64_t grace = h.refresh / 10 < 3600 ? h.refresh / 10 : 3600;
	bool late = h.expiry && now > h.refresh_at + grace && h.resign_at > now + grace;
	h.due = h.resign_at == 0 || late;
	*out = h;
	return KHSM_EOK;
}

_public_
int khsm_knotc_zone_sign(const khsm_conf_t *conf, const char *zone)
{
	if (!conf || !zone) {
		return KHSM_EINVAL;
	}
	const char *argv[] = { khsm_tool_path("knotc"), "-b", "-c", khsm_conf_path(conf), "zone-sign",
	                       zone, NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	const char *e = strstr(res.err, "error") ? res.err : strstr(res.out, "error") ? res.out : NULL;
	if (res.status != 0 || e) {
		if (!e) e = res.err[0] ? res.err : res.out;
		if (strstr(e, "failed to connect")) {
			khsm_err_detail("knotd is not running: start it");
			r = KHSM_ENOENT;
		} else {
			khsm_err_detail("knotc zone-sign %s: %.*s", zone, (int)strcspn(e, "\n"), e);
			r = KHSM_ETOOL;
		}
	}
	khsm_run_clear(&res);
	return r;
}

_public_
int khsm_heal(const khsm_conf_t *conf, const char *zone, int64_t now,
              const khsm_kasp_keys_t *keys, khsm_heal_t *out)
{
	if (!conf || !zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_heal_t h = { 0 };
	khsm_kasp_keys_t own = { 0 };
	int r = KHSM_EOK;
	if (!keys) {
		/* listed once for both checks; not at all for a zone that is not online */
		const khsm_conf_keystore_t *card = NULL;
		if ((r = khsm_online_card(conf, zone, &card)) != KHSM_EOK) {
			goto fail;
		}
		(void)khsm_kasp_keys_list(khsm_conf_path(conf), zone, &own);
		khsm_err_clear();
		keys = &own;
	}
	if ((r = khsm_health_check(conf, zone, now, keys, NULL, &h.health)) != KHSM_EOK) {
		goto fail;
	}
	if (!h.health.knotd_running) {
		h.outcome = KHSM_HEAL_NO_KNOTD;
	} else if (!h.health.due) {
		h.outcome = KHSM_HEAL_SCHEDULED;
	} else {
		h.why = h.health.resign_at == 0 ? "knotd has no signing scheduled"
		                                : "the served DNSKEY signature is past its refresh point";
		h.outcome = KHSM_HEAL_NO_CARD;
	}
	if (h.outcome == KHSM_HEAL_NO_CARD && h.health.card_state == KHSM_CARD_PRESENT) {
		r = khsm_knotc_zone_sign(conf, zone);
		if (r != KHSM_EOK) {
			if (!khsm_err_last_detail()) {
				khsm_err_detail("%s", khsm_strerror(r));
			}
			khsm_err_prefix("%s; knotc zone-sign failed: ", h.why);
			goto fail;
		}
		h.outcome = KHSM_HEAL_SIGNED;
		khsm_health_t after = { 0 };
		/* only the new re-sign event is read from it: the keys are those of before */
		if (khsm_health_check(conf, zone, (int64_t)time(NULL), keys, NULL, &after) == KHSM_EOK) {
			h.next_at = after.resign_at;
		}
		khsm_err_clear();
	}
	*out = h;
fail:
	khsm_kasp_keys_clear(&own);
	return r;
}
