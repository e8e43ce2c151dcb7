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
#include "lib/parent.h"
#include "lib/rollover.h"
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

/* Open zone i of the command line and read its KSKs; prints the error. */
static int open_zone_ksks(const cli_t *cli, int i, khsm_conf_t **conf, khsm_zone_t *zone,
                          ksk_set_t *set)
{
	int r = zone_open(cli, cli->zones[i], NULL, conf, zone);
	if (r != CLI_OK) {
		return r;
	}
	r = khsm_keymgr_ksks(khsm_conf_path(*conf), zone->name, &set->keys, &set->count);
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
	for (int i = 0; i < cli->zone_count && status == CLI_OK; i++) {
		khsm_zone_t zone = { 0 };
		ksk_set_t set = { 0 };
		status = open_zone_ksks(cli, i, &conf, &zone, &set);
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
	fclose(out);
	khsm_conf_free(conf);
	if (status == CLI_OK) {
		fwrite(text, 1, text_len, stdout);
	}
	free(text);
	return status;
}

/* -- submitted -- */

/* A KSK the parent's DS is for: ready (zone-ksk-submitted makes it active) or active. */
static bool ds_wanted(khsm_key_state_t state)
{
	return state == KHSM_KEY_STATE_READY || state == KHSM_KEY_STATE_ACTIVE;
}

static const khsm_kasp_key_t *kasp_key_of(const khsm_kasp_key_t *keys, size_t count,
                                          const dnssec_key_t *key)
{
	khsm_dnskey_info_t info;
	if (khsm_dnskey_info(key, &info) != KHSM_EOK) {
		return NULL;
	}
	for (size_t i = 0; i < count; i++) {
		if (keys[i].ksk && !keys[i].public_only && keys[i].tag == info.key_tag &&
		    keys[i].algorithm == info.algorithm) {
			return &keys[i];
		}
	}
	return NULL;
}

static void print_ds(FILE *f, const char *indent, const khsm_ds_t *ds)
{
	fprintf(f, "%s%s DS %u %u %u %s\n", indent, ds->owner, (unsigned)ds->tag,
	        (unsigned)ds->algorithm, (unsigned)ds->digest_type, ds->digest);
}

/* The servers to ask: server= or the parent's own, found through the resolver. */
static int parent_servers(const char *server_arg, const char *zone, khsm_server_t **servers,
                          size_t *count)
{
	if (server_arg) {
		khsm_server_t *one = calloc(1, sizeof(*one));
		if (!one) {
			return cli_error(KHSM_ENOMEM, NULL);
		}
		int r = khsm_server_parse(server_arg, one);
		if (r != KHSM_EOK) {
			free(one);
			const char *d = khsm_err_last_detail();
			return cli_usage_error(cli_current, "server=%s", d ? d : khsm_strerror(r));
		}
		*servers = one;
		*count = 1;
		return CLI_OK;
	}
	char *parent = NULL;
	int r = khsm_parent_servers(zone, &parent, servers, count);
	if (r != KHSM_EOK) {
		return cli_error(r, "%s", zone);
	}
	printf("%s: parent zone %s: %zu server address%s\n", zone, parent, *count, *count == 1 ? "" : "es");
	free(parent);
	return CLI_OK;
}

/* Parent's DS sets, one per server; server NULL when it did not answer. */
typedef struct {
	const khsm_server_t *server;
	khsm_ds_t *ds;
	size_t count;
} answer_t;

/* "ns2.com. (127.0.0.2@53)" */
static void print_server(FILE *f, const khsm_server_t *s)
{
	fprintf(f, "%s (%s@%u)", s->name, s->address, (unsigned)s->port);
}

/* Whether a server's answer holds the DS of a KSK that needs it now. */
static bool has_wanted(const answer_t *ans, const ksk_set_t *set, const khsm_key_state_t *state,
                       bool ready_any)
{
	for (size_t k = 0; k < set->count; k++) {
		if (state[k] != (ready_any ? KHSM_KEY_STATE_READY : KHSM_KEY_STATE_ACTIVE)) {
			continue;
		}
		for (size_t d = 0; d < ans->count; d++) {
			bool m = false;
			if (khsm_ds_matches(&ans->ds[d], set->keys[k], &m) == KHSM_EOK && m) {
				return true;
			}
		}
	}
	return false;
}

static int submitted_zone(const cli_t *cli, khsm_conf_t **conf, int i, const char *server_arg)
{
	khsm_zone_t zone = { 0 };
	ksk_set_t set = { 0 };
	int status = open_zone_ksks(cli, i, conf, &zone, &set);
	if (status != CLI_OK) {
		return status;
	}
	khsm_kasp_key_t *kasp = NULL;
	size_t kasp_count = 0;
	khsm_server_t *servers = NULL;
	size_t server_count = 0;
	answer_t *answers = NULL;
	size_t answered = 0;
	bool *published = NULL;
	khsm_key_state_t *state = NULL;
	const char *name = zone.name;

	int r = khsm_keymgr_list(khsm_conf_path(*conf), name, &kasp, &kasp_count);
	if (r != KHSM_EOK) {
		status = cli_error(r, "%s", name);
		goto done;
	}
	status = parent_servers(server_arg, name, &servers, &server_count);
	if (status != CLI_OK) {
		goto done;
	}

	/* Ask every server: the DS counts as published when every one has it. */
	answers = calloc(server_count, sizeof(*answers));
	if (!answers) {
		status = cli_error(KHSM_ENOMEM, NULL);
		goto done;
	}
	int last_error = KHSM_EOK;
	for (size_t s = 0; s < server_count; s++) {
		answer_t *a = &answers[answered];
		_cleanup_free_ char *malformed = NULL;
		r = khsm_parent_query_ds(&servers[s], name, &a->ds, &a->count, &malformed);
		/* A malformed record is reported and left out; the others still count. */
		for (char *line = malformed, *next; r == KHSM_EOK && line; line = next) {
			next = strchr(line, '\n');
			if (next) *next++ = '\0';
			fprintf(stderr, "warning: %s: %s (%s@%u) sent a malformed DS record, ignored: %s\n",
			        name, servers[s].name, servers[s].address, (unsigned)servers[s].port, khsm_esc(line));
		}
		if (r != KHSM_EOK) {
			last_error = r;
			if (server_count > 1) {
				const char *d = khsm_err_last_detail();
				fprintf(stderr, "warning: %s: %s (%s@%u) did not answer: %s\n", name, servers[s].name,
				        servers[s].address, (unsigned)servers[s].port, d ? khsm_esc(d) : khsm_strerror(r));
				khsm_err_clear();
			}
			continue;
		}
		printf("%s: %s (%s@%u) answered: %zu DS record%s\n", name, servers[s].name,
		       servers[s].address, (unsigned)servers[s].port, a->count, a->count == 1 ? "" : "s");
		a->server = &servers[s];
		answered++;
	}
	if (answered == 0) {
		status = server_count > 1 ? cli_error(last_error, "%s: no parent server answered", name)
		                          : cli_error(last_error, "%s", name);
		goto done;
	}

	/* Which of our KSKs have a DS on every server, and their state. */
	int64_t now = (int64_t)time(NULL);
	published = calloc(set.count, sizeof(*published));
	state = calloc(set.count, sizeof(*state));
	if (!published || !state) {
		status = cli_error(KHSM_ENOMEM, NULL);
		goto done;
	}
	bool ready_any = false, ready_published = false, active_published = false;
	bool partial_wanted = false;  /* a wanted DS is on some parent servers only */
	for (size_t k = 0; k < set.count; k++) {
		size_t have = 0;
		const khsm_ds_t *first = NULL;
		for (size_t a = 0; a < answered; a++) {
			bool found = false;
			for (size_t d = 0; d < answers[a].count && !found; d++) {
				bool m = false;
				r = khsm_ds_matches(&answers[a].ds[d], set.keys[k], &m);
				if (r != KHSM_EOK) {
					status = cli_error(r, "%s", name);
					goto done;
				}
				if (m) {
					found = true;
					first = first ? first : &answers[a].ds[d];
				}
			}
			have += found;
		}
		const khsm_kasp_key_t *kk = kasp_key_of(kasp, kasp_count, set.keys[k]);
		state[k] = kk ? khsm_kasp_key_state(kk, now) : KHSM_KEY_STATE_NONE;
		published[k] = have > 0 && have == server_count;
		ready_any |= state[k] == KHSM_KEY_STATE_READY;
		ready_published |= published[k] && state[k] == KHSM_KEY_STATE_READY;
		active_published |= published[k] && state[k] == KHSM_KEY_STATE_ACTIVE;
		partial_wanted |= have > 0 && have < server_count && ds_wanted(state[k]);
		khsm_dnskey_info_t info = { 0 };
		(void)khsm_dnskey_info(set.keys[k], &info);
		if (have > 0 && have < server_count) {
			fprintf(stderr, "note: %s: the DS of KSK %u is on %zu of the %zu parent servers; it "
			        "counts when all have it\n", name, (unsigned)info.key_tag, have, server_count);
		}
		if (published[k]) {
			printf("%s: parent has the DS of KSK %u%s%s (%s): ", name, (unsigned)info.key_tag,
			       kk ? ", key id " : "", kk ? kk->id : "",
			       state[k] == KHSM_KEY_STATE_ACTIVE ? "active" :
			       state[k] == KHSM_KEY_STATE_READY ? "ready, waiting for the DS" : "neither ready nor active");
			print_ds(stdout, "", first);
		}
	}

	/* DS records at the parent that belong to none of our KSKs. */
	for (size_t d = 0; d < answers[0].count; d++) {
		bool ours = false;
		for (size_t k = 0; k < set.count && !ours; k++) {
			bool m = false;
			ours = khsm_ds_matches(&answers[0].ds[d], set.keys[k], &m) == KHSM_EOK && m;
		}
		if (!ours) {
			fprintf(stderr, "note: %s: the parent has a DS that matches no KSK of the zone: ", name);
			print_ds(stderr, "", &answers[0].ds[d]);
		}
	}

	/* A KSK waits for its DS: only its DS will do. With none waiting, the
	 * parent must have the DS of an active KSK (a retiring KSK's DS does not
	 * keep the zone valid, and knotd would refuse zone-ksk-submitted). */
	if (ready_any ? !ready_published : !active_published) {
		fprintf(stderr, "error: %s: the parent has no DS for %s\n", name,
		        ready_any ? "the KSK that waits for it (state ready)" : "an active KSK of the zone");
		for (size_t a = 0; a < answered; a++) {
			const answer_t *ans = &answers[a];
			if (ans->count == 0) {
				fprintf(stderr, "%s: ", name);
				print_server(stderr, ans->server);
				fprintf(stderr, " has no DS record for %s\n", name);
			}
			for (size_t d = 0; d < ans->count; d++) {
				fprintf(stderr, "%s: ", name);
				print_server(stderr, ans->server);
				print_ds(stderr, " has: ", &ans->ds[d]);
			}
		}
		size_t expected = 0;
		for (size_t k = 0; k < set.count; k++) {
				expected += ready_any ? state[k] == KHSM_KEY_STATE_READY : state[k] == KHSM_KEY_STATE_ACTIVE;
		}
		for (size_t k = 0; k < set.count; k++) {
			char *line = NULL;
			if ((ready_any ? state[k] == KHSM_KEY_STATE_READY : state[k] == KHSM_KEY_STATE_ACTIVE) &&
			    khsm_ds_line(set.keys[k], 2, &line) == KHSM_EOK) {
				fprintf(stderr, "%s: it should have%s: %s\n", name, expected > 1 ? " one of" : "", line);
				free(line);
			}
		}
		if (partial_wanted) {
			/* The servers that lack a wanted DS, or did not answer. */
			fprintf(stderr, "%s: some parent servers already have it, not yet", name);
			size_t lagging = 0;
			for (size_t s = 0; s < server_count; s++) {
				const answer_t *ans = NULL;
				for (size_t a = 0; a < answered && !ans; a++) {
					ans = answers[a].server == &servers[s] ? &answers[a] : NULL;
				}
				if (!ans || !has_wanted(ans, &set, state, ready_any)) {
					fputs(lagging++ ? ", " : " ", stderr);
					print_server(stderr, &servers[s]);
				}
			}
			fprintf(stderr, ": the registry has it, the parent is still propagating; run this "
			        "again later\n");
		} else {
			fprintf(stderr, "%s: give it to the registry (knot-hsm -c %s %s ds, or format=epp), wait "
			        "until the parent publishes it, then run this again\n", name, khsm_conf_path(*conf),
			        name);
		}
		status = CLI_FAIL;
		goto done;
	}
	if (!ready_any) {
		printf("%s: no KSK waits for a DS; nothing to confirm\n", name);
		goto done;
	}

	r = khsm_knotc_ping(*conf);
	if (r == KHSM_ENOENT) {
		khsm_err_detail("knotd is not running (nothing answers on %s); zone-ksk-submitted needs "
		                "it: start knotd, then run this again", khsm_conf_control_socket(*conf));
	}
	if (r == KHSM_EOK) {
		r = khsm_knotc_zone_ksk_submitted(*conf, name);
	}
	if (r != KHSM_EOK) {
		status = cli_error(r, "%s", name);
		goto done;
	}
	printf("%s: knotd: zone-ksk-submitted %s done\n", name, name);

	/* Show what knotd made of it. */
	khsm_kasp_key_t *after = NULL;
	size_t after_count = 0;
	if (khsm_keymgr_list(khsm_conf_path(*conf), name, &after, &after_count) == KHSM_EOK) {
		for (size_t k = 0; k < set.count; k++) {
			const khsm_kasp_key_t *kk = kasp_key_of(after, after_count, set.keys[k]);
			if (kk && khsm_kasp_key_state(kk, (int64_t)time(NULL)) == KHSM_KEY_STATE_ACTIVE) {
				printf("%s: KSK %u: active\n", name, (unsigned)kk->tag);
			}
		}
		free(after);
	} else {
		khsm_err_clear();
	}

done:
	free(published);
	free(state);
	for (size_t a = 0; answers && a < answered; a++) {
		khsm_ds_free(answers[a].ds, answers[a].count);
	}
	free(answers);
	khsm_servers_free(servers, server_count);
	free(kasp);
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
	khsm_conf_t *conf = NULL;
	int status = CLI_OK;
	for (int i = 0; i < cli->zone_count; i++) {
		int s = submitted_zone(cli, &conf, i, kv_get(args, "server"));
		if (s != CLI_OK) {
			status = s;
		}
	}
	khsm_conf_free(conf);
	return status;
}
