/* `keymgr ZONE ds` output (lib/knot.c). */
#include "fuzz.h"
#include "knot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	if (!text) {
		return 0;
	}
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	int r = khsm_keymgr_ds_parse(text, &ds, &count);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		for (size_t i = 0; i < count; i++) {
			size_t olen = strlen(ds[i].owner);
			FUZZ_ASSERT(olen > 0 && ds[i].owner[olen - 1] == '.');
			FUZZ_ASSERT(strlen(ds[i].digest) % 2 == 0 && ds[i].digest[0]);
		}
		khsm_ds_free(ds, count);
	}
	khsm_err_clear();
	free(text);
	return 0;
}
