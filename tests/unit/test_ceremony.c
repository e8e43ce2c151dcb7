/* Tests of lib/ceremony.c and lib/skr.c: reading KSR, SKR and show-offline text captured
 * from keymgr 3.2.6, the SKR checks beyond validate-skr, file names, and the
 * atomic write. */
#include "test.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libdnssec/error.h>
#include <libdnssec/key.h>

#include "ceremony.h"
#include "error.h"
#include "test_ceremony_data.h"

static void test_parse_ksr_skr(void **state)
{
	(void)state;
	khsm_keysets_t ksr = { 0 }, skr = { 0 };
	assert_int_equal(khsm_keysets_parse(KSR, "Example.ORG", &ksr), KHSM_EOK);
	assert_int_equal(ksr.count, 5);
	assert_int_equal(ksr.sets[0].timestamp, 1796000000);
	assert_int_equal(ksr.sets[0].dnskey_count, 1);
	assert_int_equal(ksr.sets[1].dnskey_count, 2);
	assert_int_equal(ksr.sets[4].timestamp, 1800000000);
	assert_int_equal(khsm_keysets_rrsig_count(&ksr), 0);
	assert_int_equal(ksr.sets[0].ksk_count, 0);
	assert_string_equal(ksr.sets[0].dnskeys[0], "256 3 13 m9nPlMwF1gUt/FJwFXj0Ebl4iA2Dtmvc+k646K2i"
	                    "DP2dToV8QiEAYAMlW7A6RFCSf6P1Ugfjxh1CjAuHmX1y7A==");

	assert_int_equal(khsm_keysets_parse(SKR, "example.org.", &skr), KHSM_EOK);
	assert_int_equal(skr.count, 11);
	assert_int_equal(khsm_keysets_rrsig_count(&skr), 11);
	assert_int_equal(skr.sets[0].ksk_count, 1);
	/* RRSIG expiration 20261214005320 of the first set */
	assert_int_equal(skr.sets[0].rrsig_expire, 1796000000 + 14 * 86400);

	const char *ksk[] = { KSK_RDATA };
	assert_int_equal(khsm_skr_check(&ksr, &skr, ksk, 1), KHSM_EOK);

	/* A KSK that is not the card's. */
	const char *other[] = { "257 3 13 AAAA" };
	khsm_err_clear();
	assert_int_equal(khsm_skr_check(&ksr, &skr, other, 1), KHSM_ECRYPTO);
	assert_non_null(strstr(khsm_err_last_detail(), "not the card's KSK"));
	assert_int_equal(khsm_skr_check(&ksr, &skr, other, 0), KHSM_ECRYPTO);

	/* A set without signature. */
	skr.sets[3].rrsig_count = 0;
	assert_int_equal(khsm_skr_check(&ksr, &skr, ksk, 1), KHSM_ECRYPTO);
	assert_non_null(strstr(khsm_err_last_detail(), "no signature"));
	skr.sets[3].rrsig_count = 1;

	/* A KSR set the SKR does not answer, and a different period. */
	ksr.sets[2].timestamp += 1;
	assert_int_equal(khsm_skr_check(&ksr, &skr, ksk, 1), KHSM_ECRYPTO);
	assert_non_null(strstr(khsm_err_last_detail(), "missing from the SKR"));
	ksr.sets[2].timestamp -= 1;
	ksr.sets[4].timestamp += 1;
	assert_int_equal(khsm_skr_check(&ksr, &skr, ksk, 1), KHSM_ECRYPTO);
	assert_non_null(strstr(khsm_err_last_detail(), "the SKR covers"));
	ksr.sets[4].timestamp -= 1;

	/* A ZSK swapped in the SKR. */
	char *saved = skr.sets[0].dnskeys[0];
	skr.sets[0].dnskeys[0] = (char *)"256 3 13 BBBB";
	assert_int_equal(khsm_skr_check(&ksr, &skr, ksk, 1), KHSM_ECRYPTO);
	assert_non_null(strstr(khsm_err_last_detail(), "ZSK the KSR did not ask for"));
	skr.sets[0].dnskeys[0] = saved;
	assert_int_equal(khsm_skr_check(&ksr, &skr, ksk, 1), KHSM_EOK);

	khsm_keysets_clear(&ksr);
	khsm_keysets_clear(&skr);
	assert_null(skr.sets);
}

static void test_parse_offline(void **state)
{
	(void)state;
	/* show-offline output has the same records under other headers. */
	const char text[] =
		";; Offline records for 1795320541 (2026-11-22T04:09:01Z) =========\n"
		"example.com.        \t3600 DNSKEY 257 3 13 (\n"
		"\t\t\t\tEpgTFuULamRQ\n"
		"\t\t\t\t) ; KSK, ECDSAP256SHA256 (256b), id = 37196\n"
		"example.com.        \t3600 RRSIG DNSKEY 13 2 2 20261122040943 (\n"
		"\t\t\t\t20261122023843 37196 example.com.\n"
		"\t\t\t\txU9VIiYECBJo\n"
		"\t\t\t\t)\n";
	khsm_keysets_t s = { 0 };
	assert_int_equal(khsm_keysets_parse(text, "example.com.", &s), KHSM_EOK);
	assert_int_equal(s.count, 1);
	assert_int_equal(s.sets[0].timestamp, 1795320541);
	assert_int_equal(s.sets[0].rrsig_expire, 1795320583);
	khsm_keysets_clear(&s);
	assert_int_equal(khsm_keysets_parse("", "example.com.", &s), KHSM_EOK);
	assert_int_equal(s.count, 0);
}

static void test_parse_errors(void **state)
{
	(void)state;
	const char *bad[] = {
		/* record before any set */
		"example.org. 3600 DNSKEY 256 3 13 AAAA\n",
		/* another zone */
		";; KeySigningRequest 1.0 1 (x) ===\nexample.com. 3600 DNSKEY 256 3 13 AAAA\n",
		/* unknown header */
		";; SomethingElse 1.0 1 (x) ===\n",
		/* unknown version */
		";; KeySigningRequest 2.0 1 (x) ===\n",
		/* unterminated parentheses */
		";; KeySigningRequest 1.0 1 (x) ===\nexample.org. 3600 DNSKEY 256 3 13 ( AAAA\n",
		/* sets out of order */
		";; KeySigningRequest 1.0 5 (x) ===\n;; KeySigningRequest 1.0 4 (x) ===\n",
		/* unexpected type */
		";; SignedKeyResponse 1.0 1 (x) ===\nexample.org. 3600 A 192.0.2.1\n",
		/* bad DNSKEY protocol */
		";; KeySigningRequest 1.0 1 (x) ===\nexample.org. 3600 DNSKEY 256 2 13 AAAA\n",
		/* bad RRSIG time */
		";; SignedKeyResponse 1.0 1 (x) ===\nexample.org. 3600 RRSIG DNSKEY 13 2 3600 2026x (\n"
		" 20261129232320 3179 example.org. AAAA )\n",
		/* no file is read on the KSR's say */
		";; KeySigningRequest 1.0 1 (x) ===\n$INCLUDE /etc/passwd\n",
		/* a record after the trailer */
		";; KeySigningRequest 1.0 1 (x) ===\n;; KeySigningRequest 1.0 generated at x by Knot DNS 3.2.6\n"
		"example.org. 3600 DNSKEY 256 3 13 AAAA\n",
		/* a DNSKEY without a key */
		";; KeySigningRequest 1.0 1 (x) ===\nexample.org. 3600 DNSKEY 256 3 13\n",
		/* set after the trailer */
		";; KeySigningRequest 1.0 generated at x by Knot DNS 3.2.6\n;; KeySigningRequest 1.0 1 (x) ===\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		khsm_keysets_t s = { 0 };
		khsm_err_clear();
		assert_int_equal(khsm_keysets_parse(bad[i], "example.org.", &s), KHSM_EPARSE);
		assert_null(s.sets);
		assert_non_null(strstr(khsm_err_last_detail(), "line "));
	}
}

/* A DNSKEY without TTL has none (-1): the signer then refuses the set. */
static void test_parse_ttl(void **state)
{
	(void)state;
	khsm_keysets_t s = { 0 };
	const char *text = ";; KeySigningRequest 1.0 1 (x) ===\n"
		"example.org. IN DNSKEY 256 3 13 ( AAAA\n BBBB ) ; ZSK\n"
		";; KeySigningRequest 1.0 2 (x) ===\n"
		"EXAMPLE.org 7200 IN DNSKEY 257 3 13 AAAABBBB\n";
	assert_int_equal(khsm_keysets_parse(text, "example.org.", &s), KHSM_EOK);
	assert_int_equal(s.count, 2);
	assert_int_equal(s.sets[0].dnskey_ttl, -1);
	assert_int_equal(s.sets[0].dnskey_count, 1);
	assert_string_equal(s.sets[0].dnskeys[0], "256 3 13 AAAABBBB");
	assert_int_equal(s.sets[0].ksk_count, 0);
	assert_int_equal(s.sets[1].dnskey_ttl, 7200);
	assert_int_equal(s.sets[1].ksk_count, 1);
	assert_string_equal(s.sets[1].dnskeys[0], "257 3 13 AAAABBBB");
	khsm_keysets_clear(&s);
}

static void test_file_stem(void **state)
{
	(void)state;
	char *s = NULL;
	assert_int_equal(khsm_ceremony_file_stem("example.com.", &s), KHSM_EOK);
	assert_string_equal(s, "example.com");
	free(s);
	assert_int_equal(khsm_ceremony_file_stem(".", &s), KHSM_EOK);
	assert_string_equal(s, "root");
	free(s);
	s = NULL;
	assert_int_equal(khsm_ceremony_file_stem("a/b.", &s), KHSM_EINVAL);
	assert_null(s);
}

/* DNSKEY rdata text to wire and back, as the card signer and the KSK-side
 * key match use it. */
static void test_dnskey_text(void **state)
{
	(void)state;
	dnssec_binary_t wire = { 0 };
	assert_int_equal(khsm_keyset_dnskey_wire(KSK_RDATA, &wire), KHSM_EOK);
	assert_int_equal(wire.size, 4 + 64);
	assert_int_equal(wire.data[0], 1);
	assert_int_equal(wire.data[1], 1);
	assert_int_equal(wire.data[2], 3);
	assert_int_equal(wire.data[3], 13);
	dnssec_key_t *key = NULL;
	assert_int_equal(dnssec_key_new(&key), DNSSEC_EOK);
	assert_int_equal(dnssec_key_set_rdata(key, &wire), DNSSEC_EOK);
	char *text = NULL;
	assert_int_equal(khsm_keyset_dnskey_text(key, &text), KHSM_EOK);
	assert_string_equal(text, KSK_RDATA);
	free(text);
	dnssec_key_free(key);
	dnssec_binary_free(&wire);

	assert_int_equal(khsm_keyset_dnskey_wire("257 3 13 !!!", &wire), KHSM_EPARSE);
	assert_int_equal(khsm_keyset_dnskey_wire("257 3", &wire), KHSM_EPARSE);
	assert_int_equal(khsm_keyset_dnskey_text(NULL, &text), KHSM_EINVAL);
}

/* The KSK-side configuration for keymgr naming the PIN handoff: the
 * keystore config replaced where knotc exported it, nothing else changed. */
static void test_ksk_conf_pin(void **state)
{
	(void)state;
	const char *config = "pkcs11:token=knot;id=%01 /usr/lib/opensc-pkcs11.so";
	const char *text = "keystore:\n  - id: card\n    backend: pkcs11\n"
	                   "    config: \"pkcs11:token=knot;id=%01 /usr/lib/opensc-pkcs11.so\"\n"
	                   "zone:\n  - domain: example.com.\n";
	char *new_config = NULL, *new_text = NULL;
	assert_int_equal(khsm_ceremony_ksk_conf_pin("/etc/knot/knot-hsm-ksk.conf", text, "card", config,
	                                            "/proc/42/fd/3", &new_config, &new_text), KHSM_EOK);
	assert_string_equal(new_config,
	                    "pkcs11:token=knot;id=%01;pin-source=%2Fproc%2F42%2Ffd%2F3 /usr/lib/opensc-pkcs11.so");
	assert_string_equal(new_text, "keystore:\n  - id: card\n    backend: pkcs11\n"
	                    "    config: \"pkcs11:token=knot;id=%01;pin-source=%2Fproc%2F42%2Ffd%2F3 "
	                    "/usr/lib/opensc-pkcs11.so\"\n"
	                    "zone:\n  - domain: example.com.\n");
	free(new_config);
	free(new_text);

	/* A path with a space or a semicolon is percent-encoded in the URI (p11-kit's encoding). */
	assert_int_equal(khsm_ceremony_ksk_conf_pin("k.conf", text, "card", config, "/tmp/a b;c/pin",
	                                            &new_config, &new_text), KHSM_EOK);
	assert_non_null(strstr(new_config, ";pin-source=%2Ftmp%2Fa%20b%3Bc%2Fpin /usr/lib/"));
	free(new_config);
	free(new_text);

	/* The config written otherwise than knotc exports it: refused, nothing handed over. */
	new_config = new_text = NULL;
	khsm_err_clear();
	assert_int_equal(khsm_ceremony_ksk_conf_pin("k.conf", "keystore: []\n", "card", config,
	                                            "/proc/42/fd/3", &new_config, &new_text), KHSM_ECONFIG);
	assert_null(new_config);
	assert_null(new_text);
	assert_non_null(strstr(khsm_err_last_detail(), "k.conf: the keystore config of card"));
	/* Not a keystore config. */
	assert_int_equal(khsm_ceremony_ksk_conf_pin("k.conf", text, "card", "no-module", "/p",
	                                            &new_config, &new_text), KHSM_ECONFIG);
	assert_null(new_config);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ksr_skr),
		cmocka_unit_test(test_parse_offline),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_ttl),
		cmocka_unit_test(test_file_stem),
		cmocka_unit_test(test_dnskey_text),
		cmocka_unit_test(test_ksk_conf_pin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
