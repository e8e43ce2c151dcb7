/* PKCS#11 URI handling on top of p11-kit. */
#include <ctype.h>
#include <p11-kit/uri.h>
#include <stdbool.h>

#include "error.h"
#include "cleanup.h"
#include "internal.h"
#include "uri.h"

/* PKCS#11 text fields are fixed size, space padded, not NUL terminated. */
static int set_field(unsigned char *field, size_t size, const char *value)
{
	/* p11-kit leaves out fields that are all zero; set ones are space padded. */
	if (!value || !*value) {
		memset(field, 0, size);
		return KHSM_EOK;
	}
	memset(field, ' ', size);
	size_t len = strlen(value);
	if (len > size) {
		khsm_err_detail("'%s' is longer than the %zu bytes PKCS #11 allows", value, size);
		return KHSM_ERANGE;
	}
	memcpy(field, value, len);
	return KHSM_EOK;
}

_public_
void khsm_label_unpad(const unsigned char *field, size_t len, char *out)
{
	while (len > 0 && (field[len - 1] == ' ' || field[len - 1] == '\0')) {
		len--;
	}
	memcpy(out, field, len);
	out[len] = '\0';
}

static char *unpad_dup(const unsigned char *field, size_t len)
{
	char buf[len + 1];
	khsm_label_unpad(field, len, buf);
	return buf[0] ? strdup(buf) : NULL;
}

static int token_attrs(P11KitUri *uri, const khsm_uri_t *a)
{
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
	int r = set_field(ti->label, sizeof(ti->label), a->token);
	if (r == KHSM_EOK) r = set_field(ti->manufacturerID, sizeof(ti->manufacturerID), a->manufacturer);
	if (r == KHSM_EOK) r = set_field(ti->model, sizeof(ti->model), a->model);
	if (r == KHSM_EOK) r = set_field(ti->serialNumber, sizeof(ti->serialNumber), a->serial);
	return r;
}

static int object_attrs(P11KitUri *uri, const khsm_uri_t *a)
{
	if (a->object) {
		CK_ATTRIBUTE attr = { CKA_LABEL, a->object, strlen(a->object) };
		if (p11_kit_uri_set_attribute(uri, &attr) != P11_KIT_URI_OK) {
			return KHSM_ENOMEM;
		}
	}
	if (a->id && a->id_len > 0) {
		CK_ATTRIBUTE attr = { CKA_ID, a->id, a->id_len };
		if (p11_kit_uri_set_attribute(uri, &attr) != P11_KIT_URI_OK) {
			return KHSM_ENOMEM;
		}
	}
	if (a->type != KHSM_URI_TYPE_ANY) {
		CK_OBJECT_CLASS cls = a->type == KHSM_URI_TYPE_PRIVATE ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY;
		CK_ATTRIBUTE attr = { CKA_CLASS, &cls, sizeof(cls) };
		if (p11_kit_uri_set_attribute(uri, &attr) != P11_KIT_URI_OK) {
			return KHSM_ENOMEM;
		}
	}
	return KHSM_EOK;
}

_public_
int khsm_uri_format(const khsm_uri_t *attrs, char **uri_ptr)
{
	if (!attrs || !uri_ptr) {
		return KHSM_EINVAL;
	}

	_cleanup_uri_ P11KitUri *uri = p11_kit_uri_new();
	if (!uri) {
		return KHSM_ENOMEM;
	}
	int r = token_attrs(uri, attrs);
	if (r != KHSM_EOK) {
		return r;
	}
	r = object_attrs(uri, attrs);
	if (r != KHSM_EOK) {
		return r;
	}

	bool object = attrs->object || attrs->id_len > 0 || attrs->type != KHSM_URI_TYPE_ANY;
	char *out = NULL;
	if (p11_kit_uri_format(uri, object ? P11_KIT_URI_FOR_OBJECT_ON_TOKEN
	                                   : P11_KIT_URI_FOR_TOKEN, &out) != P11_KIT_URI_OK) {
		return KHSM_ENOMEM;
	}
	*uri_ptr = out;
	return KHSM_EOK;
}

_public_
void khsm_uri_clear(khsm_uri_t *a)
{
	if (!a) {
		return;
	}
	free(a->token);
	free(a->manufacturer);
	free(a->model);
	free(a->serial);
	free(a->object);
	free(a->id);
	free(a->pin_source);
	if (a->pin_value) {
		explicit_bzero(a->pin_value, strlen(a->pin_value));
		free(a->pin_value);
	}
	free(a->module_name);
	free(a->module_path);
	memset(a, 0, sizeof(*a));
}

static int dup_opt(const char *in, char **out)
{
	*out = NULL;
	if (in && !(*out = strdup(in))) {
		return KHSM_ENOMEM;
	}
	return KHSM_EOK;
}

_public_
int khsm_uri_parse(const char *text, khsm_uri_t *attrs)
{
	if (!text || !attrs) {
		return KHSM_EINVAL;
	}

	_cleanup_uri_ P11KitUri *uri = p11_kit_uri_new();
	if (!uri) {
		return KHSM_ENOMEM;
	}
	int pr = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri);
	if (pr != P11_KIT_URI_OK) {
		khsm_err_detail("'%s' is not a PKCS #11 URI: %s", text, p11_kit_uri_message(pr));
		return KHSM_EPARSE;
	}

	khsm_uri_t a = { 0 };
	int r = KHSM_ENOMEM;
	CK_TOKEN_INFO *ti = p11_kit_uri_get_token_info(uri);
	a.token = unpad_dup(ti->label, sizeof(ti->label));
	a.manufacturer = unpad_dup(ti->manufacturerID, sizeof(ti->manufacturerID));
	a.model = unpad_dup(ti->model, sizeof(ti->model));
	a.serial = unpad_dup(ti->serialNumber, sizeof(ti->serialNumber));

	CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(uri, CKA_LABEL);
	if (label) {
		a.object = strndup(label->pValue ? label->pValue : "", label->ulValueLen);
		if (!a.object) goto fail;
	}
	CK_ATTRIBUTE *id = p11_kit_uri_get_attribute(uri, CKA_ID);
	if (id && id->ulValueLen > 0) {
		a.id = malloc(id->ulValueLen);
		if (!a.id) goto fail;
		memcpy(a.id, id->pValue, id->ulValueLen);
		a.id_len = id->ulValueLen;
	}
	CK_ATTRIBUTE *cls = p11_kit_uri_get_attribute(uri, CKA_CLASS);
	if (cls && cls->ulValueLen == sizeof(CK_OBJECT_CLASS)) {
		CK_OBJECT_CLASS c = *(CK_OBJECT_CLASS *)cls->pValue;
		a.type = c == CKO_PRIVATE_KEY ? KHSM_URI_TYPE_PRIVATE
		       : c == CKO_PUBLIC_KEY ? KHSM_URI_TYPE_PUBLIC : KHSM_URI_TYPE_ANY;
	}
	if (dup_opt(p11_kit_uri_get_pin_source(uri), &a.pin_source) != KHSM_EOK ||
	    dup_opt(p11_kit_uri_get_pin_value(uri), &a.pin_value) != KHSM_EOK ||
	    dup_opt(p11_kit_uri_get_module_name(uri), &a.module_name) != KHSM_EOK ||
	    dup_opt(p11_kit_uri_get_module_path(uri), &a.module_path) != KHSM_EOK) {
		goto fail;
	}

	*attrs = a;
	return KHSM_EOK;
fail:
	khsm_uri_clear(&a);
	return r;
}

/* p11-kit has no public encoder: format a URI that holds only this value as
 * pin-source and take the encoded part back, so the encoding is p11-kit's. */
_public_
int khsm_uri_encode_value(const char *value, char **enc_ptr)
{
	_cleanup_uri_ P11KitUri *uri = p11_kit_uri_new();
	if (!uri) {
		return KHSM_ENOMEM;
	}
	p11_kit_uri_set_pin_source(uri, value);
	_cleanup_free_ char *text = NULL;
	if (p11_kit_uri_format(uri, P11_KIT_URI_FOR_ANY, &text) != P11_KIT_URI_OK) {
		return KHSM_ENOMEM;
	}
	const char *eq = strstr(text, "pin-source=");
	if (!eq) {
		return KHSM_EPARSE;
	}
	char *enc = strdup(eq + strlen("pin-source="));
	if (!enc) {
		return KHSM_ENOMEM;
	}
	*enc_ptr = enc;
	return KHSM_EOK;
}

_public_
int khsm_uri_keystore_config(const char *token_uri, const char *pin_source,
                             const char *pin_value, const char *module_path,
                             char **config_ptr)
{
	if (!token_uri || !module_path || !config_ptr || (pin_source && pin_value)) {
		return KHSM_EINVAL;
	}
	if (strchr(token_uri, ' ') || strchr(token_uri, '?')) {
		khsm_err_detail("token URI '%s' has a space or a query part; Knot would split or misread it",
		                token_uri);
		return KHSM_EINVAL;
	}
	if (module_path[0] != '/') {
		khsm_err_detail("module path '%s' is not absolute; knotd needs the full path", module_path);
		return KHSM_EINVAL;
	}

	const char *key = pin_source ? ";pin-source=" : pin_value ? ";pin-value=" : "";
	_cleanup_free_ char *enc = NULL;
	if (pin_source || pin_value) {
		int r = khsm_uri_encode_value(pin_source ? pin_source : pin_value, &enc);
		if (r != KHSM_EOK) {
			return r;
		}
	}

	char *config = NULL;
	if (asprintf(&config, "%s%s%s %s", token_uri, key, enc ? enc : "", module_path) < 0) {
		if (enc) explicit_bzero(enc, strlen(enc));
		return KHSM_ENOMEM;
	}
	if (enc) {
		explicit_bzero(enc, strlen(enc));
	}

	/* The URI half must parse back to the same PIN source. */
	_cleanup_free_ char *uri_part = strndup(config, strchr(config, ' ') - config);
	khsm_uri_t back = { 0 };
	int r = uri_part ? khsm_uri_parse(uri_part, &back) : KHSM_ENOMEM;
	if (r == KHSM_EOK && pin_source && (!back.pin_source || strcmp(back.pin_source, pin_source) != 0)) {
		r = KHSM_EPARSE;
	}
	if (r == KHSM_EOK && pin_value && (!back.pin_value || strcmp(back.pin_value, pin_value) != 0)) {
		r = KHSM_EPARSE;
	}
	khsm_uri_clear(&back);
	if (uri_part) {
		explicit_bzero(uri_part, strlen(uri_part));
	}
	if (r != KHSM_EOK) {
		explicit_bzero(config, strlen(config));
		free(config);
		return r;
	}

	*config_ptr = config;
	return KHSM_EOK;
}

_public_
int khsm_uri_split_config(const char *config, char **uri_ptr, char **module_ptr)
{
	if (!config || !uri_ptr || !module_ptr) {
		return KHSM_EINVAL;
	}
	const char *space = strchr(config, ' ');
	if (!space) {
		khsm_err_detail("keystore config has no space between the URI and the module path");
		return KHSM_ECONFIG;
	}
	char *uri = strndup(config, space - config);
	char *module = strdup(space + 1);
	if (!uri || !module) {
		free(uri);
		free(module);
		return KHSM_ENOMEM;
	}
	*uri_ptr = uri;
	*module_ptr = module;
	return KHSM_EOK;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9') return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	return -1;
}

_public_
int khsm_hex_parse(const char *hex, uint8_t **bin_ptr, size_t *len_ptr)
{
	if (!hex || !bin_ptr || !len_ptr) {
		return KHSM_EINVAL;
	}
	size_t n = strlen(hex);
	_cleanup_free_ uint8_t *bin = malloc(n / 2 + 1);
	if (!bin) {
		return KHSM_ENOMEM;
	}
	size_t len = 0;
	const char *p = hex;
	while (*p) {
		if (*p == ':' && len > 0) {
			p++;
		} else if (*p == '%') {
			p++;
		}
		int hi = hexval(p[0]);
		int lo = hi < 0 ? -1 : hexval(p[1]);
		if (hi < 0 || lo < 0) {
			khsm_err_detail("'%s' is not hex: use pairs of 0-9a-f, optionally separated by ':'", hex);
			return KHSM_EINVAL;
		}
		bin[len++] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	if (len == 0) {
		khsm_err_detail("empty hex value");
		return KHSM_EINVAL;
	}
	*bin_ptr = KHSM_STEAL(bin);
	*len_ptr = len;
	return KHSM_EOK;
}

_public_
int khsm_hex_format(const uint8_t *bin, size_t len, char **hex_ptr)
{
	if ((!bin && len) || !hex_ptr) {
		return KHSM_EINVAL;
	}
	char *hex = malloc(2 * len + 1);
	if (!hex) {
		return KHSM_ENOMEM;
	}
	for (size_t i = 0; i < len; i++) {
		snprintf(hex + 2 * i, 3, "%02x", bin[i]);
	}
	hex[2 * len] = '\0';
	*hex_ptr = hex;
	return KHSM_EOK;
}

_public_
int khsm_uri_card_name(const char *config, bool with_module, char **name_ptr)
{
	if (!config || !name_ptr) {
		return KHSM_EINVAL;
	}
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	int r = khsm_uri_split_config(config, &uri, &module);
	if (r != KHSM_EOK) {
		return r;
	}
	khsm_uri_t a = { 0 };
	if ((r = khsm_uri_parse(uri, &a)) != KHSM_EOK) {
		return r;
	}
	char *name = NULL;
	if (asprintf(&name, "token=%s;serial=%s;model=%s;manufacturer=%s%s%s", a.token ? a.token : "",
	             a.serial ? a.serial : "", a.model ? a.model : "", a.manufacturer ? a.manufacturer : "",
	             with_module ? " " : "", with_module ? module : "") < 0) {
		r = KHSM_ENOMEM;
	}
	khsm_uri_clear(&a);
	if (r == KHSM_EOK) {
		*name_ptr = name;
	}
	return r;
}
