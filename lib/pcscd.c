/* pcscd: is the PC/SC daemon there? A connect() on its socket, nothing more:
 * no PC/SC library is linked and no card is touched. */
#include <errno.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "error.h"
#include "guard/conf.h"
#include "heal.h"
#include "internal.h"
#include "pcscd.h"
#include "uri.h"

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

static bool opensc_name(const char *module_path)
{
	const char *base = strrchr(module_path, '/');
	base = base ? base + 1 : module_path;
	return strncmp(base, "opensc-pkcs11", 13) == 0 || strncmp(base, "onepin-opensc-pkcs11", 20) == 0;
}

_public_
bool khsm_pcscd_module_uses(const char *module_path)
{
	if (!module_path) {
		return false;
	}
	if (!khsm_guard_is_module(module_path)) {
		return opensc_name(module_path);
	}
	/* The guard in front of the card's module: the module its configuration
	 * names (an unreadable configuration: the keystore's open explains it). */
	_cleanup_free_ char *path = NULL;
	khsm_guard_conf_t gc = { 0 };
	bool uses = khsm_guard_conf_locate(module_path, &path) == KHSM_EOK &&
	            khsm_guard_conf_load(path, &gc) == KHSM_EOK && gc.module && opensc_name(gc.module);
	khsm_guard_conf_clear(&gc);
	khsm_err_clear();
	return uses;
}

static void sleep_250ms(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 250 * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

_public_
int khsm_pcscd_wait(const char *config, unsigned budget_ms, khsm_pcscd_notify_t notify, void *data)
{
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	if (!config) {
		return KHSM_EINVAL;
	}
	int r = khsm_uri_split_config(config, &uri, &module);
	if (r != KHSM_EOK || !khsm_pcscd_module_uses(module)) {
		khsm_err_clear();
		return KHSM_EOK;   /* a bad config is for the keystore's own open to explain */
	}
	if (khsm_pcscd_check() == KHSM_EOK) {
		return KHSM_EOK;
	}
	khsm_err_clear();
	if (notify && budget_ms > 0) {
		notify(khsm_pcscd_socket(), budget_ms, data);
	}
	/* pcscd first, then the card through the module (pcscd needs a moment
	 * to find the reader and the card in it). */
	unsigned polls = budget_ms / 250;
	bool up = false;
	for (unsigned i = 0; i < polls; i++) {
		sleep_250ms();
		if (!up && khsm_pcscd_check() == KHSM_EOK) {
			up = true;
		}
		khsm_err_clear();
		if (up && khsm_card_probe(config, NULL) == KHSM_CARD_PRESENT) {
			return KHSM_EOK;
		}
	}
	if (up) {
		khsm_err_detail("pcscd came back but the card did not show within %u s: is it inserted? "
		                "Then rerun: zones already done are skipped", budget_ms / 1000);
		return KHSM_ENOTOKEN;
	}
	khsm_err_detail("pcscd is not running (nothing answered on %s, waited %u s): start it "
	                "(systemctl start pcscd.socket), then rerun: zones already done are skipped",
	                khsm_pcscd_socket(), budget_ms / 1000);
	return KHSM_ENOENT;
}
