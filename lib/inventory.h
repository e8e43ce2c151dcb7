/* What is on a card against what the KASP databases expect: every private
 * key object with its tag, algorithm and use, and the KASP keys of the card's
 * zones whose object is gone. Read only; `knot-hsm keys` prints it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kasp.h"
#include "keystore.h"
#include "knotconf.h"
#include "pin.h"

/* A private key object on the card. */
typedef struct {
	char *label;
	char *id_hex;         /* CKA_ID in hex; NULL when the object has none */
	int algorithm;        /* DNSSEC number; 0 when unknown */
	unsigned bits;        /* of its public object; 0 when unknown */
	int tag;              /* KASP's, else as a KSK would have it; -1 when unknown */
	bool used;            /* some zone's KASP has it */
	char *kasp_id;        /* the id KASP knows it by: id_hex, or for an online standby
	                         (standby.h) its public-only entry's; NULL when unused */
} khsm_inventory_key_t;

/* A KASP key of a zone on this card whose object is not on the card. */
typedef struct {
	char *zone;
	char *id_hex;
	uint16_t tag;
} khsm_inventory_missing_t;

typedef struct {
	khsm_inventory_key_t *keys;
	size_t key_count;
	khsm_inventory_missing_t *missing;
	size_t missing_count;
} khsm_inventory_t;

/** Take the inventory of the card behind ks (logged in; pin and force as for
 *  khsm_cardkey_find()). ids are every knot.conf keystore id naming this card
 *  (online mode's policy adds a second one); kasp is every zone's keys.
 *  \param[out] inv  free with khsm_inventory_clear(). */
int khsm_inventory_card(const khsm_conf_t *conf, const khsm_kasp_index_t *kasp, khsm_keystore_t *ks,
                        const khsm_pin_t *pin, bool force, const char *const *ids, size_t n_ids,
                        khsm_inventory_t *inv);

/** Free an inventory. */
void khsm_inventory_clear(khsm_inventory_t *inv);
