/* Keys on the card, seen through GnuTLS PKCS#11: lookup by label or CKA_ID. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

#include "keystore.h"
#include "uri.h"

typedef struct {
	char *label;
	uint8_t *id;
	size_t id_len;
	khsm_uri_type_t type;   /* private or public */
	int pk_algorithm;       /* gnutls_pk_algorithm_t */
	unsigned bits;
} khsm_cardobj_t;

typedef struct {
	khsm_cardobj_t *items;
	size_t count;
} khsm_cardobjs_t;

/** Find key objects on the keystore's token by label and/or id (neither:
 *  all key objects of that type). Public
 *  objects are searched without login; a login (one try, PIN rules of
 *  khsm_keystore_login) happens only when private objects are wanted, or
 *  when nothing public matched and the token hides objects behind a login.
 *  \param[out] objs  free with khsm_cardobjs_clear(). */
int khsm_cardkey_find(khsm_keystore_t *ks, const char *label, const uint8_t *id, size_t id_len,
                      khsm_uri_type_t type, const khsm_pin_t *pin, bool force,
                      khsm_cardobjs_t *objs);

/** Free found objects. */
void khsm_cardobjs_clear(khsm_cardobjs_t *objs);

/** Whether the card of a keystore config holds the public key object with
 *  CKA_ID id_hex, looked for without login. \param[out] present_ptr */
int khsm_cardkey_present(const char *keystore_config, const char *id_hex, bool force,
                         bool *present_ptr);

/** DNSSEC algorithm of a public key object on the card (RSA gives 8 unless
 *  prefer is 10). \param[out] algorithm_ptr, bits_ptr */
int khsm_cardkey_algorithm(khsm_keystore_t *ks, const uint8_t *id, size_t id_len,
                           const char *label, int prefer, int *algorithm_ptr, unsigned *bits_ptr);

/** Generate a key pair on the card: private key sensitive, never
 *  extractable, private, sign only; public key verify. Asks for a random
 *  20-byte CKA_ID and reads back the one the token really set.
 *  \param[out] id_ptr, id_len_ptr  free *id_ptr with free(). */
int khsm_cardkey_generate(khsm_keystore_t *ks, int algorithm, unsigned bits, const char *label,
                          uint8_t **id_ptr, size_t *id_len_ptr);

/** Delete both objects of a key pair (by CKA_ID) from the card. */
int khsm_cardkey_delete(khsm_keystore_t *ks, const uint8_t *id, size_t id_len);

/** The CKA_ID of the public key object (labelled label, or any when NULL)
 *  whose libdnssec key id (the SHA-1 key id of the public key, what keymgr
 *  import-pub files a DNSKEY under) is keyid_hex, found without login.
 *  KHSM_ENOENT with a detail when none has it. \param[out] id_ptr,
 *  id_len_ptr  free *id_ptr with free(). */
int khsm_cardkey_find_keyid(khsm_keystore_t *ks, const char *label, const char *keyid_hex, bool force,
                            uint8_t **id_ptr, size_t *id_len_ptr);

/** Give a key pair that has no CKA_ID one, on both objects: the SHA-1 of its
 *  public key (as OpenSC does), found by label. \param[out] id_ptr, id_len_ptr */
int khsm_cardkey_fix_id(khsm_keystore_t *ks, const char *label, uint8_t **id_ptr,
                        size_t *id_len_ptr);

/** Load a card key through libdnssec's keystore as knotd does (login, no
 *  signature): the DNSKEY, key tag and DS are then available.
 *  \param[out] key_ptr  free with dnssec_key_free(). */
int khsm_cardkey_dnskey(khsm_keystore_t *ks, const char *zone, const char *id_hex,
                        int algorithm, bool ksk, dnssec_key_t **key_ptr);

/** Prove the key works the way knotd will use it: load it through libdnssec's
 *  keystore, sign a test message, verify the signature in software from the
 *  DNSKEY alone. \param[out] key_ptr  the key (public part usable), free with
 *  dnssec_key_free(). */
int khsm_cardkey_selftest(khsm_keystore_t *ks, const char *zone, const char *id_hex,
                          int algorithm, bool ksk, dnssec_key_t **key_ptr);
