/* PKCS#11 URIs (RFC 7512) and Knot's keystore config string.
 * All parsing and percent-encoding is done by p11-kit's P11KitUri; this module
 * only chooses the attributes and checks that what it formats parses back. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
	KHSM_URI_TYPE_ANY = 0,
	KHSM_URI_TYPE_PRIVATE,
	KHSM_URI_TYPE_PUBLIC,
} khsm_uri_type_t;

/* Attributes of a token or object URI; NULL/0 fields are left out. */
typedef struct {
	char *token;          /* token label, without PKCS#11 space padding */
	char *manufacturer;
	char *model;
	char *serial;
	char *object;         /* object label (CKA_LABEL) */
	uint8_t *id;          /* CKA_ID bytes */
	size_t id_len;
	khsm_uri_type_t type;
	char *pin_source;
	char *pin_value;      /* only ever set from parsing; never logged */
	char *module_name;
	char *module_path;
} khsm_uri_t;

/** Format attributes as a URI. Only token/object/id/type attributes are used.
 *  \param[out] uri_ptr  formatted URI, free with free(). */
int khsm_uri_format(const khsm_uri_t *attrs, char **uri_ptr);

/** Parse a URI with p11-kit into attributes; free with khsm_uri_clear(). */
int khsm_uri_parse(const char *uri, khsm_uri_t *attrs);

/** Free the strings held by attributes and zero them (PIN value wiped). */
void khsm_uri_clear(khsm_uri_t *attrs);

/** Knot keystore config string: "<token-uri>;pin-source=<enc> <module>".
 *  pin_source and pin_value are optional and exclusive; the pin source path is
 *  percent-encoded by p11-kit and placed in the path part, because Knot appends
 *  ";id=…" to the URI and a query part would swallow it.
 *  \param[out] config_ptr  free with free(). */
int khsm_uri_keystore_config(const char *token_uri, const char *pin_source,
                             const char *pin_value, const char *module_path,
                             char **config_ptr);

/** Percent-encode one attribute value exactly as p11-kit formats it.
 *  \param[out] enc_ptr  free with free(). */
int khsm_uri_encode_value(const char *value, char **enc_ptr);

/** What tells two cards apart in keystore configs: the token attributes
 *  (token, serial, model, manufacturer) and, with_module, the module; never
 *  the PIN, so two keystores of one card share it. Without the module, a
 *  card through the guard is the card itself. \param[out] name_ptr  free(). */
int khsm_uri_card_name(const char *config, bool with_module, char **name_ptr);

/** Split a keystore config at the first space, as Knot does.
 *  \param[out] uri_ptr, module_ptr  free with free(). */
int khsm_uri_split_config(const char *config, char **uri_ptr, char **module_ptr);

/** Copy a space-padded PKCS#11 text field into a NUL-terminated string,
 *  removing the padding. out must hold len + 1 bytes. */
void khsm_label_unpad(const unsigned char *field, size_t len, char *out);

/** Parse hex ("a1b2", "a1:b2" or "%a1%b2") into bytes; rejects anything else.
 *  \param[out] bin_ptr, len_ptr  free *bin_ptr with free(). */
int khsm_hex_parse(const char *hex, uint8_t **bin_ptr, size_t *len_ptr);

/** Lowercase hex of bytes. \param[out] hex_ptr  free with free(). */
int khsm_hex_format(const uint8_t *bin, size_t len, char **hex_ptr);
