/* The guard as knot-hsm sets it up: its configuration found and matched to
 * the card's module, or written in one step with its audit log and lock. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "files.h"
#include "guardsetup.h"
#include "internal.h"
#include "uri.h"

_public_
int khsm_guard_conf_match(const khsm_guard_conf_t *conf, const char *module, const char *who)
{
	if (!conf || !conf->module || !module) return KHSM_EINVAL;
	if (khsm_path_same_file(conf->module, module)) return KHSM_EOK;
	khsm_err_detail("the guard configuration %s names module %s, but %s is on %s; one guard "
	                "serves one card module: set 'module = %s' there if the card moved, or name "
	                "another configuration with %s", conf->path, conf->module, who ? who : "the card",
	                module, module, KHSM_GUARD_CONF_ENV);
	return KHSM_ECONFIG;
}

/* Only blank lines and whole-line comments. */
static bool text_unset(const char *text)
{
	for (const char *p = text; *p;) {
		p += strspn(p, " \t\r");
		if (*p && *p != '\n' && *p != '#') return false;
		p += strcspn(p, "\n");
		p += *p == '\n';
	}
	return true;
}

_public_
int khsm_guard_conf_unset(const char *path, bool *unset_ptr)
{
	if (!path || !unset_ptr) return KHSM_EINVAL;
	_cleanup_free_ char *text = NULL;
	khsm_file_read_opts_t opts = { .max = 65536, .what = "guard configuration" };
	int r = khsm_file_read(path, &opts, &text, NULL, NULL);
	if (r == KHSM_ENOENT) {
		khsm_err_clear();
		*unset_ptr = true;
		return KHSM_EOK;
	}
	if (r != KHSM_EOK) return r;
	*unset_ptr = text_unset(text);
	return KHSM_EOK;
}

/* The guard module, and where its configuration is. */
static int locate(char **path_ptr)
{
	const char *guard = khsm_guard_module_path();
	if (access(guard, R_OK) != 0) {
		khsm_err_detail("the guard module %s is missing; install knot-hsm's libknothsm-guard.so "
		                "or name it with %s", guard, KHSM_GUARD_MODULE_ENV);
		return KHSM_EMODULE;
	}
	return khsm_guard_conf_locate(guard, path_ptr);
}

_public_
int khsm_guard_conf_find(const char *module, const char *who, char **path_ptr,
                         khsm_guard_conf_t *conf)
{
	memset(conf, 0, sizeof(*conf));
	int r = locate(path_ptr);
	if (r == KHSM_EOK) r = khsm_guard_conf_load(*path_ptr, conf);
	if (r == KHSM_EOK) r = khsm_guard_conf_match(conf, module, who);
	return r;
}

_public_
void khsm_guard_setup_clear(khsm_guard_setup_t *done)
{
	if (!done) return;
	free(done->conf_written);
	free(done->audit_log);
	free(done->lock_file);
	free(done->owner);
	memset(done, 0, sizeof(*done));
}

static int no_permission(const char *what, const char *path, const char *as_root)
{
	khsm_err_detail("cannot write %s %s: permission denied; run as root%s%s", what, path,
	                as_root ? ": " : "", as_root ? as_root : "");
	return KHSM_EPERM;
}

/* The file to write for the configuration at path: path itself, or the
 * target of the package's link ($libdir/knot-hsm/ -> /etc/knot/), which only
 * root could have made. \param[out] target_ptr  free(). */
static int conf_target(const char *path, char **target_ptr)
{
	struct stat st;
	if (lstat(path, &st) != 0) {
		if (errno != ENOENT) {
			khsm_err_detail("cannot write the guard configuration %s: %s", path, strerror(errno));
			return KHSM_EIO;
		}
		return (*target_ptr = strdup(path)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	if (!S_ISLNK(st.st_mode)) {
		int r = khsm_file_refuse_special(path, &st);
		if (r != KHSM_EOK) return r;
		return (*target_ptr = strdup(path)) ? KHSM_EOK : KHSM_ENOMEM;
	}
	const char *env = getenv(KHSM_GUARD_CONF_ENV);
	_cleanup_free_ char *dir = khsm_path_dir(path);
	if (!dir) return KHSM_ENOMEM;
	struct stat dst;
	bool trusted = !(env && *env) && st.st_uid == 0 && stat(dir, &dst) == 0 && dst.st_uid == 0 &&
	               !(dst.st_mode & (S_IWGRP | S_IWOTH));
	char link[PATH_MAX];
	ssize_t n = trusted ? readlink(path, link, sizeof(link) - 1) : -1;
	if (n <= 0) {
		khsm_err_detail("the guard configuration %s is a symbolic link; knot-hsm writes through "
		                "none but the package's (root's, beside the guard module): remove it, or "
		                "name the file itself with %s", path, KHSM_GUARD_CONF_ENV);
		return KHSM_EPERM;
	}
	link[n] = '\0';
	if (khsm_path_absolute(link, dir, target_ptr) != KHSM_EOK) return KHSM_ENOMEM;
	/* The target is written by khsm_file_write_atomic(), which refuses a link there. */
	if (lstat(*target_ptr, &st) == 0) {
		int r = khsm_file_refuse_special(*target_ptr, &st);
		if (r != KHSM_EOK) {
			free(*target_ptr);
			*target_ptr = NULL;
			return r;
		}
	}
	return KHSM_EOK;
}

/* One of the audit files: kept when it is knotd's regular file, *create
 * when missing; a link, a device, a hard link or a stranger's file refused. */
static int audit_file_check(int dfd, const char *path, const char *base, const char *what,
                            uid_t uid, const char *user, bool *create)
{
	struct stat st;
	if (fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno != ENOENT) {
			khsm_err_detail("cannot create the %s %s: %s", what, path, strerror(errno));
			return KHSM_EIO;
		}
		*create = true;
		return KHSM_EOK;
	}
	*create = false;
	if (S_ISLNK(st.st_mode)) {
		khsm_err_detail("cannot create the %s %s: it is a symbolic link, never followed (someone "
		                "who can write its directory may have planted it): remove it", what, path);
		return KHSM_EPERM;
	}
	if (!S_ISREG(st.st_mode)) {
		khsm_err_detail("cannot create the %s %s: it exists and is not a regular file: remove it",
		                what, path);
		return KHSM_EPERM;
	}
	if (st.st_uid != uid || st.st_nlink != 1) {
		khsm_err_detail("cannot use the %s %s: it exists and %s, expected %s's own file: remove "
		                "it, or chown %s it if it is knotd's", what, path,
		                st.st_nlink != 1 ? "has several hard links" : "belongs to another user",
		                user, user);
		return KHSM_EPERM;
	}
	return KHSM_EOK;
}

/* A new audit file, mode 0640, knotd's; never through a link, never one
 * that appeared meanwhile (O_EXCL). */
static int audit_file_create(int dfd, const char *path, const char *base, const char *what,
                             uid_t uid, gid_t gid)
{
	int fd = openat(dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0) {
		khsm_err_detail("cannot create the %s %s: %s", what, path, strerror(errno));
		return errno == EACCES || errno == EPERM ? KHSM_EPERM : KHSM_EIO;
	}
	/* Owner, then mode, through the descriptor: no window with a wrong owner and a wider mode. */
	int r = KHSM_EOK;
	if ((geteuid() != uid && fchown(fd, uid, gid) != 0) || fchmod(fd, 0640) != 0) {
		khsm_err_detail("cannot give the %s %s to knotd's user: %s", what, path, strerror(errno));
		r = KHSM_EPERM;
		(void)unlinkat(dfd, base, 0);
	}
	close(fd);
	return r;
}

/* The audit files' directory must be one the guard appends in as root:
 * knotd's own, or shared with knotd's group (lib/audit.c's owner rule). */
static int audit_dir_open(const char *dir, const char *log, uid_t uid, gid_t gid, const char *user,
                          int *dfd_ptr)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat dst;
	if (dfd < 0 || fstat(dfd, &dst) != 0) {
		khsm_err_detail("cannot create the audit log %s: its directory %s: %s (is knot installed?)",
		                log, dir, strerror(errno));
		if (dfd >= 0) close(dfd);
		return KHSM_EIO;
	}
	if (dst.st_uid != uid && !((dst.st_mode & S_IWGRP) && dst.st_gid == gid)) {
		khsm_err_detail("cannot create the audit log %s: its directory %s is neither %s's nor "
		                "writable by its group, so the guard would not append to a file of %s "
		                "there: use knotd's directory", log, dir, user, user);
		close(dfd);
		return KHSM_EPERM;
	}
	*dfd_ptr = dfd;
	return KHSM_EOK;
}

/* Write the configuration for module at target, with the audit log and its
 * lock file made first; everything made is removed on failure. */
static int write_setup(const char *module, const char *target, const char *as_root,
                       khsm_guard_setup_t *done)
{
	const char *log = getenv(KHSM_GUARD_AUDIT_LOG_ENV);
	if (!log || !*log) log = KHSM_GUARD_DEFAULT_AUDIT_LOG;
	_cleanup_free_ char *lock = NULL, *dir = NULL, *base = NULL, *lock_base = NULL, *text = NULL;
	_cleanup_free_ char *conf_dir = khsm_path_dir(target);
	if (!conf_dir || asprintf(&lock, "%s.lock", log) < 0) {
		lock = NULL;
		return KHSM_ENOMEM;
	}
	int r = khsm_guard_conf_render(module, log, &text);
	if (r == KHSM_EOK) r = khsm_path_split(log, &dir, &base);
	if (r != KHSM_EOK) return r;
	if (asprintf(&lock_base, "%s.lock", base) < 0) {
		lock_base = NULL;
		return KHSM_ENOMEM;
	}
	if (access(conf_dir, W_OK) != 0) {
		if (errno != ENOENT) return no_permission("the guard configuration", target, as_root);
		khsm_err_detail("cannot write the guard configuration %s: its directory %s does not exist",
		                target, conf_dir);
		return KHSM_ENOENT;
	}
	/* knotd's user: the guard runs inside knotd and appends as that user. */
	uid_t uid;
	gid_t gid;
	if (!khsm_knot_ids(&uid, &gid)) {
		khsm_err_detail("cannot create the audit log %s for knotd's user: there is no user "
		                "'knot' (install knot first)", log);
		return KHSM_ENOENT;
	}
	if (!(done->owner = strdup("knot"))) return KHSM_ENOMEM;
	if (geteuid() != 0 && geteuid() != uid) {
		return no_permission("the audit log for knotd's user", log, as_root);
	}
	_cleanup_close_ int dfd = -1;
	r = audit_dir_open(dir, log, uid, gid, done->owner, &dfd);
	bool new_log = false, new_lock = false;
	if (r == KHSM_EOK) r = audit_file_check(dfd, log, base, "audit log", uid, done->owner, &new_log);
	if (r == KHSM_EOK) {
		r = audit_file_check(dfd, lock, lock_base, "lock file", uid, done->owner, &new_lock);
	}
	if (r != KHSM_EOK) return r;
	/* Checked; now made, in order, each undone if a later one fails. */
	if (new_log) {
		r = audit_file_create(dfd, log, base, "audit log", uid, gid);
		if (r != KHSM_EOK) goto fail;
		done->created_log = true;
	}
	if (new_lock) {
		r = audit_file_create(dfd, lock, lock_base, "lock file", uid, gid);
		if (r != KHSM_EOK) goto fail;
		done->created_lock = true;
	}
	/* Readable by all, like the package's file: it holds paths, no secret. */
	r = khsm_file_write_atomic(target, text, strlen(text), 0644, 0);
	if (r != KHSM_EOK) goto fail;
	/* written: nothing to undo */
	done->wrote_conf = true;
	done->conf_written = strdup(target);
	done->audit_log = strdup(log);
	done->lock_file = KHSM_STEAL(lock);
	if (!done->conf_written || !done->audit_log) return KHSM_ENOMEM;
	return KHSM_EOK;
fail:
	if (done->created_lock) (void)unlinkat(dfd, lock_base, 0);
	if (done->created_log) (void)unlinkat(dfd, base, 0);
	done->created_log = done->created_lock = false;
	return r;
}

_public_
int khsm_guard_setup(const char *module, const char *who, const char *as_root, char **path_ptr,
                     khsm_guard_conf_t *conf, khsm_guard_setup_t *done)
{
	memset(conf, 0, sizeof(*conf));
	memset(done, 0, sizeof(*done));
	if (!module || module[0] != '/') {
		khsm_err_detail("the guard needs the card module's absolute path");
		return KHSM_EINVAL;
	}
	int r = locate(path_ptr);
	bool unset = false;
	if (r == KHSM_EOK) r = khsm_guard_conf_unset(*path_ptr, &unset);
	if (r == KHSM_EOK && unset) {
		_cleanup_free_ char *target = NULL;
		r = conf_target(*path_ptr, &target);
		if (r == KHSM_EOK) r = write_setup(module, target, as_root, done);
	}
	if (r == KHSM_EOK) r = khsm_guard_conf_load(*path_ptr, conf);
	if (r == KHSM_EOK) r = khsm_guard_conf_match(conf, module, who);
	return r;
}

/* value for a shell: as is when plain, else in single quotes (' as '\''). */
static void shell_quote(FILE *f, const char *value)
{
	if (*value && strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "0123456789/._-+=:,@") == strlen(value)) {
		fputs(value, f);
		return;
	}
	fputc('\'', f);
	for (const char *p = value; *p; p++) {
		if (*p == '\'') fputs("'\\''", f);
		else fputc(*p, f);
	}
	fputc('\'', f);
}

_public_
int khsm_guard_setup_command(const char *module, const char *label, const char *pin_file,
                             char **cmd_ptr)
{
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);
	if (!f) return KHSM_ENOMEM;
	fputs("knot-hsm keystore", f);
	if (module) {
		fputs(" --module ", f);
		shell_quote(f, module);
	}
	fputs(" --token ", f);
	shell_quote(f, label ? label : "LABEL");
	if (pin_file) {
		fputs(" --pin-file ", f);
		shell_quote(f, pin_file);
	}
	fputs(" --guard", f);
	if (fclose(f) != 0) {
		free(out);
		return KHSM_ENOMEM;
	}
	*cmd_ptr = out;
	return KHSM_EOK;
}

_public_
int khsm_guard_setup_command_uri(const char *uri, char **cmd_ptr)
{
	khsm_uri_t attrs = { 0 };
	if (!uri || khsm_uri_parse(uri, &attrs) != KHSM_EOK) {
		/* Without a readable URI, the placeholders say what goes there. */
		khsm_err_clear();
		khsm_uri_clear(&attrs);
		return khsm_guard_setup_command(NULL, NULL, "FILE", cmd_ptr);
	}
	int r = khsm_guard_setup_command(NULL, attrs.token, attrs.pin_source ? attrs.pin_source : "FILE",
	                                 cmd_ptr);
	khsm_uri_clear(&attrs);
	return r;
}
