/* pcscd: is the PC/SC daemon there? A connect() on its socket, nothing more:
 * no PC/SC library is linked and no card is touched. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "internal.h"
#include "pcscd.h"

_public_
const char *khsm_pcscd_socket(void)
{
	const char *env = getenv("PCSCLITE_CSOCK_NAME");
	return env && *env ? env : "/run/pcscd/pcscd.comm";
}

_public_
int khsm_pcscd_check(void)
{
	const char *path = khsm_pcscd_socket();
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		khsm_err_detail("pcscd socket path too long: %s", path);
		return KHSM_EINVAL;
	}
	strcpy(sa.sun_path, path);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		khsm_err_detail("socket: %s", strerror(errno));
		return KHSM_EIO;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		khsm_err_detail("pcscd is not running (nothing answers on %s: %s): start it "
		                "(systemctl start pcscd.socket)", path, strerror(errno));
		return KHSM_ENOENT;
	}
	return KHSM_EOK;
}

_public_
bool khsm_pcscd_module_uses(const char *module_path)
{
	if (!module_path) {
		return false;
	}
	const char *base = strrchr(module_path, '/');
	base = base ? base + 1 : module_path;
	return strncmp(base, "opensc-pkcs11", 13) == 0 || strncmp(base, "onepin-opensc-pkcs11", 20) == 0;
}
