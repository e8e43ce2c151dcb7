/* The parent side of a zone: the DS records of an answer judged from their
 * rdata, DS matching, the parent's servers and asking them (dnsquery.c). */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <strings.h>
#include <sys/socket.h>

#include <libknot/descriptor.h>
#include <libknot/dname.h>
#include <libknot/packet/wire.h>

#include "dname.h"
#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "parent.h"

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

/* Rewrite the recorded detail as "what: detail". */
static void detail_prefix(const char *what, const char *fallback)
{
	if (!khsm_err_last_detail()) khsm_err_detail("%s", fallback);
	khsm_err_prefix("%s: ", what);
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
		_cleanup_free_ char *host = khsm_dns_name_text(rr->rdata);
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
