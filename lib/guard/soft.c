/* Software fill-ins of the guard, all through GnuTLS. */
#include <string.h>

#include "soft.h"

typedef struct {
	gnutls_digest_algorithm_t dig;
	CK_MECHANISM_TYPE digest_mech;
	CK_MECHANISM_TYPE ecdsa_mech;
	CK_MECHANISM_TYPE rsa_mech;
	size_t len;
	unsigned char prefix[19];   /* DER DigestInfo up to the digest */
	size_t prefix_len;
} hash_t;

static const hash_t HASHES[] = {
	{ GNUTLS_DIG_SHA1, CKM_SHA_1, CKM_ECDSA_SHA1, CKM_SHA1_RSA_PKCS, 20,
	  { 0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14 }, 15 },
	{ GNUTLS_DIG_SHA224, CKM_SHA224, CKM_ECDSA_SHA224, CKM_SHA224_RSA_PKCS, 28,
	  { 0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04,
	    0x05, 0x00, 0x04, 0x1c }, 19 },
	{ GNUTLS_DIG_SHA256, CKM_SHA256, CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS, 32,
	  { 0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
	    0x05, 0x00, 0x04, 0x20 }, 19 },
	{ GNUTLS_DIG_SHA384, CKM_SHA384, CKM_ECDSA_SHA384, CKM_SHA384_RSA_PKCS, 48,
	  { 0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
	    0x05, 0x00, 0x04, 0x30 }, 19 },
	{ GNUTLS_DIG_SHA512, CKM_SHA512, CKM_ECDSA_SHA512, CKM_SHA512_RSA_PKCS, 64,
	  { 0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
	    0x05, 0x00, 0x04, 0x40 }, 19 },
};
#define N_HASHES (sizeof(HASHES) / sizeof(HASHES[0]))

static const hash_t *by_dig(gnutls_digest_algorithm_t dig)
{
	for (size_t i = 0; i < N_HASHES; i++) {
		if (HASHES[i].dig == dig) return &HASHES[i];
	}
	return NULL;
}

gnutls_digest_algorithm_t khsm_soft_digest(CK_MECHANISM_TYPE mech)
{
	for (size_t i = 0; i < N_HASHES; i++) {
		if (HASHES[i].digest_mech == mech) return HASHES[i].dig;
	}
	return GNUTLS_DIG_UNKNOWN;
}

bool khsm_soft_hashed(CK_MECHANISM_TYPE mech, CK_MECHANISM_TYPE *raw_ptr,
                      gnutls_digest_algorithm_t *dig_ptr)
{
	for (size_t i = 0; i < N_HASHES; i++) {
		if (HASHES[i].ecdsa_mech == mech || HASHES[i].rsa_mech == mech) {
			*raw_ptr = HASHES[i].ecdsa_mech == mech ? CKM_ECDSA : CKM_RSA_PKCS;
			*dig_ptr = HASHES[i].dig;
			return true;
		}
	}
	return false;
}

int khsm_soft_card_input(CK_MECHANISM_TYPE raw, gnutls_digest_algorithm_t dig,
                         const unsigned char *digest, size_t digest_len,
                         unsigned char *out, size_t *out_len)
{
	const hash_t *h = by_dig(dig);
	if (!h || digest_len != h->len) return -1;
	size_t n = 0;
	if (raw == CKM_RSA_PKCS) {
		memcpy(out, h->prefix, h->prefix_len);
		n = h->prefix_len;
	}
	memcpy(out + n, digest, digest_len);
	*out_len = n + digest_len;
	return 0;
}

bool khsm_soft_can_verify(CK_MECHANISM_TYPE mech)
{
	CK_MECHANISM_TYPE raw;
	gnutls_digest_algorithm_t dig;
	return mech == CKM_ECDSA || mech == CKM_RSA_PKCS || mech == CKM_EDDSA ||
	       khsm_soft_hashed(mech, &raw, &dig);
}

/* The content of a DER OCTET STRING, or NULL when the input is not one. */
static const unsigned char *octet_content(const unsigned char *p, size_t len, size_t *out_len)
{
	if (len < 2 || p[0] != 0x04) return NULL;
	size_t n, off;
	if (p[1] < 0x80) {
		n = p[1];
		off = 2;
	} else if (p[1] == 0x81 && len >= 3) {
		n = p[2];
		off = 3;
	} else if (p[1] == 0x82 && len >= 4) {
		n = (size_t)p[2] << 8 | p[3];
		off = 4;
	} else {
		return NULL;
	}
	if (off + n != len) return NULL;
	*out_len = n;
	return p + off;
}

/* DER OIDs of Ed25519 in CKA_EC_PARAMS (OID, or the PrintableString "edwards25519"). */
static bool is_ed25519(const unsigned char *p, size_t len)
{
	static const unsigned char OID[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
	static const char NAME[] = "edwards25519";
	return (len == sizeof(OID) && memcmp(p, OID, len) == 0) ||
	       (len == 2 + strlen(NAME) && p[0] == 0x13 && p[1] == strlen(NAME) &&
	        memcmp(p + 2, NAME, strlen(NAME)) == 0);
}

CK_RV khsm_soft_pubkey(const khsm_soft_pubattrs_t *a, gnutls_pubkey_t *key_ptr)
{
	gnutls_pubkey_t key;
	if (gnutls_pubkey_init(&key) < 0) return CKR_HOST_MEMORY;
	int r = GNUTLS_E_INVALID_REQUEST;
	if (a->key_type == CKK_EC && a->ec_params && a->ec_point) {
		gnutls_datum_t params = { (unsigned char *)a->ec_params, (unsigned)a->ec_params_len };
		gnutls_datum_t point = { (unsigned char *)a->ec_point, (unsigned)a->ec_point_len };
		r = gnutls_pubkey_import_ecc_x962(key, &params, &point);
		if (r < 0 && a->ec_point_len < 128 && a->ec_point[0] == 0x04) {
			/* Some modules give the bare point: wrap it in an OCTET STRING. */
			unsigned char der[130] = { 0x04, (unsigned char)a->ec_point_len };
			memcpy(der + 2, a->ec_point, a->ec_point_len);
			gnutls_datum_t wrapped = { der, (unsigned)a->ec_point_len + 2 };
			r = gnutls_pubkey_import_ecc_x962(key, &params, &wrapped);
		}
	} else if (a->key_type == CKK_EC_EDWARDS && a->ec_params && a->ec_point &&
	           is_ed25519(a->ec_params, a->ec_params_len)) {
		size_t n = 0;
		const unsigned char *x = octet_content(a->ec_point, a->ec_point_len, &n);
		if (!x) {
			x = a->ec_point;
			n = a->ec_point_len;
		}
		gnutls_datum_t xd = { (unsigned char *)x, (unsigned)n };
		r = gnutls_pubkey_import_ecc_raw(key, GNUTLS_ECC_CURVE_ED25519, &xd, NULL);
	} else if (a->key_type == CKK_RSA && a->modulus && a->exponent) {
		gnutls_datum_t m = { (unsigned char *)a->modulus, (unsigned)a->modulus_len };
		gnutls_datum_t e = { (unsigned char *)a->exponent, (unsigned)a->exponent_len };
		r = gnutls_pubkey_import_rsa_raw(key, &m, &e);
	}
	if (r < 0) {
		gnutls_pubkey_deinit(key);
		return CKR_KEY_TYPE_INCONSISTENT;
	}
	*key_ptr = key;
	return CKR_OK;
}

static CK_RV verify_result(int r)
{
	if (r >= 0) return CKR_OK;
	if (r == GNUTLS_E_PK_SIG_VERIFY_FAILED) return CKR_SIGNATURE_INVALID;
	return CKR_SIGNATURE_INVALID;
}

CK_RV khsm_soft_verify(gnutls_pubkey_t key, CK_MECHANISM_TYPE mech, const unsigned char *data,
                       size_t data_len, const unsigned char *sig, size_t sig_len)
{
	unsigned bits = 0;
	int pk = gnutls_pubkey_get_pk_algorithm(key, &bits);
	CK_MECHANISM_TYPE raw = mech;
	gnutls_digest_algorithm_t dig = GNUTLS_DIG_UNKNOWN;
	bool hashed = khsm_soft_hashed(mech, &raw, &dig);
	gnutls_datum_t sd = { (unsigned char *)sig, (unsigned)sig_len };

	if (raw == CKM_EDDSA) {
		if (pk != GNUTLS_PK_EDDSA_ED25519) return CKR_KEY_TYPE_INCONSISTENT;
		if (sig_len != 64) return CKR_SIGNATURE_LEN_RANGE;
		gnutls_datum_t dd = { (unsigned char *)data, (unsigned)data_len };
		return verify_result(gnutls_pubkey_verify_data2(key, GNUTLS_SIGN_EDDSA_ED25519, 0, &dd, &sd));
	}
	if (raw == CKM_ECDSA) {
		if (pk != GNUTLS_PK_ECDSA) return CKR_KEY_TYPE_INCONSISTENT;
		if (!hashed) {
			for (size_t i = 0; i < N_HASHES; i++) {
				if (HASHES[i].len == data_len) dig = HASHES[i].dig;
			}
			if (dig == GNUTLS_DIG_UNKNOWN) return CKR_DATA_LEN_RANGE;
		}
		gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;
		if (gnutls_pubkey_export_ecc_raw(key, &curve, NULL, NULL) < 0) return CKR_KEY_TYPE_INCONSISTENT;
		size_t half = (size_t)gnutls_ecc_curve_get_size(curve);
		if (half == 0 || sig_len != 2 * half) return CKR_SIGNATURE_LEN_RANGE;
		gnutls_datum_t r = { (unsigned char *)sig, (unsigned)half };
		gnutls_datum_t s = { (unsigned char *)sig + half, (unsigned)half };
		gnutls_datum_t der = { NULL, 0 };
		if (gnutls_encode_rs_value(&der, &r, &s) < 0) return CKR_HOST_MEMORY;
		gnutls_datum_t hd = { (unsigned char *)data, (unsigned)data_len };
		int rc = gnutls_pubkey_verify_hash2(key, gnutls_pk_to_sign(GNUTLS_PK_ECDSA, dig),
		                                    GNUTLS_VERIFY_ALLOW_SIGN_WITH_SHA1, &hd, &der);
		gnutls_free(der.data);
		return verify_result(rc);
	}
	if (raw == CKM_RSA_PKCS) {
		if (pk != GNUTLS_PK_RSA) return CKR_KEY_TYPE_INCONSISTENT;
		if (sig_len != (bits + 7) / 8) return CKR_SIGNATURE_LEN_RANGE;
		const unsigned char *digest = data;
		size_t digest_len = data_len;
		if (!hashed) {
			/* Raw PKCS #1 v1.5: the data is a DigestInfo we know. */
			for (size_t i = 0; i < N_HASHES; i++) {
				const hash_t *h = &HASHES[i];
				if (data_len == h->prefix_len + h->len && memcmp(data, h->prefix, h->prefix_len) == 0) {
					dig = h->dig;
					digest = data + h->prefix_len;
					digest_len = h->len;
				}
			}
			if (dig == GNUTLS_DIG_UNKNOWN) return CKR_DATA_INVALID;
		}
		gnutls_datum_t hd = { (unsigned char *)digest, (unsigned)digest_len };
		return verify_result(gnutls_pubkey_verify_hash2(key, gnutls_pk_to_sign(GNUTLS_PK_RSA, dig),
		                                                GNUTLS_VERIFY_ALLOW_SIGN_WITH_SHA1, &hd, &sd));
	}
	return CKR_MECHANISM_INVALID;
}
