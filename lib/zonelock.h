/* One ceremony per zone at a time: a second run on a zone would pre-sign and
 * import again (duplicate ZSKs with equal timers in KASP). A lock file per
 * zone in DIR (the archive base of the ZSK-side KASP database), held with
 * flock for the run; a second run waits for it (bounded), then refuses. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

typedef struct khsm_zonelock khsm_zonelock_t;

/** Told once per zone that has to be waited for (holder: its pid, 0 unknown). */
typedef void (*khsm_zonelock_notify_t)(const char *zone, pid_t holder, unsigned wait_ms, void *data);

/** How long to wait for a zone: KHSM_CEREMONY_WAIT_MS (milliseconds, 0: do
 *  not wait), else 10 minutes. */
unsigned khsm_zonelock_wait_ms(void);

/** Lock each zone (DIR/.lock/<zone>.lock, made 0700/0660 without following a
 *  symlink), in name order so that two runs cannot deadlock. KHSM_EBUSY when
 *  a zone stays locked for wait_ms (the detail names it, its holder and the
 *  remedy); nothing stays locked then.
 *  \param[out] lock_ptr  release with khsm_zonelock_release(). */
int khsm_zonelock_take(const char *dir, const char *const *zones, size_t n, unsigned wait_ms,
                       khsm_zonelock_notify_t notify, void *data, khsm_zonelock_t **lock_ptr);

/** Release every zone of the lock. NULL is accepted. */
void khsm_zonelock_release(khsm_zonelock_t *lock);
