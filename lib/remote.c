/* remote: p11-kit's RPC client as the keystore module (lib/remote.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "config.h"
#include "error.h"
#include "internal.h"
#include "remote.h"

#define CLIENT_NAME "p11-kit-client.so"
#define UNIX_PREFIX "unix:path="
#define REMEDY "on the card host, start the server (systemctl start knot-hsm-p11-kit-server); " \
	"here, the ssh forward of its socket (systemctl start knot-hsm-remote-tunnel)"

_public_
const char *khsm_remote_client_module(void)
{
	return KHSM_P11_MODULE_DIR "/" CLIENT_NAME;
}

_public_
bool khsm_remote_is_client(const char *module_path)
{
	if (!module_path) {
		return false;
	}
	const char *base = strrchr(module_path, '/');
	return strcmp(base ? base + 1 : module_path, CLIENT_NAME) == 0;
}

static bool plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("/._~-", c) != NULL;
}

_public_
int khsm_remote_address(const char *socket, char **address_ptr)
{
	if (!socket || !address_ptr) {
		return KHSM_EINVAL;
	}
	if (socket[0] != '/') {
		khsm_err_detail("the remote socket '%s' is not an absolute path; knotd runs in "
		                "another directory", socket);
		return KHSM_EINVAL;
	}
	size_t len = strlen(UNIX_PREFIX) + 3 * strlen(socket) + 1;
	char *out = malloc(len);
	if (!out) {
		return KHSM_ENOMEM;
	}
	char *p = stpcpy(out, UNIX_PREFIX);
	for (const unsigned char *s = (const unsigned char *)socket; *s; s++) {
		if (plain(*s)) {
			*p++ = (char)*s;
		} else {
			p += sprintf(p, "%%%02X", *s);
		}
	}
	*p = '\0';
	*address_ptr = out;
	return KHSM_EOK;
}

_public_
int khsm_remote_use(const char *socket)
{
	_cleanup_free_ char *address = NULL;
	int r = khsm_remote_address(socket, &address);
	if (r != KHSM_EOK) {
		return r;
	}
	if (setenv(KHSM_REMOTE_ENV, address, 1) != 0) {
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	     : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

_public_
int khsm_remote_socket(char **socket_ptr)
{
	if (!socket_ptr) {
		return KHSM_EINVAL;
	}
	const char *address = getenv(KHSM_REMOTE_ENV);
	if (!address || !*address) {
		const char *xdg = getenv("XDG_RUNTIME_DIR");
		if (!xdg || !*xdg) {
			khsm_err_detail("%s is not set, so p11-kit-client.so does not know the card host's "
			                "socket: give --remote SOCKET, or set %s=unix:path=SOCKET as knotd's "
			                "unit does", KHSM_REMOTE_ENV, KHSM_REMOTE_ENV);
			return KHSM_ECONFIG;
		}
		return asprintf(socket_ptr, "%s/p11-kit/pkcs11", xdg) < 0 ? KHSM_ENOMEM : KHSM_EOK;
	}
	size_t plen = strlen(UNIX_PREFIX);
	if (strncmp(address, UNIX_PREFIX, plen) != 0 || address[plen] == '\0') {
		khsm_err_detail("%s=%s is not a unix socket address (unix:path=SOCKET); carry the card "
		                "host's socket with ssh -L and name the local end", KHSM_REMOTE_ENV, address);
		return KHSM_ECONFIG;
	}
	const char *s = address + plen;
	char *out = malloc(strlen(s) + 1);
	if (!out) {
		return KHSM_ENOMEM;
	}
	char *p = out;
	for (; *s; s++) {
		int hi, lo;
		if (*s == '%' && (hi = hexval(s[1])) >= 0 && (lo = hexval(s[2])) >= 0) {
			*p++ = (char)(hi * 16 + lo);
			s += 2;
		} else {
			*p++ = *s;
		}
	}
	*p = '\0';
	*socket_ptr = out;
	return KHSM_EOK;
}

_public_
int khsm_remote_check(char **socket_ptr)
{
	_cleanup_free_ char *path = NULL;
	int r = khsm_remote_socket(&path);
	if (r != KHSM_EOK) {
		return r;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		khsm_err_detail("remote socket path too long: %s", path);
		return KHSM_EINVAL;
	}
	strcpy(sa.sun_path, path);
	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (!exists || !S_ISSOCK(st.st_mode)) {
		khsm_err_detail("the card host's p11-kit server socket %s %s: %s", path,
		                exists ? "is not a socket" : "does not exist", REMEDY);
		return KHSM_EREMOVED;
	}
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		khsm_err_detail("socket: %s", strerror(errno));
		return KHSM_EIO;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		khsm_err_detail("no p11-kit server answers on the card host's socket %s (%s): %s", path,
		                strerror(errno), REMEDY);
		return KHSM_EREMOVED;
	}
	if (socket_ptr) {
		*socket_ptr = KHSM_STEAL(path);
	}
	return KHSM_EOK;
}
