/* The policy that keeps the KSK on the card and rolls a software ZSK: its
 * lifetimes, their arithmetic (card signatures per zone and year, longest
 * card outage the zone survives) and the knot.conf text for both modes.
 *
 * offline (Knot 3.2-3.4, also >= 3.5): knotd is the ZSK side (PEM keystore,
 *   manual, offline-ksk); a standalone KSK-side configuration (own KASP, the
 *   card's pkcs11 keystore) signs pre-generated DNSKEY sets in a ceremony.
 * online (Knot >= 3.5): one policy with the card keystore (ksk-only) first
 *   and a PEM keystore second; knotd signs DNSKEY with the card itself.
 *
 * Times are seconds. Durations are written as Knot reads them: a number with
 * an optional unit s, m, h or d, nothing else. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "knotconf.h"

/* First line of every file knot-hsm policy writes; a file without it is the
 * operator's and is never overwritten without --force. */
#define KHSM_POLICY_MARKER "# Written by knot-hsm policy; do not edit"

/* Identifiers used in the rendered configuration. */
#define KHSM_POLICY_ID        "knot-hsm"        /* ZSK side / online policy */
#define KHSM_POLICY_KSK_ID    "knot-hsm-ksk"    /* KSK side policy */
#define KHSM_POLICY_PEM_ID    "knot-hsm-soft"   /* PEM keystore for the ZSKs */
#define KHSM_POLICY_CARD_ID   "knot-hsm-card"   /* online: card keystore, ksk-only */

/* Defaults of the offline ceremony, used by the outage arithmetic. */
#define KHSM_CEREMONY_UNTIL    (90 * 86400)     /* ceremony until=+90d */
#define KHSM_CEREMONY_INTERVAL (31 * 86400)     /* monthly timer, longest month */
#define KHSM_OUTAGE_GOAL       (7 * 86400)      /* what the defaults must survive */

typedef enum {
	KHSM_MODE_OFFLINE = 0,
	KHSM_MODE_ONLINE,
} khsm_mode_t;

/* Knot's cds-cdnskey-publish: which KSKs the zone's CDS and CDNSKEY name
 * (RFC 7344, RFC 8078). delete-dnssec is left out: it asks the parent to
 * take the DS away. */
typedef enum {
	KHSM_CDS_ROLLOVER = 0,      /* Knot's default: the KSK waiting for its DS */
	KHSM_CDS_NONE,
	KHSM_CDS_ALWAYS,            /* the signing KSK too, when none waits */
	KHSM_CDS_DOUBLE_DS,         /* the waiting KSK and the signing one together */
} khsm_cds_t;

/** "rollover", "none", "always", "double-ds" to khsm_cds_t; KHSM_EINVAL
 *  with a detail otherwise. \param[out] cds_ptr */
int khsm_cds_from_name(const char *name, khsm_cds_t *cds_ptr);

/** Knot's name of a mode ("rollover", ...). */
const char *khsm_cds_name(khsm_cds_t cds);

typedef struct {
	khsm_mode_t mode;
	int64_t zsk_lifetime;       /* 0: no automatic ZSK roll */
	int64_t rrsig_lifetime;
	int64_t rrsig_refresh;
	int64_t dnskey_ttl;
	int64_t zone_max_ttl;
	int64_t propagation_delay;  /* the real delay to all secondaries and caches */
	int algorithm;              /* DNSSEC algorithm number */
	bool shared_ksk;            /* one card KSK for all the zones */
	khsm_cds_t cds;             /* cds-cdnskey-publish, rendered when not rollover */
	int64_t until;              /* offline: ceremony horizon */
	int64_t interval;           /* offline: time between ceremonies */
} khsm_policy_t;

/* Results of the arithmetic. */
typedef struct {
	uint64_t card_signatures_per_year;  /* per zone (a shared KSK signs each zone's set) */
	uint64_t card_signatures_peak_day;  /* per zone on its busiest day: online the most in
	                                     * 24 hours, offline one ceremony's */
	int64_t outage_survived;            /* longest card/pcscd outage the zone survives */
	int64_t rendered_propagation_delay; /* offline: what pregenerate is given (see .c) */
} khsm_policy_stats_t;

/** Parse a duration strictly: decimal digits, then nothing (seconds) or one of
 *  s, m, h, d. No sign, no blanks, no other unit, no overflow; KHSM_EINVAL
 *  with a detail otherwise. \param[out] secs_ptr */
int khsm_duration_parse(const char *text, int64_t *secs_ptr);

/** Format seconds with the largest unit that divides them exactly: 2592000 ->
 *  "30d", 3600 -> "1h", 90 -> "90s", 0 -> "0". buf holds at least 32 bytes. */
void khsm_duration_format(int64_t secs, char *buf, size_t size);

/** Human form for messages: "59 days", "7 days 2 hours", "45 seconds". */
void khsm_duration_human(int64_t secs, char *buf, size_t size);

/** Mode from its name, "offline" or "online". */
int khsm_mode_from_name(const char *name, khsm_mode_t *mode_ptr);

/** Name of a mode (static string). */
const char *khsm_mode_name(khsm_mode_t mode);

/** Default mode for an installed Knot: online from 3.5, offline before. */
khsm_mode_t khsm_mode_default(int major, int minor);

/** Whether Knot major.minor can run mode; KHSM_ENOTSUP with the reason. */
int khsm_mode_supported(khsm_mode_t mode, int major, int minor);

/** Defaults for a mode (see policy.c for the rationale of each value). */
void khsm_policy_defaults(khsm_policy_t *policy, khsm_mode_t mode);

/** The policy knot.conf's cp describes (NULL: Knot's defaults): offline when
 *  it says offline-ksk, online otherwise; what it leaves unset as Knot's
 *  defaults. For the arithmetic of a zone knot-hsm did not write the policy of. */
void khsm_policy_from_conf(const khsm_conf_policy_t *cp, khsm_policy_t *policy);

/** Set one option: zsk-lifetime, rrsig-lifetime, rrsig-refresh, dnskey-ttl,
 *  zone-max-ttl, propagation-delay (durations), algorithm (name as keymgr
 *  takes it, or number), shared-ksk (yes/no). KHSM_ENOENT for an unknown key,
 *  KHSM_EINVAL for a bad value. */
int khsm_policy_set(khsm_policy_t *policy, const char *key, const char *value);

/** Refuse combinations Knot rejects or that break validation (refresh not
 *  below lifetime, refresh shorter than a TTL, a ZSK lifetime too short for
 *  a rollover, ...). KHSM_EINVAL with the reason and the remedy. */
int khsm_policy_check(const khsm_policy_t *policy);

/** The arithmetic: card signatures per zone and year, outage survived.
 *  \param[out] stats */
int khsm_policy_stats(const khsm_policy_t *policy, khsm_policy_stats_t *stats);

/** The rrsig-pre-refresh to write (refresh + pre-refresh < lifetime), or -1
 *  when Knot's default of 1h fits and none is written. */
int64_t khsm_policy_pre_refresh(const khsm_policy_t *policy);

/** The propagation-delay knotd is given: online the policy's own; offline
 *  plus the longest TTL, as keymgr pregenerate spaces ZSK events by it alone. */
int64_t khsm_policy_propagation_delay(const khsm_policy_t *policy);

/** Whether a KSK-side configuration text says shared-ksk (its header line
 *  "# knot-hsm: shared-ksk=yes"). */
bool khsm_policy_text_shared_ksk(const char *text);

/** The value of header line "# knot-hsm: NAME=VALUE" of a file knot-hsm
 *  policy wrote (its first line the marker; the header is the comment lines
 *  at the top). KHSM_ENOENT when path is not such a file or has no such
 *  line. Never follows a link. \param[out] value_ptr  free with free(). */
int khsm_policy_file_header(const char *path, const char *name, char **value_ptr);

/** The ZSK side's knot.conf that a KSK-side configuration file at path was
 *  written for (its header line "# knot-hsm: zsk-conf=PATH"). KHSM_ENOENT
 *  when path is not a KSK side knot-hsm policy wrote, or names none.
 *  \param[out] conf_ptr  free with free(). */
int khsm_policy_file_zsk_conf(const char *path, char **conf_ptr);

/** Sibling KSK-side path of an include path: "/etc/knot/knot-hsm.conf" ->
 *  "/etc/knot/knot-hsm-ksk.conf" (".conf" replaced, else "-ksk.conf" added).
 *  \param[out] path_ptr  free with free(). */
int khsm_policy_ksk_path(const char *include_path, char **path_ptr);

/** The pkcs11 keystore of conf for the KSK: the one with id want, else the
 *  only one (knot-hsm's own online copy, KHSM_POLICY_CARD_ID, does not
 *  count). KHSM_ENOENT when there is none, KHSM_EAMBIGUOUS when want is
 *  NULL and there are several, each with a detail. \param[out] ks_ptr
 *  owned by conf. */
int khsm_policy_pick_card(const khsm_conf_t *conf, const char *want,
                          const khsm_conf_keystore_t **ks_ptr);

/** The other cards of conf, for the KSK side, where a KSK can be made
 *  (generate keystore=ID) for a rollover or a standby: every pkcs11 keystore
 *  with a config but card and KHSM_POLICY_CARD_ID. \param[out] ids_ptr,
 *  configs_ptr  count_ptr entries each, owned by conf; free() the arrays. */
int khsm_policy_other_cards(const khsm_conf_t *conf, const khsm_conf_keystore_t *card,
                            const char ***ids_ptr, const char ***configs_ptr, size_t *count_ptr);

/* Where policy puts its files. */
typedef struct {
	char *main_path;           /* the include, for knotd */
	char *ksk_path;            /* the KSK side (offline mode) */
	char *ksk_db;              /* the KSK side's KASP directory */
} khsm_policy_paths_t;

/** policy's file layout for knot.conf at conf_path with KASP kasp_db: the
 *  include write (--write), else knot-hsm.conf next to knot.conf; the KSK
 *  side ksk_conf (ksk-conf=), else the include's sibling
 *  (khsm_policy_ksk_path); its KASP ksk_kasp_db (ksk-kasp-db=), else
 *  knot-hsm-ksk next to kasp_db. Given paths are taken from the working
 *  directory. KHSM_EEXIST with a detail when two of the include, the KSK
 *  side and knot.conf are one file; KHSM_EINVAL when a path cannot be made.
 *  \param[out] out  free with khsm_policy_paths_clear(). */
int khsm_policy_plan_paths(const char *conf_path, const char *kasp_db, const char *write,
                           const char *ksk_conf, const char *ksk_kasp_db, khsm_policy_paths_t *out);

/** Free the paths (NULL is fine). */
void khsm_policy_paths_clear(khsm_policy_paths_t *paths);

/** The KSK side's configuration next to knot.conf at conf_path, where policy
 *  --write puts it by default: "DIR/knot-hsm-ksk.conf", DIR the directory
 *  of knot.conf with its links resolved. NULL without memory; free(). */
char *khsm_policy_ksk_side(const char *conf_path);

/** The include next to knot.conf at conf_path, where policy --write puts it
 *  by default: "DIR/knot-hsm.conf" (as khsm_policy_ksk_side()). NULL without
 *  memory; free(). */
char *khsm_policy_include(const char *conf_path);

/** Load the KSK side at path (khsm_policy_ksk_side) when it is readable:
 *  *kconf_ptr NULL and KHSM_EOK when it is not (online mode has none); an
 *  error of khsm_conf_load() when it is there but does not load.
 *  \param[out] kconf_ptr  free with khsm_conf_free(). */
int khsm_policy_ksk_side_load(const char *path, khsm_conf_t **kconf_ptr);

/** Whether policy --write may replace the file at path: KHSM_EOK when it does
 *  not exist, or is a regular file whose first line is KHSM_POLICY_MARKER (any
 *  regular file with force); KHSM_EEXIST for a file knot-hsm did not write;
 *  KHSM_EPERM for a symbolic link or a non-regular file, even with force.
 *  The file is opened with O_NOFOLLOW. */
int khsm_policy_check_target(const char *path, bool force);

/** The KSK-side KASP directory: made 0750 when missing and, as root, given
 *  the owner of its parent through its own descriptor (never a path); a
 *  symbolic link or a non-directory there is refused (KHSM_EPERM). */
int khsm_policy_make_dir(const char *path);
