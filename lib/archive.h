/* The ceremony archive: BASE/YYYY-MM-DD[.N]/ZONE.ksr|.skr, records written
 * once where root may write, so never through a symlink: directories are
 * made with mkdir() and then checked through an O_NOFOLLOW descriptor (ours,
 * a directory, not writable by others), files created O_EXCL|O_NOFOLLOW. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/** Make BASE (mode 0750, its parent must exist) when missing and check it:
 *  not a symlink, a directory owned by the caller or root, writable by
 *  no one else (else another user could swap the day directory). */
int khsm_archive_base(const char *base);

/** The archive next to the KASP database kasp_db: its parent made when
 *  missing (khsm_file_mkdir_p, 0750: no symlinked component followed), then
 *  BASE = <parent>/knot-hsm-archive made and checked (khsm_archive_base).
 *  \param[out] base_ptr  BASE; free(). */
int khsm_archive_open(const char *kasp_db, char **base_ptr);

/** Claim a new day directory BASE/DAY, DAY the UTC date of now (YYYY-MM-DD),
 *  else BASE/DAY.2 … .999 (mkdir, 0750; an existing entry, a planted symlink
 *  included, is skipped, never used). \param[out] dir_ptr  the path; free(). */
int khsm_archive_claim(const char *base, int64_t now, char **dir_ptr);

/** Write a new file (O_CREAT|O_EXCL|O_NOFOLLOW, mode, fsync): never
 *  replaces or follows an existing entry. */
int khsm_archive_write(const char *path, const char *data, size_t len, unsigned mode);
