/* The guard in front of a card module, as knot-hsm sets it up: its
 * configuration found and checked against the card's module (keystore
 * --guard, policy, doctor), and written in one step when there is none
 * yet, with the audit log and its lock file made for knotd's user. The
 * configuration's format is lib/guard/conf.h; the guard itself reads it. */
#pragma once

#include <stdbool.h>

#include "guard/conf.h"

/** Default audit log of a configuration khsm_guard_setup() writes (Debian's
 *  /var/lib/knot is knotd's own directory). */
#define KHSM_GUARD_DEFAULT_AUDIT_LOG "/var/lib/knot/knot-hsm-audit.log"

/** For tests only: the audit log khsm_guard_setup() writes and creates,
 *  instead of KHSM_GUARD_DEFAULT_AUDIT_LOG. */
#define KHSM_GUARD_AUDIT_LOG_ENV "KHSM_GUARD_AUDIT_LOG"

/** Does conf name module (the same file, links followed)? KHSM_ECONFIG with
 *  the detail "the guard configuration FILE names module A, but WHO is on B"
 *  and the remedy when not. who: "token 'LABEL'", "the card keystore". */
int khsm_guard_conf_match(const khsm_guard_conf_t *conf, const char *module, const char *who);

/** Is the guard configuration at path unset: missing, or only comments and
 *  blank lines (as the package ships it)? A file that cannot be read is an
 *  error. */
int khsm_guard_conf_unset(const char *path, bool *unset_ptr);

/** The guard's configuration for a card module: the guard module installed,
 *  its configuration located, loaded and naming module (see
 *  khsm_guard_conf_match() for who). KHSM_ENOENT when there is none.
 *  \param[out] path_ptr  where it is (or would be); free(); may be set on failure.
 *  \param[out] conf      clear with khsm_guard_conf_clear(), also on failure. */
int khsm_guard_conf_find(const char *module, const char *who, char **path_ptr,
                         khsm_guard_conf_t *conf);

/** What khsm_guard_setup() did. */
typedef struct {
	bool wrote_conf;     /* the configuration was unset and is now written */
	char *conf_written;  /* the file written (the target of the package's link); free() */
	char *audit_log;     /* the audit log it names; free() */
	char *lock_file;     /* and its lock file; free() */
	bool created_log;    /* the audit log was made (else it existed, knotd's) */
	bool created_lock;   /* the lock file was made */
	char *owner;         /* the user the files belong to; free() */
} khsm_guard_setup_t;

/** Free the strings and zero. */
void khsm_guard_setup_clear(khsm_guard_setup_t *done);

/** khsm_guard_conf_find(), and when the configuration is unset, first write
 *  it for module with the default audit log, after creating that log and
 *  its lock file (mode 0640, owned by knotd's user, exclusively and never
 *  through a link; existing ones must be knotd's regular files). A symbolic
 *  link at the configuration's path is followed only when it is the
 *  package's (beside the guard module, root's, in a directory only root can
 *  write), never for KHSM_GUARD_CONF. Nothing is left behind on failure.
 *  A configuration with settings is never rewritten. as_root: the command
 *  named when permission is missing ("run as root: AS_ROOT"); may be NULL.
 *  \param[out] path_ptr, conf  as khsm_guard_conf_find().
 *  \param[out] done  clear with khsm_guard_setup_clear(), also on failure. */
int khsm_guard_setup(const char *module, const char *who, const char *as_root, char **path_ptr,
                     khsm_guard_conf_t *conf, khsm_guard_setup_t *done);

/** The one command that sets the guard up for a token:
 *  "knot-hsm keystore [--module MODULE] --token 'LABEL' [--pin-file PATH] --guard",
 *  values quoted for a shell where needed. module, pin_file may be NULL.
 *  \param[out] cmd_ptr  free(). */
int khsm_guard_setup_command(const char *module, const char *label, const char *pin_file,
                             char **cmd_ptr);

/** khsm_guard_setup_command() for the token and pin-source of a keystore
 *  URI (placeholders where the URI names none). \param[out] cmd_ptr  free(). */
int khsm_guard_setup_command_uri(const char *uri, char **cmd_ptr);
