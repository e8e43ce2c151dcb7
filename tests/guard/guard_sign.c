/* guard_sign: signs through a PKCS#11 module (the guard) from several
 * threads at once and verifies every signature through the same module.
 *
 *   guard_sign MODULE PIN_FILE keygen LABEL
 *   guard_sign MODULE PIN_FILE sign LABEL THREADS COUNT [ecdsa|ecdsa-sha256]
 *
 * GUARD_SIGN_HOLD=FILE makes sign wait after its login until FILE is removed.
 *
 * Exit 0 only when every call of every thread succeeded; prints
 * "signed N verified N failed 0" (and the first failure). Test code only. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR fl;
static CK_SLOT_ID slot;
static const char *label;
static CK_MECHANISM_TYPE mech = CKM_ECDSA;
static int count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int signed_ok, verified_ok, failed;
static char first_failure[128];

static void failure(const char *what, CK_RV rv)
{
	pthread_mutex_lock(&lock);
	if (!failed++) snprintf(first_failure, sizeof(first_failure), "%s: 0x%lx", what, rv);
	pthread_mutex_unlock(&lock);
}

static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, (void *)label, strlen(label) } };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	if (fl->C_FindObjectsInit(s, t, 2) != CKR_OK) return CK_INVALID_HANDLE;
	if (fl->C_FindObjects(s, &h, 1, &n) != CKR_OK || n != 1) h = CK_INVALID_HANDLE;
	fl->C_FindObjectsFinal(s);
	return h;
}

static void *worker(void *arg)
{
	long id = (long)arg;
	CK_SESSION_HANDLE s;
	CK_RV rv = fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) { failure("C_OpenSession", rv); return NULL; }
	CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY), pub = find(s, CKO_PUBLIC_KEY);
	if (priv == CK_INVALID_HANDLE || pub == CK_INVALID_HANDLE) {
		failure("find key", CKR_GENERAL_ERROR);
		fl->C_CloseSession(s);
		return NULL;
	}
	for (int i = 0; i < count; i++) {
		unsigned char data[32], sig[256];
		char text[64];
		int k = snprintf(text, sizeof(text), "thread %ld message %d", id, i);
		memset(data, '.', sizeof(data));
		memcpy(data, text, k < 32 ? (size_t)k : 32);
		CK_MECHANISM m = { mech, NULL, 0 };
		CK_ULONG sig_len = sizeof(sig);
		rv = fl->C_SignInit(s, &m, priv);
		if (rv == CKR_OK) rv = fl->C_Sign(s, data, sizeof(data), sig, &sig_len);
		if (rv != CKR_OK) { failure("sign", rv); continue; }
		pthread_mutex_lock(&lock);
		signed_ok++;
		pthread_mutex_unlock(&lock);
		rv = fl->C_VerifyInit(s, &m, pub);
		if (rv == CKR_OK) rv = fl->C_Verify(s, data, sizeof(data), sig, sig_len);
		if (rv != CKR_OK) { failure("verify", rv); continue; }
		/* A wrong signature must be refused. */
		sig[3] ^= 1;
		rv = fl->C_VerifyInit(s, &m, pub);
		if (rv == CKR_OK) rv = fl->C_Verify(s, data, sizeof(data), sig, sig_len);
		if (rv != CKR_SIGNATURE_INVALID) { failure("verify of a bad signature", rv); continue; }
		pthread_mutex_lock(&lock);
		verified_ok++;
		pthread_mutex_unlock(&lock);
	}
	fl->C_CloseSession(s);
	return NULL;
}

static CK_RV keygen(CK_SESSION_HANDLE s)
{
	static const unsigned char P256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub[] = {
		{ CKA_EC_PARAMS, (void *)P256, sizeof(P256) }, { CKA_TOKEN, &yes, 1 }, { CKA_VERIFY, &yes, 1 },
		{ CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_ATTRIBUTE priv[] = {
		{ CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &yes, 1 }, { CKA_SENSITIVE, &yes, 1 },
		{ CKA_EXTRACTABLE, &no, 1 }, { CKA_SIGN, &yes, 1 }, { CKA_LABEL, (void *)label, strlen(label) },
	};
	CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE a, b;
	return fl->C_GenerateKeyPair(s, &m, pub, 4, priv, 6, &a, &b);
}

int main(int argc, char **argv)
{
	if (argc < 5 || (strcmp(argv[3], "sign") == 0 && argc < 7)) {
		fprintf(stderr, "usage: guard_sign MODULE PIN_FILE keygen LABEL | sign LABEL THREADS COUNT [ecdsa|ecdsa-sha256]\n");
		return 2;
	}
	label = argv[4];
	void *dl = dlopen(argv[1], RTLD_NOW);
	CK_C_GetFunctionList get = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
	if (!get || get(&fl) != CKR_OK) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
	CK_C_INITIALIZE_ARGS ia = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = fl->C_Initialize(&ia);
	if (rv != CKR_OK) { fprintf(stderr, "C_Initialize: 0x%lx\n", rv); return 1; }
	CK_ULONG n = 1;
	rv = fl->C_GetSlotList(CK_TRUE, &slot, &n);
	if (rv != CKR_OK || n < 1) { fprintf(stderr, "no slot: 0x%lx\n", rv); return 1; }
	char pin[64] = "";
	FILE *f = fopen(argv[2], "r");
	if (!f || !fgets(pin, sizeof(pin), f)) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
	fclose(f);
	pin[strcspn(pin, "\n")] = '\0';
	CK_SESSION_HANDLE s;
	rv = fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (rv == CKR_OK) rv = fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	memset(pin, 0, sizeof(pin));
	if (rv != CKR_OK) { fprintf(stderr, "login: 0x%lx\n", rv); return 1; }
	if (strcmp(argv[3], "keygen") == 0) {
		rv = keygen(s);
		printf("keygen: 0x%lx\n", rv);
		fl->C_Finalize(NULL);
		return rv == CKR_OK ? 0 : 1;
	}
	/* GUARD_SIGN_HOLD=FILE: logged in, wait until FILE is gone (30 s at most). */
	const char *hold = getenv("GUARD_SIGN_HOLD");
	for (int i = 0; hold && access(hold, F_OK) == 0 && i < 1500; i++) usleep(20000);
	int threads = atoi(argv[5]);
	count = atoi(argv[6]);
	if (argc > 7 && strcmp(argv[7], "ecdsa-sha256") == 0) mech = CKM_ECDSA_SHA256;
	pthread_t t[64];
	if (threads < 1 || threads > 64 || count < 1) return 2;
	for (long i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)i);
	for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	fl->C_Finalize(NULL);
	printf("signed %d verified %d failed %d%s%s\n", signed_ok, verified_ok, failed,
	       failed ? " first: " : "", first_failure);
	return failed == 0 && signed_ok == threads * count && verified_ok == signed_ok ? 0 : 1;
}
