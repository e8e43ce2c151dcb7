/* Key objects on the card through GnuTLS: find, generate, delete, fix ids
 * (loading and proving a key through libdnssec: cardkey_proof.c). */
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <p11-kit/pkcs11.h>
#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/sign.h>
#include <libknot/dname.h>
#include <strings.h>

#include "dnskey.h"

#include "cardkey.h"
#include "cardkey_internal.h"
#include "error.h"
#include "internal.h"
#include "retry.h"

static int pubkey_kind(gnutls_pubkey_t pub, unsigned *bits_ptr);

_public_
void khsm_cardobjs_clear(khsm_cardobjs_t *objs)
{
	if (!objs) {
		return;
	}
	for (size_t i = 0; i < objs->count; i++) {
		free(objs->items[i].label);
		free(objs->items[i].id);
	}
	free(objs->items);
	objs->items = NULL;
	objs->count = 0;
}

static int convert(gnutls_pkcs11_obj_t *list, unsigned n, khsm_cardobjs_t *out)
{
	khsm_cardobjs_t res = { 0 };
	res.items = calloc(n ? n : 1, sizeof(*res.items));
	if (!res.items) {
		return KHSM_ENOMEM;
	}
	for (unsigned i = 0; i < n; i++) {
		gnutls_pkcs11_obj_type_t t = gnutls_pkcs11_obj_get_type(list[i]);
		if (t != GNUTLS_PKCS11_OBJ_PRIVKEY && t != GNUTLS_PKCS11_OBJ_PUBKEY) {
			continue;
		}
		khsm_cardobj_t *o = &res.items[res.count++];
		o->type = t == GNUTLS_PKCS11_OBJ_PRIVKEY ? KHSM_URI_TYPE_PRIVATE : KHSM_URI_TYPE_PUBLIC;
		if (t == GNUTLS_PKCS11_OBJ_PUBKEY) {
			/* Public objects tell their algorithm without a login. */
			gnutls_pubkey_t pub = NULL;
			if (gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_pkcs11(pub, list[i], 0) == 0) {
				o->pk_algorithm = pubkey_kind(pub, &o->bits);
			}
			gnutls_pubkey_deinit(pub);
		}

		char label[256];
		size_t size = sizeof(label);
		if (gnutls_pkcs11_obj_get_info(list[i], GNUTLS_PKCS11_OBJ_LABEL, label, &size) == 0) {
			o->label = strdup(label);
		}
		uint8_t id[256];
		size = sizeof(id);
		if (gnutls_pkcs11_obj_get_info(list[i], GNUTLS_PKCS11_OBJ_ID, id, &size) == 0 && size > 0) {
			o->id = malloc(size);
			if (o->id) {
				memcpy(o->id, id, size);
				o->id_len = size;
			}
		}
	}
	*out = res;
	return KHSM_EOK;
}

_public_
int khsm_cardkey_find(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
                      khsm_uri_type_t type, const khsm_pin_t *pin, bool force,
                      khsm_cardobjs_t *objs)
{
	if (!ks || !objs) {
		return KHSM_EINVAL;
	}
	/* The search URI names the token and the object and keeps the keystore's
	 * pin-source, so GnuTLS logs in exactly as knotd would. */
	_cleanup_free_ char *url = NULL;
	int r = khsm_cardkey_object_url(ks, label, id, id_len, type, &url);
	if (r != KHSM_EOK) {
		return r;
	}

	gnutls_pkcs11_obj_t *list = NULL;
	unsigned n = 0;
	if (type != KHSM_URI_TYPE_PRIVATE) {
		r = khsm_keystore_find(ks, url, false, NULL, force, &list, &n);
		if (r != KHSM_EOK) {
			return r;
		}
		if (n > 0 || type == KHSM_URI_TYPE_PUBLIC) {
			r = convert(list, n, objs);
			khsm_keystore_objs_free(list, n);
			return r;
		}
	}
	r = khsm_keystore_find(ks, url, true, pin, force, &list, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	r = convert(list, n, objs);
	khsm_keystore_objs_free(list, n);
	return r;
}

_public_
int khsm_cardkey_present(const char *keystore_config, const char *id_hex, bool force,
                         bool *present_ptr)
{
	if (!keystore_config || !id_hex || !present_ptr) {
		return KHSM_EINVAL;
	}
	khsm_keystore_t *ks = NULL;
	uint8_t *id = NULL;
	size_t id_len = 0;
	khsm_cardobjs_t objs = { 0 };
	int r = khsm_hex_parse(id_hex, &id, &id_len);
	if (r == KHSM_EOK) r = khsm_keystore_open(keystore_config, &ks);
	if (r == KHSM_EOK) {
		r = khsm_cardkey_find(ks, NULL, id, id_len, KHSM_URI_TYPE_PUBLIC, NULL, force, &objs);
	}
	if (r == KHSM_EOK) *present_ptr = objs.count > 0;
	khsm_cardobjs_clear(&objs);
	khsm_keystore_close(ks);
	free(id);
	return r;
}

/* -- algorithms ----------------------------------------------------------- */

/* What each DNSSEC algorithm is on the card (names: dnskey.c). */
static const struct {
	int number;
	gnutls_pk_algorithm_t pk;
	gnutls_ecc_curve_t curve;
} ALGORITHMS[] = {
	{ 8, GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID },
	{ 10, GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID },
	{ 13, GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP256R1 },
	{ 14, GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP384R1 },
	{ 15, GNUTLS_PK_EDDSA_ED25519, GNUTLS_ECC_CURVE_ED25519 },
	{ 16, GNUTLS_PK_EDDSA_ED448, GNUTLS_ECC_CURVE_ED448 },
};

static int algorithm_entry(int algorithm)
{
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(ALGORITHMS); i++) {
		if (ALGORITHMS[i].number == algorithm) {
			return (int)i;
		}
	}
	return -1;
}

/* -- objects by URL -------------------------------------------------------- */

/* URL of objects on the keystore's token with the given label/id/type; it
 * keeps the keystore's pin-source so GnuTLS logs in as knotd would. */
int khsm_cardkey_object_url(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
                            khsm_uri_type_t type, char **url_ptr)
{
	khsm_uri_t tok = { 0 };
	int r = khsm_uri_parse(khsm_keystore_uri(ks), &tok);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_uri_t want = { .token = tok.token, .manufacturer = tok.manufacturer, .model = tok.model,
	                    .serial = tok.serial, .object = (char *)label, .id = (uint8_t *)id,
	                    .id_len = id_len, .type = type };
	_cleanup_free_ char *base = NULL;
	r = khsm_uri_format(&want, &base);
	_cleanup_free_ char *pin_enc = NULL;
	if (r == KHSM_EOK && tok.pin_source) {
		r = khsm_uri_encode_value(tok.pin_source, &pin_enc);
	}
	khsm_uri_clear(&tok);
	if (r != KHSM_EOK) {
		return r;
	}
	char *url = NULL;
	if (asprintf(&url, "%s%s%s", base, pin_enc ? ";pin-source=" : "", pin_enc ? pin_enc : "") < 0) {
		return KHSM_ENOMEM;
	}
	*url_ptr = url;
	return KHSM_EOK;
}

static int pubkey_der(gnutls_pkcs11_obj_t obj, gnutls_datum_t *der, gnutls_pubkey_t *pub_ptr)
{
	gnutls_pubkey_t pub = NULL;
	int r = gnutls_pubkey_init(&pub);
	if (r == 0) r = gnutls_pubkey_import_pkcs11(pub, obj, 0);
	if (r == 0 && der) r = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, der);
	if (r != 0) {
		gnutls_pubkey_deinit(pub);
		return khsm_error_from_gnutls(r);
	}
	if (pub_ptr) {
		*pub_ptr = pub;
	} else {
		gnutls_pubkey_deinit(pub);
	}
	return KHSM_EOK;
}

/* Algorithm and size of a public key; for EC keys from a token GnuTLS reports
 * no size, so it is taken from the curve. */
static int pubkey_kind(gnutls_pubkey_t pub, unsigned *bits_ptr)
{
	unsigned bits = 0;
	int pk = gnutls_pubkey_get_pk_algorithm(pub, &bits);
	if (pk == GNUTLS_PK_ECDSA && bits == 0) {
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
		gnutls_datum_t x = { 0 }, y = { 0 };
		if (gnutls_pubkey_export_ecc_raw2(pub, &curve, &x, &y, 0) == 0) {
			bits = gnutls_ecc_curve_get_size(curve) * 8;
		}
		gnutls_free(x.data);
		gnutls_free(y.data);
	}
	*bits_ptr = bits;
	return pk;
}

static int dnssec_algorithm_of(gnutls_pubkey_t pub, int prefer, int *alg, unsigned *bits_ptr)
{
	unsigned bits = 0;
	int pk = pubkey_kind(pub, &bits);
	switch (pk) {
	case GNUTLS_PK_RSA:
		*alg = prefer == 10 ? 10 : 8;
		break;
	case GNUTLS_PK_ECDSA:
		if (bits == 256) *alg = 13;
		else if (bits == 384) *alg = 14;
		else {
			khsm_err_detail("EC key of %u bits: DNSSEC has only P-256 (13) and P-384 (14)", bits);
			return KHSM_ENOTSUP;
		}
		break;
	case GNUTLS_PK_EDDSA_ED25519: *alg = 15; break;
	case GNUTLS_PK_EDDSA_ED448: *alg = 16; break;
	default:
		khsm_err_detail("the key's algorithm (%s) has no DNSSEC counterpart",
		                gnutls_pk_get_name(pk) ? gnutls_pk_get_name(pk) : "?");
		return KHSM_ENOTSUP;
	}
	*bits_ptr = bits;
	return KHSM_EOK;
}

_public_
int khsm_cardkey_algorithm(khsm_keystore_t *ks, const uint8_t *id, size_t id_len,
                           const char *label, int prefer, int *algorithm_ptr, unsigned *bits_ptr)
{
	_cleanup_free_ char *url = NULL;
	int r = khsm_cardkey_object_url(ks, label, id, id_len, KHSM_URI_TYPE_PUBLIC, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	r = khsm_keystore_find(ks, url, false, NULL, false, &objs, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	if (n != 1) {
		khsm_keystore_objs_free(objs, n);
		khsm_err_detail("%u public key objects match; the algorithm is read from the public "
		                "key, so exactly one must exist (give algorithm= to skip this)", n);
		return n == 0 ? KHSM_ENOENT : KHSM_EAMBIGUOUS;
	}
	gnutls_pubkey_t pub = NULL;
	r = pubkey_der(objs[0], NULL, &pub);
	khsm_keystore_objs_free(objs, n);
	if (r != KHSM_EOK) {
		return r;
	}
	r = dnssec_algorithm_of(pub, prefer, algorithm_ptr, bits_ptr);
	gnutls_pubkey_deinit(pub);
	return r;
}

/* GnuTLS marks the new private key for signing but leaves the token's other
 * defaults (SoftHSM: decrypt, unwrap, derive). A DNSSEC key only signs, so
 * switch the rest off on both objects, in GnuTLS's own logged-in session. A
 * card that refuses to change usage flags keeps its own (cards give EC keys
 * no decrypt anyway); that is reported, not fatal. */
/* A CK_RV of a raw call: busy or removed cards are transient (khsm_retry_transient). */
static int card_error_from_ckr(CK_RV rv)
{
	switch (rv) {
	case CKR_DEVICE_ERROR:           return KHSM_EBUSY;   /* what OpenSC answers for a busy card */
	case CKR_DEVICE_REMOVED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:         return KHSM_EREMOVED;
	case CKR_TOKEN_NOT_PRESENT:      return KHSM_ENOTOKEN;
	default:                         return khsm_error_from_ckr(rv);
	}
}

struct usage_args {
	khsm_keystore_t *ks;
	const char *url;
};

static int restrict_usage_once(void *ctx)
{
	struct usage_args *u = ctx;
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	int r = khsm_keystore_find(u->ks, u->url, true, NULL, false, &objs, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE priv_off[] = { { CKA_DECRYPT, &no, sizeof(no) }, { CKA_UNWRAP, &no, sizeof(no) },
	                            { CKA_DERIVE, &no, sizeof(no) } };
	CK_ATTRIBUTE pub_off[] = { { CKA_ENCRYPT, &no, sizeof(no) }, { CKA_WRAP, &no, sizeof(no) },
	                           { CKA_DERIVE, &no, sizeof(no) } };
	for (unsigned i = 0; i < n && r == KHSM_EOK; i++) {
		gnutls_pkcs11_obj_type_t t = gnutls_pkcs11_obj_get_type(objs[i]);
		CK_ATTRIBUTE *off = t == GNUTLS_PKCS11_OBJ_PRIVKEY ? priv_off : pub_off;
		CK_FUNCTION_LIST *m = NULL;
		void *session = NULL, *handle = NULL;
		unsigned long slot = 0;
		int g = gnutls_pkcs11_obj_get_ptr(objs[i], (void **)&m, &session, &handle, &slot,
		                                  GNUTLS_PKCS11_OBJ_FLAG_LOGIN);
		if (g != 0) {
			r = khsm_retry_transient(khsm_error_from_gnutls(g)) ? khsm_error_from_gnutls(g) : KHSM_EOK;
			continue;
		}
		/* GnuTLS's session is read-only; while the keystore keeps the login,
		 * a read-write session of ours is logged in too (PKCS #11 logins are
		 * per application). */
		CK_SESSION_HANDLE ro = (CK_SESSION_HANDLE)(uintptr_t)session, rw = CK_INVALID_HANDLE;
		CK_RV rv = m->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw);
		if (rv == CKR_OK) {
			for (size_t a = 0; a < 3 && r == KHSM_EOK; a++) {
				/* One at a time: a token may reject one and accept another;
				 * only a busy or removed card is worth another try. */
				rv = m->C_SetAttributeValue(rw, (CK_OBJECT_HANDLE)(uintptr_t)handle, &off[a], 1);
				int e = card_error_from_ckr(rv);
				if (rv != CKR_OK && khsm_retry_transient(e)) {
					r = e;
				}
			}
			m->C_CloseSession(rw);
		} else if (khsm_retry_transient(card_error_from_ckr(rv))) {
			r = card_error_from_ckr(rv);
		}
		m->C_CloseSession(ro);
	}
	khsm_keystore_objs_free(objs, n);
	return r;
}

/* GnuTLS marks the new private key for signing but leaves the token's other
 * defaults (SoftHSM: decrypt, unwrap, derive). A DNSSEC key only signs, so
 * switch the rest off on both objects. A card that refuses to change usage
 * flags keeps its own (cards give EC keys no decrypt anyway); that is not
 * fatal. Setting a flag twice is harmless, so the whole step is retried. */
static int restrict_usage(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len)
{
	_cleanup_free_ char *url = NULL;
	int r = khsm_cardkey_object_url(ks, label, id, id_len, KHSM_URI_TYPE_ANY, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	struct usage_args u = { .ks = ks, .url = url };
	return khsm_card_op("restricting the key's usage", restrict_usage_once, &u);
}

/* -- key generation ------------------------------------------------------- */

/*
 * Key pairs are generated with C_GenerateKeyPair on the function list GnuTLS
 * loaded (as restrict_usage does): GnuTLS folds CKR_DEVICE_MEMORY (card full),
 * CKR_DEVICE_ERROR (card busy) and CKR_DEVICE_REMOVED into one error code,
 * and they need different answers. The keystore's login is reused; the key
 * is then proven through libdnssec exactly as knotd loads it.
 */

#define MAX_LABEL_IDS 32

typedef struct {
	uint8_t id[64];
	CK_ULONG len;
} raw_id_t;

struct keygen_args {
	khsm_keystore_t *ks;
	int e;                  /* ALGORITHMS[] entry */
	unsigned bits;
	const char *label;
	uint8_t want[20];       /* the random CKA_ID asked for */
	bool snapshot;          /* before[] holds the private keys labelled so before keygen */
	raw_id_t before[MAX_LABEL_IDS];
	size_t n_before;
	bool tried;             /* C_GenerateKeyPair was called at least once */
	bool made;              /* ... and returned CKR_OK */
	bool vanished;          /* ... and the card stopped answering (CKR_GENERAL_ERROR) */
	uint8_t *id;            /* result */
	size_t id_len;
};

/* A logged-in read-write session on the keystore's token. */
static int rw_session(khsm_keystore_t *ks, CK_FUNCTION_LIST **m_ptr, CK_SESSION_HANDLE *s_ptr)
{
	void *ptr = NULL;
	unsigned long slot = 0;
	int g = gnutls_pkcs11_token_get_ptr(khsm_keystore_uri(ks), &ptr, &slot, 0);
	if (g != GNUTLS_E_SUCCESS || !ptr) {
		/* The URI matched no token: the card is out. */
		return g == GNUTLS_E_SUCCESS ? KHSM_EMODULE : KHSM_ENOTOKEN;
	}
	CK_FUNCTION_LIST *m = ptr;
	for (int pass = 0; pass < 2; pass++) {
		CK_SESSION_HANDLE s;
		CK_RV rv = m->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
		if (rv != CKR_OK) {
			khsm_err_detail("opening a session on the card failed (CKR 0x%lx)", (unsigned long)rv);
			return card_error_from_ckr(rv);
		}
		CK_SESSION_INFO si;
		rv = m->C_GetSessionInfo(s, &si);
		if (rv == CKR_OK && si.state == CKS_RW_USER_FUNCTIONS) {
			*m_ptr = m;
			*s_ptr = s;
			return KHSM_EOK;
		}
		m->C_CloseSession(s);
		if (rv != CKR_OK) {
			return card_error_from_ckr(rv);
		}
		if (pass == 0) {
			/* The card forgot the login (it was removed and reinserted): log
			 * in again with the PIN it accepted before; a refusal is final. */
			int r = khsm_keystore_login(ks, NULL, false);
			if (r != KHSM_EOK) {
				return r;
			}
		}
	}
	khsm_err_detail("the keystore is not logged in");
	return KHSM_ELOGIN;
}

/* CKA_IDs of the private keys labelled label (at most MAX_LABEL_IDS). */
static int label_ids(CK_FUNCTION_LIST *m, CK_SESSION_HANDLE s, const char *label,
                     raw_id_t *ids, size_t *n_ptr)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = { { CKA_CLASS, &cls, sizeof(cls) },
	                        { CKA_LABEL, (void *)label, strlen(label) } };
	CK_OBJECT_HANDLE objs[MAX_LABEL_IDS];
	CK_ULONG n = 0;
	CK_RV rv = m->C_FindObjectsInit(s, tmpl, 2);
	if (rv == CKR_OK) {
		rv = m->C_FindObjects(s, objs, MAX_LABEL_IDS, &n);
		m->C_FindObjectsFinal(s);
	}
	for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
		CK_ATTRIBUTE a = { CKA_ID, ids[i].id, sizeof(ids[i].id) };
		rv = m->C_GetAttributeValue(s, objs[i], &a, 1);
		ids[i].len = rv == CKR_OK ? a.ulValueLen : 0;
		if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_BUFFER_TOO_SMALL) {
			rv = CKR_OK;
		}
	}
	if (rv != CKR_OK) {
		return card_error_from_ckr(rv);
	}
	*n_ptr = n;
	return KHSM_EOK;
}

static bool id_in(const raw_id_t *ids, size_t n, const raw_id_t *id)
{
	for (size_t i = 0; i < n; i++) {
		if (ids[i].len == id->len && memcmp(ids[i].id, id->id, id->len) == 0) {
			return true;
		}
	}
	return false;
}

static int keep_id(struct keygen_args *k, const uint8_t *id, size_t len)
{
	if (len == 0) {
		khsm_err_detail("the card gave the new key pair no CKA_ID; Knot cannot use it");
		return KHSM_ETOKEN;
	}
	k->id = malloc(len);
	if (!k->id) {
		return KHSM_ENOMEM;
	}
	memcpy(k->id, id, len);
	k->id_len = len;
	return KHSM_EOK;
}

static const uint8_t OID_P256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const uint8_t OID_P384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };
static const uint8_t OID_ED25519[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const uint8_t OID_ED448[] = { 0x06, 0x03, 0x2b, 0x65, 0x71 };

static int keygen_once(void *ctx)
{
	struct keygen_args *k = ctx;
	CK_FUNCTION_LIST *m = NULL;
	CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
	int r = rw_session(k->ks, &m, &s);
	if (r != KHSM_EOK) {
		return r;
	}
	raw_id_t now[MAX_LABEL_IDS];
	size_t n_now = 0;
	if (!k->snapshot) {
		r = label_ids(m, s, k->label, k->before, &k->n_before);
		k->snapshot = r == KHSM_EOK;
	} else if (k->tried) {
		/* An earlier try failed after reaching the card: it may have made
		 * the key all the same. Adopt it rather than make a second one. */
		r = label_ids(m, s, k->label, now, &n_now);
		const raw_id_t *fresh = NULL;
		size_t n_fresh = 0;
		for (size_t i = 0; r == KHSM_EOK && i < n_now; i++) {
			if (!id_in(k->before, k->n_before, &now[i])) {
				fresh = &now[i];
				n_fresh++;
			}
		}
		if (r == KHSM_EOK && n_fresh == 1) {
			k->made = true;
			r = keep_id(k, fresh->id, fresh->len);
			m->C_CloseSession(s);
			return r;
		}
		if (r == KHSM_EOK && n_fresh > 1) {
			khsm_err_detail("%zu new keys labelled '%s' appeared on the card while it was busy; "
			                "knot-hsm keys lists them", n_fresh, k->label);
			r = KHSM_EAMBIGUOUS;
		}
	}
	if (r != KHSM_EOK) {
		m->C_CloseSession(s);
		return r;
	}

	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG bits = k->bits;
	static const uint8_t F4[] = { 0x01, 0x00, 0x01 };
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pub[8] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)k->label, strlen(k->label) },
		{ CKA_ID, k->want, sizeof(k->want) },
	};
	CK_ULONG n_pub = 4;
	switch (ALGORITHMS[k->e].number) {
	case 8: case 10:
		mech.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
		pub[n_pub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &bits, sizeof(bits) };
		pub[n_pub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, (void *)F4, sizeof(F4) };
		break;
	case 13: pub[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)OID_P256, sizeof(OID_P256) }; break;
	case 14: pub[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)OID_P384, sizeof(OID_P384) }; break;
	case 15:
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		pub[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)OID_ED25519, sizeof(OID_ED25519) };
		break;
	default:
		mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
		pub[n_pub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)OID_ED448, sizeof(OID_ED448) };
		break;
	}
	/* Sensitive, private, never extractable, sign only: what GnuTLS asks for
	 * with MARK_SENSITIVE | MARK_PRIVATE and a digital-signature key usage. */
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_LABEL, (void *)k->label, strlen(k->label) },
		{ CKA_ID, k->want, sizeof(k->want) },
	};
	CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
	k->tried = true;
	CK_RV rv = m->C_GenerateKeyPair(s, &mech, pub, n_pub, priv, KHSM_ARRAY_SIZE(priv), &hpub, &hpriv);
	if (rv == CKR_OK) {
		k->made = true;
		/* The card may have replaced the id we asked for (SmartCard-HSM:
		 * SHA-1 of the public key): read back the one it set. */
		uint8_t id[64];
		CK_ATTRIBUTE a = { CKA_ID, id, sizeof(id) };
		rv = m->C_GetAttributeValue(s, hpriv, &a, 1);
		if (rv == CKR_OK) {
			r = keep_id(k, id, a.ulValueLen);
		} else {
			khsm_err_detail("reading the new key's CKA_ID failed (CKR 0x%lx)", (unsigned long)rv);
			r = card_error_from_ckr(rv);
		}
	} else if (rv == CKR_DEVICE_MEMORY) {
		k->tried = false;   /* the card said no: nothing was made */
		khsm_err_detail("the card is full: it has no room for another key pair "
		                "(CKR_DEVICE_MEMORY)");
		r = KHSM_EDEVMEM;
	} else if (rv == CKR_GENERAL_ERROR) {
		/* What OpenSC answers when the card leaves the reader in the middle
		 * of generating (pcscd notices later): the module itself is fine.
		 * Not retried: a card that answers so while present would burn a
		 * key slot per try. */
		k->vanished = true;
		khsm_err_detail("the card stopped answering during key generation (removed?) "
		                "(CKR_GENERAL_ERROR)");
		r = KHSM_ETOKEN;
	} else {
		khsm_err_detail("the card refused to generate the key pair (CKR 0x%lx)", (unsigned long)rv);
		r = card_error_from_ckr(rv);
	}
	m->C_CloseSession(s);
	return r;
}

_public_
int khsm_cardkey_generate(khsm_keystore_t *ks, int algorithm, unsigned bits, const char *label,
                          uint8_t **id_ptr, size_t *id_len_ptr)
{
	int e = algorithm_entry(algorithm);
	if (!ks || !label || !id_ptr || !id_len_ptr || e < 0) {
		return KHSM_EINVAL;
	}
	struct keygen_args k = { .ks = ks, .e = e, .label = label,
	                         .bits = ALGORITHMS[e].pk == GNUTLS_PK_RSA ? bits : 0 };
	if (gnutls_rnd(GNUTLS_RND_RANDOM, k.want, sizeof(k.want)) != 0) {
		return KHSM_ECRYPTO;
	}
	int r = khsm_card_op("generating the key pair", keygen_once, &k);
	if (r != KHSM_EOK) {
		free(k.id);
		if (k.vanished && !k.made) {
			const char *d = khsm_err_last_detail();
			char keep[1400];
			snprintf(keep, sizeof(keep), "%s", d ? d : "");
			khsm_err_detail("%s%sthe card may hold a half-made key pair that no PKCS #11 object "
			                "shows (it takes a key slot; knot-hsm keys cannot list it), and nothing "
			                "was written to KASP. Put the card back (if it was removed) and rerun "
			                "the command: it makes the key in a free slot (only re-initialising the "
			                "card, which erases every key on it, frees that slot)",
			                keep, keep[0] ? "; " : "");
		} else if (k.made || (k.tried && khsm_retry_transient(r))) {
			const char *d = khsm_err_last_detail();
			char keep[1400];
			snprintf(keep, sizeof(keep), "%s", d ? d : "");
			khsm_err_detail("%s%sthe card %s the key pair '%s' but knot-hsm could not read its "
			                "id; nothing was written to KASP. When the card is back, rerun the "
			                "command: it finds the key and names the import command that "
			                "finishes the job", keep, keep[0] ? "; " : "",
			                k.made ? "made" : "may have made", label);
		}
		return r;
	}
	/* Not fatal, whatever the reason: the key exists, and the self-test that
	 * follows finds out whether the card still answers. */
	if (restrict_usage(ks, label, k.id, k.id_len) != KHSM_EOK) {
		khsm_err_clear();
	}
	*id_ptr = k.id;
	*id_len_ptr = k.id_len;
	return KHSM_EOK;
}

struct delete_args {
	khsm_keystore_t *ks;
	const char *url;
	unsigned deleted;   /* objects deleted over all tries */
};

static int delete_once(void *ctx)
{
	struct delete_args *d = ctx;
	int g = gnutls_pkcs11_delete_url(d->url, GNUTLS_PKCS11_OBJ_FLAG_LOGIN);
	if (g < 0) {
		khsm_err_detail("deleting the key from the token failed: %s", gnutls_strerror(g));
		return khsm_error_from_gnutls(g);
	}
	d->deleted += (unsigned)g;
	/* GnuTLS deletes what its search finds, and a busy card finds nothing:
	 * the key is gone only when a search the card answers says so. */
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	int r = khsm_keystore_find(d->ks, d->url, true, NULL, false, &objs, &n);
	if (r == KHSM_EOK) {
		khsm_keystore_objs_free(objs, n);
		if (n > 0) {
			khsm_err_detail("%u objects of the key are still on the card", n);
			r = KHSM_EBUSY;
		}
	}
	return r;
}

_public_
int khsm_cardkey_delete(khsm_keystore_t *ks, const uint8_t *id, size_t id_len)
{
	if (!ks || !id || id_len == 0) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *url = NULL;
	int r = khsm_cardkey_object_url(ks, NULL, id, id_len, KHSM_URI_TYPE_ANY, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	struct delete_args d = { .ks = ks, .url = url };
	r = khsm_card_op("deleting the key", delete_once, &d);
	if (r != KHSM_EOK) {
		return r;
	}
	return d.deleted > 0 ? KHSM_EOK : KHSM_ENOENT;
}

struct set_id_args {
	gnutls_pkcs11_obj_t obj;
	const uint8_t *id;
	size_t id_len;
};

/* Setting the same CKA_ID again is harmless, so a busy card is retried. */
static int set_id_once(void *ctx)
{
	struct set_id_args *a = ctx;
	int g = gnutls_pkcs11_obj_set_info(a->obj, GNUTLS_PKCS11_OBJ_ID, a->id, a->id_len,
	                                   GNUTLS_PKCS11_OBJ_FLAG_LOGIN);
	if (g != 0) {
		khsm_err_detail("the token refused to set CKA_ID: %s", gnutls_strerror(g));
		return khsm_error_from_gnutls(g);
	}
	return KHSM_EOK;
}

_public_
int khsm_cardkey_find_keyid(khsm_keystore_t *ks, const char *label, const char *keyid_hex, bool force,
                            uint8_t **id_ptr, size_t *id_len_ptr)
{
	if (!ks || !keyid_hex || !id_ptr || !id_len_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *url = NULL;
	int r = khsm_cardkey_object_url(ks, label, NULL, 0, KHSM_URI_TYPE_PUBLIC, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	r = khsm_keystore_find(ks, url, false, NULL, force, &objs, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	uint8_t *found = NULL;
	size_t found_len = 0;
	for (unsigned i = 0; r == KHSM_EOK && i < n && !found; i++) {
		gnutls_pubkey_t pub = NULL;
		uint8_t kid[20], cka[256];
		size_t kid_len = sizeof(kid), cka_len = sizeof(cka);
		_cleanup_free_ char *hex = NULL;
		/* libdnssec's key id: the SHA-1 key id of the public key */
		if (pubkey_der(objs[i], NULL, &pub) != KHSM_EOK) continue;
		bool match = gnutls_pubkey_get_key_id(pub, 0, kid, &kid_len) == 0 &&
		             khsm_hex_format(kid, kid_len, &hex) == KHSM_EOK && strcmp(hex, keyid_hex) == 0;
		gnutls_pubkey_deinit(pub);
		if (match && gnutls_pkcs11_obj_get_info(objs[i], GNUTLS_PKCS11_OBJ_ID, cka, &cka_len) == 0 &&
		    cka_len > 0) {
			if (!(found = malloc(cka_len))) r = KHSM_ENOMEM;
			else memcpy(found, cka, found_len = cka_len);
		}
	}
	khsm_keystore_objs_free(objs, n);
	if (r == KHSM_EOK && !found) {
		khsm_err_detail("no public key object%s%s%s on the card has key id %s", label ? " labelled '" : "",
		                label ? label : "", label ? "'" : "", keyid_hex);
		r = KHSM_ENOENT;
	}
	if (r != KHSM_EOK) {
		free(found);
		return r;
	}
	*id_ptr = found;
	*id_len_ptr = found_len;
	return KHSM_EOK;
}

_public_
int khsm_cardkey_fix_id(khsm_keystore_t *ks, const char *label, uint8_t **id_ptr,
                        size_t *id_len_ptr)
{
	_cleanup_free_ char *url = NULL;
	int r = khsm_cardkey_object_url(ks, label, NULL, 0, KHSM_URI_TYPE_ANY, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	r = khsm_keystore_find(ks, url, true, NULL, false, &objs, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	/* Exactly one private and one public object, neither with an id. */
	int priv = -1, pubi = -1;
	for (unsigned i = 0; i < n; i++) {
		uint8_t buf[256];
		size_t size = sizeof(buf);
		if (gnutls_pkcs11_obj_get_info(objs[i], GNUTLS_PKCS11_OBJ_ID, buf, &size) == 0 && size > 0) {
			continue;
		}
		gnutls_pkcs11_obj_type_t t = gnutls_pkcs11_obj_get_type(objs[i]);
		if (t == GNUTLS_PKCS11_OBJ_PRIVKEY) priv = priv < 0 ? (int)i : -2;
		if (t == GNUTLS_PKCS11_OBJ_PUBKEY) pubi = pubi < 0 ? (int)i : -2;
	}
	if (priv < 0 || pubi < 0) {
		khsm_keystore_objs_free(objs, n);
		khsm_err_detail("fix-id needs exactly one private and one public object labelled '%s' "
		                "without CKA_ID", label);
		return priv == -2 || pubi == -2 ? KHSM_EAMBIGUOUS : KHSM_ENOENT;
	}
	gnutls_pubkey_t pub = NULL;
	r = pubkey_der(objs[pubi], NULL, &pub);
	uint8_t id[20];
	size_t id_len = sizeof(id);
	if (r == KHSM_EOK && gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA1, id, &id_len) != 0) {
		r = KHSM_ECRYPTO;
	}
	gnutls_pubkey_deinit(pub);
	for (int k = 0; r == KHSM_EOK && k < 2; k++) {
		struct set_id_args a = { objs[k == 0 ? priv : pubi], id, id_len };
		r = khsm_card_op("setting CKA_ID", set_id_once, &a);
	}
	khsm_keystore_objs_free(objs, n);
	if (r != KHSM_EOK) {
		return r;
	}
	uint8_t *out = malloc(id_len);
	if (!out) {
		return KHSM_ENOMEM;
	}
	memcpy(out, id, id_len);
	*id_ptr = out;
	*id_len_ptr = id_len;
	return KHSM_EOK;
}
