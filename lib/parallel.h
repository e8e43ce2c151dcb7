/* Work over many zones side by side: each zone's step waits on a keymgr or
 * knotc process, not on the CPU, so a few threads keep both cores busy. */
#pragma once

#include <stddef.h>

/** Call fn(ctx, i) for every i in [0, n), in up to `workers` threads at once
 *  (the calling thread is one of them; 0: one per online CPU, 2 to 4). Each
 *  i is taken once, in increasing order; fn must be thread-safe. Returns
 *  when every call has returned. The error detail is per thread: fn keeps
 *  what the caller needs of it. */
void khsm_parallel_for(size_t n, unsigned workers, void (*fn)(void *ctx, size_t i), void *ctx);
