/* Shared by test_dnsquery.c and test_parent.c: DNS messages built on the
 * wire with libknot, and the reply to example.com DS that knotd gave. */
#pragma once

#include "test.h"

#include <libknot/libknot.h>
#include <stdbool.h>

#include "dnsquery.h"

/* -- messages built with libknot -- */

/* One record: rdata in hex, or a name for NS/CNAME, or "MNAME RNAME" for SOA. */
typedef struct {
	knot_section_t section;
	const char *owner;
	uint16_t type;
	const char *rdata;
	uint16_t rclass;     /* 0: IN */
} rec_t;

/* The header of a message: id, question, flags, rcode. */
typedef struct {
	uint16_t id;
	const char *qname;
	uint16_t qtype;
	uint8_t rcode;
	bool aa, tc, query;  /* query: QR clear */
} head_t;

static inline size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = 0;
	for (; hex[0] && hex[1]; hex += 2) {
		unsigned v;
		assert_int_equal(sscanf(hex, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
	}
	return n;
}

static inline size_t rdata_of(const rec_t *rec, uint8_t *out)
{
	if (rec->type == KNOT_RRTYPE_NS || rec->type == KNOT_RRTYPE_CNAME) {
		assert_non_null(knot_dname_from_str(out, rec->rdata, KNOT_DNAME_MAXLEN));
		return knot_dname_size(out);
	}
	if (rec->type == KNOT_RRTYPE_SOA) {
		char mname[256], rname[256];
		assert_int_equal(sscanf(rec->rdata, "%255s %255s", mname, rname), 2);
		assert_non_null(knot_dname_from_str(out, mname, KNOT_DNAME_MAXLEN));
		size_t n = knot_dname_size(out);
		assert_non_null(knot_dname_from_str(out + n, rname, KNOT_DNAME_MAXLEN));
		n += knot_dname_size(out + n);
		for (uint32_t i = 1; i <= 5; i++, n += 4) {
			knot_wire_write_u32(out + n, i);
		}
		return n;
	}
	return unhex(rec->rdata, out);
}

/* A message with the records of recs; returns its length. */
static inline size_t build(uint8_t *wire, size_t max, const head_t *h, const rec_t *recs, size_t n)
{
	memset(wire, 0, KNOT_WIRE_HEADER_SIZE);   /* knot_pkt_new() keeps a given header */
	knot_pkt_t *pkt = knot_pkt_new(wire, (uint16_t)max, NULL);
	assert_non_null(pkt);
	knot_dname_t *qn = knot_dname_from_str_alloc(h->qname);
	assert_int_equal(knot_pkt_put_question(pkt, qn, KNOT_CLASS_IN, h->qtype), KNOT_EOK);
	knot_dname_free(qn, NULL);
	knot_wire_set_id(pkt->wire, h->id);
	if (!h->query) {
		knot_wire_set_qr(pkt->wire);
	}
	if (h->aa) {
		knot_wire_set_aa(pkt->wire);
	}
	if (h->tc) {
		knot_wire_set_tc(pkt->wire);
	}
	knot_wire_set_rcode(pkt->wire, h->rcode);
	knot_section_t cur = KNOT_ANSWER;
	assert_int_equal(knot_pkt_begin(pkt, cur), KNOT_EOK);
	for (size_t i = 0; i < n; i++) {
		if (recs[i].section != cur) {
			cur = recs[i].section;
			assert_int_equal(knot_pkt_begin(pkt, cur), KNOT_EOK);
		}
		uint8_t rd[1024];
		size_t len = rdata_of(&recs[i], rd);
		knot_rrset_t rr;
		knot_rrset_init(&rr, knot_dname_from_str_alloc(recs[i].owner), recs[i].type,
		                recs[i].rclass ? recs[i].rclass : KNOT_CLASS_IN, 300);
		assert_int_equal(knot_rrset_add_rdata(&rr, rd, (uint16_t)len, NULL), KNOT_EOK);
		assert_int_equal(knot_pkt_put(pkt, 0, &rr, KNOT_PF_FREE), KNOT_EOK);
	}
	size_t size = pkt->size;
	knot_pkt_free(pkt);
	return size;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* What knotd 3.2.6 serving com. answered for example.com DS (the owner in
 * another case: names are compared and shown in lower case). */
static const char DS_14372[] = "3824" "0d" "02"
	"3bf66f8f78c1d99063fd7c26edee1df1e458862b5980efce84c726592db86929";
static const rec_t ANS_DS[] = {
	{ KNOT_ANSWER, "EXAMPLE.com.", KNOT_RRTYPE_DS, DS_14372, 0 },
};
static const head_t H_DS = { 1, "example.com.", KNOT_RRTYPE_DS, KNOT_RCODE_NOERROR, true, false, false };

/* khsm_reply_parse() under a short name. */
static inline int parse(const uint8_t *wire, size_t len, const char *qname, uint16_t qtype,
                 khsm_reply_t *reply)
{
	return khsm_reply_parse(wire, len, qname, qtype, reply);
}
