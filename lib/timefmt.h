/* ISO 8601 UTC time text, as the audit log, the SKR and the CLI print it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Room for either form below, with its terminating NUL. */
#define KHSM_TIME_ISO_SIZE 40

/* t (seconds since the epoch) as 2026-11-22T04:59:06Z into buf of size
 * bytes (KHSM_TIME_ISO_SIZE is enough). */
void khsm_time_iso(int64_t t, char *buf, size_t size);

/* The current time with milliseconds, 2026-11-22T04:59:06.817Z, into buf of
 * size bytes (KHSM_TIME_ISO_SIZE is enough). */
void khsm_time_iso_now_ms(char *buf, size_t size);
