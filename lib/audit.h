/* The audit log of the guard module (lib/guard): one JSON object per line,
 * appended, each carrying in "prev" the SHA-256 (lowercase hex) of the line
 * before it (without its newline); the first line of a file carries the
 * SHA-256 of KHSM_AUDIT_GENESIS. Editing, deleting, inserting or reordering
 * lines breaks the chain at the first line after the change. A rewrite with
 * a recomputed chain, removed last lines or a deleted file cannot be seen
 * from the file alone: compare with a head recorded elsewhere, or with the
 * anchor file (khsm_audit_anchor_write(), root's) the guard appends heads to.
 * A torn last line (a write cut short) is ended by the next writer, who
 * first writes an "audit_resync" marker naming it by hash and chaining to
 * the line before it; verification reports it as an incident and goes on.
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

typedef enum {
	KHSM_AUDIT_FILE_SHARED = 0, /* log, lock file: 0660, owner root, this process or the directory's */
	KHSM_AUDIT_FILE_ROOT,       /* anchor: 0644, owned by root in a root-only directory */
} khsm_audit_file_t;

/** Open a file the guard appends to (or locks), creating it when missing,
 *  without ever following a symbolic link (O_NOFOLLOW, O_EXCL to create):
 *  refused when it is a symbolic link, not a regular file, has more than one
 *  hard link or belongs to someone unexpected (see khsm_audit_file_t); the
 *  message names who is expected. A process running as root gives a new
 *  SHARED file the owner and group of its directory (through the descriptor),
 *  so that knotd (user knot) can append to a log first created by a root
 *  tool. what names the file in messages ("audit log").
 *  \param[out] fd_ptr  O_RDWR|O_APPEND; close with close(). */
int khsm_audit_open_file(const char *path, const char *what, khsm_audit_file_t kind, int *fd_ptr);

/** khsm_audit_open_file(path, "audit log", KHSM_AUDIT_FILE_SHARED, fd_ptr). */
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
	unsigned long line;   /* 1-based line of the log */
	char after[32];       /* time of the last good line before it ("" at the start) */
	char before[32];      /* time of the resynchronisation marker after it ("" when none yet) */
	char what[96];
} khsm_audit_incident_t;

typedef struct {
	unsigned long lines;        /* lines read (up to and including a broken one) */
	unsigned long broken_line;  /* 1-based; 0 when the chain is intact */
	char reason[512];           /* why broken_line is broken */
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
	unsigned long intents;      /* "intent":true lines (before a key-changing call) */
	unsigned long complete_lines; /* lines ending with a newline, read before a break */
	khsm_audit_incident_t *incidents; /* torn lines: not tampering, but worth a look */
	size_t incident_count;
	bool torn_tail;             /* the last line has no newline (yet) */
	size_t anchor_count;        /* entries of the anchor file */
	unsigned long anchors_matched; /* anchor entries whose line was found and matched */
	bool anchor_weak;           /* the anchor file is not root's alone: it proves little */
	bool missing;               /* the log does not exist (checked against an anchor or head) */
	bool head_found;            /* the head given was found ... */
	unsigned long head_line;    /* ... as the hash of this line (0: the genesis hash) */
} khsm_audit_summary_t;

/* One line of an anchor file: "TIME lines=N head=HEX pid=P comm=NAME". */
typedef struct {
	unsigned long lines;
	char head[KHSM_AUDIT_HASH_SIZE];
	char time[32];
	unsigned long where;        /* its line in the anchor file */
} khsm_audit_anchor_t;

/* What to check a log against besides its own chain. */
typedef struct {
	const char *head;           /* a head hash recorded elsewhere (64 hex), or NULL */
	const char *anchor_file;    /* an anchor file the guard wrote, or NULL */
} khsm_audit_check_t;

/** Check the chain of a log and summarise it. KHSM_EOK when intact,
 *  KHSM_ECRYPTO when broken (summary->broken_line and ->reason say where and
 *  why; the summary covers the lines before), KHSM_ENOENT/KHSM_EIO when the
 *  file cannot be read. \param[out] sum_ptr  free with khsm_audit_summary_free(). */
int khsm_audit_verify(const char *path, khsm_audit_summary_t **sum_ptr);

/** khsm_audit_verify() and, when given, against a head hash (it must be the
 *  hash of some line, or the genesis hash) and an anchor file (every entry's
 *  line must exist and hash to its head). A missing log is then a finding
 *  (KHSM_ECRYPTO, summary->missing), not KHSM_ENOENT. KHSM_EINVAL for a
 *  malformed head, KHSM_EPARSE/KHSM_ENOENT/KHSM_EIO for an anchor file that
 *  cannot be used. \param[out] sum_ptr  free with khsm_audit_summary_free(). */
int khsm_audit_verify_check(const char *path, const khsm_audit_check_t *check, khsm_audit_summary_t **sum_ptr);

/** Parse an anchor file's text (name only names it in messages).
 *  \param[out] anchors_ptr  free(). */
int khsm_audit_anchors_parse(const char *name, const char *text, size_t len,
                             khsm_audit_anchor_t **anchors_ptr, size_t *count_ptr);

/** Number of complete lines of the log open at fd and the hash of the last
 *  one (the genesis hash when none), read under a shared flock.
 *  head: KHSM_AUDIT_HASH_SIZE bytes. */
int khsm_audit_head(int fd, unsigned long *lines_ptr, char *head);

/** Append "TIME lines=N head=HEX pid=P comm=COMM" to an anchor file, opened
 *  as KHSM_AUDIT_FILE_ROOT (root's, in a root-only directory), and fsync. */
int khsm_audit_anchor_write(const char *anchor_path, unsigned long lines, const char *head,
                            const char *comm);

/** The same on text in memory (for tests and fuzzing). */
int khsm_audit_verify_text(const char *text, size_t len, khsm_audit_summary_t **sum_ptr);

/** Free a summary. NULL accepted. */
void khsm_audit_summary_free(khsm_audit_summary_t *sum);

/** One log line in words: "TIME COMM[PID] FN slot S: LABEL id=… MECH -> RV".
 *  \param[out] text_ptr  free with free(); KHSM_EPARSE for a line that is
 *  not an audit object. */
int khsm_audit_line_text(const char *line, size_t len, char **text_ptr);

/** Text for a terminal: control characters, C1 controls and invalid UTF-8
 *  as \xNN, a backslash as \\, valid UTF-8 kept.
 *  \param[out] text_ptr  free with free(). */
int khsm_audit_text_escape(const char *s, size_t len, char **text_ptr);
