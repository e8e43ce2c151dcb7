/* guard_calls: single PKCS #11 calls through a module (the guard), each
 * printing what it got, for tests/integration/test_guard_calls.sh.
 *
 *   guard_calls MODULE PIN_FILE login-retry N     C_Login N times with the PIN of PIN_FILE
 *                       (exit 1 unless every one succeeded)
 *   guard_calls MODULE PIN_FILE keygen-full LOG LABEL
 *                       log in, make LOG unable to grow (RLIMIT_FSIZE at its size, as
 *                       a full disk), then C_GenerateKeyPair
 *   guard_calls MODULE - digest FILE             every fill-in digest of FILE, and the
 *                       edge cases of PKCS #11 (NULL input, length query, short buffer)
 *   guard_calls MODULE - random N                C_GenerateRandom of N bytes, and edge cases
 *   guard_calls MODULE PIN_FILE sign-edge LABEL  the emulated CKM_ECDSA_SHA256 signature and the
 *                       software verification: length query, short buffer, NULL cases
 *   guard_calls MODULE PIN_FILE fork LABEL COUNT log in, sign COUNT times, in a parent and
 *                       a forked child at once (C_Initialize again in the child)
 *
 * Prints "NAME: 0xRV" per call (and hex for digests/random); exit 0 when
 * every check it makes itself passed, 1 otherwise. Test code only. */
#include <dlfcn.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR fl;
static CK_SLOT_ID slot;
static int failures;

static void check(bool ok, const char *what)
{
	if (!ok) {
		printf("FAILED: %s\n", what);
		failures++;
	}
}

static void hex(const char *name, const unsigned char *p, CK_ULONG n)
{
	printf("%s ", name);
	for (CK_ULONG i = 0; i < n; i++) printf("%02x", p[i]);
	putchar('\n');
}

static CK_RV init(void)
{
	CK_C_INITIALIZE_ARGS ia = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = fl->C_Initialize(&ia);
	printf("C_Initialize: 0x%lx\n", rv);
	if (rv != CKR_OK) return rv;
	CK_ULONG n = 1;
	rv = fl->C_GetSlotList(CK_TRUE, &slot, &n);
	if (rv == CKR_OK && n < 1) rv = CKR_SLOT_ID_INVALID;
	return rv;
}

static CK_RV open_login(const char *pin_file, CK_SESSION_HANDLE *s, bool login)
{
	CK_RV rv = fl->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
	if (rv != CKR_OK || !login) return rv;
	char pin[64] = "";
	FILE *f = fopen(pin_file, "r");
	if (!f || !fgets(pin, sizeof(pin), f)) {
		fprintf(stderr, "cannot read %s\n", pin_file);
		exit(1);
	}
	fclose(f);
	pin[strcspn(pin, "\n")] = '\0';
	rv = fl->C_Login(*s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	memset(pin, 0, sizeof(pin));
	printf("C_Login: 0x%lx\n", rv);
	return rv;
}

static CK_OBJECT_HANDLE find(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, (void *)label, strlen(label) } };
	CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
	CK_ULONG n = 0;
	if (fl->C_FindObjectsInit(s, t, 2) != CKR_OK) return CK_INVALID_HANDLE;
	if (fl->C_FindObjects(s, &h, 1, &n) != CKR_OK || n != 1) h = CK_INVALID_HANDLE;
	fl->C_FindObjectsFinal(s);
	return h;
}

static int login_retry(const char *pin_file, int n)
{
	CK_SESSION_HANDLE s;
	CK_RV rv = open_login(pin_file, &s, false);
	if (rv != CKR_OK) return 1;
	int ok = 0;
	for (int i = 0; i < n; i++) {
		if (open_login(pin_file, &s, true) == CKR_OK) {
			ok++;
			fl->C_Logout(s);
		}
	}
	fl->C_CloseSession(s);
	return ok == n ? 0 : 1;
}

static int keygen_full(const char *pin_file, const char *log, const char *label)
{
	CK_SESSION_HANDLE s;
	if (open_login(pin_file, &s, true) != CKR_OK) return 1;
	struct stat st;
	if (stat(log, &st) != 0) return 1;
	/* The log cannot grow: writes fail with EFBIG, as on a full disk. */
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl = { (rlim_t)st.st_size, (rlim_t)st.st_size };
	if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return 1;
	static const unsigned char P256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pub[] = { { CKA_EC_PARAMS, (void *)P256, sizeof(P256) }, { CKA_TOKEN, &yes, 1 },
	                       { CKA_LABEL, (void *)label, strlen(label) } };
	CK_ATTRIBUTE priv[] = { { CKA_TOKEN, &yes, 1 }, { CKA_PRIVATE, &yes, 1 }, { CKA_SIGN, &yes, 1 },
	                        { CKA_LABEL, (void *)label, strlen(label) } };
	CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_OBJECT_HANDLE a, b;
	CK_RV rv = fl->C_GenerateKeyPair(s, &m, pub, 3, priv, 4, &a, &b);
	printf("C_GenerateKeyPair: 0x%lx\n", rv);
	return 0;
}

static int digest(const char *file)
{
	FILE *f = fopen(file, "rb");
	if (!f) return 1;
	static unsigned char data[1 << 16];
	size_t len = fread(data, 1, sizeof(data), f);
	fclose(f);
	CK_SESSION_HANDLE s;
	if (open_login(NULL, &s, false) != CKR_OK) return 1;
	static const struct { CK_MECHANISM_TYPE t; const char *name; CK_ULONG len; } MECHS[] = {
		{ CKM_SHA_1, "sha1", 20 }, { CKM_SHA224, "sha224", 28 }, { CKM_SHA256, "sha256", 32 },
		{ CKM_SHA384, "sha384", 48 }, { CKM_SHA512, "sha512", 64 },
	};
	for (size_t i = 0; i < sizeof(MECHS) / sizeof(MECHS[0]); i++) {
		CK_MECHANISM m = { MECHS[i].t, NULL, 0 };
		CK_MECHANISM_INFO info;
		CK_RV rv = fl->C_GetMechanismInfo(slot, MECHS[i].t, &info);
		check(rv == CKR_OK && (info.flags & CKF_DIGEST), "mechanism info says CKF_DIGEST");
		unsigned char out[64];
		CK_ULONG out_len = 0;
		/* One-part: length query, too small, then the digest. */
		rv = fl->C_DigestInit(s, &m);
		check(rv == CKR_OK, "C_DigestInit");
		rv = fl->C_Digest(s, data, len, NULL, &out_len);
		check(rv == CKR_OK && out_len == MECHS[i].len, "C_Digest length query");
		out_len = 4;
		rv = fl->C_Digest(s, data, len, out, &out_len);
		check(rv == CKR_BUFFER_TOO_SMALL && out_len == MECHS[i].len, "C_Digest too small");
		out_len = sizeof(out);
		rv = fl->C_Digest(s, data, len, out, &out_len);
		check(rv == CKR_OK && out_len == MECHS[i].len, "C_Digest");
		char name[32];
		snprintf(name, sizeof(name), "%s:", MECHS[i].name);
		hex(name, out, out_len);
		/* Multi-part, in two pieces, with its own length query. */
		unsigned char out2[64];
		CK_ULONG out2_len = 0;
		rv = fl->C_DigestInit(s, &m);
		if (rv == CKR_OK) rv = fl->C_DigestUpdate(s, data, len / 2);
		if (rv == CKR_OK) rv = fl->C_DigestUpdate(s, data + len / 2, len - len / 2);
		if (rv == CKR_OK) rv = fl->C_DigestFinal(s, NULL, &out2_len);
		check(rv == CKR_OK && out2_len == MECHS[i].len, "C_DigestFinal length query");
		out2_len = sizeof(out2);
		if (rv == CKR_OK) rv = fl->C_DigestFinal(s, out2, &out2_len);
		check(rv == CKR_OK && out2_len == out_len && memcmp(out, out2, out_len) == 0,
		      "multi-part digest equals one-part");
	}
	/* Edge cases on SHA-256: NULL input with a length (crashed the guard),
	 * NULL length pointer, empty input. */
	CK_MECHANISM m = { CKM_SHA256, NULL, 0 };
	unsigned char out[64];
	CK_ULONG out_len = sizeof(out);
	CK_RV rv = fl->C_DigestInit(s, &m);
	if (rv == CKR_OK) rv = fl->C_Digest(s, NULL, 5, out, &out_len);
	printf("C_Digest(NULL, 5): 0x%lx\n", rv);
	check(rv == CKR_ARGUMENTS_BAD, "C_Digest with a NULL input and a length");
	rv = fl->C_DigestInit(s, &m);
	check(rv == CKR_OK, "the operation ended after the refusal: a new one starts");
	rv = fl->C_Digest(s, data, len, out, NULL);
	check(rv == CKR_ARGUMENTS_BAD, "C_Digest with a NULL length pointer");
	rv = fl->C_DigestInit(s, &m);
	if (rv == CKR_OK) rv = fl->C_DigestUpdate(s, NULL, 3);
	check(rv == CKR_ARGUMENTS_BAD, "C_DigestUpdate with a NULL input and a length");
	rv = fl->C_DigestInit(s, &m);
	out_len = sizeof(out);
	if (rv == CKR_OK) rv = fl->C_Digest(s, NULL, 0, out, &out_len);
	check(rv == CKR_OK && out_len == 32, "C_Digest of nothing");
	hex("sha256-empty:", out, out_len);
	rv = fl->C_DigestInit(s, &m);
	if (rv == CKR_OK) rv = fl->C_DigestFinal(s, out, NULL);
	check(rv == CKR_ARGUMENTS_BAD, "C_DigestFinal with a NULL length pointer");
	fl->C_CloseSession(s);
	return 0;
}

static int random_bytes(CK_ULONG n)
{
	CK_SESSION_HANDLE s;
	if (open_login(NULL, &s, false) != CKR_OK) return 1;
	CK_TOKEN_INFO ti;
	CK_RV rv = fl->C_GetTokenInfo(slot, &ti);
	check(rv == CKR_OK && (ti.flags & CKF_RNG), "token info says CKF_RNG");
	unsigned char *buf = calloc(n ? n : 1, 1), *buf2 = calloc(n ? n : 1, 1);
	rv = fl->C_GenerateRandom(s, buf, n);
	printf("C_GenerateRandom: 0x%lx\n", rv);
	check(rv == CKR_OK, "C_GenerateRandom");
	rv = fl->C_GenerateRandom(s, buf2, n);
	check(rv == CKR_OK && (n < 16 || memcmp(buf, buf2, n) != 0), "two draws differ");
	hex("random:", buf, n);
	rv = fl->C_GenerateRandom(s, NULL, 4);
	check(rv == CKR_ARGUMENTS_BAD, "C_GenerateRandom into NULL");
	rv = fl->C_GenerateRandom(s, NULL, 0);
	check(rv == CKR_OK, "C_GenerateRandom of 0 bytes");
	rv = fl->C_SeedRandom(s, buf, n);
	printf("C_SeedRandom: 0x%lx\n", rv);
	free(buf);
	free(buf2);
	fl->C_CloseSession(s);
	return 0;
}

static int sign_edge(const char *pin_file, const char *label)
{
	CK_SESSION_HANDLE s;
	if (open_login(pin_file, &s, true) != CKR_OK) return 1;
	CK_OBJECT_HANDLE priv = find(s, CKO_PRIVATE_KEY, label), pub = find(s, CKO_PUBLIC_KEY, label);
	check(priv != CK_INVALID_HANDLE && pub != CK_INVALID_HANDLE, "the key pair is there");
	unsigned char data[100], sig[256];
	memset(data, 'x', sizeof(data));
	CK_MECHANISM m = { CKM_ECDSA_SHA256, NULL, 0 };
	CK_MECHANISM_INFO info;
	CK_RV rv = fl->C_GetMechanismInfo(slot, CKM_ECDSA_SHA256, &info);
	check(rv == CKR_OK && (info.flags & CKF_SIGN) && (info.flags & CKF_VERIFY), "ECDSA-SHA256 offered");
	/* One-part: length query, too small, the signature (PKCS #11 5.2). */
	CK_ULONG len = 0;
	rv = fl->C_SignInit(s, &m, priv);
	check(rv == CKR_OK, "C_SignInit");
	rv = fl->C_Sign(s, data, sizeof(data), NULL, &len);
	check(rv == CKR_OK && len == 64, "C_Sign length query");
	len = 10;
	rv = fl->C_Sign(s, data, sizeof(data), sig, &len);
	check(rv == CKR_BUFFER_TOO_SMALL && len == 64, "C_Sign too small");
	len = sizeof(sig);
	rv = fl->C_Sign(s, data, sizeof(data), sig, &len);
	check(rv == CKR_OK && len == 64, "C_Sign");
	printf("C_Sign: 0x%lx\n", rv);
	/* Verification in software (the card cannot). */
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_Verify(s, data, sizeof(data), sig, len);
	check(rv == CKR_OK, "the signature verifies");
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_VerifyUpdate(s, data, 50);
	if (rv == CKR_OK) rv = fl->C_VerifyUpdate(s, data + 50, 50);
	if (rv == CKR_OK) rv = fl->C_VerifyFinal(s, sig, len);
	check(rv == CKR_OK, "multi-part verification");
	sig[5] ^= 1;
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_Verify(s, data, sizeof(data), sig, len);
	check(rv == CKR_SIGNATURE_INVALID, "a bad signature is refused");
	/* NULL pointers with lengths: refused, never a crash. The refusal
	 * happened before the card saw anything: the operation goes on. */
	rv = fl->C_SignInit(s, &m, priv);
	if (rv == CKR_OK) rv = fl->C_Sign(s, NULL, 5, sig, &len);
	printf("C_Sign(NULL, 5): 0x%lx\n", rv);
	check(rv == CKR_ARGUMENTS_BAD, "C_Sign with a NULL input");
	len = sizeof(sig);
	rv = fl->C_Sign(s, data, sizeof(data), sig, &len);
	check(rv == CKR_OK, "the operation is still active: C_Sign with the data signs");
	rv = fl->C_SignInit(s, &m, priv);
	if (rv == CKR_OK) rv = fl->C_SignUpdate(s, NULL, 3);
	printf("C_SignUpdate(NULL, 3): 0x%lx\n", rv);
	check(rv == CKR_ARGUMENTS_BAD, "C_SignUpdate with a NULL input");
	rv = fl->C_SignUpdate(s, data, sizeof(data));
	len = sizeof(sig);
	if (rv == CKR_OK) rv = fl->C_SignFinal(s, sig, &len);
	check(rv == CKR_OK, "then C_SignUpdate and C_SignFinal sign");
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_Verify(s, data, sizeof(data), sig, len);
	check(rv == CKR_OK, "and that multi-part signature verifies");
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_Verify(s, NULL, 5, sig, len);
	check(rv == CKR_ARGUMENTS_BAD, "C_Verify with a NULL input");
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_Verify(s, data, sizeof(data), NULL, 64);
	check(rv == CKR_ARGUMENTS_BAD, "C_Verify with a NULL signature");
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_VerifyUpdate(s, NULL, 3);
	check(rv == CKR_ARGUMENTS_BAD, "C_VerifyUpdate with a NULL input");
	/* Empty input signs and verifies. */
	len = sizeof(sig);
	rv = fl->C_SignInit(s, &m, priv);
	if (rv == CKR_OK) rv = fl->C_Sign(s, data, 0, sig, &len);
	printf("C_Sign of nothing: 0x%lx\n", rv);
	check(rv == CKR_OK, "C_Sign of nothing");
	rv = fl->C_VerifyInit(s, &m, pub);
	if (rv == CKR_OK) rv = fl->C_Verify(s, data, 0, sig, len);
	check(rv == CKR_OK, "and it verifies");
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	return 0;
}

/* Sign COUNT times; failures counted. */
static int sign_loop(const char *pin_file, const char *label, int count, const char *who)
{
	CK_SESSION_HANDLE s;
	if (open_login(pin_file, &s, true) != CKR_OK) return -1;
	CK_OBJECT_HANDLE key = find(s, CKO_PRIVATE_KEY, label);
	int bad = 0;
	for (int i = 0; i < count; i++) {
		unsigned char data[32] = { 1 }, sig[256];
		CK_ULONG sig_len = sizeof(sig);
		CK_MECHANISM m = { CKM_ECDSA, NULL, 0 };
		CK_RV rv = fl->C_SignInit(s, &m, key);
		if (rv == CKR_OK) rv = fl->C_Sign(s, data, sizeof(data), sig, &sig_len);
		if (rv != CKR_OK) bad++;
	}
	printf("%s: signed %d failed %d\n", who, count - bad, bad);
	fl->C_Logout(s);
	fl->C_CloseSession(s);
	return bad;
}

static int fork_test(const char *pin_file, const char *label, int count)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) return 1;
	if (pid == 0) {
		/* The child: not initialised until it says so (PKCS #11 6.7.7). */
		CK_ULONG n = 1;
		CK_RV rv = fl->C_GetSlotList(CK_TRUE, &slot, &n);
		printf("child before C_Initialize: C_GetSlotList: 0x%lx\n", rv);
		check(rv == CKR_CRYPTOKI_NOT_INITIALIZED, "a child must initialise first");
		rv = init();
		check(rv == CKR_OK, "C_Initialize in the child");
		int bad = rv == CKR_OK ? sign_loop(pin_file, label, count, "child") : -1;
		fflush(stdout);
		_exit(bad == 0 && failures == 0 ? 0 : 1);
	}
	int bad = sign_loop(pin_file, label, count, "parent");
	int st = 0;
	waitpid(pid, &st, 0);
	check(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child signed every time");
	check(bad == 0, "the parent signed every time");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: guard_calls MODULE PIN_FILE login-retry N | keygen-full LOG LABEL | "
		        "digest FILE | random N | sign-edge LABEL | fork LABEL COUNT\n");
		return 2;
	}
	void *dl = dlopen(argv[1], RTLD_NOW);
	CK_C_GetFunctionList get = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
	if (!get || get(&fl) != CKR_OK) {
		fprintf(stderr, "cannot load %s\n", argv[1]);
		return 1;
	}
	if (init() != CKR_OK) return 1;
	const char *cmd = argv[3];
	int r = 2;
	if (strcmp(cmd, "login-retry") == 0 && argc == 5) r = login_retry(argv[2], atoi(argv[4]));
	else if (strcmp(cmd, "keygen-full") == 0 && argc == 6) r = keygen_full(argv[2], argv[4], argv[5]);
	else if (strcmp(cmd, "digest") == 0 && argc == 5) r = digest(argv[4]);
	else if (strcmp(cmd, "random") == 0 && argc == 5) r = random_bytes(strtoul(argv[4], NULL, 10));
	else if (strcmp(cmd, "sign-edge") == 0 && argc == 5) r = sign_edge(argv[2], argv[4]);
	else if (strcmp(cmd, "fork") == 0 && argc == 6) r = fork_test(argv[2], argv[4], atoi(argv[5]));
	fl->C_Finalize(NULL);
	return r != 0 ? r : failures ? 1 : 0;
}
