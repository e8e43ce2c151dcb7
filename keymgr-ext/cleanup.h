/* Cleanup attributes of the CLI: the library's (lib/cleanup.h) and those for
 * the objects only the CLI frees by scope. Each frees its variable when it
 * leaves scope; set the variable to NULL to hand it over. */
#pragma once

#include <stdlib.h>

#include "lib/cleanup.h"
#include "lib/kasp.h"
#include "lib/keystore.h"
#include "lib/knotconf.h"
#include "lib/token.h"
#include "lib/zone.h"

static inline void cli__conf_free_ptr(khsm_conf_t **c) { khsm_conf_free(*c); }
static inline void cli__keystore_close_ptr(khsm_keystore_t **k) { khsm_keystore_close(*k); }
static inline void cli__tokens_free_ptr(khsm_tokens_t **t) { khsm_tokens_free(*t); }
static inline void cli__kasp_clear_ptr(khsm_kasp_index_t *i) { khsm_kasp_index_clear(i); }
static inline void cli__zone_clear_ptr(khsm_zone_t *z) { khsm_zone_clear(z); }

#define _cleanup_conf_     __attribute__((cleanup(cli__conf_free_ptr)))
#define _cleanup_keystore_ __attribute__((cleanup(cli__keystore_close_ptr)))
#define _cleanup_tokens_   __attribute__((cleanup(cli__tokens_free_ptr)))
#define _cleanup_kasp_     __attribute__((cleanup(cli__kasp_clear_ptr)))
#define _cleanup_zone_     __attribute__((cleanup(cli__zone_clear_ptr)))
