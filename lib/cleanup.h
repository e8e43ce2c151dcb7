/* Cleanup attributes, all of them: each frees its variable when it leaves
 * scope; set the variable to NULL to hand it over. Included by internal.h
 * (the library) and keymgr-ext/cleanup.h (the CLI). */
#pragma once

#include <libdnssec/binary.h>
#include <libdnssec/key.h>
#include <p11-kit/uri.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "pin.h"

static inline void khsm__free_ptr(void *p) { free(*(void **)p); }
static inline void khsm__fclose_ptr(FILE **f) { if (*f) fclose(*f); }
static inline void khsm__close_fd(int *fd) { if (*fd >= 0) close(*fd); }
static inline void khsm__pin_free_ptr(khsm_pin_t **p) { khsm_pin_free(*p); }
static inline void khsm__uri_free_ptr(P11KitUri **u) { if (*u) p11_kit_uri_free(*u); }
static inline void khsm__binary_free(dnssec_binary_t *b) { dnssec_binary_free(b); }
static inline void khsm__key_free_ptr(dnssec_key_t **k) { if (*k) dnssec_key_free(*k); }

#define _cleanup_free_    __attribute__((cleanup(khsm__free_ptr)))
#define _cleanup_fclose_  __attribute__((cleanup(khsm__fclose_ptr)))
#define _cleanup_close_   __attribute__((cleanup(khsm__close_fd)))
#define _cleanup_pin_     __attribute__((cleanup(khsm__pin_free_ptr)))
#define _cleanup_uri_     __attribute__((cleanup(khsm__uri_free_ptr)))
#define _cleanup_binary_  __attribute__((cleanup(khsm__binary_free)))
#define _cleanup_key_     __attribute__((cleanup(khsm__key_free_ptr)))
/* knot_dname_t * from libknot: plain malloc()ed memory. */
#define _cleanup_dname_   _cleanup_free_
