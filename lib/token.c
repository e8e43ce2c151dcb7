/* Token discovery through p11-kit: registered modules plus --module. */
#include <errno.h>
#include <gnutls/gnutls.h>
#include <limits.h>
#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>
#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "internal.h"
#include "token.h"
#include "uri.h"

/* Slots per module we look at; cards expose a handful, SoftHSM one per token. */
#define MAX_SLOTS 64

struct khsm_tokens {
	CK_FUNCTION_LIST **registered;  /* from p11-kit, finalised together */
	CK_FUNCTION_LIST *extra;        /* --module, finalised alone */
	khsm_token_t *items;
	CK_FUNCTION_LIST **item_module; /* module of each token */
	size_t count;
	size_t empty_slots;             /* slots (readers) without a token */
	char *failures;
};

/* Resolve a module file name the way p11-kit does (relative to its module
 * directory) and canonicalise it, because knotd loads it by path. */
static char *absolute_module_path(const char *name)
{
	char joined[PATH_MAX];
	if (name[0] != '/') {
		snprintf(joined, sizeof(joined), "%s/%s", KHSM_P11_MODULE_DIR, name);
		name = joined;
	}
	char *real = realpath(name, NULL);
	return real ? real : strdup(name);
}

static void append_failure(khsm_tokens_t *list, const char *fmt, const char *a, const char *b)
{
	char *line = NULL;
	if (asprintf(&line, fmt, a, b) < 0) {
		return;
	}
	char *joined = NULL;
	if (asprintf(&joined, "%s%s\n", list->failures ? list->failures : "", line) >= 0) {
		free(list->failures);
		list->failures = joined;
	}
	free(line);
}

static unsigned map_flags(CK_FLAGS f)
{
	unsigned out = 0;
	if (f & CKF_LOGIN_REQUIRED) out |= KHSM_TOKEN_LOGIN_REQUIRED;
	if (f & CKF_PROTECTED_AUTHENTICATION_PATH) out |= KHSM_TOKEN_PROTECTED_PATH;
	if (f & CKF_USER_PIN_COUNT_LOW) out |= KHSM_TOKEN_PIN_COUNT_LOW;
	if (f & CKF_USER_PIN_FINAL_TRY) out |= KHSM_TOKEN_PIN_FINAL_TRY;
	if (f & CKF_USER_PIN_LOCKED) out |= KHSM_TOKEN_PIN_LOCKED;
	if (f & CKF_TOKEN_INITIALIZED) out |= KHSM_TOKEN_INITIALIZED;
	if (f & CKF_USER_PIN_INITIALIZED) out |= KHSM_TOKEN_USER_PIN_INIT;
	if (f & CKF_WRITE_PROTECTED) out |= KHSM_TOKEN_WRITE_PROTECTED;
	if (f & CKF_RNG) out |= KHSM_TOKEN_RNG;
	return out;
}

/* Some modules report EC key sizes in bytes instead of bits. */
static CK_ULONG ec_bits(CK_ULONG size)
{
	return size > 0 && size < 100 ? size * 8 : size;
}

static bool mech_info(CK_FUNCTION_LIST *m, CK_SLOT_ID slot, const CK_MECHANISM_TYPE *list,
                      CK_ULONG n, CK_MECHANISM_TYPE type, CK_FLAGS need, CK_MECHANISM_INFO *info)
{
	for (CK_ULONG i = 0; i < n; i++) {
		if (list[i] != type) {
			continue;
		}
		CK_MECHANISM_INFO mi = { 0 };
		if (m->C_GetMechanismInfo(slot, type, &mi) != CKR_OK || (mi.flags & need) != need) {
			return false;
		}
		if (info) {
			*info = mi;
		}
		return true;
	}
	return false;
}

static void read_caps(CK_FUNCTION_LIST *m, CK_SLOT_ID slot, khsm_token_t *t)
{
	CK_ULONG n = 0;
	if (m->C_GetMechanismList(slot, NULL, &n) != CKR_OK || n == 0) {
		return;
	}
	/* One spare entry: p11-kit's RPC client (before 0.24.2, p11-kit PR #456)
	 * reads one past the list when it drops a mechanism it cannot forward. */
	CK_MECHANISM_TYPE *list = calloc(n + 1, sizeof(*list));
	if (!list || m->C_GetMechanismList(slot, list, &n) != CKR_OK) {
		free(list);
		return;
	}

	CK_MECHANISM_INFO gen = { 0 }, sig = { 0 };
	/* GnuTLS (and so Knot) signs ECDSA with raw CKM_ECDSA, hashing in software. */
	if (mech_info(m, slot, list, n, CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, &gen) &&
	    mech_info(m, slot, list, n, CKM_ECDSA, CKF_SIGN, &sig)) {
		CK_ULONG lo = ec_bits(gen.ulMinKeySize), hi = ec_bits(gen.ulMaxKeySize);
		CK_ULONG slo = ec_bits(sig.ulMinKeySize), shi = ec_bits(sig.ulMaxKeySize);
		/* A zero range means the module does not say; trust the mechanism. */
		bool any = hi == 0 && shi == 0;
		if (any || (lo <= 256 && hi >= 256 && (shi == 0 || (slo <= 256 && shi >= 256)))) {
			t->caps |= KHSM_CAP_ECDSA_P256;
		}
		if (any || (lo <= 384 && hi >= 384 && (shi == 0 || (slo <= 384 && shi >= 384)))) {
			t->caps |= KHSM_CAP_ECDSA_P384;
		}
	}
	if (mech_info(m, slot, list, n, CKM_EC_EDWARDS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, &gen) &&
	    mech_info(m, slot, list, n, CKM_EDDSA, CKF_SIGN, NULL)) {
		CK_ULONG lo = gen.ulMinKeySize, hi = gen.ulMaxKeySize;
		if (hi == 0 || (lo <= 256 && hi >= 255)) {
			t->caps |= KHSM_CAP_ED25519;
		}
		if (hi == 0 || hi >= 448) {
			t->caps |= KHSM_CAP_ED448;
		}
	}
	if (mech_info(m, slot, list, n, CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, &gen) &&
	    mech_info(m, slot, list, n, CKM_RSA_PKCS, CKF_SIGN, &sig)) {
		t->caps |= KHSM_CAP_RSA;
		t->rsa_min_bits = gen.ulMinKeySize;
		t->rsa_max_bits = gen.ulMaxKeySize;
		if (sig.ulMaxKeySize && sig.ulMaxKeySize < t->rsa_max_bits) {
			t->rsa_max_bits = sig.ulMaxKeySize;
		}
		if (sig.ulMinKeySize > t->rsa_min_bits) {
			t->rsa_min_bits = sig.ulMinKeySize;
		}
	}
	free(list);
}

static int token_uris(khsm_token_t *t)
{
	khsm_uri_t full = { .token = t->label, .manufacturer = t->manufacturer,
	                    .model = t->model, .serial = t->serial };
	khsm_uri_t shrt = { .token = t->label };
	khsm_uri_t ser = { .token = t->label, .serial = t->serial };
	int r = khsm_uri_format(&full, &t->uri);
	if (r == KHSM_EOK) r = khsm_uri_format(&shrt, &t->uri_short);
	if (r == KHSM_EOK) r = khsm_uri_format(&ser, &t->uri_serial);
	return r;
}

static int add_module_tokens(khsm_tokens_t *list, CK_FUNCTION_LIST *m)
{
	char *file = p11_kit_module_get_filename(m);
	char *name = p11_kit_module_get_name(m);
	_cleanup_free_ char *path = file ? absolute_module_path(file) : NULL;
	free(file);

	CK_SLOT_ID slots[MAX_SLOTS];
	CK_ULONG n = MAX_SLOTS;
	CK_RV rv = m->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		append_failure(list, "%s: cannot list slots (%s)", path ? path : "?",
		               khsm_strerror(khsm_error_from_ckr(rv)));
		free(name);
		return KHSM_EOK;
	}
	CK_ULONG all = 0;
	if (m->C_GetSlotList(CK_FALSE, NULL, &all) == CKR_OK && all > n) {
		list->empty_slots += all - n;
	}

	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;
		if (m->C_GetTokenInfo(slots[i], &ti) != CKR_OK) {
			continue;
		}
		khsm_token_t *items = realloc(list->items, (list->count + 1) * sizeof(*items));
		CK_FUNCTION_LIST **mods = realloc(list->item_module, (list->count + 1) * sizeof(*mods));
		if (items) list->items = items;
		if (mods) list->item_module = mods;
		if (!items || !mods) {
			free(name);
			return KHSM_ENOMEM;
		}
		khsm_token_t *t = &list->items[list->count];
		memset(t, 0, sizeof(*t));
		khsm_label_unpad(ti.label, sizeof(ti.label), t->label);
		khsm_label_unpad(ti.manufacturerID, sizeof(ti.manufacturerID), t->manufacturer);
		khsm_label_unpad(ti.model, sizeof(ti.model), t->model);
		khsm_label_unpad(ti.serialNumber, sizeof(ti.serialNumber), t->serial);
		t->slot_id = slots[i];
		t->flags = map_flags(ti.flags);
		t->module_path = path ? strdup(path) : NULL;
		t->module_name = name ? strdup(name) : NULL;
		list->item_module[list->count] = m;
		list->count++;
		read_caps(m, slots[i], t);
		int r = token_uris(t);
		if (r != KHSM_EOK) {
			free(name);
			return r;
		}
	}
	free(name);
	return KHSM_EOK;
}

static bool same_file(CK_FUNCTION_LIST *m, const char *real)
{
	char *file = p11_kit_module_get_filename(m);
	if (!file) {
		return false;
	}
	char *path = absolute_module_path(file);
	free(file);
	bool same = path && strcmp(path, real) == 0;
	free(path);
	return same;
}

_public_
int khsm_tokens_load(const char *module_path, bool registered, khsm_tokens_t **tokens_ptr)
{
	if (!tokens_ptr || (!module_path && !registered)) {
		return KHSM_EINVAL;
	}

	khsm_tokens_t *list = calloc(1, sizeof(*list));
	if (!list) {
		return KHSM_ENOMEM;
	}
	int r = KHSM_EOK;
	_cleanup_free_ char *real = NULL;

	if (module_path) {
		real = realpath(module_path, NULL);
		if (!real) {
			khsm_err_detail("module %s: %s; give the full path of the PKCS #11 module "
			                "(e.g. /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so)",
			                module_path, strerror(errno));
			r = KHSM_EMODULE;
			goto fail;
		}
	}

	if (registered) {
		list->registered = p11_kit_modules_load_and_initialize(0);
		for (size_t i = 0; list->registered && list->registered[i]; i++) {
			if (real && same_file(list->registered[i], real)) {
				continue; /* listed once, below, as the requested module */
			}
			r = add_module_tokens(list, list->registered[i]);
			if (r != KHSM_EOK) goto fail;
		}
	}

	if (real) {
		CK_FUNCTION_LIST *m = NULL;
		for (size_t i = 0; list->registered && list->registered[i]; i++) {
			if (same_file(list->registered[i], real)) {
				m = list->registered[i];
			}
		}
		if (!m) {
			list->extra = p11_kit_module_load(real, 0);
			if (!list->extra) {
				khsm_err_detail("module %s cannot be loaded (%s); is it a PKCS #11 module "
				                "for this architecture?", real, p11_kit_message());
				r = KHSM_EMODULE;
				goto fail;
			}
			CK_RV rv = p11_kit_module_initialize(list->extra);
			if (rv != CKR_OK) {
				khsm_err_detail("module %s failed to initialise: %s", real,
				                khsm_strerror(khsm_error_from_ckr(rv)));
				p11_kit_module_release(list->extra);
				list->extra = NULL;
				r = KHSM_EMODULE;
				goto fail;
			}
			m = list->extra;
		}
		r = add_module_tokens(list, m);
		if (r != KHSM_EOK) goto fail;
	}

	*tokens_ptr = list;
	return KHSM_EOK;
fail:
	khsm_tokens_free(list);
	return r;
}

_public_
void khsm_tokens_free(khsm_tokens_t *list)
{
	if (!list) {
		return;
	}
	for (size_t i = 0; i < list->count; i++) {
		khsm_token_t *t = &list->items[i];
		free(t->module_path);
		free(t->module_name);
		free(t->uri);
		free(t->uri_short);
		free(t->uri_serial);
	}
	free(list->items);
	free(list->item_module);
	free(list->failures);
	if (list->extra) {
		p11_kit_module_finalize(list->extra);
		p11_kit_module_release(list->extra);
	}
	if (list->registered) {
		p11_kit_modules_finalize_and_release(list->registered);
	}
	free(list);
}

_public_
size_t khsm_tokens_count(const khsm_tokens_t *list)
{
	return list ? list->count : 0;
}

_public_
size_t khsm_tokens_empty_slots(const khsm_tokens_t *list)
{
	return list ? list->empty_slots : 0;
}

_public_
const khsm_token_t *khsm_tokens_at(const khsm_tokens_t *list, size_t i)
{
	return list && i < list->count ? &list->items[i] : NULL;
}

_public_
const char *khsm_tokens_failures(const khsm_tokens_t *list)
{
	return list ? list->failures : NULL;
}

/* Build "a, b, c" of token descriptions for error details. */
static void describe(const khsm_tokens_t *list, const char *label, bool serial_uri,
                     char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < list->count && used < size; i++) {
		const khsm_token_t *t = &list->items[i];
		if (label && strcmp(t->label, label) != 0) {
			continue;
		}
		int n = snprintf(buf + used, size - used, "%s'%s' (serial %s, %s)%s%s",
		                 used ? "; " : "", t->label, t->serial,
		                 t->module_path ? t->module_path : "?",
		                 serial_uri ? " " : "", serial_uri ? t->uri_serial : "");
		if (n < 0) {
			break;
		}
		used += (size_t)n;
	}
}

_public_
int khsm_tokens_find(const khsm_tokens_t *list, const char *label, const char *serial,
                     const khsm_token_t **token_ptr)
{
	if (!list || !label || !token_ptr) {
		return KHSM_EINVAL;
	}
	const khsm_token_t *found = NULL;
	size_t matches = 0;
	for (size_t i = 0; i < list->count; i++) {
		const khsm_token_t *t = &list->items[i];
		if (strcmp(t->label, label) == 0 && (!serial || strcmp(t->serial, serial) == 0)) {
			found = t;
			matches++;
		}
	}
	char buf[1600];
	if (matches == 0) {
		describe(list, NULL, false, buf, sizeof(buf));
		khsm_err_detail("no token labelled '%s'%s%s; tokens present: %s", label,
		                serial ? " with serial " : "", serial ? serial : "",
		                buf[0] ? buf : "none (is the card inserted and pcscd running?)");
		return KHSM_ENOENT;
	}
	if (matches > 1) {
		describe(list, label, true, buf, sizeof(buf));
		khsm_err_detail("%zu tokens are labelled '%s': %s; pick one by its serial-qualified URI",
		                matches, label, buf);
		return KHSM_EAMBIGUOUS;
	}
	*token_ptr = found;
	return KHSM_EOK;
}

_public_
int khsm_token_refresh_flags(const khsm_tokens_t *list, const khsm_token_t *token,
                             unsigned *flags_ptr)
{
	if (!list || !token || !flags_ptr || token < list->items || token >= list->items + list->count) {
		return KHSM_EINVAL;
	}
	CK_FUNCTION_LIST *m = list->item_module[token - list->items];
	CK_TOKEN_INFO ti;
	CK_RV rv = m->C_GetTokenInfo(token->slot_id, &ti);
	if (rv != CKR_OK) {
		return khsm_error_from_ckr(rv);
	}
	*flags_ptr = map_flags(ti.flags);
	return KHSM_EOK;
}

_public_
char *khsm_token_caps_text(const khsm_token_t *t)
{
	char buf[160] = "";
	size_t used = 0;
	static const struct { unsigned cap; const char *name; } NAMES[] = {
		{ KHSM_CAP_ECDSA_P256, "ECDSA P-256" },
		{ KHSM_CAP_ECDSA_P384, "ECDSA P-384" },
		{ KHSM_CAP_ED25519, "Ed25519" },
		{ KHSM_CAP_ED448, "Ed448" },
	};
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(NAMES); i++) {
		if (t->caps & NAMES[i].cap) {
			used += snprintf(buf + used, sizeof(buf) - used, "%s%s", used ? ", " : "", NAMES[i].name);
		}
	}
	if (t->caps & KHSM_CAP_RSA) {
		used += snprintf(buf + used, sizeof(buf) - used, "%sRSA %lu-%lu", used ? ", " : "",
		                 t->rsa_min_bits, t->rsa_max_bits);
	}
	if (t->caps != khsm_caps_usable(t->caps)) {
		snprintf(buf + used, sizeof(buf) - used, " (EdDSA not usable through GnuTLS %s, "
		         "which Knot uses: needs 3.8)", gnutls_check_version(NULL));
	}
	return strdup(buf[0] ? buf : "none");
}

/* GnuTLS, which Knot and knot-hsm use for PKCS #11, generates and signs with
 * EdDSA token keys only from 3.8 on (3.7.9 answers "unsupported feature"). */
_public_
unsigned khsm_caps_usable(unsigned caps)
{
	if (!gnutls_check_version("3.8.0")) {
		caps &= ~(unsigned)(KHSM_CAP_ED25519 | KHSM_CAP_ED448);
	}
	return caps;
}

_public_
unsigned khsm_cap_for_algorithm(int algorithm)
{
	switch (algorithm) {
	case 8: case 10: return KHSM_CAP_RSA;
	case 13: return KHSM_CAP_ECDSA_P256;
	case 14: return KHSM_CAP_ECDSA_P384;
	case 15: return KHSM_CAP_ED25519;
	case 16: return KHSM_CAP_ED448;
	default: return 0;
	}
}
