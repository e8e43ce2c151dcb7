/* submitted: whether the parent publishes the DS of a zone's KSK; see submitted.h. */
#include "submitted.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "policy.h"

static const char *const VERDICT_NAME[] = {
	[KHSM_SUBMITTED_UNANSWERED] = "unanswered",
	[KHSM_SUBMITTED_NONE] = "none",
	[KHSM_SUBMITTED_PARTIAL] = "partial",
	[KHSM_SUBMITTED_SUBMITTED] = "submitted",
	[KHSM_SUBMITTED_CURRENT] = "current",
};

_public_
const char *khsm_submitted_verdict_name(khsm_submitted_verdict_t verdict)
{
	return verdict <= KHSM_SUBMITTED_CURRENT ? VERDICT_NAME[verdict] : "unknown";
}

/* A KSK the parent's DS is for: ready (zone-ksk-submitted makes it active) or active. */
static bool ds_wanted(khsm_key_state_t state)
{
	return state == KHSM_KEY_STATE_READY || state == KHSM_KEY_STATE_ACTIVE;
}

/* Whether a server's answer holds the DS of a KSK in state want. */
static bool has_state(const khsm_submitted_t *res, const khsm_submitted_server_t *s,
                      khsm_key_state_t want)
{
	for (size_t d = 0; d < s->ds_count; d++) {
		int k = s->ds_ksk[d];
		if (k >= 0 && res->ksks[k].state == want) {
			return true;
		}
	}
	return false;
}

_public_
void khsm_submitted_decide(khsm_submitted_t *res)
{
	res->answered = 0;
	for (size_t s = 0; s < res->server_count; s++) {
		res->answered += res->servers[s].error == KHSM_EOK;
		res->servers[s].lagging = false;
	}
	res->ready_any = false;
	for (size_t k = 0; k < res->ksk_count; k++) {
		res->ready_any |= res->ksks[k].state == KHSM_KEY_STATE_READY;
	}
	if (res->answered == 0) {
		res->verdict = KHSM_SUBMITTED_UNANSWERED;
		return;
	}
	khsm_key_state_t want = res->ready_any ? KHSM_KEY_STATE_READY : KHSM_KEY_STATE_ACTIVE;
	bool want_published = false;
	bool partial_wanted = false;  /* a wanted DS is on some parent servers only */
	for (size_t k = 0; k < res->ksk_count; k++) {
		khsm_submitted_ksk_t *key = &res->ksks[k];
		key->servers_with = 0;
		key->ds = NULL;
		for (size_t s = 0; s < res->server_count; s++) {
			const khsm_submitted_server_t *srv = &res->servers[s];
			bool found = false;
			for (size_t d = 0; srv->error == KHSM_EOK && d < srv->ds_count && !found; d++) {
				if (srv->ds_ksk[d] == (int)k) {
					found = true;
					key->ds = key->ds ? key->ds : &srv->ds[d];
				}
			}
			key->servers_with += found;
		}
		size_t have = key->servers_with;
		key->published = have > 0 && have == res->server_count;
		key->wanted = key->state == want;
		want_published |= key->published && key->wanted;
		partial_wanted |= have > 0 && have < res->server_count && ds_wanted(key->state);
	}
	if (want_published) {
		res->verdict = res->ready_any ? KHSM_SUBMITTED_SUBMITTED : KHSM_SUBMITTED_CURRENT;
		return;
	}
	if (!partial_wanted) {
		res->verdict = KHSM_SUBMITTED_NONE;
		return;
	}
	res->verdict = KHSM_SUBMITTED_PARTIAL;
	for (size_t s = 0; s < res->server_count; s++) {
		khsm_submitted_server_t *srv = &res->servers[s];
		srv->lagging = srv->error != KHSM_EOK || !has_state(res, srv, want);
	}
}

static const khsm_kasp_key_t *kasp_key_of(const khsm_kasp_key_t *keys, size_t count,
                                          const khsm_dnskey_info_t *info)
{
	for (size_t i = 0; i < count; i++) {
		if (keys[i].ksk && !keys[i].public_only && keys[i].tag == info->key_tag &&
		    keys[i].algorithm == info->algorithm) {
			return &keys[i];
		}
	}
	return NULL;
}

/* Split malformed ("LINE\nLINE…") into an array of lines. */
static int split_lines(char *text, char ***lines_ptr, size_t *count_ptr)
{
	size_t n = 0;
	for (char *p = text; p && *p; n++) {
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	char **lines = n ? calloc(n, sizeof(*lines)) : NULL;
	size_t i = 0;
	if (n && !lines) {
		goto fail;
	}
	for (char *line = text, *next; line && *line && i < n; line = next) {
		next = strchr(line, '\n');
		if (next) *next++ = '\0';
		if (!(lines[i] = strdup(line))) {
			goto fail;
		}
		i++;
	}
	*lines_ptr = lines;
	*count_ptr = i;
	return KHSM_EOK;
fail:
	for (size_t j = 0; j < i; j++) {
		free(lines[j]);
	}
	free(lines);
	return KHSM_ENOMEM;
}

/* Ask one server; its failure to answer is recorded in srv, not returned. */
static int ask_server(const char *zone, khsm_submitted_server_t *srv)
{
	_cleanup_free_ char *malformed = NULL;
	int r = khsm_parent_query_ds(&srv->server, zone, &srv->ds, &srv->ds_count, &malformed);
	if (r != KHSM_EOK && r != KHSM_ENOMEM) {
		srv->error = r;
		const char *d = khsm_err_last_detail();
		srv->error_detail = d ? strdup(d) : NULL;
		khsm_err_clear();
		return d && !srv->error_detail ? KHSM_ENOMEM : KHSM_EOK;
	}
	if (r == KHSM_EOK) {
		r = split_lines(malformed, &srv->malformed, &srv->malformed_count);
	}
	if (r == KHSM_EOK && srv->ds_count > 0 &&
	    !(srv->ds_ksk = calloc(srv->ds_count, sizeof(*srv->ds_ksk)))) {
		r = KHSM_ENOMEM;
	}
	return r;
}

static int copy_server(const khsm_server_t *from, khsm_server_t *to)
{
	to->name = strdup(from->name);
	to->address = strdup(from->address);
	to->port = from->port;
	return to->name && to->address ? KHSM_EOK : KHSM_ENOMEM;
}

/* zone-ksk-submitted, then which KSKs knotd made active. */
static int confirm(const khsm_conf_t *conf, khsm_submitted_t *res, dnssec_key_t *const *keys)
{
	/* A KSK side (offline mode) has no knotd: its ready KSK is a rollover's,
	 * which `rollover` on the ZSK side takes on from here. */
	_cleanup_free_ char *zsk_conf = NULL;
	int r = khsm_policy_file_zsk_conf(khsm_conf_path(conf), &zsk_conf);
	if (r == KHSM_EOK) {
		khsm_err_detail("this is the KSK side (offline mode), where no knotd confirms a DS: the "
		                "rollover does, once every parent server has it: knot-hsm -c %s %s "
		                "rollover", zsk_conf, res->zone);
		r = KHSM_ENOTSUP;
	} else {
		khsm_err_clear();
		r = khsm_knotc_ping(conf);
	}
	if (r == KHSM_ENOENT) {
		khsm_err_detail("knotd is not running (nothing answers on %s); zone-ksk-submitted needs "
		                "it: start knotd, then run this again", khsm_conf_control_socket(conf));
	}
	if (r == KHSM_EOK) {
		r = khsm_knotc_zone_ksk_submitted(conf, res->zone);
	}
	if (r != KHSM_EOK) {
		res->knotc_error = r;
		const char *d = khsm_err_last_detail();
		res->knotc_detail = d ? strdup(d) : NULL;
		khsm_err_clear();
		return d && !res->knotc_detail ? KHSM_ENOMEM : KHSM_EOK;
	}
	res->ksk_submitted = true;
	khsm_kasp_key_t *after = NULL;
	size_t after_count = 0;
	if (khsm_keymgr_list(khsm_conf_path(conf), res->zone, &after, &after_count) != KHSM_EOK) {
		khsm_err_clear();
		return KHSM_EOK;
	}
	int64_t now = (int64_t)time(NULL);
	for (size_t k = 0; k < res->ksk_count; k++) {
		khsm_dnskey_info_t info = { 0 };
		if (khsm_dnskey_info(keys[k], &info) != KHSM_EOK) {
			continue;
		}
		const khsm_kasp_key_t *kk = kasp_key_of(after, after_count, &info);
		res->ksks[k].active_after = kk && khsm_kasp_key_state(kk, now) == KHSM_KEY_STATE_ACTIVE;
	}
	free(after);
	return KHSM_EOK;
}

_public_
int khsm_submitted_check(const khsm_conf_t *conf, const char *zone, dnssec_key_t *const *keys,
                         size_t key_count, const khsm_server_t *server,
                         khsm_submitted_t **result_ptr)
{
	khsm_kasp_key_t *kasp = NULL;
	size_t kasp_count = 0;
	khsm_server_t *found = NULL;
	size_t found_count = 0;
	khsm_submitted_t *res = calloc(1, sizeof(*res));
	int r = KHSM_ENOMEM;
	if (!res || !(res->zone = strdup(zone))) {
		goto fail;
	}
	r = khsm_keymgr_list(khsm_conf_path(conf), zone, &kasp, &kasp_count);
	if (r != KHSM_EOK) {
		goto fail;
	}
	if (!server) {
		r = khsm_parent_servers(zone, &res->parent, &found, &found_count);
		if (r != KHSM_EOK) {
			goto fail;
		}
	}
	size_t n = server ? 1 : found_count;
	r = KHSM_ENOMEM;
	res->servers = calloc(n, sizeof(*res->servers));
	res->ksks = calloc(key_count ? key_count : 1, sizeof(*res->ksks));
	if (!res->servers || !res->ksks) {
		goto fail;
	}
	res->ksk_count = key_count;
	int64_t now = (int64_t)time(NULL);
	for (size_t k = 0; k < key_count; k++) {
		khsm_dnskey_info_t info = { 0 };
		(void)khsm_dnskey_info(keys[k], &info);
		const khsm_kasp_key_t *kk = kasp_key_of(kasp, kasp_count, &info);
		res->ksks[k].tag = info.key_tag;
		res->ksks[k].algorithm = info.algorithm;
		res->ksks[k].state = kk ? khsm_kasp_key_state(kk, now) : KHSM_KEY_STATE_NONE;
		if (kk && !(res->ksks[k].id = strdup(kk->id))) {
			goto fail;
		}
	}

	/* Ask every server: the DS counts as published when every one has it. */
	res->error = KHSM_EOK;
	for (size_t s = 0; s < n; s++) {
		res->server_count++;
		khsm_submitted_server_t *srv = &res->servers[s];
		r = copy_server(server ? server : &found[s], &srv->server);
		if (r == KHSM_EOK) {
			r = ask_server(zone, srv);
		}
		if (r != KHSM_EOK) {
			goto fail;
		}
		if (srv->error != KHSM_EOK) {
			res->error = srv->error;
			continue;
		}
		for (size_t d = 0; d < srv->ds_count; d++) {
			srv->ds_ksk[d] = -1;
			for (size_t k = 0; k < key_count && srv->ds_ksk[d] < 0; k++) {
				bool m = false;
				r = khsm_ds_matches(&srv->ds[d], keys[k], &m);
				if (r != KHSM_EOK) {
					goto fail;
				}
				srv->ds_ksk[d] = m ? (int)k : -1;
			}
		}
	}

	khsm_submitted_decide(res);
	if (res->verdict == KHSM_SUBMITTED_NONE || res->verdict == KHSM_SUBMITTED_PARTIAL) {
		for (size_t k = 0; k < key_count; k++) {
			if (res->ksks[k].wanted && khsm_ds_line(keys[k], 2, &res->ksks[k].expected_ds) != KHSM_EOK) {
				khsm_err_clear();
			}
		}
	}
	if (res->verdict == KHSM_SUBMITTED_SUBMITTED) {
		r = confirm(conf, res, keys);
		if (r != KHSM_EOK) {
			goto fail;
		}
	}
	khsm_servers_free(found, found_count);
	free(kasp);
	*result_ptr = res;
	return KHSM_EOK;
fail:
	khsm_servers_free(found, found_count);
	free(kasp);
	khsm_submitted_free(res);
	return r;
}

_public_
void khsm_submitted_free(khsm_submitted_t *res)
{
	if (!res) {
		return;
	}
	for (size_t s = 0; s < res->server_count; s++) {
		khsm_submitted_server_t *srv = &res->servers[s];
		khsm_server_clear(&srv->server);
		free(srv->error_detail);
		khsm_ds_free(srv->ds, srv->ds_count);
		free(srv->ds_ksk);
		for (size_t i = 0; i < srv->malformed_count; i++) {
			free(srv->malformed[i]);
		}
		free(srv->malformed);
	}
	free(res->servers);
	for (size_t k = 0; k < res->ksk_count; k++) {
		free(res->ksks[k].id);
		free(res->ksks[k].expected_ds);
	}
	free(res->ksks);
	free(res->zone);
	free(res->parent);
	free(res->knotc_detail);
	free(res);
}
