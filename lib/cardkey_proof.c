/* A card key loaded through libdnssec exactly as knotd loads it, and the
 * self-test signature that proves it before Knot depends on it. */
#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/sign.h>
#include <libknot/dname.h>

#include "cardkey.h"
#include "cardkey_internal.h"
#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "retry.h"

/*
 * libdnssec reports a busy card as "key not found" (get_private) or as a
 * generic signing error, so these are classified here: a key that GnuTLS
 * lists by its id but libdnssec cannot load, and a signature that fails, are
 * taken as a card that did not answer and retried. Neither logs in (the
 * keystore keeps its login; after a removal khsm_keystore_relogin() logs in
 * again explicitly first) nor changes anything on the card; a key that
 * really cannot sign costs the retry budget before the error is shown.
 */

struct dnskey_args {
	khsm_keystore_t *ks;
	const char *zone;
	const char *id_hex;
	int algorithm;
	bool ksk;
	bool sign;              /* selftest: also sign and verify */
	dnssec_key_t *key;      /* result */
};

/* Is the private key with this hex id on the card, as GnuTLS sees it? */
static int private_key_listed(khsm_keystore_t *ks, const char *id_hex)
{
	_cleanup_free_ uint8_t *id = NULL;
	size_t id_len = 0;
	int r = khsm_hex_parse(id_hex, &id, &id_len);
	_cleanup_free_ char *url = NULL;
	if (r == KHSM_EOK) r = khsm_cardkey_object_url(ks, NULL, id, id_len, KHSM_URI_TYPE_PRIVATE, &url);
	gnutls_pkcs11_obj_t *objs = NULL;
	unsigned n = 0;
	if (r == KHSM_EOK) r = khsm_keystore_find(ks, url, true, NULL, false, &objs, &n);
	if (r == KHSM_EOK) {
		khsm_keystore_objs_free(objs, n);
		r = n > 0 ? KHSM_EOK : KHSM_ENOENT;
	}
	return r;
}

static int load_key(struct dnskey_args *a, dnssec_key_t **key_ptr)
{
	dnssec_key_t *key = NULL;
	knot_dname_t *dname = knot_dname_from_str_alloc(a->zone);
	int r = dname ? khsm_error_from_dnssec(dnssec_key_new(&key)) : KHSM_ENOMEM;
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_dname(key, dname));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_algorithm(key, a->algorithm));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_flags(key, a->ksk ? 257 : 256));
	free(dname);
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	/* The path knotd takes: keystore -> private key on the token. */
	int d = dnssec_keystore_get_private(khsm_keystore_dnssec(a->ks), a->id_hex, key);
	r = khsm_error_from_dnssec(d);
	if (r == KHSM_ENOENT) {
		int l = private_key_listed(a->ks, a->id_hex);
		r = l == KHSM_EOK ? KHSM_EBUSY : l;   /* listed, yet not loadable: the card did not answer */
	}
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		if (!khsm_err_last_detail() || r == KHSM_EBUSY) {
			khsm_err_detail("libdnssec cannot load key %s from the keystore as knotd would",
			                a->id_hex);
		}
		return r;
	}
	*key_ptr = key;
	return KHSM_EOK;
}

/* Sign a test message on the card; verify with a key rebuilt from the DNSKEY
 * rdata only: what resolvers do. */
static int sign_and_verify(const char *zone, const char *id_hex, dnssec_key_t *key)
{
	dnssec_key_t *verify = NULL;
	dnssec_sign_ctx_t *sctx = NULL, *vctx = NULL;
	dnssec_binary_t sig = { 0 }, rdata = { 0 };
	static const char MSG[] = "knot-hsm self-test: signed on the card, verified in software";
	const dnssec_binary_t msg = { .data = (uint8_t *)MSG, .size = sizeof(MSG) - 1 };

	int r = khsm_error_from_dnssec(dnssec_sign_new(&sctx, key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_init(sctx));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(sctx, &msg));
	if (r == KHSM_EOK) {
		int d = dnssec_sign_write(sctx, DNSSEC_SIGN_NORMAL, &sig);
		r = d == DNSSEC_SIGN_ERROR ? KHSM_EBUSY : khsm_error_from_dnssec(d);
	}
	if (r != KHSM_EOK) {
		khsm_err_detail("signing a test message with key %s on the token failed", id_hex);
		goto done;
	}
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
done:
	dnssec_sign_free(sctx);
	dnssec_sign_free(vctx);
	dnssec_binary_free(&sig);
	dnssec_key_free(verify);
	return r;
}

/* One try: a fresh key object each time (GnuTLS's session of a failed try
 * may be dead after a removal). */
static int dnskey_once(void *ctx)
{
	struct dnskey_args *a = ctx;
	dnssec_key_t *key = NULL;
	/* after a removal: one explicit login, never libdnssec's own */
	int r = khsm_keystore_relogin(a->ks, false);
	if (r == KHSM_EOK) r = load_key(a, &key);
	if (r == KHSM_EOK && a->sign) {
		r = sign_and_verify(a->zone, a->id_hex, key);
	}
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	a->key = key;
	return KHSM_EOK;
}

_public_
int khsm_cardkey_dnskey(khsm_keystore_t *ks, const char *zone, const char *id_hex,
                        int algorithm, bool ksk, dnssec_key_t **key_ptr)
{
	if (!ks || !zone || !id_hex || !key_ptr) {
		return KHSM_EINVAL;
	}
	struct dnskey_args a = { ks, zone, id_hex, algorithm, ksk, false, NULL };
	int r = khsm_card_op("loading the key through libdnssec", dnskey_once, &a);
	if (r == KHSM_EOK) {
		*key_ptr = a.key;
	}
	return r;
}

_public_
int khsm_cardkey_selftest(khsm_keystore_t *ks, const char *zone, const char *id_hex,
                          int algorithm, bool ksk, dnssec_key_t **key_ptr)
{
	if (!ks || !zone || !id_hex || !key_ptr) {
		return KHSM_EINVAL;
	}
	struct dnskey_args a = { ks, zone, id_hex, algorithm, ksk, true, NULL };
	int r = khsm_card_op("signing the self-test message", dnskey_once, &a);
	if (r == KHSM_EOK) {
		*key_ptr = a.key;
	}
	return r;
}
