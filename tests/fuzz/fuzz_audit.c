/* The audit log (lib/audit.c) as `knot-hsm audit verify|tail` read it: chain
 * verification (torn lines and their markers included), the line-to-words
 * rendering of every line, the escaping of human output, and the same bytes
 * read as an anchor file. */
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
	char *esc = NULL;
	r = khsm_audit_text_escape((const char *)data, size, &esc);
	FUZZ_ASSERT_CODE(r);
	for (const char *q = esc; q && *q; q++) FUZZ_ASSERT((unsigned char)*q >= 0x20 && *q != 0x7f);
	free(esc);

	khsm_audit_anchor_t *anchors = NULL;
	size_t n = 0;
	r = khsm_audit_anchors_parse("fuzz", (const char *)data, size, &anchors, &n);
	FUZZ_ASSERT_CODE(r);
	free(anchors);
	khsm_err_clear();
	return 0;
}
