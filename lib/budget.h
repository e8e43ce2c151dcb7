/* The card budget: for every card of knot.conf, the zones whose KSK it holds,
 * its signatures per year and on the busiest day, whether it keeps up at a
 * SmartCard-HSM's speed, and its key slots. Used slots are read from the card
 * (public objects, no login). The total comes from the operator (policy
 * key-slots=), kept in the header of the file policy writes: no PKCS #11
 * stack knot-hsm supports says it (OpenSC reports CK_UNAVAILABLE_INFORMATION
 * for the card's memory). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heal.h"
#include "knotconf.h"
#include "policy.h"

/* Signatures per second of the slowest card knot-hsm supports (SmartCard-HSM,
 * Nitrokey HSM 2, ECDSA P-256; doc/benchmarks.rst); the budget assumes it. */
#define KHSM_BUDGET_RATE 6
/* A card keeps up when its busiest day needs at most this share of the day
 * (percent): the rest is for retries, a ceremony rerun, a rollover. */
#define KHSM_BUDGET_BUSY_MAX 50

/* A zone whose KSK is on a card, with the policy its DNSKEY set is signed by. */
typedef struct {
	const char *zone;
	const char *card_config;    /* the card's keystore config, owned by its conf */
	khsm_policy_t policy;
} khsm_budget_zone_t;

typedef struct {
	char *keystore;             /* knot.conf keystore id naming the card */
	char *config;
	size_t zones;
	uint64_t per_year;          /* card signatures per year, all its zones */
	uint64_t peak_day;          /* on the busiest day (all zones' busiest at once) */
	uint64_t peak_seconds;      /* card time of that day at KHSM_BUDGET_RATE */
	bool keeps_up;
	bool zone_too_much;         /* not keeping up, one zone's busiest day alone is too much */
	long slots_used;            /* key pairs on the card; -1 when it was not read */
	long slots_total;           /* -1 when not known (policy key-slots=) */
	long slots_free;            /* -1 when either is not known */
	char note[256];             /* why slots_used is -1, else "" */
} khsm_budget_card_t;

typedef struct {
	khsm_budget_card_t *cards;
	size_t count;
} khsm_budget_t;

/** The zones of knot.conf whose KSK is on a card: offline the KSK side kconf's
 *  zones (their card its policy's keystore, their policy the ZSK side conf's),
 *  online conf's zones whose policy lists a pkcs11 keystore.
 *  \param[out] zones_ptr  free(); entries point into conf and kconf. */
int khsm_budget_zones(const khsm_conf_t *conf, const khsm_conf_t *kconf, khsm_budget_zone_t **zones_ptr,
                      size_t *count_ptr);

/** The budget of every card (pkcs11 keystore; keystores with one config are
 *  one card) of card_conf for zones[0..n); key_slots: the header value
 *  (khsm_budget_slots_read), or NULL; probes: the run's reads of the cards
 *  (lib/heal.h), to count the key pairs on each, or NULL not to read them.
 *  \param[out] out  free with khsm_budget_clear(). */
int khsm_budget_count(const khsm_conf_t *card_conf, const khsm_budget_zone_t *zones, size_t n,
                      const char *key_slots, khsm_card_probes_t *probes, khsm_budget_t *out);

/** The budget of one card (keystore id with config) for `zones` zones of one
 *  policy (st: its khsm_policy_stats()). \param[out] out  free with
 *  khsm_budget_card_clear(). */
int khsm_budget_one(const char *id, const char *config, size_t zones, const khsm_policy_stats_t *st,
                    const char *key_slots, khsm_card_probes_t *probes, khsm_budget_card_t *out);

/** Whether two keystore configs name one card (khsm_uri_card_name() without
 *  the module: through the guard or not, whatever the PIN source). */
bool khsm_budget_same_card(const char *config_a, const char *config_b);

/** Free one card's budget. */
void khsm_budget_card_clear(khsm_budget_card_t *card);

/** Free a budget. */
void khsm_budget_clear(khsm_budget_t *budget);

/** Key slots of keystore id in a key-slots value ("card:32,card2:20").
 *  KHSM_ENOENT when it names none. \param[out] slots_ptr */
int khsm_budget_slots_get(const char *key_slots, const char *id, long *slots_ptr);

/** policy's key-slots= argument in header form: "N" is for card (the
 *  policy's card), "ID:N,ID:N…" names pkcs11 keystores of conf; kept: the
 *  previous header value, whose other cards are kept. KHSM_EINVAL with a
 *  detail. \param[out] out_ptr  free(). */
int khsm_budget_slots_merge(const khsm_conf_t *conf, const char *arg, const char *card, const char *kept,
                            char **out_ptr);

/** The key-slots header of the file policy wrote for conf_path's card: of
 *  conf_path itself (the KSK side offline), else of knot-hsm.conf next to it
 *  (the include, online). KHSM_ENOENT when neither has one.
 *  \param[out] value_ptr  free(). */
int khsm_budget_slots_read(const char *conf_path, char **value_ptr);

/** Key slots of conf's keystore ks as policy key-slots= recorded them
 *  (khsm_budget_slots_read; knot-hsm's online copy of a card keystore takes
 *  the value of the keystore it copies). KHSM_ENOENT when not known.
 *  \param[out] slots_ptr */
int khsm_budget_slots_of(const khsm_conf_t *conf, const khsm_conf_keystore_t *ks, long *slots_ptr);
