/* Tests of lib/dnskey.c: key tags, DS/CDS/CDNSKEY text, JSON (names: test_dname.c,
 * EPP: test_epp.c). */
#include "test.h"

#include <libdnssec/binary.h>
#include <libdnssec/key.h>
#include <stdio.h>
#include <strings.h>

#include "dnskey.h"
#include "error.h"
#include "json.h"

/* RFC 4034 section 5.4: the DNSKEY of dskey.example.com. (key id = 60485) and its
 * SHA-1 DS; the base64 is split into the RFC's eight lines. RFC 4509 section 2.3
 * gives the SHA-256 DS of the same key. */
static const char RFC4034_KEY[] =
	"256 3 5 AQOeiiR0GOMYkDshWoSKz9Xz fwJr1AYtsmx3TGkJaNXVbfi/ 2pHm822aJ5iI9BMzNXxeYCmZ "
	"DRD99WYwYqUSdjMmmAphXdvx egXd/M5+X7OrzKBaMbCVdFLU Uh6DhweJBjEVv5f2wwjM9Xzc "
	"nOf+EPbtG9DMBmADjFDc2w/r ljwvFw==";
static const char RFC4034_DS_SHA1[] = "2BB183AF5F22588179A53B0A98631FAD1A292118";
static const char RFC4509_DS_SHA256[] =
	"D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A";

/* RFC 6605 section 6, copied from ../shared/vectors/rfc6605-ds.txt (values as
 * BIND's dnssec-dsfromkey prints them). */
static const char RFC6605_P256_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==";
static const char RFC6605_P256_DS2[] =
	"example.net. 3600 IN DS 55648 13 2 b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17";
static const char RFC6605_P384_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 14 xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40";
static const char RFC6605_P384_DS2[] =
	"example.net. 3600 IN DS 10771 14 2 fde87f87d3a32ad8781eb0d79ac02f80d1381cecda3567c2352b4986645c2dd0";
static const char RFC6605_P384_DS4[] =
	"example.net. 3600 IN DS 10771 14 4 72d7b62976ce06438e9c0bf319013cf801f09ecc84b8d7e9495f27e305c6a9b0563a9b5f4d288405c3008a946df983d6";

/* Output of keymgr 3.2.6 for a key made with `keymgr -c knot.conf example.com
 * generate algorithm=13 ksk=yes zsk=no` (PEM keystore): `dnskey`, then `ds`. */
static const char KEYMGR_DNSKEY[] =
	"example.com. DNSKEY 257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==";
static const char KEYMGR_DS[] =
	"example.com. DS 52359 13 2 671269678c49da2d7974b9ee10fd0ddeb3398c12750a8bfc5091775c6f5bb5d0\n"
	"example.com. DS 52359 13 4 638b75e9cb22ac21e0892d541130dd1de83d478e7c012c1832891c16a9140a53543c3139dee8f5fb807cc3de150f7c66\n";

static dnssec_key_t *key_from_text(const char *zone, const char *text)
{
	dnssec_key_t *key = NULL;
	int r = khsm_dnskey_from_text(zone, text, &key);
	if (r != KHSM_EOK) {
		fail_msg("cannot parse '%s': %s (%s)", text, khsm_strerror(r),
		         khsm_err_last_detail() ? khsm_err_last_detail() : "-");
	}
	assert_non_null(key);
	return key;
}

/* Drop " TTL IN" from a vector line to get keymgr's "OWNER TYPE RDATA" form. */
static void strip_ttl_class(const char *in, char *out, size_t size)
{
	const char *tail = strstr(in, " 3600 IN ");
	assert_non_null(tail);
	snprintf(out, size, "%.*s %s", (int)(tail - in), in, tail + strlen(" 3600 IN "));
}

static void assert_ds_line(const dnssec_key_t *key, uint8_t type, const char *expected)
{
	char *line = NULL;
	assert_int_equal(khsm_ds_line(key, type, &line), KHSM_EOK);
	assert_string_equal(line, expected);
	free(line);
}

static void test_rfc4034_example(void **state)
{
	(void)state;
	dnssec_key_t *key = key_from_text("dskey.example.com.", RFC4034_KEY);

	khsm_dnskey_info_t info;
	assert_int_equal(khsm_dnskey_info(key, &info), KHSM_EOK);
	assert_int_equal(info.key_tag, 60485);
	assert_int_equal(info.flags, 256);
	assert_int_equal(info.protocol, 3);
	assert_int_equal(info.algorithm, 5);
	assert_string_equal(info.algorithm_name, "RSASHA1");
	assert_int_equal(info.size_bits, 1024);
	assert_false(info.sep);

	char *hex = NULL;
	assert_int_equal(khsm_ds_digest(key, 1, &hex), KHSM_EOK);
	assert_true(strcasecmp(hex, RFC4034_DS_SHA1) == 0);
	free(hex);
	hex = NULL;
	assert_int_equal(khsm_ds_digest(key, 2, &hex), KHSM_EOK);
	assert_true(strcasecmp(hex, RFC4509_DS_SHA256) == 0);
	free(hex);

	assert_ds_line(key, 1, "dskey.example.com. DS 60485 5 1 2bb183af5f22588179a53b0a98631fad1a292118");
	dnssec_key_free(key);
}

static void test_rfc6605_vectors(void **state)
{
	(void)state;
	char expected[512];
	dnssec_key_t *p256 = key_from_text(NULL, RFC6605_P256_KEY);
	dnssec_key_t *p384 = key_from_text(NULL, RFC6605_P384_KEY);

	khsm_dnskey_info_t info;
	assert_int_equal(khsm_dnskey_info(p256, &info), KHSM_EOK);
	assert_int_equal(info.key_tag, 55648);
	assert_string_equal(info.algorithm_name, "ECDSAP256SHA256");
	assert_int_equal(info.size_bits, 256);
	assert_true(info.sep);
	assert_int_equal(khsm_dnskey_info(p384, &info), KHSM_EOK);
	assert_int_equal(info.key_tag, 10771);
	assert_string_equal(info.algorithm_name, "ECDSAP384SHA384");
	assert_int_equal(info.size_bits, 384);

	strip_ttl_class(RFC6605_P256_DS2, expected, sizeof(expected));
	assert_ds_line(p256, 2, expected);
	strip_ttl_class(RFC6605_P384_DS2, expected, sizeof(expected));
	assert_ds_line(p384, 2, expected);
	strip_ttl_class(RFC6605_P384_DS4, expected, sizeof(expected));
	assert_ds_line(p384, 4, expected);

	/* The DNSKEY prints back as it was read, without TTL and class. */
	char *line = NULL;
	assert_int_equal(khsm_dnskey_line(p256, &line), KHSM_EOK);
	strip_ttl_class(RFC6605_P256_KEY, expected, sizeof(expected));
	assert_string_equal(line, expected);
	free(line);

	dnssec_key_free(p256);
	dnssec_key_free(p384);
}

static void test_keymgr_format(void **state)
{
	(void)state;
	dnssec_key_t *key = key_from_text("Example.COM", KEYMGR_DNSKEY);
	char *text = NULL;

	assert_int_equal(khsm_dnskey_line(key, &text), KHSM_EOK);
	assert_string_equal(text, KEYMGR_DNSKEY);
	free(text);
	text = NULL;

	assert_int_equal(khsm_ds_lines(key, KHSM_DIGEST_ALL, &text), KHSM_EOK);
	assert_string_equal(text, KEYMGR_DS);
	free(text);
	text = NULL;

	assert_int_equal(khsm_ds_lines(key, KHSM_DIGEST_SHA256, &text), KHSM_EOK);
	assert_string_equal(text, "example.com. DS 52359 13 2 671269678c49da2d7974b9ee10fd0ddeb3398c12750a8bfc5091775c6f5bb5d0\n");
	free(text);
	text = NULL;

	assert_int_equal(khsm_cds_line(key, 2, &text), KHSM_EOK);
	assert_string_equal(text, "example.com. CDS 52359 13 2 671269678c49da2d7974b9ee10fd0ddeb3398c12750a8bfc5091775c6f5bb5d0");
	free(text);
	text = NULL;

	assert_int_equal(khsm_cdnskey_line(key, &text), KHSM_EOK);
	assert_string_equal(text, "example.com. CDNSKEY 257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==");
	free(text);
	text = NULL;

	assert_int_equal(khsm_dnskey_zone(key, &text), KHSM_EOK);
	assert_string_equal(text, "example.com.");
	free(text);

	dnssec_key_free(key);
}

static void test_from_rdata(void **state)
{
	(void)state;
	dnssec_key_t *ref = key_from_text(NULL, KEYMGR_DNSKEY);
	dnssec_binary_t rdata = { 0 };
	assert_int_equal(dnssec_key_get_rdata(ref, &rdata), 0);
	assert_int_equal(rdata.size, 4 + 64);

	dnssec_key_t *key = NULL;
	assert_int_equal(khsm_dnskey_from_rdata("EXAMPLE.com", rdata.data, rdata.size, &key), KHSM_EOK);
	char *line = NULL;
	assert_int_equal(khsm_dnskey_line(key, &line), KHSM_EOK);
	assert_string_equal(line, KEYMGR_DNSKEY);
	free(line);
	dnssec_key_free(key);

	uint8_t buf[4 + 64];
	memcpy(buf, rdata.data, sizeof(buf));
	key = NULL;
	assert_int_equal(khsm_dnskey_from_rdata("example.com", buf, 4, &key), KHSM_EPARSE);
	assert_int_equal(khsm_dnskey_from_rdata(NULL, buf, sizeof(buf), &key), KHSM_EINVAL);
	assert_int_equal(khsm_dnskey_from_rdata("a..b", buf, sizeof(buf), &key), KHSM_EINVAL);
	buf[2] = 2; /* protocol must be 3 */
	khsm_err_clear();
	assert_int_equal(khsm_dnskey_from_rdata("example.com", buf, sizeof(buf), &key), KHSM_EPARSE);
	assert_non_null(strstr(khsm_err_last_detail(), "protocol is 2; it must be 3"));
	buf[2] = 3;
	buf[3] = 253; /* PRIVATEDNS */
	khsm_err_clear();
	assert_int_equal(khsm_dnskey_from_rdata("example.com", buf, sizeof(buf), &key), KHSM_ENOTSUP);
	assert_non_null(strstr(khsm_err_last_detail(), "PRIVATEDNS"));
	buf[3] = 13;
	/* a P-256 key is 64 bytes; libdnssec refuses 63 */
	khsm_err_clear();
	assert_int_equal(khsm_dnskey_from_rdata("example.com", buf, sizeof(buf) - 1, &key), KHSM_EPARSE);
	assert_non_null(khsm_err_last_detail());
	assert_null(key);

	dnssec_key_free(ref);
}

static void test_from_text(void **state)
{
	(void)state;
	static const char *const good[] = {
		"example.com. DNSKEY 257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==",
		"example.com. IN 3600 dnskey 257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==\n",
		"EXAMPLE.COM CDNSKEY 257 3 ECDSAP256SHA256 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZT cHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		dnssec_key_t *key = key_from_text("example.com", good[i]);
		khsm_dnskey_info_t info;
		assert_int_equal(khsm_dnskey_info(key, &info), KHSM_EOK);
		assert_int_equal(info.key_tag, 52359);
		dnssec_key_free(key);
	}

	static const struct { const char *zone, *text; int rc; } bad[] = {
		{ "example.org", KEYMGR_DNSKEY, KHSM_EINVAL },                  /* owner is another zone */
		{ NULL, "257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==", KHSM_EINVAL },
		{ "example.com", "257x 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==", KHSM_EPARSE },
		{ "example.com", "65536 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==", KHSM_EPARSE },
		{ "example.com", "257 4 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==", KHSM_EPARSE },
		{ "example.com", "257 3 NOSUCHALG nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==", KHSM_EPARSE },
		{ "example.com", "257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6Ktx!==", KHSM_EPARSE },
		{ "example.com", "257 3 13", KHSM_EPARSE },
		{ "example.com", "", KHSM_EPARSE },
		{ "example.com", "example.com. 3600 3600 DNSKEY 257 3 13 nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==", KHSM_EPARSE },
		{ "example.com", "example.com. DS 52359 13 2 671269678c49da2d7974b9ee10fd0ddeb3398c12750a8bfc5091775c6f5bb5d0", KHSM_EPARSE },
		{ "example.com", "257 3 13 ( nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA== )", KHSM_EPARSE },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		dnssec_key_t *key = NULL;
		khsm_err_clear();
		int r = khsm_dnskey_from_text(bad[i].zone, bad[i].text, &key);
		if (r != bad[i].rc) {
			fail_msg("'%s': got %d, want %d", bad[i].text, r, bad[i].rc);
		}
		assert_null(key);
		assert_non_null(khsm_err_last_detail());
	}
}

/* Found by tests/fuzz/fuzz_dnskey_text: an owner starting with a digit was
 * taken for the flags field, so the DNSKEY line knot-hsm (and keymgr) prints
 * for a reverse zone did not read back. */
static void test_from_text_numeric_owner(void **state)
{
	(void)state;
	static const char B64[] =
		"nWnpZgXPKHXjLWmBxDn4m98i36ojTq7gZ3gCkNvrtjZTcHh8JjPAPro/Iqua53y/2eubg602jzf4Ht5jn6KtxA==";
	static const struct { const char *zone, *owner_and_type; } cases[] = {
		{ "2.0.192.in-addr.arpa.", "2.0.192.in-addr.arpa. DNSKEY" },
		{ "0/25.2.0.192.in-addr.arpa", "0/25.2.0.192.in-addr.arpa. 3600 IN DNSKEY" },
		{ "4example.com", "4example.com. IN 3600 CDNSKEY" },
		{ "123", "123 DNSKEY" },           /* an all-digit owner */
		{ "123", "123. 60 DNSKEY" },
		{ "123", "123 IN DNSKEY" },
	};
	char text[256];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "%s 257 3 13 %s", cases[i].owner_and_type, B64);
		dnssec_key_t *key = key_from_text(NULL, text);
		char *zone = NULL, *expect = NULL;
		assert_int_equal(khsm_dnskey_zone(key, &zone), KHSM_EOK);
		assert_int_equal(khsm_zone_normalize(cases[i].zone, &expect), KHSM_EOK);
		assert_string_equal(zone, expect);

		/* The line we print reads back as the same key. */
		char *line = NULL;
		assert_int_equal(khsm_dnskey_line(key, &line), KHSM_EOK);
		dnssec_key_t *back = key_from_text(NULL, line);
		khsm_dnskey_info_t a, b;
		assert_int_equal(khsm_dnskey_info(key, &a), KHSM_EOK);
		assert_int_equal(khsm_dnskey_info(back, &b), KHSM_EOK);
		assert_int_equal(a.key_tag, b.key_tag);
		dnssec_key_free(back);
		dnssec_key_free(key);
		free(line);
		free(zone);
		free(expect);
	}

	/* Without an owner, the flags are not taken for one. */
	snprintf(text, sizeof(text), "257 3 13 %s", B64);
	dnssec_key_t *key = key_from_text("2.0.192.in-addr.arpa", text);
	dnssec_key_free(key);
}

static void test_digest_names(void **state)
{
	(void)state;
	static const struct { const char *name; khsm_digest_t digest; size_t n; uint8_t t0, t1; } good[] = {
		{ "sha256", KHSM_DIGEST_SHA256, 1, 2, 0 },
		{ "SHA384", KHSM_DIGEST_SHA384, 1, 4, 0 },
		{ "sha1",   KHSM_DIGEST_SHA1,   1, 1, 0 },
		{ "all",    KHSM_DIGEST_ALL,    2, 2, 4 },
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		khsm_digest_t d = (khsm_digest_t)-1;
		assert_int_equal(khsm_digest_from_name(good[i].name, &d), KHSM_EOK);
		assert_int_equal(d, good[i].digest);
		assert_true(strcasecmp(khsm_digest_name(d), good[i].name) == 0);
		uint8_t types[2] = { 0, 0 };
		assert_int_equal(khsm_digest_types(d, types), good[i].n);
		assert_int_equal(types[0], good[i].t0);
		if (good[i].n == 2) {
			assert_int_equal(types[1], good[i].t1);
		}
	}
	/* sha256 is the default: a zeroed option struct selects it */
	assert_int_equal(KHSM_DIGEST_SHA256, 0);

	static const char *const bad[] = { "", "sha-256", "sha256 ", " sha1", "sha", "sha2566", "all,sha1", "2" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		khsm_digest_t d = KHSM_DIGEST_SHA384;
		if (khsm_digest_from_name(bad[i], &d) != KHSM_EINVAL) {
			fail_msg("'%s' was accepted", bad[i]);
		}
		assert_int_equal(d, KHSM_DIGEST_SHA384);
	}
	uint8_t types[2];
	assert_int_equal(khsm_digest_types((khsm_digest_t)42, types), 0);
}

static void test_ds_errors(void **state)
{
	(void)state;
	dnssec_key_t *key = key_from_text(NULL, KEYMGR_DNSKEY);
	char *line = NULL;
	assert_int_equal(khsm_ds_line(key, 3, &line), KHSM_EINVAL);
	assert_int_equal(khsm_ds_line(key, 0, &line), KHSM_EINVAL);
	assert_null(line);
	dnssec_key_free(key);

	/* a key without owner name cannot have a DS */
	dnssec_key_t *ref = key_from_text(NULL, KEYMGR_DNSKEY);
	dnssec_binary_t rdata = { 0 };
	assert_int_equal(dnssec_key_get_rdata(ref, &rdata), 0);
	dnssec_key_t *anon = NULL;
	assert_int_equal(dnssec_key_new(&anon), 0);
	assert_int_equal(dnssec_key_set_rdata(anon, &rdata), 0);
	assert_int_equal(khsm_ds_line(anon, 2, &line), KHSM_EINVAL);
	assert_int_equal(khsm_dnskey_line(anon, &line), KHSM_EINVAL);
	assert_null(line);
	dnssec_key_free(anon);
	dnssec_key_free(ref);
}

static size_t count_substr(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
		n++;
	}
	return n;
}

static void test_json(void **state)
{
	(void)state;
	dnssec_key_t *p256 = key_from_text(NULL, RFC6605_P256_KEY);
	char *json = NULL;
	assert_int_equal(khsm_dnskey_json(p256, KHSM_DIGEST_SHA256, &json), KHSM_EOK);
	assert_string_equal(json,
		"{\"zone\":\"example.net.\",\"key_tag\":55648,\"algorithm\":13,"
		"\"algorithm_name\":\"ECDSAP256SHA256\",\"flags\":257,"
		"\"dnskey\":\"example.net. DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==\","
		"\"ds\":[{\"digest_type\":2,"
		"\"digest\":\"b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17\","
		"\"text\":\"example.net. DS 55648 13 2 b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17\"}]}");
	free(json);
	json = NULL;

	dnssec_key_t *p384 = key_from_text(NULL, RFC6605_P384_KEY);
	assert_int_equal(khsm_dnskey_json(p384, KHSM_DIGEST_ALL, &json), KHSM_EOK);
	assert_non_null(strstr(json, "\"ds\":[{\"digest_type\":2,\"digest\":\"fde87f87"));
	assert_non_null(strstr(json, "},{\"digest_type\":4,\"digest\":\"72d7b629"));
	assert_int_equal(count_substr(json, "\"digest_type\""), 2);
	assert_string_equal(json + strlen(json) - 4, "\"}]}");
	free(json);
	json = NULL;

	assert_int_equal(khsm_dnskey_json(p384, (khsm_digest_t)42, &json), KHSM_EINVAL);
	assert_null(json);
	dnssec_key_free(p256);
	dnssec_key_free(p384);
}

static void test_algorithm_names(void **state)
{
	(void)state;
	static const struct { const char *name; int number; } names[] = {
		{ "rsasha256", 8 }, { "rsasha512", 10 }, { "ecdsap256sha256", 13 },
		{ "ecdsap384sha384", 14 }, { "ed25519", 15 }, { "ed448", 16 },
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int alg = 0;
		assert_int_equal(khsm_algorithm_from_name(names[i].name, &alg), KHSM_EOK);
		assert_int_equal(alg, names[i].number);
		assert_string_equal(khsm_algorithm_name(alg), names[i].name);
	}
	int alg = 0;
	assert_int_equal(khsm_algorithm_from_name("ECDSAP256SHA256", &alg), KHSM_EOK);
	assert_int_equal(alg, 13);
	khsm_err_clear();
	alg = -1;
	assert_int_equal(khsm_algorithm_from_name("dsa", &alg), KHSM_EINVAL);
	assert_int_equal(alg, -1);
	assert_non_null(strstr(khsm_err_last_detail(), "unknown algorithm 'dsa'"));
	assert_int_equal(khsm_algorithm_from_name(NULL, &alg), KHSM_EINVAL);
	assert_null(khsm_algorithm_name(5));
}

static void test_pubkey_base64(void **state)
{
	(void)state;
	dnssec_key_t *p256 = key_from_text(NULL, RFC6605_P256_KEY);
	char *b64 = NULL;
	assert_int_equal(khsm_dnskey_pubkey_base64(p256, &b64), KHSM_EOK);
	assert_string_equal(b64, "GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==");
	free(b64);
	assert_int_equal(khsm_dnskey_pubkey_base64(NULL, &b64), KHSM_EINVAL);
	dnssec_key_free(p256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4034_example),
		cmocka_unit_test(test_rfc6605_vectors),
		cmocka_unit_test(test_keymgr_format),
		cmocka_unit_test(test_from_rdata),
		cmocka_unit_test(test_from_text),
		cmocka_unit_test(test_from_text_numeric_owner),
		cmocka_unit_test(test_digest_names),
		cmocka_unit_test(test_ds_errors),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_algorithm_names),
		cmocka_unit_test(test_pubkey_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
