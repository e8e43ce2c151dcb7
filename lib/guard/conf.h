/* Configuration of the guard module (libknothsm-guard.so): a small file of
 * `key = value` lines, read at C_Initialize. Whole-line `#` comments and
 * blank lines are allowed; unknown keys, repeated keys, relative paths and
 * malformed values are refused with the file name and line number.
 *
 *   module      = /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so   (required) the card's module
 *   audit_log   = /var/lib/knot/knot-hsm-audit.log             (required) hash-chained log
 *   lock_file   = PATH      default: audit_log + ".lock"; serialises card calls across processes
 *   fail_closed = yes|no    default yes: no audit line, no signature/login/key generation
 *   verify      = auto|software|card   default auto: software when the card cannot verify
 *   fill        = yes|no    default yes: fill gaps (digest, random, hashed sign mechanisms) in software
 *   fsync       = security|all|none    default security: fsync after logins, signatures, key changes
 *   anchor_file = PATH      unset: where root processes append the log's head (lines, hash);
 *                           root's, in a directory only root can write
 *   anchor_every = N        default 100: anchor after every N lines a process wrote (and at C_Finalize)
 *   anchor_syslog = yes|no  default no: also send the head to syslog (LOG_AUTHPRIV), from any user
 *   login_final_try = refuse|allow  default refuse: C_Login(CKU_USER) at the card's final try
 *   recover     = yes|no    default yes: after a lost card (pcscd restarted, card reinserted)
 *                           make the card's module enumerate its readers again (recover.c)
 *   recover_wait = N        default 15: seconds a call waits, once per outage, for the card to
 *                           come back (0 to 300); later calls of the same outage fail at once
 *
 * Found at $KHSM_GUARD_CONF, else knot-hsm-guard.conf in the directory of the module. */
#pragma once

#include <stdbool.h>

#define KHSM_GUARD_CONF_NAME "knot-hsm-guard.conf"
#define KHSM_GUARD_CONF_ENV  "KHSM_GUARD_CONF"

typedef enum { KHSM_GUARD_VERIFY_AUTO = 0, KHSM_GUARD_VERIFY_SOFTWARE, KHSM_GUARD_VERIFY_CARD } khsm_guard_verify_t;
typedef enum { KHSM_GUARD_FSYNC_SECURITY = 0, KHSM_GUARD_FSYNC_ALL, KHSM_GUARD_FSYNC_NONE } khsm_guard_fsync_t;

typedef struct {
	char *path;         /* the file read */
	char *module;
	char *audit_log;
	char *lock_file;
	bool fail_closed;
	khsm_guard_verify_t verify;
	bool fill;
	khsm_guard_fsync_t fsync;
	char *anchor_file;
	unsigned long anchor_every;
	bool anchor_syslog;
	bool login_final_try;   /* allow a login when the token says final try */
	bool recover;           /* re-enumerate the readers after a lost card */
	unsigned recover_wait;  /* seconds, once per outage */
} khsm_guard_conf_t;

#define KHSM_GUARD_RECOVER_WAIT 15
#define KHSM_GUARD_RECOVER_WAIT_MAX 300

#define KHSM_GUARD_MODULE_ENV "KHSM_GUARD_MODULE"
#define KHSM_GUARD_MODULE_NAME "libknothsm-guard.so"

/** Path of the guard module: $KHSM_GUARD_MODULE, else where it is installed
 *  (KHSM_GUARD_PATH, set at build time). Static or environment string. */
const char *khsm_guard_module_path(void);

/** Is the module at path the guard (its file name, or the same file as
 *  khsm_guard_module_path())? */
bool khsm_guard_is_module(const char *path);

/** Where the configuration of a guard module at module_path is: the
 *  environment variable, else beside the module. \param[out] path_ptr  free(). */
int khsm_guard_conf_locate(const char *module_path, char **path_ptr);

/** Read and check a configuration file. \param[out] conf  clear with
 *  khsm_guard_conf_clear() (also after a failure). */
int khsm_guard_conf_load(const char *path, khsm_guard_conf_t *conf);

/** Parse configuration text (path only names it in messages). */
int khsm_guard_conf_parse(const char *path, const char *text, khsm_guard_conf_t *conf);

/** Free the strings and zero. */
void khsm_guard_conf_clear(khsm_guard_conf_t *conf);

/** Render a configuration file for a card module and an audit log.
 *  \param[out] text_ptr  free(). */
int khsm_guard_conf_render(const char *module, const char *audit_log, char **text_ptr);
