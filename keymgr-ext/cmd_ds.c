/* ds and submitted: what the parent needs for a zone's KSKs, and whether the
 * parent has it. The KSKs come from Knot itself (`keymgr ZONE dnskey`), so the
 * DS printed here is the DS of the keys knotd signs with. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libdnssec/key.h>

#include "cli.h"
#include "lib/dnskey.h"
#include "lib/epp.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/kasp.h"
#include "lib/knot.h"
#include "lib/json.h"
#include "lib/parent.h"
#include "lib/rollover.h"
#include "lib/submitted.h"
#include "cleanup.h"
#include "zonecmd.h"

/* -- the zone's KSKs -- */

typedef struct {
	dnssec_key_t **keys;
	size_t count;
} ksk_set_t;

static void ksk_set_clear(ksk_set_t *set)
{
	khsm_dnskeys_free(set->keys, set->count);
	memset(set, 0, sizeof(*set));
}

/* Open zone i of the command line and read its KSKs (or take what a
 * khsm_keymgr_ksks_each() read, got: NULL to read them here); prints the error. */
static int open_zone_ksks(const cli_t *cli, int i, khsm_conf_t **conf, khsm_zone_t *zone,
                          ksk_set_t *set, khsm_ksks_t *got)
{
	int r = zone_open(cli, cli->zones[i], NULL, conf, zone);
	if (r != CLI_OK) {
		return r;
	}
	if (got) {
		r = got->r;
		if (r != KHSM_EOK && got->detail) khsm_err_detail("%s", got->detail);
		set->keys = got->keys;
		set->count = got->count;
		got->keys = NULL;
		got->count = 0;
	} else {
		r = khsm_keymgr_ksks(khsm_conf_path(*conf), zone->name, &set->keys, &set->count);
	}
	if (r == KHSM_EOK && set->count == 0) {
		khsm_err_detail("zone %s has no KSK in Knot's KASP; make one on the card: "
		                "knot-hsm -c %s %s generate", zone->name, khsm_conf_path(*conf), zone->name);
		r = KHSM_ENOENT;
	}
	if (r != KHSM_EOK) {
		ksk_set_clear(set);
		r = cli_error(r, "%s", zone->name);
		khsm_zone_clear(zone);
		return r;
	}
	return CLI_OK;
}

/* -- ds -- */

typedef enum {
	FMT_DS,
	FMT_DNSKEY,
	FMT_CDS,
	FMT_CDNSKEY,
	FMT_EPP,
	FMT_EPP_KEYDATA,
	FMT_EPP_UPDATE,
	FMT_JSON,
} format_t;

static const struct {
	const char *name;
	format_t format;
	bool uses_digest;
} FORMATS[] = {
	{ "ds", FMT_DS, true },
	{ "dnskey", FMT_DNSKEY, false },
	{ "cds", FMT_CDS, true },
	{ "cdnskey", FMT_CDNSKEY, false },
	{ "epp", FMT_EPP, true },
	{ "epp-keydata", FMT_EPP_KEYDATA, true },
	{ "epp-update", FMT_EPP_UPDATE, true },
	{ "json", FMT_JSON, true },
};
#define N_FORMATS (sizeof(FORMATS) / sizeof(FORMATS[0]))

/* Append the records of one key in a line format to out. */
static int print_key_lines(FILE *out, const dnssec_key_t *key, format_t format,
                           khsm_digest_t digest)
{
	char *text = NULL;
	int r = KHSM_EOK;
	if (format == FMT_DS) {
		r = khsm_ds_lines(key, digest, &text);
		if (r == KHSM_EOK) {
			fputs(text, out);
		}
	} else if (format == FMT_DNSKEY || format == FMT_CDNSKEY) {
		r = format == FMT_DNSKEY ? khsm_dnskey_line(key, &text) : khsm_cdnskey_line(key, &text);
		if (r == KHSM_EOK) {
			fprintf(out, "%s\n", text);
		}
	} else if (format == FMT_CDS) {
		uint8_t types[2];
		size_t n = khsm_digest_types(digest, types);
		for (size_t i = 0; i < n && r == KHSM_EOK; i++) {
			r = khsm_cds_line(key, types[i], &text);
			if (r == KHSM_EOK) {
				fprintf(out, "%s\n", text);
				free(text);
				text = NULL;
			}
		}
	} else {
		r = KHSM_EINVAL;
	}
	free(text);
	return r;
}

int cmd_ds(cli_t *cli)
{
	kv_t args[] = { { "digest", NULL }, { "format", NULL }, { NULL, NULL } };
	int r = kv_parse(cli, args);
	if (r != CLI_OK) {
		return r;
	}

	khsm_digest_t digest = KHSM_DIGEST_SHA256;
	const char *digest_arg = kv_get(args, "digest");
	if (digest_arg && khsm_digest_from_name(digest_arg, &digest) != KHSM_EOK) {
		khsm_err_clear();
		return cli_usage_error(cli_current, "digest= takes sha256, sha384, all or sha1, not '%s'",
		                       digest_arg);
	}
	const char *format_arg = kv_get(args, "format");
	size_t f = 0;
	if (format_arg) {
		while (f < N_FORMATS && strcmp(FORMATS[f].name, format_arg) != 0) {
			f++;
		}
		if (f == N_FORMATS) {
			return cli_usage_error(cli_current, "format= takes ds, dnskey, cds, cdnskey, epp, "
			                       "epp-keydata, epp-update or json, not '%s'", format_arg);
		}
	}
	if (cli->json) {
		if (format_arg && FORMATS[f].format != FMT_JSON) {
			return cli_usage_error(cli_current, "--json and format=%s contradict each other",
			                       format_arg);
		}
		while (FORMATS[f].format != FMT_JSON) {
			f++;
		}
	}
	format_t format = FORMATS[f].format;
	if (digest_arg && !FORMATS[f].uses_digest) {
		return cli_usage_error(cli_current, "digest= does not apply to format=%s: it prints keys, "
		                       "not digests", FORMATS[f].name);
	}
	if (digest == KHSM_DIGEST_SHA1) {
		fprintf(stderr, "warning: SHA-1 DS records are deprecated (RFC 8624: MUST NOT be "
		        "published); give them only to a registry that accepts nothing else\n");
	}

	/* Everything is collected first: a failing zone prints no partial output. */
	char *text = NULL;
	size_t text_len = 0;
	FILE *out = open_memstream(&text, &text_len);
	if (!out) {
		return cli_error(KHSM_ENOMEM, NULL);
	}
	khsm_conf_t *conf = NULL;
	int status = CLI_OK;
	size_t json_count = 0;
	if (format == FMT_JSON) {
		fputs("[", out);
	}
	/* Over several zones, every zone's keymgr dnskey side by side first. */
	size_t nz = (size_t)cli->zone_count;
	khsm_ksks_t *got = NULL;
	char **names = nz > 1 ? calloc(nz, sizeof(*names)) : NULL;
	bool named = names && khsm_conf_load(zone_conf_path(cli), &conf) == KHSM_EOK;
	for (size_t i = 0; named && i < nz; i++) {
		/* quietly: a zone that does not resolve is reported by the loop below */
		khsm_zone_t zone = { 0 };
		named = khsm_zone_resolve(conf, cli->zones[i], NULL, &zone) == KHSM_EOK &&
		        (names[i] = strdup(zone.name)) != NULL;
		khsm_zone_clear(&zone);
	}
	khsm_err_clear();
	if (named && (got = calloc(nz, sizeof(*got)))) {
		khsm_keymgr_ksks_each(khsm_conf_path(conf), (const char *const *)names, nz, got);
	}
	for (size_t i = 0; names && i < nz; i++) free(names[i]);
	free(names);
	for (int i = 0; i < cli->zone_count && status == CLI_OK; i++) {
		khsm_zone_t zone = { 0 };
		ksk_set_t set = { 0 };
		status = open_zone_ksks(cli, i, &conf, &zone, &set, got ? &got[i] : NULL);
		if (status != CLI_OK) {
			break;
		}
		r = KHSM_EOK;
		if (format == FMT_EPP_UPDATE) {
			/* the rollover's step (lib/rollover.c): add the new DS or remove the old */
			char *xml = NULL;
			r = khsm_rollover_epp_update(khsm_conf_path(conf), zone.name, (int64_t)time(NULL),
			                             digest, &xml);
			if (r == KHSM_EOK) {
				if (cli->zone_count > 1) fprintf(out, "<!-- %s -->\n", zone.name);
				fputs(xml, out);
				free(xml);
			}
		} else if (format == FMT_EPP || format == FMT_EPP_KEYDATA) {
			/* epp-keydata: dsData with keyData inside, for registries that take keys. */
			char *xml = NULL;
			r = khsm_epp_secdns_create((const dnssec_key_t *const *)set.keys, set.count, digest,
			                           format == FMT_EPP ? KHSM_EPP_DS : KHSM_EPP_DS_KEYDATA, &xml);
			if (r == KHSM_EOK) {
				if (cli->zone_count > 1) {
					fprintf(out, "<!-- %s -->\n", zone.name);
				}
				fputs(xml, out);
				free(xml);
			}
		} else if (format == FMT_JSON) {
			for (size_t k = 0; k < set.count && r == KHSM_EOK; k++) {
				char *json = NULL;
				r = khsm_dnskey_json(set.keys[k], digest, &json);
				if (r == KHSM_EOK) {
					fprintf(out, "%s\n%s", json_count++ ? "," : "", json);
					free(json);
				}
			}
		} else {
			for (size_t k = 0; k < set.count && r == KHSM_EOK; k++) {
				r = print_key_lines(out, set.keys[k], format, digest);
			}
		}
		if (r != KHSM_EOK) {
			status = cli_error(r, "%s", zone.name);
		}
		ksk_set_clear(&set);
		khsm_zone_clear(&zone);
	}
	if (format == FMT_JSON) {
		fputs("\n]\n", out);
	}
	for (size_t i = 0; got && i < nz; i++) khsm_ksks_clear(&got[i]);
	free(got);
	fclose(out);
	khsm_conf_free(conf);
	if (status == CLI_OK) {
		fwrite(text, 1, text_len, stdout);
	}
	free(text);
	return status;
}

/* -- submitted -- */

static void print_ds(FILE *f, const char *indent, const khsm_ds_t *ds)
{
	fprintf(f, "%s%s DS %u %u %u %s\n", indent, ds->owner, (unsigned)ds->tag,
	        (unsigned)ds->algorithm, (unsigned)ds->digest_type, ds->digest);
}

/* "ns2.com. (127.0.0.2@53)" */
static void print_server(FILE *f, const khsm_server_t *s)
{
	fprintf(f, "%s (%s@%u)", s->name, s->address, (unsigned)s->port);
}

/* What the check found, as text: out is stdout, or stderr with --json. */
static int print_submitted(const khsm_submitted_t *res, FILE *out, const char *conf_path)
{
	const char *name = res->zone;
	if (res->parent) {
		fprintf(out, "%s: parent zone %s: %zu server address%s\n", name, res->parent,
		        res->server_count, res->server_count == 1 ? "" : "es");
	}
	for (size_t s = 0; s < res->server_count; s++) {
		const khsm_submitted_server_t *srv = &res->servers[s];
		/* A malformed record is reported and left out; the others still count. */
		for (size_t m = 0; m < srv->malformed_count; m++) {
			fprintf(stderr, "warning: %s: %s (%s@%u) sent a malformed DS record, ignored: %s\n",
			        name, srv->server.name, srv->server.address, (unsigned)srv->server.port,
			        khsm_esc(srv->malformed[m]));
		}
		if (srv->error != KHSM_EOK) {
			if (res->server_count > 1) {
				fprintf(stderr, "warning: %s: %s (%s@%u) did not answer: %s\n", name, srv->server.name,
				        srv->server.address, (unsigned)srv->server.port,
				        srv->error_detail ? khsm_esc(srv->error_detail) : khsm_strerror(srv->error));
			}
			continue;
		}
		fprintf(out, "%s: %s (%s@%u) answered: %zu DS record%s\n", name, srv->server.name,
		        srv->server.address, (unsigned)srv->server.port, srv->ds_count,
		        srv->ds_count == 1 ? "" : "s");
	}
	if (res->verdict == KHSM_SUBMITTED_UNANSWERED) {
		if (res->server_count > 1) {
			return cli_error(res->error, "%s: no parent server answered", name);
		}
		if (res->server_count == 1 && res->servers[0].error_detail) {
			khsm_err_detail("%s", res->servers[0].error_detail);
		}
		return cli_error(res->error, "%s", name);
	}

	for (size_t k = 0; k < res->ksk_count; k++) {
		const khsm_submitted_ksk_t *key = &res->ksks[k];
		if (key->servers_with > 0 && key->servers_with < res->server_count) {
			fprintf(stderr, "note: %s: the DS of KSK %u is on %zu of the %zu parent servers; it "
			        "counts when all have it\n", name, (unsigned)key->tag, key->servers_with,
			        res->server_count);
		}
		if (key->published) {
			fprintf(out, "%s: parent has the DS of KSK %u%s%s (%s): ", name, (unsigned)key->tag,
			        key->id ? ", key id " : "", key->id ? key->id : "",
			        key->state == KHSM_KEY_STATE_ACTIVE ? "active" :
			        key->state == KHSM_KEY_STATE_READY ? "ready, waiting for the DS" : "neither ready nor active");
			print_ds(out, "", key->ds);
		}
	}

	/* DS records at the parent that belong to none of our KSKs (first answer). */
	for (size_t s = 0; s < res->server_count; s++) {
		const khsm_submitted_server_t *srv = &res->servers[s];
		if (srv->error != KHSM_EOK) {
			continue;
		}
		for (size_t d = 0; d < srv->ds_count; d++) {
			if (srv->ds_ksk[d] < 0) {
				fprintf(stderr, "note: %s: the parent has a DS that matches no KSK of the zone: ", name);
				print_ds(stderr, "", &srv->ds[d]);
			}
		}
		break;
	}

	if (res->verdict == KHSM_SUBMITTED_NONE || res->verdict == KHSM_SUBMITTED_PARTIAL) {
		fprintf(stderr, "error: %s: the parent has no DS for %s\n", name,
		        res->ready_any ? "the KSK that waits for it (state ready)" : "an active KSK of the zone");
		for (size_t s = 0; s < res->server_count; s++) {
			const khsm_submitted_server_t *srv = &res->servers[s];
			if (srv->error != KHSM_EOK) {
				continue;
			}
			if (srv->ds_count == 0) {
				fprintf(stderr, "%s: ", name);
				print_server(stderr, &srv->server);
				fprintf(stderr, " has no DS record for %s\n", name);
			}
			for (size_t d = 0; d < srv->ds_count; d++) {
				fprintf(stderr, "%s: ", name);
				print_server(stderr, &srv->server);
				print_ds(stderr, " has: ", &srv->ds[d]);
			}
		}
		size_t expected = 0;
		for (size_t k = 0; k < res->ksk_count; k++) {
			expected += res->ksks[k].wanted;
		}
		for (size_t k = 0; k < res->ksk_count; k++) {
			if (res->ksks[k].expected_ds) {
				fprintf(stderr, "%s: it should have%s: %s\n", name, expected > 1 ? " one of" : "",
				        res->ksks[k].expected_ds);
			}
		}
		if (res->verdict == KHSM_SUBMITTED_PARTIAL) {
			/* The servers that lack a wanted DS, or did not answer. */
			fprintf(stderr, "%s: some parent servers already have it, not yet", name);
			size_t lagging = 0;
			for (size_t s = 0; s < res->server_count; s++) {
				if (res->servers[s].lagging) {
					fputs(lagging++ ? ", " : " ", stderr);
					print_server(stderr, &res->servers[s].server);
				}
			}
			fprintf(stderr, ": the registry has it, the parent is still propagating; run this "
			        "again later\n");
		} else {
			fprintf(stderr, "%s: give it to the registry (knot-hsm -c %s %s ds, or format=epp), wait "
			        "until the parent publishes it, then run this again\n", name, conf_path, name);
		}
		return CLI_FAIL;
	}
	if (res->verdict == KHSM_SUBMITTED_CURRENT) {
		fprintf(out, "%s: no KSK waits for a DS; nothing to confirm\n", name);
		return CLI_OK;
	}
	if (res->knotc_error != KHSM_EOK) {
		if (res->knotc_detail) {
			khsm_err_detail("%s", res->knotc_detail);
		}
		return cli_error(res->knotc_error, "%s", name);
	}
	fprintf(out, "%s: knotd: zone-ksk-submitted %s done\n", name, name);
	/* Show what knotd made of it. */
	for (size_t k = 0; k < res->ksk_count; k++) {
		if (res->ksks[k].active_after) {
			fprintf(out, "%s: KSK %u: active\n", name, (unsigned)res->ksks[k].tag);
		}
	}
	return CLI_OK;
}

static void json_server(khsm_json_t *j, const char *key, const khsm_server_t *s)
{
	khsm_json_object(j, key);
	khsm_json_str(j, "name", s->name);
	khsm_json_str(j, "address", s->address);
	khsm_json_uint(j, "port", s->port);
	khsm_json_end(j);
}

static void json_ds(khsm_json_t *j, const khsm_ds_t *ds, const khsm_submitted_ksk_t *ksk)
{
	khsm_json_object(j, NULL);
	khsm_json_uint(j, "key_tag", ds->tag);
	khsm_json_uint(j, "algorithm", ds->algorithm);
	khsm_json_uint(j, "digest_type", ds->digest_type);
	khsm_json_str(j, "digest", ds->digest);
	char *text = NULL;
	if (asprintf(&text, "%s DS %u %u %u %s", ds->owner, (unsigned)ds->tag, (unsigned)ds->algorithm,
	             (unsigned)ds->digest_type, ds->digest) < 0) {
		text = NULL;
	}
	khsm_json_str(j, "text", text);
	free(text);
	if (ksk) {
		khsm_json_uint(j, "ksk", ksk->tag);
	} else {
		khsm_json_null(j, "ksk");
	}
	khsm_json_end(j);
}

static void json_submitted(khsm_json_t *j, const khsm_submitted_t *res)
{
	khsm_json_object(j, NULL);
	khsm_json_str(j, "zone", res->zone);
	khsm_json_str(j, "parent", res->parent);
	khsm_json_str(j, "verdict", khsm_submitted_verdict_name(res->verdict));
	khsm_json_array(j, "servers");
	for (size_t s = 0; s < res->server_count; s++) {
		const khsm_submitted_server_t *srv = &res->servers[s];
		khsm_json_object(j, NULL);
		khsm_json_str(j, "name", srv->server.name);
		khsm_json_str(j, "address", srv->server.address);
		khsm_json_uint(j, "port", srv->server.port);
		khsm_json_bool(j, "answered", srv->error == KHSM_EOK);
		khsm_json_str(j, "error", srv->error == KHSM_EOK ? NULL :
		              srv->error_detail ? srv->error_detail : khsm_strerror(srv->error));
		khsm_json_array(j, "ds");
		for (size_t d = 0; d < srv->ds_count; d++) {
			json_ds(j, &srv->ds[d], srv->ds_ksk[d] >= 0 ? &res->ksks[srv->ds_ksk[d]] : NULL);
		}
		khsm_json_end(j);
		khsm_json_array(j, "malformed");
		for (size_t m = 0; m < srv->malformed_count; m++) {
			khsm_json_str(j, NULL, srv->malformed[m]);
		}
		khsm_json_end(j);
		khsm_json_bool(j, "lagging", srv->lagging);
		khsm_json_end(j);
	}
	khsm_json_end(j);
	khsm_json_array(j, "ksks");
	for (size_t k = 0; k < res->ksk_count; k++) {
		const khsm_submitted_ksk_t *key = &res->ksks[k];
		khsm_json_object(j, NULL);
		khsm_json_uint(j, "key_tag", key->tag);
		khsm_json_uint(j, "algorithm", key->algorithm);
		khsm_json_str(j, "id", key->id);
		khsm_json_str(j, "state", khsm_kasp_key_state_name(key->state));
		khsm_json_bool(j, "wanted", key->wanted);
		khsm_json_uint(j, "servers_with_ds", key->servers_with);
		khsm_json_bool(j, "published", key->published);
		khsm_json_str(j, "expected_ds", key->expected_ds);
		khsm_json_bool(j, "active_after", key->active_after);
		khsm_json_end(j);
	}
	khsm_json_end(j);
	khsm_json_array(j, "lagging");
	for (size_t s = 0; s < res->server_count; s++) {
		if (res->servers[s].lagging) {
			json_server(j, NULL, &res->servers[s].server);
		}
	}
	khsm_json_end(j);
	khsm_json_bool(j, "zone_ksk_submitted", res->ksk_submitted);
	khsm_json_end(j);
}

static int submitted_zone(const cli_t *cli, khsm_conf_t **conf, int i, const khsm_server_t *server,
                          khsm_submitted_t **result_ptr)
{
	khsm_zone_t zone = { 0 };
	ksk_set_t set = { 0 };
	int status = open_zone_ksks(cli, i, conf, &zone, &set, NULL);
	if (status != CLI_OK) {
		return status;
	}
	khsm_submitted_t *res = NULL;
	int r = khsm_submitted_check(*conf, zone.name, set.keys, set.count, server, &res);
	if (r != KHSM_EOK) {
		status = cli_error(r, "%s", zone.name);
	} else {
		status = print_submitted(res, cli->json ? stderr : stdout, khsm_conf_path(*conf));
		/* With --json a result that is itself a failure is printed; an error is not. */
		if (res->verdict == KHSM_SUBMITTED_UNANSWERED ||
		    (res->verdict == KHSM_SUBMITTED_SUBMITTED && res->knotc_error != KHSM_EOK)) {
			status = CLI_FAIL;
			khsm_submitted_free(res);
			res = NULL;
		}
	}
	*result_ptr = res;
	ksk_set_clear(&set);
	khsm_zone_clear(&zone);
	return status;
}

int cmd_submitted(cli_t *cli)
{
	kv_t args[] = { { "server", NULL }, { NULL, NULL } };
	int r = kv_parse(cli, args);
	if (r != CLI_OK) {
		return r;
	}
	khsm_server_t server = { 0 };
	const char *server_arg = kv_get(args, "server");
	if (server_arg) {
		r = khsm_server_parse(server_arg, &server);
		if (r != KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			return cli_usage_error(cli_current, "server=%s", d ? d : khsm_strerror(r));
		}
	}
	khsm_submitted_t **results = calloc(cli->zone_count ? cli->zone_count : 1, sizeof(*results));
	if (!results) {
		khsm_server_clear(&server);
		return cli_error(KHSM_ENOMEM, NULL);
	}
	khsm_conf_t *conf = NULL;
	int status = CLI_OK;
	bool errored = false;   /* an error, not a verdict: no JSON */
	for (int i = 0; i < cli->zone_count; i++) {
		int s = submitted_zone(cli, &conf, i, server_arg ? &server : NULL, &results[i]);
		if (s != CLI_OK) {
			status = s;
			errored |= !results[i];
		}
	}
	if (cli->json && !errored) {
		khsm_json_t j;
		khsm_json_init(&j, stdout, KHSM_JSON_LINES);
		khsm_json_array(&j, NULL);
		for (int i = 0; i < cli->zone_count; i++) {
			json_submitted(&j, results[i]);
		}
		khsm_json_end(&j);
		fputc('\n', stdout);
	}
	for (int i = 0; i < cli->zone_count; i++) {
		khsm_submitted_free(results[i]);
	}
	free(results);
	khsm_server_clear(&server);
	khsm_conf_free(conf);
	return status;
}
