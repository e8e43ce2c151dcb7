/* TEMPORARY placeholder, replaced by the policy implementation. */
#include "cli.h"
#include "lib/error.h"
int cmd_policy(cli_t *cli) { (void)cli; return cli_error(KHSM_ENOTSUP, "policy"); }
