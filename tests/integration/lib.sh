# Sourced by integration tests: TAP helpers and a scratch area.
# Tests get $CCVM (the binary under test) and run as an unprivileged user.
set -u
CCVM=${CCVM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/ccvm}
T_N=0
T_FAILS=0

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_FAILS=$((T_FAILS + 1)); echo "not ok $T_N - $*"; }
skip() { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP ${2:-}"; }
# check DESC CMD...: ok when CMD succeeds.
check() {
	local desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
diag() { printf '# %s\n' "$@"; }
done_testing() { echo "1..$T_N"; [ "$T_FAILS" -eq 0 ]; }

# A private temp area, removed at exit.
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ccvm-t.XXXXXX")
trap 'rm -rf "$T_TMP"' EXIT
