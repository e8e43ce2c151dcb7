/* key=value arguments of zone commands (keymgr-ext/zonecmd.c kv_parse,
 * kv_bool) and the values parsed from them: server= (lib/parent.c) and
 * digest= (lib/dnskey.c). zonecmd.c is compiled into this target; the CLI
 * printing functions of main.c are replaced by silent ones below.
 * Input: arguments separated by NUL or newline. As main() does, only
 * arguments with '=' reach kv_parse. */
#include <stdarg.h>

#include "dnskey.h"
#include "fuzz.h"
#include "keymgr-ext/zonecmd.h"
#include "parent.h"

static const cli_command_t FUZZ_COMMAND = { .name = "generate", .zone_command = true };
const cli_command_t *cli_current = &FUZZ_COMMAND;

int cli_usage_error(const cli_command_t *cmd, const char *fmt, ...)
{
	(void)cmd;
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);  /* formats as main.c would, unprinted */
	va_end(ap);
	return CLI_USAGE;
}

int cli_error(int code, const char *fmt, ...)
{
	(void)code;
	(void)fmt;
	return CLI_FAIL;
}

enum { MAX_ARGS = 64 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = malloc(size + 1);
	if (!input) {
		return 0;
	}
	memcpy(input, data, size);
	input[size] = '\0';

	char *args[MAX_ARGS];
	cli_t cli = { .pin_fd = -1, .args = args };
	for (size_t start = 0; start <= size && cli.arg_count < MAX_ARGS; ) {
		size_t end = start;
		while (end < size && input[end] != '\0' && input[end] != '\n') {
			end++;
		}
		input[end] = '\0';
		if (strchr(input + start, '=')) {
			args[cli.arg_count++] = input + start;
		}
		start = end + 1;
	}

	kv_t kv[] = { { "ksk", NULL }, { "zsk", NULL }, { "algorithm", NULL }, { "size", NULL },
	              { "label", NULL }, { "keystore", NULL }, { "digest", NULL },
	              { "server", NULL }, { NULL, NULL } };
	int rc = kv_parse(&cli, kv);
	FUZZ_ASSERT(rc == CLI_OK || rc == CLI_USAGE);
	if (rc == CLI_OK) {
		int given = 0;
		for (const kv_t *t = kv; t->key; t++) {
			if (!t->value) {
				continue;
			}
			given++;
			/* The value is the non-empty text after "key=" of one argument. */
			size_t klen = strlen(t->key);
			FUZZ_ASSERT(t->value[0] != '\0');
			FUZZ_ASSERT(t->value[-1] == '=' && strncmp(t->value - 1 - klen, t->key, klen) == 0);
			FUZZ_ASSERT(kv_get(kv, t->key) == t->value);
		}
		FUZZ_ASSERT(given == cli.arg_count);

		bool b;
		const char *v;
		if ((v = kv_get(kv, "ksk")) != NULL) {
			rc = kv_bool("ksk", v, &b);
			FUZZ_ASSERT(rc == CLI_OK ? (strcmp(v, "yes") == 0) == b : rc == CLI_USAGE);
		}
		khsm_digest_t digest;
		if ((v = kv_get(kv, "digest")) != NULL) {
			FUZZ_ASSERT_CODE(khsm_digest_from_name(v, &digest));
		}
		if ((v = kv_get(kv, "server")) != NULL) {
			khsm_server_t server = { 0 };
			int r = khsm_server_parse(v, &server);
			FUZZ_ASSERT_CODE(r);
			if (r == KHSM_EOK) {
				FUZZ_ASSERT(server.address && server.address[0] && server.port > 0);
				khsm_server_clear(&server);
			}
		}
	}
	FUZZ_ASSERT(kv_get(kv, "no-such-key") == NULL);
	khsm_err_clear();
	free(input);
	return 0;
}
