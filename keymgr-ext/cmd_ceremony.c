/* ceremony: the offline-KSK cycle for each zone, one PIN entry for the run.
 * The cycle itself is lib/ceremony; this file finds the two configurations,
 * arranges the PIN for keymgr, the archive folder, and prints. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/ceremony.h"
#include "cleanup.h"
#include "lib/display.h"
#include "lib/dnskey.h"
#include "lib/archive.h"
#include "lib/error.h"
#include "lib/files.h"
#include "lib/pcscd.h"
#include "lib/handoff.h"
#include "lib/json.h"
#include "lib/kasp.h"
#include "lib/knot.h"
#include "lib/pin.h"
#include "lib/timefmt.h"
#include "lib/policy.h"
#include "lib/uri.h"
#include "lib/zonelock.h"
#include "lib/zoneconf.h"
#include "zonecmd.h"

#define KHSM_STEAL_PTR(p) ({ __typeof__(p) _s = (p); (p) = NULL; _s; })

/* A PIN read by knot-hsm reaches keymgr through lib/handoff: a sealed memfd
 * (nothing on disk, gone with this process), else a 0600 file in a 0700
 * directory. These are freed on every exit path; on SIGINT/SIGTERM/SIGHUP the
 * fallback files (paths copied below) are unlinked by the handler. */
static khsm_handoff_t *pin_handoff;
static khsm_handoff_t *conf_handoff;
static char sig_paths[4][PATH_MAX];   /* pin file, its dir, conf file, its dir */
/* This run's archive directory: removed at the end (and on those signals)
 * when nothing was archived in it; rmdir() leaves a directory with files. */
static char archive_dir[PATH_MAX];

static void remember_for_signals(const khsm_handoff_t *h, char *file, char *dir)
{
	if (khsm_handoff_dir(h)) {
		snprintf(file, PATH_MAX, "%s", khsm_handoff_path(h));
		snprintf(dir, PATH_MAX, "%s", khsm_handoff_dir(h));
	}
}

static void remove_pin_files(void)
{
	khsm_handoff_free(pin_handoff);
	khsm_handoff_free(conf_handoff);
	pin_handoff = conf_handoff = NULL;
	memset(sig_paths, 0, sizeof(sig_paths));
}

/* What an interrupted run says (zones done, interrupted, not started): built
 * outside the handler each time a zone finishes, in the one of two buffers
 * the handler does not read, and written by the handler with write(2). */
static char *sig_note[2];
static volatile sig_atomic_t sig_note_cur = -1;

/* A note ready for the handler: into the buffer it does not read, then made
 * the current one. */
static void note_publish(char *buf)
{
	int next = sig_note_cur == 0 ? 1 : 0;
	free(sig_note[next]);
	sig_note[next] = buf;
	if (buf) sig_note_cur = next;
}

/* Before the zones are pre-signed: what the run was doing, that nothing was
 * imported, and (while KSKs are made) the zones whose KSK is there already. */
static void note_stage(const char *doing, char *const *zones, size_t with_ksk)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m) return;
	fprintf(m, "\nceremony interrupted %s", doing);
	for (size_t i = 0; i < with_ksk; i++) fprintf(m, "%s%s", i ? ", " : " (KSK on the card: ", zones[i]);
	fprintf(m, "%s: no zone was pre-signed or imported; rerun the same command\n", with_ksk ? ")" : "");
	fclose(m);
	note_publish(buf);
}

/* The zones done, and with generate-ksk=yes those whose KSK is ready: the
 * hook thread (KSKs) and the finisher (zones done) both update the note. */
static pthread_mutex_t note_mu = PTHREAD_MUTEX_INITIALIZER;
static size_t note_done, note_ksks;

static void note_render(char *const *zones, size_t count)
{
	size_t done = note_done;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m) return;
	fprintf(m, "\nceremony interrupted: %zu of %zu zone(s) done", done, count);
	for (size_t i = 0; i < done; i++) fprintf(m, "%s%s", i ? ", " : " (", zones[i]);
	fprintf(m, "%s", done ? ")" : "");
	for (size_t i = done; i < note_ksks && i < count; i++) {
		fprintf(m, "%s%s", i == done ? "; KSK on the card, not pre-signed yet: " : ", ", zones[i]);
	}
	if (done < count) fprintf(m, "; interrupted: %s, not imported", zones[done]);
	size_t rest = note_ksks > done + 1 ? note_ksks : done + 1;   /* each zone named once */
	for (size_t i = rest; i < count; i++) fprintf(m, "%s%s", i == rest ? "; not started: " : ", ", zones[i]);
	if (done < count) {
		fprintf(m, "\nnote: the zones not done keep their previous SKR; ZSKs keymgr pregenerated "
		        "for them stay unpublished in their KASP and the next run uses them; rerun the "
		        "same command to finish\n");
	} else {
		fprintf(m, "\n");
	}
	fclose(m);
	note_publish(buf);
}

static void note_progress(char *const *zones, size_t count, size_t done)
{
	pthread_mutex_lock(&note_mu);
	note_done = done;
	note_render(zones, count);
	pthread_mutex_unlock(&note_mu);
}

static void note_ksk_ready(char *const *zones, size_t count, size_t ksks)
{
	pthread_mutex_lock(&note_mu);
	note_ksks = ksks;
	note_render(zones, count);
	pthread_mutex_unlock(&note_mu);
}

static void note_clear(void)
{
	note_done = note_ksks = 0;
	sig_note_cur = -1;
	for (int i = 0; i < 2; i++) {
		free(sig_note[i]);
		sig_note[i] = NULL;
	}
}

static void on_signal(int sig)
{
	for (int i = 0; i < 4; i += 2) {
		if (sig_paths[i][0]) unlink(sig_paths[i]);
		if (sig_paths[i + 1][0]) rmdir(sig_paths[i + 1]);
	}
	if (archive_dir[0]) rmdir(archive_dir);
	int cur = sig_note_cur;
	if (cur >= 0 && sig_note[cur]) {
		ssize_t w = write(STDERR_FILENO, sig_note[cur], strlen(sig_note[cur]));
		(void)w;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The temporary PIN files and the archive directory go on these signals too. */
static void cleanup_on_signals(void)
{
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
}

static void on_zone_locked(const char *zone, pid_t holder, unsigned wait_ms, void *data)
{
	(void)data;
	char who[48] = "";
	if (holder > 0) snprintf(who, sizeof(who), " (pid %d)", (int)holder);
	fprintf(stderr, "note: another ceremony%s is running on %s; waiting up to %u s for it "
	        "(KHSM_CEREMONY_WAIT_MS)\n", who, zone, wait_ms / 1000);
	fflush(stderr);
}

/* The KSK-side configuration keymgr signs with. Its keystore URI normally
 * has pin-source; otherwise the PIN is read once (--pin-file, --pin-fd or a
 * prompt) and handed to keymgr (lib/handoff: a memfd, else a private
 * temporary file), and a copy of the KSK-side configuration, handed over the
 * same way, names it as pin-source. */
static int prepare_ksk_conf(const cli_t *cli, const char *ksk_path, const char *ksk_text,
                            const khsm_conf_keystore_t *ks, const char **use_path, char **config_ptr)
{
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	int r = khsm_uri_split_config(ks->config, &uri, &module);
	if (r != KHSM_EOK) return cli_error(r, "keystore %s", ks->id);
	khsm_uri_t attrs = { 0 };
	if ((r = khsm_uri_parse(uri, &attrs)) != KHSM_EOK) return cli_error(r, "keystore %s", ks->id);
	bool has_source = attrs.pin_source != NULL, has_value = attrs.pin_value != NULL;
	if (has_source) {
		r = khsm_pin_file_verify("pin-source", attrs.pin_source, cli->force);
	}
	khsm_uri_clear(&attrs);
	if (r != KHSM_EOK) return cli_error(r, "KSK side");
	if (has_source || has_value) {
		if (has_value) {
			fprintf(stderr, "warning: the KSK-side keystore has the PIN in clear text (pin-value); "
			        "use pin-source\n");
		}
		*use_path = ksk_path;
		*config_ptr = strdup(ks->config);
		return *config_ptr ? CLI_OK : cli_error(KHSM_ENOMEM, NULL);
	}

	khsm_pin_t *pin = NULL;
	if ((r = cli_pin(cli, true, &pin)) != KHSM_EOK || !pin) {
		khsm_pin_free(pin);
		return cli_error(r != KHSM_EOK ? r : KHSM_ENOPIN, "PIN for the KSK side");
	}
	const char *tmp = getenv("TMPDIR");
	cleanup_on_signals();
	r = khsm_handoff_new(tmp, "pin", khsm_pin_value(pin), khsm_pin_len(pin), &pin_handoff);
	khsm_pin_free(pin);
	if (r != KHSM_EOK) return cli_error(r, "PIN for keymgr");
	remember_for_signals(pin_handoff, sig_paths[0], sig_paths[1]);
	const char *pin_path = khsm_handoff_path(pin_handoff);

	_cleanup_free_ char *new_config = NULL;
	char *text = NULL;
	if ((r = khsm_ceremony_ksk_conf_pin(ksk_path, ksk_text, ks->id, ks->config, pin_path,
	                                    &new_config, &text)) != KHSM_EOK) {
		return cli_error(r, NULL);
	}
	/* The copy names the PIN's path, never the PIN. */
	r = khsm_handoff_new(tmp, "ksk.conf", text, strlen(text), &conf_handoff);
	free(text);
	if (r != KHSM_EOK) return cli_error(r, "KSK-side configuration for keymgr");
	remember_for_signals(conf_handoff, sig_paths[2], sig_paths[3]);
	*use_path = khsm_handoff_path(conf_handoff);
	*config_ptr = KHSM_STEAL_PTR(new_config);
	return CLI_OK;
}

/* The zone's KSK on the KSK side: present, generated (generate-ksk=yes), or
 * shared from another zone of the run (shared-ksk=yes in the KSK side). */
static int ensure_ksk(cli_t *cli, const char *ksk_conf, const char *zone, bool generate,
                      bool shared, char *shared_id, size_t shared_size, const char *display_conf,
                      khsm_kasp_keep_t *keep, khsm_enroll_memo_t *memo, khsm_conf_t **conf)
{
	khsm_kasp_summary_t sum = { 0 };
	int64_t now = (int64_t)time(NULL);
	/* the kept index (every zone listed at the run's first key, each again
	 * after its own) names the zone as the KSK side does */
	const khsm_conf_zone_t *kz = keep && keep->valid && conf && *conf ? khsm_conf_zone_find(*conf, zone)
	                             : NULL;
	if (kz) {
		khsm_kasp_index_summarize(&keep->idx, kz->domain, now, &sum);
		/* a key to be made: the zone listed again first (another knot-hsm
		 * may have given it one since), which generate's checks then see */
		int r = sum.has_ksk ? KHSM_EOK : khsm_kasp_index_refresh(&keep->idx, *conf, kz->domain);
		if (r != KHSM_EOK) {
			khsm_kasp_keep_clear(keep);   /* listed whole at the next key */
			return cli_error(r, "%s: keymgr list (KSK side)", zone);
		}
		if (!sum.has_ksk) khsm_kasp_index_summarize(&keep->idx, kz->domain, now, &sum);
	} else {
		int r = khsm_kasp_zone_summary(ksk_conf, zone, now, &sum);
		if (r != KHSM_EOK) return cli_error(r, "%s: keymgr list (KSK side)", zone);
	}
	if (sum.has_ksk) {
		if (shared && !shared_id[0]) snprintf(shared_id, shared_size, "%s", sum.last_ksk_id);
		return CLI_OK;
	}
	if (!generate) {
		khsm_err_detail("%s has no KSK on the KSK side; make it on the card with: knot-hsm -c %s %s "
		                "generate (or run the ceremony with generate-ksk=yes)", zone, display_conf, zone);
		return cli_error(KHSM_ENOENT, NULL);
	}
	char id_arg[300];
	char *args[2] = { NULL, NULL };
	snprintf(id_arg, sizeof(id_arg), "id=%s", shared_id);
	args[0] = shared && shared_id[0] ? id_arg : (char *)"ksk=yes";
	cli_t sub = *cli;
	char *zones[1] = { (char *)zone };
	sub.conf = ksk_conf;
	sub.zones = zones;
	sub.zone_count = 1;
	sub.args = args;
	sub.arg_count = 1;
	sub.kasp_keep = keep;
	sub.enroll_memo = memo;
	sub.enroll_conf = conf;
	sub.in_ceremony = true;
	/* Under --json, generate's text goes to stderr with the ceremony's, and
	 * stdout keeps the ceremony's JSON alone. */
	sub.json = false;
	int saved = -1;
	fflush(stdout);
	if (cli->json && ((saved = dup(STDOUT_FILENO)) < 0 || dup2(STDERR_FILENO, STDOUT_FILENO) < 0)) {
		if (saved >= 0) close(saved);
		return cli_error(KHSM_EIO, "%s: stdout", zone);
	}
	printf("%s: %s the KSK on the card (KSK side)\n", zone, args[0] == id_arg ? "sharing" : "generating");
	fflush(stdout);
	int rc = args[0] == id_arg ? cmd_import(&sub) : cmd_generate(&sub);
	fflush(stdout);
	if (saved >= 0) {
		dup2(saved, STDOUT_FILENO);
		close(saved);
	}
	if (rc != CLI_OK) return rc;
	if (shared && !shared_id[0]) {
		return ensure_ksk(cli, ksk_conf, zone, false, shared, shared_id, shared_size, display_conf, keep,
		                  memo, conf);
	}
	return CLI_OK;
}

static double now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Progress of a run, printed by on_zone from the ceremony's finisher thread
 * (with generate-ksk=yes the hook thread prints each zone's KSK lines too, whole
 * lines to stdout, stderr under --json): text to out (stdout, stderr under
 * --json), and under --json one object per zone to j. */
typedef struct {
	const khsm_conf_t *zconf;
	const char *until_arg;
	char *const *zones;
	size_t total, finished, signed_zones, skipped, signatures, by_keymgr;
	int *state;            /* per zone: Z_TODO, Z_DONE, Z_FAILED */
	bool several;          /* zones on several cards */
	double started;
	FILE *out;
	khsm_json_t *j;
	size_t printed;        /* index + 1 of a zone whose error is printed already, or 0 */
} progress_t;

static void json_time(khsm_json_t *j, const char *key, int64_t t)
{
	char name[32], buf[32];
	snprintf(name, sizeof(name), "%s_iso", key);
	if (t) {
		khsm_time_iso(t, buf, sizeof(buf));
		khsm_json_int(j, key, t);
		khsm_json_str(j, name, buf);
	} else {
		khsm_json_null(j, key);
		khsm_json_null(j, name);
	}
}

static void json_zone(khsm_json_t *j, const char *zone, int r, const khsm_ceremony_result_t *res)
{
	khsm_json_object(j, NULL);
	khsm_json_str(j, "zone", zone);
	if (r != KHSM_EOK) {
		const char *d = khsm_err_last_detail();
		char why[2100];
		snprintf(why, sizeof(why), "%s%s%s", khsm_strerror(r), d ? ": " : "", d ? d : "");
		khsm_json_str(j, "result", "failed");
		khsm_json_str(j, "error", why);
	} else {
		khsm_json_str(j, "result", res->skipped ? "skipped" : "signed");
		json_time(j, "from", res->skipped ? 0 : res->from);
		json_time(j, "end", res->end);
		json_time(j, "valid_until", res->valid_until);
		khsm_json_uint(j, "signatures", res->skipped ? 0 : res->signatures);
		khsm_json_str(j, "signer", res->skipped ? NULL : res->by_keymgr ? "keymgr" : "card");
		khsm_json_str(j, "keymgr_reason", res->skipped ? NULL : res->keymgr_reason);
		khsm_json_str(j, "ksr", res->skipped ? NULL : res->ksr_path);
		khsm_json_str(j, "skr", res->skipped ? NULL : res->skr_path);
	}
	khsm_json_end(j);
}

enum { Z_TODO, Z_DONE, Z_FAILED };

/* The signal note of a run on several cards: the zones done and not done. */
static void note_progress_cards(const progress_t *pg)
{
	int next = sig_note_cur == 0 ? 1 : 0;
	free(sig_note[next]);
	sig_note[next] = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m) return;
	fprintf(m, "\nceremony interrupted: %zu of %zu zone(s) done", pg->finished, pg->total);
	const char *sep = " (";
	for (size_t i = 0; i < pg->total; i++) {
		if (pg->state[i] != Z_DONE) continue;
		fprintf(m, "%s%s", sep, pg->zones[i]);
		sep = ", ";
	}
	fprintf(m, "%s", pg->finished ? ")" : "");
	sep = "; not done (not imported): ";
	for (size_t i = 0; i < pg->total; i++) {
		if (pg->state[i] == Z_DONE) continue;
		fprintf(m, "%s%s", sep, pg->zones[i]);
		sep = ", ";
	}
	fprintf(m, "%s\n", pg->finished < pg->total ? "\nnote: the zones not done keep their previous "
	        "SKR; ZSKs keymgr pregenerated for them stay unpublished in their KASP and the next run "
	        "uses them; rerun the same command to finish" : "");
	fclose(m);
	note_publish(buf);
}

/* generate-ksk=yes on one card: each zone's KSK is made (or shared) by the
 * ceremony's hook thread (khsm_ceremony_t.before_prepare), one zone ahead of
 * the ZSK-side preparer, while the card signs the zone before. */
typedef struct {
	cli_t *cli;
	const char *use_conf, *display_conf;
	bool shared;
	char shared_id[257];
	khsm_kasp_keep_t *keep;
	khsm_enroll_memo_t memo;   /* the shared KSK, proven once for all the zones */
	khsm_conf_t *conf;         /* the KSK side, read once for all the zones */
	progress_t *pg;
} onboard_t;

static int onboard_zone(size_t index, const char *zone, void *data)
{
	onboard_t *o = data;
	cli_error_code_reset();
	if (ensure_ksk(o->cli, o->use_conf, zone, true, o->shared, o->shared_id, sizeof(o->shared_id),
	               o->display_conf, o->keep, &o->memo, &o->conf) == CLI_OK) {
		note_ksk_ready(o->pg->zones, o->pg->total, index + 1);
		return KHSM_EOK;
	}
	__atomic_store_n(&o->pg->printed, index + 1, __ATOMIC_RELEASE);   /* generate or import printed why */
	return cli_error_code();
}

/* Called one zone at a time (several cards: from the cards' threads, never
 * two at once, lib/ceremony). */
static bool on_zone(size_t index, const char *zone, int r, const khsm_ceremony_result_t *res, void *data)
{
	progress_t *pg = data;
	if (pg->j) json_zone(pg->j, zone, r, res);
	if (r != KHSM_EOK) {
		pg->state[index] = Z_FAILED;
		if (__atomic_load_n(&pg->printed, __ATOMIC_ACQUIRE) != index + 1) cli_error(r, "%s", zone);
		return false;
	}
	pg->state[index] = Z_DONE;
	pg->finished++;
	char a[32], b[32], v[32];
	khsm_time_iso(res->from, a, sizeof(a));
	khsm_time_iso(res->end, b, sizeof(b));
	khsm_time_iso(res->valid_until, v, sizeof(v));
	if (res->skipped) {
		pg->skipped++;
		fprintf(pg->out, "%s: skipped: pre-signed until %s, which reaches until=%s\n", zone, b, pg->until_arg);
	} else {
		pg->signed_zones++;
		pg->signatures += res->signatures;
		fprintf(pg->out, "%s: pre-signed until %s (DNSKEY signatures valid until %s); new SKR %s .. %s, "
		        "%zu card signatures\n", zone, b, v, a, b, res->signatures);
		if (res->by_keymgr) {
			pg->by_keymgr++;
			fprintf(pg->out, "%s: signed by keymgr sign-ksr (a card login of its own)%s%s\n", zone,
			        res->keymgr_reason ? ": " : "", res->keymgr_reason ? res->keymgr_reason : "");
		}
		fprintf(pg->out, "%s: archived %s and %s\n", zone, res->ksr_path, res->skr_path);
		zone_reload_keys(pg->zconf, zone, pg->out);
	}
	if (pg->several) {
		note_progress_cards(pg);
	} else {
		note_progress(pg->zones, pg->total, index + 1);
	}
	fprintf(pg->out, "progress: %zu/%zu zones, %.1f s\n", pg->finished, pg->total, now_mono() - pg->started);
	fflush(pg->out);
	return true;
}

/* How the card was used: the summary says "one card session" only when
 * knot-hsm's signer signed a zone. */
static const char *card_use(bool use_card, const progress_t *pg)
{
	size_t by_card = pg->signed_zones - pg->by_keymgr;
	if (pg->signed_zones == 0) return "the card was not used";
	if (!use_card) return "keymgr sign-ksr per zone (a card login each)";
	if (by_card == 0) return "keymgr sign-ksr for the zones named above (a card login each)";
	if (pg->several) {
		return pg->by_keymgr ? "one card session per card, the cards in parallel, plus keymgr "
		                       "sign-ksr for the zones named above"
		                     : "one card session per card, the cards in parallel";
	}
	return pg->by_keymgr ? "one card session, plus keymgr sign-ksr for the zones named above"
	                     : "one card session";
}

static void pcscd_note(const char *socket, unsigned budget_ms, void *data)
{
	(void)data;
	fprintf(stderr, "note: waiting for pcscd (nothing answers on %s), up to %u s…\n", socket,
	        budget_ms / 1000);
}

/* A card of the run: the zones whose KSK-side keystores name it. */
typedef struct {
	const khsm_conf_keystore_t *ks;  /* the first keystore naming the card */
	char *name;                      /* card_name() */
	char *config;                    /* what knot-hsm logs in with (pin-source) */
	khsm_skr_signer_t *signer;
	khsm_ceremony_t c;
} card_t;

/* The card of a zone's keystore: one of cards[0..*n), or a new one. */
static int card_find(card_t *cards, size_t *n, const khsm_conf_keystore_t *ks, size_t *card_ptr)
{
	_cleanup_free_ char *name = NULL;
	int r = khsm_uri_card_name(ks->config, true, &name);
	if (r != KHSM_EOK) return r;
	for (size_t k = 0; k < *n; k++) {
		if (strcmp(cards[k].name, name) != 0) continue;
		/* Two keystores of one card: the run checks and logs in with one
		 * PIN source, so their configs (pin-source included) must agree, or
		 * keymgr would send the other one's PIN unchecked. */
		if (cards[k].ks != ks && strcmp(cards[k].ks->config, ks->config) != 0) {
			khsm_err_detail("the zones use different keystores of one card on the KSK side (%s, "
			                "%s) whose configs differ; run one ceremony per keystore, or give "
			                "them one config", cards[k].ks->id, ks->id);
			return KHSM_ECONFIG;
		}
		*card_ptr = k;
		return KHSM_EOK;
	}
	cards[*n] = (card_t) { .ks = ks, .name = KHSM_STEAL_PTR(name) };
	*card_ptr = (*n)++;
	return KHSM_EOK;
}

/* The KSK side's cds-cdnskey-publish as khsm_cds_t, -1 when the signer does
 * not reproduce it (delete-dnssec, a CDS digest other than SHA-256). */
static int ksk_side_cds(const khsm_conf_policy_t *kp)
{
	khsm_cds_t cds = KHSM_CDS_ROLLOVER;
	if (kp->cds_cdnskey_publish && khsm_cds_from_name(kp->cds_cdnskey_publish, &cds) != KHSM_EOK) {
		khsm_err_clear();
		return -1;
	}
	if (kp->cds_digest_type && strcmp(kp->cds_digest_type, "sha256") != 0) return -1;
	return (int)cds;
}

/* The KSK side's other cards, for the signer of card: a KSK of a rollover
 * from card to card is on one of them (skr_sign.h). Each card once; a card
 * with no key to sign is never opened. */
static int add_other_cards(const khsm_conf_t *kconf, card_t *card)
{
	char **seen = calloc(khsm_conf_keystore_count(kconf) + 1, sizeof(*seen));
	size_t nseen = 0;
	int r = seen ? KHSM_EOK : KHSM_ENOMEM;
	for (size_t i = 0; i < khsm_conf_keystore_count(kconf) && r == KHSM_EOK; i++) {
		const khsm_conf_keystore_t *ks = khsm_conf_keystore_at(kconf, i);
		char *name = NULL;
		if (!khsm_conf_keystore_is_pkcs11(ks) || !ks->config ||
		    khsm_uri_card_name(ks->config, true, &name) != KHSM_EOK) {
			continue;   /* not a card, or none knot-hsm can tell apart */
		}
		bool known = strcmp(name, card->name) == 0;
		for (size_t j = 0; j < nseen && !known; j++) known = strcmp(seen[j], name) == 0;
		if (known) {
			free(name);
			continue;
		}
		seen[nseen++] = name;
		r = khsm_skr_signer_add_card(card->signer, ks->config, name);
	}
	for (size_t j = 0; j < nseen; j++) free(seen[j]);
	free(seen);
	return r;
}

/* Several cards: each keystore names its own PIN (pin-source), as one PIN
 * read by knot-hsm cannot be right for two cards. */
static int card_has_pin_source(const card_t *card)
{
	_cleanup_free_ char *uri = NULL;
	_cleanup_free_ char *module = NULL;
	khsm_uri_t a = { 0 };
	int r = khsm_uri_split_config(card->ks->config, &uri, &module);
	if (r == KHSM_EOK) r = khsm_uri_parse(uri, &a);
	if (r != KHSM_EOK) return cli_error(r, "keystore %s", card->ks->id);
	bool has = a.pin_source || a.pin_value;
	khsm_uri_clear(&a);
	if (has) return CLI_OK;
	khsm_err_detail("the zones are on several cards and the KSK-side keystore %s has no "
	                "pin-source: knot-hsm reads one PIN per run, which cannot be right for two "
	                "cards; give each card keystore its pin-source (knot-hsm keystore --pin-file "
	                "FILE prints it), or run one ceremony per card", card->ks->id);
	return cli_error(KHSM_ENOPIN, NULL);
}

static int run_zones(cli_t *cli, const kv_t *kv)
{
	/* until=+DURATION */
	const char *until_arg = kv_get(kv, "until") ? kv_get(kv, "until") : "+90d";
	int64_t span = 0;
	if (until_arg[0] != '+' || khsm_duration_parse(until_arg + 1, &span) != KHSM_EOK || span <= 0) {
		return cli_usage_error(cli_current, "until= takes +DURATION (s, m, h or d), e.g. +90d, not '%s'",
		                       until_arg);
	}
	bool generate = false;
	if (kv_get(kv, "generate-ksk") && kv_bool("generate-ksk", kv_get(kv, "generate-ksk"), &generate) != CLI_OK) {
		return CLI_USAGE;
	}
	/* pcscd-wait=SECONDS: how long a dead pcscd is waited for (default 60). */
	unsigned long pcscd_wait_s = 60;
	if (kv_get(kv, "pcscd-wait")) {
		char *end = NULL;
		errno = 0;
		pcscd_wait_s = strtoul(kv_get(kv, "pcscd-wait"), &end, 10);
		if (errno || !isdigit((unsigned char)kv_get(kv, "pcscd-wait")[0]) || *end || pcscd_wait_s > 3600) {
			return cli_usage_error(cli_current, "pcscd-wait= takes seconds, 0 to 3600, not '%s'",
			                       kv_get(kv, "pcscd-wait"));
		}
	}
	const char *signer_arg = kv_get(kv, "signer") ? kv_get(kv, "signer") : "card";
	if (strcmp(signer_arg, "card") != 0 && strcmp(signer_arg, "keymgr") != 0) {
		return cli_usage_error(cli_current, "signer= takes card or keymgr, not '%s'", signer_arg);
	}
	bool use_card = strcmp(signer_arg, "card") == 0;

	_cleanup_conf_ khsm_conf_t *zconf = NULL;
	int r = khsm_conf_load(zone_conf_path(cli), &zconf);
	if (r != KHSM_EOK) return cli_error(r, "%s", zone_conf_path(cli));
	_cleanup_free_ char *ksk_path = kv_get(kv, "ksk-conf") ? strdup(kv_get(kv, "ksk-conf"))
	                                                      : ksk_side_path(khsm_conf_path(zconf));
	if (!ksk_path) return cli_error(KHSM_ENOMEM, NULL);
	if (access(ksk_path, R_OK) != 0) {
		int e = errno;
		_cleanup_free_ char *zdir = khsm_path_dir(ksk_path);
		khsm_err_detail("no KSK-side configuration %s (%s); write it with knot-hsm ZONE... policy "
		                "--write %s/knot-hsm.conf, or name it with ksk-conf=PATH", ksk_path,
		                strerror(e), zdir ? zdir : ".");
		return cli_error(KHSM_ENOENT, NULL);
	}
	_cleanup_conf_ khsm_conf_t *kconf = NULL;
	if ((r = khsm_conf_load(ksk_path, &kconf)) != KHSM_EOK) return cli_error(r, "%s", ksk_path);
	_cleanup_free_ char *ksk_text = NULL;
	if ((r = khsm_file_read(ksk_path, NULL, &ksk_text, NULL, NULL)) != KHSM_EOK) return cli_error(r, NULL);
	bool shared = khsm_policy_text_shared_ksk(ksk_text);

	/* Check every zone on both sides before the card is touched, and group
	 * the zones by the card their KSK-side keystore names. */
	char **zones = calloc((size_t)cli->zone_count, sizeof(char *));
	card_t *cards = calloc((size_t)cli->zone_count, sizeof(*cards));
	size_t *card_of = calloc((size_t)cli->zone_count, sizeof(*card_of));
	int *zstate = calloc((size_t)cli->zone_count, sizeof(*zstate));
	size_t ncards = 0;
	if (!zones || !cards || !card_of || !zstate) {
		free(zones); free(cards); free(card_of); free(zstate);
		return cli_error(KHSM_ENOMEM, NULL);
	}
	int rc = CLI_OK;
	for (int i = 0; i < cli->zone_count && rc == CLI_OK; i++) {
		const khsm_conf_zone_t *z = NULL;
		const khsm_conf_policy_t *p = NULL;
		if ((r = khsm_zone_normalize(cli->zones[i], &zones[i])) != KHSM_EOK) {
			rc = cli_error(r, "zone '%s'", cli->zones[i]);
		} else if (!(z = khsm_conf_zone_find(zconf, zones[i])) ||
		           khsm_conf_zone_policy(zconf, z, &p) != KHSM_EOK || !p->offline_ksk || !p->manual) {
			khsm_err_detail("zone %s in %s does not use an offline-KSK policy (offline-ksk: on, "
			                "manual: on); render one with knot-hsm %s policy --write and set "
			                "dnssec-policy: %s", zones[i], khsm_conf_path(zconf), zones[i], KHSM_POLICY_ID);
			rc = cli_error(KHSM_ECONFIG, NULL);
		} else {
			khsm_zone_t kz = { 0 };
			if ((r = khsm_zone_resolve(kconf, zones[i], NULL, &kz)) != KHSM_EOK) {
				rc = cli_error(r, "KSK side %s", ksk_path);
			} else if (!kz.policy || !kz.policy->offline_ksk || !kz.policy->manual) {
				khsm_err_detail("zone %s in %s does not use an offline-KSK policy", zones[i], ksk_path);
				rc = cli_error(KHSM_ECONFIG, NULL);
			} else if ((r = card_find(cards, &ncards, kz.keystore, &card_of[i])) == KHSM_ECONFIG) {
				rc = cli_error(r, NULL);
			} else if (r != KHSM_EOK) {
				rc = cli_error(r, "KSK-side keystore %s", kz.keystore->id);
			}
			khsm_zone_clear(&kz);
		}
	}
	bool several = ncards > 1;
	for (size_t k = 0; k < ncards && rc == CLI_OK && several; k++) {
		rc = card_has_pin_source(&cards[k]);
	}
	if (rc == CLI_OK && several && generate && shared) {
		khsm_err_detail("the zones are on several cards and the KSK side shares one KSK "
		                "(shared-ksk): a shared KSK lives on one card; run the ceremony with "
		                "generate-ksk=yes once per card");
		rc = cli_error(KHSM_ECONFIG, NULL);
	}
	const char *use_conf = NULL;
	for (size_t k = 0; k < ncards && rc == CLI_OK; k++) {
		rc = prepare_ksk_conf(cli, ksk_path, ksk_text, cards[k].ks, &use_conf, &cards[k].config);
	}
	/* Ctrl-C from here on says what was done (nothing, before the zones). */
	cleanup_on_signals();
	note_stage("while checking pcscd and the card", zones, 0);
	/* A dead pcscd (OpenSC): waited for, bounded, before any card work. */
	for (size_t k = 0; k < ncards && rc == CLI_OK; k++) {
		if ((r = khsm_pcscd_wait(cards[k].ks->config, pcscd_wait_s * 1000, pcscd_note, NULL)) != KHSM_EOK) {
			rc = cli_error(r, "card keystore %s", cards[k].ks->id);
		}
	}

	/* Archive: <kasp-db>/../knot-hsm-archive/YYYY-MM-DD[.N]/, a directory of
	 * its own for this run's KSRs and SKRs (an archive is a record, never
	 * replaced); lib/archive makes and checks it without following a symlink.
	 * Each zone is locked there first: one ceremony per zone at a time. */
	int64_t now = (int64_t)time(NULL);
	_cleanup_free_ char *archive = NULL;
	khsm_zonelock_t *zlock = NULL;
	if (rc == CLI_OK) {
		note_stage("while waiting for the zones' ceremony lock", zones, 0);
		_cleanup_free_ char *base = NULL;
		if ((r = khsm_archive_open(khsm_conf_kasp_db(zconf), &base)) != KHSM_EOK) {
			rc = cli_error(r, "archive");
		} else if ((r = khsm_zonelock_take(base, (const char *const *)zones, (size_t)cli->zone_count,
		                                   khsm_zonelock_wait_ms(), on_zone_locked, NULL, &zlock)) != KHSM_EOK) {
			if (r == KHSM_EBUSY) {   /* not the card's "busy": the detail says it all */
				fprintf(stderr, "error: %s\n", khsm_esc(khsm_err_last_detail()));
				rc = CLI_FAIL;
			} else {
				rc = cli_error(r, "ceremony lock");
			}
		} else if ((r = khsm_archive_claim(base, now, &archive)) != KHSM_EOK) {
			rc = cli_error(r, "archive");
		} else {
			snprintf(archive_dir, sizeof(archive_dir), "%s", archive);
			cleanup_on_signals();
		}
	}

	/* KSKs made on request (generate-ksk=yes). Over many zones: each keymgr
	 * run reads its zone's cut (zoneconf.h), and every zone's KASP is listed
	 * once for all the KSKs made, not per KSK. */
	khsm_kasp_keep_t keep = { 0 };
	onboard_t onboard = { .cli = cli, .use_conf = use_conf, .display_conf = ksk_path, .shared = shared,
	                      .keep = cli->zone_count > 1 ? &keep : NULL };
	bool cut = generate && cli->zone_count > 1 && khsm_zoneconf_use(use_conf) == KHSM_EOK;
	/* The KSKs' logins are kept through the signing: one login per card for
	 * the whole onboarding run. */
	khsm_login_hold_t *hold = NULL;
	if (generate && khsm_login_hold_new(&hold) == KHSM_EOK) {
		cli->login_hold = hold;
	}
	khsm_err_clear();
	/* Zones on several cards: every KSK first, as the cards' threads would
	 * otherwise make them at once. One card: in the pipeline (onboard_zone). */
	for (int i = 0; i < cli->zone_count && rc == CLI_OK && generate && several; i++) {
		note_stage("while making the zones' KSKs", zones, (size_t)i);
		rc = ensure_ksk(cli, use_conf, zones[i], generate, shared, onboard.shared_id,
		                sizeof(onboard.shared_id), ksk_path, onboard.keep, &onboard.memo, &onboard.conf);
	}
	if (rc == CLI_OK) note_stage("before the zones were pre-signed", zones, 0);

	/* One card session per card for the run: knot-hsm signs the KSRs itself
	 * through libdnssec with the card keystore (signer=card, the default), or
	 * keymgr sign-ksr signs each zone with a login of its own (signer=keymgr).
	 * Zones on several cards: one thread per card, each card under its own
	 * lock (lib/retry.h), so the cards sign at the same time. */
	for (size_t k = 0; k < ncards && rc == CLI_OK; k++) {
		int64_t lifetime = 0, refresh = 0;
		int cds = -1;
		size_t first = 0;
		while (card_of[first] != k) first++;
		const khsm_conf_zone_t *kz0 = khsm_conf_zone_find(kconf, zones[first]);
		const khsm_conf_policy_t *kp = NULL;
		if (use_card && kz0 && khsm_conf_zone_policy(kconf, kz0, &kp) == KHSM_EOK && kp) {
			if (!kp->rrsig_lifetime || khsm_duration_parse(kp->rrsig_lifetime, &lifetime) != KHSM_EOK) lifetime = 0;
			if (!kp->rrsig_refresh || khsm_duration_parse(kp->rrsig_refresh, &refresh) != KHSM_EOK) refresh = 0;
			cds = ksk_side_cds(kp);
		}
		if (use_card && (r = khsm_skr_signer_open(cards[k].config, &cards[k].signer)) != KHSM_EOK) {
			rc = cli_error(r, "card keystore %s", cards[k].ks->id);
		}
		if (use_card && rc == CLI_OK && (r = add_other_cards(kconf, &cards[k])) != KHSM_EOK) {
			rc = cli_error(r, "KSK side %s", ksk_path);
		}
		cards[k].c = (khsm_ceremony_t) {
			.zsk_conf = khsm_conf_path(zconf), .ksk_conf = use_conf, .archive_dir = archive,
			.now = now, .until = now + span, .signer = cards[k].signer, .rrsig_lifetime = lifetime,
			.rrsig_refresh = refresh, .cds = cds,
			.ksk_display = ksk_path, .card_config = cards[k].config, .force = cli->force,
			.card_lock = several ? cards[k].name : NULL,
			.before_prepare = generate && !several ? onboard_zone : NULL, .before_data = &onboard,
		};
	}
	progress_t pg = { .zconf = zconf, .until_arg = until_arg, .zones = zones,
	                  .total = (size_t)cli->zone_count, .started = now_mono(),
	                  .out = cli->json ? stderr : stdout, .state = zstate, .several = several };
	/* --json: the zones' objects in memory, printed with the summary once
	 * the run has a result (a run stopped before it has none: stdout empty). */
	char *json_buf = NULL;
	size_t json_len = 0;
	FILE *json_mem = NULL;
	khsm_json_t json;
	if (rc == CLI_OK && cli->json) {
		if (!(json_mem = open_memstream(&json_buf, &json_len))) {
			rc = cli_error(KHSM_ENOMEM, NULL);
		} else {
			khsm_json_init(&json, json_mem, KHSM_JSON_LINES);
			khsm_json_object(&json, NULL);
			khsm_json_array(&json, "zones");
			pg.j = &json;
		}
	}
	onboard.pg = &pg;
	size_t done = 0;
	bool run_failed = false;   /* a zone failed: the run has a result to report */
	if (rc == CLI_OK) {
		if (several) {
			const khsm_ceremony_t **cs = calloc(ncards, sizeof(*cs));
			if (!cs) {
				r = KHSM_ENOMEM;
			} else {
				for (size_t k = 0; k < ncards; k++) cs[k] = &cards[k].c;
				note_progress_cards(&pg);
				r = khsm_ceremony_run_cards(cs, ncards, (const char *const *)zones, card_of,
				                            (size_t)cli->zone_count, on_zone, &pg, &done);
				free(cs);
			}
		} else {
			note_progress(zones, (size_t)cli->zone_count, 0);
			r = khsm_ceremony_run(&cards[0].c, (const char *const *)zones, (size_t)cli->zone_count,
			                      on_zone, &pg, &done);
		}
		if (r != KHSM_EOK) {   /* printed by on_zone */
			rc = CLI_FAIL;
			run_failed = true;
		}
	}
	for (size_t k = 0; k < ncards; k++) khsm_skr_signer_close(cards[k].signer);
	khsm_kasp_keep_clear(&keep);
	khsm_enroll_memo_clear(&onboard.memo);
	khsm_conf_free(onboard.conf);
	if (cut) khsm_zoneconf_release(use_conf);
	cli->login_hold = NULL;
	khsm_login_hold_free(hold);
	bool ran = rc == CLI_OK || run_failed;
	if (rc == CLI_OK || done > 0) {
		fprintf(pg.out, "ceremony: %zu zone(s), %zu pre-signed, %zu skipped, %zu card signatures, %.1f s; "
		        "%s\n", done, pg.signed_zones, pg.skipped, pg.signatures, now_mono() - pg.started,
		        card_use(use_card, &pg));
	}
	size_t failed = 0;
	for (int i = 0; i < cli->zone_count; i++) failed += zstate[i] == Z_FAILED;
	if (several && ran && done < (size_t)cli->zone_count) {
		/* Which card did what: a card's failure stops its own zones only
		 * (a refused PIN stops every card). */
		for (size_t k = 0; k < ncards; k++) {
			fprintf(stderr, "note: card of keystore %s", cards[k].ks->id);
			static const int order[] = { Z_DONE, Z_FAILED, Z_TODO };
			static const char *const what[] = { "done", "failed", "not done" };
			const char *part = ": ";
			for (size_t o = 0; o < 3; o++) {
				const char *sep = NULL;
				for (int i = 0; i < cli->zone_count; i++) {
					if (card_of[i] != k || zstate[i] != order[o]) continue;
					if (sep) {
						fprintf(stderr, "%s%s", sep, zones[i]);
					} else {
						fprintf(stderr, "%s%s: %s", part, what[o], zones[i]);
					}
					sep = ", ";
					part = "; ";
				}
			}
			fprintf(stderr, "\n");
		}
		if (r == KHSM_EPIN_INCORRECT || r == KHSM_EPIN_LOCKED || r == KHSM_EPIN_FINAL_TRY) {
			fprintf(stderr, "note: a card refused its PIN, so every card stopped after the zone it "
			        "was at (knot-hsm spends one PIN try per run)\n");
		}
		fprintf(stderr, "note: the zones not done keep their previous SKR; ZSKs keymgr pregenerated "
		        "for them stay unpublished in their KASP and the next run uses them; rerun the same "
		        "command to finish\n");
	} else if (rc != CLI_OK && ran && done < (size_t)cli->zone_count) {
		fprintf(stderr, "note: %zu zone(s) before %s are done; %s and the zones after it keep their "
		        "previous SKR; ZSKs keymgr pregenerated for them stay unpublished in their KASP "
		        "and the next run uses them; rerun the same command to finish\n", done, zones[done],
		        zones[done]);
	}
	if (json_mem) {
		khsm_json_end(&json);
		khsm_json_object(&json, "summary");
		khsm_json_uint(&json, "zones", (uint64_t)cli->zone_count);
		khsm_json_uint(&json, "done", done);
		khsm_json_uint(&json, "signed", pg.signed_zones);
		khsm_json_uint(&json, "skipped", pg.skipped);
		khsm_json_uint(&json, "failed", several ? failed : rc == CLI_OK ? 0 : 1);
		khsm_json_uint(&json, "not_started", several ? (uint64_t)cli->zone_count - done - failed
		                                     : rc == CLI_OK ? 0 : (uint64_t)cli->zone_count - done - 1);
		khsm_json_uint(&json, "cards", ncards);
		khsm_json_uint(&json, "card_signatures", pg.signatures);
		khsm_json_bool(&json, "card_session", use_card && pg.signed_zones > pg.by_keymgr);
		khsm_json_uint(&json, "keymgr_signed", pg.by_keymgr);
		khsm_json_end(&json);
		khsm_json_end(&json);
		fclose(json_mem);
		if (ran) printf("%s\n", json_buf);
		free(json_buf);
	}
	note_clear();
	/* A run that archived nothing (all skipped, or stopped early) leaves no
	 * directory; rmdir() refuses a directory with files in it. */
	if (archive_dir[0]) {
		(void)rmdir(archive_dir);
		archive_dir[0] = '\0';
	}
	khsm_zonelock_release(zlock);
	for (int i = 0; i < cli->zone_count; i++) free(zones[i]);
	free(zones);
	for (size_t k = 0; k < ncards; k++) {
		free(cards[k].name);
		free(cards[k].config);
	}
	free(cards);
	free(card_of);
	free(zstate);
	return rc;
}

int cmd_ceremony(cli_t *cli)
{
	kv_t kv[] = { { "until", NULL }, { "ksk-conf", NULL }, { "generate-ksk", NULL }, { "signer", NULL },
	              { "pcscd-wait", NULL },
	              { NULL, NULL } };
	int rc = kv_parse(cli, kv);
	if (rc != CLI_OK) return rc;
	/* What a ceremony killed with -9 left of a PIN handed to keymgr as a file. */
	unsigned stale = 0;
	if (khsm_handoff_clean_stale(getenv("TMPDIR"), &stale) == KHSM_EOK && stale > 0) {
		fprintf(stderr, "note: removed %u temporary PIN director%s left by an earlier ceremony "
		        "that was killed\n", stale, stale == 1 ? "y" : "ies");
	}
	rc = run_zones(cli, kv);
	remove_pin_files();
	return rc;
}
