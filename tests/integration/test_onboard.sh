#!/bin/sh
# Onboarding many zones (ceremony generate-ksk=yes) costs keymgr runs in
# proportion to the zones, not to their square: every zone's KASP is listed
# once for all the KSKs the run makes and kept up to date as each zone's key
# is registered (khsm_kasp_keep_t), where each zone's generate or import
# used to list every zone again; and each run reads its zone's cut of the
# KSK side. Both a shared KSK and one KSK per zone, counted with a keymgr
# wrapper.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
N=12
REC=$TMP/runs.rec
keymgr_wrapper "$TMP/keymgr" "echo \"\$sub \$(grep -c 'domain:' \"\$conf\")\" >> '$REC'"

onboard() { # shared-ksk=yes|no, zone name prefix (one card for both runs)
	onboard_conf "$1" "$2" $N
	: > "$REC"
	# shellcheck disable=SC2086
	KHSM_KEYMGR=$TMP/keymgr run 0 "$KNOT_HSM" -c "$D/knot.conf" $ZONES ceremony until=+30d generate-ksk=yes
	for z in $ZONES; do contains "$OUT" "$z.: pre-signed " "shared-ksk=$1: $z pre-signed"; done
	lists=$(grep -c '^list ' "$REC")
	# Per zone: its summary, the list after its key is registered, the
	# ceremony's KSK-side list, and a few more; every zone listed again per
	# zone would be N*N = 144 and more.
	[ "$lists" -ge $N ] && [ "$lists" -le $((6 * N)) ] ||
		fail "shared-ksk=$1: $lists keymgr list runs for $N zones (want at most $((6 * N))): $(sort "$REC" | uniq -c)"
	pass "shared-ksk=$1: $lists keymgr list runs for $N zones, at most 6 per zone"
	whole=$(grep -c " $N\$" "$REC" || true)
	[ "$whole" -le 3 ] || fail "shared-ksk=$1: $whole keymgr runs read all $N zones: $(sort "$REC" | uniq -c)"
	pass "shared-ksk=$1: the runs read their zone's cut ($whole read the whole file)"
}
onboard yes s
onboard no p
