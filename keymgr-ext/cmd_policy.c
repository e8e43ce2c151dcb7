/* policy: render the knot.conf pieces that keep the KSK on the card and roll
 * a software ZSK, check them with knotc, and write them only to files
 * knot-hsm owns. The arithmetic and the text come from lib/policy. */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/dname.h"
#include "cleanup.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/files.h"
#include "lib/json.h"
#include "lib/guard/conf.h"
#include "lib/guardsetup.h"
#include "lib/knot.h"
#include "lib/confgen.h"
#include "lib/policy.h"
#include "lib/policyzones.h"
#include "lib/uri.h"
#include "budget_print.h"
#include "zonecmd.h"


/* Refuse to overwrite a file knot-hsm did not write, unless --force, and a
 * link or a non-regular file always. */
static int check_owned(const char *path, bool force)
{
	return khsm_policy_check_target(path, force);
}

/* Write atomically, mode 0640; as root, group of the directory (on Debian
 * /etc/knot is root:knot), so knotd can read it after dropping privileges. */
static int write_owned(const char *path, const char *text)
{
	return khsm_file_write_atomic(path, text, strlen(text), 0640, KHSM_FILE_DIR_GROUP);
}

/* guard=yes: the card keystore's config with the guard module in place of
 * the card's own, after checking that the guard's configuration names that
 * module. \param[out] config_ptr  free(). */
static int guard_config(const char *card_config, char **config_ptr)
{
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	int r = khsm_uri_split_config(card_config, &uri, &module);
	if (r != KHSM_EOK) return r;
	if (khsm_guard_is_module(module)) {
		return (*config_ptr = strdup(card_config)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	_cleanup_free_ char *conf_path = NULL;
	khsm_guard_conf_t gc = { 0 };
	r = khsm_guard_conf_find(module, "the card keystore", &conf_path, &gc);
	khsm_guard_conf_clear(&gc);
	bool unset = false;
	if ((r == KHSM_ENOENT || r == KHSM_ECONFIG) && conf_path &&
	    khsm_guard_conf_unset(conf_path, &unset) == KHSM_EOK && unset) {
		/* None yet, or the package's all-comments file: the one step that sets it up. */
		_cleanup_free_ char *cmd = NULL;
		if (khsm_guard_setup_command_uri(uri, &cmd) != KHSM_EOK) return KHSM_ENOMEM;
		bool missing = access(conf_path, F_OK) != 0;
		khsm_err_detail("%s guard configuration %s%s%s; %s sets the guard up in one step",
		                missing ? "no" : "the", missing ? "at " : "", conf_path,
		                missing ? "" : " sets nothing (comments only)", cmd);
		r = missing ? KHSM_ENOENT : KHSM_ECONFIG;
	}
	if (r != KHSM_EOK) return r;
	return asprintf(config_ptr, "%s %s", uri, khsm_guard_module_path()) < 0 ? KHSM_ENOMEM : KHSM_EOK;
}

/* --json: what the text output says, as one object (texts with a pin-value
 * shown as ***, as on the terminal). */
static int print_json(const khsm_policy_t *p, const khsm_policy_stats_t *st, const char *version,
                      char *const *zones, int zone_count, bool written, bool included,
                      const char *main_path, const char *main_text, const char *ksk_path,
                      const char *ksk_text, const char *ksk_db, const khsm_budget_card_t *budget,
                      const khsm_budget_card_t *others, size_t n_others)
{
	_cleanup_free_ char *shown_main = NULL, *shown_ksk = NULL;
	if (khsm_redact(main_text, &shown_main) != KHSM_EOK ||
	    (ksk_text && khsm_redact(ksk_text, &shown_ksk) != KHSM_EOK)) {
		return cli_error(KHSM_ENOMEM, NULL);
	}
	khsm_json_t j;
	khsm_json_init(&j, stdout, KHSM_JSON_LINES);
	khsm_json_object(&j, NULL);
	khsm_json_str(&j, "mode", khsm_mode_name(p->mode));
	khsm_json_str(&j, "knot_version", version);
	khsm_json_array(&j, "zones");
	for (int i = 0; i < zone_count; i++) khsm_json_str(&j, NULL, zones[i]);
	khsm_json_end(&j);
	khsm_json_bool(&j, "written", written);
	khsm_json_bool(&j, "included", included);
	khsm_json_array(&j, "files");
	khsm_json_object(&j, NULL);
	khsm_json_str(&j, "path", main_path);
	khsm_json_str(&j, "side", ksk_text ? "zsk" : "knotd");
	khsm_json_null(&j, "kasp_db");
	khsm_json_str(&j, "text", shown_main);
	khsm_json_end(&j);
	if (ksk_text) {
		khsm_json_object(&j, NULL);
		khsm_json_str(&j, "path", ksk_path);
		khsm_json_str(&j, "side", "ksk");
		khsm_json_str(&j, "kasp_db", ksk_db);
		khsm_json_str(&j, "text", shown_ksk);
		khsm_json_end(&j);
	}
	khsm_json_end(&j);
	khsm_json_uint(&j, "card_signatures_per_zone_year", st->card_signatures_per_year);
	khsm_json_uint(&j, "card_signatures_per_zone_peak_day", st->card_signatures_peak_day);
	khsm_json_int(&j, "outage_survived_seconds", st->outage_survived);
	if (budget) {
		budget_card_json(&j, "card_budget", budget);
	} else {
		khsm_json_null(&j, "card_budget");
	}
	khsm_json_array(&j, "other_cards");
	for (size_t i = 0; i < n_others; i++) budget_card_json(&j, NULL, &others[i]);
	khsm_json_end(&j);
	if (p->mode == KHSM_MODE_OFFLINE) {
		khsm_json_int(&j, "ceremony_until_seconds", p->until);
		khsm_json_int(&j, "ceremony_interval_seconds", p->interval);
	} else {
		khsm_json_null(&j, "ceremony_until_seconds");
		khsm_json_null(&j, "ceremony_interval_seconds");
	}
	khsm_json_end(&j);
	putchar('\n');
	return CLI_OK;
}

static void print_stats(const khsm_policy_t *p, const khsm_policy_stats_t *st, const char *prefix)
{
	char outage[64], until[64], interval[64];
	khsm_duration_human(st->outage_survived, outage, sizeof(outage));
	printf("%scard signatures per zone and year: %llu\n", prefix,
	       (unsigned long long)st->card_signatures_per_year);
	printf("%scard signatures per zone on its busiest day: %llu (%s)\n", prefix,
	       (unsigned long long)st->card_signatures_peak_day,
	       p->mode == KHSM_MODE_OFFLINE ? "a ceremony" : "most in 24 hours");
	if (p->mode == KHSM_MODE_OFFLINE) {
		khsm_duration_human(p->until, until, sizeof(until));
		khsm_duration_human(p->interval, interval, sizeof(interval));
		printf("%slongest card outage survived: %s (ceremony until=+%s every %s at most)\n", prefix,
		       outage, until, interval);
	} else {
		printf("%slongest card outage survived: %s (rrsig-refresh)\n", prefix, outage);
	}
}

static void print_plan(const khsm_policyzones_plan_t *plan, const char *prefix)
{
	for (size_t i = 0; i < plan->kept.count; i++) printf("%skept: %s\n", prefix, plan->kept.names[i]);
	for (size_t i = 0; i < plan->added.count; i++) printf("%sadded: %s\n", prefix, plan->added.names[i]);
	for (size_t i = 0; i < plan->removed_now.count; i++) {
		printf("%sremoved: %s\n", prefix, plan->removed_now.names[i]);
	}
}

int cmd_policy(cli_t *cli)
{
	kv_t kv[] = { { "mode", NULL }, { "zsk-lifetime", NULL }, { "rrsig-lifetime", NULL },
	              { "rrsig-refresh", NULL }, { "dnskey-ttl", NULL }, { "zone-max-ttl", NULL },
	              { "propagation-delay", NULL }, { "algorithm", NULL }, { "shared-ksk", NULL },
	              { "keystore", NULL }, { "ksk-conf", NULL }, { "ksk-kasp-db", NULL },
	              { "guard", NULL }, { "remove", NULL }, { "key-slots", NULL }, { "cds", NULL },
	              { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;

	int major = 0, minor = 0, patch = 0;
	int r = khsm_knot_version("knotd", &major, &minor, &patch);
	if (r != KHSM_EOK) return cli_error(r, "knotd --version");
	khsm_mode_t mode = khsm_mode_default(major, minor);
	if (kv_get(kv, "mode") && khsm_mode_from_name(kv_get(kv, "mode"), &mode) != KHSM_EOK) {
		return cli_usage_error(cli_current, "mode= takes offline or online, not '%s'", kv_get(kv, "mode"));
	}
	if ((r = khsm_mode_supported(mode, major, minor)) != KHSM_EOK) {
		return cli_error(r, "mode=%s", khsm_mode_name(mode));
	}
	khsm_policy_t pol;
	khsm_policy_defaults(&pol, mode);
	for (const kv_t *k = kv; k->key; k++) {
		if (!k->value || strcmp(k->key, "mode") == 0 || strcmp(k->key, "keystore") == 0 ||
		    strcmp(k->key, "ksk-conf") == 0 || strcmp(k->key, "ksk-kasp-db") == 0 ||
		    strcmp(k->key, "guard") == 0 || strcmp(k->key, "remove") == 0 ||
		    strcmp(k->key, "key-slots") == 0) {
			continue;
		}
		if ((r = khsm_policy_set(&pol, k->key, k->value)) != KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			return cli_usage_error(cli_current, "%s", d ? d : khsm_strerror(r));
		}
	}
	if ((r = khsm_policy_check(&pol)) != KHSM_EOK) return cli_error(r, "policy");
	khsm_policy_stats_t st;
	if ((r = khsm_policy_stats(&pol, &st)) != KHSM_EOK) return cli_error(r, "policy");

	_cleanup_conf_ khsm_conf_t *conf = NULL;
	if ((r = khsm_conf_load(zone_conf_path(cli), &conf)) != KHSM_EOK) {
		return cli_error(r, "%s", zone_conf_path(cli));
	}
	const char *remove_opt = kv_get(kv, "remove");
	if (remove_opt && strcmp(remove_opt, "yes") != 0 && strcmp(remove_opt, "no") != 0) {
		return cli_usage_error(cli_current, "remove= takes yes or no, not '%s'", remove_opt);
	}
	bool remove = remove_opt && strcmp(remove_opt, "yes") == 0;
	char **zones = calloc((size_t)cli->zone_count, sizeof(char *));
	if (!zones) return cli_error(KHSM_ENOMEM, NULL);
	rc = CLI_OK;
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		if ((r = khsm_zone_normalize(cli->zones[i], &zones[i])) != KHSM_EOK) {
			rc = cli_error(r, "zone '%s'", cli->zones[i]);
		} else if (!remove && !khsm_conf_zone_find(conf, zones[i])) {
			khsm_err_detail("zone %s is not in %s; add it there first", zones[i], khsm_conf_path(conf));
			rc = cli_error(KHSM_ENOENT, NULL);
		}
		for (int j = 0; rc == CLI_OK && j < i; j++) {
			if (strcmp(zones[i], zones[j]) == 0) {
				rc = cli_usage_error(cli_current, "zone %s given twice", zones[i]);
			}
		}
	}
	const khsm_conf_keystore_t *card = NULL;
	if (rc == CLI_OK && (r = khsm_policy_pick_card(conf, kv_get(kv, "keystore"), &card)) != KHSM_EOK) {
		rc = cli_error(r, NULL);
	}
	/* guard=yes: the card keystore goes through the guard module. */
	const char *guard = kv_get(kv, "guard");
	_cleanup_free_ char *card_config = NULL;
	if (rc == CLI_OK && guard && strcmp(guard, "yes") != 0 && strcmp(guard, "no") != 0) {
		rc = cli_usage_error(cli_current, "guard= takes yes or no, not '%s'", guard);
	}
	if (rc == CLI_OK && guard && strcmp(guard, "yes") == 0 && card && card->config &&
	    (r = guard_config(card->config, &card_config)) != KHSM_EOK) {
		rc = cli_error(r, "guard=yes");
	}
	/* No guard=: through the guard when its configuration names the card's
	 * module (a commented-out shipped file names none), else not, with a note. */
	if (rc == CLI_OK && !guard && card && card->config &&
	    guard_config(card->config, &card_config) != KHSM_EOK) {
		const char *why = khsm_err_last_detail();
		fprintf(stderr, "note: the card keystore does not go through the guard (%s); run policy "
		        "again once it is set up (guard=no keeps it out)\n", why ? why : "no guard configuration");
		khsm_err_clear();
	}

	/* File layout: --write FILE is the include; the KSK side is its sibling
	 * FILE-ksk.conf (or ksk-conf=); without --write, the defaults next to
	 * knot.conf: knot-hsm.conf and knot-hsm-ksk.conf. */
	_cleanup_free_ char *conf_real = realpath(khsm_conf_path(conf), NULL);
	khsm_policy_paths_t paths = { 0 };
	if (rc == CLI_OK) {
		r = khsm_policy_plan_paths(khsm_conf_path(conf), khsm_conf_kasp_db(conf), cli->write,
		                           kv_get(kv, "ksk-conf"), kv_get(kv, "ksk-kasp-db"), &paths);
		if (r == KHSM_EEXIST) {
			rc = cli_usage_error(cli_current, "%s", khsm_err_last_detail());
		} else if (r != KHSM_EOK) {
			khsm_err_clear();
			rc = cli_error(KHSM_EINVAL, "paths");
		}
	}
	const char *main_path = paths.main_path, *ksk_path = paths.ksk_path, *ksk_db = paths.ksk_db;

	/* Never clobber the operator's files: decided before anything else. */
	if (rc == CLI_OK && cli->write &&
	    ((r = check_owned(main_path, cli->force)) != KHSM_EOK ||
	     (mode == KHSM_MODE_OFFLINE && (r = check_owned(ksk_path, cli->force)) != KHSM_EOK))) {
		rc = cli_error(r, NULL);
	}
	/* The zones: those the written files list stay, the given ones are added
	 * (or, remove=yes, taken out); none leaves the KSK side unnamed. */
	khsm_zonelist_t listed = { 0 }, was_removed = { 0 }, in_kasp = { 0 };
	khsm_policyzones_plan_t plan = { 0 };
	if (rc == CLI_OK &&
	    ((r = khsm_policyzones_read_file(main_path, &listed, &was_removed)) != KHSM_EOK ||
	     (r = khsm_policyzones_read_file(ksk_path, &listed, &was_removed)) != KHSM_EOK ||
	     (mode == KHSM_MODE_OFFLINE && (r = khsm_policyzones_kasp(ksk_db, &in_kasp)) != KHSM_EOK) ||
	     (r = khsm_policyzones_plan(&listed, &was_removed, &in_kasp, (const char *const *)zones,
	                                (size_t)cli->zone_count, remove, &plan)) != KHSM_EOK)) {
		rc = cli_error(r, NULL);
	}
	khsm_zonelist_clear(&listed);
	khsm_zonelist_clear(&was_removed);
	khsm_zonelist_clear(&in_kasp);

	_cleanup_free_ char *main_text = NULL;
	_cleanup_free_ char *ksk_text = NULL;
	/* The other cards of knot.conf go to the KSK side too. */
	const char **more_ids = NULL, **more_configs = NULL;
	size_t n_more = 0;
	if (rc == CLI_OK && card &&
	    (r = khsm_policy_other_cards(conf, card, &more_ids, &more_configs, &n_more)) != KHSM_EOK) {
		rc = cli_error(r, NULL);
	}
	/* key-slots=: the card's capacity, kept in the header of the file the
	 * card's side reads (KSK side offline, the include online) across runs. */
	_cleanup_free_ char *key_slots = NULL;
	if (rc == CLI_OK && card) {
		_cleanup_free_ char *kept = NULL;
		(void)khsm_policy_file_header(mode == KHSM_MODE_OFFLINE ? ksk_path : main_path, "key-slots", &kept);
		if ((r = khsm_budget_slots_merge(conf, kv_get(kv, "key-slots"), card->id, kept, &key_slots)) !=
		    KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			rc = r == KHSM_EINVAL ? cli_usage_error(cli_current, "%s", d ? d : khsm_strerror(r))
			                      : cli_error(r, NULL);
		}
	}
	khsm_render_t in = { (const char *const *)plan.zones.names, plan.zones.count,
	                     card ? card->id : NULL, card_config ? card_config : card ? card->config : NULL,
	                     ksk_path, ksk_db, (const char *const *)plan.removed.names, plan.removed.count,
	                     conf_real ? conf_real : khsm_conf_path(conf), more_ids, more_configs, n_more,
	                     key_slots };
	/* The card budget of this policy's zones, the card's slots read (no login). */
	khsm_budget_card_t budget = { 0 };
	khsm_card_probes_t *probes = rc == CLI_OK && card && card->config ? khsm_card_probes_new() : NULL;
	bool have_budget = probes &&
	                   khsm_budget_one(card->id, card_config ? card_config : card->config, plan.zones.count,
	                                   &st, key_slots, probes,
	                                   &budget) == KHSM_EOK;
	/* The other cards of knot.conf: no zone of this policy, their slots. */
	khsm_budget_card_t *others = have_budget && n_more ? calloc(n_more, sizeof(*others)) : NULL;
	size_t n_others = 0;
	for (size_t i = 0; others && i < n_more; i++) {
		if (khsm_budget_one(more_ids[i], more_configs[i], 0, &st, key_slots, probes, &others[n_others]) ==
		    KHSM_EOK) {
			n_others++;
		}
	}
	khsm_card_probes_free(probes);
	khsm_err_clear();
	if (rc == CLI_OK && (r = khsm_confgen_policy_main(&pol, &in, &main_text)) != KHSM_EOK) {
		rc = cli_error(r, "render");
	}
	if (rc == CLI_OK && mode == KHSM_MODE_OFFLINE &&
	    (r = khsm_confgen_policy_ksk(&pol, &in, &ksk_text)) != KHSM_EOK) {
		rc = cli_error(r, "render");
	}

	/* Check both with knotc before anything is written. */
	bool included = false;
	if (rc == CLI_OK && (r = khsm_confgen_knotc_check_rendered(khsm_conf_path(conf), main_path, main_text,
	                                                           ksk_text, &included)) != KHSM_EOK) {
		rc = cli_error(r, "check");
	}

	char version[48];
	snprintf(version, sizeof(version), "%d.%d.%d", major, minor, patch);
	_cleanup_free_ char *shown_main = NULL, *shown_ksk = NULL;
	if (rc == CLI_OK && !cli->write) {
		/* On the terminal a pin-value is hidden; --write writes the config as it is. */
		if (khsm_redact(main_text, &shown_main) != KHSM_EOK ||
		    (ksk_text && khsm_redact(ksk_text, &shown_ksk) != KHSM_EOK)) {
			rc = cli_error(KHSM_ENOMEM, NULL);
		}
	}
	if (rc == CLI_OK && !cli->write && cli->json) {
		rc = print_json(&pol, &st, version, zones, cli->zone_count, false, included, main_path,
		                main_text, ksk_path, ksk_text, ksk_db, have_budget ? &budget : NULL,
		                others, n_others);
	} else if (rc == CLI_OK && !cli->write) {
		printf("# ==> %s <==\n%s", main_path, shown_main);
		if (ksk_text) {
			printf("\n# ==> %s <==\n%s", ksk_path, shown_ksk);
		}
		printf("\n");
		if (strcmp(shown_main, main_text) != 0 || (ksk_text && strcmp(shown_ksk, ksk_text) != 0)) {
			printf("# the PIN in the keystore config (pin-value) is shown as ***; --write writes it:\n"
			       "# better put it in a 0600 file and use pin-source (knot-hsm keystore --pin-file)\n");
		}
		print_stats(&pol, &st, "# ");
		if (have_budget) budget_card_text(&budget, "# ");
		for (size_t i = 0; i < n_others; i++) budget_card_text(&others[i], "# ");
		print_plan(&plan, "# ");
		printf("# checked with knotc conf-check; write it with --write %s\n", main_path);
	} else if (rc == CLI_OK) {
		/* Again just before writing: the check above ran before knotc. */
		if ((r = check_owned(main_path, cli->force)) != KHSM_EOK ||
		    (ksk_text && (r = check_owned(ksk_path, cli->force)) != KHSM_EOK)) {
			rc = cli_error(r, NULL);
		}
		if (rc == CLI_OK && ksk_text && (r = khsm_policy_make_dir(ksk_db)) != KHSM_EOK) {
			rc = cli_error(r, NULL);
		}
		if (rc == CLI_OK && ksk_text && (r = write_owned(ksk_path, ksk_text)) != KHSM_EOK) {
			rc = cli_error(r, NULL);
		}
		if (rc == CLI_OK && (r = write_owned(main_path, main_text)) != KHSM_EOK) {
			rc = cli_error(r, NULL);
		}
		if (rc == CLI_OK && cli->json) {
			rc = print_json(&pol, &st, version, zones, cli->zone_count, true, included, main_path,
			                main_text, ksk_path, ksk_text, ksk_db, have_budget ? &budget : NULL,
			                others, n_others);
		} else if (rc == CLI_OK) {
			printf("mode: %s (Knot %d.%d.%d)\n", khsm_mode_name(mode), major, minor, patch);
			printf("wrote %s (%s)\n", main_path, ksk_text ? "ZSK side, for knotd" : "for knotd");
			if (ksk_text) {
				printf("wrote %s (KSK side, for the ceremony; KASP %s)\n", ksk_path, ksk_db);
			}
			print_stats(&pol, &st, "");
			if (have_budget) budget_card_text(&budget, "");
			for (size_t i = 0; i < n_others; i++) budget_card_text(&others[i], "");
			print_plan(&plan, "");
			printf("next steps:\n");
			if (!included) {
				printf("  add to %s, before its zone section: include: %s\n",
				       khsm_conf_path(conf), main_path);
			}
			for (int i = 0; remove && i < cli->zone_count; i++) {
				printf("  zone %s: give it another dnssec-policy in %s or take it out; its KSK "
				       "stays on the card and in %s until 'knot-hsm -c %s %s delete id=ID'\n",
				       zones[i], khsm_conf_path(conf), ksk_db, ksk_path, zones[i]);
			}
			for (int i = 0; !remove && i < cli->zone_count; i++) {
				const khsm_conf_zone_t *z = khsm_conf_zone_find(conf, zones[i]);
				const khsm_conf_policy_t *zp = NULL;
				bool signing = false;
				khsm_conf_zone_policy(conf, z, &zp);
				khsm_conf_zone_signing(conf, z, &signing);
				khsm_err_clear();
				if (!zp || strcmp(zp->id, KHSM_POLICY_ID) != 0 || !signing) {
					printf("  zone %s: set dnssec-signing: on and dnssec-policy: %s\n", zones[i],
					       KHSM_POLICY_ID);
				}
			}
			if (ksk_text) {
				_cleanup_free_ char *def_ksk = ksk_side_path(khsm_conf_path(conf));
				bool default_place = def_ksk && strcmp(def_ksk, ksk_path) == 0;
				printf("  KSK on the card, per zone without one: knot-hsm -c %s ZONE generate\n", ksk_path);
				printf("  then: knot-hsm%s%s ZONE... ceremony%s%s\n", cli->conf ? " -c " : "",
				       cli->conf ? cli->conf : "", default_place ? "" : " ksk-conf=",
				       default_place ? "" : ksk_path);
			}
		}
	}
	for (int i = 0; i < cli->zone_count; i++) free(zones[i]);
	free(zones);
	khsm_policyzones_plan_clear(&plan);
	khsm_policy_paths_clear(&paths);
	khsm_budget_card_clear(&budget);
	for (size_t i = 0; i < n_others; i++) khsm_budget_card_clear(&others[i]);
	free(others);
	free(more_ids);
	free(more_configs);
	if (rc == CLI_OK && st.outage_survived < KHSM_OUTAGE_GOAL) {
		char h[64];
		khsm_duration_human(st.outage_survived, h, sizeof(h));
		fprintf(stderr, "warning: this policy survives a card outage of %s only, less than 7 days\n", h);
	}
	return rc;
}
