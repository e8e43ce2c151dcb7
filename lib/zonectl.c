/* After a KASP change: the knotd that serves the zone picks up its keys. */
#include "error.h"
#include "internal.h"
#include "knot.h"
#include "policy.h"
#include "zonectl.h"

_public_
int khsm_zonectl_reload_keys(const khsm_conf_t *conf, const char *zone, khsm_zonectl_t *out)
{
	if (!conf || !zone || !out) {
		return KHSM_EINVAL;
	}
	*out = (khsm_zonectl_t) { 0 };
	/* The KSK side (offline mode) is no knotd's: the zone gets a new KSK
	 * through the ZSK side's ceremony; only say whether that knotd runs. */
	char *zsk_conf = NULL;
	if (khsm_policy_file_zsk_conf(khsm_conf_path(conf), &zsk_conf) == KHSM_EOK) {
		khsm_conf_t *zconf = NULL;
		out->outcome = KHSM_ZONECTL_KSK_SIDE;
		out->zsk_conf = zsk_conf;
		out->zsk_running = khsm_conf_load(zsk_conf, &zconf) == KHSM_EOK &&
		                   khsm_knotc_ping(zconf) == KHSM_EOK;
		khsm_conf_free(zconf);
		khsm_err_clear();
		return KHSM_EOK;
	}
	khsm_err_clear();
	if (khsm_knotc_ping(conf) != KHSM_EOK) {
		khsm_err_clear();
		out->outcome = KHSM_ZONECTL_NOT_RUNNING;
		return KHSM_EOK;
	}
	out->outcome = KHSM_ZONECTL_LOADED;
	return khsm_knotc_zone_keys_load(conf, zone);
}

_public_
void khsm_zonectl_clear(khsm_zonectl_t *out)
{
	if (!out) return;
	free(out->zsk_conf);
	*out = (khsm_zonectl_t) { 0 };
}
