/* Shared by zone commands: key=value arguments checked against a table,
 * knot.conf and the zone resolved, knotd told about KASP changes. */
#pragma once

#include <stdbool.h>

#include "cli.h"
#include "lib/kasp.h"
#include "lib/knotconf.h"
#include "lib/zone.h"

/* key=value arguments a command accepts; values stay in argv. */
typedef struct {
	const char *key;
	const char *value;   /* NULL when not given */
} kv_t;

/** Fill table (terminated by a NULL key) from cli->args. Unknown keys,
 *  repeated keys and empty values are usage errors (CLI_USAGE). */
int kv_parse(const cli_t *cli, kv_t *table);

/** Value of key in a parsed table, or NULL. */
const char *kv_get(const kv_t *table, const char *key);

/** Parse yes/no strictly (keymgr reads "on" as false, so only these). */
int kv_bool(const char *key, const char *value, bool *out);

/** Check a keymgr timer value strictly (UNIX time or YYYYMMDDHHMMSS digits,
 *  0 to unset, or +/-N with an optional unit mi, h, d, w, M, y) so that
 *  keymgr never rejects it halfway through a command. */
int kv_timer(const char *key, const char *value);

/** Where policy --write puts the KSK side of the offline mode for this
 *  knot.conf (khsm_policy_ksk_side: knot-hsm-ksk.conf next to it, symbolic
 *  links resolved). New string, free with free(). */
char *ksk_side_path(const char *conf_path);

/** heal for one online zone (cmd_heal.c): one line on stdout, or stderr
 *  when to_stderr or on error, and to syslog; CLI_OK or CLI_FAIL. keys: the
 *  zone's keys already listed, or NULL (khsm_heal lists them). */
int heal_zone(const khsm_conf_t *conf, const char *zone, bool to_stderr, const khsm_kasp_keys_t *keys);

/** knot.conf path: -c, or Knot's default. */
const char *zone_conf_path(const cli_t *cli);

/** Load knot.conf and resolve one zone; prints the error on failure. */
int zone_open(const cli_t *cli, const char *zone_arg, const char *keystore_id,
              khsm_conf_t **conf_ptr, khsm_zone_t *zone);

/** After a KASP change: if knotd answers on its control socket, make it
 *  load the zone's keys (knotc zone-keys-load) and say so on out (stdout,
 *  or stderr under --json). */
void zone_reload_keys(const khsm_conf_t *conf, const char *zone, FILE *out);
