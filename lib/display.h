/* Text made safe to show people: no PIN written as pin-value, no control
 * character that moves the cursor, rings or rewrites the terminal. Every URI
 * or config that is printed or logged goes through khsm_redact(); every label,
 * file name or argument a person reads goes through khsm_escape(). JSON output
 * has its own escaping (lib/json.c) and uses neither. No dependency: the guard
 * module links it. */
#pragma once

#include <stddef.h>

/** Hide the value of every pin-value attribute (any case) in text, a URI, a
 *  keystore config or a whole message: "pin-value=648219" becomes
 *  "pin-value=***". Not for `keystore --pin-in-config` or a config written
 *  with `policy --write`, whose product is the config itself.
 *  \param[out] out_ptr  free with free(). */
int khsm_redact(const char *text, char **out_ptr);

/** khsm_redact() in place in a NUL-terminated buffer of size bytes; the end
 *  of the text is cut when "***" is longer than the value hidden. */
void khsm_redact_buf(char *buf, size_t size);

/** Text for a terminal: bytes below 0x20 (newline and tab too), 0x7f, C1
 *  controls (U+0080-U+009F) and bytes that are not valid UTF-8 become \xNN;
 *  valid UTF-8 and everything else stay as they are.
 *  \param[out] out_ptr  free with free(). */
int khsm_escape(const char *text, char **out_ptr);

/** khsm_escape() for one print site: text itself when nothing needs
 *  escaping, else the escaped copy in one of 8 per-thread buffers, reused
 *  after 8 calls (at most 4096 bytes, a longer one ends with "..."). NULL
 *  gives "". Not to be freed. */
const char *khsm_esc(const char *text);
