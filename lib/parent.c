/* The parent side of a zone: kdig answers, the parent's servers, DS matching. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <strings.h>

#include "dname.h"
#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "parent.h"
#include "run.h"

/* kdig waits this long per try, and tries this many more times. */
#define KDIG_TIMEOUT "+timeout=3"
#define KDIG_RETRY "+retry=1"

/* -- small helpers -- */


static void lower(char *s)
{
	for (; *s; s++) {
		*s = (char)tolower((unsigned char)*s);
	}
}

/* Split in place at blanks; returns the number of tokens (at most max). */
static size_t split(char *line, char **tok, size_t max)
{
	size_t n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t\r", &save); t && n < max; t = strtok_r(NULL, " \t\r", &save)) {
		tok[n++] = t;
	}
	return n;
}

/* Join tokens with single spaces. */
static char *join(char *const *tok, size_t n)
{
	size_t len = 1;
	for (size_t i = 0; i < n; i++) {
		len += strlen(tok[i]) + 1;
	}
	char *out = malloc(len);
	if (!out) {
		return NULL;
	}
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i) strcat(out, " ");
		strcat(out, tok[i]);
	}
	return out;
}

static bool is_type_name(const char *s)
{
	if (!*s) {
		return false;
	}
	for (; *s; s++) {
		if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-') {
			return false;
		}
	}
	return true;
}

/* -- kdig replies -- */

_public_
void khsm_reply_clear(khsm_reply_t *reply)
{
	if (!reply) {
		return;
	}
	for (size_t i = 0; i < reply->count; i++) {
		free(reply->rrs[i].owner);
		free(reply->rrs[i].type);
		free(reply->rrs[i].rdata);
	}
	free(reply->rrs);
	memset(reply, 0, sizeof(*reply));
}

/* ";; ->>HEADER<<- opcode: QUERY; status: NOERROR; id: 58678" */
static bool parse_header(const char *line, khsm_reply_t *reply)
{
	const char *s = strstr(line, "; status: ");
	if (!s) {
		return false;
	}
	s += strlen("; status: ");
	size_t len = strcspn(s, ";");
	if (len == 0 || len >= sizeof(reply->rcode)) {
		return false;
	}
	memcpy(reply->rcode, s, len);
	reply->rcode[len] = '\0';
	for (size_t i = 0; i < len; i++) {
		if (!isupper((unsigned char)reply->rcode[i]) && !isdigit((unsigned char)reply->rcode[i])) {
			return false;
		}
	}
	return true;
}

/* ";; Flags: qr aa; QUERY: 1; ANSWER: 1; AUTHORITY: 0; ADDITIONAL: 0" */
static bool parse_flags(const char *line, khsm_reply_t *reply)
{
	const char *s = line + strlen(";; Flags:");
	size_t len = strcspn(s, ";");
	if (s[len] != ';') {
		return false;
	}
	_cleanup_free_ char *flags = strndup(s, len);
	if (!flags) {
		return false;
	}
	char *tok[16];
	size_t n = split(flags, tok, KHSM_ARRAY_SIZE(tok));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(tok[i], "aa") == 0) {
			reply->aa = true;
		}
	}
	return true;
}

static int parse_record(char *line, khsm_reply_t *reply)
{
	char *tok[512];
	size_t n = split(line, tok, KHSM_ARRAY_SIZE(tok));
	uint64_t ttl;
	size_t olen = n ? strlen(tok[0]) : 0;
	if (n < 5 || n == KHSM_ARRAY_SIZE(tok) || tok[0][olen - 1] != '.' ||
	    !khsm_parse_u64(tok[1], UINT32_MAX, &ttl) || strcmp(tok[2], "IN") != 0 ||
	    !is_type_name(tok[3])) {
		return KHSM_EPARSE;
	}
	khsm_rr_t *grown = realloc(reply->rrs, (reply->count + 1) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	reply->rrs = grown;
	khsm_rr_t *rr = &reply->rrs[reply->count];
	*rr = (khsm_rr_t){ .ttl = (uint32_t)ttl };
	rr->owner = strdup(tok[0]);
	rr->type = strdup(tok[3]);
	rr->rdata = join(&tok[4], n - 4);
	reply->count++;
	if (!rr->owner || !rr->type || !rr->rdata) {
		return KHSM_ENOMEM;
	}
	lower(rr->owner);
	return KHSM_EOK;
}

_public_
int khsm_reply_parse(const char *text, khsm_reply_t *reply)
{
	if (!text || !reply) {
		return KHSM_EINVAL;
	}
	khsm_reply_t rep = { 0 };
	bool header = false, flags = false;
	size_t lineno = 0;
	int r = KHSM_EOK;
	for (const char *p = text; *p; ) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		lineno++;
		_cleanup_free_ char *line = strndup(p, len);
		if (!line) {
			r = KHSM_ENOMEM;
			goto fail;
		}
		p = end ? end + 1 : p + len;
		if (line[strspn(line, " \t\r")] == '\0') {
			continue;
		}
		bool ok;
		if (strncmp(line, ";; ->>HEADER<<- ", 16) == 0) {
			ok = !header && parse_header(line, &rep);
			header = true;
		} else if (strncmp(line, ";; Flags:", 9) == 0) {
			ok = header && !flags && rep.count == 0 && parse_flags(line, &rep);
			flags = true;
		} else if (line[0] == ';') {
			ok = false;
		} else {
			ok = header && flags;
			if (ok) {
				r = parse_record(line, &rep);
				if (r == KHSM_ENOMEM) {
					goto fail;
				}
				ok = r == KHSM_EOK;
			}
		}
		if (!ok) {
			khsm_err_detail("kdig output line %zu unexpected: '%.200s'", lineno, line);
			r = KHSM_EPARSE;
			goto fail;
		}
	}
	if (!header || !flags) {
		khsm_err_detail("kdig printed no reply header");
		r = KHSM_EPARSE;
		goto fail;
	}
	*reply = rep;
	return KHSM_EOK;
fail:
	khsm_reply_clear(&rep);
	return r;
}

static bool is_hex(const char *s)
{
	for (; *s; s++) {
		if (!isxdigit((unsigned char)*s)) {
			return false;
		}
	}
	return true;
}

/* "TAG ALG TYPE HEX [HEX…]" into a DS. */
static int parse_ds_rdata(const char *owner, const char *rdata, khsm_ds_t *ds)
{
	_cleanup_free_ char *copy = strdup(rdata);
	if (!copy) {
		return KHSM_ENOMEM;
	}
	char *tok[64];
	size_t n = split(copy, tok, KHSM_ARRAY_SIZE(tok));
	uint64_t tag, alg, type;
	if (n < 4 || n == KHSM_ARRAY_SIZE(tok) || !khsm_parse_u64(tok[0], UINT16_MAX, &tag) ||
	    !khsm_parse_u64(tok[1], 255, &alg) || !khsm_parse_u64(tok[2], 255, &type)) {
		return KHSM_EPARSE;
	}
	char hex[1024] = "";
	size_t used = 0;
	for (size_t i = 3; i < n; i++) {
		size_t len = strlen(tok[i]);
		if (!is_hex(tok[i]) || used + len >= sizeof(hex)) {
			return KHSM_EPARSE;
		}
		memcpy(hex + used, tok[i], len + 1);
		used += len;
	}
	if (used == 0 || used % 2) {
		return KHSM_EPARSE;
	}
	lower(hex);
	*ds = (khsm_ds_t){ .tag = (uint16_t)tag, .algorithm = (uint8_t)alg,
	                   .digest_type = (uint8_t)type };
	ds->owner = strdup(owner);
	ds->digest = strdup(hex);
	if (!ds->owner || !ds->digest) {
		free(ds->owner);
		free(ds->digest);
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

/* Append "NAME DS RDATA" as a line to *list. */
static int add_malformed(char **list, const char *name, const char *rdata)
{
	char *grown = NULL;
	if (asprintf(&grown, "%s%s%s DS %.200s", *list ? *list : "", *list ? "\n" : "", name, rdata) < 0) {
		return KHSM_ENOMEM;
	}
	free(*list);
	*list = grown;
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
		if (strcmp(rr->owner, name) != 0 || strcmp(rr->type, "DS") != 0) {
			khsm_err_detail("unexpected record in the answer for %s DS: %s %s %.100s",
			                name, rr->owner, rr->type, rr->rdata);
			r = KHSM_EPARSE;
			goto fail;
		}
		khsm_ds_t *grown = realloc(ds, (count + 1) * sizeof(*grown));
		if (!grown) {
			r = KHSM_ENOMEM;
			goto fail;
		}
		ds = grown;
		r = parse_ds_rdata(name, rr->rdata, &ds[count]);
		if (r == KHSM_EPARSE && malformed_ptr) {
			/* Judged alone: the other records of the set still count. */
			if ((r = add_malformed(&malformed, name, rr->rdata)) != KHSM_EOK) {
				goto fail;
			}
			continue;
		}
		if (r != KHSM_EOK) {
			if (r == KHSM_EPARSE) {
				khsm_err_detail("malformed DS record: %s DS %.200s", name, rr->rdata);
			}
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

/* -- asking with kdig -- */

/* Rewrite the recorded detail as "what: detail" (the detail is copied first:
 * it lives in the buffer being written). */
static void detail_prefix(const char *what, const char *fallback)
{
	const char *d = khsm_err_last_detail();
	_cleanup_free_ char *copy = strdup(d ? d : fallback);
	khsm_err_detail("%s: %s", what, copy ? copy : fallback);
}

/* The line of kdig's stderr worth showing: ";; ERROR: …" or the first one. */
static char *kdig_error(const char *err)
{
	const char *p = strstr(err, ";; ERROR: ");
	if (p) {
		p += strlen(";; ERROR: ");
	} else {
		p = err;
	}
	return strndup(p, strcspn(p, "\n"));
}

/* Run kdig with args (NULL-terminated, after the program name) and parse its reply.
 * what names the query in error details. */
static int kdig(const char *const args[], const char *what, khsm_reply_t *reply)
{
	const char *argv[24] = { khsm_tool_path("kdig") };
	size_t n = 1;
	for (size_t i = 0; args[i]; i++) {
		if (n >= KHSM_ARRAY_SIZE(argv) - 1) {
			return KHSM_EINVAL;
		}
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r == KHSM_ENOENT) {
		khsm_err_detail("%s not found; install knot-dnsutils (kdig)", argv[0]);
		return KHSM_ETOOL;
	}
	if (r != KHSM_EOK) {
		return r;
	}
	if (res.status != 0) {
		_cleanup_free_ char *line = kdig_error(res.err[0] ? res.err : res.out);
		khsm_err_detail("%s: kdig failed: %s", what, line && *line ? line : "no message");
		khsm_run_clear(&res);
		return KHSM_ETOOL;
	}
	r = khsm_reply_parse(res.out, reply);
	khsm_run_clear(&res);
	if (r == KHSM_EPARSE) {
		detail_prefix(what, "kdig output not understood");
	}
	return r;
}

/* Ask server (no recursion) for name's DS, showing the header and one
 * section of the reply ("+answer" or "+authority"). */
static int ask_ds(const khsm_server_t *server, const char *name, const char *section,
                  const char *what, khsm_reply_t *reply)
{
	char at[300], port[8];
	snprintf(at, sizeof(at), "@%s", server->address);
	snprintf(port, sizeof(port), "%u", (unsigned)server->port);
	const char *args[] = { at, "-p", port, "-q", name, "-t", "DS", "+norec", "+noidn",
	                       "+noall", "+header", section, KDIG_TIMEOUT, KDIG_RETRY, NULL };
	return kdig(args, what, reply);
}

/* An empty DS answer from a server of the zone itself (server= naming the
 * child) would read as "the parent has none": a child-only server answers a
 * DS query with the child's own SOA (RFC 4035, 3.1.4.1), a parent server with
 * the parent's. Only a clear answer counts: when this second question fails,
 * the empty answer stands, so a parent server that lacks the DS is never
 * dropped from the servers that must have it. */
static bool answers_from_child(const khsm_server_t *server, const char *name)
{
	khsm_reply_t reply = { 0 };
	bool child = false;
	if (ask_ds(server, name, "+authority", name, &reply) == KHSM_EOK && reply.aa &&
	    strcmp(reply.rcode, "NOERROR") == 0) {
		for (size_t i = 0; i < reply.count && !child; i++) {
			child = strcmp(reply.rrs[i].type, "SOA") == 0 && strcmp(reply.rrs[i].owner, name) == 0;
		}
	}
	khsm_err_clear();
	khsm_reply_clear(&reply);
	return child;
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
	r = ask_ds(server, name, "+answer", what, &reply);
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
		} else if (r == KHSM_EOK && count == 0 && !malformed && answers_from_child(server, name)) {
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

/* Ask the system resolver for name/type (recursion on). */
static int resolve(const char *name, const char *type, khsm_reply_t *reply)
{
	char what[300];
	snprintf(what, sizeof(what), "%s %s from the system resolver", name, type);
	const char *args[] = { "-q", name, "-t", type, "+noidn", "+noall", "+header", "+answer",
	                       KDIG_TIMEOUT, KDIG_RETRY, NULL };
	return kdig(args, what, reply);
}

/* Append a server; takes nothing over. */
static int add_server(khsm_server_t **list, size_t *count, const char *name, const char *address)
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
	*s = (khsm_server_t){ .port = 53, .name = strdup(name), .address = strdup(address) };
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
	int r = khsm_zone_normalize(zone, &name);
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
		r = resolve(parent, "NS", &ns);
		if (r != KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			_cleanup_free_ char *why = strdup(d ? d : khsm_strerror(r));
			khsm_err_detail("cannot find the servers of the parent zone of %s (%s); "
			                "name one with server=ADDR[@PORT]", name, why ? why : "");
			return r;
		}
		ns_count = 0;
		for (size_t i = 0; i < ns.count; i++) {
			if (strcmp(ns.rrs[i].type, "NS") == 0 && strcmp(ns.rrs[i].owner, parent) == 0) {
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
		if (strcmp(rr->type, "NS") != 0 || strcmp(rr->owner, parent) != 0) {
			continue;
		}
		_cleanup_free_ char *host = strdup(rr->rdata);
		if (!host) {
			r = KHSM_ENOMEM;
			break;
		}
		lower(host);
		static const char *const TYPES[] = { "A", "AAAA" };
		for (size_t t = 0; t < KHSM_ARRAY_SIZE(TYPES) && r == KHSM_EOK; t++) {
			khsm_reply_t addr = { 0 };
			if (resolve(host, TYPES[t], &addr) != KHSM_EOK) {
				khsm_err_clear();
				continue; /* another name or family may do */
			}
			for (size_t j = 0; j < addr.count && r == KHSM_EOK; j++) {
				if (strcmp(addr.rrs[j].type, TYPES[t]) == 0) {
					r = add_server(&servers, &count, host, addr.rrs[j].rdata);
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
