/* knot.conf cut down to one zone, for the keymgr runs of a bulk operation.
 * keymgr -c parses the whole configuration on every run, so with thousands
 * of zones each run costs more than the work it does (0.23 s at 10,000
 * zones against 0.02 s at one): a ceremony runs keymgr several times per
 * zone. knot.conf is exported once (knotc conf-export: includes resolved,
 * one canonical layout) and each zone's runs read that text with only the
 * zone's own entry in the zone section, from a sealed memfd the child opens
 * as /proc/<pid>/fd/<n> (handoff.h): nothing is written to disk, and the
 * kernel frees it even after kill -9. Everything else (keystores, policies,
 * templates, remotes) is kept as exported.
 *
 * A command over many zones says so once, khsm_zoneconf_use(conf_path);
 * from then on khsm_keymgr() gives each run for one zone of conf_path that
 * zone's cut, until khsm_zoneconf_release(conf_path).
 *
 * A run that works on KASP alone (list, dnskey, ds, share) gets a keyless cut: every
 * keystore is an empty PEM directory of this run, so that keymgr loads no
 * PKCS #11 module and never touches a card. Such runs need no card lock
 * and do not wait for, or hold up, the ceremony's signatures; and with
 * OpenSC each one would otherwise go through pcscd to the card. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "handoff.h"

typedef struct khsm_zoneconf khsm_zoneconf_t;

/** Split an exported configuration (khsm_conf_export() text) at its zone
 *  entries. KHSM_ENOTSUP when one zone's entry may depend on others (catalog
 *  zones): callers then give keymgr the whole file.
 *  \param[out] zc_ptr  free with khsm_zoneconf_free(). */
int khsm_zoneconf_parse(const char *text, khsm_zoneconf_t **zc_ptr);

/** khsm_zoneconf_parse() of `knotc conf-export` of conf_path; also
 *  KHSM_ENOTSUP when this process cannot hand a memfd to its children (not
 *  dumpable and without CAP_SYS_PTRACE): a file on disk would be worse than
 *  the slower whole file. */
int khsm_zoneconf_open(const char *conf_path, khsm_zoneconf_t **zc_ptr);

/** How many zone entries the configuration has. */
size_t khsm_zoneconf_count(const khsm_zoneconf_t *zc);

/** The configuration text with zone (any case, with or without the final
 *  dot) as the only zone entry. KHSM_ENOENT when zone has none.
 *  \param[out] text_ptr  free(); len_ptr may be NULL. */
int khsm_zoneconf_text(const khsm_zoneconf_t *zc, const char *zone, char **text_ptr,
                       size_t *len_ptr);

/** khsm_zoneconf_text() with each keystore (its id kept) replaced by
 *  backend pem and config dir (absolute, without quotes or backslashes):
 *  what keymgr commands that only read KASP are given. Without a keystore
 *  section, the plain cut (Knot's default keystore is PEM); KHSM_ENOTSUP
 *  when the section is not before the zones, or when a policy lists several
 *  keystores (Knot >= 3.5's keymgr list then names each key's keystore by
 *  looking in them, and an empty one would hide it).
 *  \param[out] text_ptr  free(); len_ptr may be NULL. */
int khsm_zoneconf_keyless_text(const khsm_zoneconf_t *zc, const char *zone, const char *dir,
                               char **text_ptr, size_t *len_ptr);

/** khsm_zoneconf_text() in a memfd for a child: khsm_handoff_path() is the
 *  path to give keymgr -c. Thread-safe on one zc.
 *  \param[out] handoff_ptr  free with khsm_handoff_free(). */
int khsm_zoneconf_handoff(const khsm_zoneconf_t *zc, const char *zone,
                          khsm_handoff_t **handoff_ptr);

/** Free (NULL is accepted). */
void khsm_zoneconf_free(khsm_zoneconf_t *zc);

/** Split conf_path (khsm_zoneconf_open()) for the keymgr runs that follow.
 *  Nested uses of one path share the split. On an error nothing changes and
 *  keymgr goes on reading the whole file: callers may ignore the result. */
int khsm_zoneconf_use(const char *conf_path);

/** End one khsm_zoneconf_use(conf_path); the last one frees the split. */
void khsm_zoneconf_release(const char *conf_path);

/** True while conf_path is in use and its keyless cuts can be given (the
 *  use made their empty directory). */
bool khsm_zoneconf_keyless(const char *conf_path);

/** For a keymgr run on zone with conf_path: its cut in a memfd while
 *  conf_path is in use, else KHSM_ENOENT (then the whole file). keyless:
 *  the keyless cut when khsm_zoneconf_keyless(conf_path), else the plain one.
 *  \param[out] handoff_ptr  free with khsm_handoff_free(). */
int khsm_zoneconf_for(const char *conf_path, const char *zone, bool keyless,
                      khsm_handoff_t **handoff_ptr);
