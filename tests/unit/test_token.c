/* Unit tests of lib/token.c: the capability helpers without a module, and the
 * token list read from SoftHSM with its token store in a temp dir (labels,
 * flags, capabilities, URIs, find by label and serial, module errors). */
#include "test.h"

#include <glob.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/token.h"

static char dir[64];

/* GnuTLS signs with EdDSA token keys from 3.8 on (lib/token.c). */
static bool gnutls_check_version_ok(void)
{
	return gnutls_check_version("3.8.0") != NULL;
}
static char module[256];

static int setup(void **state)
{
	(void)state;
	glob_t g;
	if (glob("/usr/lib/*/softhsm/libsofthsm2.so", 0, NULL, &g) != 0 &&
	    glob("/usr/lib/softhsm/libsofthsm2.so", 0, NULL, &g) != 0) {
		fprintf(stderr, "libsofthsm2.so not found (install softhsm2)\n");
		return -1;
	}
	snprintf(module, sizeof(module), "%s", g.gl_pathv[0]);
	globfree(&g);
	snprintf(dir, sizeof(dir), "/tmp/khsm-token-test.XXXXXX");
	if (!mkdtemp(dir)) {
		return -1;
	}
	char path[128], cmd[512];
	snprintf(path, sizeof(path), "%s/tokens", dir);
	if (mkdir(path, 0700) != 0) {
		return -1;
	}
	snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
	FILE *f = fopen(path, "w");
	if (!f) {
		return -1;
	}
	fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n", dir);
	fclose(f);
	setenv("SOFTHSM2_CONF", path, 1);
	/* Two tokens with the same label and one other. */
	static const char *const labels[] = { "card", "card", "other token" };
	for (size_t i = 0; i < 3; i++) {
		snprintf(cmd, sizeof(cmd), "softhsm2-util --init-token --free --label '%s' "
		         "--pin 648219 --so-pin 3537363231383830 >/dev/null", labels[i]);
		if (system(cmd) != 0) {
			return -1;
		}
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

static void test_cap_for_algorithm(void **state)
{
	(void)state;
	assert_int_equal(khsm_cap_for_algorithm(8), KHSM_CAP_RSA);
	assert_int_equal(khsm_cap_for_algorithm(10), KHSM_CAP_RSA);
	assert_int_equal(khsm_cap_for_algorithm(13), KHSM_CAP_ECDSA_P256);
	assert_int_equal(khsm_cap_for_algorithm(14), KHSM_CAP_ECDSA_P384);
	assert_int_equal(khsm_cap_for_algorithm(15), KHSM_CAP_ED25519);
	assert_int_equal(khsm_cap_for_algorithm(16), KHSM_CAP_ED448);
	/* RSA/MD5, DSA, RSA/SHA-1 and unknown numbers: no token capability. */
	assert_int_equal(khsm_cap_for_algorithm(1), 0);
	assert_int_equal(khsm_cap_for_algorithm(3), 0);
	assert_int_equal(khsm_cap_for_algorithm(5), 0);
	assert_int_equal(khsm_cap_for_algorithm(0), 0);
	assert_int_equal(khsm_cap_for_algorithm(253), 0);
}

static void test_caps_usable(void **state)
{
	(void)state;
	unsigned ec = KHSM_CAP_ECDSA_P256 | KHSM_CAP_ECDSA_P384 | KHSM_CAP_RSA;
	assert_int_equal(khsm_caps_usable(ec), ec);
	unsigned ed = KHSM_CAP_ED25519 | KHSM_CAP_ED448;
	unsigned want = gnutls_check_version_ok() ? ec | ed : ec;
	assert_int_equal(khsm_caps_usable(ec | ed), want);
}

static void test_caps_text(void **state)
{
	(void)state;
	khsm_token_t t = { .caps = 0 };
	char *s = khsm_token_caps_text(&t);
	assert_string_equal(s, "none");
	free(s);
	t.caps = KHSM_CAP_ECDSA_P256 | KHSM_CAP_ECDSA_P384 | KHSM_CAP_RSA;
	t.rsa_min_bits = 1024;
	t.rsa_max_bits = 4096;
	s = khsm_token_caps_text(&t);
	assert_string_equal(s, "ECDSA P-256, ECDSA P-384, RSA 1024-4096");
	free(s);
	t.caps = KHSM_CAP_ED25519;
	s = khsm_token_caps_text(&t);
	if (gnutls_check_version_ok()) {
		assert_string_equal(s, "Ed25519");
	} else {
		assert_true(strncmp(s, "Ed25519 (EdDSA not usable through GnuTLS ", 41) == 0);
		assert_non_null(strstr(s, "needs 3.8)"));
	}
	free(s);
}

static void test_load_arguments(void **state)
{
	(void)state;
	khsm_tokens_t *list = NULL;
	assert_int_equal(khsm_tokens_load(NULL, false, &list), KHSM_EINVAL);
	assert_null(list);
	assert_int_equal(khsm_tokens_load(module, false, NULL), KHSM_EINVAL);
	assert_int_equal(khsm_tokens_count(NULL), 0);
	assert_null(khsm_tokens_at(NULL, 0));
	assert_null(khsm_tokens_failures(NULL));
	khsm_tokens_free(NULL);
}

static void test_load_bad_module(void **state)
{
	(void)state;
	khsm_tokens_t *list = NULL;
	char path[128];
	khsm_err_clear();
	snprintf(path, sizeof(path), "%s/no-such-module.so", dir);
	assert_int_equal(khsm_tokens_load(path, false, &list), KHSM_EMODULE);
	assert_null(list);
	assert_non_null(khsm_err_last_detail());
	assert_non_null(strstr(khsm_err_last_detail(), path));
	assert_non_null(strstr(khsm_err_last_detail(), "give the full path of the PKCS #11 module"));
	/* A file that exists but is no shared object. */
	snprintf(path, sizeof(path), "%s/softhsm2.conf", dir);
	khsm_err_clear();
	assert_int_equal(khsm_tokens_load(path, false, &list), KHSM_EMODULE);
	assert_null(list);
	assert_non_null(strstr(khsm_err_last_detail(), "cannot be loaded"));
}

static void test_list(void **state)
{
	(void)state;
	khsm_tokens_t *list = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_tokens_load(module, false, &list), KHSM_EOK);
	/* Three initialised tokens and SoftHSM's free slot. */
	assert_int_equal(khsm_tokens_count(list), 4);
	assert_null(khsm_tokens_at(list, 4));
	char real[PATH_MAX];
	assert_non_null(realpath(module, real));
	size_t cards = 0, others = 0, free_slots = 0;
	for (size_t i = 0; i < khsm_tokens_count(list); i++) {
		const khsm_token_t *t = khsm_tokens_at(list, i);
		assert_string_equal(t->module_path, real);
		if (!(t->flags & KHSM_TOKEN_INITIALIZED)) {
			free_slots++;
			continue;
		}
		if (strcmp(t->label, "card") == 0) {
			cards++;
		} else {
			assert_string_equal(t->label, "other token");
			others++;
			assert_string_equal(t->uri_short, "pkcs11:token=other%20token");
		}
		assert_string_equal(t->manufacturer, "SoftHSM project");
		assert_string_equal(t->model, "SoftHSM v2");
		assert_true(strlen(t->serial) > 0);
		assert_true(t->flags & KHSM_TOKEN_LOGIN_REQUIRED);
		assert_true(t->flags & KHSM_TOKEN_USER_PIN_INIT);
		assert_true(t->flags & KHSM_TOKEN_RNG);
		assert_false(t->flags & KHSM_TOKEN_PIN_LOCKED);
		assert_false(t->flags & KHSM_TOKEN_WRITE_PROTECTED);
		/* SoftHSM generates and signs ECDSA on both curves and RSA. */
		assert_true(t->caps & KHSM_CAP_ECDSA_P256);
		assert_true(t->caps & KHSM_CAP_ECDSA_P384);
		assert_true(t->caps & KHSM_CAP_RSA);
		assert_true(t->rsa_min_bits > 0 && t->rsa_min_bits <= 1024);
		assert_true(t->rsa_max_bits >= 4096);
		/* The URIs: the label, and the serial in the serial-qualified one. */
		char want[128];
		snprintf(want, sizeof(want), "serial=%s", t->serial);
		assert_non_null(strstr(t->uri_serial, want));
		assert_non_null(strstr(t->uri, want));
		assert_non_null(strstr(t->uri, "model=SoftHSM%20v2"));
		assert_int_equal(strncmp(t->uri_short, "pkcs11:token=", 13), 0);
		/* Fresh flags read the same. */
		unsigned flags = 0;
		assert_int_equal(khsm_token_refresh_flags(list, t, &flags), KHSM_EOK);
		assert_int_equal(flags, t->flags);
	}
	assert_int_equal(cards, 2);
	assert_int_equal(others, 1);
	assert_int_equal(free_slots, 1);
	assert_null(khsm_tokens_failures(list));
	khsm_tokens_free(list);
}

static void test_find(void **state)
{
	(void)state;
	khsm_tokens_t *list = NULL;
	assert_int_equal(khsm_tokens_load(module, false, &list), KHSM_EOK);
	const khsm_token_t *t = NULL;

	assert_int_equal(khsm_tokens_find(list, "other token", NULL, &t), KHSM_EOK);
	assert_string_equal(t->label, "other token");

	/* Labels are compared exactly. */
	t = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_tokens_find(list, "other", NULL, &t), KHSM_ENOENT);
	assert_null(t);
	assert_non_null(strstr(khsm_err_last_detail(), "no token labelled 'other'; tokens present: "));
	assert_non_null(strstr(khsm_err_last_detail(), "'other token' (serial "));
	assert_int_equal(khsm_tokens_find(list, "CARD", NULL, &t), KHSM_ENOENT);

	/* Two tokens labelled card: ambiguous, each named with its serial URI. */
	khsm_err_clear();
	assert_int_equal(khsm_tokens_find(list, "card", NULL, &t), KHSM_EAMBIGUOUS);
	assert_null(t);
	const char *d = khsm_err_last_detail();
	assert_non_null(strstr(d, "2 tokens are labelled 'card'"));
	assert_non_null(strstr(d, "pick one by its serial-qualified URI"));
	const khsm_token_t *a = NULL, *b = NULL;
	for (size_t i = 0; i < khsm_tokens_count(list); i++) {
		const khsm_token_t *x = khsm_tokens_at(list, i);
		if (strcmp(x->label, "card") == 0) {
			*(a ? &b : &a) = x;
			assert_non_null(strstr(d, x->uri_serial));
		}
	}
	assert_non_null(a);
	assert_non_null(b);
	assert_string_not_equal(a->serial, b->serial);

	/* The serial picks one. */
	assert_int_equal(khsm_tokens_find(list, "card", b->serial, &t), KHSM_EOK);
	assert_ptr_equal(t, b);
	assert_int_equal(khsm_tokens_find(list, "card", a->serial, &t), KHSM_EOK);
	assert_ptr_equal(t, a);
	khsm_err_clear();
	assert_int_equal(khsm_tokens_find(list, "other token", a->serial, &t), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), " with serial "));

	assert_int_equal(khsm_tokens_find(list, NULL, NULL, &t), KHSM_EINVAL);
	assert_int_equal(khsm_tokens_find(list, "card", NULL, NULL), KHSM_EINVAL);
	khsm_tokens_free(list);
}

static void test_refresh_foreign_token(void **state)
{
	(void)state;
	khsm_tokens_t *list = NULL;
	assert_int_equal(khsm_tokens_load(module, false, &list), KHSM_EOK);
	khsm_token_t copy = *khsm_tokens_at(list, 0);
	unsigned flags = 0;
	/* A token that is not one of the list's own. */
	assert_int_equal(khsm_token_refresh_flags(list, &copy, &flags), KHSM_EINVAL);
	assert_int_equal(khsm_token_refresh_flags(list, khsm_tokens_at(list, 0), NULL), KHSM_EINVAL);
	khsm_tokens_free(list);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cap_for_algorithm),
		cmocka_unit_test(test_caps_usable),
		cmocka_unit_test(test_caps_text),
		cmocka_unit_test(test_load_arguments),
		cmocka_unit_test(test_load_bad_module),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_find),
		cmocka_unit_test(test_refresh_foreign_token),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
