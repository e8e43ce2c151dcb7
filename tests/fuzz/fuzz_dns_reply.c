/* A parent's reply on the wire (lib/parent.c): khsm_reply_parse() as the
 * reply to example.com. DS, then khsm_reply_ds() judging each DS alone. */
#include "fuzz.h"
#include "parent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	khsm_reply_t reply = { 0 };
	int r = khsm_reply_parse(data, size, "example.com.", 43, &reply);
	FUZZ_ASSERT_CODE(r);
	if (r != KHSM_EOK) {
		FUZZ_ASSERT(reply.rrs == NULL && reply.count == 0);
		khsm_err_clear();
		return 0;
	}
	for (size_t i = 0; i < reply.count; i++) {
		size_t olen = strlen(reply.rrs[i].owner);
		FUZZ_ASSERT(olen > 0 && reply.rrs[i].owner[olen - 1] == '.');
	}
	khsm_ds_t *ds = NULL;
	size_t count = 0;
	char *bad = NULL;
	r = khsm_reply_ds(&reply, "example.com.", &ds, &count, &bad);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		for (size_t i = 0; i < count; i++) {
			size_t dlen = strlen(ds[i].digest);
			FUZZ_ASSERT(strcmp(ds[i].owner, "example.com.") == 0);
			FUZZ_ASSERT(dlen == 40 || dlen == 64 || dlen == 96);
		}
		FUZZ_ASSERT(count > 0 || ds == NULL);
		khsm_ds_free(ds, count);
		free(bad);
	}
	khsm_reply_clear(&reply);
	khsm_err_clear();
	return 0;
}
