/* libdnssec keystore open and GnuTLS login, the path knotd takes. */
#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>
#include <libdnssec/crypto.h>
#include <libdnssec/error.h>
#include <pthread.h>
#include <sys/stat.h>

#include "error.h"
#include "internal.h"
#include "keystore.h"
#include "token.h"
#include "uri.h"

/* GnuTLS asks again after a wrong PIN; answering only the first attempt makes
 * sure a wrong PIN costs exactly one try on the card. */
struct pin_cb_data {
	const khsm_pin_t *pin;
	int calls;
};

struct khsm_keystore {
	dnssec_keystore_t *store;
	char *uri;
	char *module;
	struct pin_cb_data cb;  /* PIN for logins that do not use the URI's pin-source */
};

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static void crypto_init(void) { dnssec_crypto_init(); }

static void explain_open_failure(int r, const char *config, const char *uri, const char *module)
{
	struct stat st;
	bool module_exists = stat(module, &st) == 0;
	if (r == KHSM_EMODULE && !module_exists && strchr(module, ' ')) {
		khsm_err_detail("Knot splits the config at the first space, so it tried to load "
		                "module '%s'; the token label has an unencoded space: "
		                "percent-encode it (knot-hsm uri --token LABEL prints the URI)", module);
	} else if (r == KHSM_EMODULE && !module_exists) {
		khsm_err_detail("module %s does not exist; give the full path of the PKCS #11 module", module);
	} else if (r == KHSM_EMODULE) {
		khsm_err_detail("module %s exists but cannot be loaded by GnuTLS; check its architecture "
		                "and dependencies (p11-kit list-modules)", module);
	} else if (r == KHSM_ENOTOKEN) {
		khsm_err_detail("no token matches %s through module %s; is the card inserted, pcscd "
		                "running, and the label exact (knot-hsm tokens)?", uri, module);
	} else {
		khsm_err_detail("libdnssec cannot open keystore '%s'", config);
	}
}

_public_
int khsm_keystore_open(const char *config, khsm_keystore_t **ks_ptr)
{
	if (!config || !ks_ptr) {
		return KHSM_EINVAL;
	}
	pthread_once(&crypto_once, crypto_init);

	khsm_keystore_t *ks = calloc(1, sizeof(*ks));
	if (!ks) {
		return KHSM_ENOMEM;
	}
	int r = khsm_uri_split_config(config, &ks->uri, &ks->module);
	if (r != KHSM_EOK) {
		goto fail;
	}
	khsm_uri_t parsed = { 0 };
	r = khsm_uri_parse(ks->uri, &parsed);
	khsm_uri_clear(&parsed);
	if (r != KHSM_EOK) {
		goto fail;
	}

	r = khsm_error_from_dnssec(dnssec_keystore_init_pkcs11(&ks->store));
	if (r != KHSM_EOK) {
		khsm_err_detail("this libdnssec has no PKCS #11 support");
		goto fail;
	}
	r = khsm_error_from_dnssec(dnssec_keystore_open(ks->store, config));
	if (r != KHSM_EOK) {
		explain_open_failure(r, config, ks->uri, ks->module);
		goto fail;
	}
	*ks_ptr = ks;
	return KHSM_EOK;
fail:
	khsm_keystore_close(ks);
	return r;
}

static int pin_callback(void *userdata, int attempt, const char *token_url,
                        const char *token_label, unsigned int flags, char *pin, size_t pin_max)
{
	(void)token_url; (void)token_label; (void)flags;
	struct pin_cb_data *d = userdata;
	d->calls++;
	if (!d->pin || attempt > 0 || khsm_pin_len(d->pin) + 1 > pin_max) {
		return -1;
	}
	memcpy(pin, khsm_pin_value(d->pin), khsm_pin_len(d->pin) + 1);
	return 0;
}

_public_
void khsm_keystore_set_pin(khsm_keystore_t *ks, const khsm_pin_t *pin)
{
	if (!ks) {
		return;
	}
	ks->cb.pin = pin;
	gnutls_pkcs11_set_pin_function(pin_callback, &ks->cb);
}

_public_
void khsm_keystore_close(khsm_keystore_t *ks)
{
	if (!ks) {
		return;
	}
	gnutls_pkcs11_set_pin_function(NULL, NULL);
	if (ks->store) {
		dnssec_keystore_close(ks->store);
		dnssec_keystore_deinit(ks->store);
	}
	if (ks->uri) {
		explicit_bzero(ks->uri, strlen(ks->uri)); /* may hold a pin-value */
	}
	free(ks->uri);
	free(ks->module);
	free(ks);
}

_public_
const char *khsm_keystore_uri(const khsm_keystore_t *ks)
{
	return ks ? ks->uri : NULL;
}

_public_
dnssec_keystore_t *khsm_keystore_dnssec(khsm_keystore_t *ks)
{
	return ks ? ks->store : NULL;
}

_public_
int khsm_keystore_flags(const khsm_keystore_t *ks, unsigned *flags_ptr)
{
	if (!ks || !flags_ptr) {
		return KHSM_EINVAL;
	}
	unsigned g = 0;
	int r = gnutls_pkcs11_token_get_flags(ks->uri, &g);
	if (r != GNUTLS_E_SUCCESS) {
		return khsm_error_from_gnutls(r);
	}
	unsigned f = 0;
	if (g & GNUTLS_PKCS11_TOKEN_LOGIN_REQUIRED) f |= KHSM_TOKEN_LOGIN_REQUIRED;
	if (g & GNUTLS_PKCS11_TOKEN_PROTECTED_AUTHENTICATION_PATH) f |= KHSM_TOKEN_PROTECTED_PATH;
	if (g & GNUTLS_PKCS11_TOKEN_USER_PIN_COUNT_LOW) f |= KHSM_TOKEN_PIN_COUNT_LOW;
	if (g & GNUTLS_PKCS11_TOKEN_USER_PIN_FINAL_TRY) f |= KHSM_TOKEN_PIN_FINAL_TRY;
	if (g & GNUTLS_PKCS11_TOKEN_USER_PIN_LOCKED) f |= KHSM_TOKEN_PIN_LOCKED;
	if (g & GNUTLS_PKCS11_TOKEN_INITIALIZED) f |= KHSM_TOKEN_INITIALIZED;
	if (g & GNUTLS_PKCS11_TOKEN_USER_PIN_INITIALIZED) f |= KHSM_TOKEN_USER_PIN_INIT;
	if (g & GNUTLS_PKCS11_TOKEN_RNG) f |= KHSM_TOKEN_RNG;
	*flags_ptr = f;
	return KHSM_EOK;
}

#define UNBLOCK_HINT "the security officer must unblock it with the SO-PIN: " \
	"pkcs11-tool --module MODULE --login --login-type so --init-pin (or --unlock-pin), " \
	"which asks for the SO-PIN and a new user PIN; on a SmartCard-HSM/Nitrokey, " \
	"sc-hsm-tool can also reset the retry counter"

_public_
int khsm_login_precheck(unsigned flags, bool force)
{
	if (flags & KHSM_TOKEN_PIN_LOCKED) {
		khsm_err_detail("the user PIN is locked after too many wrong PINs; " UNBLOCK_HINT);
		return KHSM_EPIN_LOCKED;
	}
	if ((flags & KHSM_TOKEN_PIN_FINAL_TRY) && !force) {
		khsm_err_detail("knot-hsm will not log in; check the PIN, then rerun with --force");
		return KHSM_EPIN_FINAL_TRY;
	}
	return KHSM_EOK;
}



static void tries_left_detail(khsm_keystore_t *ks)
{
	unsigned f = 0;
	if (khsm_keystore_flags(ks, &f) != KHSM_EOK) {
		khsm_err_detail("the token refused the PIN; it was not retried");
	} else if (f & KHSM_TOKEN_PIN_LOCKED) {
		khsm_err_detail("the token refused the PIN and is now locked; " UNBLOCK_HINT);
	} else if (f & KHSM_TOKEN_PIN_FINAL_TRY) {
		khsm_err_detail("the token refused the PIN; it was not retried. Only ONE try is left "
		                "before the token locks: check the PIN file before anything else");
	} else if (f & KHSM_TOKEN_PIN_COUNT_LOW) {
		khsm_err_detail("the token refused the PIN; it was not retried. The token reports few "
		                "tries left; check the PIN before trying again");
	} else {
		khsm_err_detail("the token refused the PIN; it was not retried. Check the PIN");
	}
}

_public_
void khsm_keystore_objs_free(gnutls_pkcs11_obj_t *objs, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		gnutls_pkcs11_obj_deinit(objs[i]);
	}
	gnutls_free(objs);
}

_public_
int khsm_keystore_find(khsm_keystore_t *ks, const char *url, bool login, const khsm_pin_t *pin,
                       bool force, gnutls_pkcs11_obj_t **objs_ptr, unsigned *count_ptr)
{
	if (!ks || !url || !objs_ptr || !count_ptr) {
		return KHSM_EINVAL;
	}
	unsigned flags = 0;
	int r = khsm_keystore_flags(ks, &flags);
	if (r != KHSM_EOK) {
		khsm_err_detail("cannot read the token flags of %s", ks->uri);
		return r;
	}
	login = login && (flags & KHSM_TOKEN_LOGIN_REQUIRED);
	if (login) {
		r = khsm_login_precheck(flags, force);
		if (r != KHSM_EOK) {
			return r;
		}
		khsm_uri_t parsed = { 0 };
		r = khsm_uri_parse(url, &parsed);
		bool uri_has_pin = parsed.pin_source || parsed.pin_value;
		khsm_uri_clear(&parsed);
		if (r != KHSM_EOK) {
			return r;
		}
		if (!pin && !ks->cb.pin && !uri_has_pin && !(flags & KHSM_TOKEN_PROTECTED_PATH)) {
			khsm_err_detail("the token needs a PIN and none was given; knotd needs "
			                "pin-source=<file> in the keystore URI (use --pin-file)");
			return KHSM_ENOPIN;
		}
	}

	const khsm_pin_t *saved = ks->cb.pin;
	if (pin) {
		ks->cb.pin = pin;
	}
	gnutls_pkcs11_set_pin_function(pin_callback, &ks->cb);
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned count = 0;
	int g = gnutls_pkcs11_obj_list_import_url4(&objs, &count, url,
	                                           login ? GNUTLS_PKCS11_OBJ_FLAG_LOGIN : 0);
	ks->cb.pin = saved;

	if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
		g = GNUTLS_E_SUCCESS;
		count = 0;
	}
	if (g != GNUTLS_E_SUCCESS) {
		khsm_keystore_objs_free(objs, count);
		r = khsm_error_from_gnutls(g);
		if (r == KHSM_EPIN_INCORRECT || r == KHSM_ELOGIN) {
			tries_left_detail(ks);
			return KHSM_EPIN_INCORRECT;
		}
		if (r == KHSM_EPIN_LOCKED) {
			khsm_err_detail("the user PIN is locked; " UNBLOCK_HINT);
			return r;
		}
		khsm_err_detail("listing objects through GnuTLS failed: %s", gnutls_strerror(g));
		return r;
	}
	*objs_ptr = objs;
	*count_ptr = count;
	return KHSM_EOK;
}

_public_
int khsm_keystore_login(khsm_keystore_t *ks, const khsm_pin_t *pin, bool force)
{
	if (!ks) {
		return KHSM_EINVAL;
	}
	/* Listing private keys is the cheapest operation that needs the login. */
	_cleanup_free_ char *url = NULL;
	if (asprintf(&url, "%s;type=private", ks->uri) < 0) {
		return KHSM_ENOMEM;
	}
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned count = 0;
	int r = khsm_keystore_find(ks, url, true, pin, force, &objs, &count);
	explicit_bzero(url, strlen(url));
	if (r == KHSM_EOK) {
		khsm_keystore_objs_free(objs, count);
	}
	return r;
}
