#include <ctype.h>
#include <errno.h>
#include <stdio.h>

#include "budget.h"
#include "cleanup.h"
#include "error.h"
#include "files.h"
#include "internal.h"
#include "uri.h"

#define DAY 86400

/* Two keystore configs name one card: the token, not the module (the
 * guard in front of a card is that card) nor the PIN. */
static bool same_card(const char *a, const char *b)
{
	_cleanup_free_ char *na = NULL;
	_cleanup_free_ char *nb = NULL;
	if (khsm_uri_card_name(a, false, &na) != KHSM_EOK || khsm_uri_card_name(b, false, &nb) != KHSM_EOK) {
		khsm_err_clear();
		return strcmp(a, b) == 0;
	}
	/* A URI that names neither token nor serial (slot-id=…) tells no card
	 * apart: only the same config is the same card. */
	if (strncmp(na, "token=;serial=;", 15) == 0) {
		return strcmp(a, b) == 0;
	}
	return strcmp(na, nb) == 0;
}

_public_
bool khsm_budget_same_card(const char *config_a, const char *config_b)
{
	return config_a && config_b && same_card(config_a, config_b);
}

/* The first pkcs11 keystore a policy lists: the card its zones' KSK is on. */
static const khsm_conf_keystore_t *policy_card(const khsm_conf_t *conf, const khsm_conf_policy_t *p)
{
	for (size_t i = 0; p && i < p->keystore_count; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_find(conf, p->keystores[i]);
		if (khsm_conf_keystore_is_pkcs11(ks) && ks->config) {
			return ks;
		}
	}
	return NULL;
}

_public_
int khsm_budget_zones(const khsm_conf_t *conf, const khsm_conf_t *kconf, khsm_budget_zone_t **zones_ptr,
                      size_t *count_ptr)
{
	if (!conf || !zones_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	const khsm_conf_t *card_conf = kconf ? kconf : conf;
	/* The KSK side's zones are not signed by knotd (no dnssec-signing):
	 * all of them count there; online, the zones knotd signs. */
	_cleanup_free_ const khsm_conf_zone_t **signed_zones = NULL;
	size_t n = 0;
	if (kconf) {
		n = khsm_conf_zone_count(kconf);
		signed_zones = calloc(n ? n : 1, sizeof(*signed_zones));
		if (!signed_zones) {
			return KHSM_ENOMEM;
		}
		for (size_t i = 0; i < n; i++) signed_zones[i] = khsm_conf_zone_at(kconf, i);
	} else {
		int r = khsm_conf_signed_zones(conf, NULL, 0, &signed_zones, &n);
		if (r != KHSM_EOK) {
			return r;
		}
	}
	khsm_budget_zone_t *out = calloc(n ? n : 1, sizeof(*out));
	if (!out) {
		return KHSM_ENOMEM;
	}
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		const khsm_conf_policy_t *cp = NULL;
		(void)khsm_conf_zone_policy(card_conf, signed_zones[i], &cp);
		const khsm_conf_keystore_t *card = policy_card(card_conf, cp);
		if (!card) {
			continue;
		}
		/* Offline the DNSKEY sets (so the card's signatures) follow the ZSK
		 * side's policy; the KSK side has no ZSK lifetime of its own. */
		const khsm_conf_policy_t *zp = cp;
		if (kconf) {
			const khsm_conf_zone_t *z = khsm_conf_zone_find(conf, signed_zones[i]->domain);
			const khsm_conf_policy_t *zsk_side = NULL;
			if (z && khsm_conf_zone_policy(conf, z, &zsk_side) == KHSM_EOK) {
				zp = zsk_side;
			}
		}
		out[count].zone = signed_zones[i]->domain;
		out[count].card_config = card->config;
		khsm_policy_from_conf(zp, &out[count].policy);
		if (kconf) {
			out[count].policy.mode = KHSM_MODE_OFFLINE;
		}
		count++;
	}
	khsm_err_clear();
	*zones_ptr = out;
	*count_ptr = count;
	return KHSM_EOK;
}

/* Key pairs on the card: its public key objects, read without a login (once
 * per run, through the run's probes). */
static void read_slots(khsm_budget_card_t *c, khsm_card_probes_t *probes)
{
	size_t n = 0;
	khsm_card_state_t st = khsm_card_probes_keys(probes, c->config, &n);
	if (st == KHSM_CARD_PRESENT) {
		c->slots_used = (long)n;
	} else {
		snprintf(c->note, sizeof(c->note), "the card was not read: %s", khsm_card_state_name(st));
	}
}

/* Card time, keeping up, and the slots of a card whose signatures are summed. */
static void finish(khsm_budget_card_t *c, const char *key_slots, khsm_card_probes_t *probes)
{
	c->peak_seconds = (c->peak_day + KHSM_BUDGET_RATE - 1) / KHSM_BUDGET_RATE;
	/* no busiest day with zones: it was not counted (no memory), not known to fit */
	c->keeps_up = (c->zones == 0 || c->peak_day > 0) &&
	              c->peak_seconds * 100 <= (uint64_t)DAY * KHSM_BUDGET_BUSY_MAX;
	/* more cards do not help a zone that alone needs more than a card gives */
	uint64_t one = c->zones ? (c->peak_day / c->zones + KHSM_BUDGET_RATE - 1) / KHSM_BUDGET_RATE : 0;
	c->zone_too_much = !c->keeps_up && one * 100 > (uint64_t)DAY * KHSM_BUDGET_BUSY_MAX;
	long total = 0;
	if (key_slots && khsm_budget_slots_get(key_slots, c->keystore, &total) == KHSM_EOK) {
		c->slots_total = total;
	}
	if (probes) {
		read_slots(c, probes);
	} else {
		snprintf(c->note, sizeof(c->note), "the card was not read");
	}
	if (c->slots_used >= 0 && c->slots_total >= 0) {
		c->slots_free = c->slots_total > c->slots_used ? c->slots_total - c->slots_used : 0;
	}
}

_public_
int khsm_budget_one(const char *id, const char *config, size_t zones, const khsm_policy_stats_t *st,
                    const char *key_slots, khsm_card_probes_t *probes, khsm_budget_card_t *out)
{
	if (!id || !config || !st || !out) {
		return KHSM_EINVAL;
	}
	*out = (khsm_budget_card_t){ .slots_used = -1, .slots_total = -1, .slots_free = -1, .zones = zones };
	out->keystore = strdup(id);
	out->config = strdup(config);
	if (!out->keystore || !out->config) {
		khsm_budget_card_clear(out);
		return KHSM_ENOMEM;
	}
	out->per_year = zones * st->card_signatures_per_year;
	out->peak_day = zones * st->card_signatures_peak_day;
	finish(out, key_slots, probes);
	return KHSM_EOK;
}

_public_
void khsm_budget_card_clear(khsm_budget_card_t *card)
{
	if (card) {
		free(card->keystore);
		free(card->config);
		card->keystore = card->config = NULL;
	}
}

_public_
int khsm_budget_count(const khsm_conf_t *card_conf, const khsm_budget_zone_t *zones, size_t n,
                      const char *key_slots, khsm_card_probes_t *probes, khsm_budget_t *out)
{
	if (!card_conf || (n && !zones) || !out) {
		return KHSM_EINVAL;
	}
	*out = (khsm_budget_t){ 0 };
	size_t n_ks = khsm_conf_keystore_count(card_conf);
	khsm_budget_card_t *cards = calloc(n_ks ? n_ks : 1, sizeof(*cards));
	if (!cards) {
		return KHSM_ENOMEM;
	}
	size_t count = 0;
	int r = KHSM_EOK;
	/* One entry per card: keystores with one config are one card, named by
	 * the operator's id, not knot-hsm's online copy. */
	for (size_t i = 0; i < n_ks && r == KHSM_EOK; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(card_conf, i);
		if (!khsm_conf_keystore_is_pkcs11(ks) || !ks->config) {
			continue;
		}
		khsm_budget_card_t *c = NULL;
		for (size_t j = 0; j < count && !c; j++) {
			if (same_card(cards[j].config, ks->config)) c = &cards[j];
		}
		if (c) {
			if (strcmp(c->keystore, KHSM_POLICY_CARD_ID) == 0) {
				char *id = strdup(ks->id), *config = strdup(ks->config);
				if (!id || !config) {
					free(id);
					free(config);
					r = KHSM_ENOMEM;
				} else {
					free(c->keystore);
					free(c->config);
					c->keystore = id;
					c->config = config;
				}
			}
			continue;
		}
		c = &cards[count];
		*c = (khsm_budget_card_t){ .slots_used = -1, .slots_total = -1, .slots_free = -1 };
		c->keystore = strdup(ks->id);
		c->config = strdup(ks->config);
		count++;
		if (!c->keystore || !c->config) r = KHSM_ENOMEM;
	}
	for (size_t j = 0; j < count && r == KHSM_EOK; j++) {
		khsm_budget_card_t *c = &cards[j];
		for (size_t i = 0; i < n; i++) {
			if (!same_card(zones[i].card_config, c->config)) {
				continue;
			}
			/* Read the card as its zones reach it (online through
			 * knot-hsm-card, maybe the guard): one read with their probes. */
			if (c->zones == 0 && strcmp(zones[i].card_config, c->config) != 0) {
				char *config = strdup(zones[i].card_config);
				if (!config) {
					r = KHSM_ENOMEM;
					break;
				}
				free(c->config);
				c->config = config;
			}
			khsm_policy_stats_t st = { 0 };
			if (khsm_policy_stats(&zones[i].policy, &st) != KHSM_EOK) {
				/* a policy knot-hsm would refuse: Knot's defaults instead */
				khsm_policy_t fallback;
				khsm_policy_from_conf(NULL, &fallback);
				fallback.mode = zones[i].policy.mode;
				(void)khsm_policy_stats(&fallback, &st);
				khsm_err_clear();
			}
			c->zones++;
			c->per_year += st.card_signatures_per_year;
			/* Zones added together roll together: their busiest days fall on one. */
			c->peak_day += st.card_signatures_peak_day;
		}
		finish(c, key_slots, probes);
	}
	out->cards = cards;
	out->count = count;
	if (r != KHSM_EOK) {
		khsm_budget_clear(out);
	}
	return r;
}

_public_
void khsm_budget_clear(khsm_budget_t *budget)
{
	if (!budget) {
		return;
	}
	for (size_t i = 0; i < budget->count; i++) {
		khsm_budget_card_clear(&budget->cards[i]);
	}
	free(budget->cards);
	*budget = (khsm_budget_t){ 0 };
}

/* A slot count: 1 to 65535 decimal digits, nothing else. */
static int slots_number(const char *text, size_t len, long *v)
{
	if (len == 0 || len > 5) {
		return KHSM_EINVAL;
	}
	long n = 0;
	for (size_t i = 0; i < len; i++) {
		if (!isdigit((unsigned char)text[i])) return KHSM_EINVAL;
		n = n * 10 + (text[i] - '0');
	}
	if (n < 1 || n > 65535) {
		return KHSM_EINVAL;
	}
	*v = n;
	return KHSM_EOK;
}

/* Walk "ID:N,ID:N": fn(ctx, id, id_len, n) for each; KHSM_EINVAL when one is
 * not of that form. */
static int slots_each(const char *text, int (*fn)(void *ctx, const char *id, size_t id_len, long n),
                      void *ctx)
{
	const char *p = text;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *colon = memchr(p, ':', len);
		long n = 0;
		if (!colon || colon == p || slots_number(colon + 1, len - (size_t)(colon + 1 - p), &n) != KHSM_EOK) {
			return KHSM_EINVAL;
		}
		int r = fn(ctx, p, (size_t)(colon - p), n);
		if (r != KHSM_EOK) {
			return r;
		}
		p += len + (end ? 1 : 0);
	}
	return KHSM_EOK;
}

struct get_ctx {
	const char *id;
	long n;
	bool found;
};

static int get_one(void *ctx, const char *id, size_t id_len, long n)
{
	struct get_ctx *g = ctx;
	if (strlen(g->id) == id_len && strncmp(g->id, id, id_len) == 0) {
		g->n = n;
		g->found = true;
	}
	return KHSM_EOK;
}

_public_
int khsm_budget_slots_get(const char *key_slots, const char *id, long *slots_ptr)
{
	if (!key_slots || !id || !slots_ptr) {
		return KHSM_EINVAL;
	}
	struct get_ctx g = { .id = id };
	if (slots_each(key_slots, get_one, &g) != KHSM_EOK || !g.found) {
		return KHSM_ENOENT;
	}
	*slots_ptr = g.n;
	return KHSM_EOK;
}

struct merge_ctx {
	const khsm_conf_t *conf;
	FILE *out;
	const char *skip;           /* ids of arg: their kept values are dropped */
	const char *given;          /* check_one: the whole argument, for repeated ids */
	bool first;
};

/* How often an id occurs in a value (check_one). */
struct count_ctx {
	const char *id;
	size_t n;
};

static int count_one(void *ctx, const char *id, size_t id_len, long n)
{
	struct count_ctx *cc = ctx;
	(void)n;
	if (strlen(cc->id) == id_len && strncmp(cc->id, id, id_len) == 0) {
		cc->n++;
	}
	return KHSM_EOK;
}

static int check_one(void *ctx, const char *id, size_t id_len, long n)
{
	struct merge_ctx *m = ctx;
	(void)n;
	_cleanup_free_ char *name = strndup(id, id_len);
	if (!name) {
		return KHSM_ENOMEM;
	}
	if (!khsm_conf_keystore_is_pkcs11(khsm_conf_keystore_find(m->conf, name)) ||
	    strcmp(name, KHSM_POLICY_CARD_ID) == 0) {
		khsm_err_detail("key-slots=: '%s' is no pkcs11 keystore of knot.conf", name);
		return KHSM_EINVAL;
	}
	/* each id once: a second value for it would be lost without a word */
	struct count_ctx cc = { name, 0 };
	(void)slots_each(m->given, count_one, &cc);
	if (cc.n > 1) {
		khsm_err_detail("key-slots=: '%s' is given twice", name);
		return KHSM_EINVAL;
	}
	return KHSM_EOK;
}

static int write_one(void *ctx, const char *id, size_t id_len, long n)
{
	struct merge_ctx *m = ctx;
	if (m->skip) {
		struct get_ctx g = { 0 };
		_cleanup_free_ char *name = strndup(id, id_len);
		if (!name) return KHSM_ENOMEM;
		g.id = name;
		(void)slots_each(m->skip, get_one, &g);
		if (g.found) return KHSM_EOK;
	}
	fprintf(m->out, "%s%.*s:%ld", m->first ? "" : ",", (int)id_len, id, n);
	m->first = false;
	return KHSM_EOK;
}

_public_
int khsm_budget_slots_merge(const khsm_conf_t *conf, const char *arg, const char *card, const char *kept,
                            char **out_ptr)
{
	if (!conf || !card || !out_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *given = NULL;
	long n = 0;
	if (arg && slots_number(arg, strlen(arg), &n) == KHSM_EOK) {
		if (asprintf(&given, "%s:%ld", card, n) < 0) return KHSM_ENOMEM;
	} else if (arg) {
		given = strdup(arg);
		if (!given) return KHSM_ENOMEM;
		struct merge_ctx m = { .conf = conf, .given = given };
		int r = slots_each(given, check_one, &m);
		if (r == KHSM_EINVAL && !khsm_err_last_detail()) {
			khsm_err_detail("key-slots= takes a number of key pairs the card holds (1-65535), or "
			                "ID:N,ID:N for pkcs11 keystores of knot.conf, not '%s'", arg);
		}
		if (r != KHSM_EOK) return r;
	}
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);
	if (!f) {
		return KHSM_ENOMEM;
	}
	struct merge_ctx m = { .conf = conf, .out = f, .first = true };
	int r = given ? slots_each(given, write_one, &m) : KHSM_EOK;
	m.skip = given;
	/* A kept value is carried on up to an entry that does not parse. */
	int rk = r == KHSM_EOK && kept ? slots_each(kept, write_one, &m) : KHSM_EOK;
	if (rk != KHSM_EINVAL) {
		r = r == KHSM_EOK ? rk : r;
	}
	if (fclose(f) != 0 || r != KHSM_EOK) {
		free(buf);
		return r != KHSM_EOK ? r : KHSM_ENOMEM;
	}
	if (!*buf) {
		free(buf);
		buf = NULL;
	}
	*out_ptr = buf;
	return KHSM_EOK;
}

_public_
int khsm_budget_slots_read(const char *conf_path, char **value_ptr)
{
	if (!conf_path || !value_ptr) {
		return KHSM_EINVAL;
	}
	*value_ptr = NULL;
	if (khsm_policy_file_header(conf_path, "key-slots", value_ptr) == KHSM_EOK) {
		return KHSM_EOK;
	}
	_cleanup_free_ char *include = khsm_policy_include(conf_path);
	if (!include) {
		return KHSM_ENOMEM;
	}
	return khsm_policy_file_header(include, "key-slots", value_ptr);
}

_public_
int khsm_budget_slots_of(const khsm_conf_t *conf, const khsm_conf_keystore_t *ks, long *slots_ptr)
{
	if (!conf || !ks || !slots_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *text = NULL;
	int r = khsm_budget_slots_read(khsm_conf_path(conf), &text);
	if (r != KHSM_EOK) {
		return r;
	}
	if (khsm_budget_slots_get(text, ks->id, slots_ptr) == KHSM_EOK) {
		return KHSM_EOK;
	}
	/* knot-hsm's online copy of the card keystore: the operator's id names it */
	for (size_t i = 0; ks->config && i < khsm_conf_keystore_count(conf); i++) {
		const khsm_conf_keystore_t *o = khsm_conf_keystore_at(conf, i);
		if (o != ks && o->config && same_card(o->config, ks->config) &&
		    khsm_budget_slots_get(text, o->id, slots_ptr) == KHSM_EOK) {
			return KHSM_EOK;
		}
	}
	return KHSM_ENOENT;
}
