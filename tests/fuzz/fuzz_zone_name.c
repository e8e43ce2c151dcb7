/* Zone names as operators type them (lib/dnskey.c khsm_zone_normalize,
 * lib/parent.c khsm_name_parent) and digest names. */
#include <ctype.h>
#include <libknot/dname.h>

#include "dnskey.h"
#include "fuzz.h"
#include "parent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	if (!text) {
		return 0;
	}

	char *zone = NULL;
	int r = khsm_zone_normalize(text, &zone);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		/* Lower-case FQDN, a fixed point, and a name libknot takes. */
		size_t len = strlen(zone);
		FUZZ_ASSERT(len > 0 && zone[len - 1] == '.' && len <= KNOT_DNAME_TXT_MAXLEN);
		for (const char *c = zone; *c; c++) {
			FUZZ_ASSERT(!isupper((unsigned char)*c));
		}
		char *again = NULL;
		FUZZ_ASSERT(khsm_zone_normalize(zone, &again) == KHSM_EOK);
		FUZZ_ASSERT(strcmp(again, zone) == 0);
		free(again);
		knot_dname_t *dname = knot_dname_from_str_alloc(zone);
		FUZZ_ASSERT(dname != NULL);
		free(dname);

		char *parent = NULL;
		r = khsm_name_parent(zone, &parent);
		FUZZ_ASSERT(r == KHSM_EOK || (r == KHSM_ENOENT && strcmp(zone, ".") == 0));
		if (r == KHSM_EOK) {
			size_t plen = strlen(parent);
			FUZZ_ASSERT(plen < len && strcmp(zone + len - plen, parent) == 0);
			free(parent);
		}
		free(zone);
	}

	khsm_digest_t digest;
	r = khsm_digest_from_name(text, &digest);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		uint8_t types[2];
		FUZZ_ASSERT(khsm_digest_types(digest, types) > 0);
	}

	khsm_err_clear();
	free(text);
	return 0;
}
