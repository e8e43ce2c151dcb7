/* Unit tests of lib/zoneconf.c: an exported knot.conf split at its zone
 * entries, one zone's cut reassembled around them, and the cases that keep
 * the whole file (catalog zones, escaped names, a zone twice). */
#include "test.h"

#include "lib/error.h"
#include "lib/zoneconf.h"

/* As `knotc conf-export` writes it (Knot 3.2.6), with a section after the zones. */
static const char EXPORT[] =
	"# Configuration export (Knot DNS 3.2.6)\n"
	"\n"
	"server:\n"
	"    rundir: \"/run/knot\"\n"
	"\n"
	"policy:\n"
	"  - id: \"p\"\n"
	"    manual: \"on\"\n"
	"\n"
	"zone:\n"
	"  - domain: \"a.example.\"\n"
	"    dnssec-policy: \"p\"\n"
	"\n"
	"  - domain: \"B.Example.\"\n"
	"    file: \"b y.zone\"\n"
	"\n"
	"  - domain: \"c.example.\"\n"
	"\n"
	"log:\n"
	"  - target: \"syslog\"\n"
	"    any: \"info\"\n";

static const char HEAD[] =
	"# Configuration export (Knot DNS 3.2.6)\n\nserver:\n    rundir: \"/run/knot\"\n\n"
	"policy:\n  - id: \"p\"\n    manual: \"on\"\n\nzone:\n";
static const char TAIL[] = "log:\n  - target: \"syslog\"\n    any: \"info\"\n";

static void expect_cut(const khsm_zoneconf_t *zc, const char *zone, const char *entry)
{
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(khsm_zoneconf_text(zc, zone, &text, &len), KHSM_EOK);
	char want[1024];
	snprintf(want, sizeof(want), "%s%s%s", HEAD, entry, TAIL);
	assert_string_equal(text, want);
	assert_int_equal(len, strlen(want));
	free(text);
}

static void test_cut(void **state)
{
	(void)state;
	khsm_zoneconf_t *zc = NULL;
	assert_int_equal(khsm_zoneconf_parse(EXPORT, &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_count(zc), 3);
	expect_cut(zc, "a.example.", "  - domain: \"a.example.\"\n    dnssec-policy: \"p\"\n\n");
	/* names match in any case, with or without the final dot */
	expect_cut(zc, "b.example", "  - domain: \"B.Example.\"\n    file: \"b y.zone\"\n\n");
	expect_cut(zc, "C.EXAMPLE.", "  - domain: \"c.example.\"\n\n");
	char *text = NULL;
	assert_int_equal(khsm_zoneconf_text(zc, "d.example.", &text, NULL), KHSM_ENOENT);
	assert_null(text);
	assert_int_equal(khsm_zoneconf_text(zc, "", &text, NULL), KHSM_EINVAL);
	khsm_zoneconf_free(zc);
}

static void test_zones_last(void **state)
{
	(void)state;
	/* no section after the zones: the last entry runs to the end */
	khsm_zoneconf_t *zc = NULL;
	assert_int_equal(khsm_zoneconf_parse("zone:\n  - domain: \"x.\"\n  - domain: \"y.\"\n    file: \"f\"\n", &zc),
	                 KHSM_EOK);
	char *text = NULL;
	assert_int_equal(khsm_zoneconf_text(zc, "y.", &text, NULL), KHSM_EOK);
	assert_string_equal(text, "zone:\n  - domain: \"y.\"\n    file: \"f\"\n");
	free(text);
	assert_int_equal(khsm_zoneconf_text(zc, "x", &text, NULL), KHSM_EOK);
	assert_string_equal(text, "zone:\n  - domain: \"x.\"\n");
	free(text);
	khsm_zoneconf_free(zc);
	/* no zone section at all: nothing to cut */
	assert_int_equal(khsm_zoneconf_parse("server:\n    rundir: \"/x\"\n", &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_count(zc), 0);
	assert_int_equal(khsm_zoneconf_text(zc, "x.", &text, NULL), KHSM_ENOENT);
	khsm_zoneconf_free(zc);
}

static void test_whole_file(void **state)
{
	(void)state;
	khsm_zoneconf_t *zc = NULL;
	/* a catalog member's entry names another zone */
	assert_int_equal(khsm_zoneconf_parse("zone:\n  - domain: \"m.\"\n    catalog-role: \"member\"\n"
	                                     "    catalog-zone: \"cat.\"\n  - domain: \"cat.\"\n", &zc),
	                 KHSM_ENOTSUP);
	assert_null(zc);
	/* an escaped name is not matched by text */
	assert_int_equal(khsm_zoneconf_parse("zone:\n  - domain: \"a\\\\046b.\"\n", &zc), KHSM_ENOTSUP);
	assert_null(zc);
	/* the same zone twice (in two cases) */
	assert_int_equal(khsm_zoneconf_parse("zone:\n  - domain: \"a.\"\n  - domain: \"A.\"\n", &zc),
	                 KHSM_ENOTSUP);
	assert_null(zc);
	assert_int_equal(khsm_zoneconf_parse(NULL, &zc), KHSM_EINVAL);
}

/* The keyless cut: each keystore, its id kept, is the given PEM directory;
 * its other options (a module, a label) are gone; the rest is the plain cut. */
static void test_keyless(void **state)
{
	(void)state;
	static const char KS_EXPORT[] =
		"server:\n    rundir: \"/run/knot\"\n\n"
		"keystore:\n"
		"  - id: \"card\"\n"
		"    backend: \"pkcs11\"\n"
		"    config: \"pkcs11:token=A%20B;pin-source=%2Fp /usr/lib/m.so\"\n"
		"    key-label: \"on\"\n"
		"\n"
		"  - id: \"soft\"\n"
		"\n"
		"policy:\n  - id: \"p\"\n    keystore: \"card\"\n\n"
		"zone:\n  - domain: \"a.example.\"\n\n  - domain: \"b.example.\"\n\n"
		"log:\n  - target: \"syslog\"\n";
	khsm_zoneconf_t *zc = NULL;
	assert_int_equal(khsm_zoneconf_parse(KS_EXPORT, &zc), KHSM_EOK);
	char *text = NULL;
	size_t len = 0;
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "b.example", "/tmp/x.1", &text, &len), KHSM_EOK);
	assert_string_equal(text,
		"server:\n    rundir: \"/run/knot\"\n\n"
		"keystore:\n"
		"  - id: \"card\"\n    backend: \"pem\"\n    config: \"/tmp/x.1\"\n"
		"  - id: \"soft\"\n    backend: \"pem\"\n    config: \"/tmp/x.1\"\n"
		"\n"
		"policy:\n  - id: \"p\"\n    keystore: \"card\"\n\n"
		"zone:\n  - domain: \"b.example.\"\n\n"
		"log:\n  - target: \"syslog\"\n");
	assert_int_equal(len, strlen(text));
	free(text);
	/* the plain cut keeps the keystores as exported */
	assert_int_equal(khsm_zoneconf_text(zc, "b.example", &text, NULL), KHSM_EOK);
	assert_non_null(strstr(text, "backend: \"pkcs11\""));
	free(text);
	/* a directory that could not be written between quotes as it is */
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.example", "/tmp/a\"b", &text, NULL), KHSM_EINVAL);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.example", "tmp", &text, NULL), KHSM_EINVAL);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.example", NULL, &text, NULL), KHSM_EINVAL);
	khsm_zoneconf_free(zc);

	/* no keystore section: Knot's default keystore is PEM, the plain cut */
	assert_int_equal(khsm_zoneconf_parse(EXPORT, &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.example.", "/tmp/x.1", &text, NULL), KHSM_EOK);
	char want[1024];
	snprintf(want, sizeof(want), "%s  - domain: \"a.example.\"\n    dnssec-policy: \"p\"\n\n%s", HEAD, TAIL);
	assert_string_equal(text, want);
	free(text);
	khsm_zoneconf_free(zc);

	/* a keystore section after the zones, or a second one (not as knotc
	 * exports): refused, since one would pass through as it is */
	assert_int_equal(khsm_zoneconf_parse("zone:\n  - domain: \"a.\"\n\nkeystore:\n  - id: \"k\"\n", &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.", "/tmp/x.1", &text, NULL), KHSM_ENOTSUP);
	khsm_zoneconf_free(zc);
	assert_int_equal(khsm_zoneconf_parse("keystore:\n  - id: \"k\"\n\nkeystore:\n  - id: \"j\"\n"
	                                     "    backend: \"pkcs11\"\n\nzone:\n  - domain: \"a.\"\n", &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.", "/tmp/x.1", &text, NULL), KHSM_ENOTSUP);
	khsm_zoneconf_free(zc);
	assert_int_equal(khsm_zoneconf_parse("keystore:\n  - id: \"k\"\n\nzone:\n  - domain: \"a.\"\n\n"
	                                     "keystore:\n  - id: \"j\"\n", &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.", "/tmp/x.1", &text, NULL), KHSM_ENOTSUP);
	khsm_zoneconf_free(zc);
	/* a policy with several keystores (Knot 3.5 online mode): keymgr list
	 * names each key's keystore by looking in them, so the cut stays plain */
	assert_int_equal(khsm_zoneconf_parse("keystore:\n  - id: \"k\"\n\n  - id: \"j\"\n\n"
	                                     "policy:\n  - id: \"p\"\n    keystore: [ \"k\", \"j\" ]\n\n"
	                                     "zone:\n  - domain: \"a.\"\n", &zc), KHSM_EOK);
	assert_int_equal(khsm_zoneconf_keyless_text(zc, "a.", "/tmp/x.1", &text, NULL), KHSM_ENOTSUP);
	assert_int_equal(khsm_zoneconf_text(zc, "a.", &text, NULL), KHSM_EOK);
	free(text);
	khsm_zoneconf_free(zc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_zones_last),
		cmocka_unit_test(test_whole_file),
		cmocka_unit_test(test_keyless),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
