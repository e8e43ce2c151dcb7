/* The offline-KSK cycle, step by step and pipelined over many zones.
 *
 * Verified on Knot 3.2.6:
 *  - `keymgr ZONE generate-ksr FROM TO` prints one ";; KeySigningRequest 1.0
 *    T (ISO) ===" set per DNSKEY-set change and one at TO; without FROM it
 *    starts at the last offline record.
 *  - `keymgr ZONE sign-ksr FILE` (KSK side) answers every KSR set and adds
 *    a set whenever the previous signature has only rrsig-refresh left.
 *  - `keymgr ZONE validate-skr FILE` on a tampered SKR prints "error: invalid
 *    SignedKeyResponse …", then "OK", and exits 0: only the error line tells.
 *  - `keymgr ZONE import-skr FILE` replaces the offline records from the
 *    SKR's first set on and keeps the earlier ones.
 *  - after the last set, knotd keeps serving it ("using last offline KSK
 *    records available") until its RRSIG expires. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "archive.h"
#include "ceremony.h"
#include "zoneconf.h"
#include "error.h"
#include "internal.h"
#include "knot.h"
#include "keystore.h"
#include "retry.h"
#include "uri.h"

#include <pthread.h>
#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/key.h>

/* -- keymgr steps ---------------------------------------------------------- */

_public_
int khsm_ceremony_ksk_dnskeys(const char *ksk_conf, const char *zone, char ***rdata_ptr,
                              size_t *count_ptr)
{
	dnssec_key_t **keys = NULL;
	size_t n = 0;
	int r = khsm_keymgr_ksks(ksk_conf, zone, &keys, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	char **v = calloc(n + 1, sizeof(*v));
	if (!v) {
		r = KHSM_ENOMEM;
	}
	for (size_t i = 0; i < n && r == KHSM_EOK; i++) {
		r = khsm_keyset_dnskey_text(keys[i], &v[i]);
	}
	khsm_dnskeys_free(keys, n);
	if (r != KHSM_EOK) {
		khsm_strv_free(v, n);
		return r;
	}
	*rdata_ptr = v;
	*count_ptr = n;
	return KHSM_EOK;
}

_public_
int khsm_offline_period(const char *zsk_conf, const char *zone, khsm_offline_period_t *period)
{
	const char *args[] = { zone, "show-offline", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(zsk_conf, args, &res);
	if (r != KHSM_EOK) {
		/* 3.2.6 with no records at all: "error: not exists" */
		const char *d = khsm_err_last_detail();
		if (d && strstr(d, "not exists")) {
			khsm_err_clear();
			*period = (khsm_offline_period_t) { 0 };
			return KHSM_EOK;
		}
		return r;
	}
	khsm_keysets_t sets = { 0 };
	r = khsm_keysets_parse(res.out, zone, &sets);
	khsm_run_clear(&res);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_offline_period_t p = { 0 };
	if (sets.count > 0) {
		p.present = true;
		p.first = sets.sets[0].timestamp;
		p.end = sets.sets[sets.count - 1].timestamp;
		p.valid_until = sets.sets[sets.count - 1].rrsig_expire;
	}
	khsm_keysets_clear(&sets);
	*period = p;
	return KHSM_EOK;
}

_public_
int khsm_ceremony_file_stem(const char *zone, char **name_ptr)
{
	if (!zone || !*zone || strchr(zone, '/')) {
		return KHSM_EINVAL;
	}
	char *s = strcmp(zone, ".") == 0 ? strdup("root") : strdup(zone);
	if (!s) return KHSM_ENOMEM;
	size_t l = strlen(s);
	if (l > 1 && s[l - 1] == '.') s[l - 1] = '\0';
	*name_ptr = s;
	return KHSM_EOK;
}

_public_
void khsm_ceremony_result_clear(khsm_ceremony_result_t *res)
{
	if (!res) return;
	free(res->ksr_path);
	free(res->skr_path);
	free(res->keymgr_reason);
	*res = (khsm_ceremony_result_t) { 0 };
}

static int keymgr_text(const char *conf, const char *const *args, char **out_ptr)
{
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(conf, args, &res);
	if (r != KHSM_EOK) return r;
	*out_ptr = KHSM_STEAL(res.out);
	khsm_run_clear(&res);
	return KHSM_EOK;
}

/* Prefix the current detail with the step that failed. */
static int step_failed(int r, const char *step)
{
	if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
	khsm_err_prefix("%s: ", step);
	return r;
}

/* -- the cycle, step by step ----------------------------------------------- */

_public_
void khsm_ceremony_prep_clear(khsm_ceremony_prep_t *p)
{
	if (!p) return;
	free(p->zone);
	khsm_ceremony_result_clear(&p->res);
	free(p->ksr_text);
	free(p->skr_text);
	for (size_t i = 0; i < p->key_count; i++) free(p->keys[i].rdata);
	free(p->keys);
	khsm_strv_free(p->ksk_rdata, p->ksk_count);
	*p = (khsm_ceremony_prep_t) { 0 };
}

/* The KSK side's keys of a zone with the DNSKEY of each (matched by key tag). */
static int ksk_side_keys(const khsm_ceremony_t *c, khsm_ceremony_prep_t *p)
{
	khsm_kasp_key_t *list = NULL;
	size_t n = 0;
	/* keymgr opens the card keystore of the KSK side even to list and print
	 * public keys: under the card lock, never beside a signature. Keyless
	 * cuts (zoneconf.h) spare the card, and the signatures do not wait. */
	bool keyless = khsm_zoneconf_keyless(c->ksk_conf);
	int r = keyless ? KHSM_EOK : khsm_card_lock();
	if (r == KHSM_EOK) {
		r = khsm_keymgr_list(c->ksk_conf, p->zone, &list, &n);
		if (!keyless) khsm_card_unlock();
	}
	if (r != KHSM_EOK) return step_failed(r, "keymgr list (KSK side)");
	bool have = false;
	for (size_t i = 0; i < n; i++) have = have || (list[i].ksk && !list[i].public_only);
	if (!have) {
		free(list);
		khsm_err_detail("%s has no KSK on the KSK side; make it on the card with: knot-hsm -c %s %s "
		                "generate (or run the ceremony with generate-ksk=yes)", p->zone,
		                c->ksk_display ? c->ksk_display : c->ksk_conf, p->zone);
		return KHSM_ENOENT;
	}
	if ((r = keyless ? KHSM_EOK : khsm_card_lock()) == KHSM_EOK) {
		r = khsm_ceremony_ksk_dnskeys(c->ksk_conf, p->zone, &p->ksk_rdata, &p->ksk_count);
		if (!keyless) khsm_card_unlock();
	}
	if (r != KHSM_EOK) {
		free(list);
		return step_failed(r, "dnskey (KSK side)");
	}
	p->keys = calloc(n ? n : 1, sizeof(*p->keys));
	if (!p->keys) {
		free(list);
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		khsm_ksk_key_t *k = &p->keys[p->key_count++];
		const khsm_kasp_key_t *l = &list[i];
		k->kasp = *l;
		for (size_t j = 0; j < p->ksk_count && !k->rdata; j++) {
			dnssec_binary_t rd = { 0 };
			dnssec_key_t *key = NULL;
			if (khsm_keyset_dnskey_wire(p->ksk_rdata[j], &rd) == KHSM_EOK && dnssec_key_new(&key) == DNSSEC_EOK &&
			    dnssec_key_set_rdata(key, &rd) == DNSSEC_EOK && dnssec_key_get_keytag(key) == l->tag &&
			    dnssec_key_get_algorithm(key) == l->algorithm) {
				k->rdata = strdup(p->ksk_rdata[j]);
			}
			dnssec_key_free(key);
			dnssec_binary_free(&rd);
		}
	}
	free(list);
	return KHSM_EOK;
}

_public_
int khsm_ceremony_prepare(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_prep_t *p)
{
	if (!c || !zone || !p || !c->zsk_conf || !c->ksk_conf || !c->archive_dir) {
		return KHSM_EINVAL;
	}
	*p = (khsm_ceremony_prep_t) { 0 };
	p->zone = strdup(zone);
	if (!p->zone) return KHSM_ENOMEM;
	khsm_ceremony_result_t *res = &p->res;
	khsm_offline_period_t before = { 0 };
	int r = khsm_offline_period(c->zsk_conf, zone, &before);
	if (r != KHSM_EOK) return step_failed(r, "show-offline (ZSK side)");
	/* Reruns shortly after a ceremony must not use the card again: a period
	 * that ends at most min(1 day, a tenth of the span) before until counts
	 * as covered. */
	int64_t slack = (c->until - c->now) / 10;
	if (slack > 86400) slack = 86400;
	if (slack < 0) slack = 0;
	if (before.present && before.end >= c->until - slack) {
		res->skipped = true;
		res->from = before.first;
		res->end = before.end;
		res->valid_until = before.valid_until;
		return KHSM_EOK;
	}
	/* Continue from the last pre-signed set while it lies ahead; a period
	 * that already ended (or none) starts now. */
	char from_s[24], until_s[24];
	if (before.present && before.end > c->now) {
		snprintf(from_s, sizeof(from_s), "%" PRId64, before.end);
	} else {
		/* keymgr's own now, after pregenerate made the first ZSK active */
		snprintf(from_s, sizeof(from_s), "+0");
	}
	snprintf(until_s, sizeof(until_s), "%" PRId64, c->until);

	if ((r = ksk_side_keys(c, p)) != KHSM_EOK) return r;

	_cleanup_free_ char *stem = NULL;
	const char *pre_args[] = { zone, "pregenerate", until_s, NULL };
	const char *ksr_args[] = { zone, "generate-ksr", from_s, until_s, NULL };
	r = khsm_ceremony_file_stem(zone, &stem);
	if (r == KHSM_EOK && (asprintf(&res->ksr_path, "%s/%s.ksr", c->archive_dir, stem) < 0 ||
	                      asprintf(&res->skr_path, "%s/%s.skr", c->archive_dir, stem) < 0)) {
		return KHSM_ENOMEM;
	}
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, pre_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) return step_failed(r, "pregenerate (ZSK side)");
	}
	if (r == KHSM_EOK && (r = keymgr_text(c->zsk_conf, ksr_args, &p->ksr_text)) != KHSM_EOK) {
		return step_failed(r, "generate-ksr (ZSK side)");
	}
	khsm_keysets_t ksr = { 0 };
	if (r == KHSM_EOK && (r = khsm_keysets_parse(p->ksr_text, zone, &ksr)) != KHSM_EOK) {
		return step_failed(r, "KSR");
	}
	khsm_keysets_clear(&ksr);
	return khsm_archive_write(res->ksr_path, p->ksr_text, strlen(p->ksr_text), 0640);
}

/* keymgr says "signing error" when the card goes away: ask the token, and
 * add to the detail that the card is gone when it is. */
static void card_gone(const char *config, const char *zone)
{
	if (!config) return;
	const char *d = khsm_err_last_detail();
	char why[1500];
	snprintf(why, sizeof(why), "%s", d ? d : "");
	khsm_keystore_t *ks = NULL;
	unsigned flags = 0;
	int pr = khsm_keystore_open(config, &ks);
	if (pr == KHSM_EOK) pr = khsm_keystore_flags(ks, &flags);
	khsm_keystore_close(ks);
	if (pr == KHSM_ENOTOKEN || pr == KHSM_EREMOVED) {
		khsm_err_detail("%s; the card was removed or is not present (token not available) while "
		                "signing %s", why, zone);
	} else {
		khsm_err_detail("%s", why);
	}
}

_public_
int khsm_ceremony_sign(const khsm_ceremony_t *c, khsm_ceremony_prep_t *p)
{
	if (!c || !p || !p->zone) {
		return KHSM_EINVAL;
	}
	if (p->res.skipped) {
		return KHSM_EOK;
	}
	int r = KHSM_ENOTSUP;
	if (c->signer) {
		khsm_skr_request_t req = {
			.zone = p->zone, .rrsig_lifetime = c->rrsig_lifetime, .rrsig_refresh = c->rrsig_refresh,
			.cds = c->cds, .keys = p->keys, .key_count = p->key_count,
		};
		khsm_err_clear();
		r = khsm_skr_sign(c->signer, &req, p->ksr_text, &p->skr_text, &p->res.signatures);
		if (r == KHSM_ENOTSUP) {
			const char *d = khsm_err_last_detail();
			p->res.keymgr_reason = strdup(d ? d : "not supported");
		} else if (r != KHSM_EOK) {
			return step_failed(r, "signing on the card");
		}
	}
	if (r == KHSM_ENOTSUP) {
		const char *sign_args[] = { p->zone, "sign-ksr", p->res.ksr_path, NULL };
		p->res.by_keymgr = true;
		/* keymgr logs in through the same pin-source: knot-hsm has checked
		 * that PIN with one login of its own first (card_login()). keymgr
		 * does not take knot-hsm's card lock: hold it for keymgr, so that no
		 * other knot-hsm uses the card meanwhile. */
		if (c->signer && (r = khsm_skr_signer_login(c->signer, c->force)) != KHSM_EOK) {
			return step_failed(r, "card login (KSK side)");
		}
		khsm_run_t out = { 0 };
		r = khsm_keymgr_card(c->ksk_conf, sign_args, &out);
		if (r == KHSM_EOK) p->skr_text = KHSM_STEAL(out.out);
		khsm_run_clear(&out);
		if (r != KHSM_EOK) {
			step_failed(r, "sign-ksr (KSK side, card)");
			card_gone(c->card_config, p->zone);
			return r;
		}
	}
	return khsm_archive_write(p->res.skr_path, p->skr_text, strlen(p->skr_text), 0640);
}

_public_
int khsm_ceremony_finish(const khsm_ceremony_t *c, khsm_ceremony_prep_t *p, khsm_ceremony_result_t *out)
{
	if (!c || !p || !p->zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_ceremony_result_t *res = &p->res;
	if (res->skipped) {
		*out = *res;
		*res = (khsm_ceremony_result_t) { 0 };
		return KHSM_EOK;
	}
	const char *zone = p->zone;
	khsm_keysets_t ksr = { 0 }, skr = { 0 };
	int r = khsm_keysets_parse(p->ksr_text, zone, &ksr);
	/* From here on a failure means the SKR is bad: keep it as .invalid. */
	bool bad = false;
	const char *val_args[] = { zone, "validate-skr", res->skr_path, NULL };
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, val_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) {
			bad = true;
			step_failed(r, "validate-skr");
		}
	}
	if (r == KHSM_EOK && (r = khsm_keysets_parse(p->skr_text, zone, &skr)) != KHSM_EOK) {
		bad = true;
		step_failed(r, "SKR");
	}
	if (r == KHSM_EOK &&
	    (r = khsm_skr_check(&ksr, &skr, (const char *const *)p->ksk_rdata, p->ksk_count)) != KHSM_EOK) {
		bad = true;
		step_failed(r, "SKR check");
	}
	if (bad) {
		_cleanup_free_ char *inv = NULL;
		if (asprintf(&inv, "%s.invalid", res->skr_path) >= 0 && rename(res->skr_path, inv) == 0) {
			free(res->skr_path);
			res->skr_path = KHSM_STEAL(inv);
		}
		khsm_err_suffix("; not imported, kept as %s", res->skr_path);
	}
	const char *imp_args[] = { zone, "import-skr", res->skr_path, NULL };
	if (r == KHSM_EOK) {
		khsm_run_t tmp = { 0 };
		r = khsm_keymgr(c->zsk_conf, imp_args, &tmp);
		khsm_run_clear(&tmp);
		if (r != KHSM_EOK) step_failed(r, "import-skr (ZSK side)");
	}
	khsm_offline_period_t after = { 0 };
	if (r == KHSM_EOK && (r = khsm_offline_period(c->zsk_conf, zone, &after)) != KHSM_EOK) {
		step_failed(r, "show-offline after import");
	}
	if (r == KHSM_EOK && (!after.present || after.end != skr.sets[skr.count - 1].timestamp)) {
		khsm_err_detail("after import-skr the offline records end at %" PRId64 ", not at the "
		                "SKR's end %" PRId64, after.end, skr.sets[skr.count - 1].timestamp);
		r = KHSM_ETOOL;
	}
	if (r == KHSM_EOK) {
		res->from = skr.sets[0].timestamp;
		res->end = after.end;
		res->valid_until = after.valid_until;
		res->signatures = khsm_keysets_rrsig_count(&skr);
		*out = *res;
		*res = (khsm_ceremony_result_t) { 0 };
	}
	khsm_keysets_clear(&ksr);
	khsm_keysets_clear(&skr);
	return r;
}

/* Before the first zone that needs the card: knot-hsm's own login, once per
 * run. The signer's login (held for the run), or, when keymgr sign-ksr signs,
 * one login through the card keystore config keymgr will use: token flags
 * first (final try refused unless force, locked always), then one try. A
 * wrong PIN thus costs one try, found by knot-hsm, and keymgr never starts
 * with it. *checked: the keymgr-side check is done. */
static int card_login(const khsm_ceremony_t *c, bool *checked)
{
	int r = KHSM_EOK;
	if (c->signer) {
		r = khsm_skr_signer_login(c->signer, c->force);
	} else if (!*checked && c->card_config) {
		r = khsm_keystore_login_check(c->card_config, c->force);
		*checked = r == KHSM_EOK;
	}
	return r == KHSM_EOK ? r : step_failed(r, "card login (KSK side)");
}

_public_
int khsm_ceremony_zone(const khsm_ceremony_t *c, const char *zone, khsm_ceremony_result_t *out)
{
	if (!c || !zone || !out) {
		return KHSM_EINVAL;
	}
	khsm_ceremony_prep_t p = { 0 };
	bool checked = false;
	int r = khsm_ceremony_prepare(c, zone, &p);
	if (r == KHSM_EOK && !p.res.skipped) r = card_login(c, &checked);
	if (r == KHSM_EOK) r = khsm_ceremony_sign(c, &p);
	if (r == KHSM_EOK) r = khsm_ceremony_finish(c, &p, out);
	khsm_ceremony_prep_clear(&p);
	return r;
}

/* -- the pipeline ---------------------------------------------------------- */

/* Zone i goes (with before_prepare: HOOKED, the hook thread) -> PREPARED
 * (preparer) -> SIGNED (caller, card) -> FINISHED (finisher). The hook
 * thread works at most one zone ahead of the preparer, the preparer at most
 * one ahead of the zone being signed; the finisher takes the signed zones in
 * order. A stop at zone i stops every step at i; the zones before it go on. */
enum { Z_NEW, Z_PREPARED, Z_SIGNED, Z_DONE };

typedef struct {
	const khsm_ceremony_t *c;
	const char *const *zones;
	size_t count;
	khsm_ceremony_prep_t *prep;
	int *state, *rc;
	char **detail;             /* failure detail, carried across threads */
	size_t hooked, prepared, signing, finished;  /* next zone for each step */
	bool stop;
	int stop_rc;
	size_t stop_at;
	khsm_ceremony_cb_t cb;
	void *data;
	khsm_card_scope_t *scope;  /* the card thread's, shared by the workers (NULL: one card) */
	pthread_mutex_t mu;
	pthread_cond_t cv;
} pipe_t;

static void pipe_fail(pipe_t *pp, size_t i, int r)
{
	const char *d = khsm_err_last_detail();
	free(pp->detail[i]);
	pp->detail[i] = d ? strdup(d) : NULL;
	pp->rc[i] = r;
	if (!pp->stop || i < pp->stop_at) {
		pp->stop = true;
		pp->stop_at = i;
		pp->stop_rc = r;
	}
}

/* Whether the run stopped at or before zone i. */
static bool pipe_stopped_at(const pipe_t *pp, size_t i)
{
	return pp->stop && pp->stop_at <= i;
}

/* The workers, each on a core of its own (the caller's thread mostly waits
 * for the card): the hook thread runs before_prepare ahead of the preparer
 * (onboarding's KSK-side keymgr runs beside the ZSK-side ones), the preparer
 * prepares zones ahead of the card, the finisher finishes the signed ones,
 * in order, and reports them. */
static void *pipe_hook(void *arg)
{
	pipe_t *pp = arg;
	khsm_card_scope_share(pp->scope);   /* its card work locks this card */
	pthread_mutex_lock(&pp->mu);
	while (!pipe_stopped_at(pp, pp->hooked) && pp->hooked < pp->count) {
		if (pp->hooked > pp->prepared + 1 || pp->hooked > pp->signing + 2) {
			pthread_cond_wait(&pp->cv, &pp->mu);
			continue;
		}
		size_t i = pp->hooked;
		pthread_mutex_unlock(&pp->mu);
		khsm_err_clear();
		int r = pp->c->before_prepare(i, pp->zones[i], pp->c->before_data);
		pthread_mutex_lock(&pp->mu);
		if (r != KHSM_EOK) pipe_fail(pp, i, r);
		pp->hooked++;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	khsm_card_scope_share(NULL);
	return NULL;
}

static void *pipe_preparer(void *arg)
{
	pipe_t *pp = arg;
	khsm_card_scope_share(pp->scope);   /* its KSK-side keymgr runs lock this card */
	pthread_mutex_lock(&pp->mu);
	while (!pipe_stopped_at(pp, pp->prepared) && pp->prepared < pp->count) {
		if (pp->prepared > pp->signing + 1 || pp->prepared >= pp->hooked) {
			pthread_cond_wait(&pp->cv, &pp->mu);
			continue;
		}
		size_t i = pp->prepared;
		pthread_mutex_unlock(&pp->mu);
		khsm_err_clear();
		int r = khsm_ceremony_prepare(pp->c, pp->zones[i], &pp->prep[i]);
		pthread_mutex_lock(&pp->mu);
		if (r != KHSM_EOK) pipe_fail(pp, i, r);
		pp->state[i] = Z_PREPARED;
		pp->prepared++;
		pthread_cond_broadcast(&pp->cv);
	}
	pthread_mutex_unlock(&pp->mu);
	khsm_card_scope_share(NULL);
	return NULL;
}

static void *pipe_finisher(void *arg)
{
	pipe_t *pp = arg;
	khsm_card_scope_share(pp->scope);
	pthread_mutex_lock(&pp->mu);
	for (;;) {
		if (pp->finished == pp->count || (pp->stop && pp->finished >= pp->stop_at)) {
			break;
		}
		size_t i = pp->finished;
		if (pp->state[i] != Z_SIGNED) {
			pthread_cond_wait(&pp->cv, &pp->mu);
			continue;
		}
		pthread_mutex_unlock(&pp->mu);
		khsm_err_clear();
		khsm_ceremony_result_t res = { 0 };
		int r = khsm_ceremony_finish(pp->c, &pp->prep[i], &res);
		bool go = pp->cb ? pp->cb(i, pp->zones[i], r, r == KHSM_EOK ? &res : NULL, pp->data) : true;
		khsm_ceremony_result_clear(&res);
		pthread_mutex_lock(&pp->mu);
		if (r != KHSM_EOK) {
			pipe_fail(pp, i, r);
		} else if (!go) {
			pipe_fail(pp, i + 1 < pp->count ? i + 1 : i, KHSM_EOK);
		}
		pp->state[i] = Z_DONE;
		pp->finished++;
		pthread_cond_broadcast(&pp->cv);
	}
	pp->stop = pp->stop || pp->finished < pp->count;
	pthread_cond_broadcast(&pp->cv);
	pthread_mutex_unlock(&pp->mu);
	khsm_card_scope_share(NULL);
	return NULL;
}

_public_
int khsm_ceremony_run(const khsm_ceremony_t *c, const char *const *zones, size_t count,
                      khsm_ceremony_cb_t cb, void *data, size_t *done_ptr)
{
	if (!c || (count && !zones)) {
		return KHSM_EINVAL;
	}
	/* Each zone costs several keymgr runs on each side: they read knot.conf
	 * cut down to their zone (zoneconf.h), else the whole file. */
	if (c->card_lock) {
		int sr = khsm_card_scope_begin(c->card_lock);
		if (sr != KHSM_EOK) {
			/* the card's lock refused: reported as the first zone's failure */
			if (cb && count) cb(0, zones[0], sr, NULL, data);
			if (done_ptr) *done_ptr = 0;
			return sr;
		}
	}
	bool zsk_cut = count > 1 && khsm_zoneconf_use(c->zsk_conf) == KHSM_EOK;
	bool ksk_cut = count > 1 && khsm_zoneconf_use(c->ksk_conf) == KHSM_EOK;
	khsm_err_clear();
	pipe_t pp = { .c = c, .zones = zones, .count = count, .cb = cb, .data = data,
	              .scope = khsm_card_scope_current() };
	pp.prep = calloc(count + 1, sizeof(*pp.prep));
	pp.state = calloc(count + 1, sizeof(*pp.state));
	pp.rc = calloc(count + 1, sizeof(*pp.rc));
	pp.detail = calloc(count + 1, sizeof(*pp.detail));
	if (!pp.prep || !pp.state || !pp.rc || !pp.detail) {
		free(pp.prep); free(pp.state); free(pp.rc); free(pp.detail);
		if (zsk_cut) khsm_zoneconf_release(c->zsk_conf);
		if (ksk_cut) khsm_zoneconf_release(c->ksk_conf);
		if (c->card_lock) khsm_card_scope_end();
		return KHSM_ENOMEM;
	}
	pthread_mutex_init(&pp.mu, NULL);
	pthread_cond_init(&pp.cv, NULL);
	pthread_t hook, preparer, finisher;
	int r = KHSM_EOK;
	bool login_checked = false;
	if (!c->before_prepare) pp.hooked = count;   /* no hook: every zone may be prepared */
	bool have_hook = c->before_prepare && pthread_create(&hook, NULL, pipe_hook, &pp) == 0;
	bool have_preparer = (have_hook || !c->before_prepare) &&
	                     pthread_create(&preparer, NULL, pipe_preparer, &pp) == 0;
	bool started = have_preparer && pthread_create(&finisher, NULL, pipe_finisher, &pp) == 0;
	if (!started) {
		r = KHSM_ENOMEM;
		/* the threads started stop at once */
		pthread_mutex_lock(&pp.mu);
		pp.stop = true;
		pp.stop_at = 0;
		pthread_cond_broadcast(&pp.cv);
		pthread_mutex_unlock(&pp.mu);
		if (have_preparer) pthread_join(preparer, NULL);
		if (have_hook) pthread_join(hook, NULL);
	}
	/* The caller's thread: the card, zone after zone. */
	pthread_mutex_lock(&pp.mu);
	while (r == KHSM_EOK && pp.signing < count) {
		size_t i = pp.signing;
		while (pp.state[i] == Z_NEW && !(pp.stop && pp.stop_at <= i)) {
			pthread_cond_wait(&pp.cv, &pp.mu);
		}
		if (pp.stop && pp.stop_at <= i) break;
		pthread_mutex_unlock(&pp.mu);
		khsm_err_clear();
		int sr = pp.prep[i].res.skipped ? KHSM_EOK : card_login(c, &login_checked);
		if (sr == KHSM_EOK) sr = khsm_ceremony_sign(c, &pp.prep[i]);
		pthread_mutex_lock(&pp.mu);
		if (sr != KHSM_EOK) pipe_fail(&pp, i, sr);
		else pp.state[i] = Z_SIGNED;
		pp.signing++;
		pthread_cond_broadcast(&pp.cv);
		if (sr != KHSM_EOK) break;
	}
	/* nothing more to sign: let the finisher finish what is signed */
	if (pp.signing < count && !pp.stop) {
		pp.stop = true;
		pp.stop_at = pp.signing;
	}
	pp.signing = count;
	pthread_cond_broadcast(&pp.cv);
	pthread_mutex_unlock(&pp.mu);
	if (r == KHSM_EOK) {
		pthread_join(finisher, NULL);
		pthread_join(preparer, NULL);
		if (have_hook) pthread_join(hook, NULL);
	}

	size_t done = pp.finished;
	if (pp.stop && pp.stop_at < done) done = pp.stop_at;
	if (r == KHSM_EOK && pp.stop && pp.stop_rc != KHSM_EOK) {
		r = pp.stop_rc;
		khsm_err_clear();
		if (pp.detail[pp.stop_at]) khsm_err_detail("%s", pp.detail[pp.stop_at]);
		/* a failure in the prepare or sign step was not reported yet */
		if (cb && pp.state[pp.stop_at] != Z_DONE) cb(pp.stop_at, zones[pp.stop_at], r, NULL, data);
	}
	if (!started && cb && count) {   /* reported as the first zone's failure */
		khsm_err_detail("cannot start the ceremony's threads (the system's thread limit?)");
		cb(0, zones[0], r, NULL, data);
	}
	for (size_t i = 0; i < count; i++) {
		khsm_ceremony_prep_clear(&pp.prep[i]);
		free(pp.detail[i]);
	}
	free(pp.prep); free(pp.state); free(pp.rc); free(pp.detail);
	pthread_mutex_destroy(&pp.mu);
	pthread_cond_destroy(&pp.cv);
	if (zsk_cut) khsm_zoneconf_release(c->zsk_conf);
	if (ksk_cut) khsm_zoneconf_release(c->ksk_conf);
	if (c->card_lock) khsm_card_scope_end();
	if (done_ptr) *done_ptr = done;
	return r;
}

/* -- several cards --------------------------------------------------------- */

typedef struct multi multi_t;

typedef struct {
	multi_t *m;
	const khsm_ceremony_t *c;
	const char **zones;        /* this card's zones, in order */
	size_t *index;             /* their index in the run */
	size_t count, done;
	int r;
	char *detail;
} card_run_t;

struct multi {
	khsm_ceremony_cb_t cb;
	void *data;
	pthread_mutex_t mu;        /* one callback at a time; guards stop */
	bool stop;                 /* a PIN was refused: every card stops */
};

static bool pin_failure(int r)
{
	return r == KHSM_EPIN_INCORRECT || r == KHSM_EPIN_LOCKED || r == KHSM_EPIN_FINAL_TRY ||
	       r == KHSM_ELOGIN;
}

static bool card_cb(size_t i, const char *zone, int r, const khsm_ceremony_result_t *res, void *data)
{
	card_run_t *cr = data;
	multi_t *m = cr->m;
	pthread_mutex_lock(&m->mu);
	if (r != KHSM_EOK && pin_failure(r)) m->stop = true;
	bool go = m->cb ? m->cb(cr->index[i], zone, r, res, m->data) : true;
	go = go && !m->stop;
	pthread_mutex_unlock(&m->mu);
	return go;
}

static void *card_thread(void *arg)
{
	card_run_t *cr = arg;
	khsm_err_clear();
	cr->r = khsm_ceremony_run(cr->c, cr->zones, cr->count, card_cb, cr, &cr->done);
	const char *d = khsm_err_last_detail();
	if (cr->r != KHSM_EOK && d) cr->detail = strdup(d);
	return NULL;
}

_public_
int khsm_ceremony_run_cards(const khsm_ceremony_t *const *cards, size_t card_count,
                            const char *const *zones, const size_t *card_of, size_t count,
                            khsm_ceremony_cb_t cb, void *data, size_t *done_ptr)
{
	if (!cards || !card_count || (count && (!zones || !card_of))) {
		return KHSM_EINVAL;
	}
	for (size_t i = 0; i < count; i++) {
		if (card_of[i] >= card_count || !cards[card_of[i]]) return KHSM_EINVAL;
	}
	multi_t m = { .cb = cb, .data = data };
	card_run_t *runs = calloc(card_count, sizeof(*runs));
	pthread_t *th = calloc(card_count, sizeof(*th));
	bool *started = calloc(card_count, sizeof(*started));
	int r = runs && th && started ? KHSM_EOK : KHSM_ENOMEM;
	for (size_t k = 0; k < card_count && r == KHSM_EOK; k++) {
		runs[k] = (card_run_t) { .m = &m, .c = cards[k] };
		runs[k].zones = calloc(count + 1, sizeof(*runs[k].zones));
		runs[k].index = calloc(count + 1, sizeof(*runs[k].index));
		if (!runs[k].zones || !runs[k].index) r = KHSM_ENOMEM;
		for (size_t i = 0; i < count && r == KHSM_EOK; i++) {
			if (card_of[i] != k) continue;
			runs[k].zones[runs[k].count] = zones[i];
			runs[k].index[runs[k].count++] = i;
		}
	}
	pthread_mutex_init(&m.mu, NULL);
	for (size_t k = 0; k < card_count && r == KHSM_EOK; k++) {
		if (runs[k].count == 0) continue;
		if (pthread_create(&th[k], NULL, card_thread, &runs[k]) != 0) {
			/* the cards started go on; this one and the rest do not */
			pthread_mutex_lock(&m.mu);
			m.stop = true;
			pthread_mutex_unlock(&m.mu);
			r = KHSM_ENOMEM;
			break;
		}
		started[k] = true;
	}
	size_t done = 0, first = SIZE_MAX;
	int first_r = KHSM_EOK;
	const char *first_detail = NULL;
	for (size_t k = 0; runs && started && k < card_count; k++) {
		if (!started[k]) continue;
		pthread_join(th[k], NULL);
		done += runs[k].done;
		/* the card's failure is at its zone done (its run stops there) */
		if (runs[k].r != KHSM_EOK && runs[k].done < runs[k].count &&
		    runs[k].index[runs[k].done] < first) {
			first = runs[k].index[runs[k].done];
			first_r = runs[k].r;
			first_detail = runs[k].detail;
		}
	}
	khsm_err_clear();
	if (r == KHSM_EOK && first_r != KHSM_EOK) {
		r = first_r;
		if (first_detail) khsm_err_detail("%s", first_detail);
	}
	for (size_t k = 0; runs && k < card_count; k++) {
		free(runs[k].zones);
		free(runs[k].index);
		free(runs[k].detail);
	}
	pthread_mutex_destroy(&m.mu);
	free(runs);
	free(th);
	free(started);
	if (done_ptr) *done_ptr = done;
	return r;
}

_public_
int khsm_ceremony_ksk_conf_pin(const char *ksk_path, const char *ksk_text, const char *ks_id,
                               const char *config, const char *pin_path,
                               char **config_ptr, char **text_ptr)
{
	if (!ksk_path || !ksk_text || !ks_id || !config || !pin_path || !config_ptr || !text_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *uri = NULL, *module = NULL, *enc = NULL, *new_config = NULL;
	int r = khsm_uri_split_config(config, &uri, &module);
	if (r == KHSM_EOK) {
		r = khsm_uri_encode_value(pin_path, &enc);
	}
	if (r != KHSM_EOK) {
		return r;
	}
	if (asprintf(&new_config, "%s;pin-source=%s %s", uri, enc, module) < 0) {
		new_config = NULL;
		return KHSM_ENOMEM;
	}
	const char *at = strstr(ksk_text, config);
	if (!at) {
		khsm_err_detail("%s: the keystore config of %s is not written as knotc exports it; "
		                "re-render it with knot-hsm policy --write, or add pin-source to it",
		                ksk_path, ks_id);
		return KHSM_ECONFIG;
	}
	char *text = NULL;
	if (asprintf(&text, "%.*s%s%s", (int)(at - ksk_text), ksk_text, new_config,
	             at + strlen(config)) < 0) {
		return KHSM_ENOMEM;
	}
	*text_ptr = text;
	*config_ptr = KHSM_STEAL(new_config);
	return KHSM_EOK;
}
