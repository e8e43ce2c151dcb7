/* The guard's configuration file (lib/guard/conf.c): strict key = value. */
#include "fuzz.h"
#include "guard/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	if (!text) {
		return 0;
	}
	khsm_guard_conf_t conf;
	memset(&conf, 0, sizeof(conf));
	int r = khsm_guard_conf_parse("fuzz.conf", text, &conf);
	FUZZ_ASSERT_CODE(r);
	khsm_guard_conf_clear(&conf);
	khsm_err_clear();
	free(text);
	return 0;
}
