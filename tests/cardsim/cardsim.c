/*
 * cardsim - a PKCS#11 module that behaves like a smartcard HSM
 * (SmartCard-HSM / Nitrokey HSM 2 driven by OpenSC), built by wrapping a
 * real module (SoftHSM by default).
 *
 * Test code only: meson builds it, nothing installs it. knot-hsm must cope
 * with what real cards do and SoftHSM does not: a short mechanism list, no
 * private key import, CKA_ID chosen by the card, slow signing, one operation
 * at a time, removal, a PIN retry counter that locks, and few key slots.
 * Each of these is a switch in a `key = value` file named by the environment
 * variable KHSM_CARDSIM_CONF, read at C_Initialize. The switches are listed in
 * tests/cardsim/README.md.
 *
 * Mapping: slot IDs are the real module's, 1:1, but only slots holding an
 * initialised token are exposed (a card reader shows one card, SoftHSM also
 * shows an empty "free" slot). Session handles are our own and never reused,
 * so a session opened before a removal stays invalid after reinsertion even
 * if SoftHSM hands out the same real handle again. Object handles pass through.
 *
 * Removal is noticed lazily: the first call that sees the removal file makes
 * the "card" forget every session (and so the login state) of this process.
 * A file created and deleted between two calls goes unnoticed.
 */

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <p11-kit/pkcs11.h>

#define CS_EXPORT __attribute__((visibility("default")))

#define DEFAULT_MODULE "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"

/* -- configuration -- */

typedef struct {
	char *module;
	bool mech_passthrough;
	bool import;
	bool card_id;
	char *label;
	char *real_label;	/* expose only the real token with this label */
	char *model;
	char *manufacturer;
	unsigned long latency_sign_ms;
	unsigned long latency_keygen_ms;
	unsigned long latency_login_ms;
	double latency_scale;
	bool busy_fail;
	char *lock_file;
	char *removed_file;
	unsigned long pin_tries;
	char *state_file;
	unsigned long max_keypairs;	/* ULONG_MAX: unlimited */
	bool verify;
	char *counter_file;
	char *sign_begin_file;	/* "sign <pid> begin" per signature, before sign_wait_for */
	char *sign_wait_for;	/* each signature waits for a "sign " line in this file */
	unsigned long sign_wait_ms;
	bool digest;    /* no: no digest mechanisms (the guard fills them in) */
	bool rng;       /* no: no CKF_RNG, C_GenerateRandom/C_SeedRandom refused */
} config_t;

typedef enum { T_STR, T_BOOL, T_ULONG, T_DOUBLE, T_MECHS, T_BUSY } conf_type_t;

typedef struct {
	const char *key;
	conf_type_t type;
	size_t offset;
} conf_key_t;

#define CK(name, type) { #name, type, offsetof(config_t, name) }
static const conf_key_t CONF_KEYS[] = {
	CK(module, T_STR),
	{ "mechanisms", T_MECHS, offsetof(config_t, mech_passthrough) },
	CK(import, T_BOOL),
	CK(card_id, T_BOOL),
	CK(label, T_STR),
	CK(real_label, T_STR),
	CK(model, T_STR),
	CK(manufacturer, T_STR),
	CK(latency_sign_ms, T_ULONG),
	CK(latency_keygen_ms, T_ULONG),
	CK(latency_login_ms, T_ULONG),
	CK(latency_scale, T_DOUBLE),
	{ "busy", T_BUSY, offsetof(config_t, busy_fail) },
	CK(lock_file, T_STR),
	CK(removed_file, T_STR),
	CK(pin_tries, T_ULONG),
	CK(state_file, T_STR),
	CK(max_keypairs, T_ULONG),
	CK(verify, T_BOOL),
	CK(counter_file, T_STR),
	CK(sign_begin_file, T_STR),
	CK(sign_wait_for, T_STR),
	CK(sign_wait_ms, T_ULONG),
	CK(digest, T_BOOL),
	CK(rng, T_BOOL),
};
#undef CK
#define N_CONF_KEYS (sizeof(CONF_KEYS) / sizeof(CONF_KEYS[0]))

static void config_free(config_t *cfg)
{
	free(cfg->module);
	free(cfg->label);
	free(cfg->model);
	free(cfg->manufacturer);
	free(cfg->real_label);
	free(cfg->lock_file);
	free(cfg->removed_file);
	free(cfg->state_file);
	free(cfg->counter_file);
	free(cfg->sign_begin_file);
	free(cfg->sign_wait_for);
	memset(cfg, 0, sizeof(*cfg));
}

static char *strip(char *s)
{
	while (*s == ' ' || *s == '\t') {
		s++;
	}
	size_t len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
	                   s[len - 1] == '\n' || s[len - 1] == '\r')) {
		s[--len] = '\0';
	}
	return s;
}

/* Strict parsing: a typo must not silently change what the test simulates. */
static bool parse_value(const conf_key_t *k, const char *val, config_t *cfg)
{
	void *field = (char *)cfg + k->offset;
	char *end = NULL;

	switch (k->type) {
	case T_STR: {
		char **str = field;
		if (*val == '\0') {
			return false;
		}
		char *dup = strdup(val);
		if (dup == NULL) {
			return false;
		}
		free(*str);
		*str = dup;
		return true;
	}
	case T_BOOL:
		if (strcmp(val, "yes") == 0) {
			*(bool *)field = true;
		} else if (strcmp(val, "no") == 0) {
			*(bool *)field = false;
		} else {
			return false;
		}
		return true;
	case T_MECHS:
		if (strcmp(val, "smartcard-hsm") == 0) {
			*(bool *)field = false;
		} else if (strcmp(val, "passthrough") == 0) {
			*(bool *)field = true;
		} else {
			return false;
		}
		return true;
	case T_BUSY:
		if (strcmp(val, "wait") == 0) {
			*(bool *)field = false;
		} else if (strcmp(val, "fail") == 0) {
			*(bool *)field = true;
		} else {
			return false;
		}
		return true;
	case T_ULONG: {
		if (*val < '0' || *val > '9') {
			return false;
		}
		errno = 0;
		unsigned long v = strtoul(val, &end, 10);
		if (errno != 0 || *end != '\0' || v == ULONG_MAX) {
			return false;
		}
		*(unsigned long *)field = v;
		return true;
	}
	case T_DOUBLE: {
		errno = 0;
		double v = strtod(val, &end);
		if (errno != 0 || end == val || *end != '\0' || !isfinite(v) || v < 0) {
			return false;
		}
		*(double *)field = v;
		return true;
	}
	}
	return false;
}

static char *path_with_suffix(const char *base, const char *suffix)
{
	char *out = NULL;
	if (asprintf(&out, "%s%s", base, suffix) < 0) {
		return NULL;
	}
	return out;
}

/* Fill defaults that depend on where the configuration lives. */
static bool config_defaults(config_t *cfg, const char *conf_path)
{
	const char *tmp = getenv("TMPDIR");
	char *base = NULL;
	if (conf_path != NULL) {
		base = strdup(conf_path);
	} else if (asprintf(&base, "%s/cardsim", tmp != NULL && *tmp != '\0' ? tmp : "/tmp") < 0) {
		base = NULL;
	}
	if (base == NULL) {
		return false;
	}
	bool ok = true;
	if (cfg->module == NULL) {
		ok = ok && (cfg->module = strdup(DEFAULT_MODULE)) != NULL;
	}
	if (cfg->label == NULL) {
		ok = ok && (cfg->label = strdup("SmartCard-HSM (UserPIN)")) != NULL;
	}
	if (cfg->model == NULL) {
		ok = ok && (cfg->model = strdup("PKCS#15 emulated")) != NULL;
	}
	if (cfg->manufacturer == NULL) {
		ok = ok && (cfg->manufacturer = strdup("www.CardContact.de")) != NULL;
	}
	if (cfg->lock_file == NULL) {
		ok = ok && (cfg->lock_file = path_with_suffix(base, ".lock")) != NULL;
	}
	if (cfg->state_file == NULL) {
		ok = ok && (cfg->state_file = path_with_suffix(base, ".state")) != NULL;
	}
	free(base);
	return ok;
}

static CK_RV config_check(const config_t *cfg, const char *conf_path)
{
	const char *where = conf_path != NULL ? conf_path : "(defaults)";
	if (strlen(cfg->label) > 32 || strlen(cfg->manufacturer) > 32 ||
	    strlen(cfg->model) > 16) {
		fprintf(stderr, "cardsim: %s: label/manufacturer must fit 32 bytes, model 16\n", where);
		return CKR_ARGUMENTS_BAD;
	}
	if (cfg->pin_tries == 0) {
		fprintf(stderr, "cardsim: %s: pin_tries must be at least 1\n", where);
		return CKR_ARGUMENTS_BAD;
	}
	return CKR_OK;
}

/* Read KHSM_CARDSIM_CONF (if set) into cfg; CKR_ARGUMENTS_BAD on any doubt. */
static CK_RV config_load(config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->card_id = true;
	cfg->verify = true;
	cfg->digest = true;
	cfg->rng = true;
	cfg->latency_sign_ms = 170;
	cfg->latency_keygen_ms = 6000;
	cfg->latency_login_ms = 100;
	cfg->latency_scale = 1.0;
	cfg->pin_tries = 3;
	cfg->max_keypairs = ULONG_MAX;
	cfg->sign_wait_ms = 20000;

	/* A copy of this module with MODULE.conf beside it is a card of its
	 * own (own lock, PIN state, counter): one process can then hold two
	 * cards, which one environment variable cannot describe. */
	const char *path = getenv("KHSM_CARDSIM_CONF");
	static char own_conf[PATH_MAX];
	Dl_info self;
	if (dladdr((void *)config_load, &self) != 0 && self.dli_fname != NULL &&
	    snprintf(own_conf, sizeof(own_conf), "%s.conf", self.dli_fname) < (int)sizeof(own_conf) &&
	    access(own_conf, F_OK) == 0) {
		path = own_conf;
	}
	if (path != NULL && *path == '\0') {
		path = NULL;
	}
	CK_RV rv = CKR_OK;
	if (path != NULL) {
		FILE *f = fopen(path, "re");
		if (f == NULL) {
			fprintf(stderr, "cardsim: cannot open %s: %s\n", path, strerror(errno));
			return CKR_ARGUMENTS_BAD;
		}
		bool seen[N_CONF_KEYS] = { false };
		char line[4096];
		unsigned lineno = 0;
		while (rv == CKR_OK && fgets(line, sizeof(line), f) != NULL) {
			lineno++;
			char *s = strip(line);
			if (*s == '\0' || *s == '#') {
				continue;
			}
			char *eq = strchr(s, '=');
			if (eq == NULL) {
				fprintf(stderr, "cardsim: %s:%u: expected 'key = value'\n", path, lineno);
				rv = CKR_ARGUMENTS_BAD;
				break;
			}
			*eq = '\0';
			char *key = strip(s);
			char *val = strip(eq + 1);
			size_t i;
			for (i = 0; i < N_CONF_KEYS; i++) {
				if (strcmp(CONF_KEYS[i].key, key) == 0) {
					break;
				}
			}
			if (i == N_CONF_KEYS) {
				fprintf(stderr, "cardsim: %s:%u: unknown key '%s'\n", path, lineno, key);
				rv = CKR_ARGUMENTS_BAD;
			} else if (seen[i]) {
				fprintf(stderr, "cardsim: %s:%u: duplicate key '%s'\n", path, lineno, key);
				rv = CKR_ARGUMENTS_BAD;
			} else if (!parse_value(&CONF_KEYS[i], val, cfg)) {
				fprintf(stderr, "cardsim: %s:%u: bad value for '%s'\n", path, lineno, key);
				rv = CKR_ARGUMENTS_BAD;
			}
			if (i < N_CONF_KEYS) {
				seen[i] = true;
			}
		}
		fclose(f);
	}
	if (rv == CKR_OK && !config_defaults(cfg, path)) {
		rv = CKR_HOST_MEMORY;
	}
	if (rv == CKR_OK) {
		rv = config_check(cfg, path);
	}
	if (rv != CKR_OK) {
		config_free(cfg);
	}
	return rv;
}

/* -- global state -- */

typedef struct {
	CK_SESSION_HANDLE handle;	/* ours, handed to the application */
	CK_SESSION_HANDLE real;		/* the wrapped module's */
	CK_SLOT_ID slot;
} session_t;

static struct {
	pthread_mutex_t lock;		/* guards everything below */
	bool initialized;
	void *dl;
	CK_FUNCTION_LIST_PTR fl;
	config_t cfg;
	bool removed;
	CK_SESSION_HANDLE next_handle;
	session_t *sessions;
	size_t n_sessions;
	size_t cap_sessions;
} g = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Our function list; filled in at the end of the file. */
static CK_FUNCTION_LIST g_funcs;

static session_t *session_find_locked(CK_SESSION_HANDLE h)
{
	for (size_t i = 0; i < g.n_sessions; i++) {
		if (g.sessions[i].handle == h) {
			return &g.sessions[i];
		}
	}
	return NULL;
}

static void session_drop_locked(session_t *s)
{
	*s = g.sessions[--g.n_sessions];
}

/*
 * Poll the removal file (g.lock held). On the transition to "removed" the
 * card loses every session and its login state, so close the real sessions
 * and forget ours: their handles will never be valid again.
 */
static bool removed_locked(void)
{
	if (g.cfg.removed_file == NULL) {
		return false;
	}
	bool now = access(g.cfg.removed_file, F_OK) == 0;
	if (now && !g.removed) {
		for (size_t i = 0; i < g.n_sessions; i++) {
			/* CloseAllSessions also logs the real token out. */
			g.fl->C_CloseAllSessions(g.sessions[i].slot);
		}
		g.n_sessions = 0;
	}
	g.removed = now;
	return now;
}

/* Initialised and card present? Returns removed_rv when the card is out. */
static CK_RV state_check(CK_RV removed_rv)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv = CKR_OK;
	if (!g.initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	} else if (removed_locked()) {
		rv = removed_rv;
	}
	pthread_mutex_unlock(&g.lock);
	return rv;
}

/* Translate our session handle to the real one. */
static CK_RV session_get(CK_SESSION_HANDLE h, CK_SESSION_HANDLE *real, CK_SLOT_ID *slot)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv = CKR_OK;
	session_t *s = NULL;
	if (!g.initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	} else if (removed_locked()) {
		rv = CKR_DEVICE_REMOVED;
	} else if ((s = session_find_locked(h)) == NULL) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else {
		*real = s->real;
		if (slot != NULL) {
			*slot = s->slot;
		}
	}
	pthread_mutex_unlock(&g.lock);
	return rv;
}

/* A slot is exposed only if it holds an initialised token. */
static CK_RV slot_exposed(CK_SLOT_ID slot, CK_TOKEN_INFO *info)
{
	CK_TOKEN_INFO tmp;
	if (info == NULL) {
		info = &tmp;
	}
	CK_RV rv = g.fl->C_GetTokenInfo(slot, info);
	if (rv == CKR_TOKEN_NOT_PRESENT ||
	    (rv == CKR_OK && !(info->flags & CKF_TOKEN_INITIALIZED))) {
		return CKR_SLOT_ID_INVALID;
	}
	if (rv == CKR_OK && g.cfg.real_label != NULL) {
		unsigned char want[sizeof(info->label)];
		size_t len = strlen(g.cfg.real_label);
		memset(want, ' ', sizeof(want));
		memcpy(want, g.cfg.real_label, len < sizeof(want) ? len : sizeof(want));
		if (memcmp(want, info->label, sizeof(want)) != 0) {
			return CKR_SLOT_ID_INVALID;
		}
	}
	return rv;
}

/* -- the card: lock, latency, counters, PIN state -- */

/*
 * One operation at a time across threads and processes, as on a card. A new
 * open file description per hold makes flock() exclude our own threads too.
 */
static CK_RV card_lock(int *fd_ptr)
{
	/* 0666: the file is empty, and knotd may run as another user. */
	int fd = open(g.cfg.lock_file, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0) {
		fprintf(stderr, "cardsim: cannot open lock file %s: %s\n",
		        g.cfg.lock_file, strerror(errno));
		return CKR_DEVICE_ERROR;
	}
	int op = LOCK_EX | (g.cfg.busy_fail ? LOCK_NB : 0);
	while (flock(fd, op) != 0) {
		if (errno != EINTR) {
			/* EWOULDBLOCK with busy = fail: the card is busy. */
			close(fd);
			return CKR_DEVICE_ERROR;
		}
	}
	*fd_ptr = fd;
	return CKR_OK;
}

static void card_unlock(int fd)
{
	close(fd);	/* releases the flock */
}

static void card_delay(unsigned long ms)
{
	double total_ms = (double)ms * g.cfg.latency_scale;
	if (!(total_ms > 0)) {
		return;
	}
	long long ns = (long long)(total_ms * 1e6);
	struct timespec ts = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
	}
}

/* Busy until ms (scaled) after *start (CLOCK_MONOTONIC): an operation whose
 * own work (SoftHSM's, the counter's) is part of its latency, as a card's
 * computation is part of its data-sheet figure. */
static void card_busy_since(const struct timespec *start, unsigned long ms)
{
	double total_ms = (double)ms * g.cfg.latency_scale;
	if (!(total_ms > 0)) {
		return;
	}
	long long ns = (long long)(total_ms * 1e6);
	struct timespec end = { .tv_sec = start->tv_sec + ns / 1000000000LL,
	                        .tv_nsec = start->tv_nsec + ns % 1000000000LL };
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) == EINTR) {
	}
}

/* One line per event, appended in a single write so processes interleave whole lines. */
static void count_event(const char *what)
{
	if (g.cfg.counter_file == NULL) {
		return;
	}
	char line[64];
	int len = snprintf(line, sizeof(line), "%s %ld\n", what, (long)getpid());
	int fd = open(g.cfg.counter_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "cardsim: cannot open counter file %s: %s\n",
		        g.cfg.counter_file, strerror(errno));
		return;
	}
	ssize_t w = write(fd, line, (size_t)len);
	(void)w;	/* a short count shows up as a failing test */
	close(fd);
}

/* Does path hold a line starting with "sign "? */
static bool file_has_sign(const char *path)
{
	FILE *f = fopen(path, "re");
	if (f == NULL) {
		return false;
	}
	char line[256];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		found = strncmp(line, "sign ", 5) == 0;
	}
	fclose(f);
	return found;
}

/* Two cards that must work at the same time: a signature (card lock held)
 * announces itself in sign_begin_file, then waits until sign_wait_for shows
 * a signature of the other card; a card that waits in vain (the other one
 * never signs while this one holds its lock) gives up after sign_wait_ms
 * and counts "sign_wait timeout". */
static void sign_rendezvous(void)
{
	if (g.cfg.sign_begin_file != NULL) {
		char line[64];
		int len = snprintf(line, sizeof(line), "sign %ld begin\n", (long)getpid());
		int fd = open(g.cfg.sign_begin_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			ssize_t w = write(fd, line, (size_t)len);
			(void)w;
			close(fd);
		}
	}
	static bool gave_up;	/* once per process: a serial caller is not stalled at every signature */
	if (g.cfg.sign_wait_for == NULL || gave_up) {
		return;
	}
	for (unsigned long waited = 0; !file_has_sign(g.cfg.sign_wait_for); waited += 10) {
		if (waited >= g.cfg.sign_wait_ms) {
			count_event("sign_wait timeout");
			gave_up = true;
			return;
		}
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 10000000L };
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
		}
	}
}

/* Tries left for the user PIN; callers hold the card lock. */
static unsigned long pin_tries_read(void)
{
	unsigned long left = g.cfg.pin_tries;
	FILE *f = fopen(g.cfg.state_file, "re");
	if (f == NULL) {
		return left;	/* fresh card */
	}
	unsigned long v;
	if (fscanf(f, "user_pin_tries_left %lu", &v) == 1) {
		left = v < g.cfg.pin_tries ? v : g.cfg.pin_tries;
	} else {
		fprintf(stderr, "cardsim: %s: unreadable, assuming %lu tries\n",
		        g.cfg.state_file, left);
	}
	fclose(f);
	return left;
}

/* Write via rename so a reader in another process never sees half a file. */
static void pin_tries_write(unsigned long left)
{
	char *tmp = NULL;
	if (asprintf(&tmp, "%s.%ld.tmp", g.cfg.state_file, (long)getpid()) < 0) {
		return;
	}
	FILE *f = fopen(tmp, "we");
	if (f != NULL) {
		fprintf(f, "user_pin_tries_left %lu\n", left);
		if (fclose(f) == 0 && rename(tmp, g.cfg.state_file) == 0) {
			free(tmp);
			return;
		}
	}
	fprintf(stderr, "cardsim: cannot write %s: %s\n", g.cfg.state_file, strerror(errno));
	unlink(tmp);
	free(tmp);
}

/* Update the retry counter after the real module judged a user PIN. */
static void pin_result(CK_RV rv, unsigned long left)
{
	if (rv == CKR_OK && left != g.cfg.pin_tries) {
		pin_tries_write(g.cfg.pin_tries);
	} else if (rv == CKR_PIN_INCORRECT && left > 0) {
		pin_tries_write(left - 1);
	}
}

/* -- mechanisms -- */

typedef struct {
	CK_MECHANISM_TYPE type;
	CK_MECHANISM_INFO info;
} mech_t;

#define EC_FLAGS (CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)

/* What OpenSC reports for a SmartCard-HSM / Nitrokey HSM 2. */
static const mech_t SC_HSM_MECHS[] = {
	{ CKM_EC_KEY_PAIR_GEN,       { 256, 384, CKF_HW | CKF_GENERATE_KEY_PAIR | EC_FLAGS } },
	{ CKM_ECDSA,                 { 256, 384, CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS } },
	{ CKM_ECDSA_SHA1,            { 256, 384, CKF_HW | CKF_SIGN | CKF_VERIFY | EC_FLAGS } },
	{ CKM_RSA_PKCS_KEY_PAIR_GEN, { 1024, 4096, CKF_HW | CKF_GENERATE_KEY_PAIR } },
	{ CKM_RSA_PKCS,              { 1024, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY | CKF_DECRYPT } },
	{ CKM_SHA256_RSA_PKCS,       { 1024, 4096, CKF_HW | CKF_SIGN | CKF_VERIFY } },
	{ CKM_SHA_1,                 { 0, 0, CKF_DIGEST } },
	{ CKM_SHA256,                { 0, 0, CKF_DIGEST } },
};
#define N_SC_HSM_MECHS (sizeof(SC_HSM_MECHS) / sizeof(SC_HSM_MECHS[0]))

static const mech_t *sc_hsm_mech(CK_MECHANISM_TYPE type)
{
	for (size_t i = 0; i < N_SC_HSM_MECHS; i++) {
		if (SC_HSM_MECHS[i].type == type) {
			return &SC_HSM_MECHS[i];
		}
	}
	return NULL;
}

/* Digest mechanisms, hidden with `digest = no`. */
static bool is_digest_mech(CK_MECHANISM_TYPE type)
{
	static const CK_MECHANISM_TYPE DIGESTS[] = { CKM_MD5, CKM_SHA_1, CKM_SHA224, CKM_SHA256,
	                                             CKM_SHA384, CKM_SHA512 };
	for (size_t i = 0; i < sizeof(DIGESTS) / sizeof(DIGESTS[0]); i++) {
		if (DIGESTS[i] == type) {
			return true;
		}
	}
	return false;
}

static bool mech_hidden(CK_MECHANISM_TYPE type)
{
	return !g.cfg.digest && is_digest_mech(type);
}

/* May the card run mech for a purpose (CKF_SIGN, ...)? Passthrough lets the real module judge. */
static CK_RV mech_check(const CK_MECHANISM *mech, CK_FLAGS purpose)
{
	if (mech == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if (purpose == CKF_DIGEST && mech_hidden(mech->mechanism)) {
		return CKR_MECHANISM_INVALID;
	}
	if (g.cfg.mech_passthrough) {
		return CKR_OK;
	}
	const mech_t *m = sc_hsm_mech(mech->mechanism);
	if (m == NULL || !(m->info.flags & purpose)) {
		return CKR_MECHANISM_INVALID;
	}
	return CKR_OK;
}

static const CK_ATTRIBUTE *attr_find(const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
	for (CK_ULONG i = 0; tmpl != NULL && i < n; i++) {
		if (tmpl[i].type == type) {
			return &tmpl[i];
		}
	}
	return NULL;
}

/* DER OIDs of the only curves the card generates: P-256 and P-384. */
static const unsigned char OID_P256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07 };
static const unsigned char OID_P384[] = { 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22 };

static bool attr_equals(const CK_ATTRIBUTE *a, const unsigned char *v, size_t len)
{
	return a->pValue != NULL && a->ulValueLen == len && memcmp(a->pValue, v, len) == 0;
}

/* Key parameters the card hardware cannot do. Missing ones are left to the real module. */
static CK_RV keygen_params_check(const CK_MECHANISM *mech,
                                 const CK_ATTRIBUTE *pub, CK_ULONG n_pub,
                                 const CK_ATTRIBUTE *priv, CK_ULONG n_priv)
{
	if (g.cfg.mech_passthrough) {
		return CKR_OK;
	}
	if (mech->mechanism == CKM_EC_KEY_PAIR_GEN) {
		const CK_ATTRIBUTE *a = attr_find(pub, n_pub, CKA_EC_PARAMS);
		if (a == NULL) {
			a = attr_find(priv, n_priv, CKA_EC_PARAMS);
		}
		if (a != NULL && !attr_equals(a, OID_P256, sizeof(OID_P256)) &&
		    !attr_equals(a, OID_P384, sizeof(OID_P384))) {
			return CKR_DOMAIN_PARAMS_INVALID;
		}
	} else if (mech->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN) {
		const CK_ATTRIBUTE *a = attr_find(pub, n_pub, CKA_MODULUS_BITS);
		if (a != NULL && a->pValue != NULL && a->ulValueLen == sizeof(CK_ULONG)) {
			CK_ULONG bits;
			memcpy(&bits, a->pValue, sizeof(bits));
			const mech_t *m = sc_hsm_mech(CKM_RSA_PKCS_KEY_PAIR_GEN);
			if (bits < m->info.ulMinKeySize || bits > m->info.ulMaxKeySize) {
				return CKR_KEY_SIZE_RANGE;
			}
		}
	}
	return CKR_OK;
}

/* -- helpers on the real module -- */

/* Read one variable-length attribute; *out is malloc'ed. */
static CK_RV real_get_attr(CK_SESSION_HANDLE real, CK_OBJECT_HANDLE obj,
                           CK_ATTRIBUTE_TYPE type, unsigned char **out, CK_ULONG *len)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv = g.fl->C_GetAttributeValue(real, obj, &a, 1);
	if (rv != CKR_OK) {
		return rv;
	}
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen == 0) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	a.pValue = malloc(a.ulValueLen);
	if (a.pValue == NULL) {
		return CKR_HOST_MEMORY;
	}
	rv = g.fl->C_GetAttributeValue(real, obj, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return rv;
	}
	*out = a.pValue;
	*len = a.ulValueLen;
	return CKR_OK;
}

/* Private keys on the token, counted in a private session so the caller's find state is untouched. */
static CK_RV real_count_private_keys(CK_SLOT_ID slot, CK_ULONG *count)
{
	CK_SESSION_HANDLE s;
	CK_RV rv = g.fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s);
	if (rv != CKR_OK) {
		return rv;
	}
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_BBOOL on_token = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_TOKEN, &on_token, sizeof(on_token) },
	};
	*count = 0;
	rv = g.fl->C_FindObjectsInit(s, tmpl, 2);
	if (rv == CKR_OK) {
		CK_OBJECT_HANDLE objs[64];
		CK_ULONG n = 0;
		while ((rv = g.fl->C_FindObjects(s, objs, 64, &n)) == CKR_OK && n > 0) {
			*count += n;
		}
		g.fl->C_FindObjectsFinal(s);
	}
	g.fl->C_CloseSession(s);
	return rv;
}

/*
 * The card names a new key pair itself: CKA_ID = SHA-1 of the public key
 * (EC: the raw point inside the DER OCTET STRING of CKA_EC_POINT; RSA: the
 * modulus), whatever ID the application asked for. That is what OpenSC
 * does on a SmartCard-HSM, and what knot-hsm has to find keys by.
 */
static CK_RV real_set_card_id(CK_SESSION_HANDLE real, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv)
{
	CK_KEY_TYPE kt;
	CK_ATTRIBUTE ka = { CKA_KEY_TYPE, &kt, sizeof(kt) };
	CK_RV rv = g.fl->C_GetAttributeValue(real, pub, &ka, 1);
	if (rv != CKR_OK) {
		return rv;
	}
	unsigned char *buf = NULL;
	CK_ULONG len = 0;
	const unsigned char *data;
	size_t data_len;
	if (kt == CKK_EC || kt == CKK_EC_EDWARDS) {
		rv = real_get_attr(real, pub, CKA_EC_POINT, &buf, &len);
		if (rv != CKR_OK) {
			return rv;
		}
		/* Unwrap the DER OCTET STRING (short or long length form). */
		data = buf;
		data_len = len;
		if (len >= 2 && buf[0] == 0x04) {
			size_t hdr = 0, l = 0;
			if (buf[1] < 0x80) {
				hdr = 2;
				l = buf[1];
			} else if (buf[1] == 0x81 && len >= 3) {
				hdr = 3;
				l = buf[2];
			} else if (buf[1] == 0x82 && len >= 4) {
				hdr = 4;
				l = ((size_t)buf[2] << 8) | buf[3];
			}
			if (hdr > 0 && hdr + l == len) {
				data = buf + hdr;
				data_len = l;
			}
		}
	} else if (kt == CKK_RSA) {
		rv = real_get_attr(real, pub, CKA_MODULUS, &buf, &len);
		if (rv != CKR_OK) {
			return rv;
		}
		data = buf;
		data_len = len;
	} else {
		return CKR_OK;	/* no card makes such keys; leave the ID alone */
	}

	unsigned char id[20];
	int ret = gnutls_hash_fast(GNUTLS_DIG_SHA1, data, data_len, id);
	free(buf);
	if (ret != 0) {
		return CKR_GENERAL_ERROR;
	}
	CK_ATTRIBUTE ida = { CKA_ID, id, sizeof(id) };
	rv = g.fl->C_SetAttributeValue(real, pub, &ida, 1);
	if (rv == CKR_OK) {
		rv = g.fl->C_SetAttributeValue(real, priv, &ida, 1);
	}
	return rv;
}

/* -- general purpose -- */

static CK_RV cs_Initialize(CK_VOID_PTR init_args)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv;
	config_t cfg;
	void *dl = NULL;
	CK_FUNCTION_LIST_PTR fl = NULL;

	if (g.initialized) {
		rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
		goto out;
	}
	rv = config_load(&cfg);
	if (rv != CKR_OK) {
		goto out;
	}
	/* NODELETE: unloading SoftHSM (and its OpenSSL) mid-process is asking for trouble. */
	dl = dlopen(cfg.module, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (dl == NULL) {
		fprintf(stderr, "cardsim: cannot load %s: %s\n", cfg.module, dlerror());
		rv = CKR_GENERAL_ERROR;
		goto fail;
	}
	CK_C_GetFunctionList get_list = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
	if (get_list == NULL) {
		fprintf(stderr, "cardsim: %s has no C_GetFunctionList\n", cfg.module);
		rv = CKR_GENERAL_ERROR;
		goto fail;
	}
	rv = get_list(&fl);
	if (rv != CKR_OK) {
		goto fail;
	}
	rv = fl->C_Initialize(init_args);
	if (rv != CKR_OK) {
		goto fail;
	}
	g.cfg = cfg;
	g.dl = dl;
	g.fl = fl;
	g.removed = false;
	g.n_sessions = 0;
	if (g.next_handle == 0) {
		g.next_handle = 1;
	}
	g.initialized = true;
	goto out;
fail:
	if (dl != NULL) {
		dlclose(dl);
	}
	config_free(&cfg);
out:
	pthread_mutex_unlock(&g.lock);
	return rv;
}

static CK_RV cs_Finalize(CK_VOID_PTR reserved)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv;
	if (!g.initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	} else {
		rv = g.fl->C_Finalize(reserved);
		if (rv == CKR_OK) {
			free(g.sessions);
			g.sessions = NULL;
			g.n_sessions = g.cap_sessions = 0;
			config_free(&g.cfg);
			dlclose(g.dl);
			g.dl = NULL;
			g.fl = NULL;
			g.initialized = false;
			/* next_handle keeps counting: old handles stay invalid. */
		}
	}
	pthread_mutex_unlock(&g.lock);
	return rv;
}

static void pad(unsigned char *dst, size_t size, const char *src)
{
	size_t len = strlen(src);
	memset(dst, ' ', size);
	memcpy(dst, src, len < size ? len : size);
}

static CK_RV cs_GetInfo(CK_INFO_PTR info)
{
	CK_RV rv = state_check(CKR_OK);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = g.fl->C_GetInfo(info);
	if (rv == CKR_OK) {
		pad(info->manufacturerID, sizeof(info->manufacturerID), "knot-hsm cardsim");
		/* GnuTLS loads a module whose C_GetInfo equals one it has as a
		 * duplicate: a second card (real_label) describes itself apart. */
		char desc[64];
		snprintf(desc, sizeof(desc), "%s%s", g.cfg.real_label ? "cardsim: " : "smartcard simulator over SoftHSM",
		         g.cfg.real_label ? g.cfg.real_label : "");
		pad(info->libraryDescription, sizeof(info->libraryDescription), desc);
	}
	return rv;
}

static CK_RV cs_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (list == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	*list = &g_funcs;
	return CKR_OK;
}

CS_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return cs_GetFunctionList(list);
}

/* -- slots and tokens -- */

static CK_RV cs_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	if (count == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	pthread_mutex_lock(&g.lock);
	CK_RV rv = g.initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
	bool removed = rv == CKR_OK && removed_locked();
	pthread_mutex_unlock(&g.lock);
	if (rv != CKR_OK) {
		return rv;
	}

	CK_SLOT_ID *all = NULL;
	CK_ULONG n = 0;
	do {	/* tokens may appear between the two calls */
		rv = g.fl->C_GetSlotList(CK_TRUE, NULL, &n);
		if (rv != CKR_OK) {
			return rv;
		}
		free(all);
		all = calloc(n + 1, sizeof(*all));
		if (all == NULL) {
			return CKR_HOST_MEMORY;
		}
		rv = g.fl->C_GetSlotList(CK_TRUE, all, &n);
	} while (rv == CKR_BUFFER_TOO_SMALL);
	if (rv != CKR_OK) {
		free(all);
		return rv;
	}

	CK_ULONG k = 0;
	for (CK_ULONG i = 0; i < n; i++) {
		bool keep = slot_exposed(all[i], NULL) == CKR_OK && !(removed && token_present);
		if (keep) {
			all[k++] = all[i];
		}
	}
	if (list == NULL) {
		rv = CKR_OK;
	} else if (*count < k) {
		rv = CKR_BUFFER_TOO_SMALL;
	} else {
		memcpy(list, all, k * sizeof(*all));
		rv = CKR_OK;
	}
	*count = k;
	free(all);
	return rv;
}

static CK_RV cs_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv = g.initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
	bool removed = rv == CKR_OK && removed_locked();
	pthread_mutex_unlock(&g.lock);
	if (rv == CKR_OK) {
		rv = slot_exposed(slot, NULL);
	}
	if (rv == CKR_OK) {
		rv = g.fl->C_GetSlotInfo(slot, info);
	}
	if (rv == CKR_OK) {
		/* A card reader: the token can go away. */
		info->flags |= CKF_REMOVABLE_DEVICE | CKF_HW_SLOT;
		if (removed) {
			info->flags &= ~CKF_TOKEN_PRESENT;
		}
	}
	return rv;
}

static CK_RV cs_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	CK_RV rv = state_check(CKR_TOKEN_NOT_PRESENT);
	if (rv != CKR_OK) {
		return rv;
	}
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	rv = slot_exposed(slot, info);
	if (rv != CKR_OK) {
		return rv;
	}
	pad(info->label, sizeof(info->label), g.cfg.label);
	pad(info->manufacturerID, sizeof(info->manufacturerID), g.cfg.manufacturer);
	pad(info->model, sizeof(info->model), g.cfg.model);

	/*
	 * Read without the card lock: a reader sees either the old or the new
	 * state file (it is replaced by rename), and OpenSC caches these flags too.
	 */
	if (!g.cfg.rng) {
		info->flags &= ~CKF_RNG;
	}
	unsigned long left = pin_tries_read();
	info->flags &= ~(CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED);
	if (left < g.cfg.pin_tries) {
		info->flags |= CKF_USER_PIN_COUNT_LOW;
	}
	if (left == 1) {
		info->flags |= CKF_USER_PIN_FINAL_TRY;
	}
	if (left == 0) {
		info->flags |= CKF_USER_PIN_LOCKED;
	}
	return CKR_OK;
}

static CK_RV cs_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
	CK_RV rv = state_check(CKR_TOKEN_NOT_PRESENT);
	if (rv == CKR_OK) {
		rv = slot_exposed(slot, NULL);
	}
	if (rv != CKR_OK) {
		return rv;
	}
	if (count == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	CK_MECHANISM_TYPE *all = NULL;
	CK_ULONG n = 0;
	if (g.cfg.mech_passthrough) {
		rv = g.fl->C_GetMechanismList(slot, NULL, &n);
		all = rv == CKR_OK ? calloc(n + 1, sizeof(*all)) : NULL;
		if (rv == CKR_OK && all == NULL) {
			rv = CKR_HOST_MEMORY;
		}
		if (rv == CKR_OK) {
			rv = g.fl->C_GetMechanismList(slot, all, &n);
		}
	} else {
		all = calloc(N_SC_HSM_MECHS, sizeof(*all));
		if (all == NULL) {
			rv = CKR_HOST_MEMORY;
		}
		for (size_t i = 0; all != NULL && i < N_SC_HSM_MECHS; i++) {
			all[n++] = SC_HSM_MECHS[i].type;
		}
	}
	CK_ULONG kept = 0;
	for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++) {
		if (!mech_hidden(all[i])) {
			all[kept++] = all[i];
		}
	}
	if (rv == CKR_OK && list != NULL && *count < kept) {
		rv = CKR_BUFFER_TOO_SMALL;
	} else if (rv == CKR_OK && list != NULL) {
		memcpy(list, all, kept * sizeof(*all));
	}
	if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
		*count = kept;
	}
	free(all);
	return rv;
}

static CK_RV cs_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
	CK_RV rv = state_check(CKR_TOKEN_NOT_PRESENT);
	if (rv == CKR_OK) {
		rv = slot_exposed(slot, NULL);
	}
	if (rv != CKR_OK) {
		return rv;
	}
	if (info == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	if (mech_hidden(type)) {
		return CKR_MECHANISM_INVALID;
	}
	if (g.cfg.mech_passthrough) {
		rv = g.fl->C_GetMechanismInfo(slot, type, info);
	} else {
		const mech_t *m = sc_hsm_mech(type);
		if (m == NULL) {
			return CKR_MECHANISM_INVALID;
		}
		*info = m->info;
	}
	if (rv == CKR_OK && !g.cfg.verify) {
		info->flags &= ~(CKF_VERIFY | CKF_VERIFY_RECOVER);
	}
	return rv;
}

static CK_RV cs_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, CK_UTF8CHAR_PTR label)
{
	CK_RV rv = state_check(CKR_TOKEN_NOT_PRESENT);
	if (rv == CKR_OK) {
		rv = slot_exposed(slot, NULL);
	}
	if (rv != CKR_OK) {
		return rv;
	}
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = g.fl->C_InitToken(slot, pin, pin_len, label);
	if (rv == CKR_OK) {
		pin_tries_write(g.cfg.pin_tries);	/* a fresh card */
	}
	card_unlock(fd);
	return rv;
}

/* -- sessions -- */

static CK_RV cs_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
                            CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session)
{
	(void)notify;	/* we never call back; neither does SoftHSM */
	CK_RV rv = state_check(CKR_TOKEN_NOT_PRESENT);
	if (rv == CKR_OK) {
		rv = slot_exposed(slot, NULL);
	}
	if (rv != CKR_OK) {
		return rv;
	}
	if (session == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	CK_SESSION_HANDLE real;
	rv = g.fl->C_OpenSession(slot, flags, app, NULL, &real);
	if (rv != CKR_OK) {
		return rv;
	}
	pthread_mutex_lock(&g.lock);
	if (g.n_sessions == g.cap_sessions) {
		size_t cap = g.cap_sessions ? 2 * g.cap_sessions : 16;
		session_t *s = realloc(g.sessions, cap * sizeof(*s));
		if (s == NULL) {
			pthread_mutex_unlock(&g.lock);
			g.fl->C_CloseSession(real);
			return CKR_HOST_MEMORY;
		}
		g.sessions = s;
		g.cap_sessions = cap;
	}
	session_t *s = &g.sessions[g.n_sessions++];
	s->handle = g.next_handle++;
	s->real = real;
	s->slot = slot;
	*session = s->handle;
	pthread_mutex_unlock(&g.lock);
	return CKR_OK;
}

static CK_RV cs_CloseSession(CK_SESSION_HANDLE h)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv = CKR_OK;
	CK_SESSION_HANDLE real = 0;
	session_t *s = NULL;
	if (!g.initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	} else if (removed_locked()) {
		rv = CKR_DEVICE_REMOVED;
	} else if ((s = session_find_locked(h)) == NULL) {
		rv = CKR_SESSION_HANDLE_INVALID;
	} else {
		real = s->real;
		session_drop_locked(s);
	}
	pthread_mutex_unlock(&g.lock);
	if (rv == CKR_OK) {
		rv = g.fl->C_CloseSession(real);
	}
	return rv;
}

static CK_RV cs_CloseAllSessions(CK_SLOT_ID slot)
{
	pthread_mutex_lock(&g.lock);
	CK_RV rv = CKR_OK;
	if (!g.initialized) {
		rv = CKR_CRYPTOKI_NOT_INITIALIZED;
	} else {
		bool removed = removed_locked();
		for (size_t i = 0; i < g.n_sessions;) {
			if (g.sessions[i].slot == slot) {
				session_drop_locked(&g.sessions[i]);
			} else {
				i++;
			}
		}
		if (removed) {
			rv = CKR_TOKEN_NOT_PRESENT;
		}
	}
	pthread_mutex_unlock(&g.lock);
	if (rv == CKR_OK) {
		rv = slot_exposed(slot, NULL);
	}
	if (rv == CKR_OK) {
		rv = g.fl->C_CloseAllSessions(slot);
	}
	return rv;
}

/* Forward a call whose first argument is a session, translating the handle. */
#define FWD(name, params, args) \
	static CK_RV cs_##name params \
	{ \
		CK_SESSION_HANDLE real; \
		CK_RV rv = session_get(hSession, &real, NULL); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		return g.fl->C_##name args; \
	}

/* The same, for calls that talk to the card and so take the card lock. */
#define FWD_CARD_COUNTED(name, event, params, args) \
	static CK_RV cs_##name params \
	{ \
		CK_SESSION_HANDLE real; \
		CK_RV rv = session_get(hSession, &real, NULL); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		int fd; \
		rv = card_lock(&fd); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		if ((event) != NULL) { \
			count_event(event); \
		} \
		rv = g.fl->C_##name args; \
		card_unlock(fd); \
		return rv; \
	}
#define FWD_CARD(name, params, args) FWD_CARD_COUNTED(name, NULL, params, args)

/* Refused when `verify = no`: some card stacks leave verification to software. */
#define FWD_VERIFY(name, params, args) \
	static CK_RV cs_##name params \
	{ \
		CK_SESSION_HANDLE real; \
		CK_RV rv = session_get(hSession, &real, NULL); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		if (!g.cfg.verify) { \
			return CKR_FUNCTION_NOT_SUPPORTED; \
		} \
		return g.fl->C_##name args; \
	}

/* Init calls: the mechanism must be one the card has for that purpose. */
#define FWD_MECH(name, purpose, params, args) \
	static CK_RV cs_##name params \
	{ \
		CK_SESSION_HANDLE real; \
		CK_RV rv = session_get(hSession, &real, NULL); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		rv = mech_check(pMechanism, purpose); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		return g.fl->C_##name args; \
	}

FWD(GetSessionInfo, (CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo), (real, pInfo))
FWD(GetOperationState, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pState, CK_ULONG_PTR pLen),
    (real, pState, pLen))
FWD(SetOperationState, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pState, CK_ULONG len,
                        CK_OBJECT_HANDLE enc, CK_OBJECT_HANDLE auth),
    (real, pState, len, enc, auth))

/* -- login and PINs -- */

static CK_RV cs_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		return rv;
	}
	/* Context-specific logins verify the user PIN too. */
	bool user_pin = user == CKU_USER || user == CKU_CONTEXT_SPECIFIC;
	unsigned long left = user_pin ? pin_tries_read() : 0;
	if (user_pin && left == 0) {
		rv = CKR_PIN_LOCKED;	/* the card refuses without looking at the PIN */
	} else {
		card_delay(g.cfg.latency_login_ms);
		rv = g.fl->C_Login(real, user, pin, pin_len);
		if (user_pin) {
			pin_result(rv, left);
		}
	}
	count_event(rv == CKR_OK ? "login ok" : "login fail");
	card_unlock(fd);
	return rv;
}

FWD_CARD(Logout, (CK_SESSION_HANDLE hSession), (real))

/* SO unblock (sc-hsm-tool --unlock-pin): a new user PIN set by the SO resets the counter. */
static CK_RV cs_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = g.fl->C_InitPIN(real, pin, pin_len);
	if (rv == CKR_OK) {
		pin_tries_write(g.cfg.pin_tries);
	}
	card_unlock(fd);
	return rv;
}

/* Changing the user PIN proves the old one: it counts as an attempt. */
static CK_RV cs_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR old_pin, CK_ULONG old_len,
                       CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	CK_SESSION_INFO si;
	rv = g.fl->C_GetSessionInfo(real, &si);
	if (rv != CKR_OK) {
		return rv;
	}
	bool user_pin = si.state != CKS_RW_SO_FUNCTIONS;
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		return rv;
	}
	unsigned long left = user_pin ? pin_tries_read() : 0;
	if (user_pin && left == 0) {
		rv = CKR_PIN_LOCKED;
	} else {
		rv = g.fl->C_SetPIN(real, old_pin, old_len, new_pin, new_len);
		if (user_pin) {
			pin_result(rv, left);
		}
	}
	card_unlock(fd);
	return rv;
}

/* -- objects -- */

static CK_RV cs_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                             CK_OBJECT_HANDLE_PTR obj)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	if (!g.cfg.import) {
		/* Keys are born on the card; only public material can be stored. */
		const CK_ATTRIBUTE *a = attr_find(tmpl, n, CKA_CLASS);
		if (a != NULL && a->pValue != NULL && a->ulValueLen == sizeof(CK_OBJECT_CLASS)) {
			CK_OBJECT_CLASS cls;
			memcpy(&cls, a->pValue, sizeof(cls));
			if (cls == CKO_PRIVATE_KEY || cls == CKO_SECRET_KEY) {
				return CKR_FUNCTION_NOT_SUPPORTED;
			}
		}
	}
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = g.fl->C_CreateObject(real, tmpl, n, obj);
	card_unlock(fd);
	return rv;
}

FWD_CARD(CopyObject, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_PTR tmpl,
                      CK_ULONG n, CK_OBJECT_HANDLE_PTR out),
         (real, obj, tmpl, n, out))
FWD_CARD(DestroyObject, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj), (real, obj))
FWD_CARD(GetObjectSize, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj, CK_ULONG_PTR size),
         (real, obj, size))
FWD_CARD(GetAttributeValue, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj,
                             CK_ATTRIBUTE_PTR tmpl, CK_ULONG n),
         (real, obj, tmpl, n))
FWD_CARD(SetAttributeValue, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE obj,
                             CK_ATTRIBUTE_PTR tmpl, CK_ULONG n),
         (real, obj, tmpl, n))
/* Counted: a test proves how often a run reads the card ("find <pid>"). */
FWD_CARD_COUNTED(FindObjectsInit, "find", (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n),
                 (real, tmpl, n))
FWD_CARD(FindObjects, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR objs, CK_ULONG max,
                       CK_ULONG_PTR n),
         (real, objs, max, n))
FWD_CARD(FindObjectsFinal, (CK_SESSION_HANDLE hSession), (real))

/* -- crypto -- */

FWD_MECH(EncryptInit, CKF_ENCRYPT,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE key),
         (real, pMechanism, key))
FWD(Encrypt, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
              CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD(EncryptUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                    CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD(EncryptFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
    (real, out, out_len))
FWD_MECH(DecryptInit, CKF_DECRYPT,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE key),
         (real, pMechanism, key))
FWD_CARD(Decrypt, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                   CK_ULONG_PTR out_len),
         (real, in, in_len, out, out_len))
FWD(DecryptUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                    CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD_CARD(DecryptFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
         (real, out, out_len))
FWD_MECH(DigestInit, CKF_DIGEST, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism),
         (real, pMechanism))
FWD(Digest, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
             CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD(DigestUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len),
    (real, in, in_len))
FWD(DigestKey, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE key), (real, key))
FWD(DigestFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
    (real, out, out_len))

/* SignInit does not reach the card, so it does not hold the lock (as OpenSC). */
FWD_MECH(SignInit, CKF_SIGN,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE key),
         (real, pMechanism, key))
FWD(SignUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len), (real, in, in_len))

/*
 * One signature on the card: hold the lock across latency and signing, and
 * count it only when a signature was actually produced (a NULL buffer is a
 * length query).
 */
static CK_RV card_sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len,
                       CK_BYTE_PTR sig, CK_ULONG_PTR sig_len, bool final)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		/* A failed C_Sign ends the signing operation (PKCS#11 v2.40, 5.11),
		 * as on a real card, so the caller may C_SignInit again: finish
		 * SoftHSM's operation into a scratch buffer nobody sees. */
		CK_BYTE scratch[2048];
		CK_ULONG len = sizeof(scratch);
		(void)(final ? g.fl->C_SignFinal(real, scratch, &len) : g.fl->C_Sign(real, in, in_len, scratch, &len));
		return rv;
	}
	struct timespec start = { 0 };
	if (sig != NULL) {
		sign_rendezvous();
		clock_gettime(CLOCK_MONOTONIC, &start);
	}
	rv = final ? g.fl->C_SignFinal(real, sig, sig_len)
	           : g.fl->C_Sign(real, in, in_len, sig, sig_len);
	if (rv == CKR_OK && sig != NULL) {
		count_event("sign");
	}
	if (sig != NULL) {
		/* latency_sign_ms is the whole signature: SoftHSM's signing inside it */
		card_busy_since(&start, g.cfg.latency_sign_ms);
	}
	card_unlock(fd);
	return rv;
}

static CK_RV cs_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len,
                     CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	return card_sign(hSession, in, in_len, sig, sig_len, false);
}

static CK_RV cs_SignFinal(CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	return card_sign(hSession, NULL, 0, sig, sig_len, true);
}

FWD_MECH(SignRecoverInit, CKF_SIGN_RECOVER,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE key),
         (real, pMechanism, key))
FWD_CARD(SignRecover, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                       CK_ULONG_PTR out_len),
         (real, in, in_len, out, out_len))

static CK_RV cs_VerifyInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE key)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	if (!g.cfg.verify) {
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	rv = mech_check(pMechanism, CKF_VERIFY);
	if (rv != CKR_OK) {
		return rv;
	}
	return g.fl->C_VerifyInit(real, pMechanism, key);
}

FWD_VERIFY(Verify, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                    CK_ULONG sig_len),
           (real, in, in_len, sig, sig_len))
FWD_VERIFY(VerifyUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len),
           (real, in, in_len))
FWD_VERIFY(VerifyFinal, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len),
           (real, sig, sig_len))

static CK_RV cs_VerifyRecoverInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                  CK_OBJECT_HANDLE key)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	if (!g.cfg.verify) {
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	rv = mech_check(pMechanism, CKF_VERIFY_RECOVER);
	if (rv != CKR_OK) {
		return rv;
	}
	return g.fl->C_VerifyRecoverInit(real, pMechanism, key);
}

FWD_VERIFY(VerifyRecover, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR sig, CK_ULONG sig_len,
                           CK_BYTE_PTR out, CK_ULONG_PTR out_len),
           (real, sig, sig_len, out, out_len))

FWD(DigestEncryptUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len,
                          CK_BYTE_PTR out, CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD(DecryptDigestUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len,
                          CK_BYTE_PTR out, CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD(SignEncryptUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len,
                        CK_BYTE_PTR out, CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))
FWD(DecryptVerifyUpdate, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR in, CK_ULONG in_len,
                          CK_BYTE_PTR out, CK_ULONG_PTR out_len),
    (real, in, in_len, out, out_len))

/* -- keys -- */

FWD_MECH(GenerateKey, CKF_GENERATE,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR tmpl,
          CK_ULONG n, CK_OBJECT_HANDLE_PTR key),
         (real, pMechanism, tmpl, n, key))

static CK_RV cs_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                                CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG n_pub,
                                CK_ATTRIBUTE_PTR priv_tmpl, CK_ULONG n_priv,
                                CK_OBJECT_HANDLE_PTR pub_ptr, CK_OBJECT_HANDLE_PTR priv_ptr)
{
	CK_SESSION_HANDLE real;
	CK_SLOT_ID slot;
	CK_RV rv = session_get(hSession, &real, &slot);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = mech_check(pMechanism, CKF_GENERATE_KEY_PAIR);
	if (rv != CKR_OK) {
		return rv;
	}
	rv = keygen_params_check(pMechanism, pub_tmpl, n_pub, priv_tmpl, n_priv);
	if (rv != CKR_OK) {
		return rv;
	}
	if (pub_ptr == NULL || priv_ptr == NULL) {
		return CKR_ARGUMENTS_BAD;
	}
	int fd;
	rv = card_lock(&fd);
	if (rv != CKR_OK) {
		return rv;
	}
	if (g.cfg.max_keypairs != ULONG_MAX) {
		CK_ULONG have = 0;
		rv = real_count_private_keys(slot, &have);
		if (rv == CKR_OK && have >= g.cfg.max_keypairs) {
			rv = CKR_DEVICE_MEMORY;	/* what a full card answers */
		}
		if (rv != CKR_OK) {
			goto out;
		}
	}
	/* under the card lock, before the latency: a test that waits for this
	 * line knows the card is busy making the pair */
	count_event("keygen");
	card_delay(g.cfg.latency_keygen_ms);
	CK_OBJECT_HANDLE pub, priv;
	rv = g.fl->C_GenerateKeyPair(real, pMechanism, pub_tmpl, n_pub, priv_tmpl, n_priv, &pub, &priv);
	if (rv == CKR_OK && g.cfg.card_id) {
		rv = real_set_card_id(real, pub, priv);
		if (rv != CKR_OK) {
			/* Leave no half-made key pair behind. */
			g.fl->C_DestroyObject(real, pub);
			g.fl->C_DestroyObject(real, priv);
		}
	}
	if (rv == CKR_OK) {
		*pub_ptr = pub;
		*priv_ptr = priv;
	}
out:
	card_unlock(fd);
	return rv;
}

FWD_MECH(WrapKey, CKF_WRAP,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE wrapping,
          CK_OBJECT_HANDLE key, CK_BYTE_PTR out, CK_ULONG_PTR out_len),
         (real, pMechanism, wrapping, key, out, out_len))

/* Unwrapping is importing a key: refused unless `import = yes`. */
static CK_RV cs_UnwrapKey(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                          CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in, CK_ULONG in_len,
                          CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
	CK_SESSION_HANDLE real;
	CK_RV rv = session_get(hSession, &real, NULL);
	if (rv != CKR_OK) {
		return rv;
	}
	if (!g.cfg.import) {
		return CKR_FUNCTION_NOT_SUPPORTED;
	}
	rv = mech_check(pMechanism, CKF_UNWRAP);
	if (rv != CKR_OK) {
		return rv;
	}
	return g.fl->C_UnwrapKey(real, pMechanism, unwrapping, in, in_len, tmpl, n, key);
}

FWD_MECH(DeriveKey, CKF_DERIVE,
         (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE base,
          CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR key),
         (real, pMechanism, base, tmpl, n, key))

/* -- random and legacy -- */

/* `rng = no`: a card without a random number generator. */
#define FWD_RNG(name, params, args) \
	static CK_RV cs_##name params \
	{ \
		CK_SESSION_HANDLE real; \
		CK_RV rv = session_get(hSession, &real, NULL); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		if (!g.cfg.rng) { \
			return CKR_RANDOM_NO_RNG; \
		} \
		int fd; \
		rv = card_lock(&fd); \
		if (rv != CKR_OK) { \
			return rv; \
		} \
		rv = g.fl->C_##name args; \
		card_unlock(fd); \
		return rv; \
	}

FWD_RNG(SeedRandom, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR seed, CK_ULONG len), (real, seed, len))
FWD_RNG(GenerateRandom, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR out, CK_ULONG len), (real, out, len))
FWD(GetFunctionStatus, (CK_SESSION_HANDLE hSession), (real))
FWD(CancelFunction, (CK_SESSION_HANDLE hSession), (real))

static CK_RV cs_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
	CK_RV rv = state_check(CKR_OK);
	if (rv != CKR_OK) {
		return rv;
	}
	return g.fl->C_WaitForSlotEvent(flags, slot, reserved);
}

static CK_FUNCTION_LIST g_funcs = {
	.version = { CRYPTOKI_VERSION_MAJOR, CRYPTOKI_VERSION_MINOR },
	.C_Initialize = cs_Initialize,
	.C_Finalize = cs_Finalize,
	.C_GetInfo = cs_GetInfo,
	.C_GetFunctionList = cs_GetFunctionList,
	.C_GetSlotList = cs_GetSlotList,
	.C_GetSlotInfo = cs_GetSlotInfo,
	.C_GetTokenInfo = cs_GetTokenInfo,
	.C_GetMechanismList = cs_GetMechanismList,
	.C_GetMechanismInfo = cs_GetMechanismInfo,
	.C_InitToken = cs_InitToken,
	.C_InitPIN = cs_InitPIN,
	.C_SetPIN = cs_SetPIN,
	.C_OpenSession = cs_OpenSession,
	.C_CloseSession = cs_CloseSession,
	.C_CloseAllSessions = cs_CloseAllSessions,
	.C_GetSessionInfo = cs_GetSessionInfo,
	.C_GetOperationState = cs_GetOperationState,
	.C_SetOperationState = cs_SetOperationState,
	.C_Login = cs_Login,
	.C_Logout = cs_Logout,
	.C_CreateObject = cs_CreateObject,
	.C_CopyObject = cs_CopyObject,
	.C_DestroyObject = cs_DestroyObject,
	.C_GetObjectSize = cs_GetObjectSize,
	.C_GetAttributeValue = cs_GetAttributeValue,
	.C_SetAttributeValue = cs_SetAttributeValue,
	.C_FindObjectsInit = cs_FindObjectsInit,
	.C_FindObjects = cs_FindObjects,
	.C_FindObjectsFinal = cs_FindObjectsFinal,
	.C_EncryptInit = cs_EncryptInit,
	.C_Encrypt = cs_Encrypt,
	.C_EncryptUpdate = cs_EncryptUpdate,
	.C_EncryptFinal = cs_EncryptFinal,
	.C_DecryptInit = cs_DecryptInit,
	.C_Decrypt = cs_Decrypt,
	.C_DecryptUpdate = cs_DecryptUpdate,
	.C_DecryptFinal = cs_DecryptFinal,
	.C_DigestInit = cs_DigestInit,
	.C_Digest = cs_Digest,
	.C_DigestUpdate = cs_DigestUpdate,
	.C_DigestKey = cs_DigestKey,
	.C_DigestFinal = cs_DigestFinal,
	.C_SignInit = cs_SignInit,
	.C_Sign = cs_Sign,
	.C_SignUpdate = cs_SignUpdate,
	.C_SignFinal = cs_SignFinal,
	.C_SignRecoverInit = cs_SignRecoverInit,
	.C_SignRecover = cs_SignRecover,
	.C_VerifyInit = cs_VerifyInit,
	.C_Verify = cs_Verify,
	.C_VerifyUpdate = cs_VerifyUpdate,
	.C_VerifyFinal = cs_VerifyFinal,
	.C_VerifyRecoverInit = cs_VerifyRecoverInit,
	.C_VerifyRecover = cs_VerifyRecover,
	.C_DigestEncryptUpdate = cs_DigestEncryptUpdate,
	.C_DecryptDigestUpdate = cs_DecryptDigestUpdate,
	.C_SignEncryptUpdate = cs_SignEncryptUpdate,
	.C_DecryptVerifyUpdate = cs_DecryptVerifyUpdate,
	.C_GenerateKey = cs_GenerateKey,
	.C_GenerateKeyPair = cs_GenerateKeyPair,
	.C_WrapKey = cs_WrapKey,
	.C_UnwrapKey = cs_UnwrapKey,
	.C_DeriveKey = cs_DeriveKey,
	.C_SeedRandom = cs_SeedRandom,
	.C_GenerateRandom = cs_GenerateRandom,
	.C_GetFunctionStatus = cs_GetFunctionStatus,
	.C_CancelFunction = cs_CancelFunction,
	.C_WaitForSlotEvent = cs_WaitForSlotEvent,
};
