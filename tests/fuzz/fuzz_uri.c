/* RFC 7512 URIs, hex IDs and Knot keystore config strings (lib/uri.c). */
#include "fuzz.h"
#include "uri.h"

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* A URI knot-hsm formats from parsed attributes parses back to them. */
static void round_trip(const khsm_uri_t *a)
{
	khsm_uri_t in = { .token = a->token, .object = a->object, .id = a->id,
	                  .id_len = a->id_len, .type = a->type };
	char *text = NULL;
	int r = khsm_uri_format(&in, &text);
	FUZZ_ASSERT_CODE(r);
	if (r != KHSM_EOK) {
		return;
	}
	khsm_uri_t back = { 0 };
	r = khsm_uri_parse(text, &back);
	FUZZ_ASSERT(r == KHSM_EOK);
	FUZZ_ASSERT(same(back.token, a->token) || (!a->token && back.token && !back.token[0]));
	FUZZ_ASSERT(same(back.object, a->object));
	FUZZ_ASSERT(back.id_len == a->id_len && (!a->id_len || memcmp(back.id, a->id, a->id_len) == 0));
	FUZZ_ASSERT(back.type == a->type);
	khsm_uri_clear(&back);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_text(data, size);
	if (!text) {
		return 0;
	}

	khsm_uri_t a = { 0 };
	int r = khsm_uri_parse(text, &a);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		round_trip(&a);
		khsm_uri_clear(&a);
	}

	char *uri = NULL, *module = NULL;
	r = khsm_uri_split_config(text, &uri, &module);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		FUZZ_ASSERT(strlen(uri) + 1 + strlen(module) == strlen(text));
		FUZZ_ASSERT(!strchr(uri, ' '));
		free(uri);
		free(module);
	}

	uint8_t *bin = NULL;
	size_t len = 0;
	r = khsm_hex_parse(text, &bin, &len);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		char *hex = NULL;
		FUZZ_ASSERT(len > 0 && khsm_hex_format(bin, len, &hex) == KHSM_EOK);
		FUZZ_ASSERT(strlen(hex) == 2 * len);
		free(hex);
		free(bin);
	}

	/* Any text as a PIN file path: the config Knot gets splits at the
	 * module path, and the URI half gives the path back. */
	char *config = NULL;
	r = khsm_uri_keystore_config("pkcs11:token=fuzz", text, NULL, "/usr/lib/fuzz.so", &config);
	FUZZ_ASSERT_CODE(r);
	if (r == KHSM_EOK) {
		FUZZ_ASSERT(khsm_uri_split_config(config, &uri, &module) == KHSM_EOK);
		FUZZ_ASSERT(strcmp(module, "/usr/lib/fuzz.so") == 0);
		khsm_uri_t back = { 0 };
		FUZZ_ASSERT(khsm_uri_parse(uri, &back) == KHSM_EOK);
		FUZZ_ASSERT(same(back.pin_source, text));
		khsm_uri_clear(&back);
		free(uri);
		free(module);
		free(config);
	}

	khsm_err_clear();
	free(text);
	return 0;
}
