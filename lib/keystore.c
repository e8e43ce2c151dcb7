/* libdnssec keystore open and GnuTLS login, the path knotd takes. */
#include <gnutls/gnutls.h>
#include <gnutls/pkcs11.h>
#include <libdnssec/crypto.h>
#include <libdnssec/error.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <sys/stat.h>

#include "error.h"
#include "guard/conf.h"
#include "internal.h"
#include "keystore.h"
#include "remote.h"
#include "retry.h"
#include "serve.h"
#include "token.h"
#include "uri.h"

/* GnuTLS asks again after a wrong PIN; answering only the first attempt makes
 * sure a wrong PIN costs exactly one try on the card. */
struct pin_cb_data {
	const khsm_pin_t *pin;
	int calls;
};

/*
 * Login: GnuTLS opens a session per operation and logs in whenever its new
 * session is not logged in yet; PKCS #11 forgets the login when the last
 * session of the application closes. So the keystore keeps one idle session
 * open (the keeper) from just before its first login: the login then
 * outlives GnuTLS's session, and every later GnuTLS operation finds it and
 * skips C_Login. One login per command instead of one per operation (each
 * costs time on a card), and a retried operation does not log in again.
 * Only after a removal (the card forgets every session) does GnuTLS log in
 * again, with the PIN the card has already accepted in this process.
 */
struct khsm_keystore {
	dnssec_keystore_t *store;
	char *uri;
	char *module;
	struct pin_cb_data cb;  /* PIN for logins that do not use the URI's pin-source */
	bool pin_ok;            /* a login of this keystore succeeded */
	CK_FUNCTION_LIST *mod;  /* the module as GnuTLS loaded it (keeper only) */
	unsigned long slot;
	CK_SESSION_HANDLE keeper;
	bool have_keeper;
};

/* A login of this process was refused: every later first login of any
 * keystore is refused without asking the card (several keystores of one
 * card in a knot.conf must not cost a try each). */
static bool pin_refused;
static pthread_mutex_t first_login_mutex = PTHREAD_MUTEX_INITIALIZER;

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t open_mutex = PTHREAD_MUTEX_INITIALIZER;
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
int khsm_keystore_guard_check(const char *module)
{
	if (!module || !khsm_guard_is_module(module)) {
		return KHSM_EOK;
	}
	_cleanup_free_ char *path = NULL;
	khsm_guard_conf_t gc = { 0 };
	int r = khsm_guard_conf_locate(module, &path);
	if (r == KHSM_EOK) {
		r = khsm_guard_conf_load(path, &gc);
	}
	khsm_guard_conf_clear(&gc);
	if (r == KHSM_EOK) {
		return KHSM_EOK;
	}
	/* The guard's own line: it reads the file with this very parser at
	 * C_Initialize and prints "knot-hsm-guard: " and the same detail. */
	if (!khsm_err_last_detail()) khsm_err_detail("%s", khsm_strerror(r));
	khsm_err_prefix("knot-hsm-guard: ");
	khsm_err_suffix("; the guard module cannot start, so neither knotd nor keymgr nor knot-hsm "
	                "reaches the card through it (keymgr says only \"failed to load PKCS #11 "
	                "module\"): fix the guard configuration%s%s (knot-hsm keystore --guard writes "
	                "one when there is none; knot-hsm doctor checks it)", path ? " " : "", path ? path : "");
	return KHSM_ECONFIG;
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
	r = khsm_keystore_guard_check(ks->module);
	if (r != KHSM_EOK) {
		goto fail;
	}
	/* A card on another host: the socket first, so that its absence reads as
	 * what it is and not as a module that fails to load. */
	if (khsm_remote_is_client(ks->module)) {
		r = khsm_remote_check(NULL);
		if (r != KHSM_EOK) {
			goto fail;
		}
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
	/* libdnssec keeps the loaded modules in a static list without a lock
	 * (p11_load_module()): threads (cards, zones side by side) open one at
	 * a time */
	pthread_mutex_lock(&open_mutex);
	r = khsm_error_from_dnssec(dnssec_keystore_open(ks->store, config));
	pthread_mutex_unlock(&open_mutex);
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
	if (ks->have_keeper) {
		ks->mod->C_CloseSession(ks->keeper);   /* the last session: logs out */
	}
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

/* GnuTLS codes of token-level calls: a token that no longer matches the URI
 * of an opened keystore has been removed. */
static int card_error_from_gnutls(int g)
{
	if (g == GNUTLS_E_PKCS11_REQUESTED_OBJECT_NOT_AVAILBLE || g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
		return KHSM_ENOTOKEN;
	}
	return khsm_error_from_gnutls(g);
}

struct flags_args {
	const char *uri;
	unsigned gflags;
	int g;
};

static int flags_once(void *ctx)
{
	struct flags_args *a = ctx;
	a->g = gnutls_pkcs11_token_get_flags(a->uri, &a->gflags);
	return a->g == GNUTLS_E_SUCCESS ? KHSM_EOK : card_error_from_gnutls(a->g);
}

/* Open (or reopen, after a removal) the idle session that keeps the login;
 * best effort: without it GnuTLS just logs in once per operation. */
static void keeper_ensure(khsm_keystore_t *ks)
{
	if (ks->have_keeper) {
		CK_SESSION_INFO si;
		if (ks->mod->C_GetSessionInfo(ks->keeper, &si) == CKR_OK) {
			return;
		}
		ks->mod->C_CloseSession(ks->keeper);
		ks->have_keeper = false;
	}
	if (!ks->mod) {
		void *ptr = NULL;
		unsigned long slot = 0;
		if (gnutls_pkcs11_token_get_ptr(ks->uri, &ptr, &slot, 0) != GNUTLS_E_SUCCESS || !ptr) {
			return;
		}
		ks->mod = ptr;
		ks->slot = slot;
	}
	ks->have_keeper = ks->mod->C_OpenSession(ks->slot, CKF_SERIAL_SESSION, NULL, NULL,
	                                         &ks->keeper) == CKR_OK;
}

/* Whether session s of mod is open and logged in as the user. */
static bool session_logged_in(CK_FUNCTION_LIST *mod, CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO si;
	return mod->C_GetSessionInfo(s, &si) == CKR_OK &&
	       (si.state == CKS_RO_USER_FUNCTIONS || si.state == CKS_RW_USER_FUNCTIONS);
}

struct khsm_login_hold {
	struct held {
		CK_FUNCTION_LIST *mod;
		unsigned long slot;
		CK_SESSION_HANDLE session;
		char *uri;              /* the keystore's, to match a config (may hold a pin-value) */
		char *module;
	} *items;
	size_t count;
};

static void held_strings_free(struct held *h)
{
	if (h->uri) explicit_bzero(h->uri, strlen(h->uri));
	free(h->uri);
	free(h->module);
}

static void held_clear(struct held *h)
{
	h->mod->C_CloseSession(h->session);
	held_strings_free(h);
}

_public_
int khsm_login_hold_new(khsm_login_hold_t **hold_ptr)
{
	if (!hold_ptr) {
		return KHSM_EINVAL;
	}
	*hold_ptr = calloc(1, sizeof(**hold_ptr));
	return *hold_ptr ? KHSM_EOK : KHSM_ENOMEM;
}

_public_
int khsm_login_hold_keep(khsm_login_hold_t *hold, const khsm_keystore_t *ks)
{
	if (!hold || !ks || !ks->pin_ok || !ks->have_keeper) {
		return KHSM_EOK;   /* nothing to keep: no login, or no session to ask */
	}
	struct held *h = NULL;
	for (size_t i = 0; i < hold->count && !h; i++) {
		if (hold->items[i].mod == ks->mod && hold->items[i].slot == ks->slot) {
			h = &hold->items[i];
		}
	}
	CK_SESSION_INFO si;
	if (h && h->mod->C_GetSessionInfo(h->session, &si) == CKR_OK) {
		return KHSM_EOK;
	}
	if (h) {
		/* lost with a removal: the keystore's new login is kept instead */
		held_clear(h);
		*h = hold->items[--hold->count];
	}
	struct held *more = realloc(hold->items, (hold->count + 1) * sizeof(*more));
	if (!more) {
		return KHSM_ENOMEM;
	}
	hold->items = more;
	h = &hold->items[hold->count];
	*h = (struct held){ .mod = ks->mod, .slot = ks->slot };
	if (!(h->uri = strdup(ks->uri)) || !(h->module = strdup(ks->module))) {
		held_strings_free(h);
		return KHSM_ENOMEM;
	}
	if (ks->mod->C_OpenSession(ks->slot, CKF_SERIAL_SESSION, NULL, NULL, &h->session) != CKR_OK) {
		held_strings_free(h);
		return KHSM_EOK;
	}
	hold->count++;
	return KHSM_EOK;
}

_public_
int khsm_login_hold_serve(khsm_login_hold_t *hold, const char *config, khsm_serve_t **serve_ptr)
{
	if (!serve_ptr) {
		return KHSM_EINVAL;
	}
	*serve_ptr = NULL;
	_cleanup_free_ char *uri = NULL, *module = NULL;
	/* without p11-kit-client.so (package p11-kit-modules) keymgr cannot be served */
	if (!hold || !config || access(khsm_remote_client_module(), R_OK) != 0 ||
	    khsm_uri_split_config(config, &uri, &module) != KHSM_EOK || khsm_remote_is_client(module)) {
		if (uri) explicit_bzero(uri, strlen(uri));
		return KHSM_EOK;
	}
	struct held *h = NULL;
	for (size_t i = 0; i < hold->count && !h; i++) {
		if (strcmp(hold->items[i].uri, uri) == 0 && strcmp(hold->items[i].module, module) == 0) {
			h = &hold->items[i];
		}
	}
	explicit_bzero(uri, strlen(uri));
	if (!h || !session_logged_in(h->mod, h->session)) {
		return KHSM_EOK;   /* no login kept: keymgr logs in on its own, as before */
	}
	if (khsm_serve_start(h->module, serve_ptr) != KHSM_EOK) {
		khsm_err_clear();   /* not served: keymgr logs in on its own */
		*serve_ptr = NULL;
	}
	return KHSM_EOK;
}

_public_
void khsm_login_hold_free(khsm_login_hold_t *hold)
{
	if (!hold) {
		return;
	}
	for (size_t i = 0; i < hold->count; i++) {
		held_clear(&hold->items[i]);
	}
	free(hold->items);
	free(hold);
}

_public_
int khsm_keystore_flags(const khsm_keystore_t *ks, unsigned *flags_ptr)
{
	if (!ks || !flags_ptr) {
		return KHSM_EINVAL;
	}
	struct flags_args a = { .uri = ks->uri };
	int r = khsm_card_op("reading the token flags", flags_once, &a);
	if (r != KHSM_EOK) {
		return r;
	}
	unsigned g = a.gflags;
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

/* The one unblock that works on OpenSC 0.23 (Debian 12) for a SmartCard-HSM
 * or Nitrokey HSM 2, and on any module: C_InitPIN as the security officer.
 * That sc-hsm-tool has no unblock option; pkcs11-tool --unlock-pin needs a
 * context-specific login OpenSC's sc-hsm driver does not take. */
#define UNBLOCK_HINT "the security officer must unblock it with the SO-PIN: " \
	"pkcs11-tool --module MODULE --login --login-type so --init-pin --so-pin SO-PIN " \
	"--new-pin NEW-PIN sets a new user PIN and resets the card's retry counter " \
	"(OpenSC's sc-hsm-tool in 0.23 cannot unblock)"

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
		                "before the token locks: check the PIN file before anything else; "
		                "knot-hsm logs in at the final try only with --force. Once locked, "
		                UNBLOCK_HINT);
	} else if (f & KHSM_TOKEN_PIN_COUNT_LOW) {
		khsm_err_detail("the token refused the PIN; it was not retried. The token reports few "
		                "tries left; check the PIN before trying again (at the final try "
		                "knot-hsm logs in only with --force; a locked PIN needs the SO-PIN)");
	} else {
		khsm_err_detail("the token refused the PIN; it was not retried. Check the PIN");
	}
}

struct list_args {
	khsm_keystore_t *ks;
	const char *url;
	const khsm_pin_t *pin;
	unsigned flags;
	gnutls_pkcs11_obj_t *objs;
	unsigned count;
	int g;
};

void khsm_keystore_objs_free(gnutls_pkcs11_obj_t *objs, unsigned count);

/* Does the card answer a search now? KHSM_EOK, or a transient code. */
static int card_probe(khsm_keystore_t *ks)
{
	unsigned f;
	if (gnutls_pkcs11_token_get_flags(ks->uri, &f) != GNUTLS_E_SUCCESS) {
		return KHSM_ENOTOKEN;
	}
	keeper_ensure(ks);
	if (!ks->mod) {
		return KHSM_EOK;   /* cannot ask: trust GnuTLS */
	}
	CK_SESSION_HANDLE s;
	CK_RV rv = ks->mod->C_OpenSession(ks->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) {
		CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
		CK_ATTRIBUTE t = { CKA_CLASS, &cls, sizeof(cls) };
		rv = ks->mod->C_FindObjectsInit(s, &t, 1);
		if (rv == CKR_OK) {
			ks->mod->C_FindObjectsFinal(s);
		}
		ks->mod->C_CloseSession(s);
	}
	switch (rv) {
	case CKR_OK:                     return KHSM_EOK;
	case CKR_DEVICE_ERROR:           return KHSM_EBUSY;
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:         return KHSM_EREMOVED;
	case CKR_TOKEN_NOT_PRESENT:      return KHSM_ENOTOKEN;
	default:                         return KHSM_EOK;
	}
}

/* One listing through GnuTLS (which logs in when flags ask for it and the
 * session is not logged in yet). */
static int list_once(void *ctx)
{
	struct list_args *a = ctx;
	khsm_keystore_t *ks = a->ks;
	if (ks->pin_ok) {
		keeper_ensure(ks);   /* after a removal: a new keeper for the new login */
	}
	const khsm_pin_t *saved = ks->cb.pin;
	if (a->pin) {
		ks->cb.pin = a->pin;
	}
	gnutls_pkcs11_set_pin_function(pin_callback, &ks->cb);
	a->objs = NULL;
	a->count = 0;
	int g = gnutls_pkcs11_obj_list_import_url4(&a->objs, &a->count, a->url, a->flags);
	ks->cb.pin = saved;
	if (g == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE || (g == GNUTLS_E_SUCCESS && a->count == 0)) {
		/* GnuTLS says "nothing" also when the card was busy or gone during
		 * the search (it skips a token whose C_FindObjectsInit fails and
		 * returns success with no objects). Ask the card:
		 * a search that it answers now means nothing matched. (A card busy
		 * during GnuTLS's search and free a moment later still reads as
		 * "nothing"; callers that act on "nothing" check again.) */
		khsm_keystore_objs_free(a->objs, a->count);
		a->objs = NULL;
		a->count = 0;
		int r = card_probe(ks);
		if (r != KHSM_EOK) {
			a->g = g;
			return r;
		}
		g = GNUTLS_E_SUCCESS;
	}
	a->g = g;
	if (g != GNUTLS_E_SUCCESS) {
		khsm_keystore_objs_free(a->objs, a->count);
		a->objs = NULL;
		a->count = 0;
		return card_error_from_gnutls(g);
	}
	return KHSM_EOK;
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
		khsm_err_prefix("cannot read the token flags of %s%s", ks->uri,
		                khsm_err_last_detail() ? ": " : "");
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

	struct list_args a = { .ks = ks, .url = url, .pin = pin,
	                       .flags = login ? GNUTLS_PKCS11_OBJ_FLAG_LOGIN : 0 };
	bool first_login = login && !ks->pin_ok;
	if (first_login) {
		/* First logins one at a time in the process (a ceremony's card
		 * threads): a refusal is recorded before another card is asked. */
		pthread_mutex_lock(&first_login_mutex);
		if (__atomic_load_n(&pin_refused, __ATOMIC_ACQUIRE)) {
			pthread_mutex_unlock(&first_login_mutex);
			khsm_err_detail("a PIN was already refused in this run (see above); knot-hsm spends "
			                "at most one PIN try per command, so it did not log in again: check "
			                "the PIN, then rerun");
			return KHSM_EPIN_INCORRECT;
		}
		/* The login itself is tried once, never retried: a PIN the card
		 * refused, or may have counted, must not be sent again. */
		keeper_ensure(ks);
		r = khsm_card_lock();
		if (r != KHSM_EOK) {
			pthread_mutex_unlock(&first_login_mutex);
			return r;
		}
		r = list_once(&a);
		khsm_card_unlock();
		if (r == KHSM_EPIN_INCORRECT || r == KHSM_ELOGIN || r == KHSM_EPIN_LOCKED) {
			__atomic_store_n(&pin_refused, true, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&first_login_mutex);
	} else {
		r = khsm_card_op(login ? "listing objects (logged in)" : "listing objects", list_once, &a);
	}
	int g = a.g;
	gnutls_pkcs11_obj_t *objs = a.objs;
	unsigned count = a.count;

	if (r != KHSM_EOK) {
		if (r == KHSM_EPIN_INCORRECT || r == KHSM_ELOGIN || r == KHSM_EPIN_LOCKED) {
			__atomic_store_n(&pin_refused, true, __ATOMIC_RELEASE);
		}
		if (r == KHSM_EPIN_INCORRECT || r == KHSM_ELOGIN) {
			tries_left_detail(ks);
			return KHSM_EPIN_INCORRECT;
		}
		if (r == KHSM_EPIN_LOCKED) {
			/* A guard (login_final_try = refuse) answers "locked" at the final
			 * try without asking the card: say so, not "unblock with the SO-PIN". */
			unsigned f = 0;
			if (khsm_keystore_flags(ks, &f) == KHSM_EOK && !(f & KHSM_TOKEN_PIN_LOCKED)) {
				khsm_err_detail("the module refused the login as 'PIN locked', but the token is "
				                "not locked%s: no try was spent. A knot-hsm guard refuses so at the "
				                "final try: to spend that last try, set login_final_try = allow in "
				                "the guard's configuration for one run",
				                (f & KHSM_TOKEN_PIN_FINAL_TRY) ? " (it is at its final try)" : "");
				return KHSM_EPIN_FINAL_TRY;
			}
			khsm_err_detail("the user PIN is locked; " UNBLOCK_HINT);
			return r;
		}
		if (first_login && khsm_retry_transient(r)) {
			khsm_err_detail("the card did not answer during the login (busy or removed: %s); "
			                "knot-hsm never repeats a login by itself, as a card may count a "
			                "try: rerun when no other program is using the card",
			                g ? gnutls_strerror(g) : khsm_strerror(r));
			return r;
		}
		khsm_err_prefix("listing objects through GnuTLS failed: %s%s",
		                g ? gnutls_strerror(g) : khsm_strerror(r), khsm_err_last_detail() ? "; " : "");
		return r;
	}
	if (login) {
		ks->pin_ok = true;
	}
	*objs_ptr = objs;
	*count_ptr = count;
	return KHSM_EOK;
}

static int probe_once(void *ctx)
{
	return card_probe(ctx);
}

_public_
int khsm_keystore_wait_ready(khsm_keystore_t *ks)
{
	if (!ks) {
		return KHSM_EINVAL;
	}
	return khsm_card_op("reaching the card before the login", probe_once, ks);
}

_public_
bool khsm_keystore_logged_in(khsm_keystore_t *ks)
{
	if (!ks || !ks->pin_ok) {
		return false;
	}
	if (!ks->have_keeper) {
		return !ks->mod;   /* no keeper: cannot ask; one lost to a removal: logged out */
	}
	return session_logged_in(ks->mod, ks->keeper);
}

_public_
int khsm_keystore_relogin(khsm_keystore_t *ks, bool force)
{
	if (!ks) {
		return KHSM_EINVAL;
	}
	if (!ks->pin_ok || khsm_keystore_logged_in(ks)) {
		return KHSM_EOK;
	}
	return khsm_keystore_login(ks, NULL, force);
}

_public_
int khsm_keystore_login_check(const char *config, bool force)
{
	khsm_keystore_t *ks = NULL;
	int r = khsm_keystore_open(config, &ks);
	if (r == KHSM_EOK) {
		r = khsm_keystore_wait_ready(ks);
	}
	if (r == KHSM_EOK) {
		r = khsm_keystore_login(ks, NULL, force);
	}
	khsm_keystore_close(ks);
	return r;
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
