/* Card operations one at a time, retried while the card is busy or briefly gone.
 *
 * A smartcard does one thing at a time: while knotd, pkcs11-tool or another
 * knot-hsm uses it, OpenSC answers CKR_DEVICE_ERROR; a card pulled and pushed
 * back answers CKR_DEVICE_REMOVED, CKR_TOKEN_NOT_PRESENT or
 * CKR_SESSION_HANDLE_INVALID for a moment. Such failures are retried with
 * exponential backoff (50 ms doubling, at most 1 s apart, 10 s of waiting in
 * all; KHSM_RETRY_FIRST_MS and KHSM_RETRY_MS override, KHSM_RETRY_MS=0 turns
 * retries off). PIN errors are never transient, and a login is never retried:
 * callers run the first login of a keystore outside khsm_card_op(). A card
 * operation nested in another is tried once; the outermost one retries.
 *
 * Serialisation: every card operation of knot-hsm runs under a process-wide
 * lock (recursive, and taken by the threads in turn, first come first
 * served, so a thread that signs zone after zone cannot starve a worker's
 * one operation) and an flock on a lock file shared by all knot-hsm
 * processes of the machine: KHSM_LOCK_FILE, else /run/knot-hsm/card.lock
 * (KHSM_LOCK_DIR overrides the directory; root creates it 2770 root:knot, or
 * 0700 without a knot group), else for a user who cannot open that one
 * $XDG_RUNTIME_DIR/knot-hsm.lock. Only root and knotd's user can take it: the
 * lock file (0660) is opened without following a symlink and refused
 * (KHSM_EPERM) when it is a symlink, not a regular file, owned by another user
 * or open to others; so is a lock directory not root's or open to others.
 * When no lock file can be opened the operation
 * runs unserialised across processes (retries still cover collisions). The
 * lock file is opened and checked once per process (close-on-exec); the
 * flock is held per operation and never while sleeping between retries.
 * keymgr children that do card work (sign-ksr, import-pkcs11, delete) run
 * while knot-hsm holds it (khsm_keymgr_card()): keymgr and knotd do not take
 * it themselves, so holding it across the child cannot deadlock; other keymgr
 * children and knotc children run without it: over many zones those that
 * work on KASP alone (list, dnskey, ds, share) read a keyless cut of
 * knot.conf and never open the card (zoneconf.h); without a cut, while one
 * is in use, they take the lock too. */
#pragma once

#include <stdbool.h>

typedef struct {
	unsigned first_ms;      /* delay before the first retry */
	unsigned max_delay_ms;  /* cap of one delay */
	unsigned budget_ms;     /* total time slept before giving up; 0: never retry */
} khsm_retry_policy_t;

/** Called before each retry (what: the operation, code: the KHSM_E* it failed with). */
typedef void (*khsm_retry_notify_t)(const char *what, int code, unsigned delay_ms, void *data);

/** Is a KHSM_E* code a busy or removed card, worth retrying? PIN and login
 *  errors never are. */
bool khsm_retry_transient(int code);

/** The policy of this process: defaults overridden by KHSM_RETRY_FIRST_MS and
 *  KHSM_RETRY_MS (whole numbers of milliseconds; anything else is ignored). */
void khsm_retry_policy_default(khsm_retry_policy_t *policy_ptr);

/** Set the function told before each retry (none by default; the knot-hsm
 *  CLI prints "note: card busy while WHAT; retrying in N ms"). */
void khsm_retry_set_notify(khsm_retry_notify_t notify, void *data);

/** Run op(ctx) (returns KHSM_E*) until it succeeds, fails with a code that is
 *  not transient, or the budget is spent; returns op's last code. After a
 *  transient failure that exhausted the budget the error detail says so. */
int khsm_retry_run(const khsm_retry_policy_t *policy, const char *what,
                   int (*op)(void *ctx), void *ctx);

/** khsm_retry_run() with the default policy, each try under khsm_card_lock(). */
int khsm_card_op(const char *what, int (*op)(void *ctx), void *ctx);

/** Take the card lock (recursive within a thread). KHSM_EBUSY when another
 *  knot-hsm process held the lock file for 60 s; KHSM_EPERM when the lock
 *  file or its directory is refused (the detail says why). */
int khsm_card_lock(void);

/** Release one level of khsm_card_lock(). */
void khsm_card_unlock(void);

/** Whether the calling thread holds khsm_card_lock() (of its card scope). */
bool khsm_card_lock_held(void);

/** How many of this process's threads wait for the card lock of the
 *  calling thread's card scope (what a served client's call waits in). */
unsigned khsm_card_lock_waiting(void);

typedef struct khsm_card_scope khsm_card_scope_t;

/** From now on, the calling thread's card operations concern one card,
 *  named by card (its token and module): khsm_card_lock() in this thread
 *  then takes the machine-wide lock file shared (flock LOCK_SH, through an
 *  own descriptor) and that card's lock file (the machine-wide name plus
 *  ".card-" and 16 hex digits of the FNV-1a 64 hash of card) exclusively,
 *  so threads and processes working on different cards run side by side,
 *  and a knot-hsm that names no card still excludes them all. KHSM_EINVAL
 *  when the thread has a scope already. Undo with khsm_card_scope_end() in
 *  the same thread. */
int khsm_card_scope_begin(const char *card);

/** A scope of card bound to no thread (as khsm_card_scope_begin() makes):
 *  a thread working on a second card shares it around those operations
 *  (khsm_card_scope_share()). Its lock files are descriptors of its own,
 *  so it excludes, and is excluded by, every other scope of that card.
 *  \param[out] scope_ptr  free with khsm_card_scope_free(). */
int khsm_card_scope_new(const char *card, khsm_card_scope_t **scope_ptr);

/** Free a scope from khsm_card_scope_new() that no thread uses. NULL is fine. */
void khsm_card_scope_free(khsm_card_scope_t *scope);

/** End the calling thread's card scope (none: nothing). */
void khsm_card_scope_end(void);

/** The calling thread's card scope, or NULL. */
khsm_card_scope_t *khsm_card_scope_current(void);

/** Let the calling thread's card operations take the lock of scope, which
 *  another thread began (a helper thread working for that card; its
 *  recursive mutex keeps the two apart); NULL undoes it. The scope must
 *  outlive this: its owner ends it only after the helper is done. */
void khsm_card_scope_share(khsm_card_scope_t *scope);
