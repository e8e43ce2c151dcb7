/* Unit tests of lib/uri.c: RFC 7512 examples, awkward labels, Knot config. */
#include "test.h"

#include "lib/error.h"
#include "lib/uri.h"

/* RFC 7512 section 3.3 examples parse, and the attributes come out decoded. */
static void test_rfc7512_examples(void **state)
{
	(void)state;
	static const char *const EXAMPLES[] = {
		"pkcs11:",
		"pkcs11:object=my-pubkey;type=public",
		"pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
		"pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;"
		"manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;"
		"type=cert;id=%69%95%3E%5C%F4%BD%EC%91;serial=?pin-source=file:/etc/token_pin",
		"pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
		"pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
		"pkcs11:token=Software%20PKCS%2311%20softtoken;manufacturer=Snake%20Oil,%20Inc.?pin-value=the-pin",
		"pkcs11:slot-description=Sun%20Metaslot",
		"pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;library-description=Soft%20Token%20Library;library-version=1.23",
		"pkcs11:token=My%20token%25%20created%20by%20Joe;library-version=3;id=%01%02%03%Ba%dd%Ef%08;object=my-certificate;type=cert",
		"pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
		"pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;object=my-certificate;type=cert",
		"pkcs11:token=my-token;object=my-certificate;type=cert;vendor-aaa=value-a?pin-source=file:/etc/token_pin&vendor-bbb=value-b",
	};
	for (size_t i = 0; i < sizeof(EXAMPLES) / sizeof(EXAMPLES[0]); i++) {
		khsm_uri_t a = { 0 };
		assert_int_equal(khsm_uri_parse(EXAMPLES[i], &a), KHSM_EOK);
		khsm_uri_clear(&a);
	}

	khsm_uri_t a = { 0 };
	assert_int_equal(khsm_uri_parse(EXAMPLES[3], &a), KHSM_EOK);
	assert_string_equal(a.token, "The Software PKCS#11 Softtoken");
	assert_string_equal(a.manufacturer, "Snake Oil, Inc.");
	assert_string_equal(a.model, "1.0");
	assert_string_equal(a.object, "my-certificate");
	static const uint8_t ID[] = { 0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91 };
	assert_int_equal(a.id_len, sizeof(ID));
	assert_memory_equal(a.id, ID, sizeof(ID));
	assert_string_equal(a.pin_source, "file:/etc/token_pin");
	khsm_uri_clear(&a);
	assert_null(a.token);

	assert_int_equal(khsm_uri_parse(EXAMPLES[1], &a), KHSM_EOK);
	assert_int_equal(a.type, KHSM_URI_TYPE_PUBLIC);
	assert_string_equal(a.object, "my-pubkey");
	khsm_uri_clear(&a);

	assert_int_equal(khsm_uri_parse(EXAMPLES[6], &a), KHSM_EOK);
	assert_string_equal(a.pin_value, "the-pin");
	khsm_uri_clear(&a);

	assert_int_equal(khsm_uri_parse(EXAMPLES[10], &a), KHSM_EOK);
	assert_string_equal(a.token, "A name with a substring %;");
	khsm_uri_clear(&a);

	/* 34 bytes do not fit CK_TOKEN_INFO.label: p11-kit keeps no token label,
	 * so such a URI can never select a token by mistake through us. */
	assert_int_equal(khsm_uri_parse(EXAMPLES[11], &a), KHSM_EOK);
	assert_null(a.token);
	khsm_uri_clear(&a);
}

static void test_parse_rejects(void **state)
{
	(void)state;
	khsm_uri_t a = { 0 };
	assert_int_equal(khsm_uri_parse("http://example.com/", &a), KHSM_EPARSE);
	assert_int_equal(khsm_uri_parse("pkcs11:token=%zz", &a), KHSM_EPARSE);
	assert_int_equal(khsm_uri_parse("pkcs11:id=%0", &a), KHSM_EPARSE);
	assert_int_equal(khsm_uri_parse(NULL, &a), KHSM_EINVAL);
}

/* Every byte outside the unreserved set is percent-encoded, and the result
 * parses back to the same label. */
static void test_awkward_labels(void **state)
{
	(void)state;
	static const struct { const char *label; const char *uri; } CASES[] = {
		{ "SmartCard-HSM (UserPIN)", "pkcs11:token=SmartCard-HSM%20%28UserPIN%29" },
		{ "a/b", "pkcs11:token=a%2Fb" },
		{ "a#b", "pkcs11:token=a%23b" },
		{ "100%", "pkcs11:token=100%25" },
		{ "a;b", "pkcs11:token=a%3Bb" },
		{ "a?b", "pkcs11:token=a%3Fb" },
		{ "a=b&c", "pkcs11:token=a%3Db%26c" },
		{ "Nitrokey \xc5\xbdlu\xc5\xa5", "pkcs11:token=Nitrokey%20%C5%BDlu%C5%A5" },
		{ "x", "pkcs11:token=x" },
	};
	for (size_t i = 0; i < sizeof(CASES) / sizeof(CASES[0]); i++) {
		khsm_uri_t in = { .token = (char *)CASES[i].label };
		char *uri = NULL;
		assert_int_equal(khsm_uri_format(&in, &uri), KHSM_EOK);
		assert_string_equal(uri, CASES[i].uri);
		for (const char *p = uri + strlen("pkcs11:"); *p; p++) {
			assert_non_null(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                       "0123456789-._~%=", *p));
		}
		khsm_uri_t back = { 0 };
		assert_int_equal(khsm_uri_parse(uri, &back), KHSM_EOK);
		assert_string_equal(back.token, CASES[i].label);
		khsm_uri_clear(&back);
		free(uri);
	}
}

static void test_object_uri(void **state)
{
	(void)state;
	uint8_t id[] = { 0xc9, 0xcd, 0x14 };
	khsm_uri_t in = { .token = "SmartCard-HSM (UserPIN)", .serial = "DECC0100509",
	                  .object = "example.com. KSK", .id = id, .id_len = sizeof(id),
	                  .type = KHSM_URI_TYPE_PRIVATE };
	char *uri = NULL;
	assert_int_equal(khsm_uri_format(&in, &uri), KHSM_EOK);
	khsm_uri_t back = { 0 };
	assert_int_equal(khsm_uri_parse(uri, &back), KHSM_EOK);
	assert_string_equal(back.token, in.token);
	assert_string_equal(back.serial, in.serial);
	assert_string_equal(back.object, in.object);
	assert_int_equal(back.id_len, sizeof(id));
	assert_memory_equal(back.id, id, sizeof(id));
	assert_int_equal(back.type, KHSM_URI_TYPE_PRIVATE);
	assert_non_null(strstr(uri, "object=example.com.%20KSK"));
	assert_non_null(strstr(uri, "id=%C9%CD%14"));
	khsm_uri_clear(&back);
	free(uri);

	/* Longer than the 32 bytes of CK_TOKEN_INFO.label: refused, not truncated. */
	khsm_uri_t big = { .token = "0123456789012345678901234567890123" };
	assert_int_equal(khsm_uri_format(&big, &uri), KHSM_ERANGE);
}

static void test_keystore_config(void **state)
{
	(void)state;
	char *config = NULL;
	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=SmartCard-HSM%20%28UserPIN%29",
	                 "/etc/knot/card pin", NULL, "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
	                 &config), KHSM_EOK);
	assert_string_equal(config, "pkcs11:token=SmartCard-HSM%20%28UserPIN%29;"
	                    "pin-source=%2Fetc%2Fknot%2Fcard%20pin "
	                    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");

	/* Knot splits at the first space: the URI must come back whole. */
	char *uri = NULL, *module = NULL;
	assert_int_equal(khsm_uri_split_config(config, &uri, &module), KHSM_EOK);
	assert_string_equal(module, "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");
	khsm_uri_t a = { 0 };
	assert_int_equal(khsm_uri_parse(uri, &a), KHSM_EOK);
	assert_string_equal(a.token, "SmartCard-HSM (UserPIN)");
	assert_string_equal(a.pin_source, "/etc/knot/card pin");
	khsm_uri_clear(&a);
	free(uri);
	free(module);
	free(config);

	/* Knot appends ";id=..." to the URI; the pin source must survive that. */
	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=t", "/p", NULL, "/m.so", &config), KHSM_EOK);
	char *with_id = NULL;
	assert_true(asprintf(&with_id, "%.*s;id=%%01%%02", (int)(strchr(config, ' ') - config), config) > 0);
	assert_int_equal(khsm_uri_parse(with_id, &a), KHSM_EOK);
	assert_string_equal(a.pin_source, "/p");
	assert_int_equal(a.id_len, 2);
	khsm_uri_clear(&a);
	free(with_id);
	free(config);

	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=t", NULL, "12;34", "/m.so", &config), KHSM_EOK);
	assert_string_equal(config, "pkcs11:token=t;pin-value=12%3B34 /m.so");
	free(config);

	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=t", NULL, NULL, "/m.so", &config), KHSM_EOK);
	assert_string_equal(config, "pkcs11:token=t /m.so");
	free(config);

	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=a b", NULL, NULL, "/m.so", &config), KHSM_EINVAL);
	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=t", NULL, NULL, "m.so", &config), KHSM_EINVAL);
	assert_int_equal(khsm_uri_keystore_config("pkcs11:token=t", "/a", "b", "/m.so", &config), KHSM_EINVAL);
	assert_int_equal(khsm_uri_split_config("pkcs11:token=t", &uri, &module), KHSM_ECONFIG);

	/* The classic mistake: an unencoded label splits inside the URI. */
	assert_int_equal(khsm_uri_split_config("pkcs11:token=SmartCard-HSM (UserPIN) /usr/lib/m.so",
	                                       &uri, &module), KHSM_EOK);
	assert_string_equal(uri, "pkcs11:token=SmartCard-HSM");
	assert_string_equal(module, "(UserPIN) /usr/lib/m.so");
	free(uri);
	free(module);
}

static void test_unpad(void **state)
{
	(void)state;
	char out[33];
	khsm_label_unpad((const unsigned char *)"SmartCard-HSM (UserPIN)         ", 32, out);
	assert_string_equal(out, "SmartCard-HSM (UserPIN)");
	khsm_label_unpad((const unsigned char *)"                                ", 32, out);
	assert_string_equal(out, "");
	khsm_label_unpad((const unsigned char *)" lead", 5, out);
	assert_string_equal(out, " lead");
}

static void test_hex(void **state)
{
	(void)state;
	uint8_t *bin = NULL;
	size_t len = 0;
	assert_int_equal(khsm_hex_parse("a1B2", &bin, &len), KHSM_EOK);
	assert_int_equal(len, 2);
	assert_int_equal(bin[0], 0xa1);
	assert_int_equal(bin[1], 0xb2);
	free(bin);
	assert_int_equal(khsm_hex_parse("a1:b2:c3", &bin, &len), KHSM_EOK);
	assert_int_equal(len, 3);
	assert_int_equal(bin[2], 0xc3);
	free(bin);
	assert_int_equal(khsm_hex_parse("%a1%b2", &bin, &len), KHSM_EOK);
	assert_int_equal(len, 2);
	char *hex = NULL;
	assert_int_equal(khsm_hex_format(bin, len, &hex), KHSM_EOK);
	assert_string_equal(hex, "a1b2");
	free(hex);
	free(bin);

	static const char *const BAD[] = { "", "a", "zz", "a1:", ":a1", "a1 ", "0x01", "a1::b2" };
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		bin = NULL;
		assert_int_equal(khsm_hex_parse(BAD[i], &bin, &len), KHSM_EINVAL);
		assert_null(bin);
	}
}

/* One card whatever the PIN source; the module only when asked (the guard). */
static void test_card_name(void **state)
{
	(void)state;
	const char *direct = "pkcs11:token=Card%20A;serial=123;pin-source=%2Fa.pin /usr/lib/opensc-pkcs11.so";
	const char *guard = "pkcs11:token=Card%20A;serial=123;pin-source=%2Fb.pin /usr/lib/guard.so";
	const char *other = "pkcs11:token=Card%20B;serial=123 /usr/lib/opensc-pkcs11.so";
	char *a = NULL, *b = NULL, *c = NULL;
	assert_int_equal(khsm_uri_card_name(direct, false, &a), KHSM_EOK);
	assert_int_equal(khsm_uri_card_name(guard, false, &b), KHSM_EOK);
	assert_int_equal(khsm_uri_card_name(other, false, &c), KHSM_EOK);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_null(strstr(a, "pin"));
	free(a);
	free(b);
	assert_int_equal(khsm_uri_card_name(direct, true, &a), KHSM_EOK);
	assert_int_equal(khsm_uri_card_name(guard, true, &b), KHSM_EOK);
	assert_string_not_equal(a, b);
	assert_non_null(strstr(b, " /usr/lib/guard.so"));
	free(a);
	free(b);
	free(c);
	assert_int_equal(khsm_uri_card_name("pkcs11:token=t", false, &a), KHSM_ECONFIG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc7512_examples),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_awkward_labels),
		cmocka_unit_test(test_object_uri),
		cmocka_unit_test(test_keystore_config),
		cmocka_unit_test(test_unpad),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_card_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
