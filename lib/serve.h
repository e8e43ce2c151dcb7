/* The card of this process served to its own keymgr children over p11-kit's
 * RPC (p11_kit_remote_serve_module, what `p11-kit remote` runs), so that they
 * use the card as this process has it: logged in. keymgr import-pkcs11 loads
 * the private key of the key it registers, and in a process of its own that
 * costs one login on the card per key; through p11-kit-client.so and a socket
 * of this run it finds the login that knot-hsm holds (khsm_login_hold_t) and
 * GnuTLS skips C_Login. The socket lives in a private directory of the run
 * (0700, TMPDIR/knot-hsm-serve.<pid>.XXXXXX) and accepts only children of
 * this process (the keymgr it runs), for as long as one keymgr run lasts. */
#pragma once

typedef struct khsm_serve khsm_serve_t;

/** Serve module_path (a PKCS #11 module this process has loaded through
 *  GnuTLS; p11-kit gives each connection a managed instance of the same
 *  module, so logins are shared and a client's C_Finalize ends only its own
 *  sessions). One thread per connection; a peer that is not a child of
 *  this process, or of another user, is refused.
 *  \param[out] serve_ptr  stop with khsm_serve_stop(). */
int khsm_serve_start(const char *module_path, khsm_serve_t **serve_ptr);

/** What a child's P11_KIT_SERVER_ADDRESS is set to ("unix:path=…"). */
const char *khsm_serve_address(const khsm_serve_t *serve);

/** Stop accepting, wait for the connections to end (their clients exit
 *  first: call after the children were waited for), remove the socket and
 *  its directory. NULL is accepted. */
void khsm_serve_stop(khsm_serve_t *serve);
