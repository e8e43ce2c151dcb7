/* Tests of lib/knotconf.c with the real knotc on knot.conf files in a temp dir. */
#include "test.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "knotconf.h"
#include "run.h"

static char dir[64];

static void write_file(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static khsm_conf_t *load(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	khsm_conf_t *conf = NULL;
	khsm_err_clear();
	int r = khsm_conf_load(path, &conf);
	if (r != KHSM_EOK) {
		fail_msg("loading %s: %s (%s)", name, khsm_strerror(r),
		         khsm_err_last_detail() ? khsm_err_last_detail() : "");
	}
	assert_non_null(conf);
	assert_string_equal(khsm_conf_path(conf), path);
	return conf;
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/khsm-test-knotconf.XXXXXX");
	if (!mkdtemp(dir)) {
		return -1;
	}
	unsetenv("KHSM_KNOTC");
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

static const char FULL_CONF[] =
	"server:\n"
	"    rundir: RUNDIR\n"
	"database:\n"
	"    storage: STORAGE\n"
	"keystore:\n"
	"  - id: hsm\n"
	"    backend: pkcs11\n"
	"    config: \"pkcs11:token=My%20Token;pin-source=/etc/knot/pin /usr/lib/softhsm/libsofthsm2.so\"\n"
	"    key-label: on\n"
	"  - id: soft\n"
	"    backend: pem\n"
	"    config: keys-pem\n"
	"policy:\n"
	"  - id: ksk-side\n"
	"    keystore: hsm\n"
	"    manual: on\n"
	"    offline-ksk: on\n"
	"    algorithm: ECDSAP256SHA256\n"
	"    ksk-lifetime: 365d\n"
	"    dnskey-ttl: 1h\n"
	"    zone-max-ttl: 86400\n"
	"  - id: zsk-side\n"
	"    keystore: soft\n"
	"    zsk-lifetime: 30d\n"
	"    rrsig-lifetime: 14d\n"
	"    rrsig-refresh: 7d\n"
	"    propagation-delay: 1h\n"
	"    single-type-signing: off\n"
	"include: extra.conf\n"
	"template:\n"
	"  - id: default\n"
	"    dnssec-signing: on\n"
	"    dnssec-policy: zsk-side\n"
	"  - id: other\n"
	"    storage: /srv/zones\n"
	"    dnssec-policy: ksk-side\n"
	"  - id: bare\n"
	"zone:\n"
	"  - domain: Example.COM\n"
	"  - domain: b.test.\n"
	"    template: other\n"
	"    dnssec-signing: off\n"
	"  - domain: c.test\n"
	"    dnssec-policy: ksk-side\n"
	"    storage: zdir\n"
	"  - domain: d.test\n"
	"    template: bare\n";

static const char EXTRA_CONF[] =
	"policy:\n"
	"  - id: included\n"
	"    algorithm: ed25519\n";

static void write_full(void)
{
	char text[4096];
	char *p = text;
	const char *src = FULL_CONF;
	/* substitute RUNDIR and STORAGE with paths in the temp dir */
	while (*src) {
		if (strncmp(src, "RUNDIR", 6) == 0) {
			p += sprintf(p, "%s/run", dir);
			src += 6;
		} else if (strncmp(src, "STORAGE", 7) == 0) {
			p += sprintf(p, "%s/db", dir);
			src += 7;
		} else {
			*p++ = *src++;
		}
	}
	*p = '\0';
	write_file("knot.conf", text);
	write_file("extra.conf", EXTRA_CONF);
}

static void test_keystores(void **state)
{
	(void)state;
	write_full();
	khsm_conf_t *conf = load("knot.conf");

	assert_int_equal(khsm_conf_keystore_count(conf), 2);
	const khsm_conf_keystore_t *hsm = khsm_conf_keystore_find(conf, "hsm");
	assert_non_null(hsm);
	assert_ptr_equal(hsm, khsm_conf_keystore_at(conf, 0));
	assert_string_equal(hsm->backend, "pkcs11");
	assert_string_equal(hsm->config,
	        "pkcs11:token=My%20Token;pin-source=/etc/knot/pin /usr/lib/softhsm/libsofthsm2.so");
	assert_true(hsm->key_label);
	assert_false(hsm->ksk_only);

	const khsm_conf_keystore_t *soft = khsm_conf_keystore_find(conf, "soft");
	assert_non_null(soft);
	assert_string_equal(soft->backend, "pem");
	assert_string_equal(soft->config, "keys-pem");
	assert_false(soft->key_label);

	assert_null(khsm_conf_keystore_find(conf, "nope"));
	assert_null(khsm_conf_keystore_at(conf, 2));
	khsm_conf_free(conf);
}

static void test_policies(void **state)
{
	(void)state;
	write_full();
	khsm_conf_t *conf = load("knot.conf");

	const khsm_conf_policy_t *k = khsm_conf_policy_find(conf, "ksk-side");
	assert_non_null(k);
	assert_int_equal(k->keystore_count, 1);
	assert_string_equal(k->keystores[0], "hsm");
	assert_true(k->manual);
	assert_true(k->offline_ksk);
	assert_false(k->single_type_signing);
	/* knotc exports canonical values: names lower-cased, times in seconds */
	assert_string_equal(k->algorithm, "ecdsap256sha256");
	assert_string_equal(k->ksk_lifetime, "31536000");
	assert_string_equal(k->dnskey_ttl, "3600");
	assert_string_equal(k->zone_max_ttl, "86400");
	assert_null(k->zsk_lifetime);
	assert_null(k->rrsig_lifetime);

	const khsm_conf_policy_t *z = khsm_conf_policy_find(conf, "zsk-side");
	assert_non_null(z);
	assert_string_equal(z->keystores[0], "soft");
	assert_false(z->manual);
	assert_string_equal(z->zsk_lifetime, "2592000");
	assert_string_equal(z->rrsig_lifetime, "1209600");
	assert_string_equal(z->rrsig_refresh, "604800");
	assert_string_equal(z->propagation_delay, "3600");
	assert_null(z->algorithm);

	/* from the include file */
	const khsm_conf_policy_t *inc = khsm_conf_policy_find(conf, "included");
	assert_non_null(inc);
	assert_string_equal(inc->algorithm, "ed25519");
	assert_int_equal(inc->keystore_count, 0);
	assert_int_equal(khsm_conf_policy_count(conf), 3);
	khsm_conf_free(conf);
}

static void test_zones(void **state)
{
	(void)state;
	write_full();
	khsm_conf_t *conf = load("knot.conf");
	assert_int_equal(khsm_conf_zone_count(conf), 4);

	const khsm_conf_zone_t *ex = khsm_conf_zone_find(conf, "EXAMPLE.com");
	assert_non_null(ex);
	assert_string_equal(ex->domain, "example.com.");
	assert_ptr_equal(khsm_conf_zone_find(conf, "example.com."), ex);
	assert_null(ex->policy);
	assert_null(ex->template_id);
	assert_false(ex->signing_set);

	/* example.com. inherits everything from template 'default' */
	const khsm_conf_policy_t *p = NULL;
	bool signing = false;
	assert_int_equal(khsm_conf_zone_policy(conf, ex, &p), KHSM_EOK);
	assert_string_equal(p->id, "zsk-side");
	assert_int_equal(khsm_conf_zone_signing(conf, ex, &signing), KHSM_EOK);
	assert_true(signing);

	/* b.test. uses template 'other': its policy and storage, own signing */
	const khsm_conf_zone_t *b = khsm_conf_zone_find(conf, "b.test");
	assert_non_null(b);
	assert_string_equal(b->template_id, "other");
	assert_int_equal(khsm_conf_zone_policy(conf, b, &p), KHSM_EOK);
	assert_string_equal(p->id, "ksk-side");
	assert_int_equal(khsm_conf_zone_signing(conf, b, &signing), KHSM_EOK);
	assert_false(signing);
	assert_string_equal(khsm_conf_zone_storage(conf, b), "/srv/zones");

	/* c.test. sets its own policy and a relative storage */
	const khsm_conf_zone_t *c = khsm_conf_zone_find(conf, "C.Test.");
	assert_non_null(c);
	assert_int_equal(khsm_conf_zone_policy(conf, c, &p), KHSM_EOK);
	assert_string_equal(p->id, "ksk-side");
	assert_int_equal(khsm_conf_zone_signing(conf, c, &signing), KHSM_EOK);
	assert_true(signing);
	char cwd[512], expect[600];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(expect, sizeof(expect), "%s/zdir", strcmp(cwd, "/") == 0 ? "" : cwd);
	assert_string_equal(khsm_conf_zone_storage(conf, c), expect);

	/* d.test. names a template without policy: no fallback to 'default' */
	const khsm_conf_zone_t *d = khsm_conf_zone_find(conf, "d.test");
	assert_non_null(d);
	khsm_err_clear();
	assert_int_equal(khsm_conf_zone_policy(conf, d, &p), KHSM_ENOENT);
	assert_non_null(khsm_err_last_detail());
	assert_int_equal(khsm_conf_zone_signing(conf, d, &signing), KHSM_EOK);
	assert_false(signing);

	assert_null(khsm_conf_zone_find(conf, "unknown.test"));
	khsm_conf_free(conf);
}

/* The walk of status and heal: signed zones with a policy, in the
 * configuration's order; want
 * limits them and must name zones of the configuration. */
static void test_signed_zones(void **state)
{
	(void)state;
	write_full();
	khsm_conf_t *conf = load("knot.conf");
	const khsm_conf_zone_t **zones = NULL;
	size_t n = 0;
	assert_int_equal(khsm_conf_signed_zones(conf, NULL, 0, &zones, &n), KHSM_EOK);
	assert_int_equal(n, 2);
	/* the order of khsm_conf_zone_at(), as knotc exports them */
	size_t at = 0;
	for (size_t i = 0; i < khsm_conf_zone_count(conf); i++) {
		if (at < n && khsm_conf_zone_at(conf, i) == zones[at]) at++;
	}
	assert_int_equal(at, 2);
	assert_ptr_equal(zones[0] == khsm_conf_zone_find(conf, "example.com") ? zones[1] : zones[0],
	                 khsm_conf_zone_find(conf, "c.test"));
	free(zones);

	/* b.test. is wanted but not signed: left out without an error */
	const char *want[] = { "b.test", "C.TEST" };
	assert_int_equal(khsm_conf_signed_zones(conf, want, 2, &zones, &n), KHSM_EOK);
	assert_int_equal(n, 1);
	assert_string_equal(zones[0]->domain, "c.test.");
	free(zones);
	const char *unsigned_only[] = { "d.test." };
	static const khsm_conf_zone_t *stale[1];
	zones = stale;   /* must be reset to NULL, not left */
	assert_int_equal(khsm_conf_signed_zones(conf, unsigned_only, 1, &zones, &n), KHSM_EOK);
	assert_int_equal(n, 0);
	assert_null(zones);

	const char *missing[] = { "example.com", "nope.test" };
	khsm_err_clear();
	assert_int_equal(khsm_conf_signed_zones(conf, missing, 2, &zones, &n), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "zone nope.test. is not in "));
	const char *bad[] = { "a..b" };
	assert_int_equal(khsm_conf_signed_zones(conf, bad, 1, &zones, &n), KHSM_EINVAL);
	khsm_conf_free(conf);
}

static void test_paths_explicit(void **state)
{
	(void)state;
	write_full();
	khsm_conf_t *conf = load("knot.conf");
	char expect[256];
	snprintf(expect, sizeof(expect), "%s/db", dir);
	assert_string_equal(khsm_conf_storage(conf), expect);
	snprintf(expect, sizeof(expect), "%s/db/keys", dir);
	assert_string_equal(khsm_conf_kasp_db(conf), expect);
	snprintf(expect, sizeof(expect), "%s/run/knot.sock", dir);
	assert_string_equal(khsm_conf_control_socket(conf), expect);
	khsm_conf_free(conf);
}

static void test_paths_relative(void **state)
{
	(void)state;
	char text[512];
	snprintf(text, sizeof(text),
	         "server:\n    rundir: %s/rr\n"
	         "database:\n    storage: %s/st\n    kasp-db: kasp\n"
	         "control:\n    listen: ctl/knotc.sock\n", dir, dir);
	write_file("rel.conf", text);
	khsm_conf_t *conf = load("rel.conf");
	char expect[256];
	snprintf(expect, sizeof(expect), "%s/st/kasp", dir);
	assert_string_equal(khsm_conf_kasp_db(conf), expect);
	snprintf(expect, sizeof(expect), "%s/rr/ctl/knotc.sock", dir);
	assert_string_equal(khsm_conf_control_socket(conf), expect);
	khsm_conf_free(conf);

	snprintf(text, sizeof(text), "database:\n    kasp-db: /abs/kasp\n"
	         "control:\n    listen: /abs/knot.sock\n");
	write_file("abs.conf", text);
	conf = load("abs.conf");
	assert_string_equal(khsm_conf_kasp_db(conf), "/abs/kasp");
	assert_string_equal(khsm_conf_control_socket(conf), "/abs/knot.sock");
	khsm_conf_free(conf);
}

/* Nothing set: Knot's compiled-in defaults (Debian: /var/lib/knot, /run/knot),
 * exactly what knotc itself would use. */
static void test_paths_default(void **state)
{
	(void)state;
	write_file("empty.conf", "zone:\n  - domain: example.org\n");
	khsm_conf_t *conf = load("empty.conf");
	assert_string_equal(khsm_conf_storage(conf), "/var/lib/knot");
	assert_string_equal(khsm_conf_kasp_db(conf), "/var/lib/knot/keys");
	assert_string_equal(khsm_conf_rundir(conf), "/run/knot");
	assert_string_equal(khsm_conf_control_socket(conf), "/run/knot/knot.sock");
	assert_int_equal(khsm_conf_keystore_count(conf), 0);

	/* cross-check with knotc: its connection error names the socket it uses */
	char path[256];
	snprintf(path, sizeof(path), "%s/empty.conf", dir);
	const char *argv[] = { khsm_tool_path("knotc"), "-c", path, "-t", "1", "status", NULL };
	khsm_run_t res = { 0 };
	assert_int_equal(khsm_run(argv, NULL, &res), KHSM_EOK);
	if (res.status != 0) {
		char want[300];
		snprintf(want, sizeof(want), "'%s'", khsm_conf_control_socket(conf));
		assert_non_null(strstr(res.err, want));
	}
	khsm_run_clear(&res);

	const khsm_conf_zone_t *z = khsm_conf_zone_find(conf, "example.org");
	assert_non_null(z);
	const khsm_conf_policy_t *p = NULL;
	assert_int_equal(khsm_conf_zone_policy(conf, z, &p), KHSM_ENOENT);
	bool signing = true;
	assert_int_equal(khsm_conf_zone_signing(conf, z, &signing), KHSM_EOK);
	assert_false(signing);
	assert_string_equal(khsm_conf_zone_storage(conf, z), "/var/lib/knot");
	khsm_conf_free(conf);
}

static void test_broken(void **state)
{
	(void)state;
	write_file("bad.conf", "server:\n  listen: [\n");
	char path[256];
	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	khsm_conf_t *conf = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_conf_load(path, &conf), KHSM_ECONFIG);
	assert_null(conf);
	const char *d = khsm_err_last_detail();
	assert_non_null(d);
	assert_non_null(strstr(d, "line 2"));
	assert_non_null(strstr(d, "listen"));

	/* a dangling reference is Knot's error too */
	write_file("ref.conf", "zone:\n  - domain: a.test\n    dnssec-policy: missing\n");
	snprintf(path, sizeof(path), "%s/ref.conf", dir);
	khsm_err_clear();
	assert_int_equal(khsm_conf_load(path, &conf), KHSM_ECONFIG);
	assert_non_null(strstr(khsm_err_last_detail(), "invalid reference"));

	snprintf(path, sizeof(path), "%s/does-not-exist.conf", dir);
	assert_int_equal(khsm_conf_load(path, &conf), KHSM_ECONFIG);
	assert_null(conf);
}

/* Knot >= 3.5 exports a keystore list and items 3.2 does not know. A stand-in
 * knotc copies a prepared export, as a 3.5 knotc would write it. */
static void test_keystore_list_35(void **state)
{
	(void)state;
	write_file("export35.conf",
	           "# Configuration export (Knot DNS 3.5.8)\n\n"
	           "server:\n    rundir: \"/run/k35\"\n    listen: [ \"127.0.0.1@53\", \"::1@53\" ]\n\n"
	           "quic:\n    foo: \"bar\"\n\n"
	           "keystore:\n  - id: \"card\"\n    backend: \"pkcs11\"\n"
	           "    config: \"pkcs11:token=T /usr/lib/m.so\"\n    key-label: \"on\"\n    ksk-only: \"on\"\n\n"
	           "  - id: \"pem\"\n    backend: \"pem\"\n\n"
	           "policy:\n  - id: \"online\"\n    keystore: [ \"card\", \"pem\" ]\n    new-item: \"x\"\n\n"
	           "zone:\n  - domain: \"x.test.\"\n    dnssec-signing: \"on\"\n    dnssec-policy: \"online\"\n");
	char script[512];
	snprintf(script, sizeof(script),
	         "#!/bin/sh\n"
	         "if [ \"$1\" = -h ]; then echo ' -s, --socket <path>  x'; "
	         "echo '                 (default /run/k35def/knot.sock)'; exit 0; fi\n"
	         "[ \"$1\" = -c ] && [ \"$3\" = conf-export ] || exit 9\n"
	         "cp %s/export35.conf \"$4\" && echo OK\n", dir);
	write_file("knotc35", script);
	char knotc[256];
	snprintf(knotc, sizeof(knotc), "%s/knotc35", dir);
	assert_int_equal(chmod(knotc, 0755), 0);
	setenv("KHSM_KNOTC", knotc, 1);
	write_file("dummy.conf", "");

	khsm_conf_t *conf = load("dummy.conf");
	unsetenv("KHSM_KNOTC");
	const khsm_conf_keystore_t *card = khsm_conf_keystore_find(conf, "card");
	assert_non_null(card);
	assert_true(card->ksk_only);
	assert_true(card->key_label);
	assert_false(khsm_conf_keystore_find(conf, "pem")->ksk_only);
	const khsm_conf_policy_t *p = khsm_conf_policy_find(conf, "online");
	assert_non_null(p);
	assert_int_equal(p->keystore_count, 2);
	assert_string_equal(p->keystores[0], "card");
	assert_string_equal(p->keystores[1], "pem");
	assert_string_equal(khsm_conf_control_socket(conf), "/run/k35/knot.sock");
	/* the stand-in's help names no confdb: Debian's storage is assumed */
	assert_string_equal(khsm_conf_kasp_db(conf), "/var/lib/knot/keys");
	khsm_conf_free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keystores),
		cmocka_unit_test(test_policies),
		cmocka_unit_test(test_zones),
		cmocka_unit_test(test_signed_zones),
		cmocka_unit_test(test_paths_explicit),
		cmocka_unit_test(test_paths_relative),
		cmocka_unit_test(test_paths_default),
		cmocka_unit_test(test_broken),
		cmocka_unit_test(test_keystore_list_35),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
