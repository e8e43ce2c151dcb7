/* knot-hsm: keep the DNSSEC KSK on a smartcard HSM, next to Knot DNS.
 * main() only parses options, looks the command up and dispatches. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "config.h"
#include "cli.h"
#include "lib/bound.h"
#include "lib/display.h"
#include "lib/error.h"
#include "lib/retry.h"

static const cli_command_t COMMANDS[] = {
	{ "tokens", false, OPT_MODULE | OPT_JSON, cmd_tokens,
	  "knot-hsm tokens [--module PATH] [--json]",
	  "List every token of every PKCS #11 module registered with p11-kit, plus --module:\n"
	  "label, manufacturer, model, serial, module path, flags, URI and the DNSSEC\n"
	  "algorithms the token can generate keys for and sign with. No login.",
	  false, 0, false },
	{ "uri", false, OPT_TOKEN | OPT_MODULE | OPT_OBJECT | OPT_ID | OPT_TYPE | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE, cmd_uri,
	  "knot-hsm uri --token LABEL [--object LABEL | --id HEX] [--type private|public] [--module PATH] [--pin-file PATH | --pin-fd N] [--force]",
	  "Print the RFC 7512 PKCS #11 URI of a token, or of a key object on it, fully\n"
	  "percent-encoded. --token takes a label or a token URI (pkcs11:token=…;serial=…).\n"
	  "Looking up a private object needs a login (--pin-file, --pin-fd or a prompt).",
	  false, 0, false },
	{ "keystore", false, OPT_TOKEN | OPT_MODULE | OPT_ID | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE | OPT_PIN_IN_CONFIG | OPT_GUARD | OPT_REMOTE,
	  cmd_keystore,
	  "knot-hsm keystore --token LABEL [--id NAME] [--pin-file PATH | --pin-fd N] [--force] [--pin-in-config] [--module PATH] [--guard] [--remote SOCKET]",
	  "Print a knot.conf keystore stanza for the token (backend pkcs11, config with\n"
	  "pin-source, key-label on), after opening it through libdnssec exactly as knotd\n"
	  "will and logging in once. --pin-in-config puts the PIN itself in the config\n"
	  "(pin-value) instead of a file: avoid it. --guard puts the guard module\n"
	  "(audit log, one card call at a time) between knotd and the card's module and\n"
	  "checks through it; without its configuration yet, the one it needs is printed.\n"
	  "--remote SOCKET: the card is on another host, whose `p11-kit server` socket is\n"
	  "carried here (ssh) to SOCKET; the stanza uses p11-kit-client.so, and knotd needs\n"
	  "P11_KIT_SERVER_ADDRESS=unix:path=SOCKET in its environment (its systemd unit).",
	  false, 0, false },
	{ "doctor", false, OPT_CONF | OPT_TOKEN | OPT_MODULE | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE | OPT_JSON | OPT_REMOTE, cmd_doctor,
	  "knot-hsm doctor [-c knot.conf] [--token LABEL] [--module PATH] [--pin-file PATH | --pin-fd N] [--force] [--json] [--remote SOCKET]",
	  "Check the whole chain, one line per check, each ok or FAIL with a remedy:\n"
	  "module loads, token present, label unique, PIN source, token PIN flags, login,\n"
	  "DNSSEC mechanisms, keystore opens through libdnssec. With -c, every pkcs11\n"
	  "keystore of that knot.conf is checked. A keystore on p11-kit-client.so (a card\n"
	  "on another host) is checked through the server's socket: --remote SOCKET, else\n"
	  "P11_KIT_SERVER_ADDRESS as knotd gets it. Exits 1 when any check fails.",
	  false, 0, false },
	{ "keys", false, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE | OPT_JSON, cmd_keys,
	  "knot-hsm [-c knot.conf] keys [--pin-file PATH | --pin-fd N] [--force] [--json]",
	  "Every key pair on the card of each pkcs11 keystore in knot.conf: label, id,\n"
	  "algorithm, size, key tag and the zones whose KASP uses it. Marks card keys no\n"
	  "zone uses and KASP keys whose card object is missing.",
	  false, 0, false },
	{ "generate", true, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE | OPT_JSON, cmd_generate,
	  "knot-hsm [-c knot.conf] ZONE generate [ksk=yes|zsk=yes] [algorithm=NAME] [size=N] [label=TEXT] [keystore=ID] [publish=T] [ready=T] [active=T] [retire=T] [remove=T] [--pin-file PATH | --pin-fd N] [--force] [--json]",
	  "Generate a key pair on the card (sensitive, never extractable, sign only),\n"
	  "register it in Knot's KASP with keymgr import-pkcs11, sign a test message\n"
	  "through libdnssec and verify it from the DNSKEY, then print key id, tag,\n"
	  "DNSKEY and DS. Algorithms: ecdsap256sha256 (default), ecdsap384sha384,\n"
	  "rsasha256, rsasha512, ed25519, ed448. Timers are keymgr's (UNIX time,\n"
	  "YYYYMMDDHHMMSS, +offset, 0 unsets); unset, keymgr publishes and activates now.\n"
	  "A zone whose KSK signs, or is scheduled to, gets no second KSK (--force or\n"
	  "not): use rollover.",
	  false, 0, false },
	{ "delete", true, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE, cmd_delete,
	  "knot-hsm [-c knot.conf] ZONE delete id=HEX|label=TEXT [keystore=ID] [--pin-file PATH | --pin-fd N] [--force]",
	  "Remove a key from the zone's KASP (keymgr delete) and its objects from the\n"
	  "card. Refused while the key is in the DNSKEY set (published, signing, retired\n"
	  "but not yet removed) or used by another zone (a shared KSK), saying why and\n"
	  "what to do. One login; keymgr runs under the card lock.",
	  false, 0, false },
	{ "import", true, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE | OPT_JSON, cmd_import,
	  "knot-hsm [-c knot.conf] ZONE import label=TEXT|id=HEX [ksk=yes|zsk=yes] [algorithm=NAME] [fix-id=yes] [keystore=ID] [publish=T] [ready=T] [active=T] [retire=T] [remove=T] [--pin-file PATH | --pin-fd N] [--force] [--json]",
	  "Adopt a key pair already on the card into the zone's KASP. The algorithm is\n"
	  "read from the key. A key without CKA_ID gets one only with fix-id=yes. A key\n"
	  "already used by another zone is shared (keymgr share).",
	  false, 0, false },
	{ "ds", true, OPT_CONF | OPT_JSON, cmd_ds,
	  "knot-hsm [-c knot.conf] ZONE... ds [digest=sha256|sha384|all|sha1] [format=ds|dnskey|cds|cdnskey|epp|epp-keydata|epp-update|json] [--json]",
	  "Print what the registry needs for the zone's KSKs: DS (SHA-256 by default;\n"
	  "SHA-1 only by name, with a warning), DNSKEY, CDS, CDNSKEY, an EPP secDNS-1.1\n"
	  "<secDNS:create> fragment with dsData (epp-keydata: with keyData inside, for\n"
	  "registries that take keys), or JSON. Equal to keymgr ds byte for byte.\n"
	  "epp-update: <secDNS:update> for a KSK rollover's current step (knot-hsm\n"
	  "rollover): <secDNS:add> of the new DS before the switch, <secDNS:rem> of the\n"
	  "old one after it.",
	  false, 0, false },
	{ "submitted", true, OPT_CONF | OPT_JSON, cmd_submitted,
	  "knot-hsm [-c knot.conf] ZONE... submitted [server=ADDR[@PORT]] [--json]",
	  "Ask the parent for the zone's DS; when it matches one of ours, run\n"
	  "knotc zone-ksk-submitted ZONE. Otherwise say what the parent has.",
	  false, 0, false },
	{ "rollover", true, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE, cmd_rollover,
	  "knot-hsm [-c knot.conf] ZONE... rollover [keystore=ID] [algorithm=NAME] [delete-old=yes] [server=ADDR[@PORT]] [ksk-conf=PATH] [--pin-file PATH | --pin-fd N] [--force]",
	  "Planned double-DS KSK rollover (RFC 7583), state in KASP timers only. Each run\n"
	  "advances as far as is safe and says what waits: a new KSK generated on the\n"
	  "card (keystore=ID: another card) and published; once published for DNSKEY TTL\n"
	  "+ propagation delay, 'submit this DS'; once every parent server (NS of the\n"
	  "parent, or server=) has it and DS TTL + propagation delay passed, the new KSK\n"
	  "signs and the old one stops; 'withdraw the old DS'; once no parent server has\n"
	  "it, the old KSK leaves the DNSKEY set, and delete-old=yes then deletes it from\n"
	  "KASP and the card. Offline mode (-c knotd's knot.conf): the KSK side's timers\n"
	  "are set no earlier than the end of the pre-signed period, so each change\n"
	  "reaches the zone with the next ceremony. The parent's DS TTL is taken to be\n"
	  "at most max(zone-max-ttl, dnskey-ttl) of the policy.",
	  false, 0, false },
	{ "standby", true, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE, cmd_standby,
	  "knot-hsm [-c knot.conf] ZONE... standby keystore=ID [algorithm=NAME] [ksk-conf=PATH] [--pin-file PATH | --pin-fd N] [--force]",
	  "A standby KSK on a second card (keystore=ID, not the card the signing KSK is\n"
	  "on), labelled '<zone> KSK standby'. Offline registered on the KSK side\n"
	  "published (from the end of the pre-signed period: in every DNSKEY set of the\n"
	  "next ceremony) and never signing; online its DNSKEY public-only in knotd's\n"
	  "KASP. Prints its DS: give it to the parent beside the active one. Refused\n"
	  "during a rollover; a zone that has a standby is left as it is. One card login.",
	  false, 0, false },
	{ "failover", true, OPT_CONF, cmd_failover,
	  "knot-hsm [-c knot.conf] ZONE... failover keystore=ID [ksk-conf=PATH]",
	  "The first card is lost: the standby KSK (its public key looked for on the card\n"
	  "of keystore=ID, no login) signs, offline from the end of the pre-signed period\n"
	  "(the next ceremony), online at once (its card key registered: one login), and\n"
	  "the lost KSK stops and leaves the DNSKEY set then: no parent change, no TTL to\n"
	  "wait for. Offline the KSK side's policy then names keystore=ID (name every zone\n"
	  "of the KSK side); online the policy's card keystore moves to that card when the\n"
	  "lost one's token is gone. Afterwards make a new standby on another card.",
	  false, 0, false },
	{ "policy", true, OPT_CONF | OPT_WRITE | OPT_FORCE | OPT_JSON, cmd_policy,
	  "knot-hsm [-c knot.conf] ZONE... policy [mode=offline|online] [zsk-lifetime=T] [rrsig-lifetime=T] [rrsig-refresh=T] [dnskey-ttl=T] [zone-max-ttl=T] [propagation-delay=T] [algorithm=NAME] [shared-ksk=yes|no] [keystore=ID] [ksk-conf=PATH] [ksk-kasp-db=DIR] [guard=yes|no] [remove=yes] [key-slots=N|ID:N,...] [--write FILE [--force]] [--json]",
	  "Render the knot.conf pieces that pin the KSK on the card and roll a software\n"
	  "ZSK automatically. Times take Knot's units s, m, h, d. Mode defaults to the\n"
	  "installed knotd: offline before Knot 3.5 (ZSK-side include for knotd plus a\n"
	  "KSK-side configuration for the ceremony), online from 3.5 (card keystore with\n"
	  "ksk-only first, PEM second). Prints card signatures per zone and year and the\n"
	  "longest card outage the zones survive. Both pieces pass knotc conf-check\n"
	  "before anything is written. --write FILE writes FILE (the include) and, in\n"
	  "offline mode, FILE-ksk.conf beside it (ksk-conf= elsewhere), atomically, mode\n"
	  "0640; a file without the knot-hsm marker line is never overwritten unless\n"
	  "--force. Without --write both are printed. Defaults: zsk-lifetime 30d,\n"
	  "rrsig-lifetime 21d, rrsig-refresh 10d, dnskey-ttl 1h, zone-max-ttl 1d,\n"
	  "propagation-delay 1h, ecdsap256sha256. guard=yes renders the card keystore\n"
	  "through the guard module (audit log, one card call at a time); its\n"
	  "configuration must exist and name the card's module. The zones the written\n"
	  "files list are kept and the given ones added (\"kept:\", \"added:\"); a zone\n"
	  "leaves only with remove=yes; a run that would drop a zone with keys on the\n"
	  "KSK side refuses and names it. Prints the card budget: signatures per year\n"
	  "and on the busiest day at 6 signatures/s, whether the card keeps up, key slots\n"
	  "used (read from the card, no login) and free. key-slots=N: how many key pairs\n"
	  "the card holds (its data sheet; no card says it through PKCS #11), ID:N for\n"
	  "other cards; kept in the written file's header across runs. generate keeps\n"
	  "the last slot for a rollover and refuses a full card.",
	  false, 0, false },
	{ "ceremony", true, OPT_CONF | OPT_PIN_FILE | OPT_PIN_FD | OPT_FORCE | OPT_JSON, cmd_ceremony,
	  "knot-hsm [-c knot.conf] ZONE... ceremony [until=+90d] [ksk-conf=PATH] [generate-ksk=yes|no] [signer=card|keymgr] [pcscd-wait=60] [--pin-file PATH | --pin-fd N] [--force] [--json]",
	  "Offline-KSK cycle for each zone: keymgr pregenerate and generate-ksr (ZSK side,\n"
	  "knot.conf), the KSR signed on the card (KSK side, default knot-hsm-ksk.conf next\n"
	  "to knot.conf), validate-skr and knot-hsm's own checks, import-skr, then knotc\n"
	  "zone-keys-load when knotd runs. signer=card (default) signs in knot-hsm through\n"
	  "libdnssec, the SKR keymgr sign-ksr would write, with ONE login for the run,\n"
	  "while the ZSK-side steps of the neighbouring zones run alongside; a zone with a\n"
	  "KSK rollover in the period falls back to keymgr sign-ksr (its own login).\n"
	  "signer=keymgr uses keymgr sign-ksr for every zone. A busy card is waited for;\n"
	  "so is a dead pcscd (OpenSC), up to pcscd-wait seconds (default 60, 0: fail).\n"
	  "Zones already pre-signed up to until are skipped. An SKR that fails a check is\n"
	  "kept as ZONE.skr.invalid and never imported. KSR and SKR are archived in\n"
	  "<kasp-db>/../knot-hsm-archive/YYYY-MM-DD/ (YYYY-MM-DD.2/, .3/ ... for later\n"
	  "runs that day: an archive is never replaced). A progress line follows each zone.\n"
	  "The PIN comes from the KSK-side keystore's pin-source; without one it is read\n"
	  "once (--pin-file, --pin-fd or a prompt) into a sealed memfd keymgr reads (as\n"
	  "root; another user: a 0600 file in a private temporary directory, removed at\n"
	  "the end). Zones are imported in order; a failure in one\n"
	  "leaves the zones before it done and it and the later ones on their previous\n"
	  "SKR (a later zone may be pregenerated or signed, never imported); rerun.",
	  false, 0, false },
	{ "heal", true, OPT_CONF, cmd_heal,
	  "knot-hsm [-c knot.conf] [ZONE...] heal",
	  "Online mode: when knotd has no signing scheduled for the zone (Knot does not\n"
	  "reschedule a signing that failed while the card was away) or the served DNSKEY\n"
	  "signature is past its refresh point, and the card answers, run knotc -b\n"
	  "zone-sign ZONE. A no-op when knotd will sign by itself; refuses, and asks\n"
	  "for nothing, while the card does not answer. One line per zone (ok, healed,\n"
	  "error) on stdout or stderr and to syslog (facility daemon, tag knot-hsm).\n"
	  "Without ZONE: every zone of knot.conf whose policy keeps the KSK on a card in\n"
	  "online mode (the others are left out; none at all is not a failure).\n"
	  "Exit 0 when every zone is fine or healed, 1 otherwise.",
	  false, 0, true },
	{ "status", false, OPT_CONF | OPT_WARN | OPT_CRIT | OPT_HEAL | OPT_JSON, cmd_status,
	  "knot-hsm [-c knot.conf] status [ZONE...] [--warn DAYS] [--crit DAYS] [--heal] [--json]",
	  "Every signed zone of knot.conf with a card KSK: mode, card KSK present on the\n"
	  "token (online: card absent, pcscd not running), end of the pre-signed period\n"
	  "(offline) or of the served DNSKEY signature (online; expired: the zone no\n"
	  "longer validates), knotd's next signing (online: not scheduled names heal),\n"
	  "next ZSK event. Exit 0 OK, 1 WARNING (less than --warn left), 2 CRITICAL\n"
	  "(less than --crit), 3 UNKNOWN, also for this command's own usage errors.\n"
	  "Without --warn and --crit: offline 14 and 7 days; online from the policy,\n"
	  "rrsig-refresh minus a fifth of it and half of it. Perfdata after '|'\n"
	  "(remaining=SECONDSs;WARN;CRIT). --heal first runs heal for each online zone\n"
	  "(its lines on stderr). ZONE... limits the check to them.",
	  true, 3, false },
	{ "audit", false, OPT_HEAD | OPT_ANCHOR | OPT_JSON, cmd_audit,
	  "knot-hsm audit verify [FILE] [--head HEX] [--anchor FILE] [--json] | knot-hsm audit tail [FILE] [--json]",
	  "Check the hash chain of the audit log the guard module writes and summarise\n"
	  "it (signatures per key per day, logins, failures, torn lines). --head HEX: a\n"
	  "head recorded earlier must be the hash of one of its lines; --anchor FILE:\n"
	  "every head in the guard's anchor file must match its line. Exit 0 intact,\n"
	  "1 tampering (chain broken, anchor or head not matched, log missing), 2 usage,\n"
	  "3 a file cannot be read, 4 intact but with torn lines (incidents).\n"
	  "tail shows the last 20 lines in words (--json: as written).\n"
	  "FILE defaults to audit_log of the guard configuration ($KHSM_GUARD_CONF, else\n"
	  "knot-hsm-guard.conf beside the guard module).",
	  true, 0, false },
};

const cli_command_t *cli_current;

static void print_main_usage(FILE *f)
{
	fprintf(f, "Usage: knot-hsm [OPTIONS] COMMAND [ARGS]\n"
	           "       knot-hsm [OPTIONS] ZONE... COMMAND [key=value...]\n\n"
	           "Commands:\n");
	for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
		fprintf(f, "  %s\n", COMMANDS[i].synopsis);
	}
	fprintf(f, "\nOptions (a command takes those its synopsis names; any other is a usage error):\n"
	           "  -c FILE          knot.conf to read\n"
	           "  --module PATH    PKCS #11 module (besides those registered with p11-kit)\n"
	           "  --token LABEL    token label or token URI\n"
	           "  --pin-file PATH  file holding the user PIN (mode 0600 or 0400)\n"
	           "  --pin-fd N       read the user PIN from file descriptor N\n"
	           "  --force          go on despite a warning (PIN file mode, final PIN try)\n"
	           "  --json           machine-readable output\n"
	           "  --remote SOCKET  card on another host: its p11-kit server's socket here\n"
	           "  -h, --help       this help; knot-hsm COMMAND --help for one command\n"
	           "  -V, --version    print the version\n\n"
	           "Exit status: 0 success, 1 failure, 2 usage error (status: 3).\n");
}

/* Operators see why a command takes longer: the card is busy or was pulled. */
static void retry_note(const char *what, int code, unsigned delay_ms, void *data)
{
	(void)data;
	fprintf(stderr, "note: card %s while %s; retrying in %u ms\n",
	        code == KHSM_EBUSY ? "busy" : "busy or removed", what, delay_ms);
}

static void print_command_help(const cli_command_t *cmd)
{
	printf("Usage: %s\n\n%s\n", cmd->synopsis, cmd->help);
}

/* A command run inside another, in another thread (ceremony generate-ksk=yes
 * makes each zone's KSK in the ceremony's hook thread), hands its code on. */
static __thread int last_code;

int cli_error_code(void)
{
	return last_code ? last_code : KHSM_EINVAL;
}

void cli_error_code_reset(void)
{
	last_code = 0;
}

int cli_error(int code, const char *fmt, ...)
{
	last_code = code;
	fputs("error: ", stderr);
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		char *what = NULL;
		int n = vasprintf(&what, fmt, ap);
		va_end(ap);
		fprintf(stderr, "%s: ", n >= 0 ? khsm_esc(what) : fmt);   /* escaped: see lib/display.h */
		free(what);
	}
	const char *detail = khsm_err_last_detail();
	fprintf(stderr, "%s%s%s\n", khsm_strerror(code), detail ? ": " : "", khsm_esc(detail));
	return CLI_FAIL;
}

int cli_usage_error(const cli_command_t *cmd, const char *fmt, ...)
{
	fputs("error: ", stderr);
	va_list ap;
	va_start(ap, fmt);
	char *what = NULL;
	int n = vasprintf(&what, fmt, ap);
	va_end(ap);
	fputs(n >= 0 ? khsm_esc(what) : fmt, stderr);   /* escaped: see lib/display.h */
	free(what);
	if (cmd) {
		fprintf(stderr, "\nusage: %s\n", cmd->synopsis);
	} else {
		fputs("\nrun 'knot-hsm --help' for usage\n", stderr);
	}
	return cmd && cmd->usage_exit ? cmd->usage_exit : CLI_USAGE;
}

static const cli_command_t *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(COMMANDS) / sizeof(COMMANDS[0]); i++) {
		if (strcmp(COMMANDS[i].name, name) == 0) {
			return &COMMANDS[i];
		}
	}
	return NULL;
}

typedef struct {
	const char *long_name;
	char short_name;
	unsigned bit;
	bool has_arg;
} option_t;

static const option_t OPTIONS[] = {
	{ "--conf", 'c', OPT_CONF, true },
	{ "--module", 0, OPT_MODULE, true },
	{ "--token", 0, OPT_TOKEN, true },
	{ "--pin-file", 0, OPT_PIN_FILE, true },
	{ "--pin-fd", 0, OPT_PIN_FD, true },
	{ "--force", 0, OPT_FORCE, false },
	{ "--json", 0, OPT_JSON, false },
	{ "--object", 0, OPT_OBJECT, true },
	{ "--id", 0, OPT_ID, true },
	{ "--type", 0, OPT_TYPE, true },
	{ "--pin-in-config", 0, OPT_PIN_IN_CONFIG, false },
	{ "--write", 0, OPT_WRITE, true },
	{ "--warn", 0, OPT_WARN, true },
	{ "--crit", 0, OPT_CRIT, true },
	{ "--guard", 0, OPT_GUARD, false },
	{ "--remote", 0, OPT_REMOTE, true },
	{ "--head", 0, OPT_HEAD, true },
	{ "--anchor", 0, OPT_ANCHOR, true },
	{ "--heal", 0, OPT_HEAL, false },
};

static int parse_fd(const char *text, int *fd)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (errno || !*text || *end || v < 0 || v > INT_MAX) {
		return -1;
	}
	*fd = (int)v;
	return 0;
}

/* Option values that end on a card or name a file: refused when no card,
 * token or file system can hold them (lib/bound.h has the limits). */
static int bound_option(unsigned bit, const char *name, const char *value)
{
	int kind = bit == OPT_CONF || bit == OPT_MODULE || bit == OPT_PIN_FILE || bit == OPT_WRITE
	         || bit == OPT_REMOTE
	         ? KHSM_BOUND_KIND_PATH : bit == OPT_TOKEN ? KHSM_BOUND_KIND_TOKEN_LABEL
	         : bit == OPT_OBJECT ? KHSM_BOUND_KIND_KEY_LABEL : -1;
	if (kind >= 0 && value && khsm_bound_check((khsm_bound_kind_t)kind, name, value) != KHSM_EOK) {
		return cli_usage_error(cli_current, "%s", khsm_err_last_detail());
	}
	return CLI_OK;
}

/* Store one option. --id means the object id for `uri` and the keystore id
 * for `keystore`; the command decides which. */
static int set_option(cli_t *cli, const option_t *o, const char *value)
{
	if (cli->given & o->bit) {
		return cli_usage_error(cli_current, "option %s given twice", o->long_name);
	}
	cli->given |= o->bit;
	switch (o->bit) {
	case OPT_CONF:      cli->conf = value; break;
	case OPT_MODULE:    cli->module = value; break;
	case OPT_TOKEN:     cli->token = value; break;
	case OPT_PIN_FILE:  cli->pin_file = value; break;
	case OPT_PIN_FD:
		if (parse_fd(value, &cli->pin_fd) != 0) {
			return cli_usage_error(cli_current, "--pin-fd needs a descriptor number, not '%s'", value);
		}
		break;
	case OPT_FORCE:     cli->force = true; break;
	case OPT_JSON:      cli->json = true; break;
	case OPT_OBJECT:    cli->object = value; break;
	case OPT_ID:        cli->id = value; break;
	case OPT_TYPE:      cli->type = value; break;
	case OPT_PIN_IN_CONFIG: cli->pin_in_config = true; break;
	case OPT_WRITE:     cli->write = value; break;
	case OPT_WARN:      cli->warn = value; break;
	case OPT_CRIT:      cli->crit = value; break;
	case OPT_GUARD:     cli->guard = true; break;
	case OPT_REMOTE:    cli->remote = value; break;
	case OPT_HEAD:      cli->head = value; break;
	case OPT_ANCHOR:    cli->anchor = value; break;
	case OPT_HEAL:      cli->heal = true; break;
	}
	return bound_option(o->bit, o->long_name, value);
}

/* Parse one option at argv[*i]; returns CLI_OK, CLI_USAGE, or -1 if argv[*i]
 * is not an option. */
static int parse_option(cli_t *cli, int argc, char **argv, int *i)
{
	const char *arg = argv[*i];
	if (arg[0] != '-' || arg[1] == '\0') {
		return -1;
	}
	for (size_t k = 0; k < sizeof(OPTIONS) / sizeof(OPTIONS[0]); k++) {
		const option_t *o = &OPTIONS[k];
		size_t len = strlen(o->long_name);
		const char *value = NULL;
		bool match = false;
		if (strncmp(arg, o->long_name, len) == 0 && (arg[len] == '\0' || arg[len] == '=')) {
			match = true;
			if (arg[len] == '=') {
				if (!o->has_arg) {
					return cli_usage_error(cli_current, "option %s takes no value", o->long_name);
				}
				value = arg + len + 1;
			}
		} else if (o->short_name && arg[1] == o->short_name && arg[2] == '\0') {
			match = true;
		}
		if (!match) {
			continue;
		}
		if (o->has_arg && !value) {
			if (*i + 1 >= argc) {
				return cli_usage_error(cli_current, "option %s needs a value", o->long_name);
			}
			value = argv[++*i];
		}
		return set_option(cli, o, value);
	}
	return cli_usage_error(cli_current, "unknown option '%s'", arg);
}

int main(int argc, char **argv)
{
	cli_t cli = { .pin_fd = -1 };
	const cli_command_t *cmd = NULL;
	int i = 1;
	int zone_start = -1;

	/* No core dump and no same-user ptrace or /proc/PID/mem reading of a
	 * process that may hold a PIN (any command may read one): set before
	 * anything is read. Children (keymgr, knotc) are dumpable again on exec. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		fprintf(stderr, "error: cannot make knot-hsm non-dumpable (prctl: %s); a core dump could "
		        "hold the PIN\n", strerror(errno));
		return CLI_FAIL;
	}

	/* A usage error before the command name still exits as that command's
	 * do (status: 3, UNKNOWN, what monitoring expects); a later word that
	 * names a command is taken for it here, for the error only. */
	for (int k = 1; k < argc && !cli_current; k++) {
		cli_current = find_command(argv[k]);
	}
	/* Options and zones, up to the command name. */
	for (; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			if (cli_current) {
				print_command_help(cli_current);
				return CLI_OK;
			}
			if (zone_start >= 0) {
				return cli_usage_error(NULL, "unknown command '%s'", argv[zone_start]);
			}
			print_main_usage(stdout);
			return CLI_OK;
		}
		if (strcmp(argv[i], "-V") == 0 || strcmp(argv[i], "--version") == 0) {
			printf("knot-hsm %s\n", KHSM_VERSION);
			return CLI_OK;
		}
		if (zone_start < 0) {
			int r = parse_option(&cli, argc, argv, &i);
			if (r == CLI_OK) continue;
			if (r != -1) return r;
		} else if (argv[i][0] == '-') {
			return cli_usage_error(cli_current, "options go before the zone names ('%s')", argv[i]);
		}
		if ((cmd = find_command(argv[i])) != NULL) {
			break;
		}
		if (zone_start < 0) {
			zone_start = i;
		}
	}
	if (!cmd) {
		if (zone_start >= 0) {
			return cli_usage_error(NULL, "no command after '%s'; unknown command?", argv[argc - 1]);
		}
		print_main_usage(stderr);
		return CLI_USAGE;
	}
	cli_current = cmd;
	for (int k = i + 1; k < argc; k++) {
		if (strcmp(argv[k], "-h") == 0 || strcmp(argv[k], "--help") == 0) {
			print_command_help(cmd);
			return CLI_OK;
		}
	}
	int zones = zone_start < 0 ? 0 : i - zone_start;
	if (cmd->zone_command && zones == 0 && !cmd->zones_optional) {
		return cli_usage_error(cmd, "'%s' needs at least one zone before it", cmd->name);
	}
	if (!cmd->zone_command && zones > 0) {
		return cli_usage_error(cmd, "'%s' takes no zone before it (got '%s')%s", cmd->name,
		                       argv[zone_start], cmd->positional ? "; put the zones after it" : "");
	}
	cli.zones = zones ? &argv[zone_start] : NULL;
	cli.zone_count = zones;

	/* After the command: its options, or key=value arguments. */
	char **args = calloc(argc, sizeof(char *));
	if (!args) {
		return cli_error(KHSM_ENOMEM, NULL);
	}
	cli.args = args;
	for (i++; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			print_command_help(cmd);
			free(args);
			return CLI_OK;
		}
		int r = parse_option(&cli, argc, argv, &i);
		if (r == CLI_OK) continue;
		if (r != -1) { free(args); return r; }
		if (cmd->zone_command && strchr(argv[i], '=')) {
			args[cli.arg_count++] = argv[i];
			continue;
		}
		if (cmd->positional && argv[i][0] != '-' && !strchr(argv[i], '=')) {
			/* Zones of a token-wide command follow its name; kept in the
			 * argv slots after the key=value ones, in order. */
			args[argc - 1 - cli.zone_count] = argv[i];
			cli.zone_count++;
			continue;
		}
		free(args);
		return cli_usage_error(cmd, "unexpected argument '%s'", argv[i]);
	}

	if (cmd->positional && cli.zone_count > 0) {
		/* Collected from the end backwards: put them in command-line order. */
		char **z = &args[argc - cli.zone_count];
		for (int a = 0, b = cli.zone_count - 1; a < b; a++, b--) {
			char *t = z[a]; z[a] = z[b]; z[b] = t;
		}
		cli.zones = z;
	}

	/* The one place where options are checked against the command. */
	unsigned extra = cli.given & ~cmd->options;
	if (extra) {
		for (size_t k = 0; k < sizeof(OPTIONS) / sizeof(OPTIONS[0]); k++) {
			if (extra & OPTIONS[k].bit) {
				free(args);
				return cli_usage_error(cmd, "'%s' does not take %s", cmd->name, OPTIONS[k].long_name);
			}
		}
	}

	khsm_err_clear();
	khsm_retry_set_notify(retry_note, NULL);
	int rc = cmd->run(&cli);
	free(args);
	return rc;
}
