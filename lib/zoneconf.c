/* knot.conf cut down to one zone (see zoneconf.h). */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>

#include "error.h"
#include "internal.h"
#include "knotconf.h"
#include "zoneconf.h"

typedef struct {
	char *name;             /* lower case, with the final dot */
	size_t start, len;      /* the entry in text */
} entry_t;

struct khsm_zoneconf {
	char *text;
	size_t head_len;        /* everything before the zone section's entries */
	size_t tail_start;      /* the sections after the zone section */
	entry_t *entries;       /* sorted by name */
	size_t count;
	enum { KS_NONE, KS_HEAD, KS_ELSEWHERE } keystores;  /* the keystore section */
	bool several_keystores; /* a policy lists several (Knot >= 3.5): keymgr list
	                           names each key's keystore by looking, so no keyless cut */
	size_t ks_start, ks_end;  /* KS_HEAD: where it is */
};

#define ENTRY_PREFIX "  - domain: "
#define ID_PREFIX "  - id: "

/* A section header of the export: "name:" alone at the start of a line. */
static bool section_header(const char *line, size_t len)
{
	if (len < 2 || line[len - 1] != ':' || !islower((unsigned char)line[0])) {
		return false;
	}
	for (size_t i = 0; i + 1 < len; i++) {
		if (!islower((unsigned char)line[i]) && line[i] != '-') return false;
	}
	return true;
}

/* "  - domain: \"Example.COM.\"" -> "example.com." */
static char *entry_name(const char *line, size_t len)
{
	const char *v = line + strlen(ENTRY_PREFIX);
	size_t n = len - strlen(ENTRY_PREFIX);
	if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
		v++;
		n -= 2;
	}
	if (n == 0 || memchr(v, '\\', n)) {
		return NULL;   /* escaped names are not matched: whole file then */
	}
	char *name = malloc(n + 2);
	if (!name) return NULL;
	for (size_t i = 0; i < n; i++) name[i] = (char)tolower((unsigned char)v[i]);
	if (v[n - 1] != '.') name[n++] = '.';
	name[n] = '\0';
	return name;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const entry_t *)a)->name, ((const entry_t *)b)->name);
}

_public_
int khsm_zoneconf_parse(const char *text, khsm_zoneconf_t **zc_ptr)
{
	if (!text || !zc_ptr) {
		return KHSM_EINVAL;
	}
	/* a catalog member's entry names another zone (and keymgr checks it) */
	if (strstr(text, "catalog-")) {
		khsm_err_detail("the configuration has catalog zones");
		return KHSM_ENOTSUP;
	}
	khsm_zoneconf_t *zc = calloc(1, sizeof(*zc));
	if (!zc || !(zc->text = strdup(text))) {
		free(zc);
		return KHSM_ENOMEM;
	}
	size_t total = strlen(text), cap = 0;
	zc->head_len = zc->tail_start = total;
	bool in_zone = false;
	int r = KHSM_EOK;
	for (size_t pos = 0; pos < total && r == KHSM_EOK;) {
		const char *line = zc->text + pos;
		const char *nl = memchr(line, '\n', total - pos);
		size_t len = nl ? (size_t)(nl - line) : total - pos;
		size_t next = nl ? pos + len + 1 : total;
		if (section_header(line, len)) {
			if (in_zone) {
				zc->tail_start = pos;
				break;
			}
			if (zc->keystores == KS_HEAD && !zc->ks_end) zc->ks_end = pos;
			if (len == 9 && strncmp(line, "keystore:", 9) == 0) {
				/* a second keystore section: not rewritten, so no keyless cut */
				zc->keystores = zc->keystores == KS_NONE ? KS_HEAD : KS_ELSEWHERE;
				zc->ks_start = pos;
				zc->ks_end = 0;
			}
			if (len == 5 && strncmp(line, "zone:", 5) == 0) {
				in_zone = true;
				zc->head_len = next;
			}
		} else if (!in_zone && len > 15 && strncmp(line, "    keystore: [", 15) == 0) {
			zc->several_keystores = true;
		} else if (in_zone && len > strlen(ENTRY_PREFIX) &&
		           strncmp(line, ENTRY_PREFIX, strlen(ENTRY_PREFIX)) == 0) {
			if (zc->count == cap) {
				cap = cap ? 2 * cap : 64;
				entry_t *e = realloc(zc->entries, cap * sizeof(*e));
				if (!e) { r = KHSM_ENOMEM; break; }
				zc->entries = e;
			}
			entry_t *e = &zc->entries[zc->count];
			*e = (entry_t){ .name = entry_name(line, len), .start = pos };
			if (!e->name) {
				r = KHSM_ENOTSUP;
				khsm_err_detail("zone entry not matched by name: %.*s", (int)len, line);
				break;
			}
			zc->count++;
		}
		pos = next;
	}
	/* a keystore section after the zones, or not closed before them, is not in the head */
	const char *tail = zc->text + zc->tail_start;
	if (strncmp(tail, "keystore:\n", 10) == 0 || strstr(tail, "\nkeystore:\n")) {
		zc->keystores = KS_ELSEWHERE;
	}
	if (zc->keystores == KS_HEAD && (!zc->ks_end || zc->ks_end > zc->head_len)) {
		zc->keystores = KS_ELSEWHERE;
	}
	/* each entry runs up to the next one, the last up to the tail */
	for (size_t i = 0; i < zc->count; i++) {
		size_t end = i + 1 < zc->count ? zc->entries[i + 1].start : zc->tail_start;
		zc->entries[i].len = end - zc->entries[i].start;
	}
	/* qsort and bsearch want a real array, even for no entries */
	if (r == KHSM_EOK && zc->count > 1) {
		qsort(zc->entries, zc->count, sizeof(*zc->entries), entry_cmp);
		for (size_t i = 1; i < zc->count; i++) {
			if (strcmp(zc->entries[i - 1].name, zc->entries[i].name) == 0) {
				khsm_err_detail("zone %s has two entries", zc->entries[i].name);
				r = KHSM_ENOTSUP;
			}
		}
	}
	if (r != KHSM_EOK) {
		khsm_zoneconf_free(zc);
		return r;
	}
	*zc_ptr = zc;
	return KHSM_EOK;
}

_public_
int khsm_zoneconf_open(const char *conf_path, khsm_zoneconf_t **zc_ptr)
{
	if (!zc_ptr) {
		return KHSM_EINVAL;
	}
	/* The memfd must reach the children, never a file in TMPDIR. */
	khsm_handoff_t *probe = NULL;
	int r = khsm_handoff_new(NULL, "knot-hsm-zone.conf", "", 0, &probe);
	bool on_disk = r == KHSM_EOK && khsm_handoff_dir(probe) != NULL;
	khsm_handoff_free(probe);
	if (r != KHSM_EOK) {
		return r;
	}
	if (on_disk) {
		khsm_err_detail("children cannot open this process's memfds");
		return KHSM_ENOTSUP;
	}
	_cleanup_free_ char *text = NULL;
	if ((r = khsm_conf_export(conf_path, &text, NULL)) != KHSM_EOK) {
		return r;
	}
	return khsm_zoneconf_parse(text, zc_ptr);
}

_public_
size_t khsm_zoneconf_count(const khsm_zoneconf_t *zc)
{
	return zc ? zc->count : 0;
}

/* A directory written between quotes, as it is: absolute, nothing to escape. */
static bool dir_writable(const char *dir)
{
	return dir[0] == '/' && !strpbrk(dir, "\"\\\n");
}

/* The keystore section with every keystore an empty PEM directory. */
static int keyless_section(const khsm_zoneconf_t *zc, const char *dir, char **out_ptr, size_t *len_ptr)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	if (!f) return KHSM_ENOMEM;
	fputs("keystore:\n", f);
	for (size_t pos = zc->ks_start; pos < zc->ks_end;) {
		const char *line = zc->text + pos;
		const char *nl = memchr(line, '\n', zc->ks_end - pos);
		size_t n = nl ? (size_t)(nl - line) : zc->ks_end - pos;
		if (n > strlen(ID_PREFIX) && strncmp(line, ID_PREFIX, strlen(ID_PREFIX)) == 0) {
			fprintf(f, "%.*s\n    backend: \"pem\"\n    config: \"%s\"\n", (int)n, line, dir);
		}
		pos += n + (nl != NULL);
	}
	fputs("\n", f);
	if (fclose(f) != 0) {
		free(out);
		return KHSM_ENOMEM;
	}
	*out_ptr = out;
	*len_ptr = len;
	return KHSM_EOK;
}

/* One zone's cut; with keyless_dir, its keystores are replaced (see
 * khsm_zoneconf_keyless_text()). */
static int cut_text(const khsm_zoneconf_t *zc, const char *zone, const char *keyless_dir,
                    char **text_ptr, size_t *len_ptr)
{
	if (!zc || !zone || !zone[0] || !text_ptr) {
		return KHSM_EINVAL;
	}
	if (keyless_dir && !dir_writable(keyless_dir)) {
		return KHSM_EINVAL;
	}
	if (keyless_dir && zc->keystores == KS_ELSEWHERE) {
		khsm_err_detail("the keystore section is not before the zones");
		return KHSM_ENOTSUP;
	}
	if (keyless_dir && zc->several_keystores) {
		khsm_err_detail("a policy lists several keystores: keymgr finds each key's by looking");
		return KHSM_ENOTSUP;
	}
	size_t n = strlen(zone);
	_cleanup_free_ char *key = malloc(n + 2);
	if (!key) return KHSM_ENOMEM;
	for (size_t i = 0; i < n; i++) key[i] = (char)tolower((unsigned char)zone[i]);
	if (zone[n - 1] != '.') key[n++] = '.';
	key[n] = '\0';
	entry_t probe = { .name = key };
	const entry_t *e = zc->count == 0 ? NULL :
		bsearch(&probe, zc->entries, zc->count, sizeof(*zc->entries), entry_cmp);
	if (!e) {
		khsm_err_detail("zone %s is not in the configuration", key);
		return KHSM_ENOENT;
	}
	/* head = before + keystores + after (keystores: as exported, or keyless) */
	size_t before = zc->head_len, after_start = zc->head_len;
	_cleanup_free_ char *ks = NULL;
	size_t ks_len = 0;
	if (keyless_dir && zc->keystores == KS_HEAD) {
		int r = keyless_section(zc, keyless_dir, &ks, &ks_len);
		if (r != KHSM_EOK) return r;
		before = zc->ks_start;
		after_start = zc->ks_end;
	}
	size_t after_len = zc->head_len - after_start;
	size_t tail_len = strlen(zc->text + zc->tail_start);
	size_t len = before + ks_len + after_len + e->len + tail_len;
	char *out = malloc(len + 1);
	if (!out) return KHSM_ENOMEM;
	char *w = out;
	memcpy(w, zc->text, before);
	w += before;
	if (ks_len) memcpy(w, ks, ks_len);
	w += ks_len;
	memcpy(w, zc->text + after_start, after_len);
	w += after_len;
	memcpy(w, zc->text + e->start, e->len);
	w += e->len;
	memcpy(w, zc->text + zc->tail_start, tail_len);
	out[len] = '\0';
	*text_ptr = out;
	if (len_ptr) *len_ptr = len;
	return KHSM_EOK;
}

_public_
int khsm_zoneconf_text(const khsm_zoneconf_t *zc, const char *zone, char **text_ptr,
                       size_t *len_ptr)
{
	return cut_text(zc, zone, NULL, text_ptr, len_ptr);
}

_public_
int khsm_zoneconf_keyless_text(const khsm_zoneconf_t *zc, const char *zone, const char *dir,
                               char **text_ptr, size_t *len_ptr)
{
	if (!dir) {
		return KHSM_EINVAL;
	}
	return cut_text(zc, zone, dir, text_ptr, len_ptr);
}

/* A cut (keyless_dir: keyless) in a memfd, never a copy on disk. */
static int cut_handoff(const khsm_zoneconf_t *zc, const char *zone, const char *keyless_dir,
                       khsm_handoff_t **handoff_ptr)
{
	if (!handoff_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = cut_text(zc, zone, keyless_dir, &text, &len);
	khsm_handoff_t *h = NULL;
	if (r == KHSM_EOK) {
		r = khsm_handoff_new(NULL, "knot-hsm-zone.conf", text, len, &h);
	}
	if (r == KHSM_EOK && khsm_handoff_dir(h)) {
		khsm_handoff_free(h);
		khsm_err_detail("children cannot open this process's memfds");
		return KHSM_ENOTSUP;
	}
	if (r == KHSM_EOK) *handoff_ptr = h;
	return r;
}

_public_
int khsm_zoneconf_handoff(const khsm_zoneconf_t *zc, const char *zone,
                          khsm_handoff_t **handoff_ptr)
{
	return cut_handoff(zc, zone, NULL, handoff_ptr);
}

_public_
void khsm_zoneconf_free(khsm_zoneconf_t *zc)
{
	if (!zc) {
		return;
	}
	for (size_t i = 0; i < zc->count; i++) free(zc->entries[i].name);
	free(zc->entries);
	free(zc->text);
	free(zc);
}

/* -- in use for keymgr runs -- */

/* Both sides of a ceremony at most, and some room. */
#define IN_USE_SLOTS 4

static struct {
	char *conf;
	khsm_zoneconf_t *zc;
	char *empty_dir;        /* the keyless cuts' keystore; NULL: none */
	unsigned refs;
} in_use[IN_USE_SLOTS];
/* the ceremony's worker thread runs keymgr while the caller's thread signs */
static pthread_mutex_t in_use_lock = PTHREAD_MUTEX_INITIALIZER;

_public_
int khsm_zoneconf_use(const char *conf_path)
{
	if (!conf_path) {
		return KHSM_EINVAL;
	}
	pthread_mutex_lock(&in_use_lock);
	size_t free_slot = IN_USE_SLOTS;
	for (size_t i = 0; i < IN_USE_SLOTS; i++) {
		if (in_use[i].conf && strcmp(in_use[i].conf, conf_path) == 0) {
			in_use[i].refs++;
			pthread_mutex_unlock(&in_use_lock);
			return KHSM_EOK;
		}
		if (!in_use[i].conf && free_slot == IN_USE_SLOTS) {
			free_slot = i;
		}
	}
	int r = KHSM_EBUSY;
	if (free_slot < IN_USE_SLOTS) {
		khsm_zoneconf_t *zc = NULL;
		char *conf = strdup(conf_path);
		r = conf ? khsm_zoneconf_open(conf_path, &zc) : KHSM_ENOMEM;
		if (r == KHSM_EOK) {
			in_use[free_slot].conf = conf;
			in_use[free_slot].zc = zc;
			in_use[free_slot].refs = 1;
			/* without it, keymgr runs that only read KASP get plain cuts */
			in_use[free_slot].empty_dir = NULL;
			/* without keystores every cut is keyless already (Knot's default is PEM) */
			char *d = NULL;
			if (zc->keystores == KS_HEAD && !zc->several_keystores &&
			    khsm_handoff_empty_dir(getenv("TMPDIR"), &d) == KHSM_EOK) {
				if (dir_writable(d)) {
					in_use[free_slot].empty_dir = d;
				} else {
					(void)rmdir(d);   /* e.g. a relative TMPDIR: plain cuts, card lock */
					free(d);
				}
			}
			khsm_err_clear();
		} else {
			free(conf);
		}
	}
	pthread_mutex_unlock(&in_use_lock);
	return r;
}

_public_
void khsm_zoneconf_release(const char *conf_path)
{
	if (!conf_path) {
		return;
	}
	pthread_mutex_lock(&in_use_lock);
	for (size_t i = 0; i < IN_USE_SLOTS; i++) {
		if (in_use[i].conf && strcmp(in_use[i].conf, conf_path) == 0) {
			if (--in_use[i].refs == 0) {
				if (in_use[i].empty_dir) (void)rmdir(in_use[i].empty_dir);
				free(in_use[i].empty_dir);
				in_use[i].empty_dir = NULL;
				free(in_use[i].conf);
				khsm_zoneconf_free(in_use[i].zc);
				in_use[i].conf = NULL;
				in_use[i].zc = NULL;
			}
			break;
		}
	}
	pthread_mutex_unlock(&in_use_lock);
}

_public_
bool khsm_zoneconf_keyless(const char *conf_path)
{
	bool yes = false;
	pthread_mutex_lock(&in_use_lock);
	for (size_t i = 0; conf_path && i < IN_USE_SLOTS; i++) {
		if (in_use[i].conf && strcmp(in_use[i].conf, conf_path) == 0) {
			yes = in_use[i].empty_dir != NULL;
			break;
		}
	}
	pthread_mutex_unlock(&in_use_lock);
	return yes;
}

_public_
int khsm_zoneconf_for(const char *conf_path, const char *zone, bool keyless,
                      khsm_handoff_t **handoff_ptr)
{
	if (!conf_path || !zone || !handoff_ptr) {
		return KHSM_EINVAL;
	}
	int r = KHSM_ENOENT;
	pthread_mutex_lock(&in_use_lock);
	for (size_t i = 0; i < IN_USE_SLOTS; i++) {
		if (in_use[i].conf && strcmp(in_use[i].conf, conf_path) == 0) {
			r = cut_handoff(in_use[i].zc, zone, keyless ? in_use[i].empty_dir : NULL, handoff_ptr);
			break;
		}
	}
	pthread_mutex_unlock(&in_use_lock);
	return r;
}
