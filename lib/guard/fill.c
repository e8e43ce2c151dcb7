/* Entry points the guard may answer in software, only where the card lacks
 * it (fill = yes): digests, random numbers, hashed signature mechanisms
 * (hashed here, the raw mechanism on the card) and verification with the
 * public key. Signing itself is always the card's. The GnuTLS work is in
 * soft.c; what is done here is PKCS #11's bookkeeping of each operation. */
#include "internal.h"

/* -- what the card has -- */

/* Mechanism info of the card itself; callers hold the card lock. */
static bool card_mech(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_FLAGS flag, CK_MECHANISM_INFO *info)
{
	CK_MECHANISM_INFO tmp;
	if (!info) info = &tmp;
	return khsm_guard.fl->C_GetMechanismInfo(slot, type, info) == CKR_OK && (info->flags & flag);
}

/* Has the card its own random number generator? Callers hold the card lock. */
static bool card_rng(slot_t *s)
{
	if (s->rng < 0) {
		CK_TOKEN_INFO ti;
		if (khsm_guard.fl->C_GetTokenInfo(s->id, &ti) != CKR_OK) return true;  /* let the card answer */
		s->rng = (ti.flags & CKF_RNG) != 0;
	}
	return s->rng != 0;
}

static const CK_MECHANISM_TYPE FILLABLE[] = {
	CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512,
	CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS,
	CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512,
};

/* What the guard adds for a mechanism the card lacks, from the card's raw
 * mechanism. Callers hold the card lock. */
static bool filled_info(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *info)
{
	if (!khsm_guard.conf.fill) return false;
	CK_MECHANISM_TYPE raw;
	gnutls_digest_algorithm_t dig;
	if (khsm_soft_digest(type) != GNUTLS_DIG_UNKNOWN) {
		*info = (CK_MECHANISM_INFO){ 0, 0, CKF_DIGEST };
		return true;
	}
	if (khsm_soft_hashed(type, &raw, &dig) && card_mech(slot, raw, CKF_SIGN, info)) {
		info->flags &= ~(CKF_HW | CKF_DECRYPT | CKF_ENCRYPT | CKF_WRAP | CKF_UNWRAP |
		                 CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER);
		info->flags |= CKF_SIGN;
		if (khsm_guard.conf.verify != KHSM_GUARD_VERIFY_CARD) info->flags |= CKF_VERIFY;
		return true;
	}
	return false;
}

/* -- the token and its mechanisms, with what is filled in -- */

CK_RV khsm_guard_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	BEGIN_SLOT_CALL(GetTokenInfo, 0, slot);
	PROCESS_CALL(GetTokenInfo, (slot, info));
	if (rv == CKR_OK) khsm_guard_recover_seen(c.card);
	if (rv == CKR_OK && info) {
		c.card->rng = (info->flags & CKF_RNG) != 0;
		if (khsm_guard.conf.fill && !(info->flags & CKF_RNG)) {
			info->flags |= CKF_RNG;   /* filled in by gnutls_rnd */
			c_true(&c, "software");
		}
	}
	DONE_CALL;
}

CK_RV khsm_guard_C_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	BEGIN_SLOT_CALL(GetMechanismList, 0, slot);
	CK_MECHANISM_TYPE *all = NULL;
	CK_ULONG n = 0;
	if (rv == CKR_OK && !count) rv = CKR_ARGUMENTS_BAD;
	PROCESS_CALL(GetMechanismList, (slot, NULL, &n));
	if (rv == CKR_OK) {
		all = calloc(n + KHSM_ARRAY_SIZE(FILLABLE) + 1, sizeof(*all));
		if (!all) rv = CKR_HOST_MEMORY;
	}
	PROCESS_CALL(GetMechanismList, (slot, all, &n));
	CK_ULONG real = n;
	for (size_t i = 0; rv == CKR_OK && i < KHSM_ARRAY_SIZE(FILLABLE); i++) {
		bool have = false;
		for (CK_ULONG k = 0; k < real; k++) have |= all[k] == FILLABLE[i];
		CK_MECHANISM_INFO info;
		if (!have && filled_info(slot, FILLABLE[i], &info)) all[n++] = FILLABLE[i];
	}
	if (rv == CKR_OK) {
		if (n > real) c_true(&c, "software");
		c_num(&c, "count", n);
		if (list && *count < n) {
			rv = CKR_BUFFER_TOO_SMALL;
		} else if (list) {
			memcpy(list, all, n * sizeof(*all));
		}
		*count = n;
	}
	free(all);
	DONE_CALL;
}

CK_RV khsm_guard_C_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	BEGIN_SLOT_CALL(GetMechanismInfo, 0, slot);
	c_mech(&c, "mech", type);
	if (rv == CKR_OK && !info) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		PROCESS_CALL(GetMechanismInfo, (slot, type, info));
		const khsm_guard_conf_t *conf = &khsm_guard.conf;
		if (rv == CKR_OK) {
			if (conf->fill && conf->verify != KHSM_GUARD_VERIFY_CARD && (info->flags & CKF_SIGN) &&
			    !(info->flags & CKF_VERIFY) && khsm_soft_can_verify(type)) {
				info->flags |= CKF_VERIFY;
				c_true(&c, "software");
			}
		} else if (rv == CKR_MECHANISM_INVALID && filled_info(slot, type, info)) {
			rv = CKR_OK;
			c_true(&c, "software");
		}
	}
	DONE_CALL;
}

/* -- digests: the card's, or GnuTLS when the card lacks the mechanism -- */

CK_RV khsm_guard_C_DigestInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech)
{
	BEGIN_SESSION_CALL(DigestInit, 0, hSession);
	if (rv == CKR_OK && !mech) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		c_mech(&c, "mech", mech->mechanism);
		gnutls_digest_algorithm_t dig = khsm_soft_digest(mech->mechanism);
		if (s->digest_soft || s->digest_hash) {
			rv = CKR_OPERATION_ACTIVE;
		} else if (khsm_guard.conf.fill && dig != GNUTLS_DIG_UNKNOWN &&
		           !card_mech(s->slot, mech->mechanism, CKF_DIGEST, NULL)) {
			rv = gnutls_hash_init(&s->digest_hash, dig) == 0 ? CKR_OK : CKR_HOST_MEMORY;
			s->digest_soft = rv == CKR_OK;
			s->digest_mech = mech->mechanism;
			c_true(&c, "software");
		} else {
			PROCESS_CALL(DigestInit, (hSession, mech));
		}
	}
	DONE_CALL;
}

/* Output a software digest: length query, too small, or done (op ends). */
static CK_RV soft_digest_out(session_t *s, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	if (!out_len) return CKR_ARGUMENTS_BAD;
	size_t len = gnutls_hash_get_len(khsm_soft_digest(s->digest_mech));
	if (!out) {
		*out_len = len;
		return CKR_OK;
	}
	if (*out_len < len) {
		*out_len = len;
		return CKR_BUFFER_TOO_SMALL;
	}
	gnutls_hash_deinit(s->digest_hash, out);
	s->digest_hash = NULL;
	*out_len = len;
	khsm_guard_digest_clear(s);
	return CKR_OK;
}

CK_RV khsm_guard_C_Digest(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                          CK_ULONG_PTR out_len)
{
	BEGIN_SESSION_CALL(Digest, 0, hSession);
	c_num(&c, "len", in_len);
	if (!out) c_true(&c, "query");
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		if (in_len && !in) {
			rv = CKR_ARGUMENTS_BAD;
		} else {
			/* Hash only once: a length query leaves the data unhashed. */
			if (out && out_len && *out_len >= gnutls_hash_get_len(khsm_soft_digest(s->digest_mech))) {
				gnutls_hash(s->digest_hash, in, in_len);
			}
			rv = soft_digest_out(s, out, out_len);
		}
		if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) khsm_guard_digest_clear(s);
	} else {
		PROCESS_CALL(Digest, (hSession, in, in_len, out, out_len));
	}
	DONE_CALL;
}

CK_RV khsm_guard_C_DigestUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len)
{
	BEGIN_SESSION_CALL(DigestUpdate, 0, hSession);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		if (in_len && !in) rv = CKR_ARGUMENTS_BAD;
		else if (in_len) gnutls_hash(s->digest_hash, in, in_len);
		if (rv != CKR_OK) khsm_guard_digest_clear(s);
	} else {
		PROCESS_CALL(DigestUpdate, (hSession, in, in_len));
	}
	DONE_CALL;
}

CK_RV khsm_guard_C_DigestKey(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE key)
{
	BEGIN_SESSION_CALL(DigestKey, 0, hSession);
	c_num(&c, "key", key);
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		rv = CKR_KEY_INDIGESTIBLE;   /* key values never leave the card for us */
		khsm_guard_digest_clear(s);
	} else {
		PROCESS_CALL(DigestKey, (hSession, key));
	}
	DONE_CALL;
}

CK_RV khsm_guard_C_DigestFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	BEGIN_SESSION_CALL(DigestFinal, 0, hSession);
	if (!out) c_true(&c, "query");
	if (rv == CKR_OK && s->digest_soft) {
		c_true(&c, "software");
		rv = soft_digest_out(s, out, out_len);
		if (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL) khsm_guard_digest_clear(s);
	} else {
		PROCESS_CALL(DigestFinal, (hSession, out, out_len));
	}
	DONE_CALL;
}

/* -- signing: always on the card; hashed mechanisms the card lacks are
 *    hashed here and signed with the raw mechanism -- */

CK_RV khsm_guard_C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	BEGIN_SESSION_CALL(SignInit, SEC, hSession);
	if (rv == CKR_OK && !mech) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		khsm_guard_sign_clear(s);
		s->sign_desc = khsm_guard_describe(hSession, key, "key");
		if (s->sign_desc) khsm_guard_call_add(&c, "%s", s->sign_desc);
		c_mech(&c, "mech", mech->mechanism);
		s->sign_mech = mech->mechanism;
		CK_MECHANISM_TYPE raw;
		gnutls_digest_algorithm_t dig;
		if (khsm_guard.conf.fill && khsm_soft_hashed(mech->mechanism, &raw, &dig) &&
		    !card_mech(s->slot, mech->mechanism, CKF_SIGN, NULL) && card_mech(s->slot, raw, CKF_SIGN, NULL)) {
			CK_MECHANISM m = { raw, NULL, 0 };
			PROCESS_CALL(SignInit, (hSession, &m, key));
			if (rv == CKR_OK) {
				rv = gnutls_hash_init(&s->sign_hash, dig) == 0 ? CKR_OK : CKR_HOST_MEMORY;
			}
			if (rv == CKR_OK) {
				s->sign_emul = true;
				s->sign_raw = raw;
				s->sign_dig = dig;
			}
			c_mech(&c, "card_mech", raw);
			c_true(&c, "software");
		} else {
			PROCESS_CALL(SignInit, (hSession, mech, key));
		}
		if (rv != CKR_OK) khsm_guard_sign_clear(s);
	}
	DONE_CALL;
}

/* After C_Sign/C_SignFinal: the operation ends unless this was a length
 * query or the buffer was too small (PKCS #11 5.2). */
static void sign_after(session_t *s, CK_BYTE_PTR out, CK_RV rv)
{
	if ((rv == CKR_OK && out) || (rv != CKR_OK && rv != CKR_BUFFER_TOO_SMALL)) khsm_guard_sign_clear(s);
}

/* The members every line of a signature operation has. */
static void c_sign_common(call_t *c, session_t *s, CK_BYTE_PTR out)
{
	if (s->sign_desc) khsm_guard_call_add(c, "%s", s->sign_desc);
	c_mech(c, "mech", s->sign_mech);
	if (s->sign_emul) {
		c_mech(c, "card_mech", s->sign_raw);
		c_true(c, "software");
	}
	if (!out) c_true(c, "query");
}

/* Hash what the emulated operation collected, once, into the card input. */
static CK_RV sign_emul_input(session_t *s)
{
	if (s->sign_input_len) return CKR_OK;
	unsigned char digest[64];
	gnutls_hash_deinit(s->sign_hash, digest);
	s->sign_hash = NULL;
	size_t len = gnutls_hash_get_len(s->sign_dig);
	return khsm_soft_card_input(s->sign_raw, s->sign_dig, digest, len, s->sign_input,
	                            &s->sign_input_len) == 0 ? CKR_OK : CKR_FUNCTION_FAILED;
}

CK_RV khsm_guard_C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                        CK_ULONG_PTR out_len)
{
	BEGIN_SESSION_CALL(Sign, SEC, hSession);
	if (s) c_sign_common(&c, s, out);
	c_num(&c, "len", in_len);
	/* A NULL input refused here never reached the card, whose operation
	 * (C_SignInit of the raw mechanism) is still active: so is ours. */
	bool keep = false;
	if (rv == CKR_OK && s->sign_emul) {
		if (!s->sign_input_len) {
			if (in_len && !in) rv = CKR_ARGUMENTS_BAD, keep = true;
			else gnutls_hash(s->sign_hash, in, in_len);
		}
		if (rv == CKR_OK) rv = sign_emul_input(s);
		PROCESS_CALL(Sign, (hSession, s->sign_input, s->sign_input_len, out, out_len));
	} else {
		PROCESS_CALL(Sign, (hSession, in, in_len, out, out_len));
	}
	if (rv == CKR_OK && out && out_len) c_num(&c, "out", *out_len);
	if (s && !keep && (rv == CKR_OK || c.card)) sign_after(s, out, rv);
	c.wipe = out;
	c.wipe_len = out_len;
	DONE_CALL;
}

CK_RV khsm_guard_C_SignUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len)
{
	BEGIN_SESSION_CALL(SignUpdate, SEC, hSession);
	if (s) c_sign_common(&c, s, (CK_BYTE_PTR)"");
	c_num(&c, "len", in_len);
	bool keep = false;   /* see C_Sign */
	if (rv == CKR_OK && s->sign_emul) {
		if (in_len && !in) rv = CKR_ARGUMENTS_BAD, keep = true;
		else if (s->sign_input_len) rv = CKR_OPERATION_ACTIVE;
		else gnutls_hash(s->sign_hash, in, in_len);
	} else {
		PROCESS_CALL(SignUpdate, (hSession, in, in_len));
	}
	if (s && !keep && rv != CKR_OK && c.card) khsm_guard_sign_clear(s);
	DONE_CALL;
}

CK_RV khsm_guard_C_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	BEGIN_SESSION_CALL(SignFinal, SEC, hSession);
	if (s) c_sign_common(&c, s, out);
	if (rv == CKR_OK && s->sign_emul) {
		rv = sign_emul_input(s);
		PROCESS_CALL(Sign, (hSession, s->sign_input, s->sign_input_len, out, out_len));
	} else {
		PROCESS_CALL(SignFinal, (hSession, out, out_len));
	}
	if (rv == CKR_OK && out && out_len) c_num(&c, "out", *out_len);
	if (s && (rv == CKR_OK || c.card)) sign_after(s, out, rv);
	c.wipe = out;
	c.wipe_len = out_len;
	DONE_CALL;
}

/* -- verification: the card's, or in software with the public key -- */

/* Read the public key for a key handle (a public key, or a private key whose
 * public half has the same CKA_ID), in a session of our own so that the
 * caller's find operation is untouched. Callers hold the card lock. */
static CK_RV load_pubkey(CK_SLOT_ID slot, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key, gnutls_pubkey_t *out)
{
	CK_FUNCTION_LIST_PTR fl = khsm_guard.fl;
	CK_OBJECT_CLASS cls = 0;
	CK_KEY_TYPE kt = 0;
	CK_ATTRIBUTE a[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_KEY_TYPE, &kt, sizeof(kt) } };
	CK_RV rv = fl->C_GetAttributeValue(h, key, a, 2);
	if (rv != CKR_OK) return rv == CKR_OBJECT_HANDLE_INVALID ? rv : CKR_KEY_HANDLE_INVALID;
	CK_SESSION_HANDLE own = CK_INVALID_HANDLE;
	CK_OBJECT_HANDLE pub = key;
	if (cls == CKO_PRIVATE_KEY) {
		unsigned char *id = NULL;
		CK_ULONG id_len = 0;
		rv = khsm_guard_attr(h, key, CKA_ID, &id, &id_len);
		if (rv == CKR_OK) rv = fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &own);
		if (rv == CKR_OK) {
			CK_OBJECT_CLASS pc = CKO_PUBLIC_KEY;
			CK_ATTRIBUTE t[] = { { CKA_CLASS, &pc, sizeof(pc) }, { CKA_ID, id, id_len } };
			CK_ULONG n = 0;
			rv = fl->C_FindObjectsInit(own, t, 2);
			if (rv == CKR_OK) {
				rv = fl->C_FindObjects(own, &pub, 1, &n);
				fl->C_FindObjectsFinal(own);
			}
			if (rv == CKR_OK && n != 1) rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		}
		free(id);
		h = own;
	} else if (cls != CKO_PUBLIC_KEY) {
		return CKR_KEY_TYPE_INCONSISTENT;
	}
	unsigned char *v1 = NULL, *v2 = NULL;
	CK_ULONG l1 = 0, l2 = 0;
	khsm_soft_pubattrs_t pa = { .key_type = kt };
	if (rv == CKR_OK) {
		if (kt == CKK_RSA) {
			rv = khsm_guard_attr(h, pub, CKA_MODULUS, &v1, &l1);
			if (rv == CKR_OK) rv = khsm_guard_attr(h, pub, CKA_PUBLIC_EXPONENT, &v2, &l2);
			pa.modulus = v1; pa.modulus_len = l1; pa.exponent = v2; pa.exponent_len = l2;
		} else {
			rv = khsm_guard_attr(h, pub, CKA_EC_PARAMS, &v1, &l1);
			if (rv == CKR_OK) rv = khsm_guard_attr(h, pub, CKA_EC_POINT, &v2, &l2);
			pa.ec_params = v1; pa.ec_params_len = l1; pa.ec_point = v2; pa.ec_point_len = l2;
		}
	}
	if (rv == CKR_OK) rv = khsm_soft_pubkey(&pa, out);
	free(v1);
	free(v2);
	if (own != CK_INVALID_HANDLE) fl->C_CloseSession(own);
	return rv;
}

CK_RV khsm_guard_C_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR mech, CK_OBJECT_HANDLE key)
{
	BEGIN_SESSION_CALL(VerifyInit, 0, hSession);
	if (rv == CKR_OK && !mech) rv = CKR_ARGUMENTS_BAD;
	if (rv == CKR_OK) {
		khsm_guard_verify_clear(s);
		s->verify_desc = khsm_guard_describe(hSession, key, "key");
		if (s->verify_desc) khsm_guard_call_add(&c, "%s", s->verify_desc);
		c_mech(&c, "mech", mech->mechanism);
		bool soft = false;
		if (khsm_guard.conf.verify == KHSM_GUARD_VERIFY_SOFTWARE) {
			soft = true;
		} else if (khsm_guard.conf.verify == KHSM_GUARD_VERIFY_AUTO && khsm_guard.conf.fill) {
			soft = !card_mech(s->slot, mech->mechanism, CKF_VERIFY, NULL);
			if (!soft) {
				PROCESS_CALL(VerifyInit, (hSession, mech, key));
				soft = rv == CKR_FUNCTION_NOT_SUPPORTED;
			}
		} else {
			PROCESS_CALL(VerifyInit, (hSession, mech, key));
		}
		if (soft) {
			c_true(&c, "software");
			CK_MECHANISM_TYPE raw;
			gnutls_digest_algorithm_t dig;
			rv = khsm_soft_can_verify(mech->mechanism) ? CKR_OK : CKR_MECHANISM_INVALID;
			if (rv == CKR_OK) rv = load_pubkey(s->slot, hSession, key, &s->verify_key);
			if (rv == CKR_OK && khsm_soft_hashed(mech->mechanism, &raw, &dig)) {
				rv = gnutls_hash_init(&s->verify_hash, dig) == 0 ? CKR_OK : CKR_HOST_MEMORY;
			}
			if (rv == CKR_OK) {
				s->verify_soft = true;
				s->verify_mech = mech->mechanism;
			}
		}
		if (rv != CKR_OK) khsm_guard_verify_clear(s);
	}
	DONE_CALL;
}

/* The members every line of a verification has. */
static void c_verify_common(call_t *c, session_t *s)
{
	if (s->verify_desc) khsm_guard_call_add(c, "%s", s->verify_desc);
	if (s->verify_soft) {
		c_mech(c, "mech", s->verify_mech);
		c_true(c, "software");
	}
}

/* Finish a software verification over what was collected. */
static CK_RV soft_verify_final(session_t *s, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	CK_RV rv;
	if (!sig) {
		rv = CKR_ARGUMENTS_BAD;
	} else if (s->verify_hash) {
		unsigned char digest[64];
		CK_MECHANISM_TYPE raw;
		gnutls_digest_algorithm_t dig = GNUTLS_DIG_UNKNOWN;
		khsm_soft_hashed(s->verify_mech, &raw, &dig);
		gnutls_hash_deinit(s->verify_hash, digest);
		s->verify_hash = NULL;
		rv = khsm_soft_verify(s->verify_key, s->verify_mech, digest, gnutls_hash_get_len(dig), sig, sig_len);
	} else {
		rv = khsm_soft_verify(s->verify_key, s->verify_mech, s->verify_buf, s->verify_len, sig, sig_len);
	}
	khsm_guard_verify_clear(s);
	return rv;
}

static CK_RV soft_verify_update(session_t *s, CK_BYTE_PTR in, CK_ULONG in_len)
{
	if (in_len && !in) return CKR_ARGUMENTS_BAD;
	if (s->verify_hash) {
		gnutls_hash(s->verify_hash, in, in_len);
		return CKR_OK;
	}
	if (s->verify_len + in_len > 1 << 20) return CKR_DATA_LEN_RANGE;
	unsigned char *n = realloc(s->verify_buf, s->verify_len + in_len + 1);
	if (!n) return CKR_HOST_MEMORY;
	s->verify_buf = n;
	if (in_len) memcpy(n + s->verify_len, in, in_len);
	s->verify_len += in_len;
	return CKR_OK;
}

CK_RV khsm_guard_C_Verify(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                          CK_ULONG sig_len)
{
	BEGIN_SESSION_CALL(Verify, 0, hSession);
	if (s) c_verify_common(&c, s);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK && s->verify_soft) {
		rv = soft_verify_update(s, in, in_len);
		if (rv == CKR_OK) rv = soft_verify_final(s, sig, sig_len);
		else khsm_guard_verify_clear(s);
	} else if (rv == CKR_OK) {
		PROCESS_CALL(Verify, (hSession, in, in_len, sig, sig_len));
		khsm_guard_verify_clear(s);
	}
	DONE_CALL;
}

CK_RV khsm_guard_C_VerifyUpdate(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len)
{
	BEGIN_SESSION_CALL(VerifyUpdate, 0, hSession);
	if (s) c_verify_common(&c, s);
	c_num(&c, "len", in_len);
	if (rv == CKR_OK && s->verify_soft) {
		rv = soft_verify_update(s, in, in_len);
		if (rv != CKR_OK) khsm_guard_verify_clear(s);
	} else {
		PROCESS_CALL(VerifyUpdate, (hSession, in, in_len));
	}
	DONE_CALL;
}

CK_RV khsm_guard_C_VerifyFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	BEGIN_SESSION_CALL(VerifyFinal, 0, hSession);
	if (s) c_verify_common(&c, s);
	if (rv == CKR_OK && s->verify_soft) {
		rv = soft_verify_final(s, sig, sig_len);
	} else if (rv == CKR_OK) {
		PROCESS_CALL(VerifyFinal, (hSession, sig, sig_len));
		khsm_guard_verify_clear(s);
	}
	DONE_CALL;
}

/* -- random numbers: the card's, or gnutls_rnd when it has no RNG -- */

/* Does the guard answer for a card without a random number generator? The
 * line then says so. Callers hold the card lock (rv CKR_OK). */
static bool rng_in_software(call_t *c, CK_RV rv)
{
	if (rv != CKR_OK || !khsm_guard.conf.fill || card_rng(c->card)) return false;
	c_true(c, "software");
	return true;
}

CK_RV khsm_guard_C_SeedRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR seed, CK_ULONG len)
{
	BEGIN_SESSION_CALL(SeedRandom, 0, hSession);
	c_num(&c, "len", len);
	if (rng_in_software(&c, rv)) rv = CKR_RANDOM_SEED_NOT_SUPPORTED;
	else PROCESS_CALL(SeedRandom, (hSession, seed, len));
	DONE_CALL;
}

CK_RV khsm_guard_C_GenerateRandom(CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG len)
{
	BEGIN_SESSION_CALL(GenerateRandom, 0, hSession);
	c_num(&c, "len", len);
	if (!rng_in_software(&c, rv)) PROCESS_CALL(GenerateRandom, (hSession, out, len));
	else if (len && !out) rv = CKR_ARGUMENTS_BAD;
	else if (len && gnutls_rnd(GNUTLS_RND_RANDOM, out, len) != 0) rv = CKR_FUNCTION_FAILED;
	DONE_CALL;
}
