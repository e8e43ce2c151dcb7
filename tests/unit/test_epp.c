/* Tests of lib/epp.c: RFC 5910 secDNS-1.1 fragments and XML escaping. */
#include "test.h"

#include <ctype.h>
#include <libdnssec/key.h>
#include <stdio.h>
#include <string.h>

#include "dnskey.h"
#include "epp.h"
#include "error.h"

/* RFC 6605 section 6 (as in test_dnskey.c). */
static const char RFC6605_P256_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==";
static const char RFC6605_P384_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 14 xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40";

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

static size_t count_substr(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
		n++;
	}
	return n;
}

static const char EPP_DS[] =
	"<secDNS:create xmlns:secDNS=\"urn:ietf:params:xml:ns:secDNS-1.1\">\n"
	"  <secDNS:dsData>\n"
	"    <secDNS:keyTag>55648</secDNS:keyTag>\n"
	"    <secDNS:alg>13</secDNS:alg>\n"
	"    <secDNS:digestType>2</secDNS:digestType>\n"
	"    <secDNS:digest>B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17</secDNS:digest>\n"
	"  </secDNS:dsData>\n"
	"</secDNS:create>\n";

static const char EPP_DS_KEYDATA[] =
	"<secDNS:create xmlns:secDNS=\"urn:ietf:params:xml:ns:secDNS-1.1\">\n"
	"  <secDNS:dsData>\n"
	"    <secDNS:keyTag>55648</secDNS:keyTag>\n"
	"    <secDNS:alg>13</secDNS:alg>\n"
	"    <secDNS:digestType>2</secDNS:digestType>\n"
	"    <secDNS:digest>B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17</secDNS:digest>\n"
	"    <secDNS:keyData>\n"
	"      <secDNS:flags>257</secDNS:flags>\n"
	"      <secDNS:protocol>3</secDNS:protocol>\n"
	"      <secDNS:alg>13</secDNS:alg>\n"
	"      <secDNS:pubKey>GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==</secDNS:pubKey>\n"
	"    </secDNS:keyData>\n"
	"  </secDNS:dsData>\n"
	"</secDNS:create>\n";

static const char EPP_KEYDATA[] =
	"<secDNS:create xmlns:secDNS=\"urn:ietf:params:xml:ns:secDNS-1.1\">\n"
	"  <secDNS:keyData>\n"
	"    <secDNS:flags>257</secDNS:flags>\n"
	"    <secDNS:protocol>3</secDNS:protocol>\n"
	"    <secDNS:alg>13</secDNS:alg>\n"
	"    <secDNS:pubKey>GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==</secDNS:pubKey>\n"
	"  </secDNS:keyData>\n"
	"  <secDNS:keyData>\n"
	"    <secDNS:flags>257</secDNS:flags>\n"
	"    <secDNS:protocol>3</secDNS:protocol>\n"
	"    <secDNS:alg>14</secDNS:alg>\n"
	"    <secDNS:pubKey>xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40</secDNS:pubKey>\n"
	"  </secDNS:keyData>\n"
	"</secDNS:create>\n";

static void test_epp(void **state)
{
	(void)state;
	dnssec_key_t *p256 = key_from_text(NULL, RFC6605_P256_KEY);
	dnssec_key_t *p384 = key_from_text(NULL, RFC6605_P384_KEY);
	const dnssec_key_t *one[] = { p256 };
	const dnssec_key_t *two[] = { p256, p384 };
	char *xml = NULL;

	assert_int_equal(khsm_epp_secdns_create(one, 1, KHSM_DIGEST_SHA256, KHSM_EPP_DS, &xml), KHSM_EOK);
	assert_string_equal(xml, EPP_DS);
	free(xml);
	xml = NULL;

	assert_int_equal(khsm_epp_secdns_create(one, 1, KHSM_DIGEST_SHA256, KHSM_EPP_DS_KEYDATA, &xml), KHSM_EOK);
	assert_string_equal(xml, EPP_DS_KEYDATA);
	free(xml);
	xml = NULL;

	assert_int_equal(khsm_epp_secdns_create(two, 2, KHSM_DIGEST_ALL, KHSM_EPP_KEYDATA, &xml), KHSM_EOK);
	assert_string_equal(xml, EPP_KEYDATA);
	free(xml);
	xml = NULL;

	/* two keys x (SHA-256, SHA-384): four dsData, in key then digest order */
	assert_int_equal(khsm_epp_secdns_create(two, 2, KHSM_DIGEST_ALL, KHSM_EPP_DS, &xml), KHSM_EOK);
	assert_int_equal(count_substr(xml, "<secDNS:dsData>"), 4);
	assert_int_equal(count_substr(xml, "</secDNS:dsData>"), 4);
	assert_int_equal(count_substr(xml, "<secDNS:keyData>"), 0);
	const char *a = strstr(xml, "<secDNS:keyTag>55648<");
	const char *b = strstr(xml, "<secDNS:keyTag>10771<");
	assert_non_null(a);
	assert_non_null(b);
	assert_true(a < b);
	assert_non_null(strstr(xml, "<secDNS:digest>72D7B62976CE06438E9C0BF319013CF801F09ECC84B8D7E9495F27E305C6A9B0563A9B5F4D288405C3008A946DF983D6</secDNS:digest>"));
	free(xml);
	xml = NULL;

	assert_int_equal(khsm_epp_secdns_create(one, 0, KHSM_DIGEST_SHA256, KHSM_EPP_DS, &xml), KHSM_EINVAL);
	assert_int_equal(khsm_epp_secdns_create(one, 1, (khsm_digest_t)42, KHSM_EPP_DS, &xml), KHSM_EINVAL);
	assert_null(xml);

	dnssec_key_free(p256);
	dnssec_key_free(p384);
}

/* A rollover's update: remove the P-384 key's DS, add the P-256 key's
 * (rem before add, as RFC 5910's updateType orders them). */
static const char EPP_UPDATE[] =
	"<secDNS:update xmlns:secDNS=\"urn:ietf:params:xml:ns:secDNS-1.1\">\n"
	"  <secDNS:rem>\n"
	"    <secDNS:dsData>\n"
	"      <secDNS:keyTag>10771</secDNS:keyTag>\n"
	"      <secDNS:alg>14</secDNS:alg>\n"
	"      <secDNS:digestType>2</secDNS:digestType>\n"
	"      <secDNS:digest>%s</secDNS:digest>\n"
	"    </secDNS:dsData>\n"
	"  </secDNS:rem>\n"
	"  <secDNS:add>\n"
	"    <secDNS:dsData>\n"
	"      <secDNS:keyTag>55648</secDNS:keyTag>\n"
	"      <secDNS:alg>13</secDNS:alg>\n"
	"      <secDNS:digestType>2</secDNS:digestType>\n"
	"      <secDNS:digest>B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17</secDNS:digest>\n"
	"    </secDNS:dsData>\n"
	"  </secDNS:add>\n"
	"</secDNS:update>\n";

static void test_epp_update(void **state)
{
	(void)state;
	dnssec_key_t *p256 = key_from_text("example.net.", RFC6605_P256_KEY);
	dnssec_key_t *p384 = key_from_text("example.net.", RFC6605_P384_KEY);
	const dnssec_key_t *add[] = { p256 }, *rem[] = { p384 };
	char *hex = NULL, *xml = NULL, *want = NULL;
	assert_int_equal(khsm_ds_digest(p384, 2, &hex), KHSM_EOK);
	for (char *p = hex; *p; p++) *p = (char)toupper((unsigned char)*p);
	assert_true(asprintf(&want, EPP_UPDATE, hex) > 0);
	assert_int_equal(khsm_epp_secdns_update(add, 1, rem, 1, KHSM_DIGEST_SHA256, &xml), KHSM_EOK);
	assert_string_equal(xml, want);
	free(xml);
	/* add only: no <secDNS:rem> element at all */
	assert_int_equal(khsm_epp_secdns_update(add, 1, NULL, 0, KHSM_DIGEST_SHA256, &xml), KHSM_EOK);
	assert_int_equal(count_substr(xml, "<secDNS:rem>"), 0);
	assert_int_equal(count_substr(xml, "<secDNS:add>"), 1);
	assert_int_equal(count_substr(xml, "<secDNS:dsData>"), 1);
	free(xml);
	/* rem only, both digests */
	assert_int_equal(khsm_epp_secdns_update(NULL, 0, rem, 1, KHSM_DIGEST_ALL, &xml), KHSM_EOK);
	assert_int_equal(count_substr(xml, "<secDNS:add>"), 0);
	assert_int_equal(count_substr(xml, "<secDNS:dsData>"), 2);
	free(xml);
	/* nothing to say is an error */
	xml = NULL;
	assert_int_equal(khsm_epp_secdns_update(NULL, 0, NULL, 0, KHSM_DIGEST_SHA256, &xml), KHSM_EINVAL);
	assert_null(xml);
	free(want);
	free(hex);
	dnssec_key_free(p256);
	dnssec_key_free(p384);
}

static void test_xml_escape(void **state)
{
	(void)state;
	char *out = NULL;
	assert_int_equal(khsm_xml_escape("<a&b>\"c'", &out), KHSM_EOK);
	assert_string_equal(out, "&lt;a&amp;b&gt;&quot;c&apos;");
	free(out);
	out = NULL;
	assert_int_equal(khsm_xml_escape("AQ+/==", &out), KHSM_EOK);
	assert_string_equal(out, "AQ+/==");
	free(out);
	out = NULL;
	assert_int_equal(khsm_xml_escape("bad\x01", &out), KHSM_EINVAL);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_epp),
		cmocka_unit_test(test_epp_update),
		cmocka_unit_test(test_xml_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
