/* Key objects on the card through GnuTLS. */
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
#include "error.h"
#include "internal.h"

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

static int object_url(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
                      khsm_uri_type_t type, char **url_ptr);

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
	int r = object_url(ks, label, id, id_len, type, &url);
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

/* -- algorithms ----------------------------------------------------------- */

static const struct {
	int number;
	const char *name;
	gnutls_pk_algorithm_t pk;
	gnutls_ecc_curve_t curve;
} ALGORITHMS[] = {
	{ 8,  "rsasha256",       GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID },
	{ 10, "rsasha512",       GNUTLS_PK_RSA, GNUTLS_ECC_CURVE_INVALID },
	{ 13, "ecdsap256sha256", GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP256R1 },
	{ 14, "ecdsap384sha384", GNUTLS_PK_ECDSA, GNUTLS_ECC_CURVE_SECP384R1 },
	{ 15, "ed25519",         GNUTLS_PK_EDDSA_ED25519, GNUTLS_ECC_CURVE_ED25519 },
	{ 16, "ed448",           GNUTLS_PK_EDDSA_ED448, GNUTLS_ECC_CURVE_ED448 },
};

_public_
int khsm_algorithm_from_name(const char *name, int *algorithm_ptr)
{
	for (size_t i = 0; name && i < KHSM_ARRAY_SIZE(ALGORITHMS); i++) {
		if (strcasecmp(name, ALGORITHMS[i].name) == 0) {
			*algorithm_ptr = ALGORITHMS[i].number;
			return KHSM_EOK;
		}
	}
	khsm_err_detail("unknown algorithm '%s'; use ecdsap256sha256, ecdsap384sha384, rsasha256, "
	                "rsasha512, ed25519 or ed448", name ? name : "");
	return KHSM_EINVAL;
}

_public_
const char *khsm_algorithm_name(int algorithm)
{
	for (size_t i = 0; i < KHSM_ARRAY_SIZE(ALGORITHMS); i++) {
		if (ALGORITHMS[i].number == algorithm) {
			return ALGORITHMS[i].name;
		}
	}
	return NULL;
}

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
static int object_url(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
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
	int r = object_url(ks, label, id, id_len, KHSM_URI_TYPE_PUBLIC, &url);
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

/* The CKA_ID of the public object whose key equals der (the token may have
 * replaced the id we asked for). */
static int find_id_by_pubkey(khsm_keystore_t *ks, const char *label, const gnutls_datum_t *der,
                             uint8_t **id_ptr, size_t *id_len_ptr)
{
	_cleanup_free_ char *url = NULL;
	int r = object_url(ks, label, NULL, 0, KHSM_URI_TYPE_PUBLIC, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	r = khsm_keystore_find(ks, url, true, NULL, false, &objs, &n);
	if (r != KHSM_EOK) {
		return r;
	}
	r = KHSM_ENOENT;
	for (unsigned i = 0; i < n && r == KHSM_ENOENT; i++) {
		gnutls_datum_t mine = { 0 };
		if (pubkey_der(objs[i], &mine, NULL) != KHSM_EOK) {
			continue;
		}
		if (mine.size == der->size && memcmp(mine.data, der->data, der->size) == 0) {
			uint8_t buf[256];
			size_t size = sizeof(buf);
			if (gnutls_pkcs11_obj_get_info(objs[i], GNUTLS_PKCS11_OBJ_ID, buf, &size) == 0 && size > 0) {
				uint8_t *id = malloc(size);
				if (id) {
					memcpy(id, buf, size);
					*id_ptr = id;
					*id_len_ptr = size;
					r = KHSM_EOK;
				} else {
					r = KHSM_ENOMEM;
				}
			}
		}
		gnutls_free(mine.data);
	}
	khsm_keystore_objs_free(objs, n);
	if (r == KHSM_ENOENT) {
		khsm_err_detail("the new key's public object was not found on the token by label '%s'", label);
	}
	return r;
}

/* GnuTLS marks the new private key for signing but leaves the token's other
 * defaults (SoftHSM: decrypt, unwrap, derive). A DNSSEC key only signs, so
 * switch the rest off on both objects, in GnuTLS's own logged-in session. A
 * card that refuses to change usage flags keeps its own (cards give EC keys
 * no decrypt anyway); that is reported, not fatal. */
static int restrict_usage(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len)
{
	_cleanup_free_ char *url = NULL;
	int r = object_url(ks, label, id, id_len, KHSM_URI_TYPE_ANY, &url);
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	if (r == KHSM_EOK) r = khsm_keystore_find(ks, url, true, NULL, false, &objs, &n);
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
		if (gnutls_pkcs11_obj_get_ptr(objs[i], (void **)&m, &session, &handle, &slot,
		                              GNUTLS_PKCS11_OBJ_FLAG_LOGIN) != 0) {
			continue;
		}
		/* GnuTLS's session is read-only; while it keeps the login, a
		 * read-write session of ours is logged in too (PKCS #11 logins are
		 * per application). */
		CK_SESSION_HANDLE ro = (CK_SESSION_HANDLE)(uintptr_t)session, rw = CK_INVALID_HANDLE;
		if (m->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &rw) == CKR_OK) {
			for (size_t a = 0; a < 3; a++) {
				/* One at a time: a token may reject one and accept another. */
				(void)m->C_SetAttributeValue(rw, (CK_OBJECT_HANDLE)(uintptr_t)handle, &off[a], 1);
			}
			m->C_CloseSession(rw);
		}
		m->C_CloseSession(ro);
	}
	khsm_keystore_objs_free(objs, n);
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
	unsigned gbits = ALGORITHMS[e].pk == GNUTLS_PK_RSA ? bits
	               : GNUTLS_CURVE_TO_BITS(ALGORITHMS[e].curve);

	uint8_t want[20];
	if (gnutls_rnd(GNUTLS_RND_RANDOM, want, sizeof(want)) != 0) {
		return KHSM_ECRYPTO;
	}
	gnutls_datum_t cid = { want, sizeof(want) };
	gnutls_datum_t pub = { 0 };
	/* Not extractable: GnuTLS leaves CKA_EXTRACTABLE false unless told. */
	unsigned flags = GNUTLS_PKCS11_OBJ_FLAG_LOGIN | GNUTLS_PKCS11_OBJ_FLAG_MARK_SENSITIVE |
	                 GNUTLS_PKCS11_OBJ_FLAG_MARK_PRIVATE;
	int g = gnutls_pkcs11_privkey_generate3(khsm_keystore_uri(ks), ALGORITHMS[e].pk, gbits,
	                                        label, &cid, GNUTLS_X509_FMT_DER, &pub,
	                                        GNUTLS_KEY_DIGITAL_SIGNATURE, flags);
	if (g != GNUTLS_E_SUCCESS) {
		int r = khsm_error_from_gnutls(g);
		khsm_err_detail("generating the key on the token through GnuTLS failed: %s", gnutls_strerror(g));
		return r == KHSM_ETOKEN ? KHSM_ETOKEN : r;
	}
	int r = find_id_by_pubkey(ks, label, &pub, id_ptr, id_len_ptr);
	gnutls_free(pub.data);
	if (r == KHSM_EOK) {
		restrict_usage(ks, label, *id_ptr, *id_len_ptr);
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
	int r = object_url(ks, NULL, id, id_len, KHSM_URI_TYPE_ANY, &url);
	if (r != KHSM_EOK) {
		return r;
	}
	int g = gnutls_pkcs11_delete_url(url, GNUTLS_PKCS11_OBJ_FLAG_LOGIN);
	if (g < 0) {
		khsm_err_detail("deleting the key from the token failed: %s", gnutls_strerror(g));
		return khsm_error_from_gnutls(g);
	}
	return g > 0 ? KHSM_EOK : KHSM_ENOENT;
}

_public_
int khsm_cardkey_fix_id(khsm_keystore_t *ks, const char *label, uint8_t **id_ptr,
                        size_t *id_len_ptr)
{
	_cleanup_free_ char *url = NULL;
	int r = object_url(ks, label, NULL, 0, KHSM_URI_TYPE_ANY, &url);
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
		int g = gnutls_pkcs11_obj_set_info(objs[k == 0 ? priv : pubi], GNUTLS_PKCS11_OBJ_ID, id,
		                                   id_len, GNUTLS_PKCS11_OBJ_FLAG_LOGIN);
		if (g != 0) {
			khsm_err_detail("the token refused to set CKA_ID: %s", gnutls_strerror(g));
			r = khsm_error_from_gnutls(g);
		}
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

/* -- proof through libdnssec ---------------------------------------------- */

_public_
int khsm_cardkey_dnskey(khsm_keystore_t *ks, const char *zone, const char *id_hex,
                        int algorithm, bool ksk, dnssec_key_t **key_ptr)
{
	if (!ks || !zone || !id_hex || !key_ptr) {
		return KHSM_EINVAL;
	}
	dnssec_key_t *key = NULL;
	knot_dname_t *dname = knot_dname_from_str_alloc(zone);
	int r = dname ? khsm_error_from_dnssec(dnssec_key_new(&key)) : KHSM_ENOMEM;
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_dname(key, dname));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_algorithm(key, algorithm));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_flags(key, ksk ? 257 : 256));
	/* The path knotd takes: keystore -> private key on the token. */
	if (r == KHSM_EOK) {
		r = khsm_error_from_dnssec(dnssec_keystore_get_private(khsm_keystore_dnssec(ks), id_hex, key));
		if (r != KHSM_EOK) {
			khsm_err_detail("libdnssec cannot load key %s from the keystore as knotd would", id_hex);
		}
	}
	free(dname);
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	*key_ptr = key;
	return KHSM_EOK;
}

_public_
int khsm_cardkey_selftest(khsm_keystore_t *ks, const char *zone, const char *id_hex,
                          int algorithm, bool ksk, dnssec_key_t **key_ptr)
{
	if (!ks || !zone || !id_hex || !key_ptr) {
		return KHSM_EINVAL;
	}
	dnssec_key_t *key = NULL, *verify = NULL;
	dnssec_sign_ctx_t *sctx = NULL, *vctx = NULL;
	dnssec_binary_t sig = { 0 }, rdata = { 0 };
	static const char MSG[] = "knot-hsm self-test: signed on the card, verified in software";
	const dnssec_binary_t msg = { .data = (uint8_t *)MSG, .size = sizeof(MSG) - 1 };

	int r = khsm_cardkey_dnskey(ks, zone, id_hex, algorithm, ksk, &key);
	if (r != KHSM_EOK) goto fail;
	r = khsm_error_from_dnssec(dnssec_sign_new(&sctx, key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_init(sctx));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(sctx, &msg));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_write(sctx, DNSSEC_SIGN_NORMAL, &sig));
	if (r != KHSM_EOK) {
		khsm_err_detail("signing a test message with key %s on the token failed", id_hex);
		goto fail;
	}

	/* Verify with a key rebuilt from the DNSKEY rdata only: what resolvers do. */
	r = khsm_error_from_dnssec(dnssec_key_get_rdata(key, &rdata));
	if (r == KHSM_EOK) r = khsm_dnskey_from_rdata(zone, rdata.data, rdata.size, &verify);
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_new(&vctx, verify));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_init(vctx));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(vctx, &msg));
	if (r == KHSM_EOK) {
		int v = dnssec_sign_verify(vctx, false, &sig);
		if (v != DNSSEC_EOK) {
			khsm_err_detail("the card's signature does not verify against the DNSKEY");
			r = KHSM_ECRYPTO;
		}
	}
fail:
	dnssec_sign_free(sctx);
	dnssec_sign_free(vctx);
	dnssec_binary_free(&sig);
	dnssec_key_free(verify);
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	*key_ptr = key;
	return KHSM_EOK;
}
