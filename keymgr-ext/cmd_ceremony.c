/* TEMPORARY placeholder, replaced by the ceremony implementation. */
#include "cli.h"
#include "lib/error.h"
int cmd_ceremony(cli_t *cli) { (void)cli; return cli_error(KHSM_ENOTSUP, "ceremony"); }
