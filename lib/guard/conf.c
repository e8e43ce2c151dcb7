/* Guard configuration: strict `key = value` parsing. */
#include <errno.h>
#include <libgen.h>
#include <sys/stat.h>

#include "config.h"

#include "../error.h"
#include "../files.h"
#include "../internal.h"
#include "conf.h"

_public_
const char *khsm_guard_module_path(void)
{
	const char *env = getenv(KHSM_GUARD_MODULE_ENV);
	return env && *env ? env : KHSM_GUARD_PATH;
}

_public_
bool khsm_guard_is_module(const char *path)
{
	if (!path) return false;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	if (strcmp(base, KHSM_GUARD_MODULE_NAME) == 0) return true;
	struct stat a, b;
	return stat(path, &a) == 0 && stat(khsm_guard_module_path(), &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

_public_
int khsm_guard_conf_locate(const char *module_path, char **path_ptr)
{
	const char *env = getenv(KHSM_GUARD_CONF_ENV);
	char *out = NULL;
	if (env && *env) {
		out = strdup(env);
	} else if (module_path) {
		char *copy = strdup(module_path);
		if (!copy) return KHSM_ENOMEM;
		if (asprintf(&out, "%s/%s", dirname(copy), KHSM_GUARD_CONF_NAME) < 0) out = NULL;
		free(copy);
	} else {
		khsm_err_detail("no guard configuration: set %s", KHSM_GUARD_CONF_ENV);
		return KHSM_ENOENT;
	}
	if (!out) return KHSM_ENOMEM;
	*path_ptr = out;
	return KHSM_EOK;
}

_public_
void khsm_guard_conf_clear(khsm_guard_conf_t *conf)
{
	if (!conf) return;
	free(conf->path);
	free(conf->module);
	free(conf->audit_log);
	free(conf->lock_file);
	free(conf->anchor_file);
	memset(conf, 0, sizeof(*conf));
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t') s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = '\0';
	return s;
}

static int choice(const char *value, const char *const *names, int *out)
{
	for (int i = 0; names[i]; i++) {
		if (strcmp(value, names[i]) == 0) {
			*out = i;
			return 0;
		}
	}
	return -1;
}

_public_
int khsm_guard_conf_parse(const char *path, const char *text, khsm_guard_conf_t *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->fail_closed = true;
	conf->fill = true;
	conf->anchor_every = 100;
	conf->recover = true;
	conf->recover_wait = KHSM_GUARD_RECOVER_WAIT;
	if (!(conf->path = strdup(path ? path : "(text)"))) return KHSM_ENOMEM;
	char *copy = strdup(text);
	if (!copy) return KHSM_ENOMEM;
	static const char *const KEYS[] = { "module", "audit_log", "lock_file", "fail_closed",
	                                    "verify", "fill", "fsync", "anchor_file", "anchor_every",
	                                    "anchor_syslog", "login_final_try", "recover", "recover_wait",
	                                    NULL };
	static const char *const YESNO[] = { "no", "yes", NULL };
	static const char *const VERIFY[] = { "auto", "software", "card", NULL };
	static const char *const FSYNC[] = { "security", "all", "none", NULL };
	static const char *const FINAL[] = { "refuse", "allow", NULL };
	unsigned seen = 0;
	int r = KHSM_EOK;
	unsigned lineno = 0;
	for (char *save = NULL, *line = copy; r == KHSM_EOK && line; line = save) {
		char *nl = strchr(line, '\n');
		save = nl ? nl + 1 : NULL;
		if (nl) *nl = '\0';
		lineno++;
		char *l = trim(line);
		if (*l == '\0' || *l == '#') continue;
		char *eq = strchr(l, '=');
		if (!eq) {
			khsm_err_detail("%s:%u: expected 'key = value'", conf->path, lineno);
			r = KHSM_ECONFIG;
			break;
		}
		*eq = '\0';
		char *key = trim(l), *value = trim(eq + 1);
		int k = -1;
		if (choice(key, KEYS, &k) != 0) {
			khsm_err_detail("%s:%u: unknown key '%s' (known: module, audit_log, lock_file, "
			                "fail_closed, verify, fill, fsync, anchor_file, anchor_every, anchor_syslog, "
			                "login_final_try, recover, recover_wait)", conf->path, lineno, key);
			r = KHSM_ECONFIG;
			break;
		}
		if (seen & (1u << k)) {
			khsm_err_detail("%s:%u: '%s' given twice", conf->path, lineno, key);
			r = KHSM_ECONFIG;
			break;
		}
		seen |= 1u << k;
		const char *hash = strchr(value, '#');
		if (hash && hash > value && (hash[-1] == ' ' || hash[-1] == '\t')) {
			/* "module = /x.so  # card" would keep the comment in the path. */
			khsm_err_detail("%s:%u: comments go on a line of their own, not after '%s'",
			                conf->path, lineno, key);
			r = KHSM_ECONFIG;
			break;
		}
		if (*value == '\0') {
			khsm_err_detail("%s:%u: '%s' has no value", conf->path, lineno, key);
			r = KHSM_ECONFIG;
			break;
		}
		int v = 0;
		switch (k) {
		case 0: case 1: case 2: case 7: {
			if (value[0] != '/') {
				khsm_err_detail("%s:%u: %s must be an absolute path, not '%s'", conf->path,
				                lineno, key, value);
				r = KHSM_ECONFIG;
				break;
			}
			char **dst = k == 0 ? &conf->module : k == 1 ? &conf->audit_log :
			             k == 2 ? &conf->lock_file : &conf->anchor_file;
			if (!(*dst = strdup(value))) r = KHSM_ENOMEM;
			break;
		}
		case 3: case 5: case 9: case 11:
			if (choice(value, YESNO, &v) != 0) {
				khsm_err_detail("%s:%u: %s is yes or no, not '%s'", conf->path, lineno, key, value);
				r = KHSM_ECONFIG;
			} else if (k == 3) {
				conf->fail_closed = v;
			} else if (k == 5) {
				conf->fill = v;
			} else if (k == 9) {
				conf->anchor_syslog = v;
			} else {
				conf->recover = v;
			}
			break;
		case 12: {
			char *e = NULL;
			errno = 0;
			unsigned long n = strtoul(value, &e, 10);
			if (value[0] < '0' || value[0] > '9' || *e || errno || n > KHSM_GUARD_RECOVER_WAIT_MAX) {
				khsm_err_detail("%s:%u: recover_wait is a number of seconds from 0 to %u, not '%s'",
				                conf->path, lineno, KHSM_GUARD_RECOVER_WAIT_MAX, value);
				r = KHSM_ECONFIG;
			}
			conf->recover_wait = (unsigned)n;
			break;
		}
		case 8: {
			char *e = NULL;
			errno = 0;
			unsigned long n = strtoul(value, &e, 10);
			if (value[0] < '0' || value[0] > '9' || *e || errno || n < 1 || n > 1000000) {
				khsm_err_detail("%s:%u: anchor_every is a number of lines from 1 to 1000000, not '%s'",
				                conf->path, lineno, value);
				r = KHSM_ECONFIG;
			}
			conf->anchor_every = n;
			break;
		}
		case 10:
			if (choice(value, FINAL, &v) != 0) {
				khsm_err_detail("%s:%u: login_final_try is refuse or allow, not '%s'", conf->path,
				                lineno, value);
				r = KHSM_ECONFIG;
			}
			conf->login_final_try = v;
			break;
		case 4:
			if (choice(value, VERIFY, &v) != 0) {
				khsm_err_detail("%s:%u: verify is auto, software or card, not '%s'", conf->path,
				                lineno, value);
				r = KHSM_ECONFIG;
			}
			conf->verify = (khsm_guard_verify_t)v;
			break;
		case 6:
			if (choice(value, FSYNC, &v) != 0) {
				khsm_err_detail("%s:%u: fsync is security, all or none, not '%s'", conf->path,
				                lineno, value);
				r = KHSM_ECONFIG;
			}
			conf->fsync = (khsm_guard_fsync_t)v;
			break;
		}
	}
	free(copy);
	if (r == KHSM_EOK && (!conf->module || !conf->audit_log)) {
		khsm_err_detail("%s: 'module = PATH' (the card's PKCS #11 module) and 'audit_log = PATH' "
		                "are required", conf->path);
		r = KHSM_ECONFIG;
	}
	if (r == KHSM_EOK && !conf->lock_file &&
	    asprintf(&conf->lock_file, "%s.lock", conf->audit_log) < 0) {
		conf->lock_file = NULL;
		r = KHSM_ENOMEM;
	}
	return r;
}

_public_
int khsm_guard_conf_load(const char *path, khsm_guard_conf_t *conf)
{
	memset(conf, 0, sizeof(*conf));
	/* A configuration is small: 64 KiB and more is not one. */
	const khsm_file_read_opts_t opts = { .max = 65535, .what = "guard configuration" };
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	int r = khsm_file_read(path, &opts, &text, &len, NULL);
	if (r == KHSM_ERANGE) {
		khsm_err_detail("cannot read the guard configuration %s: longer than 64 KiB", path);
		return KHSM_EIO;
	}
	if (r != KHSM_EOK) {
		return r;
	}
	if (memchr(text, '\0', len)) {
		khsm_err_detail("%s: NUL byte in the guard configuration", path);
		return KHSM_ECONFIG;
	}
	return khsm_guard_conf_parse(path, text, conf);
}

_public_
int khsm_guard_conf_render(const char *module, const char *audit_log, char **text_ptr)
{
	if (!module || !audit_log || module[0] != '/' || audit_log[0] != '/' ||
	    strpbrk(module, "\n\r") || strpbrk(audit_log, "\n\r")) {
		khsm_err_detail("the guard needs absolute paths for the module and the audit log");
		return KHSM_EINVAL;
	}
	char *text = NULL;
	if (asprintf(&text,
	             "# knot-hsm guard: audit log, serialisation and software fill-ins for the card.\n"
	             "# The log must be writable by knotd's user (and keymgr's): create it with\n"
	             "#   install -o knot -g knot -m 0640 /dev/null %s\n"
	             "module = %s\n"
	             "audit_log = %s\n"
	             "fail_closed = yes\n"
	             "verify = auto\n"
	             "# Recommended: root's record of the log's head, which knotd's user cannot\n"
	             "# rewrite (install -d -o root -g root -m 0755 /var/log/knot-hsm first):\n"
	             "#anchor_file = /var/log/knot-hsm/audit.anchor\n",
	             audit_log, module, audit_log) < 0) {
		return KHSM_ENOMEM;
	}
	*text_ptr = text;
	return KHSM_EOK;
}
