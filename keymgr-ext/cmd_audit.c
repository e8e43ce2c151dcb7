/* TEMPORARY placeholder, replaced by the audit implementation. */
#include "cli.h"
#include "lib/error.h"
int cmd_audit(cli_t *cli) { (void)cli; return cli_error(KHSM_ENOTSUP, "audit"); }
