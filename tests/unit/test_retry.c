/* Unit tests of lib/retry.c: transient card errors are retried with backoff
 * until the budget is spent; PIN and other errors never are. */
#include "test.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <sys/file.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <p11-kit/pkcs11.h>

#include "lib/error.h"
#include "lib/retry.h"

typedef struct {
	int codes[16];    /* returned in turn; the last one repeats */
	int n_codes;
	int calls;
} script_t;

static int scripted(void *ctx)
{
	script_t *s = ctx;
	int i = s->calls < s->n_codes ? s->calls : s->n_codes - 1;
	s->calls++;
	return s->codes[i];
}

typedef struct {
	int notes;
	unsigned slept;
	unsigned last_delay;
} notes_t;

static void count_note(const char *what, int code, unsigned delay_ms, void *data)
{
	notes_t *n = data;
	assert_non_null(what);
	assert_true(khsm_retry_transient(code));
	n->notes++;
	n->slept += delay_ms;
	n->last_delay = delay_ms;
}

static const khsm_retry_policy_t FAST = { .first_ms = 1, .max_delay_ms = 4, .budget_ms = 20 };

static void test_transient_codes(void **state)
{
	(void)state;
	assert_true(khsm_retry_transient(KHSM_EBUSY));
	assert_true(khsm_retry_transient(KHSM_EREMOVED));
	assert_true(khsm_retry_transient(KHSM_ENOTOKEN));
	assert_false(khsm_retry_transient(KHSM_EOK));
	assert_false(khsm_retry_transient(KHSM_EPIN_INCORRECT));
	assert_false(khsm_retry_transient(KHSM_EPIN_LOCKED));
	assert_false(khsm_retry_transient(KHSM_EPIN_FINAL_TRY));
	assert_false(khsm_retry_transient(KHSM_ELOGIN));
	assert_false(khsm_retry_transient(KHSM_EDEVMEM));
	assert_false(khsm_retry_transient(KHSM_ENOENT));
	/* The CKR_/GnuTLS codes a busy or pulled card answers map to transient codes
	 * (CKR_DEVICE_ERROR reaches knot-hsm through GnuTLS, or through lib/cardkey.c). */
	assert_true(khsm_retry_transient(khsm_error_from_ckr(CKR_DEVICE_REMOVED)));
	assert_true(khsm_retry_transient(khsm_error_from_ckr(CKR_TOKEN_NOT_PRESENT)));
	assert_true(khsm_retry_transient(khsm_error_from_ckr(CKR_SESSION_HANDLE_INVALID)));
	assert_true(khsm_retry_transient(khsm_error_from_gnutls(GNUTLS_E_PKCS11_DEVICE_ERROR)));
	assert_true(khsm_retry_transient(khsm_error_from_gnutls(GNUTLS_E_PKCS11_SESSION_ERROR)));
	assert_true(khsm_retry_transient(khsm_error_from_gnutls(GNUTLS_E_PKCS11_TOKEN_ERROR)));
	assert_false(khsm_retry_transient(khsm_error_from_ckr(CKR_PIN_INCORRECT)));
	assert_false(khsm_retry_transient(khsm_error_from_ckr(CKR_PIN_LOCKED)));
	assert_false(khsm_retry_transient(khsm_error_from_ckr(CKR_DEVICE_MEMORY)));
	assert_false(khsm_retry_transient(khsm_error_from_gnutls(GNUTLS_E_PKCS11_PIN_ERROR)));
	assert_false(khsm_retry_transient(khsm_error_from_gnutls(GNUTLS_E_PKCS11_PIN_LOCKED)));
	assert_false(khsm_retry_transient(khsm_error_from_gnutls(GNUTLS_E_PKCS11_USER_ERROR)));
}

static void test_retries_until_success(void **state)
{
	(void)state;
	notes_t n = { 0 };
	khsm_retry_set_notify(count_note, &n);
	script_t s = { { KHSM_EBUSY, KHSM_EREMOVED, KHSM_ENOTOKEN, KHSM_EOK }, 4, 0 };
	assert_int_equal(khsm_retry_run(&FAST, "testing", scripted, &s), KHSM_EOK);
	assert_int_equal(s.calls, 4);
	assert_int_equal(n.notes, 3);
	assert_int_equal(n.slept, 1 + 2 + 4);   /* 1 ms doubling, capped at 4 */
	khsm_retry_set_notify(NULL, NULL);
}

static void test_gives_up_after_budget(void **state)
{
	(void)state;
	notes_t n = { 0 };
	khsm_retry_set_notify(count_note, &n);
	khsm_err_clear();
	script_t s = { { KHSM_EBUSY }, 1, 0 };
	assert_int_equal(khsm_retry_run(&FAST, "testing", scripted, &s), KHSM_EBUSY);
	/* Bounded by counts, not by the clock: 7 notified delays summing exactly
	 * to the budget, 8 tries, and nothing after the budget is spent. */
	assert_int_equal(n.slept, FAST.budget_ms);   /* 1+2+4+4+4+4+1 */
	assert_int_equal(n.notes, 7);
	assert_int_equal(s.calls, 8);
	assert_int_equal(n.last_delay, 1);           /* the last delay is cut to the budget left */
	assert_non_null(khsm_err_last_detail());
	assert_non_null(strstr(khsm_err_last_detail(), "gave up after 8 tries"));
	/* Every try answered with an error: a card that kept failing, not only "busy". */
	assert_non_null(strstr(khsm_err_last_detail(), "the card kept failing while testing"));
	assert_non_null(strstr(khsm_err_last_detail(), "device error, CKR_DEVICE_ERROR"));
	khsm_retry_set_notify(NULL, NULL);
}

static void test_gives_up_absent(void **state)
{
	(void)state;
	khsm_err_clear();
	script_t s = { { KHSM_EBUSY, KHSM_ENOTOKEN }, 2, 0 };
	assert_int_equal(khsm_retry_run(&FAST, "testing", scripted, &s), KHSM_ENOTOKEN);
	assert_non_null(strstr(khsm_err_last_detail(), "the card stayed busy or absent while testing"));
	assert_null(strstr(khsm_err_last_detail(), "kept failing"));
}

static void test_never_retries_pin_errors(void **state)
{
	(void)state;
	static const int FINAL[] = { KHSM_EPIN_INCORRECT, KHSM_EPIN_LOCKED, KHSM_EPIN_FINAL_TRY,
	                             KHSM_ELOGIN, KHSM_EDEVMEM, KHSM_EINVAL };
	notes_t n;  /* outlives the loop: the notifier still holds it below */
	for (size_t i = 0; i < sizeof(FINAL) / sizeof(FINAL[0]); i++) {
		n = (notes_t){ 0 };
		khsm_retry_set_notify(count_note, &n);
		script_t s = { { FINAL[i], KHSM_EOK }, 2, 0 };
		assert_int_equal(khsm_retry_run(&FAST, "testing", scripted, &s), FINAL[i]);
		assert_int_equal(s.calls, 1);
		assert_int_equal(n.notes, 0);
	}
	/* A PIN error after a busy card ends the retries at once too. */
	script_t s = { { KHSM_EBUSY, KHSM_EPIN_INCORRECT, KHSM_EOK }, 3, 0 };
	assert_int_equal(khsm_retry_run(&FAST, "testing", scripted, &s), KHSM_EPIN_INCORRECT);
	assert_int_equal(s.calls, 2);
	khsm_retry_set_notify(NULL, NULL);
}

static void test_zero_budget_and_env(void **state)
{
	(void)state;
	const khsm_retry_policy_t none = { .first_ms = 1, .max_delay_ms = 1, .budget_ms = 0 };
	script_t s = { { KHSM_EBUSY, KHSM_EOK }, 2, 0 };
	assert_int_equal(khsm_retry_run(&none, "testing", scripted, &s), KHSM_EBUSY);
	assert_int_equal(s.calls, 1);

	khsm_retry_policy_t p;
	setenv("KHSM_RETRY_MS", "250", 1);
	setenv("KHSM_RETRY_FIRST_MS", "5", 1);
	khsm_retry_policy_default(&p);
	assert_int_equal(p.budget_ms, 250);
	assert_int_equal(p.first_ms, 5);
	setenv("KHSM_RETRY_MS", "12x", 1);   /* not a number: the default stays */
	unsetenv("KHSM_RETRY_FIRST_MS");
	khsm_retry_policy_default(&p);
	assert_int_equal(p.budget_ms, 10000);
	assert_int_equal(p.first_ms, 50);
	unsetenv("KHSM_RETRY_MS");
}

/* -- a lock file of the test's own ---------------------------------------- */

static void card_file(const char *base, const char *card, char *out, size_t size)
{
	uint64_t h = 1469598103934665603ULL;   /* FNV-1a 64, as lib/retry.c names the file */
	for (const unsigned char *p = (const unsigned char *)card; *p; p++) h = (h ^ *p) * 1099511628211ULL;
	snprintf(out, size, "%s.card-%016" PRIx64, base, h);
}

/* A lock file of its own under a temporary directory (KHSM_LOCK_FILE), and
 * the names of cards A's and B's lock files next to it. */
typedef struct {
	char dir[64], path[256], file_a[300], file_b[300];
} lock_files_t;

static void lock_files_setup(lock_files_t *f)
{
	snprintf(f->dir, sizeof(f->dir), "/tmp/khsm-scope-test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/card.lock", f->dir);
	card_file(f->path, "card A", f->file_a, sizeof(f->file_a));
	card_file(f->path, "card B", f->file_b, sizeof(f->file_b));
	setenv("KHSM_LOCK_FILE", f->path, 1);
}

static void lock_files_remove(lock_files_t *f)
{
	unsetenv("KHSM_LOCK_FILE");
	unlink(f->file_a);
	unlink(f->file_b);
	unlink(f->path);
	rmdir(f->dir);
}

static int nested_inner(void *ctx)
{
	return scripted(ctx);
}

static int nested_outer(void *ctx)
{
	script_t *outer = ctx;
	outer->calls++;
	script_t inner = { { KHSM_EBUSY }, 1, 0 };
	int r = khsm_card_op("inner", nested_inner, &inner);
	assert_int_equal(inner.calls, 1);   /* a nested operation is tried once */
	return outer->calls < 3 ? r : KHSM_EOK;
}

static void test_card_op_locks_and_nests(void **state)
{
	(void)state;
	lock_files_t f;
	lock_files_setup(&f);
	setenv("KHSM_RETRY_FIRST_MS", "1", 1);
	khsm_retry_set_notify(NULL, NULL);
	script_t outer = { { 0 }, 1, 0 };
	assert_int_equal(khsm_card_op("outer", nested_outer, &outer), KHSM_EOK);
	assert_int_equal(outer.calls, 3);   /* the outermost operation retries */
	/* Recursive within the thread, released at the end. */
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	khsm_card_unlock();
	khsm_card_unlock();
	int other = open(f.path, O_RDONLY);
	assert_true(other >= 0);
	assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);   /* free again */
	close(other);
	unsetenv("KHSM_RETRY_FIRST_MS");
	lock_files_remove(&f);
}

/* -- the threads of a process take the lock in the order they asked ------- */

typedef struct {
	int order[3];
	int n;
	pthread_mutex_t mu;
} turns_t;

typedef struct {
	turns_t *t;
	int id;
	int r;   /* khsm_card_lock()'s, asserted by the test's own thread */
} turn_arg_t;

static void *take_turn(void *arg)
{
	turn_arg_t *a = arg;
	if ((a->r = khsm_card_lock()) != KHSM_EOK) return NULL;
	pthread_mutex_lock(&a->t->mu);
	a->t->order[a->t->n++] = a->id;
	pthread_mutex_unlock(&a->t->mu);
	khsm_card_unlock();
	return NULL;
}

/* Three threads ask while the lock is held, one after another (each
 * started when the one before it waits): they get it in that order, so
 * a thread that signs zone after zone cannot take it straight back. */
static void test_card_lock_in_turn(void **state)
{
	(void)state;
	lock_files_t f;
	lock_files_setup(&f);
	turns_t t = { .mu = PTHREAD_MUTEX_INITIALIZER };
	turn_arg_t args[3];
	pthread_t th[3];
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_true(khsm_card_lock_held());
	for (int i = 0; i < 3; i++) {
		args[i] = (turn_arg_t){ &t, i, -1 };
		assert_int_equal(pthread_create(&th[i], NULL, take_turn, &args[i]), 0);
		while (khsm_card_lock_waiting() < (unsigned)i + 1) sched_yield();
	}
	assert_int_equal(khsm_card_lock_waiting(), 3);
	assert_int_equal(t.n, 0);   /* none while it is held */
	khsm_card_unlock();
	assert_false(khsm_card_lock_held());
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(args[i].r, KHSM_EOK);
	}
	assert_int_equal(t.n, 3);
	for (int i = 0; i < 3; i++) assert_int_equal(t.order[i], i);
	assert_int_equal(khsm_card_lock_waiting(), 0);
	lock_files_remove(&f);
}

/* -- card scopes: one lock per card, the common lock shared ---------------- */

static bool can_lock(const char *path, int op)
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	bool ok = flock(fd, op | LOCK_NB) == 0;
	close(fd);
	return ok;
}

typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int r;
	bool locked, release;
} scope_sync_t;

static void *card_b_thread(void *arg)
{
	scope_sync_t *s = arg;
	int r = khsm_card_scope_begin("card B");
	if (r == KHSM_EOK) r = khsm_card_lock();
	pthread_mutex_lock(&s->mu);
	s->r = r;
	s->locked = true;
	pthread_cond_broadcast(&s->cv);
	while (!s->release) pthread_cond_wait(&s->cv, &s->mu);
	pthread_mutex_unlock(&s->mu);
	if (r == KHSM_EOK) khsm_card_unlock();
	khsm_card_scope_end();
	return NULL;
}

static void test_card_scopes(void **state)
{
	(void)state;
	lock_files_t f;
	lock_files_setup(&f);

	assert_int_equal(khsm_card_scope_begin("card A"), KHSM_EOK);
	assert_int_equal(khsm_card_scope_begin("card A"), KHSM_EINVAL);   /* one scope per thread */
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_int_equal(khsm_card_lock(), KHSM_EOK);   /* recursive */
	/* Card B's thread gets its lock while card A's is held. */
	scope_sync_t s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, -1, false, false };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, card_b_thread, &s), 0);
	pthread_mutex_lock(&s.mu);
	while (!s.locked) pthread_cond_wait(&s.cv, &s.mu);
	pthread_mutex_unlock(&s.mu);
	assert_int_equal(s.r, KHSM_EOK);
	assert_false(can_lock(f.file_a, LOCK_EX));   /* card A: one holder */
	assert_false(can_lock(f.file_b, LOCK_EX));   /* card B: one holder */
	assert_false(can_lock(f.path, LOCK_EX));     /* a knot-hsm naming no card waits */
	assert_true(can_lock(f.path, LOCK_SH));      /* a third card would not */
	pthread_mutex_lock(&s.mu);
	s.release = true;
	pthread_cond_broadcast(&s.cv);
	pthread_mutex_unlock(&s.mu);
	pthread_join(t, NULL);
	assert_true(can_lock(f.file_b, LOCK_EX));
	khsm_card_unlock();
	assert_false(can_lock(f.file_a, LOCK_EX));   /* still held once */
	khsm_card_unlock();
	assert_true(can_lock(f.file_a, LOCK_EX));
	assert_true(can_lock(f.path, LOCK_EX));
	khsm_card_scope_end();
	/* Without a scope, the machine-wide lock again. */
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_false(can_lock(f.path, LOCK_EX));
	khsm_card_unlock();
	lock_files_remove(&f);
}

/* A thread of card A works on card B through a scope of B bound to no
 * thread (the KSR signer's added cards): B's lock is held, A's is not,
 * and the thread's own scope is back afterwards. */
static void test_card_scope_shared(void **state)
{
	(void)state;
	lock_files_t f;
	lock_files_setup(&f);
	assert_int_equal(khsm_card_scope_begin("card A"), KHSM_EOK);
	khsm_card_scope_t *a = khsm_card_scope_current();
	khsm_card_scope_t *b = NULL;
	assert_int_equal(khsm_card_scope_new(NULL, &b), KHSM_EINVAL);
	assert_int_equal(khsm_card_scope_new("card B", &b), KHSM_EOK);
	assert_non_null(b);
	khsm_card_scope_share(b);
	assert_ptr_equal(khsm_card_scope_current(), b);
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_false(can_lock(f.file_b, LOCK_EX));   /* card B held */
	assert_true(can_lock(f.file_a, LOCK_EX));    /* card A free meanwhile */
	assert_true(can_lock(f.path, LOCK_SH));      /* the common lock shared */
	khsm_card_unlock();
	assert_true(can_lock(f.file_b, LOCK_EX));
	khsm_card_scope_share(a);
	assert_ptr_equal(khsm_card_scope_current(), a);
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_false(can_lock(f.file_a, LOCK_EX));
	assert_true(can_lock(f.file_b, LOCK_EX));
	khsm_card_unlock();
	khsm_card_scope_free(b);
	khsm_card_scope_free(NULL);
	khsm_card_scope_end();
	lock_files_remove(&f);
}

/* A card whose own lock file cannot be had (here: its name too long for the
 * file system) is kept apart by the machine-wide lock taken exclusively. */
static void test_card_scope_without_card_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/khsm-scope-test.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[512];
	int n = snprintf(path, sizeof(path), "%s/", dir);
	memset(path + n, 'x', 240);   /* + ".card-" and 16 hex digits: over NAME_MAX */
	path[n + 240] = '\0';
	setenv("KHSM_LOCK_FILE", path, 1);
	assert_int_equal(khsm_card_scope_begin("card A"), KHSM_EOK);
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_false(can_lock(path, LOCK_SH));   /* another card's thread or process waits */
	khsm_card_unlock();
	assert_true(can_lock(path, LOCK_EX));
	khsm_card_scope_end();
	unsetenv("KHSM_LOCK_FILE");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_transient_codes),
		cmocka_unit_test(test_retries_until_success),
		cmocka_unit_test(test_gives_up_after_budget),
		cmocka_unit_test(test_gives_up_absent),
		cmocka_unit_test(test_never_retries_pin_errors),
		cmocka_unit_test(test_zero_budget_and_env),
		cmocka_unit_test(test_card_op_locks_and_nests),
		cmocka_unit_test(test_card_lock_in_turn),
		cmocka_unit_test(test_card_scopes),
		cmocka_unit_test(test_card_scope_shared),
		cmocka_unit_test(test_card_scope_without_card_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
