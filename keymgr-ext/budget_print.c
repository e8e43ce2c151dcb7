#include <inttypes.h>
#include <stdio.h>

#include "budget_print.h"
#include "lib/display.h"
#include "lib/policy.h"

static void json_count(khsm_json_t *j, const char *key, long v)
{
	if (v < 0) {
		khsm_json_null(j, key);
	} else {
		khsm_json_int(j, key, v);
	}
}

void budget_card_json(khsm_json_t *j, const char *key, const khsm_budget_card_t *c)
{
	khsm_json_object(j, key);
	khsm_json_str(j, "keystore", c->keystore);
	khsm_json_uint(j, "zones", c->zones);
	khsm_json_uint(j, "signatures_per_year", c->per_year);
	khsm_json_uint(j, "signatures_peak_day", c->peak_day);
	khsm_json_uint(j, "peak_card_seconds", c->peak_seconds);
	khsm_json_uint(j, "assumed_signatures_per_second", KHSM_BUDGET_RATE);
	khsm_json_bool(j, "keeps_up", c->keeps_up);
	khsm_json_bool(j, "one_zone_too_much", c->zone_too_much);
	json_count(j, "key_slots_used", c->slots_used);
	json_count(j, "key_slots_total", c->slots_total);
	json_count(j, "key_slots_free", c->slots_free);
	if (c->note[0]) {
		khsm_json_str(j, "note", c->note);
	} else {
		khsm_json_null(j, "note");
	}
	khsm_json_end(j);
}

void budget_card_text(const khsm_budget_card_t *c, const char *prefix)
{
	char busy[64];
	khsm_duration_human((int64_t)c->peak_seconds, busy, sizeof(busy));
	if (c->zones == 0) {
		printf("%scard %s: no zone's policy signs with it\n", prefix, khsm_esc(c->keystore));
	} else {
		printf("%scard %s: %zu zone(s), %" PRIu64 " signatures per year, %" PRIu64 " on the busiest "
		       "day (%s of card time at %d signatures/s): %s\n", prefix, khsm_esc(c->keystore),
		       c->zones, c->per_year, c->peak_day, busy, KHSM_BUDGET_RATE,
		       c->keeps_up ? "keeps up" :
		       c->zone_too_much ? "does NOT keep up: one zone alone needs more than half a day of "
		                          "card time; sign its DNSKEY set less often (longer rrsig-lifetime "
		                          "and rrsig-refresh, ZSK lifetimes of days, not seconds; offline, a "
		                          "nearer ceremony until=)" :
		       "does NOT keep up: spread the zones over more cards");
	}
	if (c->slots_used < 0) {
		printf("%scard %s: key slots: %s\n", prefix, khsm_esc(c->keystore), khsm_esc(c->note));
	} else if (c->slots_total < 0) {
		printf("%scard %s: key slots: %ld used, free not known (the card does not say; give "
		       "policy key-slots=N from its data sheet)\n", prefix, khsm_esc(c->keystore), c->slots_used);
	} else {
		printf("%scard %s: key slots: %ld used, %ld free of %ld\n", prefix, khsm_esc(c->keystore),
		       c->slots_used, c->slots_free, c->slots_total);
	}
}
