/* submitted: whether the parent publishes the DS of a zone's KSK, judged
 * server by server, and confirming it to knotd (`knotc zone-ksk-submitted`).
 * The result says everything the check found, so the CLI only prints it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libdnssec/key.h>

#include "kasp.h"
#include "knot.h"
#include "parent.h"

/* What the parent's answers mean for the zone. */
typedef enum {
	KHSM_SUBMITTED_UNANSWERED = 0, /* no server answered (result.error says why) */
	KHSM_SUBMITTED_NONE,           /* no server has the DS that is wanted */
	KHSM_SUBMITTED_PARTIAL,        /* a wanted DS is on some servers, not on all */
	KHSM_SUBMITTED_SUBMITTED,      /* every server has the DS of a ready KSK */
	KHSM_SUBMITTED_CURRENT,        /* no KSK waits; every server has an active KSK's DS */
} khsm_submitted_verdict_t;

/* One server asked. */
typedef struct {
	khsm_server_t server;
	int error;             /* KHSM_EOK: it answered */
	char *error_detail;    /* why not, or NULL */
	khsm_ds_t *ds;         /* its DS records (the well-formed ones) */
	size_t ds_count;
	int *ds_ksk;           /* per DS: index in ksks of the KSK it is for, -1: none */
	char **malformed;      /* "OWNER DS RDATA: REASON" of each malformed record */
	size_t malformed_count;
	bool lagging;          /* PARTIAL only: lacks the wanted DS, or did not answer */
} khsm_submitted_server_t;

/* One KSK of the zone. */
typedef struct {
	uint16_t tag;
	uint8_t algorithm;
	char *id;                  /* key id in the KASP, NULL when not found there */
	khsm_key_state_t state;
	bool wanted;               /* its DS is the one the verdict looks for */
	size_t servers_with;       /* answering servers that have its DS */
	bool published;            /* every server has it */
	const khsm_ds_t *ds;       /* the first DS for it (into servers[].ds), or NULL */
	char *expected_ds;         /* wanted and not published: the SHA-256 DS line */
	bool active_after;         /* active in the KASP after zone-ksk-submitted */
} khsm_submitted_ksk_t;

typedef struct {
	char *zone;
	char *parent;              /* the parent zone found; NULL with a given server */
	khsm_submitted_server_t *servers;
	size_t server_count;
	size_t answered;
	int error;                 /* UNANSWERED: the last server's error */
	khsm_submitted_ksk_t *ksks;
	size_t ksk_count;
	bool ready_any;            /* a KSK waits for its DS (state ready) */
	khsm_submitted_verdict_t verdict;
	bool ksk_submitted;        /* zone-ksk-submitted was run and succeeded */
	int knotc_error;           /* SUBMITTED: why zone-ksk-submitted failed, or KHSM_EOK */
	char *knotc_detail;        /* its detail, or NULL */
} khsm_submitted_t;

/** The verdict from what the servers answered, without the network: reads
 *  servers[].error, servers[].ds_count, servers[].ds_ksk and ksks[].state;
 *  sets answered, ksks[].servers_with/published/wanted/ds, ready_any,
 *  verdict and servers[].lagging. A KSK waiting for its DS (ready) wants
 *  only its own DS; with none waiting, an active KSK's DS must be published
 *  (a retiring KSK's DS does not keep the zone valid). Published means on
 *  every server asked, so one silent server holds it back. */
void khsm_submitted_decide(khsm_submitted_t *result);

/** Ask the parent of zone for its DS, on server (NULL: the parent's servers
 *  from the resolver, khsm_parent_servers()), judge it against the zone's KSKs
 *  (keys, from khsm_keymgr_ksks(); their states from conf's KASP) and, when
 *  the verdict is SUBMITTED, run `knotc zone-ksk-submitted ZONE`. Returns
 *  KHSM_EOK with a result also when no server answered (UNANSWERED, error set)
 *  or knotc failed (knotc_error set); an error return leaves no result.
 *  \param[out] result_ptr  free with khsm_submitted_free(). */
int khsm_submitted_check(const khsm_conf_t *conf, const char *zone, dnssec_key_t *const *keys,
                         size_t key_count, const khsm_server_t *server,
                         khsm_submitted_t **result_ptr);

/** Name of a verdict: "unanswered", "none", "partial", "submitted", "current". */
const char *khsm_submitted_verdict_name(khsm_submitted_verdict_t verdict);

/** Free a result and all it holds; NULL is fine. */
void khsm_submitted_free(khsm_submitted_t *result);
