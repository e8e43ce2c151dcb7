/* One DNS question to one server and its reply: libknot packets over UDP
 * (EDNS, DO bit), again over TCP when truncated, read with knot_pkt_parse. */
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <libknot/codes.h>
#include <libknot/descriptor.h>
#include <libknot/dname.h>
#include <libknot/errcode.h>
#include <libknot/error.h>
#include <libknot/packet/pkt.h>
#include <libknot/packet/wire.h>
#include <libknot/rrset.h>
#include <libknot/rrtype/opt.h>

#include "dnsquery.h"
#include "error.h"
#include "internal.h"

/* -- replies from the wire -- */

static void rrs_free(khsm_rr_t *rrs, size_t count)
{
	for (size_t i = 0; rrs && i < count; i++) {
		free(rrs[i].owner);
		free(rrs[i].rdata);
	}
	free(rrs);
}

_public_
void khsm_reply_clear(khsm_reply_t *reply)
{
	if (!reply) {
		return;
	}
	rrs_free(reply->rrs, reply->count);
	rrs_free(reply->auth, reply->auth_count);
	memset(reply, 0, sizeof(*reply));
}

_public_
char *khsm_dns_name_text(const uint8_t *name)
{
	char *text = knot_dname_to_str_alloc(name);
	for (char *p = text; p && *p; p++) {
		*p = (char)tolower((unsigned char)*p);
	}
	return text;
}

/* Copy the records of one section; every RR of the section, one entry each. */
static int copy_section(const knot_pkt_t *pkt, knot_section_t id, khsm_rr_t **rrs_ptr,
                        size_t *count_ptr)
{
	const knot_pktsection_t *sec = knot_pkt_section(pkt, id);
	size_t total = 0;
	for (uint16_t i = 0; i < sec->count; i++) {
		total += knot_pkt_rr(sec, i)->rrs.count;
	}
	khsm_rr_t *rrs = total ? calloc(total, sizeof(*rrs)) : NULL;
	if (total && !rrs) {
		return KHSM_ENOMEM;
	}
	size_t n = 0;
	int r = KHSM_EOK;
	for (uint16_t i = 0; i < sec->count && r == KHSM_EOK; i++) {
		const knot_rrset_t *set = knot_pkt_rr(sec, i);
		if (set->rclass != KNOT_CLASS_IN) {
			char type[32];
			(void)knot_rrtype_to_string(set->type, type, sizeof(type));
			khsm_err_detail("a %s record of class %u, not IN", type, (unsigned)set->rclass);
			r = KHSM_EPARSE;
			break;
		}
		knot_rdata_t *rd = set->rrs.rdata;
		for (uint16_t j = 0; j < set->rrs.count; j++, rd = knot_rdataset_next(rd)) {
			khsm_rr_t *rr = &rrs[n++];
			rr->ttl = set->ttl;
			rr->type = set->type;
			rr->rdlen = rd->len;
			rr->owner = khsm_dns_name_text(set->owner);
			rr->rdata = malloc(rd->len ? rd->len : 1);
			if (!rr->owner || !rr->rdata) {
				r = KHSM_ENOMEM;
				break;
			}
			memcpy(rr->rdata, rd->data, rd->len);
		}
	}
	if (r != KHSM_EOK) {
		rrs_free(rrs, n);
		return r;
	}
	*rrs_ptr = rrs;
	*count_ptr = n;
	return KHSM_EOK;
}

_public_
int khsm_reply_parse(const uint8_t *wire, size_t len, const char *qname, uint16_t qtype,
                     khsm_reply_t *reply)
{
	if (!wire || !qname || !reply) {
		return KHSM_EINVAL;
	}
	if (len > KNOT_WIRE_MAX_PKTSIZE) {
		khsm_err_detail("a reply of %zu octets, more than a DNS message holds", len);
		return KHSM_EPARSE;
	}
	_cleanup_free_ uint8_t *copy = malloc(len ? len : 1);
	knot_dname_t *want = knot_dname_from_str_alloc(qname);
	if (!copy || !want) {
		knot_dname_free(want, NULL);
		return KHSM_ENOMEM;
	}
	memcpy(copy, wire, len);
	khsm_reply_t rep = { 0 };
	int r = KHSM_EOK;
	knot_pkt_t *pkt = knot_pkt_new(copy, (uint16_t)len, NULL);
	if (!pkt) {
		r = KHSM_ENOMEM;
		goto fail;
	}
	int kr = knot_pkt_parse(pkt, 0);
	if (kr != KNOT_EOK) {
		khsm_err_detail("the reply is not a DNS message libknot can parse (%s)", knot_strerror(kr));
		r = KHSM_EPARSE;
		goto fail;
	}
	if (!knot_wire_get_qr(pkt->wire) || knot_wire_get_opcode(pkt->wire) != KNOT_OPCODE_QUERY) {
		khsm_err_detail("the reply is not a response to a standard query");
		r = KHSM_EPARSE;
		goto fail;
	}
	if (knot_wire_get_qdcount(pkt->wire) != 1 || knot_pkt_qtype(pkt) != qtype ||
	    knot_pkt_qclass(pkt) != KNOT_CLASS_IN || !knot_dname_is_case_equal(knot_pkt_qname(pkt), want)) {
		khsm_err_detail("the reply does not repeat the question %s", qname);
		r = KHSM_EPARSE;
		goto fail;
	}
	const char *rcode = knot_pkt_ext_rcode_name(pkt);
	if (rcode && *rcode) {
		snprintf(rep.rcode, sizeof(rep.rcode), "%s", rcode);
	} else {
		snprintf(rep.rcode, sizeof(rep.rcode), "RCODE%u", (unsigned)knot_pkt_ext_rcode(pkt));
	}
	rep.aa = knot_wire_get_aa(pkt->wire);
	rep.tc = knot_wire_get_tc(pkt->wire);
	r = copy_section(pkt, KNOT_ANSWER, &rep.rrs, &rep.count);
	if (r == KHSM_EOK) {
		r = copy_section(pkt, KNOT_AUTHORITY, &rep.auth, &rep.auth_count);
	}
	if (r != KHSM_EOK) {
		goto fail;
	}
	knot_pkt_free(pkt);
	knot_dname_free(want, NULL);
	*reply = rep;
	return KHSM_EOK;
fail:
	knot_pkt_free(pkt);
	knot_dname_free(want, NULL);
	khsm_reply_clear(&rep);
	return r;
}

/* -- asking -- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until fd is ready for events or the deadline passes: 1 ready, 0 time
 * out, -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
	while (true) {
		int64_t left = deadline - now_ms();
		if (left <= 0) {
			return 0;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n > 0 && (p.revents & (POLLERR | POLLHUP | POLLNVAL)) && !(p.revents & events)) {
			int err = 0;
			socklen_t el = sizeof(err);
			(void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
			errno = err ? err : ECONNRESET;
			return -1;
		}
		return n;
	}
}

/* The question on the wire: random id, RD when recursing, EDNS with DO. */
static int build_query(const char *qname, uint16_t qtype, bool recurse, uint8_t *wire,
                       size_t *len_ptr, uint16_t *id_ptr)
{
	knot_dname_t *name = knot_dname_from_str_alloc(qname);
	memset(wire, 0, KNOT_WIRE_HEADER_SIZE);   /* knot_pkt_new() keeps a given header */
	knot_pkt_t *pkt = name ? knot_pkt_new(wire, 512, NULL) : NULL;
	uint16_t id = 0;
	int r = KHSM_ENOMEM;
	if (!pkt) {
		goto fail;
	}
	if (getrandom(&id, sizeof(id), 0) != sizeof(id)) {
		r = KHSM_EIO;
		goto fail;
	}
	knot_wire_set_id(pkt->wire, id);
	if (recurse) {
		knot_wire_set_rd(pkt->wire);
	}
	knot_rrset_t opt;
	if (knot_pkt_put_question(pkt, name, KNOT_CLASS_IN, qtype) != KNOT_EOK ||
	    knot_pkt_begin(pkt, KNOT_ADDITIONAL) != KNOT_EOK ||
	    knot_edns_init(&opt, 1232, 0, 0, NULL) != KNOT_EOK) {
		r = KHSM_EINVAL;
		goto fail;
	}
	knot_edns_set_do(&opt);
	if (knot_pkt_put(pkt, 0, &opt, KNOT_PF_FREE) != KNOT_EOK) {
		knot_rrset_clear(&opt, NULL);
		r = KHSM_EINVAL;
		goto fail;
	}
	*len_ptr = pkt->size;
	*id_ptr = id;
	r = KHSM_EOK;
fail:
	knot_pkt_free(pkt);
	knot_dname_free(name, NULL);
	return r;
}

/* One exchange over UDP: 1 answered (reply filled), 0 no answer in time,
 * -1 error (errno). Datagrams with another id or question are dropped. */
static int ask_udp(const struct addrinfo *ai, const uint8_t *query, size_t qlen, uint16_t id,
                   const char *qname, uint16_t qtype, uint8_t *buf, khsm_reply_t *reply,
                   char *bad, size_t bad_size)
{
	_cleanup_close_ int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    send(fd, query, qlen, 0) != (ssize_t)qlen) {
		return -1;
	}
	int64_t deadline = now_ms() + KHSM_DNS_TIMEOUT_MS;
	while (true) {
		int w = wait_fd(fd, POLLIN, deadline);
		if (w <= 0) {
			return w;
		}
		ssize_t n = recv(fd, buf, KNOT_WIRE_MAX_PKTSIZE, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				continue;
			}
			return -1;
		}
		if (n < KNOT_WIRE_HEADER_SIZE || knot_wire_get_id(buf) != id) {
			continue;
		}
		if (khsm_reply_parse(buf, (size_t)n, qname, qtype, reply) != KHSM_EOK) {
			/* Not an answer to our question: keep waiting, and say so if none comes. */
			const char *d = khsm_err_last_detail();
			snprintf(bad, bad_size, "no answer in time; %s", d ? d : "a reply not understood");
			khsm_err_clear();
			continue;
		}
		return 1;
	}
}

/* Write all of data, or read exactly len octets, before the deadline. */
static int tcp_io(int fd, uint8_t *data, size_t len, bool writing, int64_t deadline)
{
	size_t done = 0;
	while (done < len) {
		int w = wait_fd(fd, writing ? POLLOUT : POLLIN, deadline);
		if (w <= 0) {
			return w;
		}
		ssize_t n = writing ? send(fd, data + done, len - done, MSG_NOSIGNAL)
		                    : recv(fd, data + done, len - done, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
			continue;
		}
		if (n <= 0) {
			if (n == 0) {
				errno = ECONNRESET;
			}
			return -1;
		}
		done += (size_t)n;
	}
	return 1;
}

/* The same over TCP (after a truncated UDP answer). */
static int ask_tcp(const struct addrinfo *ai, const uint8_t *query, size_t qlen, uint16_t id,
                   const char *qname, uint16_t qtype, uint8_t *buf, khsm_reply_t *reply)
{
	_cleanup_close_ int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		return -1;
	}
	int64_t deadline = now_ms() + KHSM_DNS_TIMEOUT_MS;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
		if (errno != EINPROGRESS) {
			return -1;
		}
		int w = wait_fd(fd, POLLOUT, deadline);
		int err = 0;
		socklen_t el = sizeof(err);
		if (w <= 0) {
			return w;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
			errno = err ? err : errno;
			return -1;
		}
	}
	uint8_t out[2 + 512];
	knot_wire_write_u16(out, (uint16_t)qlen);
	memcpy(out + 2, query, qlen);
	uint8_t lenbuf[2];
	int w = tcp_io(fd, out, qlen + 2, true, deadline);
	if (w == 1) {
		w = tcp_io(fd, lenbuf, 2, false, deadline);
	}
	size_t len = w == 1 ? knot_wire_read_u16(lenbuf) : 0;
	if (w == 1) {
		w = tcp_io(fd, buf, len, false, deadline);
	}
	if (w != 1) {
		return w;
	}
	if (len < KNOT_WIRE_HEADER_SIZE || knot_wire_get_id(buf) != id) {
		errno = EBADMSG;
		return -1;
	}
	int r = khsm_reply_parse(buf, len, qname, qtype, reply);
	if (r != KHSM_EOK) {
		errno = r == KHSM_ENOMEM ? ENOMEM : EBADMSG;
		return -1;
	}
	return 1;
}

_public_
int khsm_dns_ask(const char *address, uint16_t port, const char *qname, uint16_t qtype,
                 bool recurse, khsm_reply_t *reply)
{
	if (!address || !qname || !reply) {
		return KHSM_EINVAL;
	}
	uint8_t query[512];
	size_t qlen = 0;
	uint16_t id = 0;
	int r = build_query(qname, qtype, recurse, query, &qlen, &id);
	if (r != KHSM_EOK) {
		return r;
	}
	char service[8];
	snprintf(service, sizeof(service), "%u", (unsigned)port);
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM,
	                          .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	int g = getaddrinfo(address, service, &hints, &res);
	if (g != 0) {
		khsm_err_detail("failed to query server %s@%u: %s", address, (unsigned)port,
		                gai_strerror(g));
		return KHSM_ETOOL;
	}
	_cleanup_free_ uint8_t *buf = malloc(KNOT_WIRE_MAX_PKTSIZE);
	if (!buf) {
		freeaddrinfo(res);
		return KHSM_ENOMEM;
	}
	const char *proto = "UDP";
	char why[300] = "no answer";
	r = KHSM_ETOOL;
	for (const struct addrinfo *ai = res; ai && r != KHSM_EOK; ai = ai->ai_next) {
		khsm_reply_t rep = { 0 };
		int got = 0;
		char bad[300] = "";
		proto = "UDP";
		for (int t = 0; t < KHSM_DNS_TRIES && got == 0; t++) {
			got = ask_udp(ai, query, qlen, id, qname, qtype, buf, &rep, bad, sizeof(bad));
		}
		if (got == 1 && rep.tc) {
			khsm_reply_clear(&rep);
			proto = "TCP";
			got = ask_tcp(ai, query, qlen, id, qname, qtype, buf, &rep);
		}
		if (got == 1) {
			*reply = rep;
			r = KHSM_EOK;
		} else {
			snprintf(why, sizeof(why), "%s", got == -1 ? strerror(errno) :
			         *bad ? bad : "no answer in time");
		}
	}
	if (r != KHSM_EOK) {
		khsm_err_detail("failed to query server %s@%u (%s): %s", address, (unsigned)port,
		                proto, why);
	}
	freeaddrinfo(res);
	return r;
}
