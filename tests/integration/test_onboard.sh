#!/bin/sh
# Onboarding many zones (ceremony generate-ksk=yes) costs keymgr runs in
# proportion to the zones, not to their square: every zone's KASP is listed
# once for all the KSKs the run makes and kept up to date as each zone's key
# is registered (khsm_kasp_keep_t), where each zone's generate or import
# used to list every zone again; the zones' summaries come from it; and each
# run reads its zone's cut of the KSK side. Both a shared KSK and one KSK per zone, counted with a keymgr
# wrapper.
. "$KHSM_SRCDIR/tests/integration/lib.sh"

card_keystore
N=12
REC=$TMP/runs.rec
keymgr_wrapper "$TMP/keymgr" "echo \"\$sub \$(grep -c 'domain:' \"\$conf\") \$(grep -c 'pkcs11:' \"\$conf\")\" >> '$REC'"

onboard() { # shared-ksk=yes|no, zone name prefix (one card for both runs)
	onboard_conf "$1" "$2" $N
	: > "$REC"
	# shellcheck disable=SC2086
	KHSM_KEYMGR=$TMP/keymgr run 0 "$KNOT_HSM" -c "$D/knot.conf" $ZONES ceremony until=+30d generate-ksk=yes
	for z in $ZONES; do contains "$OUT" "$z.: pre-signed " "shared-ksk=$1: $z pre-signed"; done
	lists=$(grep -c '^list ' "$REC")
	# Every zone once when the first key is made (the kept index); per zone
	# its own list before its key is made (the first zone's summary, the
	# others' entries in the index listed again), the list that confirms its
	# key and is the index's new view of the zone, and the ceremony's
	# KSK-side list: 4N, a list asked again (keymgr's token "not available"
	# for a moment) aside. Every zone listed again per zone would be N*N =
	# 144 and more.
	[ "$lists" -ge $((4 * N)) ] && [ "$lists" -le $((4 * N + 2)) ] ||
		fail "shared-ksk=$1: $lists keymgr list runs for $N zones (want $((4 * N))): $(sort "$REC" | uniq -c)"
	pass "shared-ksk=$1: $lists keymgr list runs for $N zones, four per zone"
	whole=$(grep -c " $N\$" "$REC" || true)
	[ "$whole" -le 3 ] || fail "shared-ksk=$1: $whole keymgr runs read all $N zones: $(sort "$REC" | uniq -c)"
	pass "shared-ksk=$1: the runs read their zone's cut ($whole read the whole file)"
	# keymgr share works on KASP alone: its cut names no PKCS #11 keystore,
	# so it never opens the card while the ceremony signs
	shares=$(grep -c '^share ' "$REC" || true)
	[ "$1" = no ] || [ "$shares" -eq $((N - 1)) ] || fail "shared-ksk=yes: $shares keymgr share runs, want $((N - 1))"
	equals "$(grep '^share ' "$REC" | grep -vc ' 0$' || true)" 0 "shared-ksk=$1: no keymgr share run was given a PKCS #11 keystore"
}
onboard yes s
onboard no p
