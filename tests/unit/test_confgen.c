/* confgen: the exact knot.conf stanzas of each mode for a fixed input, and
 * values knot.conf cannot carry refused instead of pasted. */
#include "test.h"

#include <stdlib.h>
#include <string.h>

#include "confgen.h"
#include "error.h"
#include "policy.h"

static const char OFFLINE_MAIN[] =
	"# Written by knot-hsm policy; do not edit\n"
	"# knot-hsm offline mode, ZSK side (knotd). The KSK side is /etc/knot/knot-hsm-ksk.conf;\n"
	"# run 'knot-hsm ZONE... ceremony' before the pre-signed period ends.\n"
	"# zones: example.com. example.net.\n"
	"# Each zone needs: dnssec-signing: on, dnssec-policy: knot-hsm\n"
	"keystore:\n"
	"  - id: knot-hsm-soft\n"
	"    backend: pem\n"
	"policy:\n"
	"  - id: knot-hsm\n"
	"    keystore: knot-hsm-soft\n"
	"    algorithm: ecdsap256sha256\n"
	"    manual: on\n"
	"    offline-ksk: on\n"
	"    zsk-lifetime: 30d\n"
	"    dnskey-ttl: 1h\n"
	"    zone-max-ttl: 1d\n"
	"    # 1h to the secondaries plus the longest TTL: keymgr pregenerate spaces\n"
	"    # ZSK events by this delay alone\n"
	"    propagation-delay: 25h\n"
	"    rrsig-lifetime: 21d\n"
	"    rrsig-refresh: 10d\n";

static const char OFFLINE_KSK[] =
	"# Written by knot-hsm policy; do not edit\n"
	"# knot-hsm offline mode, KSK side: read by keymgr during 'knot-hsm ceremony',\n"
	"# never by knotd. The KSK stays on the card of keystore hsm.\n"
	"# knot-hsm: shared-ksk=no\n"
	"database:\n"
	"    kasp-db: \"/var/lib/knot/knot-hsm-ksk\"\n"
	"keystore:\n"
	"  - id: hsm\n"
	"    backend: pkcs11\n"
	"    config: \"pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-source=%2Fetc%2Fknot%2Fhsm.pin /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so\"\n"
	"    key-label: on\n"
	"policy:\n"
	"  - id: knot-hsm-ksk\n"
	"    keystore: hsm\n"
	"    algorithm: ecdsap256sha256\n"
	"    manual: on\n"
	"    offline-ksk: on\n"
	"    dnskey-ttl: 1h\n"
	"    zone-max-ttl: 1d\n"
	"    rrsig-lifetime: 21d\n"
	"    rrsig-refresh: 10d\n"
	"zone:\n"
	"  - domain: example.com.\n"
	"    dnssec-policy: knot-hsm-ksk\n"
	"  - domain: example.net.\n"
	"    dnssec-policy: knot-hsm-ksk\n";

static const char ONLINE_MAIN[] =
	"# Written by knot-hsm policy; do not edit\n"
	"# knot-hsm online mode (Knot >= 3.5): KSK on the card, ZSK in software.\n"
	"# zones: example.com. example.net.\n"
	"# Each zone needs: dnssec-signing: on, dnssec-policy: knot-hsm\n"
	"keystore:\n"
	"  - id: knot-hsm-card\n"
	"    backend: pkcs11\n"
	"    config: \"pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-source=%2Fetc%2Fknot%2Fhsm.pin /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so\"\n"
	"    key-label: on\n"
	"    ksk-only: on\n"
	"  - id: knot-hsm-soft\n"
	"    backend: pem\n"
	"policy:\n"
	"  - id: knot-hsm\n"
	"    keystore: [ knot-hsm-card, knot-hsm-soft ]\n"
	"    algorithm: ecdsap384sha384\n"
	"    manual: off\n"
	"    ksk-lifetime: 0\n"
	"    delete-delay: 14d\n"
	"    ksk-shared: on\n"
	"    zsk-lifetime: 30d\n"
	"    dnskey-ttl: 1h\n"
	"    zone-max-ttl: 1d\n"
	"    propagation-delay: 1h\n"
	"    rrsig-lifetime: 21d\n"
	"    rrsig-refresh: 10d\n";

static const char *const ZONES[] = { "example.com.", "example.net." };
static const khsm_render_t INPUT = {
	ZONES, 2, "hsm",
	"pkcs11:token=SmartCard-HSM%20%28UserPIN%29;pin-source=%2Fetc%2Fknot%2Fhsm.pin "
	"/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
	"/etc/knot/knot-hsm-ksk.conf", "/var/lib/knot/knot-hsm-ksk", NULL, 0, NULL, NULL, NULL, 0, NULL,
};

static void test_render(void **state)
{
	(void)state;
	khsm_policy_t p;
	char *text = NULL;

	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_confgen_policy_main(&p, &INPUT, &text), KHSM_EOK);
	assert_string_equal(text, OFFLINE_MAIN);
	free(text);
	assert_int_equal(khsm_confgen_policy_ksk(&p, &INPUT, &text), KHSM_EOK);
	assert_string_equal(text, OFFLINE_KSK);
	assert_false(khsm_policy_text_shared_ksk(text));
	free(text);
	p.shared_ksk = true;
	assert_int_equal(khsm_confgen_policy_ksk(&p, &INPUT, &text), KHSM_EOK);
	assert_true(khsm_policy_text_shared_ksk(text));
	assert_null(strstr(text, "cds-cdnskey-publish"));   /* Knot's default unwritten */
	free(text);
	/* another CDS mode on both sides: the KSK side's signer makes them */
	p.cds = KHSM_CDS_DOUBLE_DS;
	assert_int_equal(khsm_confgen_policy_ksk(&p, &INPUT, &text), KHSM_EOK);
	assert_non_null(strstr(text, "    cds-cdnskey-publish: double-ds\nzone:\n"));
	free(text);
	assert_int_equal(khsm_confgen_policy_main(&p, &INPUT, &text), KHSM_EOK);
	assert_non_null(strstr(text, "    cds-cdnskey-publish: double-ds\n"));
	free(text);
	p.cds = KHSM_CDS_ROLLOVER;

	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	p.algorithm = 14;
	p.shared_ksk = true;
	assert_int_equal(khsm_confgen_policy_main(&p, &INPUT, &text), KHSM_EOK);
	assert_string_equal(text, ONLINE_MAIN);
	free(text);
	/* online has no KSK side */
	text = NULL;
	assert_int_equal(khsm_confgen_policy_ksk(&p, &INPUT, &text), KHSM_EINVAL);
	assert_null(text);

	/* Short test policies get an rrsig-pre-refresh Knot accepts. */
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	p.rrsig_lifetime = 60;
	p.rrsig_refresh = 20;
	p.dnskey_ttl = 2;
	p.zone_max_ttl = 2;
	p.zsk_lifetime = 40;
	p.propagation_delay = 2;
	assert_int_equal(khsm_confgen_policy_main(&p, &INPUT, &text), KHSM_EOK);
	assert_non_null(strstr(text, "    propagation-delay: 4s\n"
	                             "    rrsig-lifetime: 1m\n"
	                             "    rrsig-refresh: 20s\n"
	                             "    rrsig-pre-refresh: 10s\n"));
	free(text);

	/* Values knot.conf cannot carry are refused, not pasted. */
	khsm_render_t bad = INPUT;
	bad.card_keystore_config = "pkcs11:token=a\"b /m.so";
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	text = NULL;
	assert_int_equal(khsm_confgen_policy_ksk(&p, &bad, &text), KHSM_EINVAL);
	assert_null(text);
	const char *evil[] = { "example.com.\n  - domain: evil." };
	bad = INPUT;
	bad.zones = evil;
	bad.zone_count = 1;
	assert_int_equal(khsm_confgen_policy_main(&p, &bad, &text), KHSM_EINVAL);
	assert_null(text);
}

static void test_render_needs_card(void **state)
{
	(void)state;
	khsm_policy_t p;
	char *text = NULL;
	/* online puts the KSK on the card: no card keystore, no text */
	khsm_policy_defaults(&p, KHSM_MODE_ONLINE);
	khsm_render_t in = INPUT;
	in.card_keystore_id = NULL;
	in.card_keystore_config = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_confgen_policy_main(&p, &in, &text), KHSM_EINVAL);
	assert_null(text);
	assert_non_null(strstr(khsm_err_last_detail(), "no pkcs11 keystore"));
	/* offline's ZSK side has no card and renders without one */
	khsm_policy_defaults(&p, KHSM_MODE_OFFLINE);
	assert_int_equal(khsm_confgen_policy_main(&p, &in, &text), KHSM_EOK);
	assert_null(strstr(text, "pkcs11"));
	free(text);
	/* ... but names where its KSK side lives */
	in.ksk_conf_path = NULL;
	text = NULL;
	assert_int_equal(khsm_confgen_policy_main(&p, &in, &text), KHSM_EINVAL);
	assert_null(text);
}

static void test_keystore(void **state)
{
	(void)state;
	char *text = NULL;
	assert_int_equal(khsm_confgen_keystore("hsm", "pkcs11:token=t /m.so", true, &text), KHSM_EOK);
	assert_string_equal(text, "keystore:\n"
	                          "  - id: hsm\n"
	                          "    backend: pkcs11\n"
	                          "    config: \"pkcs11:token=t /m.so\"\n"
	                          "    key-label: on\n");
	free(text);
	assert_int_equal(khsm_confgen_keystore("a-b_c.1", "x", false, &text), KHSM_EOK);
	assert_non_null(strstr(text, "    key-label: off\n"));
	free(text);

	text = NULL;
	assert_int_equal(khsm_confgen_keystore("hsm", "pkcs11:token=a\"b /m.so", true, &text), KHSM_EINVAL);
	assert_null(text);
	assert_int_equal(khsm_confgen_keystore("hsm", "a\nb", true, &text), KHSM_EINVAL);
	assert_int_equal(khsm_confgen_keystore("h sm", "x", true, &text), KHSM_EINVAL);
	assert_null(text);
	assert_int_equal(khsm_confgen_keystore("hsm", NULL, true, &text), KHSM_EINVAL);
}

static void test_check_id(void **state)
{
	(void)state;
	assert_int_equal(khsm_confgen_check_id("knot-hsm_card.2"), KHSM_EOK);
	khsm_err_clear();
	assert_int_equal(khsm_confgen_check_id("a:b"), KHSM_EINVAL);
	assert_non_null(strstr(khsm_err_last_detail(), "has ':'"));
	assert_int_equal(khsm_confgen_check_id(""), KHSM_EINVAL);
	assert_int_equal(khsm_confgen_check_id(NULL), KHSM_EINVAL);
	assert_int_equal(khsm_confgen_check_id("a\"b"), KHSM_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_render_needs_card),
		cmocka_unit_test(test_keystore),
		cmocka_unit_test(test_check_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
