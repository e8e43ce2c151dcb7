/* Signing KSRs with the card inside knot-hsm, as `keymgr sign-ksr` of Knot
 * 3.2.6 does: one libdnssec PKCS#11 keystore and one login per card for the
 * run, a second card only when a rollover's KSK is on it. */
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "cardkey.h"
#include "error.h"
#include "internal.h"
#include "kasp.h"
#include "keystore.h"
#include "pin.h"
#include "policy.h"
#include "retry.h"
#include "skr.h"
#include "skr_sign.h"
#include "standby.h"
#include "timefmt.h"
#include "uri.h"

#include <libdnssec/binary.h>
#include <libdnssec/error.h>
#include <libdnssec/key.h>
#include <libdnssec/keystore.h>
#include <libdnssec/sign.h>
#include <libknot/libknot.h>

/* -- signing KSRs with the card ------------------------------------------- */

/* Knot 3.2.6 src/knot/dnssec/rrset-sign.c: RRSIG_INCEPT_IN_PAST */
#define KHSM_RRSIG_INCEPT_IN_PAST (90 * 60)

typedef struct {
	char id[257];
	dnssec_key_t *key;         /* public and private (card) key */
} signer_key_t;

/* Which card a KSK was found on (khsm_skr_signer_add_card()). */
typedef struct {
	char id[257];
	khsm_skr_signer_t *card;
} key_card_t;

struct khsm_skr_signer {
	khsm_keystore_t *ks;
	bool force;                /* a login at the final PIN try is allowed */
	bool logged_in;            /* the first login succeeded */
	signer_key_t *keys;        /* private keys stay loaded: one card session */
	size_t count;
	/* Other cards of the KSK side, opened and logged in to only when a key
	 * that signs is on one of them (a rollover from card to card). */
	char **extra_configs;
	khsm_card_scope_t **extra_scopes; /* [i] the lock of that card (NULL: the thread's) */
	khsm_skr_signer_t **extra; /* [i] NULL until opened */
	size_t nextra;
	khsm_card_scope_t *scope;  /* an added card's signer: its card's lock */
	key_card_t *where;         /* with extra cards: where each key was found */
	size_t nwhere;
};

_public_
int khsm_skr_signer_open(const char *config, khsm_skr_signer_t **signer_ptr)
{
	if (!config || !signer_ptr) {
		return KHSM_EINVAL;
	}
	khsm_skr_signer_t *s = calloc(1, sizeof(*s));
	if (!s) return KHSM_ENOMEM;
	int r = khsm_keystore_open(config, &s->ks);
	if (r != KHSM_EOK) {
		free(s);
		return r;
	}
	*signer_ptr = s;
	return KHSM_EOK;
}

/*
 * The signer logs in explicitly, once, before any card key is loaded: token
 * flags first (final try refused unless force, locked always), then one
 * login through the URI's pin-source, outside any retry loop, held by the
 * keystore's keeper session for the whole run. libdnssec and GnuTLS never
 * get to log in on their own: they report a refused PIN as "not found" or
 * "signing error", which reads as a busy card and would be retried, one
 * try of the card each time. Only when the card forgot the login (removed
 * and back) does a retried operation log in again, with one explicit login
 * and the PIN the card accepted at the start of the run.
 */
_public_
int khsm_skr_signer_login(khsm_skr_signer_t *s, bool force)
{
	if (!s) {
		return KHSM_EINVAL;
	}
	if (s->logged_in) {
		return KHSM_EOK;
	}
	s->force = force;
	/* a busy card is waited for before the login, never by repeating it */
	int r = khsm_keystore_wait_ready(s->ks);
	if (r == KHSM_EOK) r = khsm_keystore_login(s->ks, NULL, force);
	s->logged_in = r == KHSM_EOK;
	return r;
}

/* Inside a card operation: the login holds, or is renewed once per try
 * after a removal; never a first login (that one is never retried). */
static int signer_relogin(khsm_skr_signer_t *s)
{
	if (!s->logged_in) {
		khsm_err_detail("the card keystore is not logged in");
		return KHSM_ELOGIN;
	}
	return khsm_keystore_relogin(s->ks, s->force);
}

_public_
int khsm_skr_signer_add_card(khsm_skr_signer_t *s, const char *config, const char *card_name)
{
	if (!s || !config || !card_name) {
		return KHSM_EINVAL;
	}
	char **c = realloc(s->extra_configs, (s->nextra + 1) * sizeof(*c));
	if (!c) return KHSM_ENOMEM;
	s->extra_configs = c;
	khsm_card_scope_t **sc = realloc(s->extra_scopes, (s->nextra + 1) * sizeof(*sc));
	if (!sc) return KHSM_ENOMEM;
	s->extra_scopes = sc;
	khsm_skr_signer_t **e = realloc(s->extra, (s->nextra + 1) * sizeof(*e));
	if (!e) return KHSM_ENOMEM;
	s->extra = e;
	if (!(c[s->nextra] = strdup(config))) return KHSM_ENOMEM;
	/* that card's own lock, as its own thread or another knot-hsm takes it;
	 * without a lock file the thread's lock (the machine-wide one) serves */
	sc[s->nextra] = NULL;
	if (khsm_card_scope_new(card_name, &sc[s->nextra]) != KHSM_EOK) khsm_err_clear();
	e[s->nextra++] = NULL;
	return KHSM_EOK;
}

/* An added card's pin-source is checked as the run's own cards' are
 * (pin.h: a file that would cost a PIN try is refused), before its login. */
static int pin_source_check(const char *config, bool force)
{
	char *uri = NULL, *module = NULL;
	khsm_uri_t attrs = { 0 };
	int r = khsm_uri_split_config(config, &uri, &module);
	if (r == KHSM_EOK) r = khsm_uri_parse(uri, &attrs);
	if (r == KHSM_EOK && attrs.pin_source) r = khsm_pin_file_verify("pin-source", attrs.pin_source, force);
	khsm_uri_clear(&attrs);
	free(uri);
	free(module);
	return r;
}

/* Card operations on an added card take that card's lock: the thread's
 * scope is swapped (never nested: no card operation is open meanwhile). */
static khsm_card_scope_t *card_enter(khsm_card_scope_t *scope)
{
	khsm_card_scope_t *prev = khsm_card_scope_current();
	if (scope) khsm_card_scope_share(scope);
	return prev;
}

static void card_leave(khsm_card_scope_t *scope, khsm_card_scope_t *prev)
{
	if (scope) khsm_card_scope_share(prev);
}

_public_
void khsm_skr_signer_close(khsm_skr_signer_t *s)
{
	if (!s) return;
	for (size_t i = 0; i < s->count; i++) {
		dnssec_key_free(s->keys[i].key);
	}
	free(s->keys);
	for (size_t i = 0; i < s->nextra; i++) {
		khsm_skr_signer_close(s->extra[i]);
		khsm_card_scope_free(s->extra_scopes[i]);
		/* a config may hold a pin-value */
		explicit_bzero(s->extra_configs[i], strlen(s->extra_configs[i]));
		free(s->extra_configs[i]);
	}
	free(s->extra);
	free(s->extra_scopes);
	free(s->extra_configs);
	free(s->where);
	khsm_keystore_close(s->ks);
	free(s);
}

struct load_op {
	khsm_skr_signer_t *s;
	const char *id;
	dnssec_key_t *key;
};

/* One try of loading a card key through libdnssec, which reports a busy card
 * as "not found": retried as busy while the login holds (a key really
 * missing costs the budget). A login lost meanwhile is a removal, retried
 * with one explicit login, never with GnuTLS's own. */
static int load_once(void *data)
{
	struct load_op *o = data;
	int r = signer_relogin(o->s);
	if (r != KHSM_EOK) return r;
	r = khsm_error_from_dnssec(dnssec_keystore_get_private(khsm_keystore_dnssec(o->s->ks),
	                                                       o->id, o->key));
	if (r == KHSM_ENOENT) {
		r = khsm_keystore_logged_in(o->s->ks) ? KHSM_EBUSY : KHSM_EREMOVED;
	}
	return r;
}

/* The card key of a KSK, loaded once per run. */
static int signer_key(khsm_skr_signer_t *s, const uint8_t *owner, const khsm_ksk_key_t *k,
                      dnssec_key_t **key_ptr)
{
	dnssec_binary_t rd = { 0 };
	int r = khsm_keyset_dnskey_wire(k->rdata, &rd);
	if (r != KHSM_EOK) return r;
	for (size_t i = 0; i < s->count; i++) {
		dnssec_binary_t have = { 0 };
		if (strcmp(s->keys[i].id, k->kasp.id) == 0 &&
		    dnssec_key_get_rdata(s->keys[i].key, &have) == DNSSEC_EOK &&
		    dnssec_binary_cmp(&have, &rd) == 0) {
			dnssec_binary_free(&rd);
			/* a shared KSK signs for several zones: set the signer name */
			r = khsm_error_from_dnssec(dnssec_key_set_dname(s->keys[i].key, owner));
			*key_ptr = s->keys[i].key;
			return r;
		}
	}
	dnssec_key_t *key = NULL;
	r = khsm_error_from_dnssec(dnssec_key_new(&key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_rdata(key, &rd));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_dname(key, owner));
	dnssec_binary_free(&rd);
	if (r == KHSM_EOK) {
		struct load_op op = { .s = s, .id = k->kasp.id, .key = key };
		r = khsm_card_op("loading the card key", load_once, &op);
		if (r != KHSM_EOK) {
			const char *d = khsm_err_last_detail();
			char why[1024];
			snprintf(why, sizeof(why), "%s", d ? d : "");
			if (r == KHSM_EPIN_INCORRECT || r == KHSM_EPIN_LOCKED || r == KHSM_EPIN_FINAL_TRY) {
				khsm_err_detail("%s", why);   /* the login's own words and remedy */
			} else {
				khsm_err_detail("the card key %s cannot be used for signing: %s%s%s", k->kasp.id,
				                r == KHSM_EBUSY ? "the card stayed busy, or the key is not on it"
				                                : khsm_strerror(r), why[0] ? "; " : "", why);
			}
		}
	}
	signer_key_t *g = r == KHSM_EOK ? realloc(s->keys, (s->count + 1) * sizeof(*g)) : NULL;
	if (r == KHSM_EOK && !g) r = KHSM_ENOMEM;
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	s->keys = g;
	snprintf(s->keys[s->count].id, sizeof(s->keys[s->count].id), "%s", k->kasp.id);
	s->keys[s->count++].key = key;
	*key_ptr = key;
	return KHSM_EOK;
}

/* The card a KSK is on: the signer's own, unless cards were added
 * (khsm_skr_signer_add_card()) and its public key object is on one of them
 * instead, looked for without a login once per key and run. An added card
 * is opened and logged in to (the same one try as the first login) when the
 * first key on it is needed; one that cannot be read is not that key's. */
static int key_card(khsm_skr_signer_t *s, const char *id, khsm_skr_signer_t **card_ptr)
{
	*card_ptr = s;
	if (s->nextra == 0) return KHSM_EOK;
	for (size_t i = 0; i < s->nwhere; i++) {
		if (strcmp(s->where[i].id, id) == 0) {
			*card_ptr = s->where[i].card;
			return KHSM_EOK;
		}
	}
	uint8_t *bin = NULL;
	size_t len = 0;
	khsm_cardobjs_t objs = { 0 };
	int r = khsm_hex_parse(id, &bin, &len);
	if (r == KHSM_EOK) r = khsm_cardkey_find(s->ks, NULL, bin, len, KHSM_URI_TYPE_PUBLIC, NULL, s->force, &objs);
	bool here = objs.count > 0;
	khsm_cardobjs_clear(&objs);
	free(bin);
	if (r != KHSM_EOK) return r;
	khsm_skr_signer_t *card = s;
	for (size_t i = 0; !here && i < s->nextra; i++) {
		bool present = false;
		khsm_card_scope_t *prev = card_enter(s->extra_scopes[i]);
		int pr = khsm_cardkey_present(s->extra_configs[i], id, s->force, &present);
		if (pr == KHSM_EOK && present) {
			if (!s->extra[i] && (r = khsm_skr_signer_open(s->extra_configs[i], &s->extra[i])) == KHSM_EOK) {
				s->extra[i]->scope = s->extra_scopes[i];
			}
			if (r == KHSM_EOK && !s->extra[i]->logged_in) r = pin_source_check(s->extra_configs[i], s->force);
			if (r == KHSM_EOK) r = khsm_skr_signer_login(s->extra[i], s->force);
		}
		card_leave(s->extra_scopes[i], prev);
		if (r != KHSM_EOK) return r;
		if (pr != KHSM_EOK || !present) {
			khsm_err_clear();   /* absent, or unreadable: not this key's card */
			continue;
		}
		card = s->extra[i];
		here = true;
	}
	key_card_t *w = realloc(s->where, (s->nwhere + 1) * sizeof(*w));
	if (!w) return KHSM_ENOMEM;
	s->where = w;
	snprintf(w[s->nwhere].id, sizeof(w[s->nwhere].id), "%s", id);
	w[s->nwhere++].card = card;
	*card_ptr = card;
	return KHSM_EOK;
}

/* A KSK of the KSK side at one moment. */
typedef struct {
	bool pub;      /* in the DNSKEY set */
	bool ready;    /* published long enough, waits for its DS */
	bool active;   /* Knot's is_active: the KSK whose DS is at the parent */
	bool sign;     /* signs the DNSKEY set (and the CDS and CDNSKEY) */
} ksk_at_t;

/* What keymgr of Knot 3.2.6 computes for a KSK at now (zone-keys.c
 * set_key(), the KSK half), but for a standby (standby.h): published, it
 * signs nothing, so that its private key is never needed. A revoked or
 * public-only key, or one that is not a plain KSK, is not reproduced. */
static int ksk_at(const khsm_kasp_key_t *k, int64_t now, ksk_at_t *at)
{
	if (!k->ksk || k->zsk || k->public_only) {
		khsm_err_detail("key %s on the KSK side is %s", k->id,
		                k->public_only ? "public-only" : "not a plain KSK");
		return KHSM_ENOTSUP;
	}
#define R(t) khsm_kasp_reached((t), now)
	if (R(k->revoke) && !R(k->remove)) {
		khsm_err_detail("KSK %s is revoked in the period", k->id);
		return KHSM_ENOTSUP;
	}
	bool pub = R(k->publish) && !R(k->post_active) && !R(k->remove);
	bool ready = R(k->ready) && !R(k->active);
	bool active = R(k->active) && !R(k->retire) && !R(k->retire_active) && !R(k->remove);
	bool plus = pub && !active;   /* Knot: a KSK signs whenever it is published */
	if (R(k->retire) && !R(k->remove)) {
		plus = false;
		pub = false;
	}
	if (R(k->retire_active) && !R(k->retire) && !R(k->remove)) plus = true;
	if (R(k->post_active) && !R(k->remove)) plus = false;
#undef R
	bool standby = khsm_standby_is(k);
	*at = (ksk_at_t) { .pub = pub, .ready = ready, .active = active,
	                   .sign = (active || plus) && !standby };
	return KHSM_EOK;
}

/* The first KSK timer after now, 0: none (Knot's next key event). */
static int64_t next_event(const khsm_ksk_key_t *keys, size_t n, int64_t now)
{
	int64_t next = 0;
	for (size_t i = 0; i < n; i++) {
		const khsm_kasp_key_t *k = &keys[i].kasp;
		const int64_t ts[] = { k->pre_active, k->publish, k->ready, k->active, k->retire_active,
		                       k->retire, k->post_active, k->revoke, k->remove };
		for (size_t j = 0; j < sizeof(ts) / sizeof(ts[0]); j++) {
			if (ts[j] > now && (next == 0 || ts[j] < next)) next = ts[j];
		}
	}
	return next;
}

/* The public key of a KSK that only takes part in the DNSKEY set (and its
 * CDS): no card access. */
static int public_key(const uint8_t *owner, const khsm_ksk_key_t *k, dnssec_key_t **key_ptr)
{
	dnssec_binary_t rd = { 0 };
	dnssec_key_t *key = NULL;
	int r = khsm_keyset_dnskey_wire(k->rdata, &rd);
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_new(&key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_rdata(key, &rd));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_key_set_dname(key, owner));
	dnssec_binary_free(&rd);
	if (r != KHSM_EOK) {
		dnssec_key_free(key);
		return r;
	}
	*key_ptr = key;
	return KHSM_EOK;
}

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* One RRSIG made on a card. */
struct sign_op {
	khsm_skr_signer_t *s;
	dnssec_key_t *key;
	const dnssec_binary_t *part1, *part2;
	dnssec_binary_t *sig;
};

/* One try of one RRSIG on the card. */
static int sign_once(void *data)
{
	struct sign_op *o = data;
	dnssec_binary_free(o->sig);
	int r = signer_relogin(o->s);   /* see khsm_skr_signer_login(): never GnuTLS's own */
	if (r != KHSM_EOK) return r;
	dnssec_sign_ctx_t *ctx = NULL;
	r = khsm_error_from_dnssec(dnssec_sign_new(&ctx, o->key));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(ctx, o->part1));
	if (r == KHSM_EOK) r = khsm_error_from_dnssec(dnssec_sign_add(ctx, o->part2));
	if (r == KHSM_EOK) {
		int d = dnssec_sign_write(ctx, DNSSEC_SIGN_NORMAL, o->sig);
		r = d != DNSSEC_SIGN_ERROR ? khsm_error_from_dnssec(d) :
		    khsm_keystore_logged_in(o->s->ks) ? KHSM_EBUSY : KHSM_EREMOVED;
	}
	dnssec_sign_free(ctx);
	return r;
}

/* The KSKs of one moment: those in the DNSKEY set, those whose CDS and
 * CDNSKEY are published, those that sign (each with the card it is on). */
typedef struct {
	dnssec_key_t **pub, **cds, **sign;
	khsm_skr_signer_t **card;
	size_t npub, ncds, nsign;
	ksk_at_t *at;              /* [i]: req->keys[i] at this moment */
	dnssec_key_t **key;        /* [i]: its key, NULL when it takes no part */
} moment_t;

/* The KSKs whose CDS and CDNSKEY are published (Knot 3.2.6 zone-sign.c
 * knot_zone_sign_get_cdnskeys()): the ready ones; with always, when none
 * is ready, the active ones; with double-ds, the active ones of the ready
 * one's algorithm as well. */
static void moment_cds(const khsm_skr_request_t *req, moment_t *m)
{
	m->ncds = 0;
	if (req->cds == KHSM_CDS_NONE) return;
	size_t ready = 0;
	uint8_t ready_alg = 0;
	for (size_t i = 0; i < req->key_count; i++) {
		if (m->key[i] && m->at[i].ready) {
			ready_alg = dnssec_key_get_algorithm(m->key[i]);
			m->cds[m->ncds++] = m->key[i];
			ready++;
		}
	}
	if ((req->cds == KHSM_CDS_ALWAYS && ready == 0) || req->cds == KHSM_CDS_DOUBLE_DS) {
		for (size_t i = 0; i < req->key_count; i++) {
			if (m->key[i] && m->at[i].active && !m->at[i].ready &&
			    (ready == 0 || dnssec_key_get_algorithm(m->key[i]) == ready_alg)) {
				m->cds[m->ncds++] = m->key[i];
			}
		}
	}
}

/* Add the RRSIG of rrset by key (on card) to rrsig. */
static int sign_rrset(khsm_skr_signer_t *card, dnssec_key_t *key, const knot_rrset_t *rrset,
                      knot_rrset_t *rrsig, uint8_t *wire, int64_t now, int64_t lifetime)
{
	int wlen = knot_rrset_to_wire(rrset, wire, KNOT_WIRE_MAX_PKTSIZE, NULL);
	if (wlen < 0) {
		khsm_err_detail("DNSKEY set too large");
		return KHSM_EINVAL;
	}
	const knot_dname_t *owner = rrset->owner;
	size_t owner_size = knot_dname_size(owner);
	uint8_t rd[18 + KNOT_DNAME_MAXLEN + 512];
	put16(rd, rrset->type);
	rd[2] = dnssec_key_get_algorithm(key);
	rd[3] = (uint8_t)knot_dname_labels(owner, NULL);
	put32(rd + 4, rrset->ttl);
	put32(rd + 8, (uint32_t)(now + lifetime));
	put32(rd + 12, (uint32_t)(now - KHSM_RRSIG_INCEPT_IN_PAST));
	put16(rd + 16, dnssec_key_get_keytag(key));
	memcpy(rd + 18, owner, owner_size);
	size_t hdr = 18 + owner_size;
	dnssec_binary_t part1 = { .data = rd, .size = hdr };
	dnssec_binary_t part2 = { .data = wire, .size = (size_t)wlen };
	dnssec_binary_t sig = { 0 };
	struct sign_op op = { .s = card, .key = key, .part1 = &part1, .part2 = &part2, .sig = &sig };
	/* Under the card lock shared with other knot-hsm processes, and retried
	 * while the card is busy (libdnssec reports that as a signing error). */
	khsm_card_scope_t *prev = card_enter(card->scope);
	int r = khsm_card_op("signing the DNSKEY set", sign_once, &op);
	card_leave(card->scope, prev);
	if (r != KHSM_EOK) {
		khsm_err_detail("the card did not sign: %s", khsm_strerror(r));
		return r;
	}
	if (hdr + sig.size > sizeof(rd)) {
		dnssec_binary_free(&sig);
		return KHSM_EINVAL;
	}
	memcpy(rd + hdr, sig.data, sig.size);
	r = knot_rrset_add_rdata(rrsig, rd, (uint16_t)(hdr + sig.size), NULL) == KNOT_EOK ? KHSM_EOK
	                                                                                 : KHSM_ENOMEM;
	dnssec_binary_free(&sig);
	return r;
}

/* Add the rdata of key (its DNSKEY) or of its SHA-256 DS (ds) to rrset. */
static int add_key(knot_rrset_t *rrset, const dnssec_key_t *key, bool ds)
{
	dnssec_binary_t rd = { 0 };
	int r = khsm_error_from_dnssec(ds ? dnssec_key_create_ds(key, DNSSEC_KEY_DIGEST_SHA256, &rd)
	                                  : dnssec_key_get_rdata(key, &rd));
	if (r == KHSM_EOK && knot_rrset_add_rdata(rrset, rd.data, (uint16_t)rd.size, NULL) != KNOT_EOK) {
		r = KHSM_ENOMEM;
	}
	if (ds) dnssec_binary_free(&rd);
	return r;
}

/* One SKR set at time now (Knot 3.2.6 offline_ksk.c ksr_sign_dnskey()):
 * the published KSKs and the KSR's ZSKs; the CDNSKEY and CDS of the ready
 * KSKs; every RRset signed by every KSK that signs; dumped as
 * key_records_dump() does. */
static int sign_set(const moment_t *m, const knot_dname_t *owner, const knot_rdataset_t *zsks,
                    uint32_t ttl, int64_t now, int64_t lifetime, FILE *out, size_t *sigs)
{
	int r = KHSM_ENOMEM;
	knot_rrset_t *set[3] = {
		knot_rrset_new(owner, KNOT_RRTYPE_DNSKEY, KNOT_CLASS_IN, ttl, NULL),
		/* TTL 0, as keymgr 3.2.6 writes them (key_records_init() runs
		 * before the KSR's DNSKEY TTL is known) */
		knot_rrset_new(owner, KNOT_RRTYPE_CDNSKEY, KNOT_CLASS_IN, 0, NULL),
		knot_rrset_new(owner, KNOT_RRTYPE_CDS, KNOT_CLASS_IN, 0, NULL),
	};
	knot_rrset_t *rrsig = knot_rrset_new(owner, KNOT_RRTYPE_RRSIG, KNOT_CLASS_IN, ttl, NULL);
	uint8_t *wire = malloc(KNOT_WIRE_MAX_PKTSIZE);
	char *dump = NULL;
	size_t dump_size = 0;
	if (!set[0] || !set[1] || !set[2] || !rrsig || !wire) goto done;
	r = KHSM_EOK;
	for (size_t i = 0; i < m->npub && r == KHSM_EOK; i++) r = add_key(set[0], m->pub[i], false);
	if (r == KHSM_EOK && knot_rdataset_merge(&set[0]->rrs, zsks, NULL) != KNOT_EOK) r = KHSM_ENOMEM;
	for (size_t i = 0; i < m->ncds && r == KHSM_EOK; i++) {
		r = add_key(set[1], m->cds[i], false);
		if (r == KHSM_EOK) r = add_key(set[2], m->cds[i], true);
	}
	for (size_t i = 0; i < m->nsign && r == KHSM_EOK; i++) {
		for (size_t t = 0; t < 3 && r == KHSM_EOK; t++) {
			if (knot_rrset_empty(set[t])) continue;
			r = sign_rrset(m->card[i], m->sign[i], set[t], rrsig, wire, now, lifetime);
			if (r == KHSM_EOK) (*sigs)++;
		}
	}
	/* Knot 3.2.6 key_records_dump(), verbose style */
	const knot_dump_style_t style = { .wrap = true, .show_ttl = true, .verbose = true,
	                                  .original_ttl = true, .human_timestamp = true };
	const knot_rrset_t *all[] = { set[0], set[1], set[2], rrsig };
	char when[32];
	khsm_time_iso(now, when, sizeof(when));
	if (r == KHSM_EOK) fprintf(out, ";; SignedKeyResponse 1.0 %" PRId64 " (%s) =========\n", now, when);
	for (size_t i = 0; i < 4 && r == KHSM_EOK; i++) {
		if (knot_rrset_empty(all[i])) continue;
		if (!dump) {
			dump_size = 4096;
			dump = malloc(dump_size);
			if (!dump) { r = KHSM_ENOMEM; break; }
		}
		int n = knot_rrset_txt_dump(all[i], &dump, &dump_size, &style); /* grows dump */
		if (n < 0) {
			r = KHSM_EINVAL;
			break;
		}
		fputs(dump, out);
	}
done:
	free(dump);
	free(wire);
	for (size_t i = 0; i < 3; i++) knot_rrset_free(set[i], NULL);
	knot_rrset_free(rrsig, NULL);
	return r;
}

/* The moment after t at which keymgr signs the set again: the next KSK
 * timer, or when the signatures are due for refresh. */
static int64_t next_moment(const khsm_skr_request_t *req, int64_t t)
{
	int64_t ev = next_event(req->keys, req->key_count, t);
	int64_t refresh = t + req->rrsig_lifetime - req->rrsig_refresh;
	return ev != 0 && ev < refresh ? ev : refresh;
}

/* Whether the signer reproduces the moment t, without the card: every KSK
 * in a state of ksk_at(), with its DNSKEY when it takes part, one signing. */
static int moment_check(const khsm_skr_request_t *req, int64_t t)
{
	size_t nsign = 0;
	for (size_t i = 0; i < req->key_count; i++) {
		ksk_at_t at = { 0 };
		int r = ksk_at(&req->keys[i].kasp, t, &at);
		if (r != KHSM_EOK) return r;
		if ((at.pub || at.ready || at.active || at.sign) && !req->keys[i].rdata) {
			khsm_err_detail("no DNSKEY for key %s", req->keys[i].kasp.id);
			return KHSM_ENOTSUP;
		}
		nsign += at.sign;
	}
	if (nsign == 0) {
		char when[32];
		khsm_time_iso(t, when, sizeof(when));
		khsm_err_detail("no KSK of %s signs at %s", req->zone, when);
		return KHSM_ENOTSUP;
	}
	return KHSM_EOK;
}

/* What a zone's KSKs are at now: each published key's public key (built
 * once, in pubs), each signing key's card key (loaded once per run). */
static int moment_at(khsm_skr_signer_t *s, const khsm_skr_request_t *req, const uint8_t *owner,
                     dnssec_key_t **pubs, int64_t now, moment_t *m)
{
	m->npub = m->ncds = m->nsign = 0;
	int r = KHSM_EOK;
	for (size_t i = 0; i < req->key_count && r == KHSM_EOK; i++) {
		const khsm_ksk_key_t *k = &req->keys[i];
		ksk_at_t at = { 0 };
		m->key[i] = NULL;
		if ((r = ksk_at(&k->kasp, now, &at)) != KHSM_EOK) break;
		m->at[i] = at;
		if (!at.pub && !at.ready && !at.active && !at.sign) continue;
		if (!k->rdata) {
			khsm_err_detail("no DNSKEY for key %s", k->kasp.id);
			r = KHSM_ENOTSUP;
			break;
		}
		dnssec_key_t *key = pubs[i];
		if (at.sign) {
			khsm_skr_signer_t *card = NULL;
			r = key_card(s, k->kasp.id, &card);
			if (r == KHSM_EOK) {
				khsm_card_scope_t *prev = card_enter(card->scope);
				r = signer_key(card, owner, k, &key);
				card_leave(card->scope, prev);
			}
			if (r != KHSM_EOK) break;
			m->card[m->nsign] = card;
			m->sign[m->nsign++] = key;
		} else if (!key) {
			if ((r = public_key(owner, k, &pubs[i])) != KHSM_EOK) break;
			key = pubs[i];
		}
		if (at.pub) m->pub[m->npub++] = key;
		m->key[i] = key;
	}
	if (r == KHSM_EOK) moment_cds(req, m);
	if (r == KHSM_EOK && m->nsign == 0) {
		char when[32];
		khsm_time_iso(now, when, sizeof(when));
		khsm_err_detail("no KSK of %s signs at %s", req->zone, when);
		r = KHSM_ENOTSUP;
	}
	return r;
}

_public_
int khsm_skr_sign(khsm_skr_signer_t *s, const khsm_skr_request_t *req, const char *ksr_text,
                  char **skr_ptr, size_t *sigs_ptr)
{
	if (!s || !req || !req->zone || !ksr_text || !skr_ptr) {
		return KHSM_EINVAL;
	}
	if (req->rrsig_lifetime <= 0 || req->rrsig_refresh <= 0 || req->rrsig_refresh >= req->rrsig_lifetime) {
		khsm_err_detail("the KSK side's rrsig-lifetime/rrsig-refresh are not both set");
		return KHSM_ENOTSUP;
	}
	if (req->cds < 0 || req->cds > KHSM_CDS_DOUBLE_DS) {
		khsm_err_detail("the KSK side sets a cds-cdnskey-publish or cds-digest-type this signer "
		                "does not reproduce");
		return KHSM_ENOTSUP;
	}
	for (size_t i = 1; i < req->key_count; i++) {
		if (req->keys[i].kasp.algorithm != req->keys[0].kasp.algorithm) {
			khsm_err_detail("the KSKs of %s differ in algorithm (an algorithm rollover)", req->zone);
			return KHSM_ENOTSUP;
		}
	}
	/* the first login, outside any retry (khsm_skr_signer_login()) */
	int r = khsm_skr_signer_login(s, s->force);
	if (r != KHSM_EOK) return r;
	khsm_keysets_t ksr = { 0 };
	r = khsm_keysets_parse(ksr_text, req->zone, &ksr);
	if (r != KHSM_EOK) return r;
	if (ksr.count == 0 || !strstr(ksr_text, "\n;; KeySigningRequest 1.0 generated")) {
		khsm_keysets_clear(&ksr);
		khsm_err_detail("the KSR has no key set or no trailer");
		return KHSM_EPARSE;
	}
	knot_dname_t *owner = knot_dname_from_str_alloc(req->zone);
	size_t n = req->key_count + 1;
	dnssec_key_t **pubs = calloc(n, sizeof(*pubs));
	moment_t m = { .pub = calloc(n, sizeof(*m.pub)), .cds = calloc(n, sizeof(*m.cds)),
	               .sign = calloc(n, sizeof(*m.sign)), .card = calloc(n, sizeof(*m.card)),
	               .at = calloc(n, sizeof(*m.at)), .key = calloc(n, sizeof(*m.key)) };
	if (!owner || !pubs || !m.pub || !m.cds || !m.sign || !m.card || !m.at || !m.key) r = KHSM_ENOMEM;
	if (r == KHSM_EOK) knot_dname_to_lower(owner);
	if (r == KHSM_EOK && req->key_count == 0) {
		khsm_err_detail("%s has no KSK on the KSK side", req->zone);
		r = KHSM_ENOENT;
	}
	/* Every moment of the KSR is one the signer reproduces before the card
	 * signs anything: a state it does not is keymgr sign-ksr's, whole. */
	for (size_t i = 0; i < ksr.count && r == KHSM_EOK; i++) {
		int64_t next = i + 1 < ksr.count ? ksr.sets[i + 1].timestamp : 0;
		for (int64_t t = ksr.sets[i].timestamp; r == KHSM_EOK; t = next_moment(req, t)) {
			if (next != 0 && t >= next && t != ksr.sets[i].timestamp) break;
			r = moment_check(req, t);
			if (next == 0) break;
		}
	}
	char *buf = NULL;
	size_t len = 0, sigs = 0;
	FILE *out = r == KHSM_EOK ? open_memstream(&buf, &len) : NULL;
	if (r == KHSM_EOK && !out) r = KHSM_ENOMEM;
	/* Knot 3.2.6 offline_ksk.c ksr_sign_header()/process_skr_between_ksrs():
	 * each KSR set is signed at its time, then again, until the next KSR
	 * set, at the next KSK timer or when the signatures are due for refresh
	 * (expiration less rrsig-refresh), whichever comes first. */
	for (size_t i = 0; i < ksr.count && r == KHSM_EOK; i++) {
		const khsm_keyset_t *set = &ksr.sets[i];
		knot_rdataset_t zsks = { 0 };
		if (set->dnskey_count == 0 || set->dnskey_ttl < 0) {
			khsm_err_detail("KSR set %" PRId64 " has no DNSKEY with a TTL", set->timestamp);
			r = KHSM_EPARSE;
		}
		for (size_t k = 0; k < set->dnskey_count && r == KHSM_EOK; k++) {
			dnssec_binary_t rd = { 0 };
			r = khsm_keyset_dnskey_wire(set->dnskeys[k], &rd);
			if (r == KHSM_EOK) {
				uint8_t tmp[knot_rdata_size((uint16_t)rd.size)];
				knot_rdata_t *kr = (knot_rdata_t *)tmp;
				knot_rdata_init(kr, (uint16_t)rd.size, rd.data);
				if (knot_rdataset_add(&zsks, kr, NULL) != KNOT_EOK) r = KHSM_ENOMEM;
			}
			dnssec_binary_free(&rd);
		}
		int64_t next = i + 1 < ksr.count ? ksr.sets[i + 1].timestamp : 0;
		for (int64_t t = set->timestamp; r == KHSM_EOK; ) {
			r = moment_at(s, req, owner, pubs, t, &m);
			if (r == KHSM_EOK) {
				r = sign_set(&m, owner, &zsks, (uint32_t)set->dnskey_ttl, t, req->rrsig_lifetime,
				             out, &sigs);
			}
			t = next_moment(req, t);
			if (next == 0 || t >= next) break;
		}
		knot_rdataset_clear(&zsks, NULL);
	}
	if (r == KHSM_EOK) {
		char when[32];
		khsm_time_iso((int64_t)time(NULL), when, sizeof(when));
		fprintf(out, ";; SignedKeyResponse 1.0 generated at %s by knot-hsm (card keystore "
		        "through libdnssec)\n", when);
	}
	if (out) fclose(out);
	if (r != KHSM_EOK && r != KHSM_ENOTSUP && r != KHSM_ENOMEM && r != KHSM_EPARSE && r != KHSM_ENOENT) {
		/* libdnssec says only "signing failed": ask the token whether the
		 * card is still there, so that a removal is reported as one. */
		unsigned flags = 0;
		int pr = khsm_keystore_flags(s->ks, &flags);
		if (pr == KHSM_ENOTOKEN || pr == KHSM_EREMOVED) {
			khsm_err_detail("the card was removed or is not present (token not available) while "
			                "signing %s", req->zone);
			r = KHSM_EREMOVED;
		}
	}
	khsm_keysets_clear(&ksr);
	/* the signing keys belong to their card's signer; public keys here */
	for (size_t i = 0; pubs && i < n; i++) dnssec_key_free(pubs[i]);
	free(pubs);
	free(m.pub);
	free(m.cds);
	free(m.sign);
	free(m.card);
	free(m.at);
	free(m.key);
	knot_dname_free(owner, NULL);
	if (r != KHSM_EOK) {
		free(buf);
		return r;
	}
	*skr_ptr = buf;
	if (sigs_ptr) *sigs_ptr = sigs;
	return KHSM_EOK;
}
