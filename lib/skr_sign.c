/* Signing KSRs with the card inside knot-hsm, as `keymgr sign-ksr` of Knot
 * 3.2.6 does: one libdnssec PKCS#11 keystore and one login for the run. */
#include <inttypes.h>
#include <time.h>

#include "error.h"
#include "internal.h"
#include "kasp.h"
#include "keystore.h"
#include "retry.h"
#include "skr.h"
#include "skr_sign.h"
#include "timefmt.h"

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

struct khsm_skr_signer {
	khsm_keystore_t *ks;
	bool force;                /* a login at the final PIN try is allowed */
	bool logged_in;            /* the first login succeeded */
	signer_key_t *keys;        /* private keys stay loaded: one card session */
	size_t count;
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
void khsm_skr_signer_close(khsm_skr_signer_t *s)
{
	if (!s) return;
	for (size_t i = 0; i < s->count; i++) {
		dnssec_key_free(s->keys[i].key);
	}
	free(s->keys);
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

/* How a KSK of the KSK side takes part in a whole period [first, last]. */
typedef enum { KSK_SIGNS, KSK_PUBLISHED, KSK_GONE } ksk_part_t;

/* The states keymgr would compute for the KSK at every time of [first, last]
 * are one of the cases the signer reproduces (Knot 3.2.6 zone-keys.c
 * set_key()), with no timer in between: "published, active, not ready"
 * (signs: active at first and still at last, published at first, no
 * introduction timer still ahead); "published, never active" (a standby,
 * standby.h: in the DNSKEY set, signs nothing, its private key is never
 * loaded); removed at first (left out). */
static int ksk_steady(const khsm_ksk_key_t *key, int64_t first, int64_t last, ksk_part_t *part)
{
	const khsm_kasp_key_t *k = &key->kasp;
	if (!k->ksk || k->zsk || k->public_only) {
		khsm_err_detail("key %s on the KSK side is %s", k->id,
		                k->public_only ? "public-only" : "not a plain KSK");
		return KHSM_ENOTSUP;
	}
	if (khsm_kasp_key_state(k, first) == KHSM_KEY_STATE_REMOVED) {
		*part = KSK_GONE;
		return KHSM_EOK;
	}
	if (khsm_kasp_key_state(k, first) == KHSM_KEY_STATE_PUBLISHED &&
	    khsm_kasp_key_state(k, last) == KHSM_KEY_STATE_PUBLISHED && k->ready == 0 &&
	    k->active == 0 && k->pre_active == 0 && k->retire == 0 && k->remove == 0 &&
	    k->revoke == 0) {
		*part = KSK_PUBLISHED;
		return KHSM_EOK;
	}
	bool ahead = (k->pre_active != 0 && !khsm_kasp_reached(k->pre_active, first)) ||
	             (k->ready != 0 && !khsm_kasp_reached(k->ready, first));
	if (khsm_kasp_key_state(k, first) != KHSM_KEY_STATE_ACTIVE ||
	    khsm_kasp_key_state(k, last) != KHSM_KEY_STATE_ACTIVE ||
	    !khsm_kasp_reached(k->publish, first) || ahead) {
		khsm_err_detail("KSK %s is not published and active for the whole period (a KSK "
		                "rollover or removal is planned in it)", k->id);
		return KHSM_ENOTSUP;
	}
	*part = KSK_SIGNS;
	return KHSM_EOK;
}

/* The public key of a KSK that signs nothing (a standby): no card access. */
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

/* One SKR set at time now: KSKs + the KSR's ZSKs, signed by every KSK. */
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

/* keys: the DNSKEY set's KSKs, the nsign first of which sign. */
static int sign_set(khsm_skr_signer_t *s, dnssec_key_t *const *keys, size_t nkeys, size_t nsign,
                    const knot_dname_t *owner, const knot_rdataset_t *zsks, uint32_t ttl,
                    int64_t now, int64_t lifetime, FILE *out, size_t *sigs)
{
	int r = KHSM_ENOMEM;
	knot_rrset_t *dnskey = knot_rrset_new(owner, KNOT_RRTYPE_DNSKEY, KNOT_CLASS_IN, ttl, NULL);
	knot_rrset_t *rrsig = knot_rrset_new(owner, KNOT_RRTYPE_RRSIG, KNOT_CLASS_IN, ttl, NULL);
	uint8_t *wire = malloc(KNOT_WIRE_MAX_PKTSIZE);
	char *dump = NULL;
	size_t dump_size = 0;
	if (!dnskey || !rrsig || !wire) goto done;
	r = KHSM_EOK;
	for (size_t i = 0; i < nkeys && r == KHSM_EOK; i++) {
		dnssec_binary_t rd = { 0 };
		r = khsm_error_from_dnssec(dnssec_key_get_rdata(keys[i], &rd));
		if (r == KHSM_EOK && knot_rrset_add_rdata(dnskey, rd.data, (uint16_t)rd.size, NULL) != KNOT_EOK) {
			r = KHSM_ENOMEM;
		}
	}
	if (r == KHSM_EOK && knot_rdataset_merge(&dnskey->rrs, zsks, NULL) != KNOT_EOK) r = KHSM_ENOMEM;
	int wlen = r == KHSM_EOK ? knot_rrset_to_wire(dnskey, wire, KNOT_WIRE_MAX_PKTSIZE, NULL) : 0;
	if (r == KHSM_EOK && wlen < 0) {
		khsm_err_detail("DNSKEY set too large");
		r = KHSM_EINVAL;
	}
	size_t owner_size = knot_dname_size(owner);
	uint8_t labels = (uint8_t)knot_dname_labels(owner, NULL);
	for (size_t i = 0; i < nsign && r == KHSM_EOK; i++) {
		uint8_t rd[18 + KNOT_DNAME_MAXLEN + 512];
		put16(rd, KNOT_RRTYPE_DNSKEY);
		rd[2] = dnssec_key_get_algorithm(keys[i]);
		rd[3] = labels;
		put32(rd + 4, ttl);
		put32(rd + 8, (uint32_t)(now + lifetime));
		put32(rd + 12, (uint32_t)(now - KHSM_RRSIG_INCEPT_IN_PAST));
		put16(rd + 16, dnssec_key_get_keytag(keys[i]));
		memcpy(rd + 18, owner, owner_size);
		size_t hdr = 18 + owner_size;
		dnssec_binary_t part1 = { .data = rd, .size = hdr };
		dnssec_binary_t part2 = { .data = wire, .size = (size_t)wlen };
		dnssec_binary_t sig = { 0 };
		struct sign_op op = { .s = s, .key = keys[i], .part1 = &part1, .part2 = &part2, .sig = &sig };
		/* Under the card lock shared with other knot-hsm processes, and retried
		 * while the card is busy (libdnssec reports that as a signing error). */
		r = khsm_card_op("signing the DNSKEY set", sign_once, &op);
		if (r != KHSM_EOK) {
			khsm_err_detail("the card did not sign: %s", khsm_strerror(r));
			break;
		}
		if (hdr + sig.size > sizeof(rd)) {
			dnssec_binary_free(&sig);
			r = KHSM_EINVAL;
			break;
		}
		memcpy(rd + hdr, sig.data, sig.size);
		if (knot_rrset_add_rdata(rrsig, rd, (uint16_t)(hdr + sig.size), NULL) != KNOT_EOK) r = KHSM_ENOMEM;
		dnssec_binary_free(&sig);
		(*sigs)++;
	}
	/* Knot 3.2.6 key_records_dump(), verbose style */
	const knot_dump_style_t style = { .wrap = true, .show_ttl = true, .verbose = true,
	                                  .original_ttl = true, .human_timestamp = true };
	const knot_rrset_t *all[] = { dnskey, rrsig };
	char when[32];
	khsm_time_iso(now, when, sizeof(when));
	if (r == KHSM_EOK) fprintf(out, ";; SignedKeyResponse 1.0 %" PRId64 " (%s) =========\n", now, when);
	for (size_t i = 0; i < 2 && r == KHSM_EOK; i++) {
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
	knot_rrset_free(dnskey, NULL);
	knot_rrset_free(rrsig, NULL);
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
	if (!req->cds_default) {
		khsm_err_detail("the KSK side sets cds-cdnskey-publish");
		return KHSM_ENOTSUP;
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
	int64_t first = ksr.sets[0].timestamp, last = ksr.sets[ksr.count - 1].timestamp;
	knot_dname_t *owner = knot_dname_from_str_alloc(req->zone);
	dnssec_key_t **keys = calloc(req->key_count + 1, sizeof(*keys));
	size_t nkeys = 0;
	if (!owner || !keys) r = KHSM_ENOMEM;
	if (r == KHSM_EOK) knot_dname_to_lower(owner);
	if (r == KHSM_EOK && req->key_count == 0) {
		khsm_err_detail("%s has no KSK on the KSK side", req->zone);
		r = KHSM_ENOENT;
	}
	ksk_part_t *parts = calloc(req->key_count + 1, sizeof(*parts));
	if (r == KHSM_EOK && !parts) r = KHSM_ENOMEM;
	size_t nsign = 0, nstandby = 0;
	dnssec_key_t **standby = calloc(req->key_count + 1, sizeof(*standby));
	if (r == KHSM_EOK && !standby) r = KHSM_ENOMEM;
	for (size_t i = 0; i < req->key_count && r == KHSM_EOK; i++) {
		r = ksk_steady(&req->keys[i], first, last, &parts[i]);
		if (r == KHSM_EOK && parts[i] != KSK_GONE && !req->keys[i].rdata) {
			khsm_err_detail("no DNSKEY for key %s", req->keys[i].kasp.id);
			r = KHSM_ENOTSUP;
		}
		nsign += r == KHSM_EOK && parts[i] == KSK_SIGNS;
	}
	if (r == KHSM_EOK && nsign == 0) {
		khsm_err_detail("no KSK of %s signs for the whole period", req->zone);
		r = KHSM_ENOTSUP;
	}
	for (size_t i = 0; i < req->key_count && r == KHSM_EOK; i++) {
		if (parts[i] == KSK_SIGNS) {
			r = signer_key(s, owner, &req->keys[i], &keys[nkeys]);
			if (r == KHSM_EOK) nkeys++;
		} else if (parts[i] == KSK_PUBLISHED) {
			r = public_key(owner, &req->keys[i], &standby[nstandby]);
			if (r == KHSM_EOK) nstandby++;
		}
	}
	/* the signing keys first, then those only published */
	for (size_t i = 0; i < nstandby && r == KHSM_EOK; i++) keys[nkeys++] = standby[i];
	char *buf = NULL;
	size_t len = 0, sigs = 0;
	FILE *out = r == KHSM_EOK ? open_memstream(&buf, &len) : NULL;
	if (r == KHSM_EOK && !out) r = KHSM_ENOMEM;
	/* Knot 3.2.6 offline_ksk.c ksr_sign_header()/process_skr_between_ksrs():
	 * each KSR set is signed at its time; while the next KSR set is further
	 * away than the signature's expiration less rrsig-refresh, the same set
	 * is signed again at that moment. */
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
		int64_t t = set->timestamp;
		int64_t next = i + 1 < ksr.count ? ksr.sets[i + 1].timestamp : 0;
		if (r == KHSM_EOK) {
			r = sign_set(s, keys, nkeys, nsign, owner, &zsks, (uint32_t)set->dnskey_ttl, t,
			             req->rrsig_lifetime, out, &sigs);
		}
		for (t = t + req->rrsig_lifetime - req->rrsig_refresh; next && t < next && r == KHSM_EOK;
		     t += req->rrsig_lifetime - req->rrsig_refresh) {
			r = sign_set(s, keys, nkeys, nsign, owner, &zsks, (uint32_t)set->dnskey_ttl, t,
			             req->rrsig_lifetime, out, &sigs);
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
	/* the signing keys belong to the signer; the standbys' public keys here */
	for (size_t i = 0; standby && i < nstandby; i++) dnssec_key_free(standby[i]);
	free(standby);
	free(parts);
	free(keys);
	knot_dname_free(owner, NULL);
	if (r != KHSM_EOK) {
		free(buf);
		return r;
	}
	*skr_ptr = buf;
	if (sigs_ptr) *sigs_ptr = sigs;
	return KHSM_EOK;
}
