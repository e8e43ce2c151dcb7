/* knot.conf through `knotc conf-export` and libknot's yparser. */
#include <ctype.h>
#include <errno.h>
#include <libknot/errcode.h>
#include <libknot/error.h>
#include <libknot/yparser/yparser.h>
#include <sys/stat.h>

#include "dname.h"
#include "error.h"
#include "files.h"
#include "internal.h"
#include "knotconf.h"
#include "run.h"

#define DEFAULT_CONF     "/etc/knot/knot.conf"
#define DEFAULT_STORAGE  "/var/lib/knot"   /* Debian's --with-storage */
#define DEFAULT_RUNDIR   "/run/knot"       /* Debian's --with-rundir */

typedef struct {
	char *id;
	char *policy;
	char *storage;
	bool signing;
	bool signing_set;
} template_t;

typedef struct {
	khsm_conf_zone_t pub;
	char *eff_storage;
} zone_entry_t;

struct khsm_conf {
	char *path;
	khsm_conf_keystore_t *keystores;
	size_t keystore_count;
	khsm_conf_policy_t *policies;
	size_t policy_count;
	template_t *templates;
	size_t template_count;
	zone_entry_t *zones;
	size_t zone_count;
	/* raw values as exported */
	char *raw_rundir, *raw_storage, *raw_kasp_db, *raw_listen;
	/* effective absolute paths */
	char *storage, *kasp_db, *rundir, *control;
};

typedef enum {
	SEC_OTHER = 0,
	SEC_SERVER,
	SEC_DATABASE,
	SEC_CONTROL,
	SEC_KEYSTORE,
	SEC_POLICY,
	SEC_TEMPLATE,
	SEC_ZONE,
} section_t;

/* -- freeing -- */

static void keystore_clear(khsm_conf_keystore_t *k)
{
	free(k->id);
	free(k->backend);
	free(k->config);
}

static void policy_clear(khsm_conf_policy_t *p)
{
	free(p->id);
	for (size_t i = 0; i < p->keystore_count; i++) {
		free(p->keystores[i]);
	}
	free(p->keystores);
	free(p->algorithm);
	free(p->ksk_lifetime);
	free(p->zsk_lifetime);
	free(p->rrsig_lifetime);
	free(p->rrsig_refresh);
	free(p->dnskey_ttl);
	free(p->zone_max_ttl);
	free(p->propagation_delay);
	free(p->cds_cdnskey_publish);
	free(p->cds_digest_type);
}

_public_
void khsm_conf_free(khsm_conf_t *conf)
{
	if (!conf) {
		return;
	}
	for (size_t i = 0; i < conf->keystore_count; i++) {
		keystore_clear(&conf->keystores[i]);
	}
	for (size_t i = 0; i < conf->policy_count; i++) {
		policy_clear(&conf->policies[i]);
	}
	for (size_t i = 0; i < conf->template_count; i++) {
		free(conf->templates[i].id);
		free(conf->templates[i].policy);
		free(conf->templates[i].storage);
	}
	for (size_t i = 0; i < conf->zone_count; i++) {
		free(conf->zones[i].pub.domain);
		free(conf->zones[i].pub.policy);
		free(conf->zones[i].pub.template_id);
		free(conf->zones[i].pub.storage);
		free(conf->zones[i].eff_storage);
	}
	free(conf->keystores);
	free(conf->policies);
	free(conf->templates);
	free(conf->zones);
	free(conf->path);
	free(conf->raw_rundir);
	free(conf->raw_storage);
	free(conf->raw_kasp_db);
	free(conf->raw_listen);
	free(conf->storage);
	free(conf->kasp_db);
	free(conf->rundir);
	free(conf->control);
	free(conf);
}

/* -- helpers -- */

/* Grow an array by one zeroed element; returns the new element or NULL. */
static void *array_push(void **array, size_t *count, size_t size)
{
	char *grown = realloc(*array, (*count + 1) * size);
	if (!grown) {
		return NULL;
	}
	memset(grown + *count * size, 0, size);
	*array = grown;
	return grown + (*count)++ * size;
}

/* Knot lets a single-valued item appear once; keep the first value. */
static int set_str(char **field, const char *value)
{
	if (*field) {
		return KHSM_EOK;
	}
	*field = strdup(value);
	return *field ? KHSM_EOK : KHSM_ENOMEM;
}

static int set_bool(bool *field, const char *value, size_t line, const char *key)
{
	if (strcmp(value, "on") == 0 || strcmp(value, "true") == 0) {
		*field = true;
	} else if (strcmp(value, "off") == 0 || strcmp(value, "false") == 0) {
		*field = false;
	} else {
		khsm_err_detail("exported configuration line %zu: '%s: %s' is not on/off", line, key, value);
		return KHSM_EPARSE;
	}
	return KHSM_EOK;
}

/* Lower-case with a final dot; NULL on allocation failure. */
static char *normalize_domain(const char *name)
{
	size_t len = strlen(name);
	bool dot = len > 0 && name[len - 1] == '.';
	char *out = malloc(len + 2);
	if (!out) {
		return NULL;
	}
	for (size_t i = 0; i < len; i++) {
		out[i] = (char)tolower((unsigned char)name[i]);
	}
	if (!dot) {
		out[len++] = '.';
	}
	out[len] = '\0';
	return out;
}

/* base + "/" + path unless path is absolute; NULL without memory. */
static char *join_path(const char *base, const char *path)
{
	char *out = NULL;
	return khsm_path_absolute(path, base, &out) == KHSM_EOK ? out : NULL;
}

/* -- parsing the export -- */

static section_t section_of(const char *key)
{
	static const struct { const char *name; section_t sec; } SECTIONS[] = {
		{ "server", SEC_SERVER }, { "database", SEC_DATABASE },
		{ "control", SEC_CONTROL }, { "keystore", SEC_KEYSTORE },
		{ "policy", SEC_POLICY }, { "template", SEC_TEMPLATE },
		{ "zone", SEC_ZONE },
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(SECTIONS); i++) {
		if (strcmp(key, SECTIONS[i].name) == 0) {
			return SECTIONS[i].sec;
		}
	}
	return SEC_OTHER;
}

static int new_entry(khsm_conf_t *conf, section_t sec, const char *id)
{
	switch (sec) {
	case SEC_KEYSTORE: {
		khsm_conf_keystore_t *k = array_push((void **)&conf->keystores,
		                                     &conf->keystore_count, sizeof(*k));
		return k && (k->id = strdup(id)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	case SEC_POLICY: {
		khsm_conf_policy_t *p = array_push((void **)&conf->policies,
		                                   &conf->policy_count, sizeof(*p));
		return p && (p->id = strdup(id)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	case SEC_TEMPLATE: {
		template_t *t = array_push((void **)&conf->templates,
		                           &conf->template_count, sizeof(*t));
		return t && (t->id = strdup(id)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	case SEC_ZONE: {
		zone_entry_t *z = array_push((void **)&conf->zones, &conf->zone_count, sizeof(*z));
		return z && (z->pub.domain = normalize_domain(id)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	default:
		return KHSM_EOK;
	}
}

static int keystore_item(khsm_conf_keystore_t *k, const char *key, const char *val, size_t line)
{
	if (strcmp(key, "backend") == 0) return set_str(&k->backend, val);
	if (strcmp(key, "config") == 0) return set_str(&k->config, val);
	if (strcmp(key, "key-label") == 0) return set_bool(&k->key_label, val, line, key);
	if (strcmp(key, "ksk-only") == 0) return set_bool(&k->ksk_only, val, line, key);
	return KHSM_EOK;
}

static int policy_item(khsm_conf_policy_t *p, const char *key, const char *val, size_t line)
{
	static const struct { const char *name; size_t off; } STRS[] = {
		{ "algorithm", offsetof(khsm_conf_policy_t, algorithm) },
		{ "ksk-lifetime", offsetof(khsm_conf_policy_t, ksk_lifetime) },
		{ "zsk-lifetime", offsetof(khsm_conf_policy_t, zsk_lifetime) },
		{ "rrsig-lifetime", offsetof(khsm_conf_policy_t, rrsig_lifetime) },
		{ "rrsig-refresh", offsetof(khsm_conf_policy_t, rrsig_refresh) },
		{ "dnskey-ttl", offsetof(khsm_conf_policy_t, dnskey_ttl) },
		{ "zone-max-ttl", offsetof(khsm_conf_policy_t, zone_max_ttl) },
		{ "propagation-delay", offsetof(khsm_conf_policy_t, propagation_delay) },
		{ "cds-cdnskey-publish", offsetof(khsm_conf_policy_t, cds_cdnskey_publish) },
		{ "cds-digest-type", offsetof(khsm_conf_policy_t, cds_digest_type) },
	};
	static const struct { const char *name; size_t off; } BOOLS[] = {
		{ "manual", offsetof(khsm_conf_policy_t, manual) },
		{ "offline-ksk", offsetof(khsm_conf_policy_t, offline_ksk) },
		{ "single-type-signing", offsetof(khsm_conf_policy_t, single_type_signing) },
	};

	if (strcmp(key, "keystore") == 0) {
		char **ks = array_push((void **)&p->keystores, &p->keystore_count, sizeof(*ks));
		return ks && (*ks = strdup(val)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(STRS); i++) {
		if (strcmp(key, STRS[i].name) == 0) {
			return set_str((char **)((char *)p + STRS[i].off), val);
		}
	}
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(BOOLS); i++) {
		if (strcmp(key, BOOLS[i].name) == 0) {
			return set_bool((bool *)((char *)p + BOOLS[i].off), val, line, key);
		}
	}
	return KHSM_EOK;
}

static int template_item(template_t *t, const char *key, const char *val, size_t line)
{
	if (strcmp(key, "dnssec-policy") == 0) return set_str(&t->policy, val);
	if (strcmp(key, "storage") == 0) return set_str(&t->storage, val);
	if (strcmp(key, "dnssec-signing") == 0) {
		t->signing_set = true;
		return set_bool(&t->signing, val, line, key);
	}
	return KHSM_EOK;
}

static int zone_item(khsm_conf_zone_t *z, const char *key, const char *val, size_t line)
{
	if (strcmp(key, "dnssec-policy") == 0) return set_str(&z->policy, val);
	if (strcmp(key, "template") == 0) return set_str(&z->template_id, val);
	if (strcmp(key, "storage") == 0) return set_str(&z->storage, val);
	if (strcmp(key, "dnssec-signing") == 0) {
		z->signing_set = true;
		return set_bool(&z->dnssec_signing, val, line, key);
	}
	return KHSM_EOK;
}

static int item(khsm_conf_t *conf, section_t sec, bool in_entry, const char *key,
                const char *val, size_t line)
{
	switch (sec) {
	case SEC_SERVER:
		return strcmp(key, "rundir") == 0 ? set_str(&conf->raw_rundir, val) : KHSM_EOK;
	case SEC_DATABASE:
		if (strcmp(key, "storage") == 0) return set_str(&conf->raw_storage, val);
		if (strcmp(key, "kasp-db") == 0) return set_str(&conf->raw_kasp_db, val);
		return KHSM_EOK;
	case SEC_CONTROL:
		return strcmp(key, "listen") == 0 ? set_str(&conf->raw_listen, val) : KHSM_EOK;
	default:
		break;
	}
	if (!in_entry) {
		return KHSM_EOK;
	}
	switch (sec) {
	case SEC_KEYSTORE:
		return keystore_item(&conf->keystores[conf->keystore_count - 1], key, val, line);
	case SEC_POLICY:
		return policy_item(&conf->policies[conf->policy_count - 1], key, val, line);
	case SEC_TEMPLATE:
		return template_item(&conf->templates[conf->template_count - 1], key, val, line);
	case SEC_ZONE:
		return zone_item(&conf->zones[conf->zone_count - 1].pub, key, val, line);
	default:
		return KHSM_EOK;
	}
}

static void parser_free(yp_parser_t **p)
{
	if (*p) {
		yp_deinit(*p);
		free(*p);
	}
}

static int parse_export(khsm_conf_t *conf, const char *text, size_t len)
{
	__attribute__((cleanup(parser_free))) yp_parser_t *yp = malloc(sizeof(*yp));
	if (!yp) {
		return KHSM_ENOMEM;
	}
	yp_init(yp);
	if (yp_set_input_string(yp, text, len) != KNOT_EOK) {
		return KHSM_ENOMEM;
	}

	section_t sec = SEC_OTHER;
	bool in_entry = false;
	int kr, r = KHSM_EOK;
	while (r == KHSM_EOK && (kr = yp_parse(yp)) == KNOT_EOK) {
		switch (yp->event) {
		case YP_EKEY0:
			sec = section_of(yp->key);
			in_entry = false;
			break;
		case YP_EID:
			r = new_entry(conf, sec, yp->data);
			in_entry = true;
			break;
		case YP_EKEY1:
			r = item(conf, sec, in_entry, yp->key, yp->data, yp->line_count);
			break;
		default:
			break;
		}
	}
	if (r != KHSM_EOK) {
		return r;
	}
	if (kr != KNOT_EOF) {
		khsm_err_detail("cannot parse the configuration exported by knotc, line %zu: %s",
		                yp->line_count, knot_strerror(kr));
		return KHSM_EPARSE;
	}
	return KHSM_EOK;
}

/* -- running knotc -- */

/* First "error: " line of knotc, without the prefix, or NULL. */
static char *first_error(const char *text)
{
	for (const char *line = text; line && *line; ) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		if (len > 7 && strncmp(line, "error: ", 7) == 0) {
			return strndup(line + 7, len - 7);
		}
		line = end ? end + 1 : NULL;
	}
	return NULL;
}

/* knotc -c PATH conf-export FILE, into a private temporary directory: on a
 * pipe the export would be followed by knotc's own "OK" line. */
_public_
int khsm_conf_export(const char *path, char **text_ptr, size_t *len_ptr)
{
	const char *tmp = getenv("TMPDIR");
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/khsm-conf.XXXXXX", tmp && tmp[0] ? tmp : "/tmp") < 0) {
		return KHSM_ENOMEM;
	}
	if (!mkdtemp(dir)) {
		khsm_err_detail("cannot create a temporary directory in %s: %s",
		                tmp && tmp[0] ? tmp : "/tmp", strerror(errno));
		return KHSM_EIO;
	}
	_cleanup_free_ char *file = NULL;
	if (asprintf(&file, "%s/export.conf", dir) < 0) {
		rmdir(dir);
		return KHSM_ENOMEM;
	}

	const char *argv[] = { khsm_tool_path("knotc"), "-c", path, "conf-export", file, NULL };
	khsm_run_t res = { 0 };
	int r = khsm_run(argv, NULL, &res);
	if (r == KHSM_EOK) {
		_cleanup_free_ char *msg = first_error(res.err);
		if (!msg) {
			msg = first_error(res.out);
		}
		if (msg || res.status != 0) {
			if (msg) {
				khsm_err_detail("knotc rejects %s: %s", path, msg);
			} else {
				khsm_err_detail("knotc -c %s conf-export failed with exit code %d",
				                path, res.status);
			}
			r = KHSM_ECONFIG;
		}
	}
	if (r == KHSM_EOK) {
		r = khsm_file_read(file, NULL, text_ptr, len_ptr, NULL);
	}
	khsm_run_clear(&res);
	unlink(file);
	rmdir(dir);
	return r;
}

/* Knot's compiled-in storage and rundir, from `knotc -h`: the default confdb
 * is <storage>/confdb and the default socket <rundir>/knot.sock. Falls back to
 * Debian's values when the help text does not say. */
static void compiled_defaults(char **storage_ptr, char **rundir_ptr)
{
	*storage_ptr = NULL;
	*rundir_ptr = NULL;
	const char *argv[] = { khsm_tool_path("knotc"), "-h", NULL };
	khsm_run_t res = { 0 };
	if (khsm_run(argv, NULL, &res) != KHSM_EOK) {
		return;
	}
	static const struct { const char *option; const char *suffix; } ITEMS[] = {
		{ "--confdb", "/confdb)" },
		{ "--socket", "/knot.sock)" },
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(ITEMS); i++) {
		const char *opt = strstr(res.out, ITEMS[i].option);
		const char *def = opt ? strstr(opt, "(default /") : NULL;
		const char *end = def ? strstr(def, ITEMS[i].suffix) : NULL;
		const char *eol = def ? strchr(def, '\n') : NULL;
		if (end && (!eol || end < eol)) {
			def += strlen("(default ");
			char *val = strndup(def, end - def);
			*(i == 0 ? storage_ptr : rundir_ptr) = val;
		}
	}
	khsm_run_clear(&res);
}

/* -- effective values -- */

static const template_t *template_find(const khsm_conf_t *conf, const char *id)
{
	for (size_t i = 0; i < conf->template_count; i++) {
		if (strcmp(conf->templates[i].id, id) == 0) {
			return &conf->templates[i];
		}
	}
	return NULL;
}

/* The template a zone takes its defaults from: its own, else 'default'. */
static const template_t *zone_template(const khsm_conf_t *conf, const khsm_conf_zone_t *z)
{
	return template_find(conf, z->template_id ? z->template_id : "default");
}

static int resolve_paths(khsm_conf_t *conf)
{
	_cleanup_free_ char *def_storage = NULL, *def_rundir = NULL;
	compiled_defaults(&def_storage, &def_rundir);
	const char *dstorage = def_storage ? def_storage : DEFAULT_STORAGE;
	const char *drundir = def_rundir ? def_rundir : DEFAULT_RUNDIR;

	_cleanup_free_ char *cwd = getcwd(NULL, 0);
	if (!cwd) {
		khsm_err_detail("cannot get the current directory: %s", strerror(errno));
		return KHSM_EIO;
	}
	/* Knot takes relative storage and rundir from its working directory. */
	conf->storage = join_path(cwd, conf->raw_storage ? conf->raw_storage : dstorage);
	conf->rundir = join_path(cwd, conf->raw_rundir ? conf->raw_rundir : drundir);
	if (!conf->storage || !conf->rundir) {
		return KHSM_ENOMEM;
	}
	conf->kasp_db = join_path(conf->storage, conf->raw_kasp_db ? conf->raw_kasp_db : "keys");
	conf->control = join_path(conf->rundir, conf->raw_listen ? conf->raw_listen : "knot.sock");
	if (!conf->kasp_db || !conf->control) {
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < conf->zone_count; i++) {
		zone_entry_t *z = &conf->zones[i];
		const template_t *t = zone_template(conf, &z->pub);
		const char *s = z->pub.storage ? z->pub.storage : t && t->storage ? t->storage : dstorage;
		if (!(z->eff_storage = join_path(cwd, s))) {
			return KHSM_ENOMEM;
		}
	}
	return KHSM_EOK;
}

/* -- public API -- */

_public_
int khsm_conf_load(const char *path, khsm_conf_t **conf_ptr)
{
	if (!conf_ptr) {
		return KHSM_EINVAL;
	}
	if (!path) {
		path = DEFAULT_CONF;
	}

	khsm_conf_t *conf = calloc(1, sizeof(*conf));
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = KHSM_ENOMEM;
	if (!conf || !(conf->path = strdup(path))) {
		goto fail;
	}
	if ((r = khsm_conf_export(path, &text, &len)) != KHSM_EOK ||
	    (r = parse_export(conf, text, len)) != KHSM_EOK ||
	    (r = resolve_paths(conf)) != KHSM_EOK) {
		goto fail;
	}
	*conf_ptr = conf;
	return KHSM_EOK;
fail:
	khsm_conf_free(conf);
	return r;
}

_public_
const char *khsm_conf_path(const khsm_conf_t *conf)
{
	return conf ? conf->path : NULL;
}

_public_
size_t khsm_conf_keystore_count(const khsm_conf_t *conf)
{
	return conf ? conf->keystore_count : 0;
}

_public_
const khsm_conf_keystore_t *khsm_conf_keystore_at(const khsm_conf_t *conf, size_t i)
{
	return conf && i < conf->keystore_count ? &conf->keystores[i] : NULL;
}

_public_
const khsm_conf_keystore_t *khsm_conf_keystore_find(const khsm_conf_t *conf, const char *id)
{
	for (size_t i = 0; conf && id && i < conf->keystore_count; i++) {
		if (strcmp(conf->keystores[i].id, id) == 0) {
			return &conf->keystores[i];
		}
	}
	return NULL;
}

_public_
bool khsm_conf_keystore_is_pkcs11(const khsm_conf_keystore_t *ks)
{
	return ks && ks->backend && strcmp(ks->backend, "pkcs11") == 0;
}

_public_
size_t khsm_conf_policy_count(const khsm_conf_t *conf)
{
	return conf ? conf->policy_count : 0;
}

_public_
const khsm_conf_policy_t *khsm_conf_policy_at(const khsm_conf_t *conf, size_t i)
{
	return conf && i < conf->policy_count ? &conf->policies[i] : NULL;
}

_public_
const khsm_conf_policy_t *khsm_conf_policy_find(const khsm_conf_t *conf, const char *id)
{
	for (size_t i = 0; conf && id && i < conf->policy_count; i++) {
		if (strcmp(conf->policies[i].id, id) == 0) {
			return &conf->policies[i];
		}
	}
	return NULL;
}

_public_
size_t khsm_conf_zone_count(const khsm_conf_t *conf)
{
	return conf ? conf->zone_count : 0;
}

_public_
const khsm_conf_zone_t *khsm_conf_zone_at(const khsm_conf_t *conf, size_t i)
{
	return conf && i < conf->zone_count ? &conf->zones[i].pub : NULL;
}

_public_
const khsm_conf_zone_t *khsm_conf_zone_find(const khsm_conf_t *conf, const char *zone)
{
	if (!conf || !zone) {
		return NULL;
	}
	_cleanup_free_ char *name = normalize_domain(zone);
	for (size_t i = 0; name && i < conf->zone_count; i++) {
		if (strcmp(conf->zones[i].pub.domain, name) == 0) {
			return &conf->zones[i].pub;
		}
	}
	return NULL;
}

_public_
int khsm_conf_zone_policy(const khsm_conf_t *conf, const khsm_conf_zone_t *zone,
                          const khsm_conf_policy_t **policy_ptr)
{
	if (!conf || !zone || !policy_ptr) {
		return KHSM_EINVAL;
	}
	const template_t *t = zone_template(conf, zone);
	const char *id = zone->policy ? zone->policy : t ? t->policy : NULL;
	if (!id) {
		khsm_err_detail("zone %s has no dnssec-policy (Knot would use its built-in default): "
		                "set one in the zone or its template", zone->domain);
		return KHSM_ENOENT;
	}
	const khsm_conf_policy_t *p = khsm_conf_policy_find(conf, id);
	if (!p) {
		khsm_err_detail("policy '%s' of zone %s is not defined in %s", id, zone->domain, conf->path);
		return KHSM_ENOENT;
	}
	*policy_ptr = p;
	return KHSM_EOK;
}

_public_
int khsm_conf_zone_signing(const khsm_conf_t *conf, const khsm_conf_zone_t *zone,
                           bool *signing_ptr)
{
	if (!conf || !zone || !signing_ptr) {
		return KHSM_EINVAL;
	}
	const template_t *t = zone_template(conf, zone);
	*signing_ptr = zone->signing_set ? zone->dnssec_signing
	             : t && t->signing_set ? t->signing : false;
	return KHSM_EOK;
}

_public_
int khsm_conf_signed_zones(const khsm_conf_t *conf, const char *const *want, size_t want_count,
                           const khsm_conf_zone_t ***zones_ptr, size_t *count_ptr)
{
	if (!conf || (want_count && !want) || !zones_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	/* The wanted zones first, all of them: a typo fails before any work. */
	_cleanup_free_ const khsm_conf_zone_t **wanted = want_count ? calloc(want_count, sizeof(*wanted)) : NULL;
	_cleanup_free_ const khsm_conf_zone_t **zones = calloc(conf->zone_count ? conf->zone_count : 1,
	                                                       sizeof(*zones));
	if ((want_count && !wanted) || !zones) {
		return KHSM_ENOMEM;
	}
	for (size_t w = 0; w < want_count; w++) {
		_cleanup_free_ char *name = NULL;
		int r = khsm_zone_normalize(want[w], &name);
		if (r != KHSM_EOK) {
			return r;
		}
		if (!(wanted[w] = khsm_conf_zone_find(conf, name))) {
			khsm_err_detail("zone %s is not in %s", name, conf->path);
			return KHSM_ENOENT;
		}
	}
	size_t count = 0;
	for (size_t i = 0; i < conf->zone_count; i++) {
		const khsm_conf_zone_t *z = &conf->zones[i].pub;
		bool take = want_count == 0;
		for (size_t w = 0; w < want_count && !take; w++) {
			take = wanted[w] == z;
		}
		bool signing = false;
		const khsm_conf_policy_t *p = NULL;
		if (take && khsm_conf_zone_signing(conf, z, &signing) == KHSM_EOK && signing &&
		    khsm_conf_zone_policy(conf, z, &p) == KHSM_EOK) {
			zones[count++] = z;
		}
	}
	khsm_err_clear();
	*zones_ptr = count ? KHSM_STEAL(zones) : NULL;
	*count_ptr = count;
	return KHSM_EOK;
}

_public_
const char *khsm_conf_zone_storage(const khsm_conf_t *conf, const khsm_conf_zone_t *zone)
{
	for (size_t i = 0; conf && zone && i < conf->zone_count; i++) {
		if (&conf->zones[i].pub == zone) {
			return conf->zones[i].eff_storage;
		}
	}
	return NULL;
}

_public_
const char *khsm_conf_storage(const khsm_conf_t *conf)
{
	return conf ? conf->storage : NULL;
}

_public_
const char *khsm_conf_kasp_db(const khsm_conf_t *conf)
{
	return conf ? conf->kasp_db : NULL;
}

_public_
const char *khsm_conf_rundir(const khsm_conf_t *conf)
{
	return conf ? conf->rundir : NULL;
}

_public_
const char *khsm_conf_control_socket(const khsm_conf_t *conf)
{
	return conf ? conf->control : NULL;
}
