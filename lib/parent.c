/* The parent side of a zone: DNS questions of our own (libknot packets over
 * UDP, TCP when truncated), the DS records of an answer judged from their
 * rdata, the parent's servers, DS matching. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <libknot/codes.h>
#include <libknot/descriptor.h>
#include <libknot/dname.h>
#include <libknot/errcode.h>
#include <libknot/error.h>
#include <libknot/lookup.h>
#include <libknot/packet/pkt.h>
#include <libknot/packet/wire.h>
#include <libknot/rrset.h>
#include <libknot/rrtype/ds.h>
#include <libknot/rrtype/opt.h>
#include <libknot/rrtype/rdname.h>

#include "dname.h"
#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "parent.h"

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

/* Lower-case presentation form of a wire name, with the final dot. */
static char *name_text(const knot_dname_t *name)
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
			rr->owner = name_text(set->owner);
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
	snprintf(rep.rcode, sizeof(rep.rcode), "%s", rcode && *rcode ? rcode : "RCODE?");
	if (!rcode || !*rcode) {
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

/* -- DS records from rdata -- */

/* The digest length of a DS digest type; 0 for a type we do not know. */
static size_t digest_len(uint8_t type)
{
	switch (type) {
	case 1: return 20;   /* SHA-1 */
	case 2: return 32;   /* SHA-256 */
	case 3: return 32;   /* GOST R 34.11-94 */
	case 4: return 48;   /* SHA-384 */
	case 5: return 32;   /* GOST R 34.11-2012 (RFC 9558) */
	case 6: return 32;   /* SM3 (RFC 9563) */
	default: return 0;
	}
}

static char *hex_of(const uint8_t *data, size_t len)
{
	char *hex = malloc(2 * len + 1);
	for (size_t i = 0; hex && i < len; i++) {
		snprintf(hex + 2 * i, 3, "%02x", data[i]);
	}
	if (hex) {
		hex[2 * len] = '\0';
	}
	return hex;
}

/* Append "NAME DS RDATA: WHY" as a line to *list. */
static int add_malformed(char **list, const char *name, const khsm_rr_t *rr, const char *why)
{
	size_t show = rr->rdlen > 100 ? 100 : rr->rdlen;
	_cleanup_free_ char *hex = NULL;
	char *line = NULL;
	int n;
	if (rr->rdlen < 4) {
		hex = hex_of(rr->rdata, show);
		n = hex ? asprintf(&line, "%s DS \\# %u %s: %s", name, (unsigned)rr->rdlen, hex, why) : -1;
	} else {
		hex = hex_of(rr->rdata + 4, show - 4);
		n = hex ? asprintf(&line, "%s DS %u %u %u %s%s: %s", name, (unsigned)knot_wire_read_u16(rr->rdata),
		                   (unsigned)rr->rdata[2], (unsigned)rr->rdata[3], hex,
		                   show < rr->rdlen ? "..." : "", why) : -1;
	}
	if (n < 0) {
		return KHSM_ENOMEM;
	}
	char *grown = NULL;
	n = asprintf(&grown, "%s%s%s", *list ? *list : "", *list ? "\n" : "", line);
	free(line);
	if (n < 0) {
		return KHSM_ENOMEM;
	}
	free(*list);
	*list = grown;
	return KHSM_EOK;
}

/* One DS from its rdata; KHSM_EPARSE with why filled when malformed. */
static int ds_from_rdata(const char *owner, const khsm_rr_t *rr, khsm_ds_t *ds, char *why,
                         size_t why_size)
{
	if (rr->rdlen < 4) {
		snprintf(why, why_size, "truncated, %u octets where a DS has at least 4",
		         (unsigned)rr->rdlen);
		return KHSM_EPARSE;
	}
	uint8_t type = rr->rdata[3];
	size_t want = digest_len(type);
	size_t have = rr->rdlen - 4u;
	if (want == 0) {
		snprintf(why, why_size, "unknown digest type %u", (unsigned)type);
		return KHSM_EPARSE;
	}
	if (have != want) {
		snprintf(why, why_size, "a digest of type %u has %zu octets, this one %zu",
		         (unsigned)type, want, have);
		return KHSM_EPARSE;
	}
	*ds = (khsm_ds_t){ .tag = knot_wire_read_u16(rr->rdata), .algorithm = rr->rdata[2],
	                   .digest_type = type };
	ds->owner = strdup(owner);
	ds->digest = hex_of(rr->rdata + 4, have);
	if (!ds->owner || !ds->digest) {
		free(ds->owner);
		free(ds->digest);
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

_public_
int khsm_reply_ds(const khsm_reply_t *reply, const char *zone, khsm_ds_t **ds_ptr,
                  size_t *count_ptr, char **malformed_ptr)
{
	if (!reply || !zone || !ds_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *name = NULL;
	int r = khsm_zone_normalize(zone, &name);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char *malformed = NULL;
	for (size_t i = 0; i < reply->count; i++) {
		const khsm_rr_t *rr = &reply->rrs[i];
		bool own = strcmp(rr->owner, name) == 0;
		if (own && rr->type == KNOT_RRTYPE_RRSIG) {
			continue;   /* the parent's signature over its DS set (we set DO) */
		}
		if (!own || rr->type != KNOT_RRTYPE_DS) {
			char type[32];
			(void)knot_rrtype_to_string(rr->type, type, sizeof(type));
			khsm_err_detail("unexpected record in the answer for %s DS: %s %s", name,
			                rr->owner, type);
			r = KHSM_EPARSE;
			goto fail;
		}
		khsm_ds_t *grown = realloc(ds, (count + 1) * sizeof(*grown));
		if (!grown) {
			r = KHSM_ENOMEM;
			goto fail;
		}
		ds = grown;
		char why[100];
		r = ds_from_rdata(name, rr, &ds[count], why, sizeof(why));
		if (r == KHSM_EPARSE) {
			/* Judged alone: the other records of the set still count. */
			if ((r = add_malformed(&malformed, name, rr, why)) != KHSM_EOK) {
				goto fail;
			}
			if (!malformed_ptr) {
				khsm_err_detail("malformed DS record: %s", malformed);
				r = KHSM_EPARSE;
				goto fail;
			}
			continue;
		}
		if (r != KHSM_EOK) {
			goto fail;
		}
		count++;
	}
	if (count == 0) {
		free(ds);
		ds = NULL;
	}
	*ds_ptr = ds;
	*count_ptr = count;
	if (malformed_ptr) {
		*malformed_ptr = malformed;
	}
	return KHSM_EOK;
fail:
	khsm_ds_free(ds, count);
	free(malformed);
	return r;
}

/* -- DS and keys -- */

_public_
int khsm_ds_matches(const khsm_ds_t *ds, const dnssec_key_t *key, bool *match_ptr)
{
	if (!ds || !ds->owner || !ds->digest || !key || !match_ptr) {
		return KHSM_EINVAL;
	}
	khsm_dnskey_info_t info;
	int r = khsm_dnskey_info(key, &info);
	if (r != KHSM_EOK) {
		return r;
	}
	_cleanup_free_ char *owner = NULL;
	_cleanup_free_ char *key_zone = NULL;
	r = khsm_zone_normalize(ds->owner, &owner);
	if (r == KHSM_EOK) {
		r = khsm_dnskey_zone(key, &key_zone);
	}
	if (r != KHSM_EOK) {
		return r;
	}
	if (strcmp(owner, key_zone) != 0 || ds->tag != info.key_tag ||
	    ds->algorithm != info.algorithm ||
	    (ds->digest_type != 1 && ds->digest_type != 2 && ds->digest_type != 4)) {
		*match_ptr = false;
		return KHSM_EOK;
	}
	_cleanup_free_ char *hex = NULL;
	r = khsm_ds_digest(key, ds->digest_type, &hex);
	if (r != KHSM_EOK) {
		return r;
	}
	*match_ptr = strcasecmp(hex, ds->digest) == 0;
	return KHSM_EOK;
}

/* -- servers -- */

_public_
void khsm_server_clear(khsm_server_t *server)
{
	if (server) {
		free(server->name);
		free(server->address);
		memset(server, 0, sizeof(*server));
	}
}

_public_
void khsm_servers_free(khsm_server_t *servers, size_t count)
{
	for (size_t i = 0; servers && i < count; i++) {
		khsm_server_clear(&servers[i]);
	}
	free(servers);
}

static bool is_host_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' || strstr(s, "..")) {
		return false;
	}
	for (const char *p = s; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.') {
			return false;
		}
	}
	return true;
}

_public_
int khsm_server_parse(const char *text, khsm_server_t *server_ptr)
{
	if (!text || !server_ptr) {
		return KHSM_EINVAL;
	}
	const char *at = strchr(text, '@');
	size_t alen = at ? (size_t)(at - text) : strlen(text);
	uint64_t port = 53;
	if (at && !khsm_parse_u64(at + 1, 65535, &port)) {
		khsm_err_detail("'%s': the port after '@' must be a number from 1 to 65535", text);
		return KHSM_EINVAL;
	}
	if (port == 0) {
		khsm_err_detail("'%s': port 0 is not a port to ask", text);
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *addr = strndup(text, alen);
	if (!addr) {
		return KHSM_ENOMEM;
	}
	unsigned char buf[16];
	if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1 &&
	    !is_host_name(addr)) {
		khsm_err_detail("'%s' is neither an IP address nor a host name; use ADDR[@PORT], "
		                "e.g. 192.0.2.53@53 or 2001:db8::53", text);
		return KHSM_EINVAL;
	}
	khsm_server_t s = { .port = (uint16_t)port };
	s.name = strdup(addr);
	s.address = KHSM_STEAL(addr);
	if (!s.name) {
		khsm_server_clear(&s);
		return KHSM_ENOMEM;
	}
	*server_ptr = s;
	return KHSM_EOK;
}

_public_
int khsm_name_parent(const char *name, char **parent_ptr)
{
	if (!name || !parent_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *norm = NULL;
	int r = khsm_zone_normalize(name, &norm);
	if (r != KHSM_EOK) {
		return r;
	}
	if (strcmp(norm, ".") == 0) {
		khsm_err_detail("the root zone has no parent");
		return KHSM_ENOENT;
	}
	/* Normalised names have no escaped dots. */
	const char *dot = strchr(norm, '.');
	char *parent = strdup(dot[1] ? dot + 1 : ".");
	if (!parent) {
		return KHSM_ENOMEM;
	}
	*parent_ptr = parent;
	return KHSM_EOK;
}

/* -- asking a server -- */

/* Rewrite the recorded detail as "what: detail" (the detail is copied first:
 * it lives in the buffer being written). */
static void detail_prefix(const char *what, const char *fallback)
{
	const char *d = khsm_err_last_detail();
	_cleanup_free_ char *copy = strdup(d ? d : fallback);
	khsm_err_detail("%s: %s", what, copy ? copy : fallback);
}

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

/* Ask server (no recursion) for name's DS. */
static int ask_ds(const khsm_server_t *server, const char *name, const char *what,
                  khsm_reply_t *reply)
{
	int r = khsm_dns_ask(server->address, server->port, name, KNOT_RRTYPE_DS, false, reply);
	if (r != KHSM_EOK) {
		detail_prefix(what, "no answer");
	}
	return r;
}

/* An empty DS answer from a server of the zone itself (server= naming the
 * child) would read as "the parent has none": a child-only server answers a
 * DS query with the child's own SOA (RFC 4035, 3.1.4.1), a parent server with
 * the parent's. The authority section of the same answer tells. */
static bool answers_from_child(const khsm_reply_t *reply, const char *name)
{
	for (size_t i = 0; i < reply->auth_count; i++) {
		if (reply->auth[i].type == KNOT_RRTYPE_SOA && strcmp(reply->auth[i].owner, name) == 0) {
			return true;
		}
	}
	return false;
}

_public_
int khsm_parent_query_ds(const khsm_server_t *server, const char *zone, khsm_ds_t **ds_ptr,
                         size_t *count_ptr, char **malformed_ptr)
{
	if (!server || !server->address || !zone || !ds_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *name = NULL;
	int r = khsm_zone_normalize(zone, &name);
	if (r != KHSM_EOK) {
		return r;
	}
	char what[600];
	snprintf(what, sizeof(what), "%s DS at %s@%u", name, server->address, (unsigned)server->port);
	khsm_reply_t reply = { 0 };
	r = ask_ds(server, name, what, &reply);
	if (r != KHSM_EOK) {
		return r;
	}
	if (strcmp(reply.rcode, "NOERROR") != 0) {
		khsm_err_detail("%s: the server answered %s; it does not serve the parent zone of %s",
		                what, reply.rcode, name);
		r = KHSM_ETOOL;
	} else if (!reply.aa) {
		khsm_err_detail("%s: the answer is not authoritative (no AA flag, a referral or a "
		                "cache); ask a server of the parent zone", what);
		r = KHSM_ETOOL;
	} else {
		khsm_ds_t *ds = NULL;
		size_t count = 0;
		char *malformed = NULL;
		r = khsm_reply_ds(&reply, name, &ds, &count, malformed_ptr ? &malformed : NULL);
		if (r == KHSM_EPARSE) {
			detail_prefix(what, "bad answer");
		} else if (r == KHSM_EOK && count == 0 && !malformed && answers_from_child(&reply, name)) {
			khsm_err_detail("%s: this server answers from %s itself, not from its parent zone, "
			                "where DS records live; name a server of the parent with "
			                "server=ADDR[@PORT]", what, name);
			khsm_ds_free(ds, count);
			r = KHSM_ETOOL;
		} else if (r == KHSM_EOK) {
			*ds_ptr = ds;
			*count_ptr = count;
			if (malformed_ptr) {
				*malformed_ptr = malformed;
			}
		}
	}
	khsm_reply_clear(&reply);
	return r;
}

/* The system resolver's addresses: KHSM_RESOLVER (tests), else the
 * nameserver lines of /etc/resolv.conf, else 127.0.0.1 (as the C library). */
static int resolvers(khsm_server_t **list_ptr, size_t *count_ptr)
{
	khsm_server_t *list = NULL;
	size_t count = 0;
	int r = KHSM_EOK;
	const char *env = getenv("KHSM_RESOLVER");
	if (env && *env) {
		list = calloc(1, sizeof(*list));
		if (!list) {
			return KHSM_ENOMEM;
		}
		r = khsm_server_parse(env, list);
		if (r != KHSM_EOK) {
			free(list);
			detail_prefix("KHSM_RESOLVER", "not ADDR[@PORT]");
			return r;
		}
		*list_ptr = list;
		*count_ptr = 1;
		return KHSM_EOK;
	}
	_cleanup_fclose_ FILE *f = fopen("/etc/resolv.conf", "re");
	char line[512];
	while (f && fgets(line, sizeof(line), f) && r == KHSM_EOK) {
		char *save = NULL;
		char *key = strtok_r(line, " \t\r\n", &save);
		char *addr = key ? strtok_r(NULL, " \t\r\n", &save) : NULL;
		if (!key || !addr || strcmp(key, "nameserver") != 0) {
			continue;
		}
		khsm_server_t *grown = realloc(list, (count + 1) * sizeof(*grown));
		if (!grown) {
			r = KHSM_ENOMEM;
			break;
		}
		list = grown;
		list[count] = (khsm_server_t){ .port = 53, .name = strdup(addr), .address = strdup(addr) };
		count++;
		if (!list[count - 1].name || !list[count - 1].address) {
			r = KHSM_ENOMEM;
		}
	}
	if (r == KHSM_EOK && count == 0) {
		list = calloc(1, sizeof(*list));
		r = list ? KHSM_EOK : KHSM_ENOMEM;
		if (list) {
			*list = (khsm_server_t){ .port = 53, .name = strdup("127.0.0.1"),
			                         .address = strdup("127.0.0.1") };
			count = 1;
			r = list->name && list->address ? KHSM_EOK : KHSM_ENOMEM;
		}
	}
	if (r != KHSM_EOK) {
		khsm_servers_free(list, count);
		return r;
	}
	*list_ptr = list;
	*count_ptr = count;
	return KHSM_EOK;
}

/* Ask the system resolver for name/type (recursion on): each of its
 * addresses in turn until one answers. */
static int resolve(const char *name, uint16_t type, khsm_reply_t *reply)
{
	khsm_server_t *list = NULL;
	size_t count = 0;
	int r = resolvers(&list, &count);
	for (size_t i = 0; i < count; i++) {
		r = khsm_dns_ask(list[i].address, list[i].port, name, type, true, reply);
		if (r == KHSM_EOK) {
			break;
		}
	}
	khsm_servers_free(list, count);
	if (r != KHSM_EOK) {
		char tname[32], what[400];
		(void)knot_rrtype_to_string(type, tname, sizeof(tname));
		snprintf(what, sizeof(what), "%s %s from the system resolver", name, tname);
		detail_prefix(what, "no answer");
	}
	return r;
}

/* The port of the parent servers found through their NS records: 53, or
 * KHSM_PARENT_PORT (tests, where they listen on 127.0.0.x at a free port). */
static int parent_port(uint16_t *port_ptr)
{
	const char *env = getenv("KHSM_PARENT_PORT");
	uint64_t port = 53;
	if (env && *env && (!khsm_parse_u64(env, 65535, &port) || port == 0)) {
		khsm_err_detail("KHSM_PARENT_PORT='%s' is not a port from 1 to 65535", env);
		return KHSM_EINVAL;
	}
	*port_ptr = (uint16_t)port;
	return KHSM_EOK;
}

/* Append a server; takes nothing over. */
static int add_server(khsm_server_t **list, size_t *count, const char *name, const char *address,
                      uint16_t port)
{
	for (size_t i = 0; i < *count; i++) {
		if (strcmp((*list)[i].address, address) == 0) {
			return KHSM_EOK;
		}
	}
	khsm_server_t *grown = realloc(*list, (*count + 1) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	*list = grown;
	khsm_server_t *s = &grown[*count];
	*s = (khsm_server_t){ .port = port, .name = strdup(name), .address = strdup(address) };
	(*count)++;
	return s->name && s->address ? KHSM_EOK : KHSM_ENOMEM;
}

_public_
int khsm_parent_servers(const char *zone, char **parent_ptr, khsm_server_t **servers_ptr,
                        size_t *count_ptr)
{
	if (!zone || !parent_ptr || !servers_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *name = NULL;
	uint16_t port = 53;
	int r = khsm_zone_normalize(zone, &name);
	if (r == KHSM_EOK) {
		r = parent_port(&port);
	}
	if (r != KHSM_EOK) {
		return r;
	}

	/* The closest enclosing name with an NS RRset is the parent zone. */
	_cleanup_free_ char *parent = NULL;
	khsm_reply_t ns = { 0 };
	size_t ns_count = 0;
	const char *child = name;
	while (true) {
		char *up = NULL;
		r = khsm_name_parent(child, &up);
		if (r != KHSM_EOK) {
			return r;
		}
		free(parent);
		parent = up;
		child = parent;
		r = resolve(parent, KNOT_RRTYPE_NS, &ns);
		if (r != KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			_cleanup_free_ char *why = strdup(d ? d : khsm_strerror(r));
			khsm_err_detail("cannot find the servers of the parent zone of %s (%s); "
			                "name one with server=ADDR[@PORT]", name, why ? why : "");
			return r;
		}
		ns_count = 0;
		for (size_t i = 0; i < ns.count; i++) {
			if (ns.rrs[i].type == KNOT_RRTYPE_NS && strcmp(ns.rrs[i].owner, parent) == 0) {
				ns_count++;
			}
		}
		if (ns_count > 0) {
			break;
		}
		if (strcmp(ns.rcode, "NOERROR") != 0 && strcmp(ns.rcode, "NXDOMAIN") != 0) {
			khsm_err_detail("the system resolver answered %s for %s NS; name a server of the "
			                "parent zone with server=ADDR[@PORT]", ns.rcode, parent);
			khsm_reply_clear(&ns);
			return KHSM_ETOOL;
		}
		khsm_reply_clear(&ns);
		if (strcmp(parent, ".") == 0) {
			khsm_err_detail("the system resolver knows no NS record above %s; name a server "
			                "of the parent zone with server=ADDR[@PORT]", name);
			return KHSM_ENOENT;
		}
	}

	/* Their addresses. */
	khsm_server_t *servers = NULL;
	size_t count = 0;
	for (size_t i = 0; i < ns.count && r == KHSM_EOK; i++) {
		const khsm_rr_t *rr = &ns.rrs[i];
		if (rr->type != KNOT_RRTYPE_NS || strcmp(rr->owner, parent) != 0) {
			continue;
		}
		if (knot_dname_wire_check(rr->rdata, rr->rdata + rr->rdlen, NULL) != rr->rdlen) {
			continue;   /* not one uncompressed name: no server to ask */
		}
		_cleanup_free_ char *host = name_text(rr->rdata);
		if (!host) {
			r = KHSM_ENOMEM;
			break;
		}
		static const uint16_t TYPES[] = { KNOT_RRTYPE_A, KNOT_RRTYPE_AAAA };
		for (size_t t = 0; t < KHSM_ARRAY_SIZE(TYPES) && r == KHSM_EOK; t++) {
			khsm_reply_t addr = { 0 };
			if (resolve(host, TYPES[t], &addr) != KHSM_EOK) {
				khsm_err_clear();
				continue; /* another name or family may do */
			}
			for (size_t j = 0; j < addr.count && r == KHSM_EOK; j++) {
				const khsm_rr_t *a = &addr.rrs[j];
				int family = TYPES[t] == KNOT_RRTYPE_A ? AF_INET : AF_INET6;
				char text[INET6_ADDRSTRLEN];
				if (a->type == TYPES[t] && a->rdlen == (family == AF_INET ? 4 : 16) &&
				    inet_ntop(family, a->rdata, text, sizeof(text))) {
					r = add_server(&servers, &count, host, text, port);
				}
			}
			khsm_reply_clear(&addr);
		}
	}
	khsm_reply_clear(&ns);
	if (r == KHSM_EOK && count == 0) {
		khsm_err_detail("the system resolver gives no address for the name servers of %s; "
		                "name one with server=ADDR[@PORT]", parent);
		r = KHSM_ENOENT;
	}
	if (r != KHSM_EOK) {
		khsm_servers_free(servers, count);
		return r;
	}
	*parent_ptr = KHSM_STEAL(parent);
	*servers_ptr = servers;
	*count_ptr = count;
	return KHSM_EOK;
}
