/* Enrolling a card key in a zone: generate it on the card (or adopt one that
 * is there), prove it with a signature through libdnssec as knotd loads it,
 * and register it in the zone's KASP with keymgr; a generated key that fails
 * any step is taken out of KASP and off the card again. As keymgr's
 * kdnssec_generate_key(), one call per key; the CLI only parses and prints. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

#include "kasp.h"
#include "keystore.h"
#include "knotconf.h"
#include "pin.h"
#include "zone.h"

/* What an enrolment tells its caller while it works (before the slow steps). */
typedef enum {
	KHSM_ENROLL_RSA_SLOW = 0, /* generate: RSA was chosen for a card */
	KHSM_ENROLL_GENERATING,   /* generate: the card starts making the pair (arg: the zone) */
	KHSM_ENROLL_SHARED,       /* the key was shared with another zone (arg: that zone) */
	KHSM_ENROLL_ID_FIXED,     /* import: CKA_ID set on both objects (arg: the label) */
} khsm_enroll_event_t;

/* The step that failed, so the caller can name it. */
typedef enum {
	KHSM_ENROLL_AT_NONE = 0,  /* no particular step */
	KHSM_ENROLL_AT_TOKEN,     /* reading the token behind the keystore */
	KHSM_ENROLL_AT_GENERATE,  /* generate: making, proving or registering the key */
	KHSM_ENROLL_AT_FIX_ID,    /* import: setting the CKA_ID */
	KHSM_ENROLL_AT_ALGORITHM, /* import: reading the key's algorithm */
	KHSM_ENROLL_AT_IMPORT,    /* import: proving or registering the key */
} khsm_enroll_step_t;

/* Opens the zone's keystore and logs in once (the caller knows where the PIN
 * comes from). Hands over *pin_ptr (may stay NULL) and *ks_ptr on success. */
typedef int (*khsm_enroll_open_t)(void *ctx, const char *config, khsm_pin_t **pin_ptr,
                                  khsm_keystore_t **ks_ptr);

typedef struct khsm_enrolled khsm_enrolled_t;
typedef void (*khsm_enroll_notice_t)(void *ctx, khsm_enroll_event_t event,
                                     const khsm_enrolled_t *key, const char *arg);

/* Every zone's KASP, listed once for a command over many zones and kept up
 * to date as each zone's key is registered: without it each zone's
 * generate or import lists every zone again (keymgr runs growing with the
 * square of the zone count). valid false: listed at the next call. */
typedef struct {
	khsm_kasp_index_t idx;
	bool valid;
} khsm_kasp_keep_t;

/** Free what keep holds; it is not valid afterwards. NULL is accepted. */
void khsm_kasp_keep_clear(khsm_kasp_keep_t *keep);

/* The card key this run proved last, for a command that enrols one key in
 * zone after zone (a shared KSK at onboarding): the same key through the
 * same keystore is then registered without asking the card again. The open,
 * find, algorithm and self-test cost about 200 ms of card turns a zone while
 * the ceremony's signer holds the card; keymgr share, which follows, works
 * on KASP alone (khsm_keymgr_kasp_only()). */
typedef struct {
	char *config;          /* the keystore config it was proven through */
	char *id_hex;
	int algorithm;
	bool ksk;
	dnssec_key_t *key;     /* its public key (owner: the zone it was proven for) */
} khsm_enroll_memo_t;

/** Free what memo holds; it remembers no key afterwards. NULL is accepted. */
void khsm_enroll_memo_clear(khsm_enroll_memo_t *memo);

/* What to enrol. */
typedef struct {
	bool ksk, zsk;
	int algorithm;               /* generate: the number; import: 0 or the one asked for */
	const char *algorithm_arg;   /* import: algorithm= as given (for a mismatch message) */
	unsigned bits;               /* generate, RSA: key size */
	const char *label;           /* generate: NULL for "<zone> KSK|ZSK"; import: by label */
	const uint8_t *id;           /* import: by CKA_ID (or NULL) */
	size_t id_len;
	const char *id_arg;          /* import: id= as given (for messages) */
	bool fix_id;                 /* import: give an id-less pair the SHA-1 of its key */
	const char *const *timers;   /* keymgr timer words ("active=+1d"), NULL-terminated, or NULL */
	const char *conf_arg;        /* knot.conf as the operator gave it (-c), for remedies */
	bool force;                  /* PIN rules: as --force */
	bool beside_active;          /* generate: a KSK beside the one that signs (rollover,
	                                standby); otherwise refused */
	bool public_only;            /* register the DNSKEY alone (keymgr import-pub): a key
	                                knotd publishes, never signs with and never manages
	                                (an online standby); out->pub_id is its KASP id */
	khsm_enroll_open_t open;
	void *open_ctx;
	khsm_enroll_notice_t notice; /* may be NULL */
	void *notice_ctx;
	khsm_kasp_keep_t *kasp_keep; /* kept across calls (NULL: each call lists every zone) */
	khsm_login_hold_t *login_hold; /* the run's kept logins: keymgr import-pkcs11 uses the
	                                  card through them (NULL: keymgr logs in itself) */
	khsm_enroll_memo_t *memo;    /* kept across calls: import of the key proven last
	                                asks the card nothing (NULL: every call asks it) */
} khsm_enroll_t;

/* The enrolled key (also what a notice sees so far); label may point into
 * label_buf, so do not copy the struct. */
struct khsm_enrolled {
	int algorithm;
	const char *label;           /* the label used (generate) */
	char *id_hex;                /* CKA_ID in hex */
	char *pub_id;                /* public_only: the KASP id (libdnssec's key id) */
	dnssec_key_t *key;           /* the proven public key */
	bool known;                  /* import: already in this zone's KASP, nothing done */
	khsm_enroll_step_t failed_at;
	char label_buf[300];
};

/** The algorithm for a new key of a zone: algorithm= if given, else the
 *  zone's policy's, else 13 (ECDSA P-256). \param[out] algorithm_ptr */
int khsm_zone_key_algorithm(const khsm_zone_t *zone, const char *name, int *algorithm_ptr);

/** Generate a key pair on the card of zone's keystore, prove it and register
 *  it in the zone's KASP (keymgr import-pkcs11, or share when another zone
 *  already has it). Refuses an algorithm the token cannot make before the card
 *  is opened, and a key of the same label that no zone uses (an interrupted
 *  run: import it). On failure after the card made the pair, the pair is taken
 *  out of KASP and off the card again and the detail says so. With req->memo,
 *  the key made is remembered (khsm_zone_key_import()).
 *  \param[out] out  free with khsm_enrolled_clear() (also on failure). */
int khsm_zone_key_generate(khsm_conf_t *conf, const khsm_zone_t *zone, const khsm_enroll_t *req,
                           khsm_enrolled_t *out);

/** Adopt a key pair already on the card (by label or id), prove it and
 *  register it; an adopted key is never deleted. out->known when the zone's
 *  KASP has it already (nothing is done then). With req->memo, a key proven
 *  by an earlier call (generate or import) is registered by id without the
 *  card, and a key proven here is remembered.
 *  \param[out] out  free with khsm_enrolled_clear() (also on failure). */
int khsm_zone_key_import(khsm_conf_t *conf, const khsm_zone_t *zone, const khsm_enroll_t *req,
                         khsm_enrolled_t *out);

/** khsm_zone_key_generate(), and when the card already holds a pair of that
 *  label (KHSM_EEXIST: a run interrupted after the card made it)
 *  khsm_zone_key_import() of it, with the algorithm the pair has. The rerun
 *  of a rollover or a standby goes on this way. *adopted tells which.
 *  \param[out] out  free with khsm_enrolled_clear() (also on failure). */
int khsm_zone_key_generate_or_adopt(khsm_conf_t *conf, const khsm_zone_t *zone,
                                    const khsm_enroll_t *req, khsm_enrolled_t *out, bool *adopted);

/** Free what an enrolment handed over. */
void khsm_enrolled_clear(khsm_enrolled_t *out);
