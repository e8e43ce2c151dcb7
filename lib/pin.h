/* PIN sources: a file, an inherited file descriptor, or a prompt without echo.
 * The PIN is kept in locked memory, wiped on free, and never printed, logged,
 * put in argv or in the environment of a child. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct khsm_pin khsm_pin_t;

/* What is wrong or risky with a PIN file (bit set). */
enum khsm_pin_file_issue {
	KHSM_PIN_FILE_OTHERS    = 1 << 0, /* readable or writable by group/others */
	KHSM_PIN_FILE_NEWLINE   = 1 << 1, /* ends with a newline, CR, space or tab GnuTLS would send */
	KHSM_PIN_FILE_EMPTY     = 1 << 2,
	KHSM_PIN_FILE_NOT_REG   = 1 << 3, /* not a regular file (FIFO, device, directory) */
	KHSM_PIN_FILE_OWNER     = 1 << 4, /* owned by neither root, the caller nor the knotd user */
	KHSM_PIN_FILE_SYMLINK   = 1 << 5, /* a symbolic link: never followed */
	KHSM_PIN_FILE_DIR       = 1 << 6, /* its directory lets another user replace it */
};

/* Issues --force accepts (a judgement of the operator); the others make the
 * file unusable or cost a PIN try. Not the directory: --force also means "log
 * in at the final try", and a file another user can swap is never worth it. */
#define KHSM_PIN_FILE_FORCEABLE (KHSM_PIN_FILE_OTHERS | KHSM_PIN_FILE_OWNER)

/** Inspect a PIN file without following a symlink, opening a FIFO or device,
 *  or keeping the PIN: the one rule for --pin-file and every pin-source.
 *  /proc/<this pid>/fd/N naming a regular file this process holds (a
 *  lib/handoff memfd) is read as that file; owner, mode and directory do not
 *  apply to it.
 *  \param[out] issues_ptr  KHSM_PIN_FILE_* bits; \param[out] mode_ptr file mode
 *  (may be NULL). KHSM_ENOENT/KHSM_EPERM/KHSM_EIO when it cannot be inspected. */
int khsm_pin_file_check(const char *path, unsigned *issues_ptr, mode_t *mode_ptr);

/** The rule applied: KHSM_EOK when the file may be used for a login; else
 *  KHSM_EPIN_UNSAFE (or the error of khsm_pin_file_check()) with one error
 *  detail that names the first problem and its remedy. force accepts the
 *  KHSM_PIN_FILE_FORCEABLE issues. what names the file ("PIN file", "pin-source", "" for none). */
int khsm_pin_file_verify(const char *what, const char *path, bool force);

/** Read the PIN from a file exactly as GnuTLS does for pin-source (bytes as
 *  is), after khsm_pin_file_verify() on the very file read.
 *  \param[out] pin_ptr  free with khsm_pin_free(). */
int khsm_pin_from_file(const char *path, bool force, khsm_pin_t **pin_ptr);

/** Read the PIN from an inherited descriptor (one trailing newline removed).
 *  \param[out] pin_ptr  free with khsm_pin_free(). */
int khsm_pin_from_fd(int fd, khsm_pin_t **pin_ptr);

/** Prompt on the controlling terminal without echo.
 *  \param[out] pin_ptr  free with khsm_pin_free(). */
int khsm_pin_prompt(const char *prompt, khsm_pin_t **pin_ptr);

/** PIN bytes (NUL-terminated) and length; valid until khsm_pin_free(). */
const char *khsm_pin_value(const khsm_pin_t *pin);
size_t khsm_pin_len(const khsm_pin_t *pin);

/** Wipe and free a PIN. NULL is accepted. */
void khsm_pin_free(khsm_pin_t *pin);

/** Human text of the KHSM_PIN_FILE_* bits with the remedy; static string. */
const char *khsm_pin_file_issue_text(unsigned issue);
