/* Zone names: the operator's spelling checked against the DNS limits and
 * turned into the one form every other module compares (libknot prints it). */
#include <ctype.h>
#include <libknot/dname.h>
#include <stdbool.h>

#include "dname.h"
#include "error.h"
#include "internal.h"

static bool zone_char_ok(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '/';
}

_public_
int khsm_zone_normalize(const char *input, char **zone_ptr)
{
	if (!input || !zone_ptr) {
		return KHSM_EINVAL;
	}
	size_t len = strlen(input);
	if (len == 0) {
		khsm_err_detail("empty zone name");
		return KHSM_EINVAL;
	}
	if (strcmp(input, ".") == 0) {
		char *root = strdup(".");
		if (!root) {
			return KHSM_ENOMEM;
		}
		*zone_ptr = root;
		return KHSM_EOK;
	}
	if (input[len - 1] == '.') {
		len--; /* one final dot is optional */
	}

	size_t wire = 1; /* root label */
	size_t label = 0;
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)input[i] : '.';
		if (c == '.') {
			if (label == 0) {
				khsm_err_detail("zone name '%s' has an empty label", input);
				return KHSM_EINVAL;
			}
			wire += label + 1;
			label = 0;
			continue;
		}
		if (c >= 0x80) {
			khsm_err_detail("zone name '%s' is not ASCII; give its IDN A-label (xn--) form, "
			                "e.g. from 'idn2 --quiet'", input);
			return KHSM_EINVAL;
		}
		if (!zone_char_ok(c)) {
			if (isprint(c)) {
				khsm_err_detail("zone name '%s' contains '%c'; only letters, digits, "
				                "'-', '_' and '/' are allowed", input, c);
			} else {
				khsm_err_detail("zone name '%s' contains control character 0x%02x", input, c);
			}
			return KHSM_EINVAL;
		}
		if (++label > KNOT_DNAME_MAXLABELLEN) {
			khsm_err_detail("zone name '%s' has a label longer than %d characters", input,
			                KNOT_DNAME_MAXLABELLEN);
			return KHSM_EINVAL;
		}
	}
	if (wire > KNOT_DNAME_MAXLEN) {
		khsm_err_detail("zone name '%s' is %zu octets long in wire form; at most %d are allowed",
		                input, wire, KNOT_DNAME_MAXLEN);
		return KHSM_EINVAL;
	}

	_cleanup_free_ char *text = strndup(input, len);
	if (!text) {
		return KHSM_ENOMEM;
	}
	_cleanup_dname_ knot_dname_t *dname = knot_dname_from_str_alloc(text);
	if (!dname) {
		khsm_err_detail("zone name '%s' is not a valid domain name", input);
		return KHSM_EINVAL;
	}
	knot_dname_to_lower(dname);
	char *out = knot_dname_to_str_alloc(dname);
	if (!out) {
		return KHSM_ENOMEM;
	}
	*zone_ptr = out;
	return KHSM_EOK;
}
