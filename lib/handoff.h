/* Handing a secret file (a PIN, a configuration naming it) to a child tool
 * such as keymgr, which reads it by path, without leaving it on disk.
 *
 * The data goes into a sealed memfd (memfd_create, close-on-exec) that the
 * child opens as /proc/<this pid>/fd/<n>: when this process dies, even by
 * kill -9, the kernel frees it and nothing remains. A child may open that
 * path only when this process is dumpable or the child has CAP_SYS_PTRACE;
 * knot-hsm makes itself non-dumpable (no core dump may hold a PIN), so an
 * unprivileged user falls back to a 0600 file in a 0700 directory
 * TMPDIR/knot-hsm-ceremony.<pid>.XXXXXX, wiped and removed by
 * khsm_handoff_free() (and by a signal handler of the caller); what a
 * kill -9 leaves there, khsm_handoff_clean_stale() of a later run removes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct khsm_handoff khsm_handoff_t;

/** Put len bytes of data where a child can read them by path. tmpdir is used
 *  only for the fallback (NULL: /tmp); name names the memfd or file.
 *  \param[out] handoff_ptr  free with khsm_handoff_free(). */
int khsm_handoff_new(const char *tmpdir, const char *name, const void *data, size_t len,
                     khsm_handoff_t **handoff_ptr);

/** The path a child opens; valid until khsm_handoff_free(). */
const char *khsm_handoff_path(const khsm_handoff_t *h);

/** The fallback directory on disk, or NULL for a memfd (nothing on disk). */
const char *khsm_handoff_dir(const khsm_handoff_t *h);

/** Wipe (fallback file: overwrite) and remove. NULL is accepted. */
void khsm_handoff_free(khsm_handoff_t *h);

/** A new private (0700) empty directory TMPDIR/knot-hsm-empty.<pid>.XXXXXX
 *  (tmpdir NULL: /tmp), for a child that must be given a directory and find
 *  nothing in it. The caller rmdir()s it; what a kill leaves,
 *  khsm_handoff_clean_stale() of a later run removes (without counting it).
 *  \param[out] dir_ptr  free(). */
int khsm_handoff_empty_dir(const char *tmpdir, char **dir_ptr);

/** The same as TMPDIR/knot-hsm-serve.<pid>.XXXXXX: where a served card's
 *  socket lives (serve.h). \param[out] dir_ptr  free(). */
int khsm_handoff_socket_dir(const char *tmpdir, char **dir_ptr);

/** Remove the fallback directories in tmpdir (NULL: /tmp) of runs that no
 *  longer live (owned by this user, never through a symlink), wiping their
 *  files first, and their empty and socket directories (khsm_handoff_empty_dir(),
 *  khsm_handoff_socket_dir()).
 *  \param[out] removed_ptr  how many fallback directories (may be NULL). */
int khsm_handoff_clean_stale(const char *tmpdir, unsigned *removed_ptr);
