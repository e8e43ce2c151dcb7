/* Key objects on the card through GnuTLS. */
#include <gnutls/abstract.h>

#include "cardkey.h"
#include "error.h"
#include "internal.h"

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
				o->pk_algorithm = gnutls_pubkey_get_pk_algorithm(pub, &o->bits);
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
	if (!ks || !objs || (!label && !id)) {
		return KHSM_EINVAL;
	}
	khsm_uri_t token = { 0 };
	int r = khsm_uri_parse(khsm_keystore_uri(ks), &token);
	if (r != KHSM_EOK) {
		return r;
	}
	/* The search URI names the token and the object; the PIN never goes in it. */
	khsm_uri_t want = { .token = token.token, .manufacturer = token.manufacturer,
	                    .model = token.model, .serial = token.serial,
	                    .object = (char *)label, .id = (uint8_t *)id, .id_len = id_len,
	                    .type = type };
	_cleanup_free_ char *url = NULL;
	r = khsm_uri_format(&want, &url);
	khsm_uri_clear(&token);
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
