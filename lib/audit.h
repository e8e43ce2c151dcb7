/* The audit log of the guard module (lib/guard): one JSON object per line,
 * appended, each carrying in "prev" the SHA-256 (lowercase hex) of the line
 * before it (without its newline); the first line of a file carries the
 * SHA-256 of KHSM_AUDIT_GENESIS. Editing, deleting, inserting or reordering
 * lines breaks the chain at the first line after the change. Removing lines
 * at the end cannot be seen from the file alone: compare the head hash that
 * verification prints with one recorded elsewhere.
 *
 * Writers in several threads and processes keep one chain: every append opens
 * its own descriptor, takes an exclusive flock on the log, reads the last
 * line, and writes the new line with one write(2) on an O_APPEND descriptor.
 *
 * Compiled into libknothsm and into the guard module (which links neither
 * libknothsm nor libdnssec): only GnuTLS, libc and lib/error.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Hashed to give the "prev" of a file's first line. */
#define KHSM_AUDIT_GENESIS "knot-hsm audit log v1"

/* SHA-256 in lowercase hex plus NUL. */
#define KHSM_AUDIT_HASH_SIZE 65

/** Open the log for appending, creating it (mode 0640) when missing. A
 *  process running as root gives a new file the owner and group of its
 *  directory, so that knotd (user knot) can append to a log first created
 *  by a root tool. \param[out] fd_ptr  close with close(). */
int khsm_audit_open(const char *path, int *fd_ptr);

/** Append one line "{BODY,\"prev\":\"HASH\"}\n" under the log's flock.
 *  body: JSON object members without braces, no newline (checked).
 *  sync: fsync(2) before returning. */
int khsm_audit_append(int fd, const char *body, bool sync);

/** khsm_audit_open() + khsm_audit_append() + close. */
int khsm_audit_write(const char *path, const char *body, bool sync);

/** SHA-256 hex of a line (without newline). out: KHSM_AUDIT_HASH_SIZE bytes. */
int khsm_audit_hash(const char *line, size_t len, char *out);

/** Write s as a JSON string literal (with quotes) into a malloc'ed buffer:
 *  valid UTF-8 is kept, control characters and invalid bytes are escaped
 *  (\u00XX). \param[out] json_ptr  free with free(). */
int khsm_audit_json_string(const char *s, size_t len, char **json_ptr);

/* -- verification and summary -- */

typedef struct {
	char day[11];         /* YYYY-MM-DD (UTC) */
	char *key;            /* "LABEL id=HEX", "LABEL", "id=HEX" or "?" */
	unsigned long count;
	unsigned long software; /* of which hashed in software (emulated mechanism) */
} khsm_audit_sigs_t;

typedef struct {
	char *fn;             /* C_Sign */
	char *rv;             /* CKR_DEVICE_ERROR */
	unsigned long count;
} khsm_audit_fail_t;

typedef struct {
	unsigned long lines;        /* lines read (up to and including a broken one) */
	unsigned long broken_line;  /* 1-based; 0 when the chain is intact */
	char reason[160];           /* why broken_line is broken */
	char head[KHSM_AUDIT_HASH_SIZE]; /* hash of the last intact line (genesis hash when empty) */
	char first_time[32];
	char last_time[32];
	khsm_audit_sigs_t *sigs;    /* card signatures per day and key, in order of appearance */
	size_t sig_count;
	unsigned long logins_ok;
	unsigned long logins_failed;
	unsigned long software_ops; /* lines with "software": true */
	unsigned long failed_calls; /* results other than CKR_OK (see .c for the benign ones) */
	khsm_audit_fail_t *fails;   /* failed calls by function and result */
	size_t fail_count;
	unsigned long pin_lines;    /* never expected: lines with a "pin" member */
} khsm_audit_summary_t;

/** Check the chain of a log and summarise it. KHSM_EOK when intact,
 *  KHSM_ECRYPTO when broken (summary->broken_line and ->reason say where and
 *  why; the summary covers the lines before), KHSM_ENOENT/KHSM_EIO when the
 *  file cannot be read. \param[out] sum_ptr  free with khsm_audit_summary_free(). */
int khsm_audit_verify(const char *path, khsm_audit_summary_t **sum_ptr);

/** The same on text in memory (for tests and fuzzing). */
int khsm_audit_verify_text(const char *text, size_t len, khsm_audit_summary_t **sum_ptr);

/** Free a summary. NULL accepted. */
void khsm_audit_summary_free(khsm_audit_summary_t *sum);

/** One log line in words: "TIME COMM[PID] FN slot S: LABEL id=… MECH -> RV".
 *  \param[out] text_ptr  free with free(); KHSM_EPARSE for a line that is
 *  not an audit object. */
int khsm_audit_line_text(const char *line, size_t len, char **text_ptr);
