/* The parent side of a zone: asking the parent's servers for the DS RRset
 * (dnsquery.h: our own DNS questions), judging the DS records of the answer
 * from their rdata, finding the parent's servers through the system
 * resolver, and matching the parent's DS with our keys. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

#include "dnsquery.h"
#include "knot.h"

/* A server to ask, as the operator gives it or as the lookup found it. */
typedef struct {
	char *name;           /* host name of the NS record, or the address as given */
	char *address;        /* IPv4/IPv6 literal or host name */
	uint16_t port;
} khsm_server_t;

/** The DS records of zone in a reply to `ZONE DS`. Digests are lower-case hex.
 *  RRSIGs of zone are skipped; a record of another owner or type is
 *  KHSM_EPARSE. Each DS is judged alone from its rdata: truncated (under 4
 *  octets), an unknown digest type, or a digest whose length is not the one
 *  of its type is malformed. With malformed_ptr, a malformed one is left out
 *  and listed there, one "OWNER DS RDATA: REASON" line each (RDATA in the
 *  RFC 3597 form `\# N HEX` when truncated, NULL when none), and the others
 *  are returned; without, it is KHSM_EPARSE. No DS: *count_ptr 0.
 *  \param[out] ds_ptr     free with khsm_ds_free() (knot.h); NULL when count is 0.
 *  \param[out] count_ptr
 *  \param[out] malformed_ptr  may be NULL; free with free(). */
int khsm_reply_ds(const khsm_reply_t *reply, const char *zone, khsm_ds_t **ds_ptr,
                  size_t *count_ptr, char **malformed_ptr);

/** Whether a DS record is the DS of key: same owner, key tag and algorithm,
 *  and the digest libdnssec computes for the DS's digest type. A digest type
 *  libdnssec cannot compute (e.g. 3, GOST) never matches; it is not an error. */
int khsm_ds_matches(const khsm_ds_t *ds, const dnssec_key_t *key, bool *match_ptr);

/** Parse server=ADDR[@PORT]: an IPv4 or IPv6 address or a host name, and an
 *  optional port 1-65535 (default 53). Rejects empty parts and trailing garbage.
 *  \param[out] server_ptr  free with khsm_server_clear(). */
int khsm_server_parse(const char *text, khsm_server_t *server_ptr);

/** Free what a khsm_server_t holds and zero it. */
void khsm_server_clear(khsm_server_t *server);

/** Free an array of servers from khsm_parent_servers(). */
void khsm_servers_free(khsm_server_t *servers, size_t count);

/** The name one label up: "example.com." -> "com.", "com." -> ".".
 *  KHSM_ENOENT for "." (the root has no parent).
 *  \param[out] parent_ptr  free with free(). */
int khsm_name_parent(const char *name, char **parent_ptr);

/** Ask one server for the DS RRset of zone, without recursion
 *  (khsm_dns_ask()). The server must
 *  answer NOERROR with the AA flag; a referral, REFUSED, NXDOMAIN or no answer
 *  at all is KHSM_ETOOL with a detail that names the server. An empty DS set
 *  is success with *count_ptr 0. A malformed DS is handled as by
 *  khsm_reply_ds(): listed in *malformed_ptr (may be NULL: then an error).
 *  \param[out] ds_ptr     free with khsm_ds_free(); NULL when count is 0.
 *  \param[out] count_ptr
 *  \param[out] malformed_ptr  free with free(). */
int khsm_parent_query_ds(const khsm_server_t *server, const char *zone, khsm_ds_t **ds_ptr,
                         size_t *count_ptr, char **malformed_ptr);

/** Find the authoritative servers of the zone above zone through the system
 *  resolver (the nameserver lines of /etc/resolv.conf, tried in order, or
 *  127.0.0.1 without any; the environment variable KHSM_RESOLVER=ADDR[@PORT],
 *  for tests, replaces them): the NS RRset of the
 *  closest enclosing name that has one, then the A and AAAA records of each
 *  NS name. Fails with a detail (and a hint to pass server=) when the
 *  resolver cannot be asked or gives no usable address.
 *  \param[out] parent_ptr   the parent zone, free with free().
 *  \param[out] servers_ptr  one entry per address (port 53), free with khsm_servers_free().
 *  \param[out] count_ptr */
int khsm_parent_servers(const char *zone, char **parent_ptr, khsm_server_t **servers_ptr,
                        size_t *count_ptr);
