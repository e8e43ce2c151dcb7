/* Minimal JSON output: string escaping for --json printing. */
#pragma once

#include <stdio.h>

/** Write s as a JSON string literal (with quotes) to f; NULL writes null. */
void khsm_json_string(FILE *f, const char *s);
