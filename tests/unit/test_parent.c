/* Tests of lib/parent.c: kdig answers as kdig 3.2.6 prints them, DS matching
 * with the RFC 6605 vectors, server= and parent names, and DS queries through
 * a stand-in kdig (KHSM_KDIG) that prints canned replies. */
#include "test.h"

#include <ctype.h>
#include <libdnssec/key.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnskey.h"
#include "error.h"
#include "parent.h"

/* `kdig @127.0.0.1 -p PORT example.com DS +norec +noall +header +answer`
 * against knotd 3.2.6 serving com. with one DS (kdig prints the digest in upper case). */
static const char KDIG_DS[] =
	";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 58678\n"
	";; Flags: qr aa; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0\n"
	"example.com.        \t300\tIN\tDS\t14372 13 2 3BF66F8F78C1D99063FD7C26EDEE1DF1E458862B5980EFCE84C726592DB86929\n";

/* The same server before the DS was added: authoritative, empty answer. */
static const char KDIG_NODATA[] =
	";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 31625\n"
	";; Flags: qr aa; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 0\n";

/* The authority section of an empty DS answer (+noall +header +authority):
 * from a server of the parent (its SOA), and from one of the child only. */
static const char KDIG_AUTH_PARENT[] =
	";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 31626\n"
	";; Flags: qr aa; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 0\n"
	"com.\t900\tIN\tSOA\ta.gtld-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400\n";
static const char KDIG_AUTH_CHILD[] =
	";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 31627\n"
	";; Flags: qr aa; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 0\n"
	"example.com.\t3600\tIN\tSOA\tns1.example.com. hostmaster.example.com. 1 60 60 600 3\n";

/* A referral (name below a delegation): no AA flag. */
static const char KDIG_REFERRAL[] =
	";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 60581\n"
	";; Flags: qr; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 0\n";

static const char KDIG_REFUSED[] =
	";; ->>HEADER<<- opcode: QUERY; status: REFUSED; id: 12995\n"
	";; Flags: qr; QUERY: 1; ANSWER: 0; AUTHORITY: 0; ADDITIONAL: 0\n";

/* RFC 6605 section 6 (../shared/vectors/rfc6605-ds.txt). */
static const char P256_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==";
static const char P256_DS2[] = "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17";
static const char P384_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 14 xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40";
static const char P384_DS4[] =
	"72d7b62976ce06438e9c0bf319013cf801f09ecc84b8d7e9495f27e305c6a9b0563a9b5f4d288405c3008a946df983d6";

static void test_reply_parse(void **state)
{
	(void)state;
	khsm_reply_t reply;
	assert_int_equal(khsm_reply_parse(KDIG_DS, &reply), KHSM_EOK);
	assert_string_equal(reply.rcode, "NOERROR");
	assert_true(reply.aa);
	assert_int_equal(reply.count, 1);
	assert_string_equal(reply.rrs[0].owner, "example.com.");
	assert_int_equal(reply.rrs[0].ttl, 300);
	assert_string_equal(reply.rrs[0].type, "DS");
	assert_string_equal(reply.rrs[0].rdata,
	                    "14372 13 2 3BF66F8F78C1D99063FD7C26EDEE1DF1E458862B5980EFCE84C726592DB86929");
	khsm_reply_clear(&reply);

	assert_int_equal(khsm_reply_parse(KDIG_REFUSED, &reply), KHSM_EOK);
	assert_string_equal(reply.rcode, "REFUSED");
	assert_false(reply.aa);
	assert_int_equal(reply.count, 0);
	khsm_reply_clear(&reply);

	/* Owners are lower-cased. */
	assert_int_equal(khsm_reply_parse(
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0\n"
		"COM.\t172800\tIN\tNS\tA.GTLD-SERVERS.NET.\n", &reply), KHSM_EOK);
	assert_false(reply.aa);
	assert_string_equal(reply.rrs[0].owner, "com.");
	assert_string_equal(reply.rrs[0].rdata, "A.GTLD-SERVERS.NET.");
	khsm_reply_clear(&reply);
}

static void test_reply_parse_rejects(void **state)
{
	(void)state;
	static const char *const BAD[] = {
		"",                                               /* nothing */
		"example.com. 300 IN DS 1 13 2 AA\n",            /* no header */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		"example.com. 300 IN DS 1 13 2 AA\n",            /* no flags line */
		";; ->>HEADER<<- opcode: QUERY; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n",                   /* no status */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		"example.com. 300 CH DS 1 13 2 AA\n",            /* class */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		"example.com. 3x0 IN DS 1 13 2 AA\n",            /* TTL */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		"example.com 300 IN DS 1 13 2 AA\n",             /* relative owner */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		"example.com. 300 IN DS\n",                      /* no rdata */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		";; ANSWER SECTION:\n",                          /* a comment we do not ask for */
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 2\n"
		";; Flags: qr aa; QUERY: 1\n",                   /* two replies */
	};
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		khsm_reply_t reply = { 0 };
		khsm_err_clear();
		if (khsm_reply_parse(BAD[i], &reply) != KHSM_EPARSE) {
			fail_msg("accepted bad kdig output #%zu", i);
		}
		assert_non_null(khsm_err_last_detail());
		assert_null(reply.rrs);
	}
}

static void test_reply_ds(void **state)
{
	(void)state;
	khsm_reply_t reply;
	khsm_ds_t *ds = NULL;
	size_t count = 99;

	assert_int_equal(khsm_reply_parse(KDIG_DS, &reply), KHSM_EOK);
	assert_int_equal(khsm_reply_ds(&reply, "Example.COM", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_string_equal(ds[0].owner, "example.com.");
	assert_int_equal(ds[0].tag, 14372);
	assert_int_equal(ds[0].algorithm, 13);
	assert_int_equal(ds[0].digest_type, 2);
	assert_string_equal(ds[0].digest,
	                    "3bf66f8f78c1d99063fd7c26edee1df1e458862b5980efce84c726592db86929");
	khsm_ds_free(ds, count);
	ds = NULL;
	/* A record of another owner is not silently skipped. */
	assert_int_equal(khsm_reply_ds(&reply, "example.org.", &ds, &count, NULL), KHSM_EPARSE);
	assert_null(ds);
	khsm_reply_clear(&reply);

	assert_int_equal(khsm_reply_parse(KDIG_NODATA, &reply), KHSM_EOK);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 0);
	assert_null(ds);
	khsm_reply_clear(&reply);

	/* Digest split by blanks (presentation format allows it), several records. */
	assert_int_equal(khsm_reply_parse(
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1; ANSWER: 2; AUTHORITY: 0; ADDITIONAL: 0\n"
		"example.com.\t300\tIN\tDS\t1 8 2 ABCD EF01\n"
		"example.com.\t300\tIN\tDS\t65535 13 4 00ff\n", &reply), KHSM_EOK);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 2);
	assert_string_equal(ds[0].digest, "abcdef01");
	assert_int_equal(ds[1].tag, 65535);
	assert_int_equal(ds[1].digest_type, 4);
	khsm_ds_free(ds, count);
	ds = NULL;
	khsm_reply_clear(&reply);

	static const char *const BAD_RDATA[] = {
		"1 13 2 ABC",      /* odd number of digits */
		"1 13 2 XYZW",     /* not hex */
		"65536 13 2 AB",   /* tag */
		"1 256 2 AB",      /* algorithm */
		"1 13 2",          /* no digest */
		"-1 13 2 AB",
	};
	for (size_t i = 0; i < sizeof(BAD_RDATA) / sizeof(BAD_RDATA[0]); i++) {
		char text[300];
		snprintf(text, sizeof(text),
		         ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		         ";; Flags: qr aa; QUERY: 1\n"
		         "example.com.\t300\tIN\tDS\t%s\n", BAD_RDATA[i]);
		assert_int_equal(khsm_reply_parse(text, &reply), KHSM_EOK);
		if (khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL) != KHSM_EPARSE) {
			fail_msg("accepted DS rdata '%s'", BAD_RDATA[i]);
		}
		khsm_reply_clear(&reply);
	}

	/* A CNAME or RRSIG in a DS answer is not a DS. */
	assert_int_equal(khsm_reply_parse(
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		"example.com.\t300\tIN\tCNAME\tother.example.\n", &reply), KHSM_EOK);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL), KHSM_EPARSE);
	khsm_reply_clear(&reply);
}

static dnssec_key_t *key_from(const char *text)
{
	dnssec_key_t *key = NULL;
	assert_int_equal(khsm_dnskey_from_text(NULL, text, &key), KHSM_EOK);
	return key;
}

static void test_ds_matches(void **state)
{
	(void)state;
	dnssec_key_t *p256 = key_from(P256_KEY);
	dnssec_key_t *p384 = key_from(P384_KEY);
	bool m = false;

	khsm_ds_t ds = { .owner = "EXAMPLE.net", .tag = 55648, .algorithm = 13, .digest_type = 2,
	                 .digest = (char *)P256_DS2 };
	assert_int_equal(khsm_ds_matches(&ds, p256, &m), KHSM_EOK);
	assert_true(m);
	assert_int_equal(khsm_ds_matches(&ds, p384, &m), KHSM_EOK);
	assert_false(m);

	/* Upper-case digest as the parent may print it. */
	char upper[sizeof(P256_DS2)];
	for (size_t i = 0; i < sizeof(P256_DS2); i++) {
		upper[i] = (char)toupper((unsigned char)P256_DS2[i]);
	}
	ds.digest = upper;
	assert_int_equal(khsm_ds_matches(&ds, p256, &m), KHSM_EOK);
	assert_true(m);

	/* Right tag, wrong digest / owner / algorithm / unsupported digest type. */
	char wrong[sizeof(P256_DS2)];
	memcpy(wrong, P256_DS2, sizeof(wrong));
	wrong[0] = wrong[0] == '0' ? '1' : '0';
	ds.digest = wrong;
	assert_int_equal(khsm_ds_matches(&ds, p256, &m), KHSM_EOK);
	assert_false(m);
	ds.digest = (char *)P256_DS2;
	ds.owner = "example.com.";
	assert_int_equal(khsm_ds_matches(&ds, p256, &m), KHSM_EOK);
	assert_false(m);
	ds.owner = "example.net.";
	ds.algorithm = 8;
	assert_int_equal(khsm_ds_matches(&ds, p256, &m), KHSM_EOK);
	assert_false(m);
	ds.algorithm = 13;
	ds.digest_type = 3;
	assert_int_equal(khsm_ds_matches(&ds, p256, &m), KHSM_EOK);
	assert_false(m);

	khsm_ds_t ds4 = { .owner = "example.net.", .tag = 10771, .algorithm = 14, .digest_type = 4,
	                  .digest = (char *)P384_DS4 };
	assert_int_equal(khsm_ds_matches(&ds4, p384, &m), KHSM_EOK);
	assert_true(m);

	dnssec_key_free(p256);
	dnssec_key_free(p384);
}

static void test_server_parse(void **state)
{
	(void)state;
	khsm_server_t s;
	assert_int_equal(khsm_server_parse("127.0.0.1@5353", &s), KHSM_EOK);
	assert_string_equal(s.address, "127.0.0.1");
	assert_int_equal(s.port, 5353);
	khsm_server_clear(&s);
	assert_int_equal(khsm_server_parse("2001:db8::53", &s), KHSM_EOK);
	assert_string_equal(s.address, "2001:db8::53");
	assert_int_equal(s.port, 53);
	khsm_server_clear(&s);
	assert_int_equal(khsm_server_parse("2001:db8::53@65535", &s), KHSM_EOK);
	assert_int_equal(s.port, 65535);
	khsm_server_clear(&s);
	assert_int_equal(khsm_server_parse("a.nic.cz", &s), KHSM_EOK);
	assert_string_equal(s.name, "a.nic.cz");
	khsm_server_clear(&s);

	static const char *const BAD[] = {
		"", "@53", "127.0.0.1@", "127.0.0.1@0", "127.0.0.1@65536", "127.0.0.1@53x",
		"127.0.0.1@ 53", "127.0.0.1@-1", "a b", "-bad.example", "a..b", "[::1]", "1.2.3.4@53@53",
	};
	for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
		khsm_server_t bad = { 0 };
		if (khsm_server_parse(BAD[i], &bad) != KHSM_EINVAL) {
			fail_msg("accepted server '%s'", BAD[i]);
		}
		assert_null(bad.address);
	}
}

static void test_name_parent(void **state)
{
	(void)state;
	char *p = NULL;
	assert_int_equal(khsm_name_parent("Sub.Example.COM", &p), KHSM_EOK);
	assert_string_equal(p, "example.com.");
	free(p);
	assert_int_equal(khsm_name_parent("example.com.", &p), KHSM_EOK);
	assert_string_equal(p, "com.");
	free(p);
	assert_int_equal(khsm_name_parent("com", &p), KHSM_EOK);
	assert_string_equal(p, ".");
	free(p);
	p = NULL;
	assert_int_equal(khsm_name_parent(".", &p), KHSM_ENOENT);
	assert_null(p);
	assert_int_equal(khsm_name_parent("bad..name", &p), KHSM_EINVAL);
}

/* A stand-in kdig: prints $FAKE_KDIG_OUT and exits with $FAKE_KDIG_RC; records its argv. */
static char fake_dir[] = "/tmp/khsm-test-parent.XXXXXX";

static int fake_setup(void **state)
{
	(void)state;
	if (!mkdtemp(fake_dir)) {
		return -1;
	}
	char path[300];
	snprintf(path, sizeof(path), "%s/kdig", fake_dir);
	FILE *f = fopen(path, "w");
	if (!f) {
		return -1;
	}
	fprintf(f, "#!/bin/sh\n"
	           "printf '%%s\\n' \"$@\" > \"%s/argv\"\n"
	           "type=; prev=; auth=; for a in \"$@\"; do [ \"$prev\" = -t ] && type=$a; prev=$a; "
	           "[ \"$a\" = +authority ] && auth=_AUTH; done\n"
	           "eval \"out=\\${FAKE_KDIG_OUT_$type:-\\$FAKE_KDIG_OUT}\"; rc=${FAKE_KDIG_RC:-0}\n"
	           "[ -n \"$auth\" ] && out=${FAKE_KDIG_OUT_AUTH:-$out} && rc=${FAKE_KDIG_RC_AUTH:-$rc}\n"
	           "printf '%%s' \"$out\"\n"
	           "[ -n \"$FAKE_KDIG_ERR\" ] && printf '%%s\\n' \"$FAKE_KDIG_ERR\" >&2\n"
	           "exit \"$rc\"\n", fake_dir);
	fclose(f);
	chmod(path, 0700);
	setenv("KHSM_KDIG", path, 1);
	return 0;
}

static int fake_teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fake_dir);
	unsetenv("KHSM_KDIG");
	return system(cmd) == 0 ? 0 : -1;
}

static void fake(const char *out, int rc, const char *err)
{
	char buf[8];
	snprintf(buf, sizeof(buf), "%d", rc);
	setenv("FAKE_KDIG_OUT", out, 1);
	setenv("FAKE_KDIG_RC", buf, 1);
	setenv("FAKE_KDIG_ERR", err ? err : "", 1);
}

static void test_query_ds(void **state)
{
	(void)state;
	khsm_server_t server = { .name = "127.0.0.1", .address = "127.0.0.1", .port = 5353 };
	khsm_ds_t *ds = NULL;
	size_t count = 0;

	fake(KDIG_DS, 0, NULL);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_int_equal(ds[0].tag, 14372);
	khsm_ds_free(ds, count);
	ds = NULL;

	/* The arguments kdig got: the server, its port, no recursion, no IDN rewriting. */
	char path[300], argv[1000] = "";
	snprintf(path, sizeof(path), "%s/argv", fake_dir);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(argv, 1, sizeof(argv) - 1, f);
	argv[n] = '\0';
	fclose(f);
	assert_non_null(strstr(argv, "@127.0.0.1\n-p\n5353\n-q\nexample.com.\n-t\nDS\n+norec\n+noidn\n"));

	fake(KDIG_NODATA, 0, NULL);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 0);

	/* Empty, and the authority is the parent's SOA: the parent has no DS. */
	setenv("FAKE_KDIG_OUT_AUTH", KDIG_AUTH_PARENT, 1);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 0);
	/* The child's own SOA: server= names the child, said so. */
	setenv("FAKE_KDIG_OUT_AUTH", KDIG_AUTH_CHILD, 1);
	ds = (khsm_ds_t *)&server;   /* outputs are untouched on failure */
	count = 7;
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "answers from example.com. itself"));
	assert_ptr_equal(ds, &server);
	assert_int_equal(count, 7);
	ds = NULL;
	/* The second question fails: the empty answer stands (the server must
	 * not drop out of the servers that have to publish the DS). */
	setenv("FAKE_KDIG_RC_AUTH", "9", 1);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 0);
	unsetenv("FAKE_KDIG_RC_AUTH");
	unsetenv("FAKE_KDIG_OUT_AUTH");

	khsm_err_clear();
	fake(KDIG_REFERRAL, 0, NULL);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "not authoritative"));

	fake(KDIG_REFUSED, 0, NULL);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "answered REFUSED"));

	fake("", 1, ";; WARNING: response timeout for 127.0.0.1@5353(UDP)\n"
	            ";; ERROR: failed to query server 127.0.0.1@5353(UDP)");
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "failed to query server 127.0.0.1@5353"));

	fake("garbage\n", 0, NULL);
	assert_int_equal(khsm_parent_query_ds(&server, "example.com", &ds, &count, NULL), KHSM_EPARSE);
	assert_null(ds);
	assert_string_equal(khsm_err_last_detail(),
	                    "example.com. DS at 127.0.0.1@5353: kdig output line 1 unexpected: 'garbage'");
}

/* A parent's answer with the good DS of the RFC 6605 P-256 key among
 * malformed ones (RFC 3597 generic form, not hex, odd digits, no digest). */
static const char KDIG_DS_MIXED[] =
	";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 7\n"
	";; Flags: qr aa; QUERY: 1; ANSWER: 5; AUTHORITY: 0; ADDITIONAL: 0\n"
	"example.net.\t300\tIN\tDS\t\\# 3 010203\n"
	"example.net.\t300\tIN\tDS\t55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17\n"
	"example.net.\t300\tIN\tDS\t55648 13 2 XYZW\n"
	"example.net.\t300\tIN\tDS\t1 13 2 ABC\n"
	"example.net.\t300\tIN\tDS\t1 13 2\n";

/* Each DS is judged alone: the malformed ones are listed and left out, the
 * good one still matches its key. Without a list to report them, strict. */
static void test_reply_ds_malformed(void **state)
{
	(void)state;
	khsm_reply_t reply;
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char *bad = NULL;
	assert_int_equal(khsm_reply_parse(KDIG_DS_MIXED, &reply), KHSM_EOK);
	assert_int_equal(reply.count, 5);
	assert_int_equal(khsm_reply_ds(&reply, "example.net", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_int_equal(ds[0].tag, 55648);
	assert_string_equal(ds[0].digest, P256_DS2);
	assert_non_null(bad);
	assert_string_equal(bad, "example.net. DS \\# 3 010203\n"
	                         "example.net. DS 55648 13 2 XYZW\n"
	                         "example.net. DS 1 13 2 ABC\n"
	                         "example.net. DS 1 13 2");
	dnssec_key_t *p256 = key_from(P256_KEY);
	bool m = false;
	assert_int_equal(khsm_ds_matches(&ds[0], p256, &m), KHSM_EOK);
	assert_true(m);
	dnssec_key_free(p256);
	khsm_ds_free(ds, count);
	free(bad);
	ds = NULL;
	bad = NULL;

	assert_int_equal(khsm_reply_ds(&reply, "example.net", &ds, &count, NULL), KHSM_EPARSE);
	assert_null(ds);
	khsm_reply_clear(&reply);

	/* Only malformed records: no DS, each listed. */
	assert_int_equal(khsm_reply_parse(
		";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
		";; Flags: qr aa; QUERY: 1\n"
		"example.net.\t300\tIN\tDS\t1 13 2 ABC\n", &reply), KHSM_EOK);
	count = 9;
	assert_int_equal(khsm_reply_ds(&reply, "example.net.", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 0);
	assert_null(ds);
	assert_string_equal(bad, "example.net. DS 1 13 2 ABC");
	free(bad);
	bad = NULL;
	/* A good answer lists nothing. */
	khsm_reply_clear(&reply);
	assert_int_equal(khsm_reply_parse(KDIG_DS, &reply), KHSM_EOK);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_null(bad);
	khsm_ds_free(ds, count);
	khsm_reply_clear(&reply);
}

/* Through kdig: the good DS comes back with the list of the malformed ones;
 * an answer of malformed records only is not taken for an empty one. */
static void test_query_ds_malformed(void **state)
{
	(void)state;
	khsm_server_t server = { .name = "127.0.0.1", .address = "127.0.0.1", .port = 5353 };
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char *bad = NULL;
	fake(KDIG_DS_MIXED, 0, NULL);
	assert_int_equal(khsm_parent_query_ds(&server, "example.net", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_string_equal(ds[0].digest, P256_DS2);
	assert_non_null(strstr(bad, "example.net. DS 55648 13 2 XYZW"));
	khsm_ds_free(ds, count);
	free(bad);
	ds = NULL;
	bad = NULL;
	assert_int_equal(khsm_parent_query_ds(&server, "example.net", &ds, &count, NULL), KHSM_EPARSE);
	assert_non_null(strstr(khsm_err_last_detail(), "malformed DS record"));

	fake(";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
	     ";; Flags: qr aa; QUERY: 1\n"
	     "example.net.\t300\tIN\tDS\t1 13 2 ABC\n", 0, NULL);
	/* The authority is the child's own SOA: an empty answer would be refused. */
	setenv("FAKE_KDIG_OUT_AUTH",
	       ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 2\n"
	       ";; Flags: qr aa; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 0\n"
	       "example.net.\t3600\tIN\tSOA\tns1.example.net. hostmaster.example.net. 1 60 60 600 3\n", 1);
	assert_int_equal(khsm_parent_query_ds(&server, "example.net", &ds, &count, &bad), KHSM_EOK);
	unsetenv("FAKE_KDIG_OUT_AUTH");
	assert_int_equal(count, 0);
	assert_string_equal(bad, "example.net. DS 1 13 2 ABC");
	free(bad);
}

static void test_parent_servers_fail(void **state)
{
	(void)state;
	char *parent = NULL;
	khsm_server_t *servers = NULL;
	size_t count = 0;

	/* A resolver that knows nothing: NXDOMAIN all the way up to the root. */
	fake(";; ->>HEADER<<- opcode: QUERY; status: NXDOMAIN; id: 1\n"
	     ";; Flags: qr rd ra; QUERY: 1; ANSWER: 0; AUTHORITY: 0; ADDITIONAL: 0\n", 0, NULL);
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "server="));
	assert_null(parent);

	/* No resolver at all. */
	fake("", 9, ";; ERROR: failed to query server 10.0.0.1@53(UDP)");
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "server=ADDR[@PORT]"));

	/* NS found; the same canned reply serves the A/AAAA queries, which have no
	 * address records: no usable address. */
	fake(";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
	     ";; Flags: qr rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0\n"
	     "com.\t172800\tIN\tNS\ta.gtld-servers.net.\n", 0, NULL);
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "no address"));
}

static void test_parent_servers(void **state)
{
	(void)state;
	char *parent = NULL;
	khsm_server_t *servers = NULL;
	size_t count = 0;

	/* sub.example.com.: example.com. has no NS (NODATA), com. has two. */
	fake(";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 1\n"
	     ";; Flags: qr rd ra; QUERY: 1; ANSWER: 0; AUTHORITY: 1; ADDITIONAL: 0\n", 0, NULL);
	setenv("FAKE_KDIG_OUT_A",
	       ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 2\n"
	       ";; Flags: qr rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0\n"
	       "a.gtld-servers.net.\t300\tIN\tA\t192.5.6.30\n", 1);
	setenv("FAKE_KDIG_OUT_AAAA",
	       ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 3\n"
	       ";; Flags: qr rd ra; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0\n"
	       "a.gtld-servers.net.\t300\tIN\tAAAA\t2001:503:a83e::2:30\n", 1);
	/* The NS query of example.com. and of com. get the same canned reply, so make
	 * it hold com.'s NS: the first name up must then be skipped as "not its NS". */
	setenv("FAKE_KDIG_OUT_NS",
	       ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 4\n"
	       ";; Flags: qr rd ra; QUERY: 1; ANSWER: 2; AUTHORITY: 0; ADDITIONAL: 0\n"
	       "com.\t172800\tIN\tNS\tA.GTLD-SERVERS.NET.\n"
	       "com.\t172800\tIN\tNS\tb.gtld-servers.net.\n", 1);
	assert_int_equal(khsm_parent_servers("sub.example.com", &parent, &servers, &count), KHSM_EOK);
	assert_string_equal(parent, "com.");
	/* Both names give the same canned addresses: each address once. */
	assert_int_equal(count, 2);
	assert_string_equal(servers[0].name, "a.gtld-servers.net.");
	assert_string_equal(servers[0].address, "192.5.6.30");
	assert_int_equal(servers[0].port, 53);
	assert_string_equal(servers[1].address, "2001:503:a83e::2:30");
	free(parent);
	khsm_servers_free(servers, count);
	unsetenv("FAKE_KDIG_OUT_A");
	unsetenv("FAKE_KDIG_OUT_AAAA");
	unsetenv("FAKE_KDIG_OUT_NS");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_parse_rejects),
		cmocka_unit_test(test_reply_ds),
		cmocka_unit_test(test_ds_matches),
		cmocka_unit_test(test_server_parse),
		cmocka_unit_test(test_name_parent),
		cmocka_unit_test(test_query_ds),
		cmocka_unit_test(test_reply_ds_malformed),
		cmocka_unit_test(test_query_ds_malformed),
		cmocka_unit_test(test_parent_servers_fail),
		cmocka_unit_test(test_parent_servers),
	};
	return cmocka_run_group_tests(tests, fake_setup, fake_teardown);
}
