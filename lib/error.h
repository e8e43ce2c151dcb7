/* Error codes of libknothsm: 0 on success, a negative KHSM_E* code on failure.
 * PKCS#11 (CKR_*), GnuTLS (GNUTLS_E_*) and libdnssec codes are translated once,
 * here, at the boundary. A module may attach a one-line detail (what failed and
 * what to do) that the CLI prints after the error text. */
#pragma once

#include <stdarg.h>

enum khsm_error {
	KHSM_EOK = 0,
	KHSM_ENOMEM = -1000,
	KHSM_EINVAL,          /* invalid argument or input */
	KHSM_ENOENT,          /* no such object, token, zone or file */
	KHSM_EEXIST,          /* already exists */
	KHSM_EAMBIGUOUS,      /* several matches where one is needed */
	KHSM_EIO,             /* reading or writing a file failed */
	KHSM_EMODULE,         /* PKCS#11 module cannot be loaded or initialised */
	KHSM_ENOTOKEN,        /* no token present */
	KHSM_ETOKEN,          /* token refused an operation */
	KHSM_EPIN_INCORRECT,  /* login failed: wrong PIN */
	KHSM_EPIN_FINAL_TRY,  /* next wrong PIN locks the token; login refused */
	KHSM_EPIN_LOCKED,     /* user PIN locked */
	KHSM_EPIN_UNSAFE,     /* PIN file readable by others or badly owned */
	KHSM_ENOPIN,          /* a PIN is needed but no source was given */
	KHSM_ELOGIN,          /* login failed for another reason */
	KHSM_EKEYSTORE,       /* libdnssec cannot open the keystore */
	KHSM_ENOTSUP,         /* token or tool lacks the feature */
	KHSM_EREMOVED,        /* token removed or device gone */
	KHSM_EBUSY,           /* token busy with another operation */
	KHSM_EDEVMEM,         /* token out of memory (key slots full) */
	KHSM_ECONFIG,         /* knot.conf problem */
	KHSM_ETOOL,           /* keymgr/knotc failed or reported an error */
	KHSM_EPARSE,          /* output of a tool or file could not be parsed */
	KHSM_ECRYPTO,         /* cryptographic check failed */
	KHSM_ERANGE,          /* value out of range */
	KHSM_EPERM,           /* permission denied */
	KHSM_ESIGN,           /* the token did not sign (busy, removed or refused) */
	KHSM_ERROR_LAST
};

/** Human readable text of a KHSM_E* code (static string, never NULL). */
const char *khsm_strerror(int code);

/** Record a one-line detail for the error being returned (thread-local). */
void khsm_err_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** Put a prefix before the recorded detail ("what: " + detail); with no
 * detail recorded, the prefix alone becomes it. The arguments must not point
 * into the detail itself (khsm_err_last_detail()). */
void khsm_err_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The same after the current detail: "<detail><formatted text>". */
void khsm_err_suffix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** The detail recorded by the last failing call in this thread, or NULL. */
const char *khsm_err_last_detail(void);

/** Forget the recorded detail; callers do this before an operation. */
void khsm_err_clear(void);

/** Translate a PKCS#11 CK_RV to a KHSM_E* code. */
int khsm_error_from_ckr(unsigned long rv);

/** Translate a GnuTLS error code to a KHSM_E* code. */
int khsm_error_from_gnutls(int gnutls_rc);

/** Translate a libdnssec error code to a KHSM_E* code. */
int khsm_error_from_dnssec(int dnssec_rc);
