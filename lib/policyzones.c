/* Zones of knot-hsm's written policy files: read, and planned for a new run
 * so that no zone leaves the KSK side unless it is removed by name. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dname.h"
#include "error.h"
#include "internal.h"
#include "knot.h"
#include "policy.h"
#include "policyzones.h"

#define REMOVED_TAG "# knot-hsm: removed:"
#define ZONES_TAG   "# zones:"
#define DOMAIN_TAG  "  - domain:"

_public_
void khsm_zonelist_clear(khsm_zonelist_t *list)
{
	if (!list) {
		return;
	}
	for (size_t i = 0; i < list->count; i++) {
		free(list->names[i]);
	}
	free(list->names);
	list->names = NULL;
	list->count = 0;
}

_public_
bool khsm_zonelist_has(const khsm_zonelist_t *list, const char *zone)
{
	for (size_t i = 0; list && zone && i < list->count; i++) {
		if (strcmp(list->names[i], zone) == 0) {
			return true;
		}
	}
	return false;
}

_public_
int khsm_zonelist_add(khsm_zonelist_t *list, const char *zone)
{
	if (!list || !zone) {
		return KHSM_EINVAL;
	}
	if (khsm_zonelist_has(list, zone)) {
		return KHSM_EOK;
	}
	char *copy = strdup(zone);
	char **grown = copy ? realloc(list->names, (list->count + 1) * sizeof(char *)) : NULL;
	if (!grown) {
		free(copy);
		return KHSM_ENOMEM;
	}
	grown[list->count++] = copy;
	list->names = grown;
	return KHSM_EOK;
}

/* Add the blank-separated names of words[0..len) to list, normalised. */
static int add_words(const char *words, size_t len, khsm_zonelist_t *list)
{
	int r = KHSM_EOK;
	const char *p = words, *end = words + len;
	while (r == KHSM_EOK && p < end) {
		while (p < end && strchr(" \t\r\n", *p)) p++;
		const char *w = p;
		while (p < end && !strchr(" \t\r\n", *p)) p++;
		if (p == w) {
			break;
		}
		char *raw = strndup(w, (size_t)(p - w));
		char *zone = NULL;
		r = raw ? khsm_zone_normalize(raw, &zone) : KHSM_ENOMEM;
		if (r == KHSM_EOK) {
			r = khsm_zonelist_add(list, zone);
		}
		free(zone);
		free(raw);
	}
	return r;
}

_public_
int khsm_policyzones_read(const char *text, khsm_zonelist_t *zones, khsm_zonelist_t *removed)
{
	if (!text || !zones || !removed) {
		return KHSM_EINVAL;
	}
	size_t marker = strlen(KHSM_POLICY_MARKER);
	if (strncmp(text, KHSM_POLICY_MARKER, marker) != 0 || (text[marker] != '\n' && text[marker])) {
		return KHSM_EOK;
	}
	int r = KHSM_EOK;
	for (const char *p = text; r == KHSM_EOK && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		const char *tags[] = { ZONES_TAG, DOMAIN_TAG, REMOVED_TAG };
		for (size_t t = 0; t < KHSM_ARRAY_SIZE(tags); t++) {
			size_t tl = strlen(tags[t]);
			if (l >= tl && strncmp(p, tags[t], tl) == 0) {
				r = add_words(p + tl, l - tl, t == 2 ? removed : zones);
				break;
			}
		}
		p = nl ? nl + 1 : p + l;
	}
	return r;
}

_public_
int khsm_policyzones_read_file(const char *path, khsm_zonelist_t *zones, khsm_zonelist_t *removed)
{
	if (!path) {
		return KHSM_EINVAL;
	}
	/* A link or an odd file lists no zones: policy refuses to write there anyway. */
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && (errno == ENOENT || errno == ELOOP || errno == ENOTDIR)) {
		return KHSM_EOK;
	}
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		return KHSM_EOK;
	}
	_cleanup_fclose_ FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		khsm_err_detail("cannot read %s: %s", path, strerror(errno));
		if (fd >= 0) close(fd);
		return KHSM_EIO;
	}
	_cleanup_free_ char *text = NULL;
	size_t cap = 0;
	ssize_t n = getdelim(&text, &cap, '\0', f);
	if (n < 0 && ferror(f)) {
		khsm_err_detail("cannot read %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}
	return khsm_policyzones_read(n < 0 ? "" : text, zones, removed);
}

_public_
int khsm_policyzones_kasp(const char *dir, khsm_zonelist_t *list)
{
	if (!dir || !list) {
		return KHSM_EINVAL;
	}
	if (access(dir, F_OK) != 0) {
		return KHSM_EOK;
	}
	const char *args[] = { "-D", dir, "-l", NULL };
	khsm_run_t res = { 0 };
	int r = khsm_keymgr(NULL, args, &res);
	if (r != KHSM_EOK) {
		return r;
	}
	r = add_words(res.out, strlen(res.out), list);
	khsm_run_clear(&res);
	return r;
}

_public_
void khsm_policyzones_plan_clear(khsm_policyzones_plan_t *plan)
{
	if (!plan) {
		return;
	}
	khsm_zonelist_clear(&plan->zones);
	khsm_zonelist_clear(&plan->added);
	khsm_zonelist_clear(&plan->kept);
	khsm_zonelist_clear(&plan->removed);
	khsm_zonelist_clear(&plan->removed_now);
}

static bool given_has(const char *const *given, size_t n, const char *zone)
{
	for (size_t i = 0; i < n; i++) {
		if (strcmp(given[i], zone) == 0) {
			return true;
		}
	}
	return false;
}

/* "a. b. c." for a message. */
static char *joined(const khsm_zonelist_t *list)
{
	size_t len = 1;
	for (size_t i = 0; i < list->count; i++) {
		len += strlen(list->names[i]) + 2;
	}
	char *s = calloc(1, len);
	for (size_t i = 0; s && i < list->count; i++) {
		if (i) strcat(s, ", ");
		strcat(s, list->names[i]);
	}
	return s;
}

_public_
int khsm_policyzones_plan(const khsm_zonelist_t *listed, const khsm_zonelist_t *was_removed,
                          const khsm_zonelist_t *in_kasp, const char *const *given, size_t n_given,
                          bool remove, khsm_policyzones_plan_t *plan)
{
	if (!listed || !was_removed || !plan || (n_given && !given)) {
		return KHSM_EINVAL;
	}
	khsm_policyzones_plan_t p = { 0 };
	khsm_zonelist_t dropped = { 0 };
	int r = KHSM_EOK;
	for (size_t i = 0; r == KHSM_EOK && remove && i < n_given; i++) {
		if (!khsm_zonelist_has(listed, given[i]) && !khsm_zonelist_has(in_kasp, given[i])) {
			khsm_err_detail("zone %s is not in the files knot-hsm policy wrote: nothing to remove",
			                given[i]);
			r = KHSM_ENOENT;
		}
	}
	for (size_t i = 0; r == KHSM_EOK && i < listed->count; i++) {
		const char *z = listed->names[i];
		if (remove && given_has(given, n_given, z)) {
			continue;
		}
		r = khsm_zonelist_add(&p.zones, z);
		if (r == KHSM_EOK) r = khsm_zonelist_add(&p.kept, z);
	}
	for (size_t i = 0; r == KHSM_EOK && !remove && i < n_given; i++) {
		if (!khsm_zonelist_has(listed, given[i])) {
			r = khsm_zonelist_add(&p.zones, given[i]);
			if (r == KHSM_EOK) r = khsm_zonelist_add(&p.added, given[i]);
		}
	}
	/* Recorded removals stay recorded until the zone comes back. */
	for (size_t i = 0; r == KHSM_EOK && i < was_removed->count; i++) {
		if (!khsm_zonelist_has(&p.zones, was_removed->names[i])) {
			r = khsm_zonelist_add(&p.removed, was_removed->names[i]);
		}
	}
	for (size_t i = 0; r == KHSM_EOK && remove && i < n_given; i++) {
		r = khsm_zonelist_add(&p.removed, given[i]);
		if (r == KHSM_EOK) r = khsm_zonelist_add(&p.removed_now, given[i]);
	}
	if (r == KHSM_EOK && p.zones.count == 0) {
		khsm_err_detail("no zone would be left; to stop using knot-hsm, remove its include from "
		                "knot.conf instead");
		r = KHSM_EINVAL;
	}
	for (size_t i = 0; r == KHSM_EOK && in_kasp && i < in_kasp->count; i++) {
		const char *z = in_kasp->names[i];
		if (!khsm_zonelist_has(&p.zones, z) && !khsm_zonelist_has(&p.removed, z)) {
			r = khsm_zonelist_add(&dropped, z);
		}
	}
	if (r == KHSM_EOK && dropped.count) {
		_cleanup_free_ char *names = joined(&dropped);
		khsm_err_detail("this run would drop %s from the KSK side, which holds %s KSK: name %s "
		                "with the others to keep %s, or take %s out with 'knot-hsm ZONE policy "
		                "remove=yes --write'", names ? names : "zones",
		                dropped.count > 1 ? "their" : "its", dropped.count > 1 ? "them" : "it",
		                dropped.count > 1 ? "them" : "it", dropped.count > 1 ? "them" : "it");
		r = KHSM_ECONFIG;
	}
	khsm_zonelist_clear(&dropped);
	if (r != KHSM_EOK) {
		khsm_policyzones_plan_clear(&p);
		return r;
	}
	*plan = p;
	return KHSM_EOK;
}
