/* knot-hsm command line: shared state of one invocation and printing helpers.
 * The CLI parses, dispatches and prints; the work is done in libknothsm. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "lib/enroll.h"
#include "lib/keystore.h"
#include "lib/pin.h"

enum cli_exit {
	CLI_OK = 0,
	CLI_FAIL = 1,
	CLI_USAGE = 2,
};

/* Options; which ones a command accepts is in its table entry, all of them. */
enum cli_opt {
	OPT_CONF      = 1 << 0,
	OPT_MODULE    = 1 << 1,
	OPT_TOKEN     = 1 << 2,
	OPT_PIN_FILE  = 1 << 3,
	OPT_PIN_FD    = 1 << 4,
	OPT_FORCE     = 1 << 5,
	OPT_JSON      = 1 << 6,
	OPT_OBJECT    = 1 << 7,
	OPT_ID        = 1 << 8,
	OPT_TYPE      = 1 << 9,
	OPT_PIN_IN_CONFIG = 1 << 11,
	OPT_WRITE     = 1 << 12,
	OPT_WARN      = 1 << 13,
	OPT_CRIT      = 1 << 14,
	OPT_GUARD     = 1 << 15,
	OPT_REMOTE    = 1 << 19,   /* keystore/doctor --remote SOCKET */
	OPT_HEAD      = 1 << 20,   /* audit verify --head HEX */
	OPT_ANCHOR    = 1 << 21,   /* audit verify --anchor FILE */
	OPT_HEAL      = 1 << 22,   /* status --heal */
};

typedef struct {
	const char *conf;
	const char *module;
	const char *token;
	const char *pin_file;
	int pin_fd;           /* -1 when not given */
	bool force;
	bool json;
	const char *object;
	const char *id;
	const char *type;
	bool pin_in_config;
	const char *write;    /* policy --write FILE */
	const char *warn;     /* status --warn DAYS */
	const char *crit;     /* status --crit DAYS */
	bool guard;           /* keystore --guard: through the guard module */
	const char *remote;   /* keystore/doctor --remote SOCKET: p11-kit server's socket */
	bool heal;            /* status --heal: heal each online zone first */
	const char *head;     /* audit verify --head HEX */
	const char *anchor;   /* audit verify --anchor FILE */
	unsigned given;       /* OPT_* bits seen on the command line */

	char **zones;         /* zone commands: the zones before the command */
	int zone_count;
	char **args;          /* zone commands: key=value arguments */
	int arg_count;
	khsm_kasp_keep_t *kasp_keep;  /* generate, import: every zone's KASP kept by the caller
	                                 across calls (ceremony generate-ksk=yes), or NULL */
	khsm_login_hold_t *login_hold; /* card logins kept for a run over many zones, or NULL */
	khsm_enroll_memo_t *enroll_memo; /* generate, import: the card key proven last, kept by
	                                    the caller across calls (lib/enroll.h), or NULL */
	khsm_conf_t **enroll_conf;     /* generate, import: the knot.conf read once, kept (and
	                                  freed) by the caller across calls, or NULL */
	bool in_ceremony;              /* generate, import for ceremony generate-ksk=yes: no
	                                  knotd reload, the ceremony's SKR import does it */
} cli_t;

typedef struct {
	const char *name;
	bool zone_command;
	unsigned options;     /* every OPT_* it accepts; main() refuses any other */
	int (*run)(cli_t *cli);
	const char *synopsis;
	const char *help;
	bool positional;      /* token-wide command with arguments after its name, kept in
	                         zones/zone_count (status: ZONE...; audit: verify|tail FILE) */
	int usage_exit;       /* exit code of usage errors when not 2 (status: 3, UNKNOWN) */
	bool zones_optional;  /* zone command that, given no zone, covers every zone it
	                         applies to (heal: each online card zone of knot.conf) */
} cli_command_t;

/** Print "error: TEXT: DETAIL" for a libknothsm code; returns CLI_FAIL. */
int cli_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** The KHSM_E* code the last cli_error() of the calling thread printed, or
 *  KHSM_EINVAL when none did (a usage error) since cli_error_code_reset(). */
int cli_error_code(void);
void cli_error_code_reset(void);

/** Print a usage error and the command's synopsis; returns CLI_USAGE. */
int cli_usage_error(const cli_command_t *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Get the PIN from --pin-file, --pin-fd or a prompt, in that order.
 *  Returns a KHSM_E* code; *pin_ptr is NULL when no source is possible. */
int cli_pin(const cli_t *cli, bool prompt, khsm_pin_t **pin_ptr);

/** Open a card keystore (config as in knot.conf) and log in once: the PIN
 *  from the config's pin-source, else from the command line (ctx: the cli).
 *  A khsm_enroll_open_t; hands over *pin_ptr and *ks_ptr on success. */
int cli_open_card(void *ctx, const char *config, khsm_pin_t **pin_ptr, khsm_keystore_t **ks_ptr);

/** The command being run (for usage messages). */
extern const cli_command_t *cli_current;

/* Commands. */
int cmd_tokens(cli_t *cli);
int cmd_uri(cli_t *cli);
int cmd_keystore(cli_t *cli);
int cmd_doctor(cli_t *cli);
int cmd_keys(cli_t *cli);
int cmd_generate(cli_t *cli);
int cmd_import(cli_t *cli);
int cmd_delete(cli_t *cli);
int cmd_ds(cli_t *cli);
int cmd_submitted(cli_t *cli);
int cmd_policy(cli_t *cli);
int cmd_ceremony(cli_t *cli);
int cmd_status(cli_t *cli);
int cmd_heal(cli_t *cli);
int cmd_audit(cli_t *cli);
int cmd_rollover(cli_t *cli);
int cmd_standby(cli_t *cli);
int cmd_failover(cli_t *cli);
