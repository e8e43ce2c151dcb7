/* Tests of lib/serve.c: SoftHSM served over p11-kit's RPC to a child of this
 * process through p11-kit-client.so; a grandchild and this process itself
 * (not children) are refused; the socket and its directory go at stop; each
 * served call takes the card lock. */
#include "test.h"

#include <glob.h>
#include <pthread.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "knot.h"
#include "remote.h"
#include "retry.h"
#include "run.h"
#include "serve.h"

static char dir[] = "/tmp/khsm-test-serve.XXXXXX";
static char module[256];

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(dir)) return -1;
	char path[300], tokens[300];
	snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
	snprintf(tokens, sizeof(tokens), "%s/tokens", dir);   /* SoftHSM takes each subdirectory for a token */
	if (mkdir(tokens, 0700) != 0) return -1;
	FILE *f = fopen(path, "w");
	if (!f) return -1;
	fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
	fclose(f);
	setenv("SOFTHSM2_CONF", path, 1);
	setenv("TMPDIR", dir, 1);
	char lock[300];
	snprintf(lock, sizeof(lock), "%s/card.lock", dir);   /* this test's card lock alone */
	setenv("KHSM_LOCK_FILE", lock, 1);
	glob_t g;
	if (glob("/usr/lib/*/softhsm/libsofthsm2.so", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
		snprintf(module, sizeof(module), "%s", g.gl_pathv[0]);
	} else {
		snprintf(module, sizeof(module), "/usr/lib/softhsm/libsofthsm2.so");
	}
	globfree(&g);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* pkcs11-tool -L through p11-kit-client.so at the served address, run as a
 * child (exec) or as a grandchild (sh forks it). */
static int list_slots(const khsm_serve_t *s, bool grandchild, khsm_run_t *res)
{
	char env[400];
	snprintf(env, sizeof(env), "%s=%s", KHSM_REMOTE_ENV, khsm_serve_address(s));
	const char *add[] = { env, NULL };
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "%spkcs11-tool --module '%s' -L%s", grandchild ? "" : "exec ",
	         khsm_remote_client_module(), grandchild ? "; exit $?" : "");
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	return khsm_run_env(argv, NULL, add, res);
}

static void test_child_served(void **state)
{
	(void)state;
	khsm_serve_t *s = NULL;
	assert_int_equal(khsm_serve_start(module, &s), KHSM_EOK);
	const char *addr = khsm_serve_address(s);
	assert_non_null(strstr(addr, "unix:path="));
	assert_non_null(strstr(addr, "knot-hsm-serve."));
	khsm_run_t res = { 0 };
	assert_int_equal(list_slots(s, false, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	assert_non_null(strstr(res.out, "Slot 0"));   /* SoftHSM's slot, through the RPC */
	khsm_run_clear(&res);
	/* twice: a client's C_Finalize ends only its own instance */
	assert_int_equal(list_slots(s, false, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	khsm_run_clear(&res);

	char sock[300];
	snprintf(sock, sizeof(sock), "%s", addr + strlen("unix:path="));
	struct stat st;
	assert_int_equal(stat(sock, &st), 0);
	khsm_serve_stop(s);
	assert_int_not_equal(lstat(sock, &st), 0);
	*strrchr(sock, '/') = '\0';
	assert_int_not_equal(lstat(sock, &st), 0);   /* the directory too */
}

static void test_not_a_child_refused(void **state)
{
	(void)state;
	khsm_serve_t *s = NULL;
	assert_int_equal(khsm_serve_start(module, &s), KHSM_EOK);
	khsm_run_t res = { 0 };
	assert_int_equal(list_slots(s, true, &res), KHSM_EOK);
	assert_int_not_equal(res.status, 0);   /* a grandchild: refused */
	khsm_run_clear(&res);

	/* this process itself: connected, then closed without an answer */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", khsm_serve_address(s) + strlen("unix:path="));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	unsigned char version = 0;
	(void)send(fd, &version, 1, MSG_NOSIGNAL);   /* may find it closed already */
	assert_true(read(fd, &version, 1) <= 0);
	close(fd);

	/* and the child still is served after them */
	assert_int_equal(list_slots(s, false, &res), KHSM_EOK);
	assert_int_equal(res.status, 0);
	khsm_run_clear(&res);
	khsm_serve_stop(s);
	khsm_serve_stop(NULL);
}

struct client {
	const khsm_serve_t *s;
	khsm_run_t res;
	int r;
	bool done;
};

static void *client_thread(void *arg)
{
	struct client *c = arg;
	c->r = list_slots(c->s, false, &c->res);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/* A client's call waits for the card lock this process's other thread
 * holds, and goes on when it is given back: each call is under the lock. */
static void test_calls_take_the_card_lock(void **state)
{
	(void)state;
	khsm_serve_t *s = NULL;
	assert_int_equal(khsm_serve_start(module, &s), KHSM_EOK);
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	assert_int_equal(khsm_card_lock_waiting(), 0);
	struct client c = { .s = s };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, client_thread, &c), 0);
	/* the client either ends (its calls did not wait: wrong) or waits */
	while (!__atomic_load_n(&c.done, __ATOMIC_ACQUIRE) && khsm_card_lock_waiting() == 0) {
		sched_yield();
	}
	assert_false(__atomic_load_n(&c.done, __ATOMIC_ACQUIRE));
	assert_int_equal(khsm_card_lock_waiting(), 1);   /* the serving thread, one call */
	khsm_card_unlock();
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(c.r, KHSM_EOK);
	assert_int_equal(c.res.status, 0);
	assert_non_null(strstr(c.res.out, "Slot 0"));
	khsm_run_clear(&c.res);
	assert_int_equal(khsm_card_lock_waiting(), 0);

	/* served from a thread holding the lock, its clients would wait for it forever */
	const char *args[] = { "--version", NULL };
	assert_int_equal(khsm_card_lock(), KHSM_EOK);
	khsm_serve_t *held = NULL;
	assert_int_equal(khsm_serve_start(module, &held), KHSM_EINVAL);
	assert_null(held);
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_keymgr_served(NULL, args, s, &res), KHSM_EINVAL);
	khsm_card_unlock();
	khsm_err_clear();
	khsm_serve_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_child_served),
		cmocka_unit_test(test_not_a_child_refused),
		cmocka_unit_test(test_calls_take_the_card_lock),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
