/* DNSKEY presentation text (lib/dnskey.c khsm_dnskey_from_text), then every
 * output made from the key. Input: an optional zone on the first line (empty
 * line: no zone), the DNSKEY text after it. */
#include <libdnssec/crypto.h>

#include "dnskey.h"
#include "epp.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	dnssec_crypto_init();
	return 0;
}

static void outputs(const dnssec_key_t *key)
{
	khsm_dnskey_info_t info;
	FUZZ_ASSERT(khsm_dnskey_info(key, &info) == KHSM_EOK);

	char *line = NULL;
	FUZZ_ASSERT(khsm_dnskey_line(key, &line) == KHSM_EOK);
	/* What knot-hsm prints reads back as the same key. */
	dnssec_key_t *back = NULL;
	FUZZ_ASSERT(khsm_dnskey_from_text(NULL, line, &back) == KHSM_EOK);
	khsm_dnskey_info_t info2;
	FUZZ_ASSERT(khsm_dnskey_info(back, &info2) == KHSM_EOK);
	FUZZ_ASSERT(info.key_tag == info2.key_tag && info.flags == info2.flags &&
	            info.algorithm == info2.algorithm);
	dnssec_key_free(back);
	free(line);

	char *text = NULL;
	int r = khsm_ds_lines(key, KHSM_DIGEST_ALL, &text);
	FUZZ_ASSERT_CODE(r);
	free(text);
	text = NULL;
	r = khsm_dnskey_json(key, KHSM_DIGEST_SHA256, &text);
	FUZZ_ASSERT_CODE(r);
	free(text);
	text = NULL;
	const dnssec_key_t *keys[] = { key };
	r = khsm_epp_secdns_create(keys, 1, KHSM_DIGEST_SHA256, KHSM_EPP_DS_KEYDATA, &text);
	FUZZ_ASSERT_CODE(r);
	free(text);
	text = NULL;
	FUZZ_ASSERT(khsm_cdnskey_line(key, &text) == KHSM_EOK);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = fuzz_text(data, size);
	if (!input) {
		return 0;
	}
	const char *zone = NULL;
	const char *text = input;
	char *nl = strchr(input, '\n');
	if (nl) {
		*nl = '\0';
		zone = input[0] ? input : NULL;
		text = nl + 1;
	}

	dnssec_key_t *key = NULL;
	int r = khsm_dnskey_from_text(zone, text, &key);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		outputs(key);
		dnssec_key_free(key);
	}
	khsm_err_clear();
	free(input);
	return 0;
}
