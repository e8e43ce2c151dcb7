/* PIN handling: sources, permission checks, locked and wiped memory. */
#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>

#include "error.h"
#include "files.h"
#include "internal.h"
#include "pin.h"

/* A PIN of a smartcard is at most a few dozen bytes; 256 covers any token. */
#define PIN_MAX 256

struct khsm_pin {
	size_t len;
	char value[PIN_MAX + 1];
};

static khsm_pin_t *pin_new(void)
{
	khsm_pin_t *pin = calloc(1, sizeof(*pin));
	if (pin) {
		/* Keep it out of swap; failure (RLIMIT_MEMLOCK) is not fatal. */
		(void)mlock(pin, sizeof(*pin));
	}
	return pin;
}

_public_
void khsm_pin_free(khsm_pin_t *pin)
{
	if (!pin) {
		return;
	}
	explicit_bzero(pin, sizeof(*pin));
	munlock(pin, sizeof(*pin));
	free(pin);
}

_public_
const char *khsm_pin_value(const khsm_pin_t *pin)
{
	return pin ? pin->value : NULL;
}

_public_
size_t khsm_pin_len(const khsm_pin_t *pin)
{
	return pin ? pin->len : 0;
}

_public_
const char *khsm_pin_file_issue_text(unsigned issue)
{
	switch (issue) {
	case KHSM_PIN_FILE_OTHERS:
		return "readable by group or others; run chmod 0600 on it (or 0400)";
	case KHSM_PIN_FILE_NEWLINE:
		return "ends with a newline, carriage return, space or tab, which GnuTLS and knotd "
		       "send as part of the PIN; rewrite it with: printf '%s' \"$PIN\" > FILE";
	case KHSM_PIN_FILE_EMPTY:
		return "is empty; write the user PIN into it";
	case KHSM_PIN_FILE_NOT_REG:
		return "is not a regular file (a FIFO, device or directory); write the PIN into a "
		       "regular file with mode 0600";
	case KHSM_PIN_FILE_OWNER:
		return "is owned by another user; chown it to the user that runs knotd (or root)";
	case KHSM_PIN_FILE_SYMLINK:
		return "is a symbolic link, which knot-hsm never follows for a PIN; name the file "
		       "itself in --pin-file or pin-source";
	case KHSM_PIN_FILE_DIR:
		return "is in a directory another user can write (writable by others, even with "
		       "the sticky bit as /tmp, writable by group without the sticky bit, or owned "
		       "by another user), who could replace it; move it into a directory only root "
		       "or its owner can write (e.g. /etc/knot, or a mktemp -d directory)";
	default:
		return "has an unknown problem";
	}
}

static int read_all(int fd, khsm_pin_t *pin, const char *what);

/* Root, the caller and the user knotd runs as (Debian: knot) may own a PIN
 * file and the directory it is in. */
static bool trusted_uid(uid_t uid)
{
	if (uid == 0 || uid == geteuid()) {
		return true;
	}
	uid_t knot = 0;
	return khsm_knot_ids(&knot, NULL) && knot == uid;
}

static int open_errno(const char *path, int err)
{
	khsm_err_detail("cannot open PIN file %s: %s", path, strerror(err));
	return err == ENOENT || err == ENOTDIR ? KHSM_ENOENT : err == EACCES ? KHSM_EPERM : KHSM_EIO;
}

/* Open path for reading when it is a regular file reached without a final
 * symlink; *fd_ptr is -1 when the file must not be opened (a symlink, FIFO,
 * device: the issue bit says which). Never blocks on a FIFO. */
/* The descriptor N when path is /proc/<this pid>/fd/N: a PIN this process
 * holds itself (lib/handoff's memfd), not a file on disk; else -1. */
static int own_fd(const char *path)
{
	char prefix[48];
	int len = snprintf(prefix, sizeof(prefix), "/proc/%d/fd/", (int)getpid());
	uint64_t n;
	if (len <= 0 || strncmp(path, prefix, (size_t)len) != 0 ||
	    !khsm_parse_u64(path + len, INT32_MAX, &n)) {
		return -1;
	}
	return fcntl((int)n, F_GETFD) >= 0 ? (int)n : -1;
}

/* Trailing whitespace or emptiness of a regular file open as fd. */
static unsigned content_issues(int fd, const struct stat *st)
{
	if (st->st_size == 0) {
		return KHSM_PIN_FILE_EMPTY;
	}
	char last = 0;
	unsigned issues = 0;
	if (pread(fd, &last, 1, st->st_size - 1) == 1 &&
	    (last == '\n' || last == '\r' || last == ' ' || last == '\t')) {
		issues = KHSM_PIN_FILE_NEWLINE;
	}
	explicit_bzero(&last, 1);
	return issues;
}

/* Our own descriptor through its /proc path: reopened (offset 0), the same
 * file checked; owner, mode and directory do not apply to a memfd. */
static int own_fd_open(const char *path, int own, int *fd_ptr, unsigned *issues_ptr,
                       struct stat *st_ptr)
{
	struct stat ost;
	if (fstat(own, &ost) != 0 || !S_ISREG(ost.st_mode)) {
		*issues_ptr = KHSM_PIN_FILE_NOT_REG;
		return KHSM_EOK;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		return open_errno(path, errno);
	}
	if (fstat(fd, st_ptr) != 0 || st_ptr->st_dev != ost.st_dev || st_ptr->st_ino != ost.st_ino) {
		close(fd);
		*issues_ptr = KHSM_PIN_FILE_NOT_REG;
		return KHSM_EOK;
	}
	(void)fcntl(fd, F_SETFL, 0);
	*issues_ptr = content_issues(fd, st_ptr);
	*fd_ptr = fd;
	return KHSM_EOK;
}

static int pin_file_open(const char *path, int *fd_ptr, unsigned *issues_ptr, struct stat *st_ptr)
{
	*fd_ptr = -1;
	int own = own_fd(path);
	if (own >= 0) {
		return own_fd_open(path, own, fd_ptr, issues_ptr, st_ptr);
	}
	_cleanup_free_ char *copy = strdup(path);
	if (!copy) {
		return KHSM_ENOMEM;
	}
	char *slash = strrchr(copy, '/');
	const char *dir = ".", *base = copy;
	if (slash) {
		*slash = '\0';
		dir = slash == copy ? "/" : copy;
		base = slash + 1;
	}
	if (!*base) {
		khsm_err_detail("PIN file %s names a directory; name the file", path);
		return KHSM_EINVAL;
	}
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		return open_errno(path, errno);
	}
	struct stat dst, lst;
	if (fstat(dfd, &dst) != 0 || fstatat(dfd, base, &lst, AT_SYMLINK_NOFOLLOW) != 0) {
		return open_errno(path, errno);
	}
	unsigned issues = 0;
	/* World-writable is refused even with the sticky bit: a PIN file directly
	 * in /tmp is exactly the risk (anyone can create, or squat, names there). */
	if (!trusted_uid(dst.st_uid) || (dst.st_mode & S_IWOTH) ||
	    ((dst.st_mode & S_IWGRP) && !(dst.st_mode & S_ISVTX))) {
		issues |= KHSM_PIN_FILE_DIR;
	}
	*st_ptr = lst;
	if (S_ISLNK(lst.st_mode)) {
		*issues_ptr = issues | KHSM_PIN_FILE_SYMLINK;
		return KHSM_EOK;
	}
	if (!S_ISREG(lst.st_mode)) {
		*issues_ptr = issues | KHSM_PIN_FILE_NOT_REG;
		return KHSM_EOK;
	}
	/* O_NONBLOCK: should a FIFO have taken its place since, open() does not wait. */
	int fd = openat(dfd, base, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		return open_errno(path, errno);
	}
	if (fstat(fd, st_ptr) != 0 || !S_ISREG(st_ptr->st_mode) ||
	    st_ptr->st_dev != lst.st_dev || st_ptr->st_ino != lst.st_ino) {
		close(fd);
		*issues_ptr = issues | KHSM_PIN_FILE_NOT_REG;
		return KHSM_EOK;
	}
	/* A regular file: back to blocking reads. */
	(void)fcntl(fd, F_SETFL, 0);
	if (st_ptr->st_mode & (S_IRWXG | S_IRWXO)) {
		issues |= KHSM_PIN_FILE_OTHERS;
	}
	if (!trusted_uid(st_ptr->st_uid)) {
		issues |= KHSM_PIN_FILE_OWNER;
	}
	issues |= content_issues(fd, st_ptr);
	*issues_ptr = issues;
	*fd_ptr = fd;
	return KHSM_EOK;
}

_public_
int khsm_pin_file_check(const char *path, unsigned *issues_ptr, mode_t *mode_ptr)
{
	if (!path || !issues_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_close_ int fd = -1;
	struct stat st;
	unsigned issues = 0;
	int r = pin_file_open(path, &fd, &issues, &st);
	if (r != KHSM_EOK) {
		return r;
	}
	*issues_ptr = issues;
	if (mode_ptr) {
		*mode_ptr = st.st_mode & 07777;
	}
	return KHSM_EOK;
}

/* The one message of the first blocking issue, with its remedy. */
static int pin_file_judge(const char *what, const char *path, unsigned issues, mode_t mode,
                          bool force)
{
	static const unsigned ORDER[] = {
		KHSM_PIN_FILE_SYMLINK, KHSM_PIN_FILE_NOT_REG, KHSM_PIN_FILE_EMPTY,
		KHSM_PIN_FILE_NEWLINE, KHSM_PIN_FILE_OTHERS, KHSM_PIN_FILE_OWNER, KHSM_PIN_FILE_DIR,
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(ORDER); i++) {
		unsigned bit = ORDER[i];
		if (!(issues & bit) || (force && (bit & KHSM_PIN_FILE_FORCEABLE))) {
			continue;
		}
		const char *sep = what[0] ? " " : "";
		if (bit == KHSM_PIN_FILE_SYMLINK) {
			_cleanup_free_ char *target = realpath(path, NULL);
			khsm_err_detail("%s%s%s %s%s%s%s", what, sep, path, khsm_pin_file_issue_text(bit),
			                target ? " (here: " : "", target ? target : "", target ? ")" : "");
		} else if (bit == KHSM_PIN_FILE_NOT_REG || bit == KHSM_PIN_FILE_DIR) {
			khsm_err_detail("%s%s%s %s%s", what, sep, path, khsm_pin_file_issue_text(bit),
			                bit & KHSM_PIN_FILE_FORCEABLE ? " (or pass --force)" : "");
		} else {
			khsm_err_detail("%s%s%s (mode %04o) %s%s", what, sep, path, (unsigned)mode,
			                khsm_pin_file_issue_text(bit),
			                bit & KHSM_PIN_FILE_FORCEABLE ? " (or pass --force)" : "");
		}
		return KHSM_EPIN_UNSAFE;
	}
	return KHSM_EOK;
}

_public_
int khsm_pin_file_verify(const char *what, const char *path, bool force)
{
	if (!what || !path) {
		return KHSM_EINVAL;
	}
	unsigned issues = 0;
	mode_t mode = 0;
	int r = khsm_pin_file_check(path, &issues, &mode);
	return r != KHSM_EOK ? r : pin_file_judge(what, path, issues, mode, force);
}

_public_
int khsm_pin_from_file(const char *path, bool force, khsm_pin_t **pin_ptr)
{
	if (!path || !pin_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_close_ int fd = -1;
	struct stat st;
	unsigned issues = 0;
	int r = pin_file_open(path, &fd, &issues, &st);
	if (r != KHSM_EOK) {
		return r;
	}
	if ((r = pin_file_judge("PIN file", path, issues, st.st_mode & 07777, force)) != KHSM_EOK) {
		return r;
	}
	_cleanup_pin_ khsm_pin_t *pin = pin_new();
	if (!pin) {
		return KHSM_ENOMEM;
	}
	r = read_all(fd, pin, path);
	if (r != KHSM_EOK) {
		return r;
	}
	*pin_ptr = KHSM_STEAL(pin);
	return KHSM_EOK;
}

static int read_all(int fd, khsm_pin_t *pin, const char *what)
{
	size_t len = 0;
	for (;;) {
		if (len == PIN_MAX) {
			char extra;
			ssize_t n = read(fd, &extra, 1);
			if (n > 0) {
				explicit_bzero(&extra, 1);
				khsm_err_detail("%s holds more than %d bytes; it is not a PIN", what, PIN_MAX);
				return KHSM_ERANGE;
			}
			break;
		}
		ssize_t n = read(fd, pin->value + len, PIN_MAX - len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			khsm_err_detail("cannot read %s: %s", what, strerror(errno));
			return KHSM_EIO;
		}
		if (n == 0) {
			break;
		}
		len += (size_t)n;
	}
	pin->len = len;
	pin->value[len] = '\0';
	return KHSM_EOK;
}

static void strip_newline(khsm_pin_t *pin)
{
	if (pin->len > 0 && pin->value[pin->len - 1] == '\n') {
		pin->value[--pin->len] = '\0';
	}
	if (pin->len > 0 && pin->value[pin->len - 1] == '\r') {
		pin->value[--pin->len] = '\0';
	}
}

_public_
int khsm_pin_from_fd(int fd, khsm_pin_t **pin_ptr)
{
	if (fd < 0 || !pin_ptr) {
		return KHSM_EINVAL;
	}
	if (fcntl(fd, F_GETFD) < 0) {
		khsm_err_detail("--pin-fd %d is not an open file descriptor", fd);
		return KHSM_EINVAL;
	}
	_cleanup_pin_ khsm_pin_t *pin = pin_new();
	if (!pin) {
		return KHSM_ENOMEM;
	}
	int r = read_all(fd, pin, "the PIN descriptor");
	if (r != KHSM_EOK) {
		return r;
	}
	strip_newline(pin);
	if (pin->len == 0) {
		khsm_err_detail("no PIN was read from descriptor %d", fd);
		return KHSM_ENOPIN;
	}
	*pin_ptr = KHSM_STEAL(pin);
	return KHSM_EOK;
}

_public_
int khsm_pin_prompt(const char *prompt, khsm_pin_t **pin_ptr)
{
	if (!pin_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_close_ int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (tty < 0) {
		khsm_err_detail("no terminal to ask for the PIN; use --pin-file or --pin-fd");
		return KHSM_ENOPIN;
	}
	struct termios old, quiet;
	if (tcgetattr(tty, &old) != 0) {
		khsm_err_detail("cannot switch off echo on the terminal; use --pin-file or --pin-fd");
		return KHSM_ENOPIN;
	}
	quiet = old;
	quiet.c_lflag &= ~(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (tcsetattr(tty, TCSAFLUSH, &quiet) != 0) {
		khsm_err_detail("cannot switch off echo on the terminal; use --pin-file or --pin-fd");
		return KHSM_ENOPIN;
	}
	const char *text = prompt ? prompt : "User PIN: ";
	if (write(tty, text, strlen(text)) < 0) {
		/* the prompt is a courtesy; reading still works */
	}

	khsm_pin_t *pin = pin_new();
	int r = pin ? KHSM_EOK : KHSM_ENOMEM;
	size_t len = 0;
	while (r == KHSM_EOK) {
		char c;
		ssize_t n = read(tty, &c, 1);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0 || c == '\n' || c == '\r') {
			break;
		}
		if (len == PIN_MAX) {
			khsm_err_detail("PIN longer than %d bytes", PIN_MAX);
			r = KHSM_ERANGE;
			break;
		}
		pin->value[len++] = c;
		explicit_bzero(&c, 1);
	}
	tcsetattr(tty, TCSAFLUSH, &old);
	if (write(tty, "\n", 1) < 0) {
		/* ignore */
	}
	if (r == KHSM_EOK && len == 0) {
		khsm_err_detail("empty PIN entered");
		r = KHSM_ENOPIN;
	}
	if (r != KHSM_EOK) {
		khsm_pin_free(pin);
		return r;
	}
	pin->len = len;
	pin->value[len] = '\0';
	*pin_ptr = pin;
	return KHSM_EOK;
}
