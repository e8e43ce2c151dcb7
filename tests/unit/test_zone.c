/* Unit tests of lib/zone.c: resolving a zone of a knot.conf (loaded with the
 * real knotc, in a temp dir): the name as the operator types it (final dot,
 * case, IDN A-label, too long, not ASCII), its policy and pkcs11 keystore,
 * and each refusal with the detail that says what to change. */
#include "test.h"

#include <sys/stat.h>
#include <unistd.h>

#include "lib/error.h"
#include "lib/knotconf.h"
#include "lib/zone.h"

static char dir[64];
static char conf_path[128];
static khsm_conf_t *conf;

static const char CONF[] =
	"server:\n"
	"    rundir: DIR\n"
	"database:\n"
	"    kasp-db: KASP\n"
	"keystore:\n"
	"  - id: card\n"
	"    backend: pkcs11\n"
	"    config: \"pkcs11:token=card;pin-source=DIR/pin /usr/lib/softhsm/libsofthsm2.so\"\n"
	"  - id: card2\n"
	"    backend: pkcs11\n"
	"    config: \"pkcs11:token=card2;pin-source=DIR/pin /usr/lib/softhsm/libsofthsm2.so\"\n"
	"  - id: soft\n"
	"    backend: pem\n"
	"    config: DIR/keys\n"
	"policy:\n"
	"  - id: on-card\n"
	"    keystore: [ soft, card ]\n"
	"    manual: on\n"
	"  - id: soft-only\n"
	"    keystore: soft\n"
	"    manual: on\n"
	"  - id: zsk-side\n"
	"    keystore: soft\n"
	"    manual: on\n"
	"    offline-ksk: on\n"
	"zone:\n"
	"  - domain: example.com.\n"
	"    dnssec-policy: on-card\n"
	"  - domain: xn--bcher-kva.example.\n"
	"    dnssec-policy: on-card\n"
	"  - domain: soft.example.\n"
	"    dnssec-policy: soft-only\n"
	"  - domain: offline.example.\n"
	"    dnssec-policy: zsk-side\n"
	"  - domain: bare.example.\n";

/* CONF with DIR and KASP replaced. */
static void write_conf(const char *kasp)
{
	FILE *f = fopen(conf_path, "w");
	assert_non_null(f);
	for (const char *p = CONF; *p; ) {
		if (strncmp(p, "DIR", 3) == 0) {
			fputs(dir, f);
			p += 3;
		} else if (strncmp(p, "KASP", 4) == 0) {
			fputs(kasp, f);
			p += 4;
		} else {
			fputc(*p++, f);
		}
	}
	assert_int_equal(fclose(f), 0);
}

static khsm_conf_t *load(void)
{
	khsm_conf_t *c = NULL;
	khsm_err_clear();
	int r = khsm_conf_load(conf_path, &c);
	if (r != KHSM_EOK) {
		fail_msg("loading %s: %s (%s)", conf_path, khsm_strerror(r),
		         khsm_err_last_detail() ? khsm_err_last_detail() : "");
	}
	return c;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/khsm-zone-test.XXXXXX");
	if (!mkdtemp(dir)) {
		return -1;
	}
	unsetenv("KHSM_KNOTC");
	char kasp[128];
	snprintf(kasp, sizeof(kasp), "%s/kasp", dir);
	if (mkdir(kasp, 0700) != 0) {
		return -1;
	}
	snprintf(conf_path, sizeof(conf_path), "%s/knot.conf", dir);
	write_conf(kasp);
	conf = load();
	return conf ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	khsm_conf_free(conf);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd);
}

/* resolves NAME [KEYSTORE] to zone WANT with keystore WANT_KS. */
static void resolves(const char *name, const char *ks_id, const char *want, const char *want_ks)
{
	khsm_zone_t z = { 0 };
	khsm_err_clear();
	int r = khsm_zone_resolve(conf, name, ks_id, &z);
	if (r != KHSM_EOK) {
		fail_msg("%s: %s (%s)", name, khsm_strerror(r),
		         khsm_err_last_detail() ? khsm_err_last_detail() : "");
	}
	assert_string_equal(z.name, want);
	assert_non_null(z.conf);
	assert_non_null(z.keystore);
	assert_string_equal(z.keystore->id, want_ks);
	assert_string_equal(z.keystore->backend, "pkcs11");
	khsm_zone_clear(&z);
	assert_null(z.name);
}

/* refuses NAME [KEYSTORE] with CODE and a detail holding TEXT. */
static void refuses(const char *name, const char *ks_id, int code, const char *text)
{
	khsm_zone_t z = { 0 };
	khsm_err_clear();
	int r = khsm_zone_resolve(conf, name, ks_id, &z);
	if (r != code) {
		fail_msg("%s: got %d (%s), want %d", name, r, khsm_strerror(r), code);
	}
	assert_null(z.name);
	const char *d = khsm_err_last_detail();
	if (!d || !strstr(d, text)) {
		fail_msg("%s: detail '%s' lacks '%s'", name, d ? d : "(none)", text);
	}
}

static void test_names(void **state)
{
	(void)state;
	/* The final dot is optional, case does not matter. */
	resolves("example.com.", NULL, "example.com.", "card");
	resolves("example.com", NULL, "example.com.", "card");
	resolves("Example.COM", NULL, "example.com.", "card");
	resolves("EXAMPLE.COM.", NULL, "example.com.", "card");
	/* IDN: the A-label form, any case. */
	resolves("xn--bcher-kva.example", NULL, "xn--bcher-kva.example.", "card");
	resolves("XN--BCHER-KVA.EXAMPLE.", NULL, "xn--bcher-kva.example.", "card");
}

static void test_bad_names(void **state)
{
	(void)state;
	refuses("b\xc3\xbc" "cher.example", NULL, KHSM_EINVAL, "give its IDN A-label (xn--) form");
	refuses("", NULL, KHSM_EINVAL, "empty zone name");
	refuses("example..com", NULL, KHSM_EINVAL, "has an empty label");
	refuses("exa mple.com", NULL, KHSM_EINVAL, "contains ' '");
	/* A label of 64 characters, a name of more than 255 octets. */
	char name[400];
	memset(name, 'a', 64);
	strcpy(name + 64, ".example");
	refuses(name, NULL, KHSM_EINVAL, "has a label longer than 63 characters");
	name[0] = '\0';
	for (int i = 0; i < 5; i++) {
		strcat(name, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."); /* 61 + dot */
	}
	strcat(name, "example");
	refuses(name, NULL, KHSM_EINVAL, "octets long in wire form; at most 255 are allowed");
	khsm_zone_t z = { 0 };
	assert_int_equal(khsm_zone_resolve(conf, NULL, NULL, &z), KHSM_EINVAL);
	assert_int_equal(khsm_zone_resolve(NULL, "example.com", NULL, &z), KHSM_EINVAL);
	assert_int_equal(khsm_zone_resolve(conf, "example.com", NULL, NULL), KHSM_EINVAL);
	khsm_zone_clear(NULL);
}

static void test_unknown_zone(void **state)
{
	(void)state;
	refuses("example.net", NULL, KHSM_ENOENT, "zone example.net. is not in ");
	refuses("example.net", NULL, KHSM_ENOENT, "); add it to the zone section");
	/* The detail names every zone there is (in knotc's order). */
	static const char *const zones[] = {
		"example.com.", "xn--bcher-kva.example.", "soft.example.", "offline.example.", "bare.example.",
	};
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++) {
		refuses("example.net", NULL, KHSM_ENOENT, zones[i]);
	}
	/* A subdomain of a configured zone is another zone. */
	refuses("www.example.com", NULL, KHSM_ENOENT, "zone www.example.com. is not in ");
}

static void test_keystore(void **state)
{
	(void)state;
	/* The pkcs11 keystore of the policy (not its PEM one), or the one asked for. */
	resolves("example.com", "card2", "example.com.", "card2");
	refuses("example.com", "nosuch", KHSM_ENOENT, "keystore 'nosuch' is not in ");
	refuses("example.com", "soft", KHSM_ECONFIG, "keystore 'soft' is not a pkcs11 keystore");
	/* A policy on the PEM keystore alone, unless a keystore is named. */
	refuses("soft.example", NULL, KHSM_ECONFIG,
	        "policy 'soft-only' of zone soft.example. uses no pkcs11 keystore");
	resolves("soft.example", "card", "soft.example.", "card");
	/* The ZSK side of offline-KSK: the card keys are elsewhere. */
	refuses("offline.example", NULL, KHSM_ECONFIG, "is the ZSK side of the offline-KSK mode");
	/* No policy at all. */
	refuses("bare.example", NULL, KHSM_ENOENT, "zone bare.example. has no dnssec-policy in ");
	resolves("bare.example", "card", "bare.example.", "card");
}

static void test_missing_kasp(void **state)
{
	(void)state;
	char kasp[128];
	snprintf(kasp, sizeof(kasp), "%s/no-kasp", dir);
	write_conf(kasp);
	khsm_conf_free(conf);
	conf = load();
	refuses("example.com", NULL, KHSM_ENOENT, "KASP database directory ");
	refuses("example.com", NULL, KHSM_ENOENT, "does not exist; create it, owned by the user that runs knotd");
	assert_int_equal(mkdir(kasp, 0700), 0);
	resolves("example.com", NULL, "example.com.", "card");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_bad_names),
		cmocka_unit_test(test_unknown_zone),
		cmocka_unit_test(test_keystore),
		cmocka_unit_test(test_missing_kasp),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
