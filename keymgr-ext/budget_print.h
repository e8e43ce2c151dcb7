/* The card budget (lib/budget.h) as policy and status print it. */
#pragma once

#include "lib/budget.h"
#include "lib/json.h"

/** One card's budget as a JSON object (key: NULL inside an array). */
void budget_card_json(khsm_json_t *j, const char *key, const khsm_budget_card_t *card);

/** One card's budget as text lines, each starting with prefix. */
void budget_card_text(const khsm_budget_card_t *card, const char *prefix);
