/* Deleting an unused card key from a zone's KASP and from the card. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cardkey.h"
#include "error.h"
#include "internal.h"
#include "kasp.h"
#include "keydelete.h"
#include "knot.h"
#include "uri.h"

static const char *conf_opt(const khsm_key_delete_t *req) { return req->conf_arg ? " -c " : ""; }
static const char *conf_val(const khsm_key_delete_t *req) { return req->conf_arg ? req->conf_arg : ""; }

/* Whether anything depends on the key: its state in zone, other zones. */
static int check_unused(const khsm_kasp_index_t *kasp, const khsm_kasp_entry_t *e,
                        const khsm_key_delete_t *req, int64_t now)
{
	const khsm_kasp_key_t *k = &e->key;
	const char *role = k->ksk ? "KSK" : "ZSK";
	switch (khsm_kasp_key_state(k, now)) {
	case KHSM_KEY_STATE_ACTIVE:
	case KHSM_KEY_STATE_RETIRE_ACTIVE:
		khsm_err_detail("key %s (tag %u) is the signing %s of %s; replace it first with "
		                "'knot-hsm%s%s %s rollover' (delete-old=yes deletes it at the end)",
		                k->id, k->tag, role, e->zone, conf_opt(req), conf_val(req), e->zone);
		return KHSM_EBUSY;
	case KHSM_KEY_STATE_PUBLISHED:
	case KHSM_KEY_STATE_READY:
	case KHSM_KEY_STATE_POST_ACTIVE:
	case KHSM_KEY_STATE_RETIRED:
	case KHSM_KEY_STATE_REVOKED:
		khsm_err_detail("key %s (tag %u) is published in the DNSKEY set of %s; resolvers may "
		                "still need it: wait until it is removed (use rollover to retire a "
		                "KSK, or set its remove timer with keymgr)", k->id, k->tag, e->zone);
		return KHSM_EBUSY;
	case KHSM_KEY_STATE_NONE:
	case KHSM_KEY_STATE_PRE_ACTIVE:
	case KHSM_KEY_STATE_REMOVED:
		break;
	}
	size_t pos = 0;
	const khsm_kasp_entry_t *other;
	while ((other = khsm_kasp_next(kasp, k->id, &pos))) {
		if (strcmp(other->zone, e->zone) != 0) {
			khsm_err_detail("key %s (tag %u) is shared with %s; delete it there first with "
			                "'knot-hsm%s%s %s delete id=%s'", k->id, k->tag, other->zone,
			                conf_opt(req), conf_val(req), other->zone, k->id);
			return KHSM_EBUSY;
		}
	}
	return KHSM_EOK;
}

static const khsm_kasp_entry_t *find_entry(const khsm_kasp_index_t *kasp, const khsm_zone_t *zone,
                                           const char *id_hex, const char *how)
{
	const khsm_kasp_entry_t *e = khsm_kasp_find(kasp, zone->name, id_hex);
	if (!e) {
		khsm_err_detail("%s has no key %s in its KASP; 'knot-hsm keys' lists the card's keys and "
		                "their zones", zone->name, how);
	}
	return e;
}

/* The CKA_ID of the one private key labelled label. \param[out] hex_ptr */
static int id_of_label(khsm_keystore_t *ks, const khsm_pin_t *pin, const khsm_key_delete_t *req,
                       char **hex_ptr)
{
	khsm_cardobjs_t objs = { 0 };
	int r = khsm_cardkey_find(ks, req->label, NULL, 0, KHSM_URI_TYPE_PRIVATE, pin, req->force, &objs);
	if (r == KHSM_EOK && objs.count == 0) {
		khsm_err_detail("no private key labelled '%s' on the card", req->label);
		r = KHSM_ENOENT;
	} else if (r == KHSM_EOK && objs.count > 1) {
		khsm_err_detail("several keys are labelled '%s'; name one with id=HEX", req->label);
		r = KHSM_EAMBIGUOUS;
	} else if (r == KHSM_EOK && !objs.items[0].id_len) {
		khsm_err_detail("the key labelled '%s' has no CKA_ID: no zone can use it", req->label);
		r = KHSM_ENOENT;
	}
	if (r == KHSM_EOK) {
		r = khsm_hex_format(objs.items[0].id, objs.items[0].id_len, hex_ptr);
	}
	khsm_cardobjs_clear(&objs);
	return r;
}

_public_
int khsm_zone_key_delete(khsm_conf_t *conf, const khsm_zone_t *zone, const khsm_key_delete_t *req,
                         khsm_key_deleted_t *out)
{
	if (!conf || !zone || !req || !req->open || !out || !req->id_hex == !req->label) {
		return KHSM_EINVAL;
	}
	khsm_kasp_index_t kasp = { 0 };
	khsm_pin_t *pin = NULL;
	khsm_keystore_t *ks = NULL;
	uint8_t *id = NULL;
	size_t id_len = 0;
	char *hex = NULL;
	const khsm_kasp_entry_t *e = NULL;
	int64_t now = (int64_t)time(NULL);

	int r = khsm_kasp_index(conf, &kasp);
	if (r != KHSM_EOK) {
		goto fail;
	}
	/* By id, everything is decided before the card is opened. */
	if (req->id_hex) {
		if ((r = khsm_hex_parse(req->id_hex, &id, &id_len)) != KHSM_EOK ||
		    (r = khsm_hex_format(id, id_len, &hex)) != KHSM_EOK) {
			goto fail;
		}
		if (!(e = find_entry(&kasp, zone, hex, hex))) {
			r = KHSM_ENOENT;
			goto fail;
		}
		if ((r = check_unused(&kasp, e, req, now)) != KHSM_EOK) {
			goto fail;
		}
	}
	if ((r = req->open(req->open_ctx, zone->keystore->config, &pin, &ks)) != KHSM_EOK) {
		goto fail;
	}
	if (req->label) {
		char how[400];
		if ((r = id_of_label(ks, pin, req, &hex)) != KHSM_EOK ||
		    (r = khsm_hex_parse(hex, &id, &id_len)) != KHSM_EOK) {
			goto fail;
		}
		snprintf(how, sizeof(how), "labelled '%s' (id %s)", req->label, hex);
		if (!(e = find_entry(&kasp, zone, hex, how))) {
			r = KHSM_ENOENT;
			goto fail;
		}
		if ((r = check_unused(&kasp, e, req, now)) != KHSM_EOK) {
			goto fail;
		}
	}
	bool missed = false;
	if ((r = khsm_keymgr_delete(khsm_conf_path(conf), zone->name, e->key.id, &missed)) != KHSM_EOK) {
		goto fail;
	}
	/* keymgr removes the card key when it can open the keystore; whatever
	 * is left goes through this process's session. */
	r = khsm_cardkey_delete(ks, id, id_len);
	if (r == KHSM_ENOENT) {
		out->card_missed = missed;   /* on no card here (a lost one) */
		r = KHSM_EOK;
	} else if (r != KHSM_EOK) {
		khsm_err_prefix("key %s left the KASP of %s but not the card: ", e->key.id, zone->name);
		khsm_err_suffix("; delete it with pkcs11-tool --delete-object --id %s", hex);
		goto fail;
	}
	snprintf(out->id_hex, sizeof(out->id_hex), "%s", e->key.id);
	out->tag = e->key.tag;
	out->ksk = e->key.ksk;
fail:
	free(hex);
	free(id);
	khsm_keystore_close(ks);
	khsm_pin_free(pin);
	khsm_kasp_index_clear(&kasp);
	return r;
}
