/* What the guard does in software, with GnuTLS, where a card lacks it:
 * digests, hashed signature mechanisms (hash here, raw CKM_ECDSA or
 * CKM_RSA_PKCS on the card), and signature verification with the public key
 * read from the card. No private key is ever handled here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <p11-kit/pkcs11.h>

/* Longest input given to the card for an emulated signature: DigestInfo of SHA-512. */
#define KHSM_SOFT_MAX_INPUT (19 + 64)

/** Digest of a CKM_SHA* digest mechanism, or GNUTLS_DIG_UNKNOWN. */
gnutls_digest_algorithm_t khsm_soft_digest(CK_MECHANISM_TYPE mech);

/** For a hashed signature mechanism (CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS, ...):
 *  the raw mechanism the card does and the digest done here. false for others. */
bool khsm_soft_hashed(CK_MECHANISM_TYPE mech, CK_MECHANISM_TYPE *raw_ptr,
                      gnutls_digest_algorithm_t *dig_ptr);

/** The card input for a hashed mechanism after hashing: the digest itself
 *  (ECDSA) or the DER DigestInfo with the digest (RSA PKCS #1 v1.5).
 *  out holds KHSM_SOFT_MAX_INPUT bytes. */
int khsm_soft_card_input(CK_MECHANISM_TYPE raw, gnutls_digest_algorithm_t dig,
                         const unsigned char *digest, size_t digest_len,
                         unsigned char *out, size_t *out_len);

/** Can the guard verify this mechanism in software? */
bool khsm_soft_can_verify(CK_MECHANISM_TYPE mech);

/* Public key attributes as read from the card. */
typedef struct {
	CK_KEY_TYPE key_type;          /* CKK_EC or CKK_RSA (CKK_EC_EDWARDS: Ed25519) */
	const unsigned char *ec_params; size_t ec_params_len;
	const unsigned char *ec_point;  size_t ec_point_len;
	const unsigned char *modulus;   size_t modulus_len;
	const unsigned char *exponent;  size_t exponent_len;
} khsm_soft_pubattrs_t;

/** Build a GnuTLS public key; CKR_KEY_TYPE_INCONSISTENT / CKR_KEY_FUNCTION_NOT_PERMITTED
 *  style results for what cannot be used. \param[out] key_ptr  gnutls_pubkey_deinit(). */
CK_RV khsm_soft_pubkey(const khsm_soft_pubattrs_t *a, gnutls_pubkey_t *key_ptr);

/** Verify sig over data (already hashed by the caller for hashed
 *  mechanisms: data is then the digest). CKR_OK, CKR_SIGNATURE_INVALID,
 *  CKR_SIGNATURE_LEN_RANGE, CKR_DATA_LEN_RANGE or CKR_MECHANISM_INVALID. */
CK_RV khsm_soft_verify(gnutls_pubkey_t key, CK_MECHANISM_TYPE mech, const unsigned char *data,
                       size_t data_len, const unsigned char *sig, size_t sig_len);
