/* The zones of the files knot-hsm policy writes: which zones the written
 * files list, which were taken out on purpose (remove=yes), and what a new
 * run adds, keeps and removes. A run never drops a zone silently: a zone the
 * files list, or that has keys in the KSK side's KASP, stays unless it is
 * removed by name. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* A list of zone names (lower-case FQDNs with the final dot), no duplicates. */
typedef struct {
	char **names;
	size_t count;
} khsm_zonelist_t;

/** Free the names of a list and empty it. */
void khsm_zonelist_clear(khsm_zonelist_t *list);

/** Whether zone is in list. */
bool khsm_zonelist_has(const khsm_zonelist_t *list, const char *zone);

/** Append a copy of zone unless it is there already. */
int khsm_zonelist_add(khsm_zonelist_t *list, const char *zone);

/** The zones a text written by knot-hsm policy lists ("# zones:" line of
 *  either file, "  - domain:" lines of the KSK side) and those recorded as
 *  removed ("# knot-hsm: removed:" line), added to zones and removed.
 *  A text without the policy marker adds nothing. */
int khsm_policyzones_read(const char *text, khsm_zonelist_t *zones, khsm_zonelist_t *removed);

/** khsm_policyzones_read() on the file at path (never through a symbolic
 *  link); a missing file adds nothing. */
int khsm_policyzones_read_file(const char *path, khsm_zonelist_t *zones, khsm_zonelist_t *removed);

/** Zones with at least one key in the KASP database dir (`keymgr -D DIR -l`),
 *  added to list; none when dir does not exist. */
int khsm_policyzones_kasp(const char *dir, khsm_zonelist_t *list);

/* What a run of policy does to the zone list. */
typedef struct {
	khsm_zonelist_t zones;    /* to write: the kept ones, then the added ones */
	khsm_zonelist_t added;    /* given, not listed before */
	khsm_zonelist_t kept;     /* listed before and still listed */
	khsm_zonelist_t removed;  /* to record as removed (this run and earlier ones) */
	khsm_zonelist_t removed_now; /* removed by this run */
} khsm_policyzones_plan_t;

/** Free a plan. */
void khsm_policyzones_plan_clear(khsm_policyzones_plan_t *plan);

/** Plan a run: listed (from the written files), was_removed (recorded there),
 *  in_kasp (zones with keys on the KSK side, may be NULL), the given zones
 *  and remove (remove=yes). Without remove the result is listed plus given;
 *  with remove, listed minus given. KHSM_ENOENT when a zone to remove is
 *  neither listed nor in KASP; KHSM_EINVAL when no zone would be left;
 *  KHSM_ECONFIG naming every zone with keys in KASP that would be neither
 *  listed nor removed (a run that would drop it). Details name the zones
 *  and the remedy. \param[out] plan  free with khsm_policyzones_plan_clear(). */
int khsm_policyzones_plan(const khsm_zonelist_t *listed, const khsm_zonelist_t *was_removed,
                          const khsm_zonelist_t *in_kasp, const char *const *given, size_t n_given,
                          bool remove, khsm_policyzones_plan_t *plan);
