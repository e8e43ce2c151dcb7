/* pcscd, the PC/SC daemon OpenSC reaches a card through: whether it answers
 * on its socket. Only meaningful for modules that use PC/SC (OpenSC). */
#pragma once

#include <stdbool.h>

/** The socket pcsc-lite clients connect to: $PCSCLITE_CSOCK_NAME, else
 *  /run/pcscd/pcscd.comm. Static or environment string, never NULL. */
const char *khsm_pcscd_socket(void);

/** Whether something accepts a connection on khsm_pcscd_socket() (pcscd, or
 *  systemd's pcscd.socket that starts it). KHSM_ENOENT with a detail naming
 *  the socket and the remedy when nothing does. */
int khsm_pcscd_check(void);

/** Whether a PKCS #11 module talks to cards through pcscd (OpenSC's
 *  opensc-pkcs11.so, by its file name; for the guard, libknothsm-guard.so,
 *  the module its configuration names). Clears the error detail. */
bool khsm_pcscd_module_uses(const char *module_path);

/* Told once, when khsm_pcscd_wait() starts waiting: the socket, the budget. */
typedef void (*khsm_pcscd_notify_t)(const char *socket, unsigned budget_ms, void *data);

/** Before card work with keystore config ("<uri> <module>"): when its module
 *  uses pcscd and pcscd does not answer, wait up to budget_ms for pcscd and
 *  then for the card to show through the module again (polling every 250 ms;
 *  notify, if given, once when the wait starts). KHSM_EOK at once for a
 *  module without pcscd; KHSM_ENOENT with the remedy when the budget runs
 *  out (0: no wait, just the check). */
int khsm_pcscd_wait(const char *config, unsigned budget_ms, khsm_pcscd_notify_t notify, void *data);
