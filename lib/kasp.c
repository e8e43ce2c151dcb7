/* Key states from KASP timers, and the KASP index across the zones of knot.conf. */
#include "error.h"
#include "internal.h"
#include "kasp.h"
#include "parallel.h"
#include "policy.h"
#include "zoneconf.h"

/* -- key state ------------------------------------------------------------- */

/* In the manner of Knot's get_key_state() (knot/dnssec/kasp/keystate.c): one
 * boolean per timer, then the phases from the end of a key's life backwards,
 * so that a later phase wins over an earlier one whose timer also passed. */
_public_
khsm_key_state_t khsm_kasp_key_state(const khsm_kasp_key_t *key, int64_t now)
{
	if (!key) {
		return KHSM_KEY_STATE_NONE;
	}
	bool removed = khsm_kasp_reached(key->remove, now);
	bool revoked = khsm_kasp_reached(key->revoke, now);
	bool retired = khsm_kasp_reached(key->retire, now);
	bool post_active = khsm_kasp_reached(key->post_active, now);
	bool retire_active = khsm_kasp_reached(key->retire_active, now);
	bool active = khsm_kasp_reached(key->active, now);
	bool ready = khsm_kasp_reached(key->ready, now);
	bool published = khsm_kasp_reached(key->publish, now);
	bool pre_active = khsm_kasp_reached(key->pre_active, now);

	if (removed) {
		return KHSM_KEY_STATE_REMOVED;
	}
	if (revoked) {
		return KHSM_KEY_STATE_REVOKED;
	}
	if (retired) {
		return KHSM_KEY_STATE_RETIRED;
	}
	if (post_active) {
		return KHSM_KEY_STATE_POST_ACTIVE;
	}
	if (retire_active) {
		return KHSM_KEY_STATE_RETIRE_ACTIVE;
	}
	if (active) {
		return KHSM_KEY_STATE_ACTIVE;
	}
	if (ready) {
		return KHSM_KEY_STATE_READY;
	}
	if (published) {
		return KHSM_KEY_STATE_PUBLISHED;
	}
	if (pre_active) {
		return KHSM_KEY_STATE_PRE_ACTIVE;
	}
	return KHSM_KEY_STATE_NONE;
}

_public_
const char *khsm_kasp_key_state_name(khsm_key_state_t state)
{
	/* the timer words of keymgr (`keymgr list`), as Knot names the phases */
	static const char *const NAME[] = {
		[KHSM_KEY_STATE_NONE] = "none", [KHSM_KEY_STATE_PRE_ACTIVE] = "pre-active",
		[KHSM_KEY_STATE_PUBLISHED] = "published", [KHSM_KEY_STATE_READY] = "ready",
		[KHSM_KEY_STATE_ACTIVE] = "active", [KHSM_KEY_STATE_RETIRE_ACTIVE] = "retire-active",
		[KHSM_KEY_STATE_POST_ACTIVE] = "post-active", [KHSM_KEY_STATE_RETIRED] = "retired",
		[KHSM_KEY_STATE_REVOKED] = "revoked", [KHSM_KEY_STATE_REMOVED] = "removed",
	};
	if ((unsigned)state >= sizeof(NAME) / sizeof(NAME[0])) {
		return NULL;
	}
	return NAME[state];
}

/* -- index ----------------------------------------------------------------- */

_public_
void khsm_kasp_index_clear(khsm_kasp_index_t *idx)
{
	if (!idx) {
		return;
	}
	for (size_t i = 0; i < idx->count; i++) {
		free(idx->items[i].zone);
	}
	free(idx->items);
	idx->items = NULL;
	idx->count = 0;
}

/* The n keys of zone, listed by keymgr, as entries at the end of idx. */
static int append_zone(khsm_kasp_index_t *idx, const char *zone, const khsm_kasp_key_t *keys, size_t n)
{
	khsm_kasp_entry_t *grown = realloc(idx->items, (idx->count + n + 1) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	idx->items = grown;
	for (size_t i = 0; i < n; i++) {
		khsm_kasp_entry_t *e = &idx->items[idx->count];
		if (!(e->zone = strdup(zone))) {
			return KHSM_ENOMEM;
		}
		e->key = keys[i];
		idx->count++;
	}
	return KHSM_EOK;
}

/* One zone's keymgr list for khsm_kasp_index(), in a thread of its own. */
typedef struct {
	khsm_kasp_key_t *keys;
	size_t n;
	int r;
	char *detail;              /* the error's detail (per thread), or NULL */
} zone_list_t;

typedef struct {
	const khsm_conf_t *conf;
	zone_list_t *lists;
} index_job_t;

static void list_one(void *ctx, size_t z)
{
	index_job_t *job = ctx;
	zone_list_t *l = &job->lists[z];
	l->r = khsm_keymgr_list(khsm_conf_path(job->conf), khsm_conf_zone_at(job->conf, z)->domain,
	                        &l->keys, &l->n);
	const char *d = khsm_err_last_detail();
	if (l->r != KHSM_EOK && d) l->detail = strdup(d);
	khsm_err_clear();
}

_public_
int khsm_kasp_index(const khsm_conf_t *conf, khsm_kasp_index_t *idx)
{
	if (!conf || !idx) {
		return KHSM_EINVAL;
	}
	size_t zones = khsm_conf_zone_count(conf);
	index_job_t job = { .conf = conf, .lists = calloc(zones ? zones : 1, sizeof(zone_list_t)) };
	if (!job.lists) {
		return KHSM_ENOMEM;
	}
	/* every zone's keymgr list side by side, merged in zone order; each reads
	 * its zone's keyless cut (zoneconf.h), else the whole file */
	const char *path = khsm_conf_path(conf);
	bool cut = zones > 1 && path && khsm_zoneconf_use(path) == KHSM_EOK;
	khsm_err_clear();
	khsm_parallel_for(zones, 0, list_one, &job);
	if (cut) khsm_zoneconf_release(path);
	khsm_kasp_index_t out = { 0 };
	int r = KHSM_EOK;
	for (size_t z = 0; z < zones && r == KHSM_EOK; z++) {
		const char *zone = khsm_conf_zone_at(conf, z)->domain;
		zone_list_t *l = &job.lists[z];
		if ((r = l->r) != KHSM_EOK) {
			if (l->detail) khsm_err_detail("%s", l->detail);   /* the first failure, as before */
			break;
		}
		r = append_zone(&out, zone, l->keys, l->n);
	}
	for (size_t z = 0; z < zones; z++) {
		free(job.lists[z].keys);
		free(job.lists[z].detail);
	}
	free(job.lists);
	if (r != KHSM_EOK) {
		khsm_kasp_index_clear(&out);
		return r;
	}
	*idx = out;
	return KHSM_EOK;
}

_public_
int khsm_kasp_index_refresh(khsm_kasp_index_t *idx, const khsm_conf_t *conf, const char *zone)
{
	if (!idx || !conf || !zone) {
		return KHSM_EINVAL;
	}
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	int r = khsm_keymgr_list(khsm_conf_path(conf), zone, &keys, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	/* the zone's old entries out, its keys as listed now at the end */
	size_t kept = 0;
	for (size_t i = 0; i < idx->count; i++) {
		if (strcmp(idx->items[i].zone, zone) == 0) {
			free(idx->items[i].zone);
		} else {
			idx->items[kept++] = idx->items[i];
		}
	}
	idx->count = kept;
	r = append_zone(idx, zone, keys, n);
	free(keys);
	return r;
}

_public_
const khsm_kasp_entry_t *khsm_kasp_next(const khsm_kasp_index_t *idx, const char *id_hex,
                                        size_t *pos)
{
	for (; idx && *pos < idx->count; (*pos)++) {
		if (strcmp(idx->items[*pos].key.id, id_hex) == 0) {
			return &idx->items[(*pos)++];
		}
	}
	return NULL;
}

_public_
const khsm_kasp_entry_t *khsm_kasp_find(const khsm_kasp_index_t *idx, const char *zone,
                                        const char *id_hex)
{
	size_t pos = 0;
	const khsm_kasp_entry_t *e;
	while ((e = khsm_kasp_next(idx, id_hex, &pos))) {
		if (strcmp(e->zone, zone) == 0) {
			return e;
		}
	}
	return NULL;
}

_public_
int khsm_kasp_index_merge(khsm_kasp_index_t *idx, khsm_kasp_index_t *from)
{
	if (!idx || !from) {
		return KHSM_EINVAL;
	}
	if (from->count == 0) {
		return KHSM_EOK;
	}
	khsm_kasp_entry_t *grown = realloc(idx->items, (idx->count + from->count) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	idx->items = grown;
	/* A key of a zone idx lists already (the same KASP read twice, e.g.
	 * knot.conf being the KSK side itself) is not listed again. */
	size_t own = idx->count;
	for (size_t i = 0; i < from->count; i++) {
		khsm_kasp_index_t mine = { .items = idx->items, .count = own };
		if (khsm_kasp_find(&mine, from->items[i].zone, from->items[i].key.id)) {
			free(from->items[i].zone);
		} else {
			idx->items[idx->count++] = from->items[i];
		}
	}
	free(from->items);   /* the zone strings left now belong to idx */
	from->items = NULL;
	from->count = 0;
	return KHSM_EOK;
}

_public_
int khsm_kasp_index_add_ksk_side(const char *ksk_path, khsm_kasp_index_t *idx)
{
	if (!idx) {
		return KHSM_EINVAL;
	}
	khsm_conf_t *kconf = NULL;
	khsm_kasp_index_t more = { 0 };
	int r = khsm_policy_ksk_side_load(ksk_path, &kconf);
	if (r == KHSM_EOK && kconf) {
		r = khsm_kasp_index(kconf, &more);
		if (r == KHSM_EOK) r = khsm_kasp_index_merge(idx, &more);
	}
	khsm_kasp_index_clear(&more);
	khsm_conf_free(kconf);
	return r;
}

/* -- summary --------------------------------------------------------------- */

/* One more key of the zone into its summary, in keymgr's order. */
static void summary_add(khsm_kasp_summary_t *s, const khsm_kasp_key_t *k, int64_t now)
{
	s->ksk_waiting |= k->ksk && khsm_kasp_key_state(k, now) == KHSM_KEY_STATE_READY;
	if (k->ksk && !k->public_only) {
		if (!s->has_ksk) {
			snprintf(s->ksk_id, sizeof(s->ksk_id), "%s", k->id);
		}
		s->has_ksk = true;
		snprintf(s->last_ksk_id, sizeof(s->last_ksk_id), "%s", k->id);
	}
	if (!k->zsk || k->ksk) {
		return;
	}
	const struct { const char *name; int64_t t; } ev[] = {
		{ "publish", k->publish }, { "active", k->active },
		{ "retire", k->retire }, { "remove", k->remove },
	};
	for (size_t e = 0; e < KHSM_ARRAY_SIZE(ev); e++) {
		if (ev[e].t > now && (s->next_zsk_at == 0 || ev[e].t < s->next_zsk_at)) {
			s->next_zsk_at = ev[e].t;
			s->next_zsk_tag = k->tag;
			s->next_zsk_timer = ev[e].name;
		}
	}
}

_public_
void khsm_kasp_summarize(const khsm_kasp_key_t *keys, size_t count, int64_t now,
                         khsm_kasp_summary_t *out)
{
	khsm_kasp_summary_t s = { 0 };
	for (size_t i = 0; keys && i < count; i++) {
		summary_add(&s, &keys[i], now);
	}
	*out = s;
}

_public_
void khsm_kasp_index_summarize(const khsm_kasp_index_t *idx, const char *zone, int64_t now,
                               khsm_kasp_summary_t *out)
{
	khsm_kasp_summary_t s = { 0 };
	for (size_t i = 0; idx && zone && i < idx->count; i++) {
		if (strcmp(idx->items[i].zone, zone) == 0) {
			summary_add(&s, &idx->items[i].key, now);
		}
	}
	*out = s;
}

_public_
int khsm_kasp_keys_list(const char *conf_path, const char *zone, khsm_kasp_keys_t *out)
{
	if (!zone || !out) {
		return KHSM_EINVAL;
	}
	*out = (khsm_kasp_keys_t) { 0 };
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	int r = khsm_keymgr_list(conf_path, zone, &keys, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	*out = (khsm_kasp_keys_t) { keys, n };
	return KHSM_EOK;
}

_public_
void khsm_kasp_keys_clear(khsm_kasp_keys_t *keys)
{
	if (keys) {
		free(keys->keys);
		*keys = (khsm_kasp_keys_t) { 0 };
	}
}

_public_
int khsm_kasp_zone_summary(const char *conf_path, const char *zone, int64_t now,
                           khsm_kasp_summary_t *out)
{
	if (!zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_kasp_keys_t keys = { 0 };
	int r = khsm_kasp_keys_list(conf_path, zone, &keys);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_kasp_summarize(keys.keys, keys.count, now, out);
	khsm_kasp_keys_clear(&keys);
	return KHSM_EOK;
}
