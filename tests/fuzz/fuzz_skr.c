/* KSR, SKR and `keymgr show-offline` text (lib/skr.c, libzscanner), then the SKR
 * checks run on what was parsed. The zone is example.com, as in the seeds. */
#include "ceremony.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	if (!text) {
		return 0;
	}
	khsm_keysets_t sets = { 0 };
	int r = khsm_keysets_parse(text, "example.com", &sets);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		size_t rrsigs = 0;
		const char *ksks[16];
		size_t nksk = 0;
		for (size_t i = 0; i < sets.count; i++) {
			const khsm_keyset_t *s = &sets.sets[i];
			FUZZ_ASSERT(s->ksk_count <= s->dnskey_count);
			rrsigs += s->rrsig_count;
			for (size_t k = 0; k < s->dnskey_count && nksk < 16; k++) {
				if (strncmp(s->dnskeys[k], "257 ", 4) == 0) {
					ksks[nksk++] = s->dnskeys[k];
				}
			}
		}
		FUZZ_ASSERT(khsm_keysets_rrsig_count(&sets) == rrsigs);
		FUZZ_ASSERT_CODE(khsm_skr_check(&sets, &sets, ksks, nksk));
		khsm_keysets_clear(&sets);
	}
	khsm_err_clear();
	free(text);
	return 0;
}
