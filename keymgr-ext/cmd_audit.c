/* audit: check the hash chain of the guard's audit log and summarise it, or
 * show its last lines. The work is in lib/audit.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/audit.h"
#include "lib/error.h"
#include "lib/guard/conf.h"
#include "lib/json.h"

#define TAIL_LINES 20

/* FILE, or the audit_log of the guard's configuration. */
static int log_path(cli_t *cli, char **path_ptr)
{
	if (cli->zone_count >= 2) {
		*path_ptr = strdup(cli->zones[1]);
		return *path_ptr ? CLI_OK : cli_error(KHSM_ENOMEM, NULL);
	}
	char *conf_path = NULL;
	khsm_guard_conf_t conf = { 0 };
	int r = khsm_guard_conf_locate(khsm_guard_module_path(), &conf_path);
	if (r == KHSM_EOK) r = khsm_guard_conf_load(conf_path, &conf);
	free(conf_path);
	if (r != KHSM_EOK) {
		khsm_guard_conf_clear(&conf);
		khsm_err_clear();
		return cli_usage_error(cli_current, "give the audit log FILE (no guard configuration found: "
		                       "set %s or install %s beside %s)", KHSM_GUARD_CONF_ENV,
		                       KHSM_GUARD_CONF_NAME, khsm_guard_module_path());
	}
	*path_ptr = conf.audit_log;
	conf.audit_log = NULL;
	khsm_guard_conf_clear(&conf);
	return CLI_OK;
}

static void print_summary_text(const char *path, const khsm_audit_summary_t *s)
{
	printf("audit log: %s\n", path);
	unsigned long good = s->broken_line ? s->broken_line - 1 : s->lines;
	if (good) {
		printf("lines: %lu, %s to %s\n", good, s->first_time, s->last_time);
	} else {
		printf("lines: 0\n");
	}
	if (s->broken_line) {
		printf("chain: BROKEN at line %lu: %s\n", s->broken_line, s->reason);
		printf("summary of lines 1 to %lu:\n", good);
	} else {
		printf("chain: intact; head %s (record it elsewhere: removing the last lines "
		       "can only be seen against it)\n", s->head);
	}
	printf("card signatures per day and key:\n");
	if (s->sig_count == 0) printf("  none\n");
	for (size_t i = 0; i < s->sig_count; i++) {
		const khsm_audit_sigs_t *g = &s->sigs[i];
		printf("  %s  %s: %lu", g->day, g->key, g->count);
		if (g->software) printf(" (%lu hashed in software)", g->software);
		putchar('\n');
	}
	printf("logins: %lu ok, %lu failed\n", s->logins_ok, s->logins_failed);
	printf("filled in by software: %lu calls\n", s->software_ops);
	printf("failed calls: %lu\n", s->failed_calls);
	for (size_t i = 0; i < s->fail_count; i++) {
		printf("  %s %s: %lu\n", s->fails[i].fn, s->fails[i].rv, s->fails[i].count);
	}
}

static void print_summary_json(const char *path, const khsm_audit_summary_t *s)
{
	khsm_json_t j;
	khsm_json_init(&j, stdout, KHSM_JSON_INLINE);
	khsm_json_object(&j, NULL);
	khsm_json_str(&j, "file", path);
	khsm_json_uint(&j, "lines", s->broken_line ? s->broken_line - 1 : s->lines);
	khsm_json_bool(&j, "intact", !s->broken_line);
	khsm_json_uint(&j, "broken_line", s->broken_line);
	khsm_json_str(&j, "reason", s->broken_line ? s->reason : NULL);
	khsm_json_str(&j, "head", s->head);
	khsm_json_str(&j, "first", s->first_time);
	khsm_json_str(&j, "last", s->last_time);
	khsm_json_array(&j, "signatures");
	for (size_t i = 0; i < s->sig_count; i++) {
		khsm_json_object(&j, NULL);
		khsm_json_str(&j, "day", s->sigs[i].day);
		khsm_json_str(&j, "key", s->sigs[i].key);
		khsm_json_uint(&j, "count", s->sigs[i].count);
		khsm_json_uint(&j, "software", s->sigs[i].software);
		khsm_json_end(&j);
	}
	khsm_json_end(&j);
	khsm_json_uint(&j, "logins_ok", s->logins_ok);
	khsm_json_uint(&j, "logins_failed", s->logins_failed);
	khsm_json_uint(&j, "software", s->software_ops);
	khsm_json_array(&j, "failed_calls");
	for (size_t i = 0; i < s->fail_count; i++) {
		khsm_json_object(&j, NULL);
		khsm_json_str(&j, "fn", s->fails[i].fn);
		khsm_json_str(&j, "rv", s->fails[i].rv);
		khsm_json_uint(&j, "count", s->fails[i].count);
		khsm_json_end(&j);
	}
	khsm_json_end(&j);
	khsm_json_end(&j);
	putchar('\n');
}

static int audit_verify(cli_t *cli, const char *path)
{
	khsm_audit_summary_t *s = NULL;
	int r = khsm_audit_verify(path, &s);
	if (r != KHSM_EOK && r != KHSM_ECRYPTO) {
		return cli_error(r, NULL);
	}
	if (cli->json) {
		print_summary_json(path, s);
	} else {
		print_summary_text(path, s);
	}
	if (s->pin_lines) {
		fprintf(stderr, "warning: %lu lines carry a \"pin\" member; the guard never writes one\n",
		        s->pin_lines);
	}
	int rc = CLI_OK;
	if (r == KHSM_ECRYPTO) {
		fprintf(stderr, "error: %s: line %lu: %s\n", path, s->broken_line, s->reason);
		rc = CLI_FAIL;
	}
	khsm_audit_summary_free(s);
	return rc;
}

static int audit_tail(cli_t *cli, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		khsm_err_detail("cannot read %s: %s", path, strerror(errno));
		return cli_error(errno == ENOENT ? KHSM_ENOENT : KHSM_EIO, NULL);
	}
	char *ring[TAIL_LINES] = { 0 };
	size_t lens[TAIL_LINES] = { 0 };
	unsigned long n = 0;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) >= 0) {
		size_t k = n % TAIL_LINES;
		free(ring[k]);
		ring[k] = line;
		lens[k] = (size_t)len;
		line = NULL;
		cap = 0;
		n++;
	}
	free(line);
	fclose(f);
	unsigned long first = n > TAIL_LINES ? n - TAIL_LINES : 0;
	for (unsigned long i = first; i < n; i++) {
		size_t k = i % TAIL_LINES;
		size_t l = lens[k];
		if (l && ring[k][l - 1] == '\n') l--;
		char *text = NULL;
		if (cli->json || khsm_audit_line_text(ring[k], l, &text) != KHSM_EOK) {
			printf("%s%.*s\n", cli->json ? "" : "? ", (int)l, ring[k]);
		} else {
			printf("%s\n", text);
		}
		free(text);
	}
	khsm_err_clear();
	for (size_t k = 0; k < TAIL_LINES; k++) free(ring[k]);
	return CLI_OK;
}

int cmd_audit(cli_t *cli)
{
	if (cli->zone_count < 1) {
		return cli_usage_error(cli_current, "audit needs 'verify' or 'tail'");
	}
	const char *sub = cli->zones[0];
	if (strcmp(sub, "verify") != 0 && strcmp(sub, "tail") != 0) {
		return cli_usage_error(cli_current, "unknown audit command '%s' (verify or tail)", sub);
	}
	if (cli->zone_count > 2) {
		return cli_usage_error(cli_current, "audit %s takes one FILE (got '%s' too)", sub, cli->zones[2]);
	}
	char *path = NULL;
	int rc = log_path(cli, &path);
	if (rc != CLI_OK) return rc;
	rc = strcmp(sub, "verify") == 0 ? audit_verify(cli, path) : audit_tail(cli, path);
	free(path);
	return rc;
}
