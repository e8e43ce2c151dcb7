/* doctor: the checks of a keystore config as knotd would use it, of the
 * guard module in front of the card, and of knot.conf's pkcs11 keystores;
 * one result per check (ok / warn / FAIL with a remedy), handed to the
 * caller as it is found. Nothing is printed here. */
#pragma once

#include <stdbool.h>

#include "pin.h"

typedef enum {
	KHSM_DOCTOR_OK = 0,
	KHSM_DOCTOR_WARN,
	KHSM_DOCTOR_FAIL,
} khsm_doctor_status_t;

/** "ok", "warn" or "FAIL". Static string. */
const char *khsm_doctor_status_name(khsm_doctor_status_t status);

/** Called once per check, in order: check names what was checked ("module",
 *  "keystore ID: login"), detail says what was found and, for a failure,
 *  the remedy (NULL only without memory). */
typedef void (*khsm_doctor_report_fn)(khsm_doctor_status_t status, const char *check,
                                      const char *detail, void *data);

/* A run of checks: the caller sets report and data; the counts add up. */
typedef struct {
	khsm_doctor_report_fn report;
	void *data;
	int failed;
	int warned;
} khsm_doctor_t;

/** Every check of one keystore config string ("<uri> <module>"), as knotd
 *  would use it, the check names prefixed with name ("" for none). pin, when
 *  given, is used for the one login (else the URI's pin-source); force as
 *  for every command (a final-try PIN). Failures are reported, not returned:
 *  KHSM_EOK when the checks ran. */
int khsm_doctor_config(khsm_doctor_t *rep, const char *name, const char *config,
                       const khsm_pin_t *pin, bool force);

/** doctor --token: the module (NULL: those registered with p11-kit), the
 *  token (a label or a pkcs11: URI), the PIN from pin_file (NULL: none) or
 *  read once from pin_fd (>= 0), then khsm_doctor_config() of the keystore
 *  config knot-hsm keystore would print. KHSM_EOK when the checks ran. */
int khsm_doctor_token(khsm_doctor_t *rep, const char *module, const char *token,
                      const char *pin_file, int pin_fd, bool force);

/** doctor -c: knot.conf valid for knotc, then khsm_doctor_config() of each of
 *  its pkcs11 keystores and their key-label. KHSM_EOK when the checks ran. */
int khsm_doctor_conf(khsm_doctor_t *rep, const char *conf_path, bool force);
