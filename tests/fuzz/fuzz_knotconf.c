/* The text `knotc conf-export` writes, read by lib/knotconf.c with libknot's
 * yparser. The parser is static and khsm_conf_load() needs knotc, so this
 * target compiles lib/knotconf.c itself and calls parse_export() directly
 * (no change to the library); the archive's copy of knotconf.o is then not
 * linked in. The lookups run on what was parsed, as zone commands do. */
#include "../../lib/knotconf.c"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	khsm_conf_t *conf = calloc(1, sizeof(*conf));
	if (!conf) {
		return 0;
	}
	int r = parse_export(conf, (const char *)data, size);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		for (size_t i = 0; i < khsm_conf_zone_count(conf); i++) {
			const khsm_conf_zone_t *z = khsm_conf_zone_at(conf, i);
			FUZZ_ASSERT(z && z->domain && khsm_conf_zone_find(conf, z->domain));
			const khsm_conf_policy_t *p = NULL;
			FUZZ_ASSERT_CODE(khsm_conf_zone_policy(conf, z, &p));
			bool signing;
			FUZZ_ASSERT(khsm_conf_zone_signing(conf, z, &signing) == KHSM_EOK);
			for (size_t k = 0; p && k < p->keystore_count; k++) {
				(void)khsm_conf_keystore_find(conf, p->keystores[k]);
			}
		}
		for (size_t i = 0; i < khsm_conf_keystore_count(conf); i++) {
			const khsm_conf_keystore_t *k = khsm_conf_keystore_at(conf, i);
			FUZZ_ASSERT(k && khsm_conf_keystore_find(conf, k->id));
		}
	}
	khsm_conf_free(conf);
	khsm_err_clear();
	return 0;
}
