#!/bin/bash
# Liveness: whatever the guest does, ccvm keeps answering and ends.
#  1. An output flood (read by a slow consumer) never starves SIGTERM.
#  2. A guest that reports ERROR and then never powers off is stopped.
#  3. A guest that never confirms a share sync holds input only so long.
#  4. QEMU's monitor (QMP) is closed once the guest is unparked.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
P=$(new_project)
cd "$P" || exit 1
cp "$HERE/hostile_port.pl" "$P/"

wait_text() { local i; for ((i = 0; i < $3 * 10; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# Waits up to $2 s for pid $1 to end; its status in $RC, the time in $SECS.
wait_end() {
	local i t0=$(date +%s%N)
	for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	SECS=$((($(date +%s%N) - t0) / 1000000000))
	if kill -0 "$1" 2>/dev/null; then
		kill -9 "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		RC=timeout
		return 1
	fi
	wait "$1"
	RC=$?
}
no_leftovers() {
	local i
	for ((i = 0; i < 50; i++)); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
	check "$1: no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
	leftovers | sed 's/^/# left: /'
	kill_session_qemu
}

# --- 1. SIGTERM during an output flood -------------------------------------
# stdout is a pipe read at about 1 MB/s, far slower than the guest writes:
# the port always has more, so a loop that reads it until it would block
# never looks at its signals.
mkfifo "$T_TMP/out.fifo"
"$CCVM" --shell -- sh -c 'echo flood-start; exec yes' >"$T_TMP/out.fifo" 2>"$T_TMP/flood.err" &
CPID=$!
$PY -c '
import sys, time
seen = False
while True:
    b = sys.stdin.buffer.read1(8192)
    if not b:
        break
    if not seen and b"flood-start" in b:
        seen = True
        open(sys.argv[1], "w").close()
    time.sleep(0.008)
' "$T_TMP/flowing" <"$T_TMP/out.fifo" &
PIPE_PID=$!
for ((i = 0; i < 1200; i++)); do [ -e "$T_TMP/flowing" ] && break; sleep 0.1; done
if [ -e "$T_TMP/flowing" ]; then
	sleep 3 # the flood is on
	kill -TERM "$CPID"
	t0=$(date +%s%N)
	for ((i = 0; i < 300; i++)); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.1; done
	secs=$((($(date +%s%N) - t0) / 1000000))
	if kill -0 "$CPID" 2>/dev/null; then
		not_ok "flood: SIGTERM ends ccvm (still running after 30 s)"
		kill -9 "$CPID"
	else
		check "flood: SIGTERM ends ccvm within 15 s (${secs} ms)" [ $secs -le 15000 ]
	fi
else
	not_ok "flood: the session started and its output flowed"
	sed 's/^/# /' "$T_TMP/flood.err" | tail -10
	kill -9 "$CPID"
fi
wait $CPID 2>/dev/null
wait $PIPE_PID 2>/dev/null
no_leftovers "flood"

# --- 2. ERROR, then no power-off -------------------------------------------
rm -f go
"$CCVM" --shell -- sh -c 'echo up; while [ ! -e go ]; do sleep 0.1; done
	exec sudo -n perl ./hostile_port.pl error test-fatal-error-42' \
	>"$T_TMP/error.out" 2>"$T_TMP/error.err" &
PID=$!
if wait_text "$T_TMP/error.out" '^up' 120; then
	touch go
	wait_end $PID 60
	check "ERROR and a hang: ccvm ends within 30 s (rc=$RC, ${SECS} s)" [ "$RC" != timeout -a "$SECS" -le 30 ]
	check "ERROR and a hang: ccvm exits 125" [ "$RC" = 125 ]
	# The probe ran: the guest's ERROR arrived.
	check "ERROR and a hang: ccvm reports the guest's error" grep -q 'guest: test-fatal-error-42' "$T_TMP/error.err"
else
	not_ok "ERROR and a hang: session started"
	kill -9 $PID 2>/dev/null
	wait $PID 2>/dev/null
	sed 's/^/# /' "$T_TMP/error.err" | tail -10
fi
no_leftovers "ERROR and a hang"

# --- 3. SHARE_SYNCED never comes --------------------------------------------
# Input after a host edit waits for the guest to apply it (docs/share.md);
# guest root stops the worker that would, so no SHARE_SYNCED ever comes.
rm -f changed
mkfifo "$T_TMP/in.fifo"
"$CCVM" --shell -- sh -c 'if sudo -n pkill -STOP -x ccvm-sharesync; then echo stopped; else echo no-worker; fi
	read line; echo "got $line"' <"$T_TMP/in.fifo" >"$T_TMP/sync.out" 2>"$T_TMP/sync.err" &
PID=$!
exec 7>"$T_TMP/in.fifo"
wait_text "$T_TMP/sync.out" '^stopped\|^no-worker' 120
if grep -q '^no-worker' "$T_TMP/sync.out"; then
	if [ -x /usr/lib/qemu/virtiofsd ]; then
		not_ok "SHARE_SYNCED timeout: guest root stops the share sync worker (sudo pkill)"
	else
		skip_missing virtiofsd "SHARE_SYNCED timeout" "no share sync worker (the share is not cached without virtiofsd)"
	fi
	exec 7>&-
	wait $PID
elif grep -q '^stopped' "$T_TMP/sync.out"; then
	echo edit >changed
	sleep 1
	echo hello >&7
	# The probe ran: the input reached the program (a marker it prints).
	if wait_text "$T_TMP/sync.out" '^got hello' 40; then
		ok "SHARE_SYNCED never comes: input still reaches the program"
	else
		not_ok "SHARE_SYNCED never comes: input still reaches the program (not within 40 s)"
	fi
	check "SHARE_SYNCED never comes: ccvm says it stopped following the share" \
		grep -q 'did not confirm host changes' "$T_TMP/sync.err"
	exec 7>&-
	wait_end $PID 60
	check "SHARE_SYNCED never comes: the session ends (rc=$RC)" [ "$RC" = 0 ]
else
	not_ok "SHARE_SYNCED: session started"
	sed 's/^/# /' "$T_TMP/sync.err" | tail -10
	exec 7>&-
	kill -9 $PID 2>/dev/null
	wait $PID 2>/dev/null
fi
no_leftovers "SHARE_SYNCED"

# --- 4. QMP closed after the unpark -----------------------------------------
# With a saved boot (virtiofs and its RAM file), ccvm speaks QMP to QEMU
# until the guest is unparked.  After that, no unix socket of ccvm's may
# have its peer on QEMU's QMP fd (9); its control port's (QEMU fd 3) must
# be found the same way, or the probe did not work.  ccvm is not dumpable
# (61-key-copies), so its /proc/PID/fd is root's: it runs in a user
# namespace of this test's own (unshare -r), whose owner may read it.
rm -f ready
unshare -r env CCVM_ALLOW_ROOT=1 "$CCVM" --ccvm-debug --shell -- sh -c 'touch ready; exec sleep 300' >/dev/null 2>"$T_TMP/qmp.err" &
PID=$!
for ((i = 0; i < 1200; i++)); do [ -e ready ] && break; sleep 0.1; done
QPID=$(pgrep -P $PID -f qemu-system | head -1)
if [ ! -e ready ] || [ -z "$QPID" ]; then
	not_ok "QMP: session started"
	sed 's/^/# /' "$T_TMP/qmp.err" | tail -10
elif ! grep -q -e 'boot saved as' -e 'restored ' "$T_TMP/qmp.err"; then
	skip "QMP closed after the unpark" "this session has no saved boot (no QMP)"
else
	# "PEER-INODE qemu-fd" for each of QEMU's unix sockets, then ccvm's.
	peers=$(ss -xpn 2>/dev/null | awk -v q="pid=$QPID," '
		index($0, q) { if (match($0, "pid=" substr(q, 5) "fd=[0-9]+")) {
			f = substr($0, RSTART, RLENGTH); sub(/.*fd=/, "", f); print $8, f } }')
	mine=$(for l in /proc/$PID/fd/*; do readlink "$l"; done | sed -n 's/^socket:\[\([0-9]*\)\]$/\1/p')
	held() { local p; for p in $(awk -v f="$1" '$2 == f { print $1 }' <<<"$peers"); do grep -qx "$p" <<<"$mine" && return 0; done; return 1; }
	check "QMP: the probe finds ccvm's end of the control port (QEMU fd 3)" held 3
	check "QMP: ccvm holds no end of QEMU's monitor (fd 9) after the unpark" eval '! held 9'
fi
kill -TERM $PID 2>/dev/null
wait_end $PID 30
no_leftovers "QMP"

done_testing
