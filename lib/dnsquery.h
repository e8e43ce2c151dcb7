/* One DNS question to one server and its reply, with libknot's packet API:
 * UDP with EDNS (DO bit), TCP when the answer is truncated; the reply read
 * into records whose rdata is kept as it came. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One resource record of a reply, as it came on the wire. */
typedef struct {
	char *owner;          /* lower-case, with the final dot */
	uint32_t ttl;
	uint16_t type;        /* KNOT_RRTYPE_* (libknot/descriptor.h) */
	uint8_t *rdata;       /* the record data, uncompressed */
	uint16_t rdlen;
} khsm_rr_t;

/* A reply to one question: its header and the records of two sections. */
typedef struct {
	char rcode[16];       /* "NOERROR", "NXDOMAIN", "REFUSED", ... (EDNS extended) */
	bool aa;              /* authoritative answer */
	bool tc;              /* truncated: ask again over TCP */
	khsm_rr_t *rrs;       /* answer section */
	size_t count;
	khsm_rr_t *auth;      /* authority section */
	size_t auth_count;
} khsm_reply_t;

/** Parse a DNS message from the wire (libknot's knot_pkt_parse) as the reply
 *  to the question qname/qtype (class IN): it must be a response (QR) to a
 *  standard query that repeats exactly that question. Records of a class
 *  other than IN, a message libknot cannot parse, or another question are
 *  KHSM_EPARSE with the reason in the detail.
 *  \param[out] reply  free with khsm_reply_clear(); filled only on success. */
int khsm_reply_parse(const uint8_t *wire, size_t len, const char *qname, uint16_t qtype,
                     khsm_reply_t *reply);

/** Free what khsm_reply_parse() allocated and zero the reply. */
void khsm_reply_clear(khsm_reply_t *reply);

/** Ask one server one question (class IN): UDP with EDNS (DO bit, 1232-byte
 *  payload), again over TCP when the answer is truncated. Each try waits at
 *  most KHSM_DNS_TIMEOUT_MS and a server gets KHSM_DNS_TRIES tries over UDP;
 *  a refused port fails at once. IPv4 and IPv6; a host name is resolved by
 *  the C library. recurse sets RD (for a resolver). No answer is KHSM_ETOOL
 *  with "failed to query server ADDR@PORT (UDP|TCP): REASON" in the detail.
 *  \param[out] reply  free with khsm_reply_clear(). */
int khsm_dns_ask(const char *address, uint16_t port, const char *qname, uint16_t qtype,
                 bool recurse, khsm_reply_t *reply);

#define KHSM_DNS_TIMEOUT_MS 3000
#define KHSM_DNS_TRIES 2

/** Lower-case presentation form of a wire-format name, with the final dot.
 *  \return free with free(); NULL when out of memory. */
char *khsm_dns_name_text(const uint8_t *name);
