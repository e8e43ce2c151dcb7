/* Which zones' KASP use which keys: keymgr list for every zone of knot.conf. */
#pragma once

#include <stddef.h>

#include "knot.h"
#include "knotconf.h"

typedef struct {
	char *zone;
	khsm_kasp_key_t key;
} khsm_kasp_entry_t;

typedef struct {
	khsm_kasp_entry_t *items;
	size_t count;
} khsm_kasp_index_t;

/** List the keys of every zone in knot.conf (keymgr only, no card access).
 *  \param[out] idx  free with khsm_kasp_index_clear(). */
int khsm_kasp_index(const khsm_conf_t *conf, khsm_kasp_index_t *idx);

/** Move the entries of from into idx (from is left empty). */
int khsm_kasp_index_merge(khsm_kasp_index_t *idx, khsm_kasp_index_t *from);

/** Free an index. */
void khsm_kasp_index_clear(khsm_kasp_index_t *idx);

/** Entry i-th (from *pos on) whose key id equals id_hex, or NULL; advances *pos. */
const khsm_kasp_entry_t *khsm_kasp_next(const khsm_kasp_index_t *idx, const char *id_hex,
                                        size_t *pos);

/** The entry of zone for id_hex, or NULL. */
const khsm_kasp_entry_t *khsm_kasp_find(const khsm_kasp_index_t *idx, const char *zone,
                                        const char *id_hex);
