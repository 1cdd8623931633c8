#!/bin/bash
# The first run (issue 25 item 1): with an empty cache a session builds an
# image that boots Debian's stock kernel at once and starts ccvm's own
# kernel building in the background (nice 19, its own session, one at a
# time, outliving the session); the next session after that kernel is
# there switches the image to it.  The kernel build itself (10-25 min
# here) is not waited for: the test stops it and puts in place the kernel
# the user's own cache already has (the same key: same source and config).
source "$(dirname "$0")/lib.sh"
need_image # the user's cache: its kernel stands for the finished build
export CCVM_ACCEL=tcg
REAL_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ccvm
export XDG_CACHE_HOME=$T_TMP/cache
C=$XDG_CACHE_HOME/ccvm
P=$(new_project)
cd "$P" || exit 1
bg=
trap '[ -n "$bg" ] && kill "$bg" 2>/dev/null; rm -rf "$T_TMP"' EXIT

# 1. The first session, empty cache.
t0=$(date +%s)
timeout 1500 "$CCVM" --shell -- uname -r >"$T_TMP/s1.out" 2>"$T_TMP/s1.err" </dev/null
rc=$?
diag "first session: exit $rc after $(($(date +%s) - t0)) s"
sed 's/^/# stderr: /' "$T_TMP/s1.err" | grep -v '^\# stderr: ccvm: \[' | tail -8
check "the first session runs (exit $rc)" [ "$rc" -eq 0 ]
check "it boots Debian's stock kernel ($(tr -d '\r' <"$T_TMP/s1.out"))" \
	grep -q -- '-amd64' "$T_TMP/s1.out"
bg=$(sed -n 's/.*building ccvm.s own guest kernel in the background (pid \([0-9]*\),.*/\1/p' "$T_TMP/s1.err")
check "it says once that ccvm's kernel builds in the background (pid ${bg:-none})" \
	bash -c '[ -n "$1" ] && [ "$(grep -c "in the background (pid" "$2")" -eq 1 ]' _ "$bg" "$T_TMP/s1.err"
m=$(ls "$C"/images/*/manifest.json 2>/dev/null | head -1)
pending=$(jq -r '.kernelPending // empty' "$m" 2>/dev/null)
check "the image's manifest names the kernel it waits for (${pending:-none})" \
	bash -c '[[ $1 =~ ^[0-9a-f]{64}$ ]]' _ "$pending"
check "the background build outlived the session" kill -0 "${bg:-0}"
ni=$(ps -o ni= -p "${bg:-0}" | tr -d ' ')
check "it runs at nice 19 (ni=$ni)" [ "$ni" = 19 ]
check "in a session of its own (no terminal signal reaches it)" \
	[ "$(ps -o sid= -p "${bg:-0}" | tr -d ' ')" = "$bg" ]
check "it holds the kernel build lock" bash -c '! flock -n "$1" true' _ "$C/kernels/.lock"
check "its log is there" test -s "$C/kernels/build.log"

# 2. A session while it builds: no second build.
"$CCVM" --shell -- true >/dev/null 2>"$T_TMP/s2.err" </dev/null
rc=$?
check "a session while the kernel builds runs (exit $rc)" [ "$rc" -eq 0 ]
check "it says the kernel is still being built, and starts no second build" \
	bash -c 'grep -q "still being built in the background" "$1" && ! grep -q "(pid" "$1"' _ "$T_TMP/s2.err"

# 3. The kernel is done (the user's cache has the very same one).
kill "$bg" 2>/dev/null
for _ in $(seq 1 100); do kill -0 "$bg" 2>/dev/null || break; sleep 0.2; done
check "the background build stops when told" bash -c '! kill -0 "$1" 2>/dev/null' _ "$bg"
bg=
if [ -n "$pending" ] && [ -s "$REAL_CACHE/kernels/$pending/vmlinux" ]; then
	rm -rf "${C:?}/kernels/$pending" "$C/kernels/$pending.failed"
	cp -a "$REAL_CACHE/kernels/$pending" "$C/kernels/$pending"
	"$CCVM" --shell -- uname -r >"$T_TMP/s3.out" 2>"$T_TMP/s3.err" </dev/null
	rc=$?
	sed 's/^/# stderr: /' "$T_TMP/s3.err" | tail -4
	check "the next session runs (exit $rc)" [ "$rc" -eq 0 ]
	check "it says the image now boots ccvm's own kernel" \
		grep -q "now boots ccvm.s own kernel" "$T_TMP/s3.err"
	check "it boots ccvm's kernel ($(tr -d '\r' <"$T_TMP/s3.out"))" \
		grep -q -- '-ccvm' "$T_TMP/s3.out"
	check "the manifest says custom, nothing pending" \
		bash -c 'jq -e ".kernel == \"custom\" and (has(\"kernelPending\") | not)" "$1" >/dev/null' _ "$m"
	check "the image's vmlinux is the built kernel" \
		cmp -s "$(dirname "$m")/vmlinux" "$C/kernels/$pending/vmlinux"
	check "no background build was started" bash -c '! grep -q "building ccvm.s own guest kernel in the background" "$1"' _ "$T_TMP/s3.err"
	"$CCVM" --shell -- true >/dev/null 2>"$T_TMP/s4.err" </dev/null
	check "the session after it says nothing about kernels ($(tr '\n' ' ' <"$T_TMP/s4.err"))" \
		bash -c '! grep -qi "kernel" "$1"' _ "$T_TMP/s4.err"
else
	skip "the switch to ccvm's kernel" "the user's cache has no kernel $pending (a stock-kernel setup)"
fi
done_testing
