/* Running Knot's tools without a shell: posix_spawn, an argv array, captured
 * stdout and stderr, optional data on stdin. The child gets the parent's
 * environment (a PIN is never put there; khsm_run_env() sets a variable for
 * one child), default SIGPIPE, and no open descriptor but 0-2 and those the
 * caller names (not a --pin-fd one). */
#pragma once

#include <stddef.h>

/* What a finished program left behind. out and err are NUL-terminated. */
typedef struct {
	char *out;        /* captured stdout, never NULL after a successful run */
	size_t out_len;
	char *err;        /* captured stderr, never NULL after a successful run */
	size_t err_len;
	int status;       /* exit code, or 128 + signal number when killed */
} khsm_run_t;

/** Run argv[0] (an absolute path) with argv, feed stdin_data (may be NULL) on
 *  its stdin and capture its output. KHSM_EOK whenever the program ran,
 *  whatever its exit status; KHSM_ENOENT when the binary is missing.
 *  \param[out] res  free its buffers with khsm_run_clear(); untouched on error. */
int khsm_run(const char *const argv[], const char *stdin_data, khsm_run_t *res);

/** khsm_run() with the environment changed for the child only: each
 *  "NAME=value" of env_add (NULL-terminated) replaces or adds NAME. */
int khsm_run_env(const char *const argv[], const char *stdin_data, const char *const *env_add,
                 khsm_run_t *res);

/* Most descriptors khsm_run_keep() passes on. */
#define KHSM_RUN_KEEP_MAX 8

/** khsm_run() that also passes keep[0..n_keep-1] (each > 2, at most
 *  KHSM_RUN_KEEP_MAX) to the child, where keep[i] is descriptor 3 + i; every
 *  other descriptor above 2 is closed in the child. KHSM_EINVAL for a
 *  descriptor that is not open. \param[out] res  as for khsm_run(). */
int khsm_run_keep(const char *const argv[], const char *stdin_data,
                  const int *keep, size_t n_keep, khsm_run_t *res);

/** Free (and wipe) the buffers of a result and zero it. */
void khsm_run_clear(khsm_run_t *res);

/** Path of a Knot tool: "keymgr", "knotc" or "knotd". The environment
 *  variables KHSM_KEYMGR, KHSM_KNOTC and KHSM_KNOTD override the built-in
 *  KHSM_SBINDIR. Static or environment string, not
 *  to be freed; NULL for an unknown name. */
const char *khsm_tool_path(const char *name);
