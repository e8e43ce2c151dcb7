/* Rendering knot.conf pieces. Values are checked, never pasted blindly:
 * a rendered stanza is valid YAML for Knot's parser. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "policy.h"

/** Render a `keystore:` section with one pkcs11 keystore.
 *  \param[out] text_ptr  free with free(). */
int khsm_confgen_keystore(const char *id, const char *config, bool key_label, char **text_ptr);

/** Check that an identifier is usable as a knot.conf id (letters, digits, -_.). */
int khsm_confgen_check_id(const char *id);

/* What the policy stanzas need besides the policy. */
typedef struct {
	const char *const *zones;   /* lower-case FQDNs with final dot */
	size_t zone_count;
	const char *card_keystore_id;     /* the operator's pkcs11 keystore */
	const char *card_keystore_config; /* its config string */
	const char *ksk_conf_path;  /* offline: where the KSK-side config lives */
	const char *ksk_kasp_db;    /* offline: the KSK side's own KASP directory */
	const char *const *removed; /* zones taken out with remove=yes, recorded */
	size_t removed_count;
	const char *zsk_conf_path;  /* offline: the knot.conf the KSK side serves, or NULL */
	const char *const *more_ids;     /* knot.conf's other pkcs11 keystores (another card): */
	const char *const *more_configs; /* on the KSK side offline, in the policy's list online */
	size_t more_count;
	const char *key_slots;      /* header "# knot-hsm: key-slots=" (lib/budget.h), or NULL */
} khsm_render_t;

/** The include file for knotd: offline: PEM keystore and the ZSK-side
 *  policy; online: card (ksk-only) and PEM keystores and the policy. Starts
 *  with KHSM_POLICY_MARKER. \param[out] text_ptr  free with free(). */
int khsm_confgen_policy_main(const khsm_policy_t *policy, const khsm_render_t *in, char **text_ptr);

/** Offline: the standalone KSK-side configuration (own KASP, the card
 *  keystore, KSK policy, the zones). Starts with KHSM_POLICY_MARKER.
 *  \param[out] text_ptr  free with free(). */
int khsm_confgen_policy_ksk(const khsm_policy_t *policy, const khsm_render_t *in, char **text_ptr);

/** Check a configuration file with `knotc -c PATH conf-check` (Knot's own
 *  parser); KHSM_ECONFIG with knotc's first error line as the detail. */
int khsm_confgen_knotc_check(const char *path);

/** Check what policy renders before anything is written: main_text (the
 *  include for knot.conf, to go to target) in a full configuration, knot.conf
 *  at conf_path with its include of target (if any) pointing at the rendered
 *  file instead and other relative includes made absolute, or knot.conf plus
 *  the rendered file; ksk_text (NULL: none) alone. Both are checked with
 *  khsm_confgen_knotc_check() from a private temporary directory, removed
 *  afterwards. \param[out] included_ptr  whether knot.conf includes target. */
int khsm_confgen_knotc_check_rendered(const char *conf_path, const char *target, const char *main_text,
                                      const char *ksk_text, bool *included_ptr);
