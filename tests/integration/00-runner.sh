#!/bin/bash
# tests/run itself, over stand-in test programs: a script that prints no
# plan, fewer results than its plan or dies early fails; cmocka's skip
# ("not ok N # SKIP") is a skip; with CCVM_TEST_STRICT=1 a skip fails
# unless it is a skip_missing of something CI's machine lacks.  No VM.
. "$(dirname "$0")/lib.sh"

SRC=${CCVM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ ! -x "$SRC/tests/run" ]; then
	skip_missing source-checkout "the test runner" "no tests/run at $SRC"
	done_testing
	exit 0
fi
FB=$T_TMP/build # a build directory with stand-in unit tests
mkdir -p "$FB/tests"
: >"$FB/ccvm"

# script NAME BODY: an integration script of the stand-in set in $T_TMP/it.
script() {
	mkdir -p "$T_TMP/it"
	cp "$(dirname "$0")/lib.sh" "$T_TMP/it/"
	printf '. "$(dirname "$0")/lib.sh"\n%s\n' "$2" >"$T_TMP/it/$1.sh"
}
# runner WHAT [VAR=VALUE...]: tests/run over the stand-ins (WHAT: unit or
# integration); its summary line in $LAST, its exit status in $RC.
runner() {
	local what=$1
	shift
	env BUILD="$FB" CCVM_TEST_ONLY="$what" CCVM_TEST_SCRIPTS="$T_TMP/it" \
		CCVM_TEST_FILTER="*" \
		CCVM_TEST_STRICT=0 "$@" "$SRC/tests/run" >"$T_TMP/out" 2>&1
	RC=$?
	LAST=$(tail -1 "$T_TMP/out")
}
# expect DESC LAST RC: the last run's summary line and exit status.
expect() {
	if [ "$LAST" = "$2" ] && [ "$RC" = "$3" ]; then
		ok "$1"
	else
		not_ok "$1 (got \"$LAST\", exit $RC)"
		sed 's/^/# /' "$T_TMP/out"
	fi
}
# only NAME BODY: the stand-in set is this one script.
only() { rm -rf "$T_TMP/it"; script "$@"; }

only a 'ok "one"; ok "two"; done_testing'
runner integration
expect "a complete script passes" "tests: 2 passed, 0 failed" 0

only a 'ok "one"; not_ok "two"; done_testing'
runner integration
expect "a not-ok line is one failure" "tests: 1 passed, 1 failed" 1

only a 'ok "one"; exit 0'
runner integration
expect "no plan line: a failure" "tests: 1 passed, 1 failed" 1

only a 'echo 1..3; ok "one"; ok "two"'
runner integration
expect "fewer results than planned: a failure" "tests: 2 passed, 1 failed" 1

only a 'ok "one"; kill -KILL $$'
runner integration
expect "a script killed before its plan: a failure" "tests: 1 passed, 1 failed" 1

only a 'ok "one"; skip "two" "no reason"; done_testing'
runner integration
expect "a skip is no failure" "tests: 1 passed, 0 failed" 0
check "... and is counted as a skip" grep -qx '# skipped (each says why above): 1' "$T_TMP/out"
runner integration CCVM_TEST_STRICT=1
expect "strict: a plain skip fails" "tests: 1 passed, 1 failed" 1

only a 'skip_missing tmux "two" "tmux is not installed"; done_testing'
runner integration CCVM_TEST_STRICT=1
expect "strict: a skip_missing of something CI has fails" "tests: 0 passed, 1 failed" 1

only a 'skip_missing headless-wayland "two" "no compositor"; done_testing'
runner integration CCVM_TEST_STRICT=1
expect "strict: a skip_missing of something CI lacks is a skip" "tests: 0 passed, 0 failed" 0

# cmocka's TAP (CMOCKA_MESSAGE_OUTPUT=TAP): a skip is "not ok N # SKIP".
rm -rf "$T_TMP/it"
mkdir -p "$T_TMP/it"
printf '#!/bin/sh\nprintf "1..2\\nok 1 - a\\nnot ok 2 # SKIP b\\n# ok - t\\n"\n' >"$FB/tests/test_a"
chmod +x "$FB/tests/test_a"
runner unit
expect "cmocka: a skipped test is a skip, not a failure" "tests: 1 passed, 0 failed" 0
runner unit CCVM_TEST_STRICT=1
expect "cmocka, strict: a skipped test fails" "tests: 1 passed, 1 failed" 1
printf '#!/bin/sh\nprintf "1..3\\nok 1 - a\\n"\nkill -SEGV $$\n' >"$FB/tests/test_a"
runner unit
expect "cmocka: a test program that crashes mid-run fails" "tests: 1 passed, 1 failed" 1
done_testing
