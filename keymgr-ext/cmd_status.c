/* TEMPORARY placeholder, replaced by the status implementation. */
#include "cli.h"
#include "lib/error.h"
int cmd_status(cli_t *cli) { (void)cli; return cli_error(KHSM_ENOTSUP, "status"); }
