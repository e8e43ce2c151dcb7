/* Files and paths: read a whole file with a size cap, write a file
 * atomically, make directories, build paths, without ever following a
 * symbolic link where knot-hsm writes (it may run as root there). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/** The default size cap of khsm_file_read(): 64 MiB. */
#define KHSM_FILE_MAX ((size_t)64 << 20)

/** How khsm_file_read() reads; a NULL options pointer means all defaults. */
typedef struct {
	size_t max;          /**< size cap in bytes; 0: KHSM_FILE_MAX */
	bool nofollow;       /**< refuse a symbolic link at the path (KHSM_EPERM) */
	bool lock_shared;    /**< hold flock(LOCK_SH) while reading: no half-written line */
	const char *what;    /**< named in the error detail: "cannot read the WHAT PATH: ..." */
} khsm_file_read_opts_t;

/** Read the regular file at path whole (a FIFO or a device is refused
 *  without blocking). The text is NUL-terminated.
 *  \return KHSM_ENOENT when missing, KHSM_ERANGE over the cap, KHSM_EIO else.
 *  \param[out] text_ptr  free().
 *  \param[out] len_ptr   its length without the NUL; may be NULL.
 *  \param[out] st_ptr    the file's stat, as read; may be NULL. */
int khsm_file_read(const char *path, const khsm_file_read_opts_t *opts,
                   char **text_ptr, size_t *len_ptr, struct stat *st_ptr);

/** khsm_file_write_atomic() flag: as root, the file gets the directory's group
 *  (on Debian /etc/knot is root:knot, so knotd reads it after dropping root). */
#define KHSM_FILE_DIR_GROUP 1u

/** Write data to path, mode mode: a new temporary file ".NAME.XXXXXXXX" in the
 *  same directory (O_CREAT|O_EXCL|O_NOFOLLOW through the directory's
 *  descriptor) gets the mode through its own descriptor, is written, fsync()ed
 *  and renamed over path. A symbolic link or non-regular file at path is
 *  refused (KHSM_EPERM), also when planted while writing; nothing is left
 *  behind on failure. */
int khsm_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode,
                           unsigned flags);

/** Write all of data to fd (EINTR retried). \return KHSM_EIO with errno set. */
int khsm_file_write_all(int fd, const void *data, size_t len);

/** KHSM_EPERM (with the detail) when st, the lstat() of path, is a symbolic
 *  link or not a regular file: knot-hsm never writes through either. */
int khsm_file_refuse_special(const char *path, const struct stat *st);

/** Make path and its missing parents (mode, as umask allows), walking from "/"
 *  (or the working directory) through directory descriptors. A component that
 *  is not a directory is refused (KHSM_EPERM), and so is a symbolic link,
 *  unless root or this user owns it and the directory holding it, and group
 *  and others cannot write that directory (no one else could have planted or
 *  could swap it: /var/lib/knot -> /srv/knot made by root is followed). An
 *  existing directory is fine. */
int khsm_file_mkdir_p(const char *path, unsigned mode);

/** path made absolute: as is when it starts with "/", else base_dir + "/" +
 *  path ("//" never appears). Lexical only (no symlink resolved).
 *  \param[out] abs_ptr  free(). */
int khsm_path_absolute(const char *path, const char *base_dir, char **abs_ptr);

/** Split path into its directory ("." when none, "/" at the root) and its
 *  last component; KHSM_EINVAL when that is empty, "." or "..".
 *  \param[out] dir_ptr   free().
 *  \param[out] base_ptr  free(). */
int khsm_path_split(const char *path, char **dir_ptr, char **base_ptr);

/** The directory part of path, as dirname(3) gives it; NULL without memory.
 *  Free with free(). */
char *khsm_path_dir(const char *path);

/** Whether a and b name the same file: the same string, or both exist with
 *  the same device and inode (links followed). */
bool khsm_path_same_file(const char *a, const char *b);

/** knotd's user and group (Debian: knot, the owner of what knotd writes),
 *  looked up once per process. false when there is no such user; the group
 *  is the group knot, (gid_t)-1 when there is none (never that user's
 *  primary group: it may be shared). Either pointer may be NULL. */
bool khsm_knot_ids(uid_t *uid_ptr, gid_t *gid_ptr);
