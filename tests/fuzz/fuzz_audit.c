/* The audit log (lib/audit.c) as `knot-hsm audit verify|tail` read it: chain
 * verification and the line-to-words rendering of every line. */
#include "audit.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	khsm_audit_summary_t *sum = NULL;
	int r = khsm_audit_verify_text((const char *)data, size, &sum);
	FUZZ_ASSERT_CODE(r);
	khsm_audit_summary_free(sum);

	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *text = NULL;
		r = khsm_audit_line_text(p, len, &text);
		FUZZ_ASSERT_CODE(r);
		FUZZ_ASSERT((r == KHSM_EOK) == (text != NULL));
		free(text);
		p += len + (nl ? 1 : 0);
	}
	khsm_err_clear();
	return 0;
}
