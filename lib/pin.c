/* PIN handling: sources, permission checks, locked and wiped memory. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <termios.h>

#include "error.h"
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

static void pin_free_ptr(khsm_pin_t **pin) { khsm_pin_free(*pin); }
#define _cleanup_pin_ __attribute__((cleanup(pin_free_ptr)))

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
		return "ends with a newline, which GnuTLS and knotd send as part of the PIN; "
		       "rewrite it with: printf '%s' \"$PIN\" > FILE";
	case KHSM_PIN_FILE_EMPTY:
		return "is empty; write the user PIN into it";
	case KHSM_PIN_FILE_NOT_REG:
		return "is not a regular file";
	case KHSM_PIN_FILE_OWNER:
		return "is owned by another user; chown it to the user that runs knotd";
	default:
		return "has an unknown problem";
	}
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

_public_
int khsm_pin_file_check(const char *path, unsigned *issues_ptr, mode_t *mode_ptr)
{
	if (!path || !issues_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		khsm_err_detail("cannot open PIN file %s: %s", path, strerror(errno));
		return errno == ENOENT ? KHSM_ENOENT : errno == EACCES ? KHSM_EPERM : KHSM_EIO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		khsm_err_detail("cannot stat PIN file %s: %s", path, strerror(errno));
		return KHSM_EIO;
	}

	unsigned issues = 0;
	if (!S_ISREG(st.st_mode)) {
		issues |= KHSM_PIN_FILE_NOT_REG;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		issues |= KHSM_PIN_FILE_OTHERS;
	}
	if (st.st_uid != geteuid()) {
		/* knotd reads it as its own user (Debian: knot), so that owner is fine too. */
		struct passwd *knot = getpwnam("knot");
		if (!knot || knot->pw_uid != st.st_uid) {
			issues |= KHSM_PIN_FILE_OWNER;
		}
	}
	if (st.st_size == 0) {
		issues |= KHSM_PIN_FILE_EMPTY;
	} else if (S_ISREG(st.st_mode)) {
		char last = 0;
		if (pread(fd, &last, 1, st.st_size - 1) == 1 && (last == '\n' || last == '\r')) {
			issues |= KHSM_PIN_FILE_NEWLINE;
		}
	}
	*issues_ptr = issues;
	if (mode_ptr) {
		*mode_ptr = st.st_mode & 07777;
	}
	return KHSM_EOK;
}

_public_
int khsm_pin_from_file(const char *path, bool force, khsm_pin_t **pin_ptr)
{
	if (!path || !pin_ptr) {
		return KHSM_EINVAL;
	}
	unsigned issues = 0;
	mode_t mode = 0;
	int r = khsm_pin_file_check(path, &issues, &mode);
	if (r != KHSM_EOK) {
		return r;
	}
	if ((issues & KHSM_PIN_FILE_OTHERS) && !force) {
		khsm_err_detail("PIN file %s has mode %04o: %s (or pass --force)", path,
		                (unsigned)mode, khsm_pin_file_issue_text(KHSM_PIN_FILE_OTHERS));
		return KHSM_EPIN_UNSAFE;
	}
	if (issues & (KHSM_PIN_FILE_NOT_REG | KHSM_PIN_FILE_EMPTY | KHSM_PIN_FILE_NEWLINE)) {
		unsigned which = issues & KHSM_PIN_FILE_NOT_REG ? KHSM_PIN_FILE_NOT_REG
		               : issues & KHSM_PIN_FILE_EMPTY ? KHSM_PIN_FILE_EMPTY
		               : KHSM_PIN_FILE_NEWLINE;
		khsm_err_detail("PIN file %s %s", path, khsm_pin_file_issue_text(which));
		return KHSM_EINVAL;
	}

	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		khsm_err_detail("cannot open PIN file %s: %s", path, strerror(errno));
		return KHSM_EIO;
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
