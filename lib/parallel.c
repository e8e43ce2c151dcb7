/* Work over many zones side by side (see parallel.h). */
#include <pthread.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"
#include "parallel.h"

#define MAX_WORKERS 4

typedef struct {
	size_t n;
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	pthread_mutex_t mu;
	size_t next;               /* guarded by mu */
} job_t;

static void *worker(void *arg)
{
	job_t *job = arg;
	for (;;) {
		pthread_mutex_lock(&job->mu);
		size_t i = job->next++;
		pthread_mutex_unlock(&job->mu);
		if (i >= job->n) break;
		job->fn(job->ctx, i);
	}
	return NULL;
}

_public_
void khsm_parallel_for(size_t n, unsigned workers, void (*fn)(void *ctx, size_t i), void *ctx)
{
	if (!fn || n == 0) {
		return;
	}
	if (workers == 0) {
		/* at least two: the steps wait on processes, even on one CPU */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		workers = cpus < 2 ? 2 : cpus > MAX_WORKERS ? MAX_WORKERS : (unsigned)cpus;
	}
	if (workers > MAX_WORKERS) workers = MAX_WORKERS;
	if (workers > n) workers = (unsigned)n;
	job_t job = { .n = n, .fn = fn, .ctx = ctx };
	pthread_mutex_init(&job.mu, NULL);
	pthread_t th[MAX_WORKERS];
	unsigned started = 0;
	for (unsigned t = 1; t < workers; t++) {
		if (pthread_create(&th[started], NULL, worker, &job) != 0) break;   /* fewer threads */
		started++;
	}
	khsm_err_clear();
	worker(&job);
	for (unsigned t = 0; t < started; t++) {
		pthread_join(th[t], NULL);
	}
	pthread_mutex_destroy(&job.mu);
}
