#!/bin/bash
# What a new user expects of any command-line tool, on a real VM (TCG):
# the host's TZ, NO_COLOR, LANG and LC_* reach the agent's environment
# (LANG and LC_* only for a locale the guest has: else LANG is C.UTF-8
# and the LC_* is left out), and CCVM_DEBUG=1 works as --ccvm-debug.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
unset TZ NO_COLOR LANG LC_ALL LC_CTYPE LC_NUMERIC LC_TIME LC_COLLATE \
	LC_MONETARY LC_MESSAGES LC_PAPER LC_NAME LC_ADDRESS LC_TELEPHONE \
	LC_MEASUREMENT LC_IDENTIFICATION CCVM_DEBUG

P=$(new_project)
cd "$P" || exit 1

# show: the variables as the agent's environment has them, what the
# guest has of locales and time zones, and a marker that the probe ran.
show='for v in TZ NO_COLOR LANG LC_TIME LC_MESSAGES LC_ALL; do
	eval "printf \"%s=%s\n\" $v \"\${$v-unset}\""
done
ls /usr/lib/locale | tr "\n" " "; echo
if [ -e /usr/share/zoneinfo/Pacific/Auckland ]; then date +zone=%Z; else echo zone=none; fi
echo first-contact-ran'

# ---- the host's variables cross ----
out=$(env TZ=Pacific/Auckland NO_COLOR=1 LANG=xx_YY.UTF-8 LC_TIME=C.utf8 \
	LC_MESSAGES=zz_ZZ.UTF-8 "$CCVM" --shell -- sh -c "$show" 2>"$T_TMP/err")
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/err"
diag "guest: $(tr '\n' '|' <<<"$out")"
val() { sed -n "s/^$1=//p" <<<"$out"; }
check "the probe ran in the guest (rc=$rc)" grep -qx first-contact-ran <<<"$out"
check "TZ reaches the agent ($(val TZ))" test "$(val TZ)" = Pacific/Auckland
check "NO_COLOR reaches the agent ($(val NO_COLOR))" test "$(val NO_COLOR)" = 1
locales=$(sed -n 7p <<<"$out")
check "the guest has no xx_YY locale (the control for the next check: $locales)" \
	bash -c '! grep -qi "xx_YY" <<<"$1"' _ "$locales"
check "LANG of a locale the guest lacks becomes C.UTF-8 ($(val LANG))" \
	test "$(val LANG)" = C.UTF-8
check "LC_TIME of a locale the guest has crosses as written ($(val LC_TIME))" \
	test "$(val LC_TIME)" = C.utf8
check "LC_MESSAGES of a locale the guest lacks is left out ($(val LC_MESSAGES))" \
	test "$(val LC_MESSAGES)" = unset
check "LC_ALL unset on the host is unset in the guest ($(val LC_ALL))" \
	test "$(val LC_ALL)" = unset
zone=$(val zone)
if [ "$zone" = none ]; then
	skip "the guest's date follows TZ" "the image has no tzdata"
else
	check "the guest's date follows TZ ($zone)" \
		bash -c '[ "$1" = NZST ] || [ "$1" = NZDT ]' _ "$zone"
fi

# A LANG the guest has crosses too (C.utf8, not the default spelling).
out=$(LANG=C.utf8 "$CCVM" --shell -- sh -c "$show" 2>"$T_TMP/err")
check "LANG of a locale the guest has crosses as written ($(val LANG))" \
	test "$(val LANG)" = C.utf8
# Unset on the host: unset (TZ, NO_COLOR) or the default (LANG).
out=$("$CCVM" --shell -- sh -c "$show" 2>"$T_TMP/err")
check "without them on the host: no TZ, no NO_COLOR, LANG=C.UTF-8 ($(val TZ) $(val NO_COLOR) $(val LANG))" \
	test "$(val TZ) $(val NO_COLOR) $(val LANG)" = "unset unset C.UTF-8"

# ---- CCVM_DEBUG=1 is --ccvm-debug: the guest's log on stderr ----
"$CCVM" --shell -- true 2>"$T_TMP/plain.err"
rc0=$?
CCVM_DEBUG=1 "$CCVM" --shell -- true 2>"$T_TMP/envdebug.err"
rc1=$?
"$CCVM" --ccvm-debug --shell -- true 2>"$T_TMP/flagdebug.err"
rc2=$?
check "the three sessions exit 0 ($rc0 $rc1 $rc2)" test "$rc0$rc1$rc2" = 000
check "--ccvm-debug shows the guest's log (setup: cwd ...)" \
	grep -q 'setup: cwd' "$T_TMP/flagdebug.err"
check "without it, no guest log" bash -c '! grep -q "setup: cwd" "$1"' _ "$T_TMP/plain.err"
check "CCVM_DEBUG=1 shows the guest's log as --ccvm-debug does" \
	grep -q 'setup: cwd' "$T_TMP/envdebug.err"
CCVM_DEBUG=0 "$CCVM" --shell -- true 2>"$T_TMP/env0.err"
check "CCVM_DEBUG=0 shows none" bash -c '! grep -q "setup: cwd" "$1"' _ "$T_TMP/env0.err"

done_testing
