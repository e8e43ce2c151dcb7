/* Tests of lib/parent.c (lib/dnsquery.c has test_dnsquery.c): replies
 * built on the wire with libknot (test_dnswire.h), DS records judged from their
 * rdata, DS matching with the RFC 6605 vectors, server= and parent names,
 * and real questions over UDP and TCP to a responder this test forks on
 * 127.0.0.1 (it reports every query it gets, so retries and the TCP
 * fallback are counted, not timed). */
#include "test.h"

#include <ctype.h>
#include <libdnssec/key.h>
#include <libknot/libknot.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dnskey.h"
#include "error.h"
#include "parent.h"
#include "test_dnswire.h"

/* RFC 6605 section 6 (../shared/vectors/rfc6605-ds.txt). */
static const char P256_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edbkrSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==";
static const char P256_DS2[] = "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17";
static const char P384_KEY[] =
	"example.net. 3600 IN DNSKEY 257 3 14 xKYaNhWdGOfJ+nPrL8/arkwf2EY3MDJ+SErKivBVSum1w/egsXvSADtNJhyem5RCOpgQ6K8X1DRSEkrbYQ+OB+v8/uX45NBwY8rp65F6Glur8I/mlVNgF6W/qTI37m40";
static const char P384_DS4[] =
	"72d7b62976ce06438e9c0bf319013cf801f09ecc84b8d7e9495f27e305c6a9b0563a9b5f4d288405c3008a946df983d6";

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


/* The reply to example.com DS with the records of recs. */
static void reply_of(const rec_t *recs, size_t n, khsm_reply_t *reply)
{
	uint8_t w[4096];
	head_t h = H_DS;
	size_t len = build(w, sizeof(w), &h, recs, n);
	assert_int_equal(parse(w, len, h.qname, h.qtype, reply), KHSM_EOK);
}

static void test_reply_ds(void **state)
{
	(void)state;
	khsm_reply_t reply;
	khsm_ds_t *ds = NULL;
	size_t count = 99;

	reply_of(ANS_DS, N(ANS_DS), &reply);
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

	reply_of(NULL, 0, &reply);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 0);
	assert_null(ds);
	khsm_reply_clear(&reply);

	/* Several records, SHA-1 and SHA-384; the RRSIG over the set (DO) skipped. */
	static const rec_t TWO[] = {
		{ KNOT_ANSWER, "example.com.", KNOT_RRTYPE_DS,
		  "0001" "08" "01" "abcdef0123456789abcdef0123456789abcdef01", 0 },
		{ KNOT_ANSWER, "example.com.", KNOT_RRTYPE_DS, "ffff" "0d" "04"
		  "72d7b62976ce06438e9c0bf319013cf801f09ecc84b8d7e9495f27e305c6a9b0563a9b5f4d288405c3008a946df983d6", 0 },
		{ KNOT_ANSWER, "example.com.", KNOT_RRTYPE_RRSIG,
		  "002b" "0d" "02" "0000012c" "00000002" "00000001" "1234" "03636f6d00" "abcd", 0 },
	};
	reply_of(TWO, N(TWO), &reply);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL), KHSM_EOK);
	assert_int_equal(count, 2);
	assert_int_equal(ds[0].digest_type, 1);
	assert_string_equal(ds[0].digest, "abcdef0123456789abcdef0123456789abcdef01");
	assert_int_equal(ds[1].tag, 65535);
	assert_int_equal(ds[1].digest_type, 4);
	khsm_ds_free(ds, count);
	ds = NULL;
	khsm_reply_clear(&reply);

	static const char *const BAD_RDATA[] = {
		"010203",                  /* truncated: under 4 octets */
		"0001" "0d" "02" "abcd",   /* SHA-256 with 2 octets */
		"0001" "0d" "02",          /* no digest */
		"0001" "0d" "01" "3bf66f8f78c1d99063fd7c26edee1df1e458862b5980efce84c726592db86929",
		                           /* SHA-1 with 32 octets */
		"0001" "0d" "04" "3bf66f8f78c1d99063fd7c26edee1df1e458862b5980efce84c726592db86929",
		                           /* SHA-384 with 32 octets */
		"0001" "0d" "07" "abcd",   /* unknown digest type */
		"0001" "0d" "00" "abcd",   /* digest type 0 (reserved) */
	};
	for (size_t i = 0; i < N(BAD_RDATA); i++) {
		rec_t rec = { KNOT_ANSWER, "example.com.", KNOT_RRTYPE_DS, BAD_RDATA[i], 0 };
		reply_of(&rec, 1, &reply);
		if (khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL) != KHSM_EPARSE) {
			fail_msg("accepted DS rdata '%s'", BAD_RDATA[i]);
		}
		khsm_reply_clear(&reply);
	}

	/* A CNAME in a DS answer is not a DS. */
	static const rec_t CNAME[] = { { KNOT_ANSWER, "example.com.", KNOT_RRTYPE_CNAME, "other.example.", 0 } };
	reply_of(CNAME, 1, &reply);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, NULL), KHSM_EPARSE);
	assert_non_null(strstr(khsm_err_last_detail(), "example.com. CNAME"));
	khsm_reply_clear(&reply);
}

/* A parent's answer with the good DS of the RFC 6605 P-256 key among
 * malformed ones: truncated, a digest too short for SHA-256, an unknown
 * digest type (a DS with no rdata at all makes libknot refuse the whole
 * message: test_reply_parse_rejects). */
static const rec_t DS_MIXED[] = {
	{ KNOT_ANSWER, "example.net.", KNOT_RRTYPE_DS, "010203", 0 },
	{ KNOT_ANSWER, "example.net.", KNOT_RRTYPE_DS, "d960" "0d" "02"
	  "b4c8c1fe2e7477127b27115656ad6256f424625bf5c1e2770ce6d6e37df61d17", 0 },
	{ KNOT_ANSWER, "example.net.", KNOT_RRTYPE_DS, "d960" "0d" "02" "abcd", 0 },
	{ KNOT_ANSWER, "example.net.", KNOT_RRTYPE_DS, "0001" "0d" "07" "abcd", 0 },
};
static const char MIXED_BAD[] =
	"example.net. DS \\# 3 010203: truncated, 3 octets where a DS has at least 4\n"
	"example.net. DS 55648 13 2 abcd: a digest of type 2 has 32 octets, this one 2\n"
	"example.net. DS 1 13 7 abcd: unknown digest type 7";

static void reply_net(const rec_t *recs, size_t n, khsm_reply_t *reply)
{
	uint8_t w[4096];
	head_t h = H_DS;
	h.qname = "example.net.";
	size_t len = build(w, sizeof(w), &h, recs, n);
	assert_int_equal(parse(w, len, h.qname, h.qtype, reply), KHSM_EOK);
}

/* Each DS is judged alone: the malformed ones are listed and left out, the
 * good one still matches its key. Without a list to report them, strict. */
static void test_reply_ds_malformed(void **state)
{
	(void)state;
	khsm_reply_t reply;
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char *bad = NULL;
	reply_net(DS_MIXED, N(DS_MIXED), &reply);
	assert_int_equal(reply.count, 4);
	assert_int_equal(khsm_reply_ds(&reply, "example.net", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_int_equal(ds[0].tag, 55648);
	assert_string_equal(ds[0].digest, P256_DS2);
	assert_non_null(bad);
	assert_string_equal(bad, MIXED_BAD);
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
	assert_string_equal(khsm_err_last_detail(), "malformed DS record: example.net. DS \\# 3 010203: "
	                    "truncated, 3 octets where a DS has at least 4");
	khsm_reply_clear(&reply);

	/* Only malformed records: no DS, each listed. */
	reply_net(&DS_MIXED[2], 1, &reply);
	count = 9;
	assert_int_equal(khsm_reply_ds(&reply, "example.net.", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 0);
	assert_null(ds);
	assert_string_equal(bad, "example.net. DS 55648 13 2 abcd: a digest of type 2 has 32 octets, this one 2");
	free(bad);
	bad = NULL;
	/* A good answer lists nothing. */
	khsm_reply_clear(&reply);
	reply_of(ANS_DS, N(ANS_DS), &reply);
	assert_int_equal(khsm_reply_ds(&reply, "example.com.", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_null(bad);
	khsm_ds_free(ds, count);
	khsm_reply_clear(&reply);
}

/* -- a responder on 127.0.0.1, forked per test -- */

/* The reply to one question (qname NULL: any name; qtype 0: any type). */
typedef struct {
	const char *qname;
	uint16_t qtype;
	uint8_t rcode;
	bool aa;
	const rec_t *recs;
	size_t n;
} canned_t;

static struct {
	const canned_t *canned;
	size_t n;
	bool tc_udp;          /* over UDP: truncated and empty, so the client goes TCP */
	int drop_udp;         /* ignore the first N UDP queries */
	bool garbage;         /* answer UDP with a datagram that is no DNS message */
} serve_how;

static pid_t responder = -1;
static uint16_t responder_port;
static int log_fd = -1;   /* one line per query: "u"/"t", R when RD, D when DO, then "NAME TYPE" */

static size_t answer(const knot_pkt_t *q, bool tcp, uint8_t *out, size_t max)
{
	char qname[KNOT_DNAME_TXT_MAXLEN + 1];
	knot_dname_to_str(qname, knot_pkt_qname(q), sizeof(qname));
	for (char *p = qname; *p; p++) {
		*p = (char)tolower((unsigned char)*p);
	}
	for (size_t i = 0; i < serve_how.n; i++) {
		const canned_t *c = &serve_how.canned[i];
		if ((c->qname && strcmp(c->qname, qname) != 0) || (c->qtype && c->qtype != knot_pkt_qtype(q))) {
			continue;
		}
		head_t h = { knot_wire_get_id(q->wire), qname, knot_pkt_qtype(q), c->rcode, c->aa,
		             !tcp && serve_how.tc_udp, false };
		return build(out, max, &h, h.tc ? NULL : c->recs, h.tc ? 0 : c->n);
	}
	head_t h = { knot_wire_get_id(q->wire), qname, knot_pkt_qtype(q), KNOT_RCODE_REFUSED, false, false, false };
	return build(out, max, &h, NULL, 0);
}

static void note_query(int fd, const knot_pkt_t *q, bool tcp)
{
	char qname[KNOT_DNAME_TXT_MAXLEN + 1], type[16];
	knot_dname_to_str(qname, knot_pkt_qname(q), sizeof(qname));
	knot_rrtype_to_string(knot_pkt_qtype(q), type, sizeof(type));
	dprintf(fd, "%s%s%s %s %s\n", tcp ? "t" : "u", knot_wire_get_rd(q->wire) ? "R" : "",
	        knot_pkt_has_dnssec(q) ? "D" : "", qname, type);
}

static void serve(int udp, int tcp, int logw)
{
	alarm(60);   /* never outlives a test that forgot it */
	uint8_t in[65535], out[65535];
	while (true) {
		struct pollfd p[2] = { { .fd = udp, .events = POLLIN }, { .fd = tcp, .events = POLLIN } };
		if (poll(p, 2, -1) <= 0) {
			continue;
		}
		if (p[0].revents & POLLIN) {
			struct sockaddr_storage from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(udp, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
			knot_pkt_t *q = n > 0 ? knot_pkt_new(in, (uint16_t)n, NULL) : NULL;
			if (q && knot_pkt_parse(q, 0) == KNOT_EOK) {
				note_query(logw, q, false);
				if (serve_how.drop_udp > 0) {
					serve_how.drop_udp--;
				} else if (serve_how.garbage) {
					/* The right id, a response with one question whose
					 * name has a label longer than 63 octets. */
					static const uint8_t BAD[] = { 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff };
					memcpy(out, in, 2);
					memcpy(out + 2, BAD, sizeof(BAD));
					sendto(udp, out, 2 + sizeof(BAD), 0, (struct sockaddr *)&from, fl);
				} else {
					size_t len = answer(q, false, out, 512);
					sendto(udp, out, len, 0, (struct sockaddr *)&from, fl);
				}
			}
			knot_pkt_free(q);
		}
		if (p[1].revents & POLLIN) {
			int c = accept(tcp, NULL, NULL);
			uint8_t lb[2];
			if (c >= 0 && recv(c, lb, 2, MSG_WAITALL) == 2) {
				uint16_t len = knot_wire_read_u16(lb);
				knot_pkt_t *q = recv(c, in, len, MSG_WAITALL) == len ? knot_pkt_new(in, len, NULL) : NULL;
				if (q && knot_pkt_parse(q, 0) == KNOT_EOK) {
					note_query(logw, q, true);
					size_t olen = answer(q, true, out + 2, sizeof(out) - 2);
					knot_wire_write_u16(out, (uint16_t)olen);
					send(c, out, olen + 2, MSG_NOSIGNAL);
				}
				knot_pkt_free(q);
			}
			if (c >= 0) {
				close(c);
			}
		}
	}
}

/* Start the responder on 127.0.0.1 (or ::1) with these canned replies (and
 * serve_how as set). */
static void responder_start_on(int family, const canned_t *canned, size_t n)
{
	serve_how.canned = canned;
	serve_how.n = n;
	int udp = -1, tcp = -1;
	for (int attempt = 0; attempt < 20 && tcp < 0; attempt++) {
		struct sockaddr_storage ss = { 0 };
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
		socklen_t al = family == AF_INET ? sizeof(*a4) : sizeof(*a6);
		if (family == AF_INET) {
			*a4 = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		} else {
			*a6 = (struct sockaddr_in6){ .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		}
		udp = socket(family, SOCK_DGRAM, 0);
		assert_true(udp >= 0);
		assert_int_equal(bind(udp, (struct sockaddr *)&ss, al), 0);
		assert_int_equal(getsockname(udp, (struct sockaddr *)&ss, &al), 0);
		tcp = socket(family, SOCK_STREAM, 0);
		if (bind(tcp, (struct sockaddr *)&ss, al) != 0 || listen(tcp, 4) != 0) {
			close(tcp);
			close(udp);
			tcp = -1;
			continue;
		}
		responder_port = ntohs(family == AF_INET ? a4->sin_port : a6->sin6_port);
	}
	assert_true(tcp >= 0);
	int pipefd[2];
	assert_int_equal(pipe(pipefd), 0);
	fflush(NULL);
	responder = fork();
	assert_true(responder >= 0);
	if (responder == 0) {
		close(pipefd[0]);
		serve(udp, tcp, pipefd[1]);
		_exit(0);
	}
	close(pipefd[1]);
	close(udp);
	close(tcp);
	log_fd = pipefd[0];
	memset(&serve_how, 0, sizeof(serve_how));
}

static void responder_start(const canned_t *canned, size_t n)
{
	responder_start_on(AF_INET, canned, n);
}

/* Stop it; the queries it got, one line each, into log (may be NULL). */
static void responder_stop(char *log, size_t size)
{
	assert_true(responder > 0);
	kill(responder, SIGTERM);
	assert_int_equal(waitpid(responder, NULL, 0), responder);
	responder = -1;
	size_t used = 0;
	ssize_t n;
	char sink[512];
	while ((n = read(log_fd, log ? log + used : sink, log ? size - 1 - used : sizeof(sink))) > 0) {
		used += log ? (size_t)n : 0;
	}
	if (log) {
		log[used] = '\0';
	}
	close(log_fd);
	log_fd = -1;
}

static int teardown(void **state)
{
	(void)state;
	if (responder > 0) {
		responder_stop(NULL, 0);
	}
	unsetenv("KHSM_RESOLVER");
	unsetenv("KHSM_PARENT_PORT");
	return 0;
}

static const rec_t SOA_PARENT[] = {
	{ KNOT_AUTHORITY, "com.", KNOT_RRTYPE_SOA, "a.gtld-servers.net. nstld.verisign-grs.com.", 0 },
};
static const rec_t SOA_CHILD[] = {
	{ KNOT_AUTHORITY, "example.com.", KNOT_RRTYPE_SOA, "ns1.example.com. hostmaster.example.com.", 0 },
};

/* Ask the responder for example.com DS with this canned reply (and serve_how
 * as the test set it); its log of queries into log. */
static int ask(const canned_t *c, khsm_ds_t **ds, size_t *count, char *log, size_t size)
{
	khsm_server_t server = { .name = "127.0.0.1", .address = "127.0.0.1" };
	responder_start(c, 1);
	server.port = responder_port;
	int r = khsm_parent_query_ds(&server, "example.com", ds, count, NULL);
	responder_stop(log, size);
	return r;
}

static void test_query_ds(void **state)
{
	(void)state;
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char log[1000];

	canned_t c = { NULL, 0, KNOT_RCODE_NOERROR, true, ANS_DS, N(ANS_DS) };
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_int_equal(ds[0].tag, 14372);
	khsm_ds_free(ds, count);
	ds = NULL;
	/* One UDP question, no recursion, EDNS with DO. */
	assert_string_equal(log, "uD example.com. DS\n");

	/* Empty, and the authority is the parent's SOA: the parent has no DS. */
	c = (canned_t){ NULL, 0, KNOT_RCODE_NOERROR, true, SOA_PARENT, N(SOA_PARENT) };
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_EOK);
	assert_int_equal(count, 0);
	/* Empty with no authority at all: the empty answer stands (the server
	 * must not drop out of the servers that have to publish the DS). */
	c = (canned_t){ NULL, 0, KNOT_RCODE_NOERROR, true, NULL, 0 };
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_EOK);
	assert_int_equal(count, 0);
	/* The child's own SOA: server= names the child, said so. */
	c = (canned_t){ NULL, 0, KNOT_RCODE_NOERROR, true, SOA_CHILD, N(SOA_CHILD) };
	ds = (khsm_ds_t *)&c;   /* outputs are untouched on failure */
	count = 7;
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "answers from example.com. itself"));
	assert_ptr_equal(ds, &c);
	assert_int_equal(count, 7);
	ds = NULL;

	khsm_err_clear();
	c = (canned_t){ NULL, 0, KNOT_RCODE_NOERROR, false, SOA_PARENT, N(SOA_PARENT) };
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "not authoritative"));

	c = (canned_t){ NULL, 0, KNOT_RCODE_REFUSED, false, NULL, 0 };
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "answered REFUSED"));

	/* Truncated over UDP: asked again over TCP, which has the whole answer. */
	c = (canned_t){ NULL, 0, KNOT_RCODE_NOERROR, true, ANS_DS, N(ANS_DS) };
	serve_how.tc_udp = true;
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_EOK);
	assert_int_equal(count, 1);
	khsm_ds_free(ds, count);
	ds = NULL;
	assert_string_equal(log, "uD example.com. DS\ntD example.com. DS\n");

	/* The first datagram lost: one more try, and no more. */
	serve_how.drop_udp = 1;
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_EOK);
	assert_int_equal(count, 1);
	khsm_ds_free(ds, count);
	ds = NULL;
	assert_string_equal(log, "uD example.com. DS\nuD example.com. DS\n");

	/* Garbage with the right id: waited for a real answer on each of the
	 * KHSM_DNS_TRIES tries, then failed, saying what came. */
	serve_how.garbage = true;
	assert_int_equal(ask(&c, &ds, &count, log, sizeof(log)), KHSM_ETOOL);
	assert_null(ds);
	assert_string_equal(log, "uD example.com. DS\nuD example.com. DS\n");
	char want[300];
	snprintf(want, sizeof(want), "example.com. DS at 127.0.0.1@%u: failed to query server "
	         "127.0.0.1@%u (UDP): no answer in time; the reply is not a DNS message libknot "
	         "can parse (malformed data)", responder_port, responder_port);
	assert_string_equal(khsm_err_last_detail(), want);

	/* Nothing listens any more: refused at once, one try. */
	khsm_server_t gone = { .name = "127.0.0.1", .address = "127.0.0.1", .port = responder_port };
	assert_int_equal(khsm_parent_query_ds(&gone, "example.com", &ds, &count, NULL), KHSM_ETOOL);
	snprintf(want, sizeof(want), "example.com. DS at 127.0.0.1@%u: failed to query server "
	         "127.0.0.1@%u (UDP): Connection refused", responder_port, responder_port);
	assert_string_equal(khsm_err_last_detail(), want);

	/* IPv6, over UDP and TCP. */
	khsm_server_t six = { .name = "::1", .address = "::1" };
	serve_how.tc_udp = true;
	responder_start_on(AF_INET6, &c, 1);
	six.port = responder_port;
	assert_int_equal(khsm_parent_query_ds(&six, "example.com", &ds, &count, NULL), KHSM_EOK);
	responder_stop(log, sizeof(log));
	assert_int_equal(count, 1);
	assert_int_equal(ds[0].tag, 14372);
	khsm_ds_free(ds, count);
	ds = NULL;
	assert_string_equal(log, "uD example.com. DS\ntD example.com. DS\n");
}

/* Through the network: the good DS comes back with the list of the malformed
 * ones; an answer of malformed records only is not taken for an empty one. */
static void test_query_ds_malformed(void **state)
{
	(void)state;
	khsm_server_t server = { .name = "127.0.0.1", .address = "127.0.0.1" };
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char *bad = NULL;
	canned_t c = { NULL, 0, KNOT_RCODE_NOERROR, true, DS_MIXED, N(DS_MIXED) };
	responder_start(&c, 1);
	server.port = responder_port;
	assert_int_equal(khsm_parent_query_ds(&server, "example.net", &ds, &count, &bad), KHSM_EOK);
	assert_int_equal(count, 1);
	assert_string_equal(ds[0].digest, P256_DS2);
	assert_string_equal(bad, MIXED_BAD);
	khsm_ds_free(ds, count);
	free(bad);
	ds = NULL;
	bad = NULL;
	assert_int_equal(khsm_parent_query_ds(&server, "example.net", &ds, &count, NULL), KHSM_EPARSE);
	assert_non_null(strstr(khsm_err_last_detail(), "malformed DS record"));
	responder_stop(NULL, 0);

	/* Malformed only, and the authority is the child's own SOA: an empty
	 * answer would be refused, this one is not empty. */
	static const rec_t ONLY_BAD[] = {
		{ KNOT_ANSWER, "example.net.", KNOT_RRTYPE_DS, "0001" "0d" "02" "abc0", 0 },
		{ KNOT_AUTHORITY, "example.net.", KNOT_RRTYPE_SOA, "ns1.example.net. hostmaster.example.net.", 0 },
	};
	c = (canned_t){ NULL, 0, KNOT_RCODE_NOERROR, true, ONLY_BAD, N(ONLY_BAD) };
	responder_start(&c, 1);
	server.port = responder_port;
	assert_int_equal(khsm_parent_query_ds(&server, "example.net", &ds, &count, &bad), KHSM_EOK);
	responder_stop(NULL, 0);
	assert_int_equal(count, 0);
	assert_string_equal(bad, "example.net. DS 1 13 2 abc0: a digest of type 2 has 32 octets, this one 2");
	free(bad);
}

static void resolver_env(void)
{
	char env[32];
	snprintf(env, sizeof(env), "127.0.0.1@%u", responder_port);
	setenv("KHSM_RESOLVER", env, 1);
}

static void test_parent_servers_fail(void **state)
{
	(void)state;
	char *parent = NULL;
	khsm_server_t *servers = NULL;
	size_t count = 0;
	char log[1000];

	/* A resolver that knows nothing: NXDOMAIN all the way up to the root. */
	static const canned_t NX[] = { { NULL, 0, KNOT_RCODE_NXDOMAIN, false, NULL, 0 } };
	responder_start(NX, N(NX));
	resolver_env();
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ENOENT);
	assert_string_equal(khsm_err_last_detail(), "the system resolver knows no NS record above "
	                    "example.com.; name a server of the parent zone with server=ADDR[@PORT]");
	assert_null(parent);
	responder_stop(log, sizeof(log));
	/* Each name up asked once, recursion desired. */
	assert_string_equal(log, "uRD com. NS\nuRD . NS\n");

	/* No resolver at all (nothing listens there any more). */
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "cannot find the servers of the parent zone of example.com."));
	assert_non_null(strstr(khsm_err_last_detail(), "Connection refused"));
	assert_non_null(strstr(khsm_err_last_detail(), "server=ADDR[@PORT]"));

	/* SERVFAIL: said so. */
	static const canned_t SF[] = { { NULL, 0, KNOT_RCODE_SERVFAIL, false, NULL, 0 } };
	responder_start(SF, N(SF));
	resolver_env();
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ETOOL);
	assert_non_null(strstr(khsm_err_last_detail(), "answered SERVFAIL for com. NS"));
	responder_stop(NULL, 0);

	/* NS found; no A or AAAA for it: no usable address. */
	static const rec_t NS[] = { { KNOT_ANSWER, "com.", KNOT_RRTYPE_NS, "a.gtld-servers.net.", 0 } };
	static const canned_t NOADDR[] = {
		{ "com.", KNOT_RRTYPE_NS, KNOT_RCODE_NOERROR, false, NS, N(NS) },
		{ NULL, 0, KNOT_RCODE_NOERROR, false, NULL, 0 },
	};
	responder_start(NOADDR, N(NOADDR));
	resolver_env();
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_ENOENT);
	assert_non_null(strstr(khsm_err_last_detail(), "no address"));
	responder_stop(log, sizeof(log));
	assert_string_equal(log, "uRD com. NS\nuRD a.gtld-servers.net. A\nuRD a.gtld-servers.net. AAAA\n");

	/* The test knobs themselves are checked. */
	setenv("KHSM_RESOLVER", "not/an/address", 1);
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_EINVAL);
	assert_non_null(strstr(khsm_err_last_detail(), "KHSM_RESOLVER: "));
	setenv("KHSM_RESOLVER", "127.0.0.1@1", 1);
	setenv("KHSM_PARENT_PORT", "0", 1);
	assert_int_equal(khsm_parent_servers("example.com", &parent, &servers, &count), KHSM_EINVAL);
	assert_string_equal(khsm_err_last_detail(), "KHSM_PARENT_PORT='0' is not a port from 1 to 65535");
	unsetenv("KHSM_PARENT_PORT");
	unsetenv("KHSM_RESOLVER");
}

static void test_parent_servers(void **state)
{
	(void)state;
	char *parent = NULL;
	khsm_server_t *servers = NULL;
	size_t count = 0;
	char log[1000];

	/* sub.example.com.: example.com. has no NS (NODATA), com. has two, in
	 * upper case and lower; each gives the same two addresses. */
	static const rec_t COM_NS[] = {
		{ KNOT_ANSWER, "com.", KNOT_RRTYPE_NS, "A.GTLD-SERVERS.NET.", 0 },
		{ KNOT_ANSWER, "com.", KNOT_RRTYPE_NS, "b.gtld-servers.net.", 0 },
	};
	static const rec_t A[] = { { KNOT_ANSWER, "x.", KNOT_RRTYPE_A, "c005061e", 0 } };
	static const rec_t AAAA[] = {
		{ KNOT_ANSWER, "x.", KNOT_RRTYPE_AAAA, "20010503a83e00000000000000020030", 0 },
	};
	static const canned_t TREE[] = {
		{ "example.com.", KNOT_RRTYPE_NS, KNOT_RCODE_NOERROR, false, NULL, 0 },
		{ "com.", KNOT_RRTYPE_NS, KNOT_RCODE_NOERROR, false, COM_NS, N(COM_NS) },
		{ NULL, KNOT_RRTYPE_A, KNOT_RCODE_NOERROR, false, A, N(A) },
		{ NULL, KNOT_RRTYPE_AAAA, KNOT_RCODE_NOERROR, false, AAAA, N(AAAA) },
	};
	responder_start(TREE, N(TREE));
	resolver_env();
	assert_int_equal(khsm_parent_servers("sub.example.com", &parent, &servers, &count), KHSM_EOK);
	assert_string_equal(parent, "com.");
	/* Both names give the same addresses: each address once. */
	assert_int_equal(count, 2);
	assert_string_equal(servers[0].name, "a.gtld-servers.net.");
	assert_string_equal(servers[0].address, "192.5.6.30");
	assert_int_equal(servers[0].port, 53);
	assert_string_equal(servers[1].address, "2001:503:a83e::2:30");
	free(parent);
	khsm_servers_free(servers, count);

	/* The port of the servers found, for tests whose parents listen elsewhere. */
	setenv("KHSM_PARENT_PORT", "5300", 1);
	assert_int_equal(khsm_parent_servers("sub.example.com", &parent, &servers, &count), KHSM_EOK);
	assert_int_equal(count, 2);
	assert_int_equal(servers[0].port, 5300);
	assert_int_equal(servers[1].port, 5300);
	free(parent);
	khsm_servers_free(servers, count);
	responder_stop(log, sizeof(log));
	assert_non_null(strstr(log, "uRD example.com. NS\nuRD com. NS\nuRD a.gtld-servers.net. A\n"
	                            "uRD a.gtld-servers.net. AAAA\nuRD b.gtld-servers.net. A\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_ds),
		cmocka_unit_test(test_ds_matches),
		cmocka_unit_test(test_server_parse),
		cmocka_unit_test(test_name_parent),
		cmocka_unit_test(test_reply_ds_malformed),
		cmocka_unit_test_teardown(test_query_ds, teardown),
		cmocka_unit_test_teardown(test_query_ds_malformed, teardown),
		cmocka_unit_test_teardown(test_parent_servers_fail, teardown),
		cmocka_unit_test_teardown(test_parent_servers, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
