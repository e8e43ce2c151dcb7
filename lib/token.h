/* Tokens of PKCS#11 modules: those registered with p11-kit and/or one given
 * by path. Reads slot, token and mechanism information; never logs in. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* DNSSEC algorithms a token can both generate keys for and sign with. */
enum khsm_cap {
	KHSM_CAP_ECDSA_P256 = 1 << 0,
	KHSM_CAP_ECDSA_P384 = 1 << 1,
	KHSM_CAP_ED25519    = 1 << 2,
	KHSM_CAP_ED448      = 1 << 3,
	KHSM_CAP_RSA        = 1 << 4,
};

/* Token flags that matter to an operator (subset of CK_TOKEN_INFO flags). */
enum khsm_token_flag {
	KHSM_TOKEN_LOGIN_REQUIRED   = 1 << 0,
	KHSM_TOKEN_PROTECTED_PATH   = 1 << 1,
	KHSM_TOKEN_PIN_COUNT_LOW    = 1 << 2,
	KHSM_TOKEN_PIN_FINAL_TRY    = 1 << 3,
	KHSM_TOKEN_PIN_LOCKED       = 1 << 4,
	KHSM_TOKEN_INITIALIZED      = 1 << 5,
	KHSM_TOKEN_USER_PIN_INIT    = 1 << 6,
	KHSM_TOKEN_WRITE_PROTECTED  = 1 << 7,
	KHSM_TOKEN_RNG              = 1 << 8,
};

typedef struct {
	char label[33];
	char manufacturer[33];
	char model[17];
	char serial[17];
	char *module_path;      /* absolute path, as knot.conf needs it */
	char *module_name;      /* p11-kit registration name, or the file name */
	unsigned long slot_id;
	unsigned flags;         /* KHSM_TOKEN_* */
	unsigned caps;          /* KHSM_CAP_* */
	unsigned long rsa_min_bits, rsa_max_bits;
	char *uri;              /* token URI: label, manufacturer, model, serial */
	char *uri_short;        /* token URI with the label only */
	char *uri_serial;       /* token URI with label and serial (unique) */
} khsm_token_t;

typedef struct khsm_tokens khsm_tokens_t;

/** Load modules and list their tokens. module_path: an extra module (may be
 *  NULL); registered: include p11-kit's registered modules.
 *  \param[out] tokens_ptr  free with khsm_tokens_free(). */
int khsm_tokens_load(const char *module_path, bool registered, khsm_tokens_t **tokens_ptr);

/** Number of tokens found. */
size_t khsm_tokens_count(const khsm_tokens_t *tokens);

/** Slots without a token (for OpenSC: readers without a card). */
size_t khsm_tokens_empty_slots(const khsm_tokens_t *tokens);

/** Token at index i (owned by the list). */
const khsm_token_t *khsm_tokens_at(const khsm_tokens_t *tokens, size_t i);

/** Modules that failed to load or initialise, as "path: reason" lines (owned by the list). */
const char *khsm_tokens_failures(const khsm_tokens_t *tokens);

/** Find exactly one token by label (compared exactly, padding removed).
 *  KHSM_ENOENT lists the tokens that exist; KHSM_EAMBIGUOUS lists each match
 *  with a serial-qualified URI (in the error detail).
 *  \param[out] token_ptr  owned by the list. */
int khsm_tokens_find(const khsm_tokens_t *tokens, const char *label, const char *serial,
                     const khsm_token_t **token_ptr);

/** Re-read the flags of a token now (PIN counters change after a login). */
int khsm_token_refresh_flags(const khsm_tokens_t *tokens, const khsm_token_t *token,
                             unsigned *flags_ptr);

/** Free the list and finalise the modules it loaded. */
void khsm_tokens_free(khsm_tokens_t *tokens);

/** Text names of capability bits, e.g. "ECDSA P-256, RSA 1024-4096"; heap, free(). */
char *khsm_token_caps_text(const khsm_token_t *token);

/** The subset of capability bits that Knot (through GnuTLS) can use. */
unsigned khsm_caps_usable(unsigned caps);

/** Capability needed to generate and sign with a DNSSEC algorithm number (0 if none). */
unsigned khsm_cap_for_algorithm(int algorithm);
