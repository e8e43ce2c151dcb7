/* ECDSA P-256 signatures per second of this CPU in software, through GnuTLS
 * (the library knotd signs with): gnutls_privkey_sign_hash() on a SHA-256
 * digest in a loop, in 1..N threads for a fixed time. Output, one line per
 * thread count: "threads N signatures S seconds T rate R". */
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds = 2.0;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	unsigned long *count = arg;
	gnutls_privkey_t key;
	if (gnutls_privkey_init(&key) < 0 ||
	    gnutls_privkey_generate2(key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL, 0) < 0) {
		fprintf(stderr, "error: cannot generate a P-256 key\n");
		exit(1);
	}
	unsigned char digest[32] = { 1, 2, 3 };
	gnutls_datum_t hash = { digest, sizeof(digest) };
	double end = mono() + seconds;
	unsigned long n = 0;
	while ((n & 15) || mono() < end) {
		gnutls_datum_t sig;
		digest[0] = (unsigned char)n;
		if (gnutls_privkey_sign_hash(key, GNUTLS_DIG_SHA256, 0, &hash, &sig) < 0) {
			fprintf(stderr, "error: signing failed\n");
			exit(1);
		}
		gnutls_free(sig.data);
		n++;
	}
	gnutls_privkey_deinit(key);
	*count = n;
	return NULL;
}

int main(int argc, char **argv)
{
	int max_threads = argc > 1 ? atoi(argv[1]) : 1;
	if (argc > 2) seconds = atof(argv[2]);
	if (max_threads < 1 || max_threads > 64 || seconds <= 0) {
		fprintf(stderr, "usage: ecdsa_rate [THREADS] [SECONDS]\n");
		return 2;
	}
	gnutls_global_init();
	for (int t = 1; t <= max_threads; t++) {
		pthread_t th[64];
		unsigned long counts[64] = { 0 };
		double start = mono();
		for (int i = 0; i < t; i++) pthread_create(&th[i], NULL, worker, &counts[i]);
		unsigned long total = 0;
		for (int i = 0; i < t; i++) {
			pthread_join(th[i], NULL);
			total += counts[i];
		}
		double el = mono() - start;
		printf("threads %d signatures %lu seconds %.3f rate %.1f\n", t, total, el, (double)total / el);
	}
	gnutls_global_deinit();
	return 0;
}
