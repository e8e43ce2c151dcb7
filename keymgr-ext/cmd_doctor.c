/* doctor: one line per check, ok / warn / FAIL with a remedy. The checks
 * are lib/doctor's; this file prints them (text, or JSON with --json). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "lib/doctor.h"
#include "lib/error.h"
#include "lib/json.h"
#include "lib/remote.h"

/* One check: "STATUS  check: detail", or an object of the "checks" array
 * when data is the JSON writer. */
static void print_line(khsm_doctor_status_t status, const char *check, const char *detail, void *data)
{
	khsm_json_t *json = data;
	if (json) {
		khsm_json_object(json, NULL);
		khsm_json_str(json, "check", check);
		khsm_json_str(json, "result", status == KHSM_DOCTOR_FAIL ? "fail" : khsm_doctor_status_name(status));
		khsm_json_str(json, "detail", detail);
		khsm_json_end(json);
	} else {
		printf("%-4s  %s: %s\n", khsm_doctor_status_name(status), check, detail ? detail : "");
	}
}

int cmd_doctor(cli_t *cli)
{
	if (!cli->conf && !cli->token) {
		return cli_usage_error(cli_current, "doctor needs --token LABEL or -c knot.conf");
	}
	if (cli->remote) {
		int r = cli->module ? KHSM_EINVAL : khsm_remote_use(cli->remote);
		if (r != KHSM_EOK) {
			return cli->module ? cli_usage_error(cli_current, "--remote takes no --module")
			                   : cli_error(r, "--remote");
		}
		cli->module = khsm_remote_client_module();
	}
	khsm_json_t j;
	khsm_doctor_t rep = { .report = print_line, .data = NULL };
	if (cli->json) {
		khsm_json_init(&j, stdout, KHSM_JSON_LINES);
		khsm_json_object(&j, NULL);
		khsm_json_array(&j, "checks");
		rep.data = &j;
	}
	int r = cli->conf ? khsm_doctor_conf(&rep, cli->conf, cli->force)
	                  : khsm_doctor_token(&rep, cli->module, cli->token, cli->pin_file, cli->pin_fd,
	                                      cli->force);
	if (r != KHSM_EOK) {
		return cli_error(r, "doctor");
	}
	if (cli->json) {
		khsm_json_end(&j);
		khsm_json_int(&j, "failed", rep.failed);
		khsm_json_int(&j, "warnings", rep.warned);
		khsm_json_end(&j);
		putchar('\n');
	} else {
		printf("%d failed, %d warnings\n", rep.failed, rep.warned);
	}
	return rep.failed ? CLI_FAIL : CLI_OK;
}
