/* The card's keys against the KASP databases of knot.conf. */
#include <libdnssec/error.h>
#include <libdnssec/key.h>
#include <string.h>

#include "cardkey.h"
#include "error.h"
#include "internal.h"
#include "inventory.h"
#include "uri.h"
#include "zone.h"

_public_
void khsm_inventory_clear(khsm_inventory_t *inv)
{
	if (!inv) {
		return;
	}
	for (size_t i = 0; i < inv->key_count; i++) {
		free(inv->keys[i].label);
		free(inv->keys[i].id_hex);
		free(inv->keys[i].kasp_id);
	}
	for (size_t i = 0; i < inv->missing_count; i++) {
		free(inv->missing[i].zone);
		free(inv->missing[i].id_hex);
	}
	free(inv->keys);
	free(inv->missing);
	*inv = (khsm_inventory_t){ 0 };
}

/* One of the ids under which knot.conf names this card. */
static bool id_is_one_of(const char *id, const char *const *ids, size_t n_ids)
{
	for (size_t i = 0; i < n_ids; i++) {
		if (strcmp(id, ids[i]) == 0) return true;
	}
	return false;
}

/* Tag, algorithm and use of one private object. */
static int describe(const khsm_kasp_index_t *kasp, khsm_keystore_t *ks, const khsm_cardobjs_t *pub,
                    const khsm_cardobj_t *o, khsm_inventory_key_t *k)
{
	*k = (khsm_inventory_key_t){ .tag = -1 };
	if (o->label && !(k->label = strdup(o->label))) {
		return KHSM_ENOMEM;
	}
	if (o->id_len && khsm_hex_format(o->id, o->id_len, &k->id_hex) == KHSM_ENOMEM) {
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < pub->count; i++) {
		if (pub->items[i].id_len == o->id_len && o->id_len &&
		    memcmp(pub->items[i].id, o->id, o->id_len) == 0) {
			k->bits = pub->items[i].bits;
		}
	}
	if (!k->id_hex) {
		return KHSM_EOK;
	}
	size_t pos = 0;
	const khsm_kasp_entry_t *e = khsm_kasp_next(kasp, k->id_hex, &pos);
	if (e) {
		k->used = true;
		k->tag = e->key.tag;
		k->algorithm = e->key.algorithm;
		if (!(k->kasp_id = strdup(k->id_hex))) return KHSM_ENOMEM;
	} else if (khsm_cardkey_algorithm(ks, o->id, o->id_len, NULL, 0, &k->algorithm, &k->bits) == KHSM_EOK) {
		/* Not in KASP: the tag as a KSK (flags 257) would have it. */
		dnssec_key_t *key = NULL;
		char *keyid = NULL;
		if (khsm_cardkey_dnskey(ks, ".", k->id_hex, k->algorithm, true, &key) == KHSM_EOK) {
			k->tag = dnssec_key_get_keytag(key);
			/* an online standby: its DNSKEY in KASP public-only, under
			 * libdnssec's id of the key */
			pos = 0;
			if (dnssec_key_get_keyid(key, &keyid) == DNSSEC_EOK &&
			    (e = khsm_kasp_next(kasp, keyid, &pos)) && e->key.public_only) {
				k->used = true;
				k->kasp_id = keyid;
				keyid = NULL;
			}
		}
		free(keyid);
		dnssec_key_free(key);
	}
	khsm_err_clear();
	return KHSM_EOK;
}

static bool on_card(const khsm_cardobjs_t *priv, const char *id_hex)
{
	for (size_t p = 0; p < priv->count; p++) {
		_cleanup_free_ char *hex = NULL;
		if (priv->items[p].id_len &&
		    khsm_hex_format(priv->items[p].id, priv->items[p].id_len, &hex) == KHSM_EOK &&
		    strcmp(hex, id_hex) == 0) {
			return true;
		}
	}
	return false;
}

static int add_missing(khsm_inventory_t *inv, const khsm_kasp_entry_t *e)
{
	khsm_inventory_missing_t *grown = realloc(inv->missing, (inv->missing_count + 1) * sizeof(*grown));
	if (!grown) {
		return KHSM_ENOMEM;
	}
	inv->missing = grown;
	khsm_inventory_missing_t *m = &grown[inv->missing_count];
	*m = (khsm_inventory_missing_t){ .zone = strdup(e->zone), .id_hex = strdup(e->key.id),
	                                 .tag = e->key.tag };
	inv->missing_count++;
	return m->zone && m->id_hex ? KHSM_EOK : KHSM_ENOMEM;
}

/* KASP keys of zones on this keystore whose card object is gone. */
static int find_missing(const khsm_conf_t *conf, const khsm_kasp_index_t *kasp,
                        const khsm_cardobjs_t *priv, const char *const *ids, size_t n_ids,
                        khsm_inventory_t *inv)
{
	int r = KHSM_EOK;
	for (size_t i = 0; r == KHSM_EOK && i < khsm_conf_zone_count(conf); i++) {
		const khsm_conf_zone_t *zc = khsm_conf_zone_at(conf, i);
		khsm_zone_t z = { 0 };
		if (khsm_zone_resolve(conf, zc->domain, NULL, &z) != KHSM_EOK ||
		    !id_is_one_of(z.keystore->id, ids, n_ids)) {
			khsm_zone_clear(&z);
			khsm_err_clear();
			continue;
		}
		for (size_t k = 0; r == KHSM_EOK && k < kasp->count; k++) {
			const khsm_kasp_entry_t *e = &kasp->items[k];
			if (strcmp(e->zone, z.name) != 0 || e->key.public_only) continue;
			/* Knot >= 3.5 says where each key lives ("PKCS11/<id>"); only
			 * this card's count. */
			static const char PKCS11[] = "PKCS11/";
			const size_t plen = sizeof(PKCS11) - 1;
			if (e->key.keystore[0] && (strncmp(e->key.keystore, PKCS11, plen) != 0 ||
			                           !id_is_one_of(e->key.keystore + plen, ids, n_ids))) continue;
			if (!on_card(priv, e->key.id)) {
				r = add_missing(inv, e);
			}
		}
		khsm_zone_clear(&z);
	}
	return r;
}

_public_
int khsm_inventory_card(const khsm_conf_t *conf, const khsm_kasp_index_t *kasp, khsm_keystore_t *ks,
                        const khsm_pin_t *pin, bool force, const char *const *ids, size_t n_ids,
                        khsm_inventory_t *inv)
{
	if (!conf || !kasp || !ks || !ids || n_ids == 0 || !inv) {
		return KHSM_EINVAL;
	}
	khsm_inventory_t out = { 0 };
	/* Every key object on the token: search by type with the login. */
	khsm_cardobjs_t priv = { 0 }, pub = { 0 };
	int r = khsm_cardkey_find(ks, NULL, NULL, 0, KHSM_URI_TYPE_PRIVATE, pin, force, &priv);
	if (r == KHSM_EOK) r = khsm_cardkey_find(ks, NULL, NULL, 0, KHSM_URI_TYPE_PUBLIC, pin, force, &pub);
	if (r != KHSM_EOK) {
		goto fail;
	}
	if (priv.count && !(out.keys = calloc(priv.count, sizeof(*out.keys)))) {
		r = KHSM_ENOMEM;
		goto fail;
	}
	for (size_t i = 0; r == KHSM_EOK && i < priv.count; i++) {
		r = describe(kasp, ks, &pub, &priv.items[i], &out.keys[i]);
		out.key_count = i + 1;
	}
	if (r == KHSM_EOK) {
		r = find_missing(conf, kasp, &priv, ids, n_ids, &out);
	}
	if (r != KHSM_EOK) {
		goto fail;
	}
	khsm_cardobjs_clear(&priv);
	khsm_cardobjs_clear(&pub);
	*inv = out;
	return KHSM_EOK;
fail:
	khsm_cardobjs_clear(&priv);
	khsm_cardobjs_clear(&pub);
	khsm_inventory_clear(&out);
	return r;
}
