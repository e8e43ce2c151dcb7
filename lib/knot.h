/* keymgr and knotc as Knot ships them: running them, judging their result
 * (an `error:` line is a failure even with exit code 0) and parsing their
 * output strictly. Booleans are always passed to keymgr as yes/no: keymgr
 * reads `ksk=on` as false and silently makes a ZSK. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

#include "knotconf.h"
#include "run.h"
#include "serve.h"

/* One key of a zone in the KASP database. Timers are UNIX times, 0 when unset. */
typedef struct {
	char id[257];         /* lower-case hex key ID: 40 digits from Knot, or the token's CKA_ID */
	uint16_t tag;
	bool ksk, zsk;        /* both for a CSK */
	bool public_only;     /* imported with import-pub: no private key */
	char keystore[64];    /* Knot >= 3.5 (-e list): "PKCS11/<id>" or "PEM/<id>"; "" before */
	int algorithm;        /* DNSSEC algorithm number */
	unsigned size;        /* bits; 0 when the output did not say */
	int64_t created;      /* not printed by keymgr 3.2.6: stays 0 there */
	int64_t pre_active, publish, ready, active, retire_active, retire;
	int64_t post_active, revoke, remove;
} khsm_kasp_key_t;

/* One line of `keymgr ZONE ds`. */
typedef struct {
	char *owner;          /* as printed, with the final dot */
	uint16_t tag;
	uint8_t algorithm;
	uint8_t digest_type;
	char *digest;         /* lower-case hex */
} khsm_ds_t;

/** Version of a Knot tool ("keymgr", "knotc", "knotd") from
 *  `TOOL --version`, e.g. "keymgr (Knot DNS), version 3.2.6".
 *  \param[out] major, minor, patch */
int khsm_knot_version(const char *tool, int *major, int *minor, int *patch);

/** Whether keymgr's command (its word after the zone) works on KASP alone,
 *  never on a key of the keystore: list, dnskey, ds read it, share links a
 *  key of another zone. Over many zones such runs get a keyless cut
 *  (zoneconf.h). */
bool khsm_keymgr_kasp_only(const char *command);

/** Run `keymgr -c CONF args…` (args NULL-terminated; conf_path NULL: Knot's
 *  default). Pass booleans as yes/no, never on/off. KHSM_ETOOL, with the first
 *  `error:` line as detail, when keymgr exits non-zero or prints a line that
 *  starts with `error:` on stdout or stderr.
 *  \param[out] res  free with khsm_run_clear(); filled only on success. */
int khsm_keymgr(const char *conf_path, const char *const args[], khsm_run_t *res);

/** khsm_keymgr() for card work (sign-ksr, import-pkcs11, share, delete on a
 *  PKCS #11 keystore): keymgr runs while this process holds khsm_card_lock(),
 *  so that no other knot-hsm uses the card meanwhile (keymgr does not take
 *  that lock itself). Log in once in knot-hsm first (khsm_keystore_login()):
 *  keymgr then logs in with a PIN the card has just accepted. */
int khsm_keymgr_card(const char *conf_path, const char *const args[], khsm_run_t *res);

/** khsm_keymgr() for card work through a card this process serves
 *  (serve.h), conf_path naming p11-kit's client as the keystore: keymgr
 *  reaches the card only through serve, whose threads take khsm_card_lock()
 *  for each call, so the run itself holds no lock and the card signs on
 *  between its calls. The caller must not hold the card lock. */
int khsm_keymgr_served(const char *conf_path, const char *const args[], const khsm_serve_t *serve,
                       khsm_run_t *res);

/** `keymgr ZONE delete ID` through khsm_keymgr_card(): the key leaves KASP
 *  and, when no other zone shares it, the keystore. keymgr drops the KASP
 *  entry first and fails when the keystore then lacks the key (its card is
 *  lost); such a failure, with the key gone from `keymgr ZONE list`, is
 *  KHSM_EOK with *card_missed_ptr set (NULL: not wanted, still EOK). */
int khsm_keymgr_delete(const char *conf_path, const char *zone, const char *id_hex,
                       bool *card_missed_ptr);

/** Parse `keymgr ZONE list` output, plain or extended (-e) format, 3.2.6.
 *  Any malformed line is KHSM_EPARSE with its line number in the detail.
 *  Unknown `name=value` fields of the extended format are skipped.
 *  \param[out] keys_ptr   free with free(); NULL when there are no keys.
 *  \param[out] count_ptr */
int khsm_keymgr_list_parse(const char *text, khsm_kasp_key_t **keys_ptr, size_t *count_ptr);

/** Keys of a zone: `keymgr -c CONF -e ZONE list`, parsed.
 *  \param[out] keys_ptr   free with free().
 *  \param[out] count_ptr */
int khsm_keymgr_list(const char *conf_path, const char *zone,
                     khsm_kasp_key_t **keys_ptr, size_t *count_ptr);

/** Parse `keymgr ZONE ds` output ("owner DS tag alg digest-type hex" lines).
 *  \param[out] ds_ptr     free with khsm_ds_free().
 *  \param[out] count_ptr */
int khsm_keymgr_ds_parse(const char *text, khsm_ds_t **ds_ptr, size_t *count_ptr);

/** Free an array from khsm_keymgr_ds_parse(). */
void khsm_ds_free(khsm_ds_t *ds, size_t count);

/** Whether a knotd answers on the control socket of conf (`knotc status`).
 *  KHSM_ENOENT when nothing answers (a normal state, not worth shouting);
 *  KHSM_EPERM when the socket may not be used by this user. */
int khsm_knotc_ping(const khsm_conf_t *conf);

/** `knotc zone-keys-load ZONE`: a running knotd picks up new keys.
 *  KHSM_ENOENT when knotd is not running, KHSM_ETOOL when it refuses. */
int khsm_knotc_zone_keys_load(const khsm_conf_t *conf, const char *zone);

/** `knotc reload`: a running knotd reads its configuration again.
 *  KHSM_ENOENT when knotd is not running, KHSM_ETOOL when it refuses. */
int khsm_knotc_reload(const khsm_conf_t *conf);

/** `knotc zone-ksk-submitted ZONE`: confirm the DS is at the parent.
 *  KHSM_ENOENT when knotd is not running, KHSM_ETOOL when it refuses
 *  (e.g. "no key ready for submission"). */
int khsm_knotc_zone_ksk_submitted(const khsm_conf_t *conf, const char *zone);

/** Earliest expiration of the DNSKEY RRSIGs knotd serves for zone now
 *  (`knotc zone-read ZONE @ RRSIG`). KHSM_ENOENT when none is served or
 *  knotc fails. \param[out] exp */
int khsm_knotc_dnskey_expiry(const khsm_conf_t *conf, const char *zone, int64_t *exp);

/** The KSKs of a zone as knotd signs with them: `keymgr -c CONF ZONE dnskey`,
 *  one DNSKEY line per key, in keymgr's order. A line that is not a DNSKEY
 *  of zone is KHSM_EPARSE naming it. \param[out] keys_ptr  free with
 *  khsm_dnskeys_free(); NULL with *count_ptr 0 when the zone has no KSK. */
int khsm_keymgr_ksks(const char *conf_path, const char *zone, dnssec_key_t ***keys_ptr,
                     size_t *count_ptr);

/** Free an array of keys (NULL accepted). */
void khsm_dnskeys_free(dnssec_key_t **keys, size_t count);

/* One zone's KSKs from khsm_keymgr_ksks_each(). */
typedef struct {
	dnssec_key_t **keys;
	size_t count;
	int r;                       /* khsm_keymgr_ksks()'s result */
	char *detail;                /* its error detail, or NULL */
} khsm_ksks_t;

/** khsm_keymgr_ksks() for each of zones[0..n), side by side
 *  (khsm_parallel_for()); out[i] is zone i's, free each with
 *  khsm_ksks_clear(). */
void khsm_keymgr_ksks_each(const char *conf_path, const char *const *zones, size_t n,
                           khsm_ksks_t *out);

/** Free what khsm_keymgr_ksks_each() gave one zone (NULL accepted). */
void khsm_ksks_clear(khsm_ksks_t *k);
