/* EPP secDNS-1.1 (RFC 5910): <secDNS:create> with dsData and/or keyData, the
 * numbers and digests from dnskey.c, every value escaped. */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>

#include "dnskey.h"
#include "epp.h"
#include "error.h"
#include "internal.h"

static int xml_put(FILE *f, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '&':  fputs("&amp;", f); break;
		case '<':  fputs("&lt;", f); break;
		case '>':  fputs("&gt;", f); break;
		case '"':  fputs("&quot;", f); break;
		case '\'': fputs("&apos;", f); break;
		default:
			if ((*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') || *p == 0x7f) {
				khsm_err_detail("control character 0x%02x cannot be written in XML", *p);
				return KHSM_EINVAL;
			}
			fputc(*p, f);
		}
	}
	return KHSM_EOK;
}

_public_
int khsm_xml_escape(const char *text, char **xml_ptr)
{
	if (!text || !xml_ptr) {
		return KHSM_EINVAL;
	}
	khsm_membuf_t m;
	int r = khsm_membuf_open(&m);
	if (r != KHSM_EOK) {
		return r;
	}
	r = xml_put(m.f, text);
	return khsm_membuf_close(&m, r, xml_ptr);
}

/* <secDNS:NAME>value</secDNS:NAME> on its own line. */
static int xml_elem(FILE *f, int indent, const char *name, const char *value)
{
	fprintf(f, "%*s<secDNS:%s>", indent, "", name);
	int r = xml_put(f, value);
	fprintf(f, "</secDNS:%s>\n", name);
	return r;
}

static int xml_elem_uint(FILE *f, int indent, const char *name, unsigned value)
{
	char num[16];
	snprintf(num, sizeof(num), "%u", value);
	return xml_elem(f, indent, name, num);
}

static int epp_keydata(FILE *f, int indent, const dnssec_key_t *key, const khsm_dnskey_info_t *info)
{
	_cleanup_free_ char *b64 = NULL;
	int r = khsm_dnskey_pubkey_base64(key, &b64);
	if (r != KHSM_EOK) {
		return r;
	}
	fprintf(f, "%*s<secDNS:keyData>\n", indent, "");
	r = xml_elem_uint(f, indent + 2, "flags", info->flags);
	if (r == KHSM_EOK) r = xml_elem_uint(f, indent + 2, "protocol", info->protocol);
	if (r == KHSM_EOK) r = xml_elem_uint(f, indent + 2, "alg", info->algorithm);
	if (r == KHSM_EOK) r = xml_elem(f, indent + 2, "pubKey", b64);
	fprintf(f, "%*s</secDNS:keyData>\n", indent, "");
	return r;
}

static int epp_dsdata(FILE *f, int indent, const dnssec_key_t *key, const khsm_dnskey_info_t *info,
                      uint8_t digest_type, bool keydata)
{
	_cleanup_free_ char *hex = NULL;
	int r = khsm_ds_digest(key, digest_type, &hex);
	if (r != KHSM_EOK) {
		return r;
	}
	for (char *p = hex; *p; p++) {
		*p = toupper((unsigned char)*p);
	}
	fprintf(f, "%*s<secDNS:dsData>\n", indent, "");
	r = xml_elem_uint(f, indent + 2, "keyTag", info->key_tag);
	if (r == KHSM_EOK) r = xml_elem_uint(f, indent + 2, "alg", info->algorithm);
	if (r == KHSM_EOK) r = xml_elem_uint(f, indent + 2, "digestType", digest_type);
	if (r == KHSM_EOK) r = xml_elem(f, indent + 2, "digest", hex);
	if (r == KHSM_EOK && keydata) r = epp_keydata(f, indent + 2, key, info);
	fprintf(f, "%*s</secDNS:dsData>\n", indent, "");
	return r;
}

_public_
int khsm_epp_secdns_create(const dnssec_key_t *const *keys, size_t count,
                           khsm_digest_t digest, khsm_epp_mode_t mode, char **xml_ptr)
{
	if (!keys || count == 0 || !xml_ptr) {
		return KHSM_EINVAL;
	}
	if (mode != KHSM_EPP_DS && mode != KHSM_EPP_DS_KEYDATA && mode != KHSM_EPP_KEYDATA) {
		return KHSM_EINVAL;
	}
	uint8_t types[2];
	size_t ntypes = khsm_digest_types(digest, types);
	if (ntypes == 0 && mode != KHSM_EPP_KEYDATA) {
		return KHSM_EINVAL;
	}

	khsm_membuf_t m;
	int r = khsm_membuf_open(&m);
	if (r != KHSM_EOK) {
		return r;
	}
	fputs("<secDNS:create xmlns:secDNS=\"urn:ietf:params:xml:ns:secDNS-1.1\">\n", m.f);
	for (size_t k = 0; k < count && r == KHSM_EOK; k++) {
		khsm_dnskey_info_t info;
		r = keys[k] ? khsm_dnskey_info(keys[k], &info) : KHSM_EINVAL;
		if (r != KHSM_EOK) {
			break;
		}
		if (mode == KHSM_EPP_KEYDATA) {
			r = epp_keydata(m.f, 2, keys[k], &info);
			continue;
		}
		for (size_t i = 0; i < ntypes && r == KHSM_EOK; i++) {
			r = epp_dsdata(m.f, 2, keys[k], &info, types[i], mode == KHSM_EPP_DS_KEYDATA);
		}
	}
	fputs("</secDNS:create>\n", m.f);
	return khsm_membuf_close(&m, r, xml_ptr);
}

/* <secDNS:NAME> with one dsData per key and digest type, indented 2. */
static int epp_ds_list(FILE *f, const char *name, const dnssec_key_t *const *keys, size_t count,
                       const uint8_t *types, size_t ntypes)
{
	if (count == 0) {
		return KHSM_EOK;
	}
	fprintf(f, "  <secDNS:%s>\n", name);
	int r = KHSM_EOK;
	for (size_t k = 0; k < count && r == KHSM_EOK; k++) {
		khsm_dnskey_info_t info;
		r = keys[k] ? khsm_dnskey_info(keys[k], &info) : KHSM_EINVAL;
		for (size_t i = 0; i < ntypes && r == KHSM_EOK; i++) {
			r = epp_dsdata(f, 4, keys[k], &info, types[i], false);
		}
	}
	fprintf(f, "  </secDNS:%s>\n", name);
	return r;
}

_public_
int khsm_epp_secdns_update(const dnssec_key_t *const *add, size_t nadd,
                           const dnssec_key_t *const *rem, size_t nrem, khsm_digest_t digest,
                           char **xml_ptr)
{
	if ((!add && nadd) || (!rem && nrem) || nadd + nrem == 0 || !xml_ptr) {
		return KHSM_EINVAL;
	}
	uint8_t types[2];
	size_t ntypes = khsm_digest_types(digest, types);
	if (ntypes == 0) {
		return KHSM_EINVAL;
	}
	khsm_membuf_t m;
	int r = khsm_membuf_open(&m);
	if (r != KHSM_EOK) {
		return r;
	}
	/* RFC 5910 updateType: rem, then add. */
	fputs("<secDNS:update xmlns:secDNS=\"urn:ietf:params:xml:ns:secDNS-1.1\">\n", m.f);
	r = epp_ds_list(m.f, "rem", rem, nrem, types, ntypes);
	if (r == KHSM_EOK) r = epp_ds_list(m.f, "add", add, nadd, types, ntypes);
	fputs("</secDNS:update>\n", m.f);
	return khsm_membuf_close(&m, r, xml_ptr);
}
