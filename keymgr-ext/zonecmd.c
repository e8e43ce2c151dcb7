/* Helpers of zone commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/bound.h"
#include "lib/display.h"
#include "lib/dname.h"
#include "lib/error.h"
#include "lib/files.h"
#include "lib/policy.h"
#include "lib/zonectl.h"
#include "cleanup.h"
#include "zonecmd.h"

#define DEFAULT_CONF "/etc/knot/knot.conf"

int kv_parse(const cli_t *cli, kv_t *table)
{
	for (int i = 0; i < cli->arg_count; i++) {
		const char *arg = cli->args[i];
		const char *eq = strchr(arg, '=');
		if (!eq) {
			return cli_usage_error(cli_current, "'%s' is not key=value", arg);
		}
		size_t len = (size_t)(eq - arg);
		kv_t *slot = NULL;
		for (kv_t *t = table; t->key; t++) {
			if (strlen(t->key) == len && strncmp(t->key, arg, len) == 0) {
				slot = t;
			}
		}
		if (!slot) {
			return cli_usage_error(cli_current, "'%s' does not take '%.*s='", cli_current->name,
			                       (int)len, arg);
		}
		if (slot->value) {
			return cli_usage_error(cli_current, "'%s' given twice", slot->key);
		}
		if (eq[1] == '\0') {
			return cli_usage_error(cli_current, "'%s=' needs a value", slot->key);
		}
		slot->value = eq + 1;
		/* What ends on the card or in Knot: refused when it cannot hold it. */
		static const struct { const char *key; khsm_bound_kind_t kind; } BOUNDS[] = {
			{ "label", KHSM_BOUND_KIND_KEY_LABEL }, { "id", KHSM_BOUND_KIND_ID_HEX },
			{ "ksk-conf", KHSM_BOUND_KIND_PATH }, { "ksk-kasp-db", KHSM_BOUND_KIND_PATH },
		};
		for (size_t b = 0; b < sizeof(BOUNDS) / sizeof(BOUNDS[0]); b++) {
			char what[32];
			snprintf(what, sizeof(what), "%s=", slot->key);
			if (strcmp(BOUNDS[b].key, slot->key) == 0 &&
			    khsm_bound_check(BOUNDS[b].kind, what, slot->value) != KHSM_EOK) {
				const char *d = khsm_err_last_detail();
				return cli_usage_error(cli_current, "%s", d ? d : "value too long");
			}
		}
	}
	return CLI_OK;
}

const char *kv_get(const kv_t *table, const char *key)
{
	for (const kv_t *t = table; t->key; t++) {
		if (strcmp(t->key, key) == 0) {
			return t->value;
		}
	}
	return NULL;
}

int kv_bool(const char *key, const char *value, bool *out)
{
	if (strcmp(value, "yes") == 0) {
		*out = true;
	} else if (strcmp(value, "no") == 0) {
		*out = false;
	} else {
		return cli_usage_error(cli_current, "%s= takes yes or no, not '%s'", key, value);
	}
	return CLI_OK;
}

int kv_timer(const char *key, const char *value)
{
	const char *p = value;
	bool relative = *p == '+' || *p == '-';
	p += relative;
	size_t digits = strspn(p, "0123456789");
	const char *unit = p + digits;
	bool ok = digits > 0 && (*unit == '\0' ||
	          (relative && (strcmp(unit, "mi") == 0 || (strlen(unit) == 1 && strchr("hdwMy", *unit)))));
	if (!ok) {
		return cli_usage_error(cli_current, "%s= takes a UNIX time, YYYYMMDDHHMMSS, 0 (unset) or "
		                       "+/-N[mi|h|d|w|M|y], not '%s'", key, value);
	}
	return CLI_OK;
}

char *ksk_side_path(const char *conf_path)
{
	return khsm_policy_ksk_side(conf_path);
}

const char *zone_conf_path(const cli_t *cli)
{
	return cli->conf ? cli->conf : DEFAULT_CONF;
}

/* Offline mode, a card command given the ZSK side's knot.conf: the same
 * command on the KSK side next to it, ready to paste. */
static void print_ksk_side_command(const cli_t *cli, const khsm_conf_t *conf, const char *zone_arg)
{
	_cleanup_free_ char *zone = NULL;
	_cleanup_free_ char *side = ksk_side_path(khsm_conf_path(conf));
	const khsm_conf_zone_t *z = khsm_zone_normalize(zone_arg, &zone) == KHSM_EOK
	                            ? khsm_conf_zone_find(conf, zone) : NULL;
	const khsm_conf_policy_t *p = NULL;
	if (z && side && khsm_conf_zone_policy(conf, z, &p) == KHSM_EOK && p->offline_ksk &&
	    access(side, R_OK) == 0 && cli_current) {
		fprintf(stderr, "run it on the KSK side: knot-hsm -c %s %s %s", side, zone, cli_current->name);
		for (int i = 0; i < cli->arg_count; i++) {
			const char *a = cli->args[i];
			if (strpbrk(a, " \t'\"\\$`*?[]()<>|&;#~")) {
				fputs(" '", stderr);
				for (; *a; a++) {
					if (*a == '\'') fputs("'\\''", stderr);
					else fputc(*a, stderr);
				}
				fputc('\'', stderr);
			} else {
				fprintf(stderr, " %s", a);
			}
		}
		fputc('\n', stderr);
	}
	khsm_err_clear();
}

int zone_open(const cli_t *cli, const char *zone_arg, const char *keystore_id,
              khsm_conf_t **conf_ptr, khsm_zone_t *zone)
{
	khsm_conf_t *conf = *conf_ptr;
	if (!conf) {
		int r = khsm_conf_load(zone_conf_path(cli), &conf);
		if (r != KHSM_EOK) {
			return cli_error(r, "%s", zone_conf_path(cli));
		}
		*conf_ptr = conf;
	}
	int r = khsm_zone_resolve(conf, zone_arg, keystore_id, zone);
	if (r != KHSM_EOK) {
		int rc = cli_error(r, NULL);
		if (r == KHSM_ECONFIG) {
			print_ksk_side_command(cli, conf, zone_arg);
		}
		return rc;
	}
	return CLI_OK;
}

void zone_reload_keys(const khsm_conf_t *conf, const char *zone, FILE *out)
{
	khsm_zonectl_t z = { 0 };
	int r = khsm_zonectl_reload_keys(conf, zone, &z);
	if (r != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		fprintf(stderr, "warning: knotc zone-keys-load %s failed: %s%s%s; run it by hand\n",
		        zone, khsm_strerror(r), d ? ": " : "", khsm_esc(d));
		khsm_err_clear();
	} else if (z.outcome == KHSM_ZONECTL_KSK_SIDE) {
		printf("knotd (ZSK side, %s): %s; it gets the KSK with the next ceremony: "
		       "knot-hsm -c %s %s ceremony\n", z.zsk_conf, z.zsk_running ? "running" : "not running",
		       z.zsk_conf, zone);
	} else if (z.outcome == KHSM_ZONECTL_NOT_RUNNING) {
		fprintf(out, "knotd: not running; it loads the keys when it starts\n");
	} else {
		fprintf(out, "knotd: zone-keys-load %s done\n", zone);
	}
	khsm_zonectl_clear(&z);
}
