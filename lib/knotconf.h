/* knot.conf read the way Knot reads it: knotc resolves includes and checks the
 * file (conf-export), libknot's yparser reads the exported text, and this
 * module applies templates and Knot's defaults. Values are kept as knotc
 * exports them (times in seconds, booleans "on"/"off"); unknown sections and
 * items are ignored, so newer Knot versions load too. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

typedef struct {
	char *id;
	char *backend;        /* "pkcs11" or "pem"; NULL when unset (Knot: pem) */
	char *config;
	bool key_label;
	bool ksk_only;        /* Knot >= 3.5 */
} khsm_conf_keystore_t;

/* Raw strings as knotc exports them; NULL when unset. */
typedef struct {
	char *id;
	char **keystores;     /* one in Knot 3.2-3.4, a list in Knot >= 3.5 */
	size_t keystore_count;
	bool manual;
	bool offline_ksk;
	bool single_type_signing;
	char *algorithm;
	char *ksk_lifetime, *zsk_lifetime, *rrsig_lifetime, *rrsig_refresh;
	char *dnskey_ttl, *zone_max_ttl, *propagation_delay;
	char *cds_cdnskey_publish, *cds_digest_type;
} khsm_conf_policy_t;

/* A zone as written; template values are applied by the khsm_conf_zone_*()
 * functions. domain is lower-case with the final dot. */
typedef struct {
	char *domain;
	char *policy;         /* dnssec-policy of the zone itself, or NULL */
	char *template_id;    /* template of the zone itself, or NULL */
	char *storage;        /* storage of the zone itself, or NULL */
	bool dnssec_signing;  /* meaningful when signing_set */
	bool signing_set;
} khsm_conf_zone_t;

typedef struct khsm_conf khsm_conf_t;

/** Load a knot.conf (NULL: /etc/knot/knot.conf) through knotc; KHSM_ECONFIG
 *  with knotc's message when Knot rejects the file.
 *  \param[out] conf_ptr  free with khsm_conf_free(). */
int khsm_conf_load(const char *path, khsm_conf_t **conf_ptr);

/** The configuration as `knotc -c PATH conf-export` writes it: includes
 *  resolved, one canonical layout (section by section, zones last). KHSM_ECONFIG
 *  with knotc's message when Knot rejects the file.
 *  \param[out] text_ptr  NUL-terminated, free(); len_ptr may be NULL. */
int khsm_conf_export(const char *path, char **text_ptr, size_t *len_ptr);

/** Free a loaded configuration (NULL is fine). */
void khsm_conf_free(khsm_conf_t *conf);

/** Path the configuration was loaded from; owned by conf. */
const char *khsm_conf_path(const khsm_conf_t *conf);

/** Number of keystores, in the order knotc exports them. */
size_t khsm_conf_keystore_count(const khsm_conf_t *conf);

/** Keystore number i, or NULL; owned by conf. */
const khsm_conf_keystore_t *khsm_conf_keystore_at(const khsm_conf_t *conf, size_t i);

/** Keystore with this id, or NULL; owned by conf. */
const khsm_conf_keystore_t *khsm_conf_keystore_find(const khsm_conf_t *conf, const char *id);

/** Is ks a pkcs11 keystore (backend pkcs11)? false for NULL. */
bool khsm_conf_keystore_is_pkcs11(const khsm_conf_keystore_t *ks);

/** Number of policies. */
size_t khsm_conf_policy_count(const khsm_conf_t *conf);

/** Policy number i, or NULL; owned by conf. */
const khsm_conf_policy_t *khsm_conf_policy_at(const khsm_conf_t *conf, size_t i);

/** Policy with this id, or NULL; owned by conf. */
const khsm_conf_policy_t *khsm_conf_policy_find(const khsm_conf_t *conf, const char *id);

/** Number of zones. */
size_t khsm_conf_zone_count(const khsm_conf_t *conf);

/** Zone number i, or NULL; owned by conf. */
const khsm_conf_zone_t *khsm_conf_zone_at(const khsm_conf_t *conf, size_t i);

/** Zone by name in any case, with or without the final dot, or NULL; owned by conf. */
const khsm_conf_zone_t *khsm_conf_zone_find(const khsm_conf_t *conf, const char *zone);

/** Effective dnssec-policy of a zone: its own, else its template's (the
 *  template 'default' when the zone names none). KHSM_ENOENT when neither
 *  sets one (Knot then uses its built-in default policy).
 *  \param[out] policy_ptr  owned by conf. */
int khsm_conf_zone_policy(const khsm_conf_t *conf, const khsm_conf_zone_t *zone,
                          const khsm_conf_policy_t **policy_ptr);

/** Effective dnssec-signing of a zone, template applied (Knot's default: off).
 *  \param[out] signing_ptr */
int khsm_conf_zone_signing(const khsm_conf_t *conf, const khsm_conf_zone_t *zone,
                           bool *signing_ptr);

/** The zones a command over "all zones" covers: those signed (dnssec-signing
 *  on, a dnssec-policy; template applied), in khsm_conf_zone_at() order.
 *  want_count > 0 limits them to want (any case, with or without the final
 *  dot), each of which must be a zone of conf: KHSM_EINVAL for a name that is
 *  no domain name, KHSM_ENOENT with a detail for one conf does not have. A
 *  wanted zone that is not signed is left out silently.
 *  \param[out] zones_ptr  array to free() (NULL when count is 0), entries owned by conf
 *  \param[out] count_ptr */
int khsm_conf_signed_zones(const khsm_conf_t *conf, const char *const *want, size_t want_count,
                           const khsm_conf_zone_t ***zones_ptr, size_t *count_ptr);

/** Effective zone storage directory (template applied; default as compiled
 *  into knotc, /var/lib/knot on Debian; relative: from the current directory).
 *  Owned by conf; NULL when zone is not one of conf's. */
const char *khsm_conf_zone_storage(const khsm_conf_t *conf, const khsm_conf_zone_t *zone);

/** Absolute database.storage (default compiled into knotc, /var/lib/knot on
 *  Debian; a relative path is taken from the current directory, as Knot does). Owned by conf. */
const char *khsm_conf_storage(const khsm_conf_t *conf);

/** Absolute KASP database directory: database.kasp-db, default
 *  <storage>/keys, relative to storage. Owned by conf. */
const char *khsm_conf_kasp_db(const khsm_conf_t *conf);

/** Absolute server.rundir (default compiled into knotc, /run/knot on Debian). Owned by conf. */
const char *khsm_conf_rundir(const khsm_conf_t *conf);

/** Absolute control socket: control.listen, default <rundir>/knot.sock,
 *  relative to rundir. Owned by conf. */
const char *khsm_conf_control_socket(const khsm_conf_t *conf);
