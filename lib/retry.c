/* Card lock and retry with backoff for busy or briefly removed cards. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>

#include "error.h"
#include "files.h"
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
			if (r == KHSM_EBUSY) {
				/* The card answered, with an error, every time: OpenSC says
				 * CKR_DEVICE_ERROR both for a card busy with another program
				 * and for one that fails the command (status word 6F00). */
				khsm_err_detail("%s%sthe card kept failing while %s: gave up after %u tries in "
				                "%.1f s, each answered with an error (device error, "
				                "CKR_DEVICE_ERROR, which is also how OpenSC reports a card busy "
				                "with another program); if no other program holds the card, "
				                "remove and reinsert it (knot-hsm doctor checks it) and rerun; a "
				                "card that keeps failing is faulty", prev, prev[0] ? "; " : "",
				                what, tries, slept / 1000.0);
				return r;
			}
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

/* The threads of this process take a card lock in turn, a ticket each: the
 * thread that signs zone after zone would otherwise take a mutex straight
 * back after each signature, and another thread's one card operation (a key
 * generation or self-test of onboarding, in the ceremony's hook thread) would wait
 * for the whole zone, its keymgr work after it, while the card idles. The
 * lock is recursive: card operations nest. */
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned long next, now;   /* tickets given out, ticket served */
	pthread_t owner;           /* valid while depth > 0 */
	unsigned depth;
} turn_t;

#define TURN_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0 }

/* Take t; true when this is the thread's outermost hold of it. */
static bool turn_take(turn_t *t)
{
	pthread_mutex_lock(&t->mu);
	if (t->depth > 0 && pthread_equal(t->owner, pthread_self())) {
		t->depth++;
		pthread_mutex_unlock(&t->mu);
		return false;
	}
	unsigned long mine = t->next++;
	while (mine != t->now) pthread_cond_wait(&t->cv, &t->mu);
	t->owner = pthread_self();
	t->depth = 1;
	pthread_mutex_unlock(&t->mu);
	return true;
}

/* Give one level of t back (a thread that does not hold it: nothing). */
static void turn_give(turn_t *t)
{
	pthread_mutex_lock(&t->mu);
	if (t->depth > 0 && pthread_equal(t->owner, pthread_self()) && --t->depth == 0) {
		t->now++;
		pthread_cond_broadcast(&t->cv);
	}
	pthread_mutex_unlock(&t->mu);
}

/* Does this thread hold t once, not nested (its next give is the last)? */
static bool turn_last(turn_t *t)
{
	pthread_mutex_lock(&t->mu);
	bool last = t->depth == 1 && pthread_equal(t->owner, pthread_self());
	pthread_mutex_unlock(&t->mu);
	return last;
}

static turn_t lock_turn = TURN_INIT;   /* the machine-wide lock's; guards lock_fd and the rest */
static int lock_fd = -1;          /* the lock file, open for the process (close-on-exec) */
static bool lock_opened;          /* lock_fd is for lock_key's location (-1: none there) */
static char lock_key[2 * PATH_MAX + 2];

/* The lock is a file only root and knotd's user can open: whoever can open
 * it can hold it (flock -s) and stall every card operation of knot-hsm. */
#define LOCK_DIR "/run/knot-hsm"
#define LOCK_NAME "card.lock"

static bool lock_trusted_uid(uid_t uid, uid_t knot_uid)
{
	return uid == 0 || uid == geteuid() || uid == knot_uid;
}

/* Open (or create, 0660) name in the directory dfd without following a
 * symlink, and accept only a regular file of a trusted owner that others
 * cannot open. Returns the descriptor, -1 with the detail set (refused), or
 * -2 when it cannot be opened at all (permission, missing: no lock). */
static int lock_open_at(int dfd, const char *dir, const char *name, uid_t knot_uid)
{
	int fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0660);
	bool created = fd >= 0;
	if (fd < 0 && errno == EEXIST) {
		/* Read-only is enough for flock; O_NONBLOCK: a FIFO in its place does not stall us. */
		fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	}
	if (fd < 0) {
		if (errno == ELOOP) {
			khsm_err_detail("lock file %s/%s is a symbolic link, which knot-hsm never follows; "
			                "remove it (knot-hsm creates the lock file itself)", dir, name);
			return -1;
		}
		return -2;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		khsm_err_detail("lock file %s/%s is not a regular file; remove it (knot-hsm creates "
		                "the lock file itself)", dir, name);
		return -1;
	}
	if (!lock_trusted_uid(st.st_uid, knot_uid)) {
		close(fd);
		khsm_err_detail("lock file %s/%s is owned by uid %u, neither root, you nor knotd's "
		                "user: anyone owning it can stall the card; remove it", dir, name,
		                (unsigned)st.st_uid);
		return -1;
	}
	if (created || (st.st_mode & 0007)) {
		/* Through the descriptor, never the path: 0660, others shut out. */
		if (st.st_uid != geteuid() || fchmod(fd, 0660) != 0) {
			close(fd);
			khsm_err_detail("lock file %s/%s has mode %04o: other users can take the lock and "
			                "stall the card; run chmod 0660 on it", dir, name,
			                (unsigned)(st.st_mode & 07777));
			return -1;
		}
	}
	(void)fcntl(fd, F_SETFL, 0);
	return fd;
}

/* The directory of the lock (created by root: 02770 root:knot, or 0700 when
 * there is no knot group). -1 refused (detail set), -2 not usable. */
static int lock_dir_open(const char *dir, gid_t knot_gid, bool have_knot)
{
	bool made = geteuid() == 0 && mkdir(dir, 0700) == 0;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		if (errno == ELOOP || errno == ENOTDIR) {
			khsm_err_detail("lock directory %s is a symbolic link or not a directory; remove "
			                "it (knot-hsm creates it as root, mode 2770 root:knot)", dir);
			return -1;
		}
		return -2;
	}
	if (made && (fchown(dfd, 0, have_knot ? knot_gid : 0) != 0 ||
	             fchmod(dfd, have_knot ? 02770 : 0700) != 0)) {
		khsm_err_detail("cannot set owner and mode of %s: %s", dir, strerror(errno));
		close(dfd);
		return -1;
	}
	struct stat st;
	if (fstat(dfd, &st) != 0 || st.st_uid != 0 || (st.st_mode & 0007) ||
	    ((st.st_mode & S_IWGRP) && (!have_knot || st.st_gid != knot_gid))) {
		khsm_err_detail("lock directory %s must be root's, mode 2770 (group knot) or 0700, "
		                "not open to others; remove it and rerun as root to recreate it", dir);
		close(dfd);
		return -1;
	}
	return dfd;
}

/* The lock file's descriptor; -1 when none can be used (the operation then
 * runs unserialised across processes); KHSM_EPERM when one was refused. */
static int lock_file_open(const char *suffix, int *fd_ptr)
{
	*fd_ptr = -1;
	/* knotd's user and group (looked up once: the lock is taken for every
	 * card operation); (uid_t)-1 / (gid_t)-1: none. */
	uid_t knot_uid;
	gid_t knot_gid;
	khsm_knot_ids(&knot_uid, &knot_gid);

	const char *env = getenv("KHSM_LOCK_FILE");
	int fd = -2;
	if (env && *env) {
		_cleanup_free_ char *copy = strdup(env);
		if (!copy) return KHSM_ENOMEM;
		char *slash = strrchr(copy, '/');
		const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
		const char *name = slash ? slash + 1 : copy;
		if (slash) *slash = '\0';
		_cleanup_free_ char *full = NULL;
		if (asprintf(&full, "%s%s", name, suffix) < 0) return KHSM_ENOMEM;
		_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		fd = dfd < 0 ? -2 : lock_open_at(dfd, dir, full, knot_uid);
	} else {
		const char *dir = getenv("KHSM_LOCK_DIR");
		if (!dir || *dir != '/') dir = LOCK_DIR;
		_cleanup_close_ int dfd = lock_dir_open(dir, knot_gid, knot_gid != (gid_t)-1);
		if (dfd == -1) return KHSM_EPERM;
		char name[sizeof(LOCK_NAME) + 64];
		snprintf(name, sizeof(name), "%s%s", LOCK_NAME, suffix);
		if (dfd >= 0) fd = lock_open_at(dfd, dir, name, knot_uid);
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		if (fd == -2 && geteuid() != 0 && xdg && *xdg == '/') {
			/* Not root and not in group knot: the per-user runtime dir (0700, own). */
			_cleanup_close_ int xfd = open(xdg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (xfd >= 0 && fstat(xfd, &st) == 0 && st.st_uid == geteuid() && !(st.st_mode & 0077)) {
				char xname[64 + 16];
				snprintf(xname, sizeof(xname), "knot-hsm.lock%s", suffix);
				fd = lock_open_at(xfd, xdg, xname, knot_uid);
			}
		}
	}
	if (fd == -1) return KHSM_EPERM;
	*fd_ptr = fd < 0 ? -1 : fd;
	return KHSM_EOK;
}

/* -- the lock of one card, for a thread of a several-card run -------------- */

struct khsm_card_scope {
	turn_t turn;
	int all_fd;           /* the machine-wide lock file, an own open file description (-1: none) */
	int card_fd;          /* this card's lock file (-1: none) */
};

/* The card of this thread's card operations (NULL: the machine-wide lock). */
static __thread khsm_card_scope_t *thread_scope;

static int flock_wait(int fd, int op)
{
	unsigned waited = 0, step = 10;
	while (flock(fd, op | LOCK_NB) != 0) {
		if (errno == EINTR) continue;
		if (errno != EWOULDBLOCK) return KHSM_EOK;   /* a file system without flock: go on */
		if (waited >= LOCK_WAIT_MS) {
			khsm_err_detail("another knot-hsm process has been using the card for %u s "
			                "(lock file KHSM_LOCK_FILE, /run/knot-hsm/card.lock or "
			                "$XDG_RUNTIME_DIR/knot-hsm.lock); wait for it to finish", LOCK_WAIT_MS / 1000);
			return KHSM_EBUSY;
		}
		sleep_ms(step);
		waited += step;
		step = step < 100 ? step * 2 : 100;
	}
	return KHSM_EOK;
}

_public_
int khsm_card_scope_begin(const char *card)
{
	if (!card || thread_scope) {
		return KHSM_EINVAL;
	}
	khsm_card_scope_t *s = NULL;
	int r = khsm_card_scope_new(card, &s);
	if (r == KHSM_EOK) thread_scope = s;
	return r;
}

_public_
int khsm_card_scope_new(const char *card, khsm_card_scope_t **scope_ptr)
{
	if (!card || !scope_ptr) {
		return KHSM_EINVAL;
	}
	khsm_card_scope_t *s = calloc(1, sizeof(*s));
	if (!s) return KHSM_ENOMEM;
	pthread_mutex_init(&s->turn.mu, NULL);
	pthread_cond_init(&s->turn.cv, NULL);
	/* FNV-1a of the card's name: a short, stable file name suffix. */
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)card; *p; p++) {
		h = (h ^ *p) * 1099511628211ULL;
	}
	char suffix[32];
	snprintf(suffix, sizeof(suffix), ".card-%016" PRIx64, h);
	int r = lock_file_open("", &s->all_fd);
	if (r == KHSM_EOK && (r = lock_file_open(suffix, &s->card_fd)) != KHSM_EOK && s->all_fd >= 0) {
		close(s->all_fd);
	}
	if (r != KHSM_EOK) {
		pthread_mutex_destroy(&s->turn.mu);
		pthread_cond_destroy(&s->turn.cv);
		free(s);
		return r;
	}
	*scope_ptr = s;
	return KHSM_EOK;
}

_public_
khsm_card_scope_t *khsm_card_scope_current(void)
{
	return thread_scope;
}

_public_
void khsm_card_scope_share(khsm_card_scope_t *scope)
{
	thread_scope = scope;
}

_public_
void khsm_card_scope_end(void)
{
	khsm_card_scope_t *s = thread_scope;
	thread_scope = NULL;
	khsm_card_scope_free(s);
}

_public_
void khsm_card_scope_free(khsm_card_scope_t *s)
{
	if (!s) return;
	if (s->all_fd >= 0) close(s->all_fd);
	if (s->card_fd >= 0) close(s->card_fd);
	pthread_mutex_destroy(&s->turn.mu);
	pthread_cond_destroy(&s->turn.cv);
	free(s);
}

/* Shared on the machine-wide lock (a knot-hsm that does not name its card
 * takes it exclusively and so still excludes every card), exclusive on the
 * card's own lock: two cards work at the same time, one card never twice. */
static int scope_lock(khsm_card_scope_t *s)
{
	if (!turn_take(&s->turn)) {
		return KHSM_EOK;
	}
	/* Without a lock file of its own the card is kept apart by the
	 * machine-wide one alone: exclusive, as for a knot-hsm naming no card. */
	int r = s->all_fd >= 0 ? flock_wait(s->all_fd, s->card_fd >= 0 ? LOCK_SH : LOCK_EX) : KHSM_EOK;
	if (r == KHSM_EOK && s->card_fd >= 0 && (r = flock_wait(s->card_fd, LOCK_EX)) != KHSM_EOK &&
	    s->all_fd >= 0) {
		(void)flock(s->all_fd, LOCK_UN);
	}
	if (r != KHSM_EOK) {
		turn_give(&s->turn);
	}
	return r;
}

static void scope_unlock(khsm_card_scope_t *s)
{
	if (turn_last(&s->turn)) {   /* the files first: the next holder takes them */
		if (s->card_fd >= 0) (void)flock(s->card_fd, LOCK_UN);
		if (s->all_fd >= 0) (void)flock(s->all_fd, LOCK_UN);
	}
	turn_give(&s->turn);
}

_public_
int khsm_card_lock(void)
{
	if (thread_scope) {
		return scope_lock(thread_scope);
	}
	if (!turn_take(&lock_turn)) {
		return KHSM_EOK;
	}
	/* Opened (and checked) once per process and location, locked per
	 * operation: reopening between two operations would let another
	 * program take the card in between more often. */
	char key[2 * PATH_MAX + 2];
	const char *env_file = getenv("KHSM_LOCK_FILE"), *env_dir = getenv("KHSM_LOCK_DIR");
	snprintf(key, sizeof(key), "%s\n%s", env_file ? env_file : "", env_dir ? env_dir : "");
	if (!lock_opened || strcmp(key, lock_key) != 0) {
		if (lock_fd >= 0) {
			close(lock_fd);
			lock_fd = -1;
		}
		lock_opened = false;
		int r = lock_file_open("", &lock_fd);
		if (r != KHSM_EOK) {
			turn_give(&lock_turn);
			return r;
		}
		snprintf(lock_key, sizeof(lock_key), "%s", key);
		lock_opened = true;
	}
	if (lock_fd < 0) {
		return KHSM_EOK;   /* no shared lock file: this process is still serialised */
	}
	int r = flock_wait(lock_fd, LOCK_EX);
	if (r != KHSM_EOK) {
		turn_give(&lock_turn);
	}
	return r;
}

/* The turn khsm_card_lock() takes in this thread. */
static turn_t *this_turn(void)
{
	return thread_scope ? &thread_scope->turn : &lock_turn;
}

_public_
bool khsm_card_lock_held(void)
{
	turn_t *t = this_turn();
	pthread_mutex_lock(&t->mu);
	bool held = t->depth > 0 && pthread_equal(t->owner, pthread_self());
	pthread_mutex_unlock(&t->mu);
	return held;
}

_public_
unsigned khsm_card_lock_waiting(void)
{
	turn_t *t = this_turn();
	pthread_mutex_lock(&t->mu);
	unsigned long n = t->next - t->now;   /* the holder's ticket among them */
	unsigned waiting = (unsigned)(t->depth > 0 && n > 0 ? n - 1 : n);
	pthread_mutex_unlock(&t->mu);
	return waiting;
}

_public_
void khsm_card_unlock(void)
{
	if (thread_scope) {
		scope_unlock(thread_scope);
		return;
	}
	if (turn_last(&lock_turn) && lock_fd >= 0) {
		(void)flock(lock_fd, LOCK_UN);   /* the descriptor stays for the next one */
	}
	turn_give(&lock_turn);
}
