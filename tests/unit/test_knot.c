/* Tests of lib/knot.c: keymgr output captured from keymgr 3.2.6, and real
 * keymgr/knotc runs on a temporary PEM-keystore configuration. */
#include "test.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "knot.h"
#include "knotconf.h"
#include "run.h"

/* keymgr 3.2.6 `ZONE list` (example.com.: ZSK, KSK, RSA ZSK with retire/remove,
 * ZSK, KSK with every timer; example.org.: public-only key from import-pub;
 * example.net.: ED448 ZSK, P-384 KSK, Ed25519 CSK). */
static const char LIST_PLAIN[] =
	"9ef1a3d4af67eea973fae3282f984108d8efb766  3379 ZSK ECDSAP256SHA256 publish=1795318976 active=1795318976\n"
	"e1903ea2ace10caeed97e04d9cd8b7dbe2f918e3 35918 KSK ECDSAP256SHA256 publish=1795318976 ready=1795318976 active=1795318976\n"
	"e46b5dd7b251ff89c1f205c927164f5c20dc63b4 52498 ZSK RSASHA256/2048 publish=1795318976 active=1795318976 retire=1795405376 post-active=1795405376 remove=1795491776\n"
	"9036f2d32d871b043edeb0f812b0aa4b52514aa8 39179 ZSK ECDSAP256SHA256 publish=1795319003 active=1795319003\n"
	"d27d623dcaa081e9258785366b011cf506bdcff6  7423 KSK ECDSAP256SHA256 pre-active=1795322589 publish=1795326189 ready=1795329789 active=1795333389 retire-active=1795750989 retire=1795837389 revoke=1795923789 remove=1796010189\n"
	"e1903ea2ace10caeed97e04d9cd8b7dbe2f918e3 35918 KSK ECDSAP256SHA256 public-only publish=1795318986\n"
	"01ae6a0e0918792ac3de36a63f7954cc58346695   211 ZSK ED448 publish=1795319000 active=1795319000\n"
	"0bd83ea28ce3d505c482bea32627862f6342aac5 45908 KSK ECDSAP384SHA384 publish=1795319000 ready=1795319000 active=1795319000\n"
	"ea3d2d7857d67824ae0b4f4870e29e1a38407de2 17826 CSK ED25519 publish=1795319000 ready=1795319000 active=1795319000\n";

/* The same keys with `list -e` (extended). */
static const char LIST_EXTENDED[] =
	"9036f2d32d871b043edeb0f812b0aa4b52514aa8 ksk=no  zsk=yes tag=39179 algorithm=13 size=256  public-only=no  pre-active=0 publish=1795319003 ready=0 active=1795319003 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n"
	"9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=no  zsk=yes tag=03379 algorithm=13 size=256  public-only=no  pre-active=0 publish=1795318976 ready=0 active=1795318976 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n"
	"d27d623dcaa081e9258785366b011cf506bdcff6 ksk=yes zsk=no  tag=07423 algorithm=13 size=256  public-only=no  pre-active=1795322589 publish=1795326189 ready=1795329789 active=1795333389 retire-active=1795750989 retire=1795837389 post-active=0 revoke=1795923789 remove=1796010189\n"
	"e1903ea2ace10caeed97e04d9cd8b7dbe2f918e3 ksk=yes zsk=no  tag=35918 algorithm=13 size=256  public-only=no  pre-active=0 publish=1795318976 ready=1795318976 active=1795318976 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n"
	"e46b5dd7b251ff89c1f205c927164f5c20dc63b4 ksk=no  zsk=yes tag=52498 algorithm=8  size=2048 public-only=no  pre-active=0 publish=1795318976 ready=0 active=1795318976 retire-active=0 retire=1795405376 post-active=1795405376 revoke=0 remove=1795491776\n"
	"e1903ea2ace10caeed97e04d9cd8b7dbe2f918e3 ksk=yes zsk=no  tag=35918 algorithm=13 size=256  public-only=yes pre-active=0 publish=1795318986 ready=0 active=0 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n"
	"01ae6a0e0918792ac3de36a63f7954cc58346695 ksk=no  zsk=yes tag=00211 algorithm=16 size=456  public-only=no  pre-active=0 publish=1795319000 ready=0 active=1795319000 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n"
	"0bd83ea28ce3d505c482bea32627862f6342aac5 ksk=yes zsk=no  tag=45908 algorithm=14 size=384  public-only=no  pre-active=0 publish=1795319000 ready=1795319000 active=1795319000 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n"
	"ea3d2d7857d67824ae0b4f4870e29e1a38407de2 ksk=yes zsk=yes tag=17826 algorithm=15 size=256  public-only=no  pre-active=0 publish=1795319000 ready=1795319000 active=1795319000 retire-active=0 retire=0 post-active=0 revoke=0 remove=0\n";

/* keymgr 3.2.6 `example.com. ds` and `example.org. ds`. */
static const char DS_OUT[] =
	"example.com. DS 7423 13 2 0d81a27475e3e3e34407b5e30ae2ec0eded6dbaa379ecf5f7688d26d0a941305\n"
	"example.com. DS 7423 13 4 bf807be696140010625d6f98bb05a1bdca23c544d02bceb47fc3fb6d2f4d5ce70d624eb21a02104682f755553a62bfb2\n"
	"example.com. DS 35918 13 2 f5d7c773ff74e99a763c0bfb0a517745d96dbcc6e9f5e21b62a8d42c34c3a703\n"
	"example.com. DS 35918 13 4 4567209954eb8bddaad0fea9fd6a1e4c2acb7466bd8ee08e4787c5e680c581598d836cfdad8028ec596f4da49b598c59\n"
	"example.org. DS 35918 13 2 4ca8536418c9ce6bfee179349b078b294f3b610b3546d4feda5568ea0bdc9133\n";

static const khsm_kasp_key_t *find(const khsm_kasp_key_t *keys, size_t n, const char *id, bool pub)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(keys[i].id, id) == 0 && keys[i].public_only == pub) {
			return &keys[i];
		}
	}
	return NULL;
}

/* What both formats must agree on. */
static void check_common(const khsm_kasp_key_t *keys, size_t n)
{
	assert_int_equal(n, 9);

	const khsm_kasp_key_t *zsk = find(keys, n, "9ef1a3d4af67eea973fae3282f984108d8efb766", false);
	assert_non_null(zsk);
	assert_int_equal(zsk->tag, 3379);
	assert_false(zsk->ksk);
	assert_true(zsk->zsk);
	assert_int_equal(zsk->algorithm, 13);
	assert_int_equal(zsk->publish, 1795318976);
	assert_int_equal(zsk->active, 1795318976);
	assert_int_equal(zsk->ready, 0);
	assert_int_equal(zsk->retire, 0);

	const khsm_kasp_key_t *ksk = find(keys, n, "e1903ea2ace10caeed97e04d9cd8b7dbe2f918e3", false);
	assert_non_null(ksk);
	assert_int_equal(ksk->tag, 35918);
	assert_true(ksk->ksk);
	assert_false(ksk->zsk);
	assert_int_equal(ksk->ready, 1795318976);

	const khsm_kasp_key_t *rsa = find(keys, n, "e46b5dd7b251ff89c1f205c927164f5c20dc63b4", false);
	assert_non_null(rsa);
	assert_int_equal(rsa->algorithm, 8);
	assert_int_equal(rsa->size, 2048);
	assert_int_equal(rsa->retire, 1795405376);
	assert_int_equal(rsa->post_active, 1795405376);
	assert_int_equal(rsa->remove, 1795491776);

	const khsm_kasp_key_t *all = find(keys, n, "d27d623dcaa081e9258785366b011cf506bdcff6", false);
	assert_non_null(all);
	assert_int_equal(all->tag, 7423);
	assert_int_equal(all->pre_active, 1795322589);
	assert_int_equal(all->publish, 1795326189);
	assert_int_equal(all->ready, 1795329789);
	assert_int_equal(all->active, 1795333389);
	assert_int_equal(all->retire_active, 1795750989);
	assert_int_equal(all->retire, 1795837389);
	assert_int_equal(all->post_active, 0);
	assert_int_equal(all->revoke, 1795923789);
	assert_int_equal(all->remove, 1796010189);
	assert_int_equal(all->created, 0);

	const khsm_kasp_key_t *pub = find(keys, n, "e1903ea2ace10caeed97e04d9cd8b7dbe2f918e3", true);
	assert_non_null(pub);
	assert_true(pub->ksk);
	assert_int_equal(pub->publish, 1795318986);
	assert_int_equal(pub->active, 0);

	const khsm_kasp_key_t *ed448 = find(keys, n, "01ae6a0e0918792ac3de36a63f7954cc58346695", false);
	assert_non_null(ed448);
	assert_int_equal(ed448->tag, 211);
	assert_int_equal(ed448->algorithm, 16);
	assert_int_equal(find(keys, n, "0bd83ea28ce3d505c482bea32627862f6342aac5", false)->algorithm, 14);

	const khsm_kasp_key_t *csk = find(keys, n, "ea3d2d7857d67824ae0b4f4870e29e1a38407de2", false);
	assert_non_null(csk);
	assert_true(csk->ksk);
	assert_true(csk->zsk);
	assert_int_equal(csk->algorithm, 15);
}

static void test_list_plain(void **state)
{
	(void)state;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_list_parse(LIST_PLAIN, &keys, &n), KHSM_EOK);
	check_common(keys, n);
	/* the plain format prints no size for ECDSA */
	assert_int_equal(find(keys, n, "9ef1a3d4af67eea973fae3282f984108d8efb766", false)->size, 0);
	assert_string_equal(keys[0].id, "9ef1a3d4af67eea973fae3282f984108d8efb766");
	free(keys);
}

static void test_list_extended(void **state)
{
	(void)state;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_list_parse(LIST_EXTENDED, &keys, &n), KHSM_EOK);
	check_common(keys, n);
	assert_int_equal(find(keys, n, "9ef1a3d4af67eea973fae3282f984108d8efb766", false)->size, 256);
	assert_int_equal(find(keys, n, "01ae6a0e0918792ac3de36a63f7954cc58346695", false)->size, 456);
	free(keys);
}

static void test_list_empty(void **state)
{
	(void)state;
	khsm_kasp_key_t *keys = (void *)1;
	size_t n = 99;
	assert_int_equal(khsm_keymgr_list_parse("", &keys, &n), KHSM_EOK);
	assert_int_equal(n, 0);
	assert_null(keys);
}

static void expect_bad_list(const char *text, const char *line_no)
{
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	khsm_err_clear();
	int r = khsm_keymgr_list_parse(text, &keys, &n);
	if (r != KHSM_EPARSE) {
		fail_msg("accepted: %s", text);
	}
	assert_null(keys);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	char want[32];
	snprintf(want, sizeof(want), "line %s:", line_no);
	if (!strstr(d, want)) {
		fail_msg("detail '%s' does not name %s", d, want);
	}
}

static void test_list_malformed(void **state)
{
	(void)state;
	const char *good = "9ef1a3d4af67eea973fae3282f984108d8efb766  3379 ZSK ECDSAP256SHA256 publish=1\n";
	char text[512];

	snprintf(text, sizeof(text), "%s%s", good, "9ef1a3d4af67eea973fae3282f98410 3379 ZSK ECDSAP256SHA256\n");
	expect_bad_list(text, "2");                                  /* odd number of digits */
	expect_bad_list("9EF1A3D4AF67EEA973FAE3282F984108D8EFB766 3379 ZSK ECDSAP256SHA256\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379x ZSK ECDSAP256SHA256\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 70000 ZSK ECDSAP256SHA256\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 XSK ECDSAP256SHA256\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK NOSUCHALG\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK RSASHA256/20x8\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK ECDSAP256SHA256 publish=12a\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK ECDSAP256SHA256 publish=-5\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK ECDSAP256SHA256 launch=5\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK ECDSAP256SHA256 publish=1 publish=2\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 3379 ZSK\n", "1");
	snprintf(text, sizeof(text), "%s\n%s%s", good, good, "warning: something\n");
	expect_bad_list(text, "4");                                  /* blank line counted */
	/* extended format */
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=on zsk=yes tag=1 algorithm=13\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=no zsk=yes tag=1\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=no zsk=yes tag=1 algorithm=256\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=no zsk=yes tag=1 tag=2 algorithm=13\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=no zsk=yes tag=1 algorithm=13 garbage\n", "1");
	expect_bad_list("9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=no zsk=yes tag=1 algorithm=13 active=\n", "1");
}

/* A newer keymgr may add name=value fields to the extended format. */
static void test_list_extended_unknown_field(void **state)
{
	(void)state;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_list_parse(
		"9ef1a3d4af67eea973fae3282f984108d8efb766 ksk=yes zsk=no tag=1 algorithm=13 "
		"for-later=no missing=no publish=7\n", &keys, &n), KHSM_EOK);
	assert_int_equal(n, 1);
	assert_true(keys[0].ksk);
	assert_int_equal(keys[0].publish, 7);
	free(keys);
}

/* Knot 3.5's extended list names the keystore of each key. */
static void test_list_extended_keystore(void **state)
{
	(void)state;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_list_parse(
		"2ebc4e6f3a8d1c5b7e9f0a1b2c3d4e5f6a7b64ec ksk=yes zsk=no  tag=54364 algorithm=13 size=256  "
		"public-only=no  for-later=no  missing=no  keystore=PKCS11/card created=1 publish=2\n"
		"6f03aa11bb22cc33dd44ee55ff6677889900aabb ksk=no  zsk=yes tag=05605 algorithm=13 size=256  "
		"public-only=no  for-later=no  missing=no  keystore=PEM/soft created=1 publish=2\n",
		&keys, &n), KHSM_EOK);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0].keystore, "PKCS11/card");
	assert_string_equal(keys[1].keystore, "PEM/soft");
	assert_int_equal(keys[1].tag, 5605);
	free(keys);
	assert_int_equal(khsm_keymgr_list_parse(
		"6f03aa11bb22cc33dd44ee55ff6677889900aabb ksk=no zsk=yes tag=1 algorithm=13 keystore=soft\n",
		&keys, &n), KHSM_EPARSE);
}

/* Keys adopted with import-pkcs11 keep the token's CKA_ID, e.g. the "17" of a
 * pkcs11-tool --id 17 key; keymgr 3.2.6 lists them as they are. */
static void test_list_token_id(void **state)
{
	(void)state;
	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_list_parse(
		"0102 16873 KSK ECDSAP256SHA256 publish=1795319544 active=1795319544\n", &keys, &n), KHSM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(keys[0].id, "0102");
	assert_int_equal(keys[0].tag, 16873);
	assert_true(keys[0].ksk);
	free(keys);
}

static void test_ds_parse(void **state)
{
	(void)state;
	khsm_ds_t *ds = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_ds_parse(DS_OUT, &ds, &n), KHSM_EOK);
	assert_int_equal(n, 5);
	assert_string_equal(ds[0].owner, "example.com.");
	assert_int_equal(ds[0].tag, 7423);
	assert_int_equal(ds[0].algorithm, 13);
	assert_int_equal(ds[0].digest_type, 2);
	assert_string_equal(ds[0].digest, "0d81a27475e3e3e34407b5e30ae2ec0eded6dbaa379ecf5f7688d26d0a941305");
	assert_int_equal(ds[3].digest_type, 4);
	assert_int_equal(strlen(ds[3].digest), 96);
	assert_string_equal(ds[4].owner, "example.org.");
	assert_int_equal(ds[4].tag, 35918);
	khsm_ds_free(ds, n);

	static const char *const BAD[] = {
		"example.com DS 7423 13 2 0d81\n",              /* owner without dot */
		"example.com. DNSKEY 7423 13 2 0d81\n",
		"example.com. DS 74x3 13 2 0d81\n",
		"example.com. DS 7423 300 2 0d81\n",
		"example.com. DS 7423 13 2 0d8\n",              /* odd hex */
		"example.com. DS 7423 13 2 0d8g\n",
		"example.com. DS 7423 13 2 0d81 extra\n",
		"example.com. DS 7423 13 2\n",
	};
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		ds = NULL;
		khsm_err_clear();
		if (khsm_keymgr_ds_parse(BAD[i], &ds, &n) != KHSM_EPARSE) {
			fail_msg("accepted: %s", BAD[i]);
		}
		assert_null(ds);
		assert_non_null(strstr(khsm_err_last_detail(), "line 1:"));
	}
}

/* -- with the real keymgr and knotc -- */

static char dir[64];
static char conf_path[128];

static int setup(void **state)
{
	(void)state;
	unsetenv("KHSM_KEYMGR");
	unsetenv("KHSM_KNOTC");
	strcpy(dir, "/tmp/khsm-test-knot.XXXXXX");
	if (!mkdtemp(dir)) {
		return -1;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/knot.conf", dir);
	FILE *f = fopen(conf_path, "w");
	if (!f) {
		return -1;
	}
	fprintf(f, "server:\n    rundir: %s/run\n"
	           "database:\n    storage: %s/db\n"
	           "keystore:\n  - id: pem\n    backend: pem\n    config: %s/keys\n"
	           "policy:\n  - id: p\n    keystore: pem\n    manual: on\n    algorithm: ecdsap256sha256\n"
	           "zone:\n  - domain: example.com.\n    dnssec-signing: on\n    dnssec-policy: p\n",
	           dir, dir, dir);
	fclose(f);
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/db", dir);
	mkdir(sub, 0700);
	snprintf(sub, sizeof(sub), "%s/run", dir);
	mkdir(sub, 0700);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	const char *argv[] = { "/bin/rm", "-rf", dir, NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	khsm_run_clear(&res);
	return r;
}

/* keymgr exits 0 after "error: invalid command": still a failure. */
static void test_keymgr_error_exit_zero(void **state)
{
	(void)state;
	const char *argv[] = { khsm_tool_path("keymgr"), "-c", conf_path, "example.com.", "frobnicate", NULL };
	khsm_run_t raw = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &raw), KHSM_EOK);
	assert_int_equal(raw.status, 0);       /* the pitfall itself, as of 3.2.6 */
	assert_non_null(strstr(raw.err, "error: invalid command 'frobnicate'"));
	khsm_run_clear(&raw);

	const char *args[] = { "example.com.", "frobnicate", NULL };
	khsm_run_t res = { 0 };
	khsm_err_clear();
	assert_int_equal(khsm_keymgr(conf_path, args, &res), KHSM_ETOOL);
	assert_null(res.out);
	assert_non_null(strstr(khsm_err_last_detail(), "invalid command 'frobnicate'"));

	/* non-zero exit is a failure too */
	const char *ds_args[] = { "example.com.", "ds", "9999", NULL };
	khsm_err_clear();
	assert_int_equal(khsm_keymgr(conf_path, ds_args, &res), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "key not found"));
}

/* keymgr list that finds the token "not available" once (a token another
 * process rewrites) is asked again; one that always does fails, after three
 * runs, with keymgr's words. */
static void test_keymgr_list_token_retry(void **state)
{
	(void)state;
	char dir[] = "/tmp/khsm-list-retry.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char script[128], count[128];
	snprintf(script, sizeof(script), "%s/fake-keymgr", dir);
	snprintf(count, sizeof(count), "%s/runs", dir);
	for (int always = 0; always < 2; always++) {
		FILE *f = fopen(script, "w");
		assert_non_null(f);
		fprintf(f, "#!/bin/sh\necho run >> '%s'\n"
		           "if [ %d = 1 ] || [ $(wc -l < '%s') -eq 1 ]; then\n"
		           "  echo 'error: failed to initialize KASP (PKCS #11 token not available)' >&2; exit 1\n"
		           "fi\nexit 0\n", count, always, count);
		fclose(f);
		assert_int_equal(chmod(script, 0755), 0);
		unlink(count);
		setenv("KHSM_KEYMGR", script, 1);
		khsm_kasp_key_t *keys = NULL;
		size_t n = 99;
		khsm_err_clear();
		int r = khsm_keymgr_list(conf_path, "example.com.", &keys, &n);
		unsetenv("KHSM_KEYMGR");
		f = fopen(count, "r");
		assert_non_null(f);
		int runs = 0, c;
		while ((c = fgetc(f)) != EOF) runs += c == '\n';
		fclose(f);
		if (!always) {
			assert_int_equal(r, KHSM_EOK);
			assert_int_equal(n, 0);
			assert_int_equal(runs, 2);
		} else {
			assert_int_equal(r, KHSM_ETOOL);
			assert_non_null(strstr(khsm_err_last_detail(), "token not available"));
			assert_int_equal(runs, 3);
		}
		free(keys);
	}
	unlink(count);
	unlink(script);
	rmdir(dir);
}

static void test_keymgr_generate_list_ds(void **state)
{
	(void)state;
	const char *gen[] = { "example.com.", "generate", "ksk=yes", "zsk=no", "algorithm=13", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_keymgr(conf_path, gen, &res), KHSM_EOK);
	char id[41] = { 0 };
	assert_true(res.out_len >= 41);
	memcpy(id, res.out, 40);
	khsm_run_clear(&res);

	/* ksk=on is read as false by keymgr: a ZSK appears. knot-hsm passes yes/no. */
	const char *gen_on[] = { "example.com.", "generate", "ksk=on", "algorithm=13", NULL };
	assert_int_equal(khsm_keymgr(conf_path, gen_on, &res), KHSM_EOK);
	char id_on[41] = { 0 };
	memcpy(id_on, res.out, 40);
	khsm_run_clear(&res);

	khsm_kasp_key_t *keys = NULL;
	size_t n = 0;
	assert_int_equal(khsm_keymgr_list(conf_path, "example.com.", &keys, &n), KHSM_EOK);
	assert_int_equal(n, 2);
	const khsm_kasp_key_t *ksk = find(keys, n, id, false);
	const khsm_kasp_key_t *zsk = find(keys, n, id_on, false);
	assert_non_null(ksk);
	assert_non_null(zsk);
	assert_true(ksk->ksk);
	assert_false(ksk->zsk);
	assert_int_equal(ksk->algorithm, 13);
	assert_int_equal(ksk->size, 256);
	assert_true(ksk->active > 0);
	assert_false(zsk->ksk);
	assert_true(zsk->zsk);

	/* the plain format of the same database agrees */
	const char *plain[] = { "example.com.", "list", NULL };
	assert_int_equal(khsm_keymgr(conf_path, plain, &res), KHSM_EOK);
	khsm_kasp_key_t *pkeys = NULL;
	size_t pn = 0;
	assert_int_equal(khsm_keymgr_list_parse(res.out, &pkeys, &pn), KHSM_EOK);
	khsm_run_clear(&res);
	assert_int_equal(pn, 2);
	const khsm_kasp_key_t *pksk = find(pkeys, pn, id, false);
	assert_non_null(pksk);
	assert_int_equal(pksk->tag, ksk->tag);
	assert_int_equal(pksk->active, ksk->active);
	free(pkeys);

	const char *ds_args[] = { "example.com.", "ds", id, NULL };
	assert_int_equal(khsm_keymgr(conf_path, ds_args, &res), KHSM_EOK);
	khsm_ds_t *ds = NULL;
	size_t dn = 0;
	assert_int_equal(khsm_keymgr_ds_parse(res.out, &ds, &dn), KHSM_EOK);
	khsm_run_clear(&res);
	assert_true(dn >= 1);
	assert_string_equal(ds[0].owner, "example.com.");
	assert_int_equal(ds[0].tag, ksk->tag);
	assert_int_equal(ds[0].algorithm, 13);
	assert_int_equal(ds[0].digest_type, 2);
	assert_int_equal(strlen(ds[0].digest), 64);
	khsm_ds_free(ds, dn);
	free(keys);
}

static void test_knotc_no_daemon(void **state)
{
	(void)state;
	khsm_conf_t *conf = NULL;
	assert_int_equal(khsm_conf_load(conf_path, &conf), KHSM_EOK);
	assert_int_equal(khsm_knotc_ping(conf), KHSM_ENOENT);
	khsm_err_clear();
	assert_int_equal(khsm_knotc_zone_keys_load(conf, "example.com."), KHSM_ENOENT);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	assert_non_null(strstr(d, khsm_conf_control_socket(conf)));
	assert_int_equal(khsm_knotc_zone_ksk_submitted(conf, "example.com."), KHSM_ENOENT);
	khsm_conf_free(conf);
}

static void test_version(void **state)
{
	(void)state;
	int major = -1, minor = -1, patch = -1;
	assert_int_equal(khsm_knot_version("keymgr", &major, &minor, &patch), KHSM_EOK);
	/* compare with what keymgr itself prints */
	const char *argv[] = { khsm_tool_path("keymgr"), "--version", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	char want[64];
	snprintf(want, sizeof(want), "version %d.%d.%d", major, minor, patch);
	assert_non_null(strstr(res.out, want));
	khsm_run_clear(&res);
	assert_int_equal(major, 3);

	assert_int_equal(khsm_knot_version("knotd", &major, &minor, &patch), KHSM_EOK);
	assert_int_equal(major, 3);

	/* stand-ins for other builds */
	char script[128];
	snprintf(script, sizeof(script), "%s/fake-keymgr", dir);
	static const struct { const char *out; int rc; int ma, mi, pa; } CASES[] = {
		{ "keymgr (Knot DNS), version 3.5.8", KHSM_EOK, 3, 5, 8 },
		{ "keymgr, Knot DNS 3.5.8\n", KHSM_EOK, 3, 5, 8 },      /* 3.5's own form */
		{ "knotd, Knot DNS 3.6.0-dev.1\n", KHSM_EOK, 3, 6, 0 },
		{ "keymgr, Knot DNS 3.5", KHSM_EPARSE, 0, 0, 0 },
		{ "keymgr (Knot DNS), version 3.4.0-dev.1234\n", KHSM_EOK, 3, 4, 0 },
		{ "keymgr (Knot DNS), version 3.x.1", KHSM_EPARSE, 0, 0, 0 },
		{ "keymgr version 3.2.6", KHSM_EPARSE, 0, 0, 0 },
		{ "keymgr (Knot DNS), version 3.2.6x", KHSM_EPARSE, 0, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		FILE *f = fopen(script, "w");
		assert_non_null(f);
		fprintf(f, "#!/bin/sh\nprintf '%%s\\n' '%s'\n", CASES[i].out);
		fclose(f);
		assert_int_equal(chmod(script, 0755), 0);
		setenv("KHSM_KEYMGR", script, 1);
		major = minor = patch = -1;
		int r = khsm_knot_version("keymgr", &major, &minor, &patch);
		unsetenv("KHSM_KEYMGR");
		if (r != CASES[i].rc) {
			fail_msg("'%s': got %d", CASES[i].out, r);
		}
		if (r == KHSM_EOK) {
			assert_int_equal(major, CASES[i].ma);
			assert_int_equal(minor, CASES[i].mi);
			assert_int_equal(patch, CASES[i].pa);
		}
	}
	assert_int_equal(khsm_knot_version("bash", &major, &minor, &patch), KHSM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_plain),
		cmocka_unit_test(test_list_extended),
		cmocka_unit_test(test_list_empty),
		cmocka_unit_test(test_list_malformed),
		cmocka_unit_test(test_list_extended_unknown_field),
		cmocka_unit_test(test_list_token_id),
		cmocka_unit_test(test_list_extended_keystore),
		cmocka_unit_test(test_ds_parse),
		cmocka_unit_test(test_keymgr_error_exit_zero),
		cmocka_unit_test(test_keymgr_list_token_retry),
		cmocka_unit_test(test_keymgr_generate_list_ds),
		cmocka_unit_test(test_knotc_no_daemon),
		cmocka_unit_test(test_version),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
