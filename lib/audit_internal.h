/* Private to audit.c, audit_parse.c and audit_verify.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "audit.h"

/* Top-level members the summary uses; strings decoded, numbers and
 * booleans as their text. */
typedef struct {
	char *time, *comm, *fn, *label, *id, *mech, *rv, *prev, *software, *query, *pin, *user;
	char *pid, *slot, *session, *len, *card_mech, *intent, *torn;
} khsm_audit_entry_t;

/* A whole line as one object, nothing after it; frees nothing on failure
 * (call khsm_audit_entry_clear() either way). */
bool khsm_audit_entry_parse(const char *line, size_t len, khsm_audit_entry_t *e);

/* Frees the members and zeroes them. */
void khsm_audit_entry_clear(khsm_audit_entry_t *e);

/* The hash a log's first line chains from. */
static inline int khsm_audit_genesis_hash(char *out)
{
	return khsm_audit_hash(KHSM_AUDIT_GENESIS, strlen(KHSM_AUDIT_GENESIS), out);
}

static inline bool khsm_audit_is_true(const char *v) { return v && strcmp(v, "true") == 0; }
