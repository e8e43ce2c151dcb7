/* Zone resolution in knot.conf. */
#include <errno.h>
#include <sys/stat.h>

#include "dnskey.h"
#include "error.h"
#include "internal.h"
#include "keystore.h"
#include "uri.h"
#include "zone.h"

static void list_zones(const khsm_conf_t *conf, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < khsm_conf_zone_count(conf) && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "",
		                 khsm_conf_zone_at(conf, i)->domain);
		if (n < 0) break;
		used += (size_t)n;
	}
}

_public_
int khsm_zone_resolve(const khsm_conf_t *conf, const char *name, const char *keystore_id,
                      khsm_zone_t *zone)
{
	if (!conf || !name || !zone) {
		return KHSM_EINVAL;
	}
	khsm_zone_t z = { 0 };
	int r = khsm_zone_normalize(name, &z.name);
	if (r != KHSM_EOK) {
		return r;
	}

	z.conf = khsm_conf_zone_find(conf, z.name);
	if (!z.conf) {
		char buf[600];
		list_zones(conf, buf, sizeof(buf));
		khsm_err_detail("zone %s is not in %s (zones there: %s); add it to the zone section",
		                z.name, khsm_conf_path(conf), buf[0] ? buf : "none");
		r = KHSM_ENOENT;
		goto fail;
	}

	r = khsm_conf_zone_policy(conf, z.conf, &z.policy);
	if (r != KHSM_EOK && !keystore_id) {
		khsm_err_detail("zone %s has no dnssec-policy in %s; give it a policy whose keystore "
		                "is the card (knot-hsm keystore prints one), or pass keystore=ID",
		                z.name, khsm_conf_path(conf));
		goto fail;
	}

	if (keystore_id) {
		z.keystore = khsm_conf_keystore_find(conf, keystore_id);
		if (!z.keystore) {
			khsm_err_detail("keystore '%s' is not in %s", keystore_id, khsm_conf_path(conf));
			r = KHSM_ENOENT;
			goto fail;
		}
		if (!khsm_conf_keystore_is_pkcs11(z.keystore)) {
			khsm_err_detail("keystore '%s' is not a pkcs11 keystore", keystore_id);
			r = KHSM_ECONFIG;
			goto fail;
		}
	} else {
		for (size_t i = 0; i < z.policy->keystore_count && !z.keystore; i++) {
			const khsm_conf_keystore_t *ks = khsm_conf_keystore_find(conf, z.policy->keystores[i]);
			if (khsm_conf_keystore_is_pkcs11(ks)) {
				z.keystore = ks;
			}
		}
		if (!z.keystore && z.policy->offline_ksk) {
			khsm_err_detail("policy '%s' of zone %s is the ZSK side of the offline-KSK mode: "
			                "the card keys are on the KSK side; use -c with its configuration "
			                "(knot-hsm policy --write puts it next to knot.conf as "
			                "knot-hsm-ksk.conf)", z.policy->id, z.name);
			r = KHSM_ECONFIG;
			goto fail;
		}
		if (!z.keystore) {
			khsm_err_detail("policy '%s' of zone %s uses no pkcs11 keystore; set its keystore "
			                "to the card's (knot-hsm keystore --token LABEL --pin-file FILE "
			                "prints one) or pass keystore=ID", z.policy->id, z.name);
			r = KHSM_ECONFIG;
			goto fail;
		}
	}
	if (!z.keystore->config) {
		khsm_err_detail("keystore '%s' has no config", z.keystore->id);
		r = KHSM_ECONFIG;
		goto fail;
	}
	/* keymgr and knotd would only say "failed to load PKCS #11 module". */
	{
		char *uri = NULL, *module = NULL;
		r = khsm_uri_split_config(z.keystore->config, &uri, &module);
		if (r == KHSM_EOK) {
			r = khsm_keystore_guard_check(module);
		}
		free(uri);
		free(module);
		if (r != KHSM_EOK) {
			goto fail;
		}
	}

	const char *kasp = khsm_conf_kasp_db(conf);
	struct stat st;
	if (!kasp || stat(kasp, &st) != 0 || !S_ISDIR(st.st_mode)) {
		khsm_err_detail("KASP database directory %s does not exist; create it, owned by the "
		                "user that runs knotd (install -d -o knot -g knot %s)",
		                kasp ? kasp : "?", kasp ? kasp : "DIR");
		r = KHSM_ENOENT;
		goto fail;
	}

	*zone = z;
	return KHSM_EOK;
fail:
	khsm_zone_clear(&z);
	return r;
}

_public_
void khsm_zone_clear(khsm_zone_t *zone)
{
	if (zone) {
		free(zone->name);
		memset(zone, 0, sizeof(*zone));
	}
}
