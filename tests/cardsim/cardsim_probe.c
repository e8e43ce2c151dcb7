/*
 * cardsim_probe - checks of cardsim that pkcs11-tool cannot make, because
 * they need one process to hold sessions across events or to sign from
 * several threads at once. Used by test_cardsim.sh.
 *
 *   cardsim_probe MODULE removal REMOVED_FILE PIN
 *       A session opened before a removal must fail with CKR_DEVICE_REMOVED
 *       while the card is out and with CKR_SESSION_HANDLE_INVALID after it is
 *       back; the token must vanish from the slot list; a new session after
 *       reinsertion must not inherit the old login.
 *   cardsim_probe MODULE sign-threads PIN N
 *       N threads sign at once with the first private EC key; prints
 *       "ok=A busy=B other=C ms=T" (B counts CKR_DEVICE_ERROR after which the
 *       session took a new C_SignInit, as a failed C_Sign ends the operation).
 *
 * Exit 0 when every step returned what was expected, 1 otherwise.
 */

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR fl;

#define EXPECT(call, want) expect_rv(#call, (call), (want))

static int expect_rv(const char *what, CK_RV got, CK_RV want)
{
	if (got != want) {
		fprintf(stderr, "probe: %s returned 0x%lx, expected 0x%lx\n", what, got, want);
		return 1;
	}
	return 0;
}

static int first_slot(CK_SLOT_ID *slot)
{
	CK_ULONG n = 1;
	if (EXPECT(fl->C_GetSlotList(CK_TRUE, slot, &n), CKR_OK) != 0) {
		return 1;
	}
	if (n != 1) {
		fprintf(stderr, "probe: expected exactly one slot with a token, got %lu\n", n);
		return 1;
	}
	return 0;
}

static int cmd_removal(const char *removed_file, const char *pin)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s, s2;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;
	CK_ULONG n = 0;
	int err = 0;

	if (first_slot(&slot) != 0 ||
	    EXPECT(fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK) != 0 ||
	    EXPECT(fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK) != 0) {
		return 1;
	}

	FILE *f = fopen(removed_file, "w");
	if (f == NULL) {
		perror("probe: creating the removal file");
		return 1;
	}
	fclose(f);

	err |= EXPECT(fl->C_GetSessionInfo(s, &si), CKR_DEVICE_REMOVED);
	err |= EXPECT(fl->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	if (n != 0) {
		fprintf(stderr, "probe: %lu slots with a token while removed\n", n);
		err = 1;
	}
	err |= EXPECT(fl->C_GetTokenInfo(slot, &ti), CKR_TOKEN_NOT_PRESENT);
	err |= EXPECT(fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2),
	              CKR_TOKEN_NOT_PRESENT);

	if (unlink(removed_file) != 0) {
		perror("probe: deleting the removal file");
		return 1;
	}

	/* Reinserted: the old session stays dead, a new one starts logged out. */
	err |= EXPECT(fl->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID);
	err |= EXPECT(fl->C_GetTokenInfo(slot, &ti), CKR_OK);
	if (EXPECT(fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2), CKR_OK) != 0) {
		return 1;
	}
	if (s2 == s) {
		fprintf(stderr, "probe: session handle reused after reinsertion\n");
		err = 1;
	}
	err |= EXPECT(fl->C_GetSessionInfo(s2, &si), CKR_OK);
	if (si.state != CKS_RO_PUBLIC_SESSION) {
		fprintf(stderr, "probe: login survived the removal (state %lu)\n", si.state);
		err = 1;
	}
	err |= EXPECT(fl->C_Login(s2, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	err |= EXPECT(fl->C_CloseSession(s2), CKR_OK);
	return err;
}

typedef struct {
	CK_SLOT_ID slot;
	CK_OBJECT_HANDLE key;
	CK_RV rv;
	CK_RV reinit_rv;	/* C_SignInit after a busy failure */
} job_t;

static void *sign_thread(void *arg)
{
	job_t *job = arg;
	CK_SESSION_HANDLE s;
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_BYTE digest[32] = { 0 };
	CK_BYTE sig[256];
	CK_ULONG sig_len = sizeof(sig);

	job->rv = fl->C_OpenSession(job->slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (job->rv != CKR_OK) {
		return NULL;
	}
	job->rv = fl->C_SignInit(s, &mech, job->key);
	if (job->rv == CKR_OK) {
		job->rv = fl->C_Sign(s, digest, sizeof(digest), sig, &sig_len);
	}
	/* A failed C_Sign ends the operation (PKCS#11 v2.40, 5.11): the
	 * session must take a new C_SignInit, as on a real card. */
	if (job->rv == CKR_DEVICE_ERROR) {
		job->reinit_rv = fl->C_SignInit(s, &mech, job->key);
	}
	fl->C_CloseSession(s);
	return NULL;
}

static int cmd_sign_threads(const char *pin, int nthreads)
{
	CK_SLOT_ID slot;
	CK_SESSION_HANDLE s;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_KEY_TYPE kt = CKK_EC;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_KEY_TYPE, &kt, sizeof(kt) },
	};
	CK_OBJECT_HANDLE key;
	CK_ULONG n = 0;

	if (nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "probe: thread count must be 1..64\n");
		return 1;
	}
	/* The login session stays open so the other sessions share the login. */
	if (first_slot(&slot) != 0 ||
	    EXPECT(fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), CKR_OK) != 0 ||
	    EXPECT(fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK) != 0 ||
	    EXPECT(fl->C_FindObjectsInit(s, tmpl, 2), CKR_OK) != 0 ||
	    EXPECT(fl->C_FindObjects(s, &key, 1, &n), CKR_OK) != 0 ||
	    EXPECT(fl->C_FindObjectsFinal(s), CKR_OK) != 0) {
		return 1;
	}
	if (n != 1) {
		fprintf(stderr, "probe: no private EC key on the token\n");
		return 1;
	}

	job_t jobs[64];
	pthread_t threads[64];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < nthreads; i++) {
		jobs[i] = (job_t){ .slot = slot, .key = key, .rv = CKR_GENERAL_ERROR, .reinit_rv = CKR_GENERAL_ERROR };
		if (pthread_create(&threads[i], NULL, sign_thread, &jobs[i]) != 0) {
			fprintf(stderr, "probe: pthread_create failed\n");
			return 1;
		}
	}
	int ok = 0, busy = 0, other = 0;
	for (int i = 0; i < nthreads; i++) {
		pthread_join(threads[i], NULL);
		if (jobs[i].rv == CKR_OK) {
			ok++;
		} else if (jobs[i].rv == CKR_DEVICE_ERROR && jobs[i].reinit_rv == CKR_OK) {
			busy++;
		} else if (jobs[i].rv == CKR_DEVICE_ERROR) {
			fprintf(stderr, "probe: thread %d: C_SignInit after a busy failure returned 0x%lx "
			        "(the failed C_Sign left the operation active)\n", i, jobs[i].reinit_rv);
			other++;
		} else {
			fprintf(stderr, "probe: thread %d got 0x%lx\n", i, jobs[i].rv);
			other++;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	printf("ok=%d busy=%d other=%d ms=%ld\n", ok, busy, other, ms);
	fl->C_CloseSession(s);
	return other != 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s MODULE removal REMOVED_FILE PIN | MODULE sign-threads PIN N\n",
		        argv[0]);
		return 2;
	}
	void *dl = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (dl == NULL) {
		fprintf(stderr, "probe: %s\n", dlerror());
		return 1;
	}
	CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	if (get_list == NULL || get_list(&fl) != CKR_OK) {
		fprintf(stderr, "probe: no function list in %s\n", argv[1]);
		return 1;
	}
	CK_C_INITIALIZE_ARGS init = { .flags = CKF_OS_LOCKING_OK };
	if (EXPECT(fl->C_Initialize(&init), CKR_OK) != 0) {
		return 1;
	}

	int ret;
	if (strcmp(argv[2], "removal") == 0 && argc == 5) {
		ret = cmd_removal(argv[3], argv[4]);
	} else if (strcmp(argv[2], "sign-threads") == 0 && argc == 5) {
		ret = cmd_sign_threads(argv[3], atoi(argv[4]));
	} else {
		fprintf(stderr, "probe: unknown command or wrong arguments\n");
		ret = 2;
	}
	fl->C_Finalize(NULL);
	return ret;
}
