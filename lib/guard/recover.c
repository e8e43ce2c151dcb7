/* Recovery after a lost card: pcscd killed and restarted, the card pulled and
 * put back. OpenSC (opensc-pkcs11.so) re-establishes its PC/SC context only
 * in C_GetSlotList called with a NULL list, and GnuTLS, which knotd and
 * keymgr use, never makes that call after its start: without help a
 * long-running process never signs again after a pcscd restart. (A card put
 * back while pcscd runs OpenSC finds by itself; the guard adds the bounded
 * wait, the quick failures of a long outage and the audit lines.)
 *
 * What the guard does (recover = yes):
 *  - it notices the loss: a card call on a slot or session answers a code a
 *    lost card gives (CKR_DEVICE_ERROR, CKR_GENERAL_ERROR, CKR_DEVICE_REMOVED,
 *    CKR_TOKEN_NOT_PRESENT, a session the module forgot), or C_GetSlotList
 *    with tokens present leaves out a slot that had one;
 *  - it makes the module enumerate its readers, C_GetSlotList(CK_FALSE, NULL,
 *    &n), before every C_GetSlotList with a list (GnuTLS asks for one before
 *    each use of a token), so that the loss shows there, before a session is
 *    opened on the module's stale state (measured: OpenSC then opens a
 *    session and fails the C_Login); after a loss it enumerates again and,
 *    when the card is still not there, waits for it, polling
 *    that way, up to recover_wait seconds once per outage: a short outage is
 *    waited out inside the call, and in a long one every later call fails at
 *    once (CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED), so that no worker of
 *    the application hangs, until the card is seen again;
 *  - once it is back: a slot call is made again; a session the module closed
 *    on the way is answered CKR_SESSION_HANDLE_INVALID, on which GnuTLS
 *    opens a new session, logs in with the PIN of its pin-source and finds
 *    the key again by its URI (lib/pkcs11_privkey.c, REPEAT_ON_INVALID_HANDLE
 *    at C_SignInit); knotd also imports its keys anew for every signing.
 *    The guard therefore keeps no PIN and no handle of its own.
 * Each outage writes card_lost, then card_back or card_gone (the wait ran
 * out) to the audit log, and says so on stderr (knotd's log).
 *
 * Locks: recovery holds khsm_guard.recover_lock, taken after the card lock
 * of a call (never the other way round), and calls the card's module
 * directly. */
#include <errno.h>
#include <time.h>

#include "internal.h"

#define POLL_MS 200

bool khsm_guard_lost_code(CK_RV rv)
{
	switch (rv) {
	case CKR_DEVICE_ERROR:
	case CKR_GENERAL_ERROR:
	case CKR_DEVICE_REMOVED:
	case CKR_TOKEN_NOT_PRESENT:
	case CKR_TOKEN_NOT_RECOGNIZED:
	case CKR_SESSION_HANDLE_INVALID:
	case CKR_SESSION_CLOSED:
		return true;
	default:
		return false;
	}
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_poll(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = POLL_MS * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* The card's module looks at its readers again (OpenSC: a new PC/SC
 * context when pcscd restarted, a new card in a reader). */
static void enumerate(void)
{
	CK_ULONG n = 0;
	(void)khsm_guard.fl->C_GetSlotList(CK_FALSE, NULL, &n);
}

void khsm_guard_recover_enumerate(void)
{
	if (khsm_guard.conf.recover) enumerate();
}

static bool token_present(CK_SLOT_ID slot)
{
	CK_SLOT_INFO si;
	return khsm_guard.fl->C_GetSlotInfo(slot, &si) == CKR_OK && (si.flags & CKF_TOKEN_PRESENT);
}

static bool session_alive(CK_SESSION_HANDLE h)
{
	CK_SESSION_INFO si;
	return khsm_guard.fl->C_GetSessionInfo(h, &si) == CKR_OK;
}

/* One line of the audit log about the card, outside any call. */
static void note(const char *fn, CK_SLOT_ID slot, CK_RV rv, const char *key, long value)
{
	call_t c;
	khsm_guard_call_begin(&c, fn, 0);
	c.have_slot = true;
	c.slot = slot;
	if (key) khsm_guard_call_add(&c, ",\"%s\":%ld", key, value);
	(void)khsm_guard_call_end(&c, rv);
}

/* The sessions of the slot the card's module no longer knows: forgotten
 * here too, so that the guard answers them itself. */
static void drop_dead_sessions(CK_SLOT_ID slot)
{
	pthread_mutex_lock(&khsm_guard.lock);
	for (session_t **pp = &khsm_guard.sessions; *pp;) {
		session_t *s = *pp;
		if (s->slot == slot && !session_alive(s->h)) {
			*pp = s->next;
			khsm_guard_session_free(s);
		} else {
			pp = &s->next;
		}
	}
	pthread_mutex_unlock(&khsm_guard.lock);
}

typedef enum { NOT_LOST, BACK, GONE } outcome_t;

/* The card of a lost slot is there again: the outage ends. Callers hold
 * recover_lock. */
static void back_locked(slot_t *card)
{
	long down = now_ms() - card->lost_since;
	card->lost = false;
	card->gave_up = false;
	drop_dead_sessions(card->id);
	note("card_back", card->id, CKR_OK, "down_ms", down);
	khsm_guard_warn("the card in slot %lu is back after %ld ms; sessions opened before the loss are "
	                "gone: the application opens new ones and logs in again", card->id, down);
}

/* After a sign of loss on a slot (cause; fn the call that saw it; h its
 * session or CK_INVALID_HANDLE; missing: left out of a slot list): enumerate,
 * wait if this outage may still wait, and tell what became of the card. */
static outcome_t recover(slot_t *card, CK_RV cause, const char *fn, CK_SESSION_HANDLE h, bool missing)
{
	khsm_guard_state_t *g = &khsm_guard;
	CK_SLOT_ID slot = card->id;
	/* Only a card this process has seen can be lost: a slot that never had
	 * one (a card not inserted at the start) is answered as it is. */
	if (!__atomic_load_n(&card->had_token, __ATOMIC_RELAXED)) return NOT_LOST;
	pthread_mutex_lock(&g->recover_lock);
	enumerate();
	bool present = token_present(slot);
	bool alive = h == CK_INVALID_HANDLE || session_alive(h);
	if (present && alive && !missing && !card->lost) {
		/* The code had another cause: the card and the session are there. */
		pthread_mutex_unlock(&g->recover_lock);
		return NOT_LOST;
	}
	char b[32];
	if (!card->lost) {
		__atomic_store_n(&card->lost, true, __ATOMIC_RELAXED);
		card->gave_up = false;
		card->lost_since = now_ms();
		call_t c;
		khsm_guard_call_begin(&c, "card_lost", 0);
		c.have_slot = true;
		c.slot = slot;
		khsm_guard_call_add(&c, ",\"call\":\"%s\",\"wait\":%u", fn, g->conf.recover_wait);
		(void)khsm_guard_call_end(&c, cause);
		khsm_guard_warn("the card in slot %lu is lost (%s answered %s): enumerating the readers again%s",
		                slot, fn, khsm_guard_ckr_name(cause, b, sizeof(b)),
		                present ? "" : " and waiting for it (recover_wait)");
	}
	long deadline = card->lost_since + (long)g->conf.recover_wait * 1000;
	while (!present && !card->gave_up && now_ms() < deadline) {
		pause_poll();
		enumerate();
		present = token_present(slot);
	}
	outcome_t out;
	if (present) {
		back_locked(card);
		out = BACK;
	} else {
		if (!card->gave_up) {
			card->gave_up = true;
			note("card_gone", slot, CKR_TOKEN_NOT_PRESENT, "waited_ms", now_ms() - card->lost_since);
			khsm_guard_warn("the card in slot %lu did not come back within %u s (recover_wait in %s): "
			                "card calls fail at once until it is back; check pcscd and the card",
			                slot, g->conf.recover_wait, g->conf.path);
		}
		out = GONE;
	}
	pthread_mutex_unlock(&g->recover_lock);
	return out;
}

bool khsm_guard_recover_wanted(const call_t *c, CK_RV rv)
{
	return khsm_guard.conf.recover && c->card && !(c->flags & NORECOVER) && khsm_guard_lost_code(rv);
}

void khsm_guard_recover_seen(slot_t *card)
{
	if (!card) return;
	__atomic_store_n(&card->had_token, true, __ATOMIC_RELAXED);
	/* Seen again during an outage (the module found the card by itself):
	 * the outage is over. */
	if (khsm_guard.conf.recover && __atomic_load_n(&card->lost, __ATOMIC_RELAXED)) {
		pthread_mutex_lock(&khsm_guard.recover_lock);
		if (card->lost) back_locked(card);
		pthread_mutex_unlock(&khsm_guard.recover_lock);
	}
}

CK_RV khsm_guard_recover_call(call_t *c, CK_RV rv)
{
	CK_SESSION_HANDLE h = c->have_session ? c->session : CK_INVALID_HANDLE;
	switch (recover(c->card, rv, c->fn, h, false)) {
	case NOT_LOST:
		return rv;
	case BACK:
		c_true(c, "recovered");
		if (h == CK_INVALID_HANDLE) {
			/* A slot call that changes nothing: once more, now that the card is there. */
			return (c->flags & CHANGE) == CHANGE ? rv : KHSM_GUARD_CALL_AGAIN;
		}
		return session_alive(h) ? rv : CKR_SESSION_HANDLE_INVALID;
	default:
		return h == CK_INVALID_HANDLE ? CKR_TOKEN_NOT_PRESENT : CKR_DEVICE_REMOVED;
	}
}

/* Is the slot in the list? */
static bool listed(CK_SLOT_ID slot, const CK_SLOT_ID *list, CK_ULONG n)
{
	for (CK_ULONG i = 0; i < n; i++) {
		if (list[i] == slot) return true;
	}
	return false;
}

bool khsm_guard_recover_list(CK_BBOOL present, const CK_SLOT_ID *list, CK_ULONG n)
{
	if (!khsm_guard.conf.recover || !present || !list) return false;
	for (CK_ULONG i = 0; i < n; i++) khsm_guard_recover_seen(khsm_guard_slot_get(list[i]));
	/* A slot that had a token and is missing now: a lost card. */
	slot_t *missing = NULL;
	pthread_mutex_lock(&khsm_guard.lock);
	for (slot_t *s = khsm_guard.slots; s && !missing; s = s->next) {
		if (s->had_token && !listed(s->id, list, n)) missing = s;
	}
	pthread_mutex_unlock(&khsm_guard.lock);
	return missing && recover(missing, CKR_TOKEN_NOT_PRESENT, "C_GetSlotList", CK_INVALID_HANDLE, true) == BACK;
}
