/* A PKCS#11 keystore opened exactly as knotd opens it: through libdnssec with
 * the knot.conf config string, then a login through GnuTLS, which reads the
 * pin-source file of the URI the same way knotd does. */
#pragma once

#include <stdbool.h>
#include <gnutls/pkcs11.h>
#include <libdnssec/keystore.h>

#include "pin.h"
#include "serve.h"

typedef struct khsm_keystore khsm_keystore_t;

/* Logins kept for a run over many zones (onboarding, generate or import of
 * many zones): each zone's step opens and closes its own keystore, and
 * PKCS #11 forgets a login with the application's last session. The hold
 * keeps one idle session per card config from the first login on, so the
 * run's later keystores on that card find it logged in and GnuTLS skips
 * C_Login: one login per card per run, not per zone. */
typedef struct khsm_login_hold khsm_login_hold_t;

/** An empty hold. \param[out] hold_ptr  free with khsm_login_hold_free(). */
int khsm_login_hold_new(khsm_login_hold_t **hold_ptr);

/** Keep the login that ks has just made (its config's first in the hold;
 *  later calls for that config do nothing). Best effort: without it each
 *  keystore logs in as before. NULL hold: nothing. */
int khsm_login_hold_keep(khsm_login_hold_t *hold, const khsm_keystore_t *ks);

/** For one keymgr run that loads a private key of config's card: the card
 *  served with the hold's kept login (serve.h), for the run to reach through
 *  p11-kit-client.so with P11_KIT_SERVER_ADDRESS=khsm_serve_address(). NULL
 *  *serve_ptr (and KHSM_EOK) when the hold keeps no login for config (or it
 *  was lost), when the module is p11-kit's client already or the client is
 *  not installed, or when serving fails: keymgr then uses the card on its
 *  own, with a login of its own. \param[out] serve_ptr  khsm_serve_stop(). */
int khsm_login_hold_serve(khsm_login_hold_t *hold, const char *config, khsm_serve_t **serve_ptr);

/** Close the hold's sessions (the card logs out once no other is open). */
void khsm_login_hold_free(khsm_login_hold_t *hold);

/** Open "<token-uri> <module-path>" with libdnssec. Explains the misleading
 *  "failed to load PKCS #11 module" Knot prints for an unencoded label.
 *  With p11-kit-client.so as the module (a card on another host), the
 *  server's socket is checked first (khsm_remote_check()).
 *  \param[out] ks_ptr  close with khsm_keystore_close(). */
int khsm_keystore_open(const char *config, khsm_keystore_t **ks_ptr);

/** When module is the guard (libknothsm-guard.so): can it start? Its
 *  configuration is found and parsed as the guard itself does at
 *  C_Initialize; KHSM_ECONFIG with the guard's own line ("knot-hsm-guard:
 *  FILE:LINE: …") and the remedy otherwise. KHSM_EOK for any other module.
 *  khsm_keystore_open() and khsm_zone_resolve() call it. */
int khsm_keystore_guard_check(const char *module);

/** PIN for every later login of this keystore that the URI's pin-source
 *  does not cover (the PIN stays owned by the caller and must outlive ks).
 *  GnuTLS gets it at most once per login: a wrong PIN is never retried. */
void khsm_keystore_set_pin(khsm_keystore_t *ks, const khsm_pin_t *pin);

/** Close and free. NULL accepted. */
void khsm_keystore_close(khsm_keystore_t *ks);

/** The token URI part of the config (owned by the keystore). */
const char *khsm_keystore_uri(const khsm_keystore_t *ks);

/** The libdnssec keystore, for key operations (owned by the keystore). */
dnssec_keystore_t *khsm_keystore_dnssec(khsm_keystore_t *ks);

/** Token flags now, as KHSM_TOKEN_* bits, read without logging in. */
int khsm_keystore_flags(const khsm_keystore_t *ks, unsigned *flags_ptr);

/** Refuse a login that could lock the token: final try or locked, unless
 *  force (never for locked). The detail names the way out. */
int khsm_login_precheck(unsigned token_flags, bool force);

/** Log in once. With pin NULL the PIN comes from the URI's pin-source, as
 *  for knotd. A failed login is never retried; the tries left are reported.
 *  Once a login of this process was refused, the first login of any other
 *  keystore is refused too (KHSM_EPIN_INCORRECT) without asking the card:
 *  one PIN try per command run, however many keystores it checks. */
int khsm_keystore_login(khsm_keystore_t *ks, const khsm_pin_t *pin, bool force);

/** Wait, retried as any card operation (lib/retry.h), until the card answers
 *  a search that needs no login: for a command that would rather wait for a
 *  busy card than fail, before its one login (which is never retried). */
int khsm_keystore_wait_ready(khsm_keystore_t *ks);

/** Whether the login of this keystore still holds (the session that keeps
 *  it answers as logged in). False before the first login and after the card
 *  forgot it (removal); true when the token cannot tell (no keeper session). */
bool khsm_keystore_logged_in(khsm_keystore_t *ks);

/** Inside a card operation: nothing while the login holds or when there was
 *  none; after the card forgot an accepted login (removal), one explicit
 *  login with the same PIN source, so that GnuTLS or libdnssec never log in
 *  on their own (they would report a refused PIN as a missing key or a
 *  signing error, which reads as a busy card and gets retried). */
int khsm_keystore_relogin(khsm_keystore_t *ks, bool force);

/** Open config, wait for the card (khsm_keystore_wait_ready()), read the
 *  token flags, refuse final try (unless force) and locked, and log in once
 *  through the URI's pin-source, then close: what
 *  knot-hsm does before it lets keymgr log in with the same config, so that a
 *  wrong PIN costs one try, found by knot-hsm, and keymgr never gets it. */
int khsm_keystore_login_check(const char *config, bool force);

/** List objects matching url (a URI on this keystore's token), logging in
 *  once first when login is set. Same PIN rules as khsm_keystore_login().
 *  \param[out] objs_ptr, count_ptr  deinit each and gnutls_free() the array. */
int khsm_keystore_find(khsm_keystore_t *ks, const char *url, bool login, const khsm_pin_t *pin,
                       bool force, gnutls_pkcs11_obj_t **objs_ptr, unsigned *count_ptr);

/** Free what khsm_keystore_find() returned. */
void khsm_keystore_objs_free(gnutls_pkcs11_obj_t *objs, unsigned count);
