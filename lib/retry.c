/* Card lock and retry with backoff for busy or briefly removed cards. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/file.h>
#include <time.h>

#include "error.h"
#include "internal.h"
#include "retry.h"

#define DEFAULT_FIRST_MS 50
#define DEFAULT_MAX_DELAY_MS 1000
#define DEFAULT_BUDGET_MS 10000
#define LOCK_WAIT_MS 60000

_public_
bool khsm_retry_transient(int code)
{
	switch (code) {
	case KHSM_EBUSY:
	case KHSM_EREMOVED:
	case KHSM_ENOTOKEN:
		return true;
	default:     /* PIN, login, memory, refusals: retrying cannot help or costs a try */
		return false;
	}
}

/* A whole number of milliseconds (at most an hour) from the environment, or dflt. */
static unsigned env_ms(const char *name, unsigned dflt)
{
	uint64_t v;
	return khsm_parse_u64(getenv(name), 3600000, &v) ? (unsigned)v : dflt;
}

_public_
void khsm_retry_policy_default(khsm_retry_policy_t *policy_ptr)
{
	policy_ptr->first_ms = env_ms("KHSM_RETRY_FIRST_MS", DEFAULT_FIRST_MS);
	policy_ptr->max_delay_ms = DEFAULT_MAX_DELAY_MS;
	policy_ptr->budget_ms = env_ms("KHSM_RETRY_MS", DEFAULT_BUDGET_MS);
	if (policy_ptr->first_ms == 0) {
		policy_ptr->first_ms = 1;
	}
	if (policy_ptr->max_delay_ms < policy_ptr->first_ms) {
		policy_ptr->max_delay_ms = policy_ptr->first_ms;
	}
}

/* The library does not print: the CLI installs a notifier. */
static khsm_retry_notify_t notify_fn;
static void *notify_data;

_public_
void khsm_retry_set_notify(khsm_retry_notify_t notify, void *data)
{
	notify_fn = notify;
	notify_data = data;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* Card operations running in this thread: one nested in another is tried
 * once, the outermost one does the retrying (budgets do not multiply). */
static __thread unsigned op_depth;

static int run(const khsm_retry_policy_t *policy, const char *what, int (*op)(void *ctx),
               void *ctx, bool locked)
{
	if (locked && op_depth > 0) {
		int r = khsm_card_lock();
		if (r == KHSM_EOK) {
			op_depth++;
			r = op(ctx);
			op_depth--;
			khsm_card_unlock();
		}
		return r;
	}
	unsigned delay = policy->first_ms ? policy->first_ms : 1;
	unsigned slept = 0, tries = 0;
	for (;;) {
		int r;
		if (locked && (r = khsm_card_lock()) != KHSM_EOK) {
			return r;   /* another knot-hsm hogs the card: not retried */
		}
		op_depth += locked;
		r = op(ctx);
		op_depth -= locked;
		tries++;
		if (locked) {
			khsm_card_unlock();
		}
		if (r == KHSM_EOK || !khsm_retry_transient(r)) {
			return r;
		}
		if (policy->budget_ms == 0) {
			return r;
		}
		if (slept >= policy->budget_ms) {
			const char *d = khsm_err_last_detail();
			char prev[1024];
			snprintf(prev, sizeof(prev), "%s", d ? d : "");
			khsm_err_detail("%s%sthe card stayed busy or absent while %s: gave up after %u tries "
			                "in %.1f s; check that no other program holds the card and that it "
			                "is inserted, then rerun", prev, prev[0] ? "; " : "", what, tries,
			                slept / 1000.0);
			return r;
		}
		unsigned d = delay;
		if (d > policy->budget_ms - slept) {
			d = policy->budget_ms - slept;
		}
		if (notify_fn) {
			notify_fn(what, r, d, notify_data);
		}
		khsm_err_clear();
		sleep_ms(d);
		slept += d;
		delay = delay > policy->max_delay_ms / 2 ? policy->max_delay_ms : delay * 2;
	}
}

_public_
int khsm_retry_run(const khsm_retry_policy_t *policy, const char *what,
                   int (*op)(void *ctx), void *ctx)
{
	if (!policy || !what || !op) {
		return KHSM_EINVAL;
	}
	return run(policy, what, op, ctx, false);
}

_public_
int khsm_card_op(const char *what, int (*op)(void *ctx), void *ctx)
{
	if (!what || !op) {
		return KHSM_EINVAL;
	}
	khsm_retry_policy_t policy;
	khsm_retry_policy_default(&policy);
	return run(&policy, what, op, ctx, true);
}

/* -- the card lock -------------------------------------------------------- */

static pthread_mutex_t lock_mutex = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static unsigned lock_depth;   /* guarded by lock_mutex */
static int lock_fd = -1;

static int lock_file_open(void)
{
	const char *env = getenv("KHSM_LOCK_FILE");
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char path[PATH_MAX];
	if (env && *env) {
		snprintf(path, sizeof(path), "%s", env);
	} else if (xdg && *xdg == '/') {
		snprintf(path, sizeof(path), "%s/knot-hsm.lock", xdg);
	} else {
		snprintf(path, sizeof(path), "/run/lock/knot-hsm.lock");
	}
	/* Read-only is enough for flock, so users other than its creator can share it. */
	int fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
	}
	return fd;
}

_public_
int khsm_card_lock(void)
{
	pthread_mutex_lock(&lock_mutex);
	if (lock_depth++ > 0) {
		return KHSM_EOK;
	}
	lock_fd = lock_file_open();
	if (lock_fd < 0) {
		return KHSM_EOK;   /* no shared lock file: this process is still serialised */
	}
	unsigned waited = 0, step = 10;
	while (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EINTR) {
			continue;
		}
		if (errno != EWOULDBLOCK || waited >= LOCK_WAIT_MS) {
			bool timeout = errno == EWOULDBLOCK;
			close(lock_fd);
			lock_fd = -1;
			lock_depth--;
			pthread_mutex_unlock(&lock_mutex);
			if (!timeout) {
				return KHSM_EOK;   /* a file system without flock: go on */
			}
			khsm_err_detail("another knot-hsm process has been using the card for %u s "
			                "(lock file KHSM_LOCK_FILE, $XDG_RUNTIME_DIR/knot-hsm.lock or "
			                "/run/lock/knot-hsm.lock); wait for it to finish", LOCK_WAIT_MS / 1000);
			return KHSM_EBUSY;
		}
		sleep_ms(step);
		waited += step;
		step = step < 100 ? step * 2 : 100;
	}
	return KHSM_EOK;
}

_public_
void khsm_card_unlock(void)
{
	if (lock_depth == 0) {
		return;
	}
	if (--lock_depth == 0 && lock_fd >= 0) {
		close(lock_fd);   /* releases the flock */
		lock_fd = -1;
	}
	pthread_mutex_unlock(&lock_mutex);
}
