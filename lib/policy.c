/* Policy lifetimes, their arithmetic and the include files written for them
 * (the knot.conf text itself: confgen.c).
 *
 * Defaults and why:
 *  zsk-lifetime 30d       a monthly ZSK roll, as Knot's own default.
 *  rrsig-lifetime 21d     with rrsig-refresh 10d, a DNSKEY signature always has
 *  rrsig-refresh 10d      at least 10 days left: online mode survives a card
 *                         outage of 10 days (goal: 7), and the card signs the
 *                         DNSKEY set about every 11 days.
 *  dnskey-ttl 1h          short enough for quick rollovers.
 *  zone-max-ttl 1d        explicit, as offline-ksk requires; covers usual zones.
 *  propagation-delay 1h   to the secondaries.
 *  algorithm 13           ECDSA P-256: fast on cards, small signatures.
 *  offline ceremony: until=+90d monthly, so a card outage of 90 - 31 days plus
 *  the validity of the last pre-signed DNSKEY signature is survived.
 *
 * Knot 3.2.6 `keymgr pregenerate` spaces the ZSK events (publish -> active,
 * retire -> remove) by propagation-delay alone until an SKR with the DNSKEY
 * TTL has been imported (measured: propagation-delay 1000 s, dnskey-ttl
 * 7200 s, zone-max-ttl 10800 s gave events 1000 s apart). The ZSK side is
 * therefore given propagation-delay + max(dnskey-ttl, zone-max-ttl), so that
 * a new ZSK is in every cache before it signs and an old one stays until
 * the last signature it made has left them. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dnskey.h"
#include "error.h"
#include "files.h"
#include "internal.h"
#include "policy.h"

#define DAY  86400
#define YEAR (365 * DAY)

/* -- durations ------------------------------------------------------------- */

_public_
int khsm_duration_parse(const char *text, int64_t *secs_ptr)
{
	if (!text || !secs_ptr) {
		return KHSM_EINVAL;
	}
	const char *p = text;
	int64_t v = 0;
	if (*p < '0' || *p > '9') {
		khsm_err_detail("'%s' is not a duration: write a number with an optional unit s, m, h or d "
		                "(e.g. 30d)", text);
		return KHSM_EINVAL;
	}
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - 9) / 10) {
			khsm_err_detail("duration '%s' is too large", text);
			return KHSM_ERANGE;
		}
		v = v * 10 + (*p - '0');
	}
	int64_t mult = 1;
	switch (*p) {
	case '\0': break;
	case 's': mult = 1; p++; break;
	case 'm': mult = 60; p++; break;
	case 'h': mult = 3600; p++; break;
	case 'd': mult = DAY; p++; break;
	default:
		khsm_err_detail("'%s': unknown unit '%s'; Knot's units are s, m, h and d", text, p);
		return KHSM_EINVAL;
	}
	if (*p != '\0') {
		khsm_err_detail("'%s': trailing '%s' after the unit", text, p);
		return KHSM_EINVAL;
	}
	/* Knot stores times as 32-bit seconds. */
	if (v > UINT32_MAX / mult) {
		khsm_err_detail("duration '%s' is too large for Knot", text);
		return KHSM_ERANGE;
	}
	*secs_ptr = v * mult;
	return KHSM_EOK;
}

_public_
void khsm_duration_format(int64_t secs, char *buf, size_t size)
{
	if (secs == 0) {
		snprintf(buf, size, "0");
	} else if (secs % DAY == 0) {
		snprintf(buf, size, "%" PRId64 "d", secs / DAY);
	} else if (secs % 3600 == 0) {
		snprintf(buf, size, "%" PRId64 "h", secs / 3600);
	} else if (secs % 60 == 0) {
		snprintf(buf, size, "%" PRId64 "m", secs / 60);
	} else {
		snprintf(buf, size, "%" PRId64 "s", secs);
	}
}

_public_
void khsm_duration_human(int64_t secs, char *buf, size_t size)
{
	const char *sign = secs < 0 ? "-" : "";
	int64_t a = secs < 0 ? -secs : secs;
	int64_t d = a / DAY, h = (a % DAY) / 3600, m = (a % 3600) / 60, s = a % 60;
	if (d > 0 && h > 0) {
		snprintf(buf, size, "%s%" PRId64 " day%s %" PRId64 " hour%s", sign, d, d == 1 ? "" : "s",
		         h, h == 1 ? "" : "s");
	} else if (d > 0) {
		snprintf(buf, size, "%s%" PRId64 " day%s", sign, d, d == 1 ? "" : "s");
	} else if (h > 0) {
		snprintf(buf, size, "%s%" PRId64 " hour%s", sign, h, h == 1 ? "" : "s");
	} else if (m > 0) {
		snprintf(buf, size, "%s%" PRId64 " minute%s", sign, m, m == 1 ? "" : "s");
	} else {
		snprintf(buf, size, "%s%" PRId64 " second%s", sign, s, s == 1 ? "" : "s");
	}
}

/* -- modes ----------------------------------------------------------------- */

_public_
int khsm_mode_from_name(const char *name, khsm_mode_t *mode_ptr)
{
	if (name && strcmp(name, "offline") == 0) {
		*mode_ptr = KHSM_MODE_OFFLINE;
	} else if (name && strcmp(name, "online") == 0) {
		*mode_ptr = KHSM_MODE_ONLINE;
	} else {
		khsm_err_detail("mode '%s': use offline or online", name ? name : "");
		return KHSM_EINVAL;
	}
	return KHSM_EOK;
}

_public_
const char *khsm_mode_name(khsm_mode_t mode)
{
	return mode == KHSM_MODE_ONLINE ? "online" : "offline";
}

static bool knot_at_least(int major, int minor, int want_major, int want_minor)
{
	return major > want_major || (major == want_major && minor >= want_minor);
}

_public_
khsm_mode_t khsm_mode_default(int major, int minor)
{
	return knot_at_least(major, minor, 3, 5) ? KHSM_MODE_ONLINE : KHSM_MODE_OFFLINE;
}

_public_
int khsm_mode_supported(khsm_mode_t mode, int major, int minor)
{
	if (mode == KHSM_MODE_ONLINE && !knot_at_least(major, minor, 3, 5)) {
		khsm_err_detail("online mode needs Knot 3.5 or later (installed: %d.%d): before 3.5 a "
		                "policy has one keystore, so the card KSK and a software ZSK cannot share "
		                "a policy; use mode=offline (KSK signs pre-generated DNSKEY sets in a "
		                "ceremony)", major, minor);
		return KHSM_ENOTSUP;
	}
	if (mode == KHSM_MODE_OFFLINE && !knot_at_least(major, minor, 3, 2)) {
		khsm_err_detail("offline mode is checked on Knot 3.2 and later (installed: %d.%d)",
		                major, minor);
		return KHSM_ENOTSUP;
	}
	return KHSM_EOK;
}

/* -- options --------------------------------------------------------------- */

_public_
void khsm_policy_defaults(khsm_policy_t *policy, khsm_mode_t mode)
{
	*policy = (khsm_policy_t) {
		.mode = mode,
		.zsk_lifetime = 30 * DAY,
		.rrsig_lifetime = 21 * DAY,
		.rrsig_refresh = 10 * DAY,
		.dnskey_ttl = 3600,
		.zone_max_ttl = DAY,
		.propagation_delay = 3600,
		.algorithm = 13,
		.shared_ksk = false,
		.until = KHSM_CEREMONY_UNTIL,
		.interval = KHSM_CEREMONY_INTERVAL,
	};
}

/* A knot.conf duration as knotc exports it, or fallback when unset. */
static int64_t conf_secs(const char *text, int64_t fallback)
{
	int64_t v = 0;
	if (text && khsm_duration_parse(text, &v) == KHSM_EOK) {
		return v;
	}
	khsm_err_clear();
	return fallback;
}

static const char *const CDS_NAMES[] = {
	[KHSM_CDS_ROLLOVER] = "rollover", [KHSM_CDS_NONE] = "none",
	[KHSM_CDS_ALWAYS] = "always", [KHSM_CDS_DOUBLE_DS] = "double-ds",
};

_public_
int khsm_cds_from_name(const char *name, khsm_cds_t *cds_ptr)
{
	for (size_t i = 0; name && cds_ptr && i < KHSM_ARRAY_SIZE(CDS_NAMES); i++) {
		if (strcmp(name, CDS_NAMES[i]) == 0) {
			*cds_ptr = (khsm_cds_t)i;
			return KHSM_EOK;
		}
	}
	khsm_err_detail("cds= takes rollover, none, always or double-ds, not '%s'", name ? name : "");
	return KHSM_EINVAL;
}

_public_
const char *khsm_cds_name(khsm_cds_t cds)
{
	return (size_t)cds < KHSM_ARRAY_SIZE(CDS_NAMES) ? CDS_NAMES[cds] : "rollover";
}

_public_
void khsm_policy_from_conf(const khsm_conf_policy_t *cp, khsm_policy_t *policy)
{
	static const khsm_conf_policy_t none = { 0 };
	if (!cp) {
		cp = &none;
	}
	khsm_policy_defaults(policy, cp->offline_ksk ? KHSM_MODE_OFFLINE : KHSM_MODE_ONLINE);
	/* Knot's defaults where the policy sets nothing: rrsig-lifetime 14
	 * days, a refresh of about a tenth of it, zsk-lifetime 30 days. */
	policy->zsk_lifetime = conf_secs(cp->zsk_lifetime, 30 * DAY);
	policy->rrsig_lifetime = conf_secs(cp->rrsig_lifetime, 14 * DAY);
	policy->rrsig_refresh = conf_secs(cp->rrsig_refresh, policy->rrsig_lifetime / 10);
	policy->dnskey_ttl = conf_secs(cp->dnskey_ttl, policy->dnskey_ttl);
	policy->zone_max_ttl = conf_secs(cp->zone_max_ttl, policy->zone_max_ttl);
	policy->propagation_delay = conf_secs(cp->propagation_delay, policy->propagation_delay);
	if (policy->mode == KHSM_MODE_OFFLINE) {
		/* knotd's is the real one plus the longest TTL (khsm_policy_propagation_delay) */
		int64_t ttl = policy->dnskey_ttl > policy->zone_max_ttl ? policy->dnskey_ttl : policy->zone_max_ttl;
		policy->propagation_delay = policy->propagation_delay > ttl ? policy->propagation_delay - ttl : 0;
	}
	int alg = 0;
	if (cp->algorithm && khsm_algorithm_from_name(cp->algorithm, &alg) == KHSM_EOK) {
		policy->algorithm = alg;
	}
	if (cp->cds_cdnskey_publish) (void)khsm_cds_from_name(cp->cds_cdnskey_publish, &policy->cds);
	khsm_err_clear();
}

_public_
int khsm_policy_set(khsm_policy_t *policy, const char *key, const char *value)
{
	if (!policy || !key || !value) {
		return KHSM_EINVAL;
	}
	struct { const char *key; int64_t *field; } durations[] = {
		{ "zsk-lifetime", &policy->zsk_lifetime },
		{ "rrsig-lifetime", &policy->rrsig_lifetime },
		{ "rrsig-refresh", &policy->rrsig_refresh },
		{ "dnskey-ttl", &policy->dnskey_ttl },
		{ "zone-max-ttl", &policy->zone_max_ttl },
		{ "propagation-delay", &policy->propagation_delay },
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(durations); i++) {
		if (strcmp(key, durations[i].key) == 0) {
			int64_t v = 0;
			int r = khsm_duration_parse(value, &v);
			if (r != KHSM_EOK) {
				khsm_err_prefix("%s=: ", key);
				return r;
			}
			*durations[i].field = v;
			return KHSM_EOK;
		}
	}
	if (strcmp(key, "algorithm") == 0) {
		char *end = NULL;
		long n = strtol(value, &end, 10);
		int alg = 0;
		if (*value && !*end) {
			if (!khsm_algorithm_name((int)n) || n <= 0 || n > 255) {
				khsm_err_detail("algorithm=%s: not an algorithm Knot signs with", value);
				return KHSM_EINVAL;
			}
			alg = (int)n;
		} else if (khsm_algorithm_from_name(value, &alg) != KHSM_EOK) {
			khsm_err_detail("algorithm=%s: use ecdsap256sha256, ecdsap384sha384, rsasha256, "
			                "rsasha512, ed25519 or ed448", value);
			return KHSM_EINVAL;
		}
		policy->algorithm = alg;
		return KHSM_EOK;
	}
	if (strcmp(key, "shared-ksk") == 0) {
		if (strcmp(value, "yes") == 0) {
			policy->shared_ksk = true;
		} else if (strcmp(value, "no") == 0) {
			policy->shared_ksk = false;
		} else {
			khsm_err_detail("shared-ksk= takes yes or no, not '%s'", value);
			return KHSM_EINVAL;
		}
		return KHSM_EOK;
	}
	if (strcmp(key, "cds") == 0) {
		return khsm_cds_from_name(value, &policy->cds);
	}
	khsm_err_detail("unknown policy option '%s'", key);
	return KHSM_ENOENT;
}

/* The rrsig-pre-refresh Knot would default to (1h) must fit:
 * refresh + pre-refresh < lifetime. Short test policies get a smaller one. */
_public_
int64_t khsm_policy_pre_refresh(const khsm_policy_t *p)
{
	if (p->rrsig_refresh + 3600 < p->rrsig_lifetime) {
		return -1;   /* Knot's default is fine: not rendered */
	}
	int64_t v = (p->rrsig_lifetime - p->rrsig_refresh) / 4;
	return v < 1 ? 1 : v;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

_public_
int64_t khsm_policy_propagation_delay(const khsm_policy_t *p)
{
	if (p->mode == KHSM_MODE_ONLINE) {
		return p->propagation_delay;
	}
	return p->propagation_delay + max64(p->dnskey_ttl, p->zone_max_ttl);
}

_public_
int khsm_policy_check(const khsm_policy_t *p)
{
	char a[32], b[32];
	if (!p) {
		return KHSM_EINVAL;
	}
	if (p->rrsig_lifetime <= 0 || p->rrsig_refresh <= 0) {
		khsm_err_detail("rrsig-lifetime and rrsig-refresh must be above 0");
		return KHSM_EINVAL;
	}
	if (p->rrsig_refresh >= p->rrsig_lifetime) {
		khsm_duration_format(p->rrsig_refresh, a, sizeof(a));
		khsm_duration_format(p->rrsig_lifetime, b, sizeof(b));
		khsm_err_detail("rrsig-refresh=%s is not below rrsig-lifetime=%s: signatures would be "
		                "refreshed before they are made; lower rrsig-refresh", a, b);
		return KHSM_EINVAL;
	}
	if (p->dnskey_ttl <= 0 || p->zone_max_ttl <= 0) {
		khsm_err_detail("dnskey-ttl and zone-max-ttl must be above 0 (offline-ksk needs them explicit)");
		return KHSM_EINVAL;
	}
	int64_t ttl = max64(p->dnskey_ttl, p->zone_max_ttl);
	if (p->rrsig_refresh <= ttl) {
		khsm_duration_format(p->rrsig_refresh, a, sizeof(a));
		khsm_duration_format(ttl, b, sizeof(b));
		khsm_err_detail("rrsig-refresh=%s is not above the longest TTL (%s): resolvers would keep "
		                "records whose signatures have expired; raise rrsig-refresh or lower the TTLs",
		                a, b);
		return KHSM_EINVAL;
	}
	if (p->zsk_lifetime < 0 || p->propagation_delay < 0) {
		return KHSM_EINVAL;
	}
	if (p->zsk_lifetime != 0 && p->zsk_lifetime <= 2 * khsm_policy_propagation_delay(p)) {
		khsm_duration_format(p->zsk_lifetime, a, sizeof(a));
		khsm_duration_format(2 * khsm_policy_propagation_delay(p), b, sizeof(b));
		khsm_err_detail("zsk-lifetime=%s is not above %s, the time a ZSK rollover needs "
		                "(twice propagation-delay%s); raise zsk-lifetime", a, b,
		                p->mode == KHSM_MODE_OFFLINE ? " plus the longest TTL" : "");
		return KHSM_EINVAL;
	}
	if (p->mode == KHSM_MODE_OFFLINE && (p->until <= 0 || p->interval <= 0 || p->interval >= p->until)) {
		khsm_err_detail("the ceremony must run more often than its horizon (until=) reaches");
		return KHSM_EINVAL;
	}
	return KHSM_EOK;
}

/* -- arithmetic ------------------------------------------------------------ */

/* Moments the card signs the zone's DNSKEY set, from 0 to horizon: at 0, then
 * whenever the set changes (a ZSK is published, becomes active, is removed:
 * zsk-lifetime apart, the two later steps propagation-delay after the one
 * before), and whenever its signature has only rrsig-refresh left, i.e.
 * rrsig-lifetime - rrsig-refresh after the last signature. Returns their
 * number; *peak_day (may be NULL) is the most of them in any 24 hours. */
static uint64_t dnskey_signings(const khsm_policy_t *p, int64_t horizon, uint64_t *peak_day)
{
	int64_t delay = khsm_policy_propagation_delay(p);
	int64_t step = p->rrsig_lifetime - p->rrsig_refresh;
	int64_t active = 0;         /* activation of the current ZSK */
	int64_t events[3];
	size_t ev = 0, nev = 0;
	uint64_t count = 1;         /* the signature at time 0 */
	int64_t last = 0;
	/* The moments of the last 24 hours, oldest at head (grown as needed). */
	int64_t *day = NULL;
	size_t cap = 0, head = 0, in_day = 0;
	uint64_t peak = 1;
	bool counted = true;        /* false once memory ran out: no peak then */
	if (p->zsk_lifetime > 0) {
		events[0] = active + p->zsk_lifetime;
		events[1] = events[0] + delay;
		events[2] = events[1] + delay;
		nev = 3;
	}
	for (;;) {
		int64_t next = last + step;
		bool is_event = false;
		if (nev && events[ev] <= next) {
			next = events[ev];
			is_event = true;
		}
		if (next >= horizon) {
			break;
		}
		count++;
		last = next;
		while (in_day > 0 && day[head] <= next - DAY) {
			head++;
			in_day--;
		}
		if (counted && head + in_day == cap) {
			/* move the window to the front, then grow if it is still full */
			if (in_day > 0) {
				memmove(day, day + head, in_day * sizeof(*day));
			}
			head = 0;
			if (in_day == cap) {
				size_t ncap = cap ? 2 * cap : 16;
				int64_t *grown = realloc(day, ncap * sizeof(*day));
				if (grown) {
					day = grown;
					cap = ncap;
				} else {
					counted = false;
				}
			}
		}
		if (counted) {
			day[head + in_day++] = next;
			/* plus the signature at 0 while it is within the day */
			uint64_t n = in_day + (next < DAY ? 1 : 0);
			if (n > peak) {
				peak = n;
			}
		}
		if (is_event && ++ev == nev) {
			active = events[1];
			events[0] = active + p->zsk_lifetime;
			events[1] = events[0] + delay;
			events[2] = events[1] + delay;
			ev = 0;
		}
	}
	free(day);
	if (peak_day) {
		*peak_day = counted ? peak : 0;
	}
	return count;
}

_public_
int khsm_policy_stats(const khsm_policy_t *p, khsm_policy_stats_t *stats)
{
	int r = khsm_policy_check(p);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_policy_stats_t st = { 0 };
	st.card_signatures_per_year = dnskey_signings(p, YEAR, &st.card_signatures_peak_day);
	st.rendered_propagation_delay = khsm_policy_propagation_delay(p);
	if (p->mode == KHSM_MODE_OFFLINE) {
		/* Each ceremony signs the set at its start once more (the end of the
		 * previous SKR is the start of the next one). */
		st.card_signatures_per_year += (uint64_t)((YEAR + p->interval - 1) / p->interval);
		/* The busiest day is a ceremony's: it signs every set up to until. */
		st.card_signatures_peak_day = dnskey_signings(p, p->until, NULL);
		/* The card fails just before a ceremony: the last one ran an interval
		 * ago and reached until. After the last pre-signed set knotd keeps
		 * serving it ("using last offline KSK records available", 3.2.6) until
		 * its signature expires, rrsig-lifetime later. */
		st.outage_survived = p->until - p->interval + p->rrsig_lifetime;
	} else {
		/* knotd refreshes the DNSKEY signature when rrsig-refresh is left: a
		 * card that goes away at that moment leaves rrsig-refresh. */
		st.outage_survived = p->rrsig_refresh;
	}
	*stats = st;
	return KHSM_EOK;
}

_public_
bool khsm_policy_text_shared_ksk(const char *text)
{
	return text && strstr(text, "\n# knot-hsm: shared-ksk=yes\n") != NULL;
}

_public_
int khsm_policy_file_header(const char *path, const char *name, char **value_ptr)
{
	if (!path || !name || !value_ptr) {
		return KHSM_EINVAL;
	}
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0) close(fd);
		return KHSM_ENOENT;
	}
	_cleanup_free_ char *tag = NULL;
	if (asprintf(&tag, "# knot-hsm: %s=", name) < 0) {
		fclose(f);
		return KHSM_ENOMEM;
	}
	size_t tag_len = strlen(tag);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r = KHSM_ENOENT;
	bool first = true, marked = false;
	while (r == KHSM_ENOENT && (n = getline(&line, &cap, f)) > 0 && line[0] == '#') {
		if (n && line[n - 1] == '\n') line[--n] = '\0';
		if (first) {
			marked = strcmp(line, KHSM_POLICY_MARKER) == 0;
			first = false;
		} else if (marked && strncmp(line, tag, tag_len) == 0 && line[tag_len]) {
			*value_ptr = strdup(line + tag_len);
			r = *value_ptr ? KHSM_EOK : KHSM_ENOMEM;
		}
	}
	free(line);
	fclose(f);
	return r;
}

_public_
int khsm_policy_file_zsk_conf(const char *path, char **conf_ptr)
{
	return khsm_policy_file_header(path, "zsk-conf", conf_ptr);
}

_public_
int khsm_policy_ksk_path(const char *include_path, char **path_ptr)
{
	if (!include_path || !*include_path || !path_ptr) {
		return KHSM_EINVAL;
	}
	size_t len = strlen(include_path);
	const char *base = strrchr(include_path, '/');
	base = base ? base + 1 : include_path;
	char *out = NULL;
	int n;
	if (len > 5 && strcmp(include_path + len - 5, ".conf") == 0 && include_path + len - 5 > base) {
		n = asprintf(&out, "%.*s-ksk.conf", (int)(len - 5), include_path);
	} else if (*base) {
		n = asprintf(&out, "%s-ksk.conf", include_path);
	} else {
		khsm_err_detail("'%s' names a directory, not a file", include_path);
		return KHSM_EINVAL;
	}
	if (n < 0) {
		return KHSM_ENOMEM;
	}
	*path_ptr = out;
	return KHSM_EOK;
}

/* The pkcs11 keystore for the KSK: keystore=ID, else the only one of
 * knot.conf (knot-hsm's own online copy does not count). */
_public_
int khsm_policy_pick_card(const khsm_conf_t *conf, const char *want,
                          const khsm_conf_keystore_t **ks_ptr)
{
	const khsm_conf_keystore_t *found = NULL;
	size_t n = 0;
	for (size_t i = 0; i < khsm_conf_keystore_count(conf); i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(conf, i);
		if (!khsm_conf_keystore_is_pkcs11(ks)) continue;
		if (want ? strcmp(ks->id, want) == 0 : strcmp(ks->id, KHSM_POLICY_CARD_ID) != 0) {
			found = ks;
			n++;
		}
	}
	if (n == 0) {
		if (want) {
			khsm_err_detail("%s has no pkcs11 keystore '%s'", khsm_conf_path(conf), want);
		} else {
			khsm_err_detail("%s has no pkcs11 keystore for the card; add the stanza that "
			                "'knot-hsm keystore --token LABEL --pin-file FILE' prints",
			                khsm_conf_path(conf));
		}
		return KHSM_ENOENT;
	}
	if (n > 1) {
		khsm_err_detail("%s has several pkcs11 keystores; name one with keystore=ID",
		                khsm_conf_path(conf));
		return KHSM_EAMBIGUOUS;
	}
	*ks_ptr = found;
	return KHSM_EOK;
}

_public_
int khsm_policy_other_cards(const khsm_conf_t *conf, const khsm_conf_keystore_t *card,
                            const char ***ids_ptr, const char ***configs_ptr, size_t *count_ptr)
{
	if (!conf || !card || !ids_ptr || !configs_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	size_t n_ks = khsm_conf_keystore_count(conf), n = 0;
	_cleanup_free_ const char **ids = calloc(n_ks ? n_ks : 1, sizeof(char *));
	_cleanup_free_ const char **configs = calloc(n_ks ? n_ks : 1, sizeof(char *));
	if (!ids || !configs) {
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < n_ks; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(conf, i);
		if (khsm_conf_keystore_is_pkcs11(ks) && ks->config &&
		    strcmp(ks->id, card->id) != 0 && strcmp(ks->id, KHSM_POLICY_CARD_ID) != 0) {
			ids[n] = ks->id;
			configs[n++] = ks->config;
		}
	}
	*ids_ptr = KHSM_STEAL(ids);
	*configs_ptr = KHSM_STEAL(configs);
	*count_ptr = n;
	return KHSM_EOK;
}

/* Absolute form of path, relative paths taken from base_dir; NULL without memory. */
static char *absolute(const char *path, const char *base_dir)
{
	char *out = NULL;
	return khsm_path_absolute(path, base_dir, &out) == KHSM_EOK ? out : NULL;
}

_public_
int khsm_policy_plan_paths(const char *conf_path, const char *kasp_db, const char *write,
                           const char *ksk_conf, const char *ksk_kasp_db, khsm_policy_paths_t *out)
{
	if (!conf_path || !out) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *conf_real = realpath(conf_path, NULL);
	_cleanup_free_ char *conf_dir = khsm_path_dir(conf_real ? conf_real : conf_path);
	_cleanup_free_ char *kasp_parent = khsm_path_dir(kasp_db);
	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	const char *base = cwd ? cwd : ".";
	khsm_policy_paths_t p = { 0 };
	int r = KHSM_EOK;
	p.main_path = write ? absolute(write, base) : NULL;
	if (!p.main_path && asprintf(&p.main_path, "%s/knot-hsm.conf", conf_dir) < 0) p.main_path = NULL;
	if (ksk_conf) {
		p.ksk_path = absolute(ksk_conf, base);
	} else if (khsm_policy_ksk_path(p.main_path, &p.ksk_path) != KHSM_EOK) {
		p.ksk_path = NULL;
	}
	if (ksk_kasp_db) {
		p.ksk_db = absolute(ksk_kasp_db, base);
	} else if (asprintf(&p.ksk_db, "%s/knot-hsm-ksk", kasp_parent) < 0) {
		p.ksk_db = NULL;
	}
	if (!p.main_path || !p.ksk_path || !p.ksk_db) {
		r = KHSM_EINVAL;
		goto fail;
	}
	if (khsm_path_same_file(p.main_path, p.ksk_path) || khsm_path_same_file(p.main_path, conf_path) ||
	    khsm_path_same_file(p.ksk_path, conf_path)) {
		khsm_err_detail("the include, the KSK-side file and knot.conf must be three different files");
		r = KHSM_EEXIST;
		goto fail;
	}
	*out = p;
	return KHSM_EOK;
fail:
	khsm_policy_paths_clear(&p);
	return r;
}

_public_
void khsm_policy_paths_clear(khsm_policy_paths_t *paths)
{
	if (paths) {
		free(paths->main_path);
		free(paths->ksk_path);
		free(paths->ksk_db);
		*paths = (khsm_policy_paths_t) { 0 };
	}
}

/* "DIR/name", DIR the directory of knot.conf with its links resolved. */
static char *next_to_conf(const char *conf_path, const char *name)
{
	_cleanup_free_ char *real = conf_path ? realpath(conf_path, NULL) : NULL;
	_cleanup_free_ char *dir = conf_path ? khsm_path_dir(real ? real : conf_path) : NULL;
	char *out = NULL;
	if (dir && asprintf(&out, "%s/%s", dir, name) < 0) {
		out = NULL;
	}
	return out;
}

_public_
char *khsm_policy_ksk_side(const char *conf_path)
{
	return next_to_conf(conf_path, "knot-hsm-ksk.conf");
}

_public_
char *khsm_policy_include(const char *conf_path)
{
	return next_to_conf(conf_path, "knot-hsm.conf");
}

_public_
int khsm_policy_ksk_side_load(const char *path, khsm_conf_t **kconf_ptr)
{
	if (!kconf_ptr) {
		return KHSM_EINVAL;
	}
	*kconf_ptr = NULL;
	if (!path || access(path, R_OK) != 0) {
		return KHSM_EOK;
	}
	return khsm_conf_load(path, kconf_ptr);
}

/* -- writing the outputs ---------------------------------------------------- */



_public_
int khsm_policy_check_target(const char *path, bool force)
{
	if (!path) {
		return KHSM_EINVAL;
	}
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT) {
			return KHSM_EOK;
		}
		khsm_err_detail("cannot read %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	int r = khsm_file_refuse_special(path, &st);
	if (r != KHSM_EOK) {
		return r;
	}
	/* O_NONBLOCK: a FIFO swapped in after lstat() must not hang the open. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ELOOP) {
			return khsm_file_refuse_special(path, &(struct stat) { .st_mode = S_IFLNK });
		}
		khsm_err_detail("cannot read %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	if (fstat(fd, &st) != 0 || (r = khsm_file_refuse_special(path, &st)) != KHSM_EOK) {
		close(fd);
		return r != KHSM_EOK ? r : KHSM_EIO;
	}
	char line[128] = "";
	size_t len = 0;
	while (len < sizeof(line) - 1) {
		ssize_t n = read(fd, line + len, sizeof(line) - 1 - len);
		if (n < 0 && errno == EINTR) continue;
		if (n <= 0) break;
		len += (size_t)n;
	}
	close(fd);
	line[len] = '\0';
	line[strcspn(line, "\n")] = '\0';
	if (strcmp(line, KHSM_POLICY_MARKER) != 0 && !force) {
		khsm_err_detail("%s exists and was not written by knot-hsm (its first line is not '%s'); "
		                "knot-hsm never overwrites the operator's files: choose another file or "
		                "use --force", path, KHSM_POLICY_MARKER);
		return KHSM_EEXIST;
	}
	return KHSM_EOK;
}

_public_
int khsm_policy_make_dir(const char *path)
{
	if (!path) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *parent = NULL, *base = NULL;
	int r = khsm_path_split(path, &parent, &base);
	if (r != KHSM_EOK) {
		return r;
	}
	int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat pst;
	if (pfd < 0 || fstat(pfd, &pst) != 0) {
		khsm_err_detail("cannot open the directory %s: %s", parent, strerror(errno));
		if (pfd >= 0) close(pfd);
		return KHSM_EIO;
	}
	bool made = mkdirat(pfd, base, 0750) == 0;
	if (!made && errno != EEXIST) {
		khsm_err_detail("cannot create the KSK-side KASP directory %s: %s", path, strerror(errno));
		close(pfd);
		return KHSM_EIO;
	}
	int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int e = errno;
	struct stat st;
	bool link = fd < 0 && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
	close(pfd);
	if (fd < 0) {
		if (e == ELOOP || e == ENOTDIR) {
			khsm_err_detail("%s is not a directory (%s); remove it or give another ksk-kasp-db=",
			                path, link ? "a symbolic link" : "another kind of file");
			return KHSM_EPERM;
		}
		khsm_err_detail("cannot open the KSK-side KASP directory %s: %s", path, strerror(e));
		return KHSM_EIO;
	}
	/* The ceremony runs as the user that owns the KASP database (knot on
	 * Debian): a directory made by root gets the owner of its parent. */
	if (made && geteuid() == 0 && fchown(fd, pst.st_uid, pst.st_gid) != 0) {
		khsm_err_detail("cannot give %s the owner of %s: %s", path, parent, strerror(errno));
		close(fd);
		return KHSM_EPERM;
	}
	close(fd);
	return KHSM_EOK;
}
