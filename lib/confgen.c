/* knot.conf rendering: keystore, policy and zone stanzas for the chosen mode.
 * Values are checked before they are written; policy.c owns the numbers. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "confgen.h"
#include "dnskey.h"
#include "error.h"
#include "files.h"
#include "internal.h"
#include "run.h"

_public_
int khsm_confgen_check_id(const char *id)
{
	if (!id || !*id) {
		khsm_err_detail("empty keystore id");
		return KHSM_EINVAL;
	}
	for (const char *p = id; *p; p++) {
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') {
			khsm_err_detail("id '%s' has '%c'; use letters, digits, '-', '_' or '.'", id, *p);
			return KHSM_EINVAL;
		}
	}
	return KHSM_EOK;
}

_public_
int khsm_confgen_keystore(const char *id, const char *config, bool key_label, char **text_ptr)
{
	if (!config || !text_ptr) {
		return KHSM_EINVAL;
	}
	int r = khsm_confgen_check_id(id);
	if (r != KHSM_EOK) {
		return r;
	}
	/* Inside a double-quoted knot.conf string these would need escaping. */
	if (strpbrk(config, "\"\\\n\r")) {
		khsm_err_detail("keystore config contains a quote, backslash or newline");
		return KHSM_EINVAL;
	}
	char *text = NULL;
	if (asprintf(&text,
	             "keystore:\n"
	             "  - id: %s\n"
	             "    backend: pkcs11\n"
	             "    config: \"%s\"\n"
	             "    key-label: %s\n",
	             id, config, key_label ? "on" : "off") < 0) {
		return KHSM_ENOMEM;
	}
	*text_ptr = text;
	return KHSM_EOK;
}

/* -- the include files of policy= (both modes) ------------------------------ */

typedef struct {
	char *buf;
	size_t len;
	bool failed;
} sb_t;

static void sb_add(sb_t *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb_t *sb, const char *fmt, ...)
{
	if (sb->failed) {
		return;
	}
	va_list ap;
	va_start(ap, fmt);
	char *piece = NULL;
	int n = vasprintf(&piece, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->failed = true;
		return;
	}
	char *grown = realloc(sb->buf, sb->len + (size_t)n + 1);
	if (!grown) {
		free(piece);
		sb->failed = true;
		return;
	}
	memcpy(grown + sb->len, piece, (size_t)n + 1);
	sb->buf = grown;
	sb->len += (size_t)n;
	free(piece);
}

static int sb_finish(sb_t *sb, char **text_ptr)
{
	if (sb->failed || !sb->buf) {
		free(sb->buf);
		return KHSM_ENOMEM;
	}
	*text_ptr = sb->buf;
	return KHSM_EOK;
}

static void add_duration(sb_t *sb, const char *key, int64_t secs)
{
	char d[32];
	khsm_duration_format(secs, d, sizeof(d));
	sb_add(sb, "    %s: %s\n", key, d);
}

/* Knot's default (rollover) is left unwritten. */
static void add_cds(sb_t *sb, const khsm_policy_t *p)
{
	if (p->cds != KHSM_CDS_ROLLOVER) {
		sb_add(sb, "    cds-cdnskey-publish: %s\n", khsm_cds_name(p->cds));
	}
}

static int check_render_input(const khsm_policy_t *p, const khsm_render_t *in, bool need_card)
{
	if (!p || !in || (in->zone_count && !in->zones)) {
		return KHSM_EINVAL;
	}
	int r = khsm_policy_check(p);
	if (r != KHSM_EOK) {
		return r;
	}
	const char *const values[] = { in->card_keystore_id, in->card_keystore_config,
	                               in->ksk_conf_path, in->ksk_kasp_db, in->zsk_conf_path };
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(values); i++) {
		if (values[i] && strpbrk(values[i], "\"\\\n\r")) {
			khsm_err_detail("'%s' has a quote, backslash or newline, which knot.conf cannot carry",
			                values[i]);
			return KHSM_EINVAL;
		}
	}
	for (size_t i = 0; i < in->more_count; i++) {
		if (!in->more_ids || !in->more_configs || khsm_confgen_check_id(in->more_ids[i]) != KHSM_EOK ||
		    strpbrk(in->more_configs[i], "\"\\\n\r")) {
			khsm_err_detail("keystore '%s' cannot be written to the policy",
			                in->more_ids ? in->more_ids[i] : "?");
			return KHSM_EINVAL;
		}
	}
	for (size_t i = 0; i < in->removed_count; i++) {
		if (strpbrk(in->removed[i], "\"\\\n\r #:")) {
			khsm_err_detail("zone name '%s' cannot be written to knot.conf", in->removed[i]);
			return KHSM_EINVAL;
		}
	}
	for (size_t i = 0; i < in->zone_count; i++) {
		if (strpbrk(in->zones[i], "\"\\\n\r #:")) {
			khsm_err_detail("zone name '%s' cannot be written to knot.conf", in->zones[i]);
			return KHSM_EINVAL;
		}
	}
	if (need_card && (!in->card_keystore_id || !in->card_keystore_config)) {
		khsm_err_detail("no pkcs11 keystore to put the KSK on");
		return KHSM_EINVAL;
	}
	return KHSM_EOK;
}

static void add_zone_list(sb_t *sb, const khsm_render_t *in)
{
	sb_add(sb, "# zones:");
	for (size_t i = 0; i < in->zone_count; i++) {
		sb_add(sb, " %s", in->zones[i]);
	}
	sb_add(sb, "\n");
	if (in->removed_count) {
		sb_add(sb, "# knot-hsm: removed:");
		for (size_t i = 0; i < in->removed_count; i++) {
			sb_add(sb, " %s", in->removed[i]);
		}
		sb_add(sb, "\n");
	}
}

_public_
int khsm_confgen_policy_main(const khsm_policy_t *p, const khsm_render_t *in, char **text_ptr)
{
	bool online = p && p->mode == KHSM_MODE_ONLINE;
	int r = check_render_input(p, in, online);
	if (r != KHSM_EOK) {
		return r;
	}
	if (!text_ptr || (!online && !in->ksk_conf_path)) {
		return KHSM_EINVAL;
	}
	sb_t sb = { 0 };
	const char *alg = khsm_algorithm_name(p->algorithm);
	sb_add(&sb, "%s\n", KHSM_POLICY_MARKER);
	if (online) {
		sb_add(&sb, "# knot-hsm online mode (Knot >= 3.5): KSK on the card, ZSK in software.\n");
		if (in->key_slots) {
			sb_add(&sb, "# knot-hsm: key-slots=%s\n", in->key_slots);
		}
	} else {
		sb_add(&sb, "# knot-hsm offline mode, ZSK side (knotd). The KSK side is %s;\n"
		            "# run 'knot-hsm ZONE... ceremony' before the pre-signed period ends.\n",
		       in->ksk_conf_path);
	}
	add_zone_list(&sb, in);
	sb_add(&sb, "# Each zone needs: dnssec-signing: on, dnssec-policy: %s\n", KHSM_POLICY_ID);
	sb_add(&sb, "keystore:\n");
	if (online) {
		sb_add(&sb, "  - id: %s\n"
		            "    backend: pkcs11\n"
		            "    config: \"%s\"\n"
		            "    key-label: on\n"
		            "    ksk-only: on\n",
		       KHSM_POLICY_CARD_ID, in->card_keystore_config);
	}
	sb_add(&sb, "  - id: %s\n"
	            "    backend: pem\n", KHSM_POLICY_PEM_ID);
	sb_add(&sb, "policy:\n"
	            "  - id: %s\n", KHSM_POLICY_ID);
	if (online) {
		/* Knot 3.5 makes KSKs on the first keystore, ZSKs on the first
		 * without ksk-only (PEM), and looks keys up in all: knot.conf's
		 * other cards come last, so a KSK made there (rollover
		 * keystore=ID) signs, and only its lookups touch that card. */
		if (in->more_count > 0) {
			sb_add(&sb, "    # the other cards of knot.conf, for a KSK made there (rollover keystore=ID)\n");
		}
		sb_add(&sb, "    keystore: [ %s, %s", KHSM_POLICY_CARD_ID, KHSM_POLICY_PEM_ID);
		for (size_t i = 0; i < in->more_count; i++) {
			sb_add(&sb, ", %s", in->more_ids[i]);
		}
		sb_add(&sb, " ]\n");
	} else {
		sb_add(&sb, "    keystore: %s\n", KHSM_POLICY_PEM_ID);
	}
	sb_add(&sb, "    algorithm: %s\n", alg ? alg : "ecdsap256sha256");
	if (online) {
		/* delete-delay: knotd keeps a removed KSK in KASP (and on the card)
		 * for knot-hsm rollover to see the end and delete it (delete-old=yes) */
		sb_add(&sb, "    manual: off\n"
		            "    ksk-lifetime: 0\n"
		            "    delete-delay: 14d\n");
		if (p->shared_ksk) {
			sb_add(&sb, "    ksk-shared: on\n");
		}
	} else {
		sb_add(&sb, "    manual: on\n"
		            "    offline-ksk: on\n");
	}
	add_duration(&sb, "zsk-lifetime", p->zsk_lifetime);
	add_duration(&sb, "dnskey-ttl", p->dnskey_ttl);
	add_duration(&sb, "zone-max-ttl", p->zone_max_ttl);
	if (!online) {
		char d[32];
		khsm_duration_format(p->propagation_delay, d, sizeof(d));
		sb_add(&sb, "    # %s to the secondaries plus the longest TTL: keymgr pregenerate spaces\n"
		            "    # ZSK events by this delay alone\n", d);
	}
	add_duration(&sb, "propagation-delay", khsm_policy_propagation_delay(p));
	add_duration(&sb, "rrsig-lifetime", p->rrsig_lifetime);
	add_duration(&sb, "rrsig-refresh", p->rrsig_refresh);
	if (khsm_policy_pre_refresh(p) > 0) {
		add_duration(&sb, "rrsig-pre-refresh", khsm_policy_pre_refresh(p));
	}
	add_cds(&sb, p);
	return sb_finish(&sb, text_ptr);
}

_public_
int khsm_confgen_policy_ksk(const khsm_policy_t *p, const khsm_render_t *in, char **text_ptr)
{
	int r = check_render_input(p, in, true);
	if (r != KHSM_EOK) {
		return r;
	}
	if (!text_ptr || !in->ksk_kasp_db || p->mode != KHSM_MODE_OFFLINE) {
		return KHSM_EINVAL;
	}
	sb_t sb = { 0 };
	const char *alg = khsm_algorithm_name(p->algorithm);
	sb_add(&sb, "%s\n", KHSM_POLICY_MARKER);
	sb_add(&sb, "# knot-hsm offline mode, KSK side: read by keymgr during 'knot-hsm ceremony',\n"
	            "# never by knotd. The KSK stays on the card of keystore %s.\n",
	       in->card_keystore_id);
	sb_add(&sb, "# knot-hsm: shared-ksk=%s\n", p->shared_ksk ? "yes" : "no");
	if (in->key_slots) {
		sb_add(&sb, "# knot-hsm: key-slots=%s\n", in->key_slots);
	}
	if (in->zsk_conf_path) {
		sb_add(&sb, "# knot-hsm: zsk-conf=%s\n", in->zsk_conf_path);
	}
	sb_add(&sb, "database:\n"
	            "    kasp-db: \"%s\"\n", in->ksk_kasp_db);
	sb_add(&sb, "keystore:\n"
	            "  - id: %s\n"
	            "    backend: pkcs11\n"
	            "    config: \"%s\"\n"
	            "    key-label: on\n",
	       in->card_keystore_id, in->card_keystore_config);
	for (size_t i = 0; i < in->more_count; i++) {
		sb_add(&sb, "  - id: %s\n"
		            "    backend: pkcs11\n"
		            "    config: \"%s\"\n"
		            "    key-label: on\n", in->more_ids[i], in->more_configs[i]);
	}
	sb_add(&sb, "policy:\n"
	            "  - id: %s\n"
	            "    keystore: %s\n"
	            "    algorithm: %s\n"
	            "    manual: on\n"
	            "    offline-ksk: on\n",
	       KHSM_POLICY_KSK_ID, in->card_keystore_id, alg ? alg : "ecdsap256sha256");
	add_duration(&sb, "dnskey-ttl", p->dnskey_ttl);
	add_duration(&sb, "zone-max-ttl", p->zone_max_ttl);
	add_duration(&sb, "rrsig-lifetime", p->rrsig_lifetime);
	add_duration(&sb, "rrsig-refresh", p->rrsig_refresh);
	if (khsm_policy_pre_refresh(p) > 0) {
		add_duration(&sb, "rrsig-pre-refresh", khsm_policy_pre_refresh(p));
	}
	/* offline the KSK side's signer makes the CDS and CDNSKEY (the SKR) */
	add_cds(&sb, p);
	sb_add(&sb, "zone:\n");
	for (size_t i = 0; i < in->zone_count; i++) {
		sb_add(&sb, "  - domain: %s\n"
		            "    dnssec-policy: %s\n", in->zones[i], KHSM_POLICY_KSK_ID);
	}
	return sb_finish(&sb, text_ptr);
}

/* -- the proof: Knot's own parser -- */

_public_
int khsm_confgen_knotc_check(const char *path)
{
	if (!path) {
		return KHSM_EINVAL;
	}
	const char *argv[] = { khsm_tool_path("knotc"), "-c", path, "conf-check", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	const char *e = strstr(res.err, "error:");
	if (!e) e = strstr(res.out, "error:");
	if (res.status != 0 || e) {
		const char *msg = e ? e : (res.err[0] ? res.err : res.out);
		size_t len = strcspn(msg, "\n");
		khsm_err_detail("knotc conf-check refuses the rendered configuration: %.*s", (int)len, msg);
		khsm_run_clear(&res);
		return KHSM_ECONFIG;
	}
	khsm_run_clear(&res);
	return KHSM_EOK;
}

/* -- checking the rendered files with knotc -- */

/* Does line say "include: X" with X (after quotes, relative to base) == target? */
static bool include_target(const char *line, size_t len, const char *base, char **abs_ptr)
{
	const char *kw = "include:";
	if (len < strlen(kw) || strncmp(line, kw, strlen(kw)) != 0) return false;
	const char *v = line + strlen(kw);
	const char *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t')) v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
	if (end - v >= 2 && (*v == '"' || *v == '\'') && end[-1] == *v) { v++; end--; }
	char *val = strndup(v, (size_t)(end - v));
	if (!val) return false;
	*abs_ptr = NULL;
	khsm_path_absolute(val, base, abs_ptr);
	free(val);
	return *abs_ptr != NULL;
}

/* A full configuration to check the include with: knot.conf with its
 * include of target (if any) pointing at the rendered file instead, other
 * relative includes made absolute; or knot.conf plus the rendered file.
 * *included says whether knot.conf already includes target. */
static int full_config(const char *conf_path, const char *target, const char *rendered,
                       char **text_ptr, bool *included)
{
	_cleanup_free_ char *text = NULL;
	_cleanup_free_ char *base = khsm_path_dir(conf_path);
	int r = khsm_file_read(conf_path, NULL, &text, NULL, NULL);
	if (r != KHSM_EOK || !base) return r != KHSM_EOK ? r : KHSM_ENOMEM;
	char *out = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&out, &len);
	if (!m) return KHSM_ENOMEM;
	*included = false;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		char *abs = NULL;
		if (include_target(p, l, base, &abs)) {
			if (target && khsm_path_same_file(abs, target)) {
				fprintf(m, "include: \"%s\"\n", rendered);
				*included = true;
			} else {
				fprintf(m, "include: \"%s\"\n", abs);
			}
			free(abs);
		} else {
			fprintf(m, "%.*s\n", (int)l, p);
		}
		p = nl ? nl + 1 : p + l;
	}
	if (!*included) {
		fprintf(m, "include: \"%s\"\n", rendered);
	}
	fclose(m);
	*text_ptr = out;
	return KHSM_EOK;
}

/* A temporary file name in dir, written 0600. */
static int temp_write(const char *dir, const char *name, const char *text, char **path_ptr)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", dir, name) < 0) return KHSM_ENOMEM;
	int r = khsm_file_write_atomic(p, text, strlen(text), 0600, 0);
	if (r != KHSM_EOK) { free(p); return r; }
	*path_ptr = p;
	return KHSM_EOK;
}

_public_
int khsm_confgen_knotc_check_rendered(const char *conf_path, const char *target, const char *main_text,
                                      const char *ksk_text, bool *included_ptr)
{
	if (!conf_path || !main_text || !included_ptr) {
		return KHSM_EINVAL;
	}
	char tmpdir[] = "/tmp/knot-hsm-policy.XXXXXX";
	const char *tmpbase = getenv("TMPDIR");
	_cleanup_free_ char *tmpl = NULL;
	if (asprintf(&tmpl, "%s/knot-hsm-policy.XXXXXX", tmpbase && *tmpbase ? tmpbase : "/tmp") < 0) tmpl = NULL;
	char *d = tmpl ? mkdtemp(tmpl) : mkdtemp(tmpdir);
	if (!d) {
		khsm_err_detail("cannot create a temporary directory: %s", strerror(errno));
		return KHSM_EIO;
	}
	_cleanup_free_ char *t_main = NULL, *t_full = NULL, *t_ksk = NULL, *full_text = NULL;
	bool included = false;
	int r = temp_write(d, "include.conf", main_text, &t_main);
	if (r == KHSM_EOK) r = full_config(conf_path, target, t_main, &full_text, &included);
	if (r == KHSM_EOK) r = temp_write(d, "full.conf", full_text, &t_full);
	if (r == KHSM_EOK) r = khsm_confgen_knotc_check(t_full);
	if (r == KHSM_EOK && ksk_text) {
		r = temp_write(d, "ksk.conf", ksk_text, &t_ksk);
		if (r == KHSM_EOK) r = khsm_confgen_knotc_check(t_ksk);
		if (r != KHSM_EOK) {
			khsm_err_prefix("KSK side: ");
		}
	}
	if (t_main) unlink(t_main);
	if (t_full) unlink(t_full);
	if (t_ksk) unlink(t_ksk);
	rmdir(d);
	if (r != KHSM_EOK) {
		return r;
	}
	*included_ptr = included;
	return KHSM_EOK;
}
