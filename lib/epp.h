/* EPP secDNS-1.1 (RFC 5910) fragments for registries, built from the
 * DNSKEY and DS of dnskey.h and escaped for XML. */
#pragma once

#include <stddef.h>

#include <libdnssec/key.h>

#include "dnskey.h"

/* EPP secDNS-1.1 variants. */
typedef enum {
	KHSM_EPP_DS = 0,     /* <secDNS:dsData> only */
	KHSM_EPP_DS_KEYDATA, /* <secDNS:dsData> with the <secDNS:keyData> of its key inside */
	KHSM_EPP_KEYDATA,    /* <secDNS:keyData> only, for registries that take keys */
} khsm_epp_mode_t;

/** RFC 5910 secDNS-1.1 <secDNS:create> fragment for count keys: per key and per
 *  selected digest one <secDNS:dsData> (digest in UPPER-case hex, the canonical
 *  xsd:hexBinary form and the form of the RFC 5910 examples), with <secDNS:keyData>
 *  inside for KHSM_EPP_DS_KEYDATA; or one <secDNS:keyData> per key for
 *  KHSM_EPP_KEYDATA (digest ignored). Two-space indent, every line ends in "\n".
 *  \param[out] xml_ptr  free with free(). */
int khsm_epp_secdns_create(const dnssec_key_t *const *keys, size_t count,
                           khsm_digest_t digest, khsm_epp_mode_t mode, char **xml_ptr);

/** RFC 5910 secDNS-1.1 <secDNS:update> fragment: <secDNS:rem> with a
 *  <secDNS:dsData> per key of rem and selected digest, then <secDNS:add>
 *  likewise for add (an empty list leaves its element out; both empty is
 *  KHSM_EINVAL). Layout as khsm_epp_secdns_create(). \param[out] xml_ptr
 *  free with free(). */
int khsm_epp_secdns_update(const dnssec_key_t *const *add, size_t nadd,
                           const dnssec_key_t *const *rem, size_t nrem, khsm_digest_t digest,
                           char **xml_ptr);

/** Escape a string for XML text or attribute values (& < > " ').
 *  Rejects control characters XML 1.0 cannot carry.
 *  \param[out] xml_ptr  free with free(). */
int khsm_xml_escape(const char *text, char **xml_ptr);
