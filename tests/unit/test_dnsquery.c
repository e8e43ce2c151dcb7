/* Tests of lib/dnsquery.c: replies built on the wire with libknot
 * (test_dnswire.h) and parsed, and every malformed or mismatched one
 * refused. Its questions over UDP and TCP to a responder on 127.0.0.1 are
 * asked in test_parent.c, through khsm_parent_query_ds(). */
#include "test.h"

#include "error.h"
#include "test_dnswire.h"

static void test_reply_parse(void **state)
{
	(void)state;
	uint8_t w[4096];
	khsm_reply_t reply;
	size_t len = build(w, sizeof(w), &H_DS, ANS_DS, N(ANS_DS));
	assert_int_equal(parse(w, len, "Example.COM.", KNOT_RRTYPE_DS, &reply), KHSM_EOK);
	assert_string_equal(reply.rcode, "NOERROR");
	assert_true(reply.aa);
	assert_false(reply.tc);
	assert_int_equal(reply.count, 1);
	assert_string_equal(reply.rrs[0].owner, "example.com.");
	assert_int_equal(reply.rrs[0].ttl, 300);
	assert_int_equal(reply.rrs[0].type, KNOT_RRTYPE_DS);
	uint8_t rd[64];
	assert_int_equal(reply.rrs[0].rdlen, unhex(DS_14372, rd));
	assert_memory_equal(reply.rrs[0].rdata, rd, reply.rrs[0].rdlen);
	assert_int_equal(reply.auth_count, 0);
	khsm_reply_clear(&reply);

	head_t h = { 2, "example.com.", KNOT_RRTYPE_DS, KNOT_RCODE_REFUSED, false, true, false };
	len = build(w, sizeof(w), &h, NULL, 0);
	assert_int_equal(parse(w, len, "example.com.", KNOT_RRTYPE_DS, &reply), KHSM_EOK);
	assert_string_equal(reply.rcode, "REFUSED");
	assert_false(reply.aa);
	assert_true(reply.tc);
	assert_int_equal(reply.count, 0);
	khsm_reply_clear(&reply);

	/* Owners and names in rdata are lower-cased; authority kept apart. */
	static const rec_t NS[] = {
		{ KNOT_ANSWER, "COM.", KNOT_RRTYPE_NS, "A.GTLD-SERVERS.NET.", 0 },
		{ KNOT_AUTHORITY, "com.", KNOT_RRTYPE_SOA, "a.gtld-servers.net. nstld.verisign-grs.com.", 0 },
	};
	head_t hn = { 3, "com.", KNOT_RRTYPE_NS, KNOT_RCODE_NOERROR, false, false, false };
	len = build(w, sizeof(w), &hn, NS, N(NS));
	assert_int_equal(parse(w, len, "com.", KNOT_RRTYPE_NS, &reply), KHSM_EOK);
	assert_false(reply.aa);
	assert_string_equal(reply.rrs[0].owner, "com.");
	assert_int_equal(reply.rrs[0].type, KNOT_RRTYPE_NS);
	assert_int_equal(reply.auth_count, 1);
	assert_int_equal(reply.auth[0].type, KNOT_RRTYPE_SOA);
	assert_string_equal(reply.auth[0].owner, "com.");
	khsm_reply_clear(&reply);
}

static void test_reply_parse_rejects(void **state)
{
	(void)state;
	uint8_t w[4096];
	khsm_reply_t reply = { 0 };
	size_t len = build(w, sizeof(w), &H_DS, ANS_DS, N(ANS_DS));
	struct { const uint8_t *wire; size_t len; const char *qname; uint16_t qtype; const char *what; } bad[9];
	size_t nbad = 0;
	static uint8_t query[512], other[512], chaos[512], opcode[512], empty[512];
	head_t hq = H_DS;
	hq.query = true;
	size_t qlen = build(query, sizeof(query), &hq, NULL, 0);
	head_t ho = H_DS;
	ho.qname = "example.org.";
	size_t olen = build(other, sizeof(other), &ho, ANS_DS, N(ANS_DS));
	static const rec_t CH[] = { { KNOT_ANSWER, "example.com.", KNOT_RRTYPE_DS, DS_14372, KNOT_CLASS_CH } };
	size_t clen = build(chaos, sizeof(chaos), &H_DS, CH, N(CH));
	size_t oplen = build(opcode, sizeof(opcode), &H_DS, ANS_DS, N(ANS_DS));
	knot_wire_set_opcode(opcode, KNOT_OPCODE_NOTIFY);
	static const rec_t EMPTY[] = { { KNOT_ANSWER, "example.com.", KNOT_RRTYPE_DS, "", 0 } };
	size_t elen = build(empty, sizeof(empty), &H_DS, EMPTY, N(EMPTY));
	bad[nbad++] = (typeof(bad[0])){ w, 0, "example.com.", KNOT_RRTYPE_DS, "nothing" };
	bad[nbad++] = (typeof(bad[0])){ w, 7, "example.com.", KNOT_RRTYPE_DS, "half a header" };
	bad[nbad++] = (typeof(bad[0])){ w, len - 5, "example.com.", KNOT_RRTYPE_DS, "cut in a record" };
	bad[nbad++] = (typeof(bad[0])){ query, qlen, "example.com.", KNOT_RRTYPE_DS, "a query, not a response" };
	bad[nbad++] = (typeof(bad[0])){ other, olen, "example.com.", KNOT_RRTYPE_DS, "another question" };
	bad[nbad++] = (typeof(bad[0])){ w, len, "example.com.", KNOT_RRTYPE_NS, "another type" };
	bad[nbad++] = (typeof(bad[0])){ chaos, clen, "example.com.", KNOT_RRTYPE_DS, "class CH" };
	bad[nbad++] = (typeof(bad[0])){ opcode, oplen, "example.com.", KNOT_RRTYPE_DS, "opcode NOTIFY" };
	bad[nbad++] = (typeof(bad[0])){ empty, elen, "example.com.", KNOT_RRTYPE_DS, "a DS without rdata" };
	for (size_t i = 0; i < nbad; i++) {
		khsm_err_clear();
		if (parse(bad[i].wire, bad[i].len, bad[i].qname, bad[i].qtype, &reply) != KHSM_EPARSE) {
			fail_msg("accepted a bad reply: %s", bad[i].what);
		}
		assert_non_null(khsm_err_last_detail());
		assert_null(reply.rrs);
	}
}

static void test_name_text(void **state)
{
	(void)state;
	uint8_t name[KNOT_DNAME_MAXLEN];
	assert_non_null(knot_dname_from_str(name, "Example.COM.", sizeof(name)));
	char *text = khsm_dns_name_text(name);
	assert_non_null(text);
	assert_string_equal(text, "example.com.");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_parse),
		cmocka_unit_test(test_reply_parse_rejects),
		cmocka_unit_test(test_name_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
