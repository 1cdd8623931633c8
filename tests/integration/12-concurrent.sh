#!/bin/bash
# Two starts at once (docs/failures.md, "Two starts at once"): with no image,
# a second ccvm waits for the first's build, naming it, and then uses the
# image; two sessions in one project both run, and the second says once that
# another session is using the directory.  Real VMs under TCG.
#
# A real image build takes ten minutes here, so the build is not run to its
# end: part 2 checks that a second ccvm waits on a real first one (which is
# then stopped), part 3 holds the build lock the way a builder does and
# "finishes" the build by putting a copy of the image in place.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg

# wait_for FILE PATTERN SECS: FILE has a line matching PATTERN.
wait_for() {
	local i
	for ((i = 0; i < $3 * 5; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# 1. Two sessions in one project: both run, both see each other's files,
# the second says once that another session is there.
P=$(new_project)
cd "$P" || exit 1
"$CCVM" --shell -- sh -c 'echo one > one.txt; i=0
	while [ ! -e two.txt ] && [ $i -lt 240 ]; do sleep 0.5; i=$((i + 1)); done
	cat two.txt' >"$T_TMP/o1" 2>"$T_TMP/e1" &
A=$!
wait_for one.txt one 180
check "the first session started (its file is on the host)" [ "$(cat one.txt 2>/dev/null)" = one ]
"$CCVM" --shell -- sh -c 'cat one.txt; echo two > two.txt' >"$T_TMP/o2" 2>"$T_TMP/e2"
rc2=$?
wait "$A"
rc1=$?
check "the second session in the same project exits 0 (rc=$rc2)" [ $rc2 -eq 0 ]
check "the first one too (rc=$rc1)" [ $rc1 -eq 0 ]
[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] || tail -3 "$T_TMP/e1" "$T_TMP/e2" | sed 's/^/# /'
check "the second sees the first's file" grep -qx one "$T_TMP/o2"
check "the first sees the second's" grep -qx two "$T_TMP/o1"
n=$(grep -c "^ccvm: another ccvm session is using this directory ($P)" "$T_TMP/e2")
check "the second says once that another session uses the directory ($n)" [ "$n" = 1 ]
check "the first says nothing of it" [ "$(grep -c 'another ccvm session' "$T_TMP/e1")" = 0 ]
"$CCVM" --shell -- true >/dev/null 2>"$T_TMP/e3"
rc=$?
check "alone again, a session runs (rc=$rc) and says nothing of others" \
	test $rc -eq 0 -a "$(grep -c 'another ccvm session' "$T_TMP/e3")" = 0

# 2. Two builds at once, with no image: the second waits for the first and
# names its pid; stopped, the first leaves the lock to the second.
E=$T_TMP/empty
mkdir -p "$E"
XDG_CACHE_HOME=$E "$CCVM" --ccvm-build >/dev/null 2>"$T_TMP/b1" &
B1=$!
wait_for "$T_TMP/b1" "no guest image for these options yet" 60
check "the first ccvm builds the image" grep -q "no guest image for these options yet" "$T_TMP/b1"
XDG_CACHE_HOME=$E "$CCVM" --ccvm-build >/dev/null 2>"$T_TMP/b2" &
B2=$!
wait_for "$T_TMP/b2" "waiting for another" 30
check "the second waits for it, naming its pid ($B1)" \
	grep -qx "ccvm: waiting for another ccvm building the image (pid $B1)" "$T_TMP/b2"
check "and does not build meanwhile" [ "$(grep -c 'no guest image for these options yet' "$T_TMP/b2")" = 0 ]
kill -TERM "$B1"
wait "$B1"
wait_for "$T_TMP/b2" "no guest image for these options yet" 60
check "once the first stops, the second builds" grep -q "no guest image for these options yet" "$T_TMP/b2"
kill -TERM "$B2"
wait "$B2"
for ((i = 0; i < 100; i++)); do
	pgrep -u "$(id -u)" -f "$E/" >/dev/null || break
	sleep 0.2
done
check "nothing of the stopped builds runs on" [ $i -lt 100 ]
# (images/failed-build.log, the stopped build's log, stays for the user.)
left=$(find "$E/ccvm" -mindepth 2 -maxdepth 2 -type d)
check "no half-built image is left" [ -z "$left" ]
[ -z "$left" ] || diag "$left"

# 3. The second start then uses the image the first built: a stand-in
# builder holds the lock (with its pid in it, as ccvm writes it), puts the
# image in place and lets go.
E=$T_TMP/empty2
mkdir -p "$E/ccvm/images"
flock "$E/ccvm/images/.lock" sh -c 'echo $$ > "$1"; while [ ! -e "$2" ]; do sleep 0.1; done' \
	x "$E/ccvm/images/.lock" "$T_TMP/release" &
H=$!
wait_for "$E/ccvm/images/.lock" '[0-9]' 10
hp=$(cat "$E/ccvm/images/.lock")
XDG_CACHE_HOME=$E "$CCVM" --shell -- cat /etc/hostname >"$T_TMP/o4" 2>"$T_TMP/e4" &
S=$!
wait_for "$T_TMP/e4" "waiting for another" 60
check "a session start waits for the builder (pid $hp)" \
	grep -qx "ccvm: waiting for another ccvm building the image (pid $hp)" "$T_TMP/e4"
copy_image_cache "$E" >/dev/null
check "the stand-in builder put the image in place" [ $? -eq 0 ]
touch "$T_TMP/release"
wait "$H"
wait "$S"
rc=$?
check "the waiting session then runs (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || tail -5 "$T_TMP/e4" | sed 's/^/# /'
check "in the guest" grep -qx ccvm "$T_TMP/o4"
check "with the image the other built, not a build of its own" \
	[ "$(grep -c 'no guest image for these options yet' "$T_TMP/e4")" = 0 ]
check "the waiting message came once" [ "$(grep -c 'waiting for another' "$T_TMP/e4")" = 1 ]
check "no QEMU or virtiofsd left behind" [ -z "$(leftovers)" ]

# 4. Two sessions at once under KVM, where the probe says it works (the
# same sessions as in 1; on a machine without a usable KVM, a skip that
# says why).
if kvm_usable; then
	cd "$(new_project)" || exit 1
	for i in 1 2; do
		CCVM_ACCEL=kvm "$CCVM" --shell -- sh -c "sleep 3; echo k$i" >"$T_TMP/k$i" 2>"$T_TMP/ke$i" &
		eval "K$i=\$!"
	done
	sleep 2
	nk=$(leftovers | grep -c 'qemu-system.* -accel kvm ')
	wait "$K1"
	r1=$?
	wait "$K2"
	r2=$?
	check "two KVM sessions at once both exit 0 ($r1 $r2)" test $r1 -eq 0 -a $r2 -eq 0
	check "and print what they ran" test "$(cat "$T_TMP/k1")$(cat "$T_TMP/k2")" = k1k2
	check "under KVM ($nk QEMU with KVM seen)" [ "$nk" -ge 1 ]
else
	skip_missing usable-kvm "two sessions at once under KVM" "skipped: no usable KVM ($KVM_WHY)"
fi

done_testing
