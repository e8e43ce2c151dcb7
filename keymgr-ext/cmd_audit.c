/* audit: check the hash chain of the guard's audit log and summarise it, or
 * show its last lines. The work is in lib/audit.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lib/audit.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/guard/conf.h"
#include "lib/json.h"

#define TAIL_LINES 20

/* FILE, or the audit_log of the guard's configuration (then its anchor_file
 * too, when the configuration names one). */
static int log_path(cli_t *cli, char **path_ptr, char **anchor_ptr)
{
	*anchor_ptr = NULL;
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
	*anchor_ptr = conf.anchor_file;
	conf.anchor_file = NULL;
	khsm_guard_conf_clear(&conf);
	return CLI_OK;
}

/* Human output: card labels and file contents escaped (\xNN). */
static void put(const char *s)
{
	char *t = NULL;
	if (s && khsm_audit_text_escape(s, strlen(s), &t) == KHSM_EOK) {
		fputs(t, stdout);
	}
	free(t);
}

static void print_summary_text(const char *path, const char *anchor, const char *head,
                               const khsm_audit_summary_t *s)
{
	printf("audit log: ");
	put(path);
	putchar('\n');
	unsigned long good = s->broken_line ? s->broken_line - 1 : s->lines;
	bool anchored = anchor || head;
	if (good) {
		printf("lines: %lu, %s to %s\n", good, s->first_time, s->last_time);
	} else {
		printf("lines: 0\n");
	}
	if (s->broken_line) {
		printf("chain: BROKEN at line %lu: ", s->broken_line);
		put(s->reason);
		printf("\nsummary of lines 1 to %lu:\n", good);
	} else if (anchored) {
		printf("chain: intact; head %s\n", s->head);
	} else {
		printf("chain: intact; head %s (record it elsewhere: removing the last lines "
		       "can only be seen against it)\n", s->head);
	}
	if (anchor) {
		printf("anchor: ");
		put(anchor);
		printf(": %lu of %zu entries matched%s\n", s->anchors_matched, s->anchor_count,
		       s->broken_line ? " before the break" : "");
	}
	if (head && s->head_found) {
		printf("recorded head: line %lu\n", s->head_line);
	}
	if (s->incident_count) printf("incidents: %zu\n", s->incident_count);
	for (size_t i = 0; i < s->incident_count; i++) {
		const khsm_audit_incident_t *in = &s->incidents[i];
		printf("  line %lu, after %s%s%s: ", in->line, in->after[0] ? in->after : "the start",
		       in->before[0] ? ", before " : "", in->before);
		put(in->what);
		putchar('\n');
	}
	printf("card signatures per day and key:\n");
	if (s->sig_count == 0) printf("  none\n");
	for (size_t i = 0; i < s->sig_count; i++) {
		const khsm_audit_sigs_t *g = &s->sigs[i];
		printf("  ");
		put(g->day);
		printf("  ");
		put(g->key);
		printf(": %lu", g->count);
		if (g->software) printf(" (%lu hashed in software)", g->software);
		putchar('\n');
	}
	printf("logins: %lu ok, %lu failed\n", s->logins_ok, s->logins_failed);
	printf("filled in by software: %lu calls\n", s->software_ops);
	printf("failed calls: %lu\n", s->failed_calls);
	for (size_t i = 0; i < s->fail_count; i++) {
		printf("  ");
		put(s->fails[i].fn);
		putchar(' ');
		put(s->fails[i].rv);
		printf(": %lu\n", s->fails[i].count);
	}
}

static void print_summary_json(const char *path, const char *anchor, const khsm_audit_summary_t *s)
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
	khsm_json_uint(&j, "intents", s->intents);
	khsm_json_array(&j, "incidents");
	for (size_t i = 0; i < s->incident_count; i++) {
		khsm_json_object(&j, NULL);
		khsm_json_uint(&j, "line", s->incidents[i].line);
		khsm_json_str(&j, "after", s->incidents[i].after);
		khsm_json_str(&j, "before", s->incidents[i].before[0] ? s->incidents[i].before : NULL);
		khsm_json_str(&j, "what", s->incidents[i].what);
		khsm_json_end(&j);
	}
	khsm_json_end(&j);
	khsm_json_str(&j, "anchor", anchor);
	khsm_json_uint(&j, "anchors_matched", s->anchors_matched);
	khsm_json_end(&j);
	putchar('\n');
}

/* Exit codes of audit verify (documented in the manual). */
enum { VERIFY_TAMPERED = 1, VERIFY_UNREADABLE = 3, VERIFY_INCIDENTS = 4 };

static int audit_verify(cli_t *cli, const char *path, const char *anchor)
{
	khsm_audit_summary_t *s = NULL;
	khsm_audit_check_t check = { .head = cli->head, .anchor_file = anchor };
	int r = khsm_audit_verify_check(path, &check, &s);
	if (r == KHSM_EINVAL) {
		const char *d = khsm_err_last_detail();
		return cli_usage_error(cli_current, "--head: %s", d ? d : "not a SHA-256 in hex");
	}
	if (r != KHSM_EOK && r != KHSM_ECRYPTO) {
		cli_error(r, NULL);
		return VERIFY_UNREADABLE;
	}
	if (cli->json) {
		print_summary_json(path, anchor, s);
	} else {
		print_summary_text(path, anchor, cli->head, s);
	}
	if (s->pin_lines) {
		fprintf(stderr, "warning: %lu lines carry a \"pin\" member; the guard never writes one\n",
		        s->pin_lines);
	}
	if (s->anchor_weak) {
		fprintf(stderr, "warning: the anchor %s is not root's alone (owner or mode): whoever can "
		        "write it can forge it; chown root:root and chmod 0644 it\n", khsm_esc(anchor));
	}
	int rc = CLI_OK;
	if (r == KHSM_ECRYPTO) {
		char *reason = NULL;
		khsm_audit_text_escape(s->reason, strlen(s->reason), &reason);
		fprintf(stderr, "error: %s: line %lu: %s\n", khsm_esc(path), s->broken_line, reason ? reason : "?");
		free(reason);
		rc = VERIFY_TAMPERED;
	} else if (s->incident_count) {
		fprintf(stderr, "warning: %s: %zu torn line(s), see incidents: a write was cut short (full "
		        "disk, crash); the chain is intact around them\n", khsm_esc(path), s->incident_count);
		rc = VERIFY_INCIDENTS;
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
		if (cli->json) {
			printf("%.*s\n", (int)l, ring[k]);
		} else if (khsm_audit_line_text(ring[k], l, &text) != KHSM_EOK) {
			char *raw = NULL;
			khsm_audit_text_escape(ring[k], l, &raw);
			printf("? %s\n", raw ? raw : "");
			free(raw);
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
	bool verify = strcmp(sub, "verify") == 0;
	if (!verify && (cli->head || cli->anchor)) {
		return cli_usage_error(cli_current, "--head and --anchor are options of audit verify");
	}
	char *path = NULL, *conf_anchor = NULL;
	int rc = log_path(cli, &path, &conf_anchor);
	if (rc != CLI_OK) return rc;
	const char *anchor = cli->anchor;
	if (!anchor && conf_anchor) {
		if (access(conf_anchor, F_OK) == 0) {
			anchor = conf_anchor;
		} else if (verify) {
			fprintf(stderr, "warning: the anchor_file %s of the guard configuration does not exist "
			        "yet (a process running as root writes it)\n", khsm_esc(conf_anchor));
		}
	}
	rc = verify ? audit_verify(cli, path, anchor) : audit_tail(cli, path);
	free(path);
	free(conf_anchor);
	return rc;
}
