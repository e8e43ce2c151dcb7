/* `keymgr ZONE list` output, plain and extended (lib/knot.c). */
#include "fuzz.h"
#include "knot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	if (!text) {
		return 0;
	}
	khsm_kasp_key_t *keys = NULL;
	size_t count = 0;
	int r = khsm_keymgr_list_parse(text, &keys, &count);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		FUZZ_ASSERT((count == 0) == (keys == NULL));
		for (size_t i = 0; i < count; i++) {
			size_t n = strnlen(keys[i].id, sizeof(keys[i].id));
			FUZZ_ASSERT(n > 0 && n < sizeof(keys[i].id) && n % 2 == 0);
			FUZZ_ASSERT(keys[i].algorithm >= 0 && keys[i].algorithm <= 255);
		}
		free(keys);
	}
	khsm_err_clear();
	free(text);
	return 0;
}
