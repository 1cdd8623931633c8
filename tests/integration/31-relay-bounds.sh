#!/bin/bash
# Bounded memory on the host: a guest that asks without ever reading the
# answers makes neither relay queue them without end.  Guest root
# (agentSudo) is the hostile guest (hostile_port.pl): on the network port
# it kills its forwarder and writes NET_OPEN requests for a blocked
# address (each answered by a NET_OPEN_FAIL several times its size); on the
# control port, with ccvm-init frozen so that it reads nothing, CLIP_REQ
# requests (each answered by a CLIP_END).  The relay's memory (the egress
# process; ccvm itself for the control port) must stay within BOUND_KIB of
# what it held before, and the session must still end cleanly.
#
# The bound: each relay stops reading while its queue for the guest is over
# 1 MiB (the control port: 1.5 MiB), so the queue's buffer grows to 2 MiB
# at most, plus the old 1 MiB buffer while it grows, plus the 256 KiB
# reader now filled: about 3.3 MiB (seen: 2.2 MiB for the network relay,
# 4.1 MiB for ccvm, whose RSS before the flood was under its earlier
# peak); 8 MiB leaves room for the allocator.  Unbounded, the same floods
# grew the network relay by 108 MiB and ccvm by 32 MiB.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
unset DISPLAY WAYLAND_DISPLAY
HERE=$(cd "$(dirname "$0")" && pwd)
BOUND_KIB=$((8 * 1024))
RUNAWAY_KIB=$((512 * 1024)) # stop a flood that got this far
PY=/usr/bin/python3
P=$(new_project)
cd "$P" || exit 1
cp "$HERE/hostile_port.pl" "$P/"

# Requests, as docs/protocol.md frames them: NET_OPEN (type 18) to
# 169.254.169.254:80 (cloud metadata: always blocked), 16 bytes each, and
# CLIP_REQ (26) for the clipboard's types, 10 bytes each.
$PY - "$P" <<'EOF'
import struct, sys
d = sys.argv[1]
with open(d + "/net.frames", "wb") as f:
    for i in range(65536):
        f.write(struct.pack("<BBHI", 18, 0, i, 8) +
                struct.pack("<HBB", 80, 4, 0) + bytes([169, 254, 169, 254]))
with open(d + "/ctl.frames", "wb") as f:
    for i in range(65536):
        f.write(struct.pack("<BBHI", 26, 0, i, 2) + bytes([0, 0]))
EOF

kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null; }
# within BEFORE AFTER: both were read (a relay that was never measured
# proves nothing) and AFTER is at most BOUND_KIB above BEFORE.
within() { [[ $1 =~ ^[0-9]+$ && $2 =~ ^[0-9]+$ ]] && [ $(($2 - $1)) -le $BOUND_KIB ]; }
wait_text() { local i; for ((i = 0; i < $3 * 10; i++)); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }

# flood NAME FRAMESIZE MAXBYTES: one session whose guest root floods port
# NAME for 20 s or MAXBYTES, while the relay's memory is sampled.
flood() {
	local name=$1 fsize=$2 max=$3 pid rc qpid mpid base hwm0 hwm peak rss h i
	rm -f go
	"$CCVM" --shell -- sh -c "echo up; while [ ! -e go ]; do sleep 0.1; done
		sudo -n perl ./hostile_port.pl $name 20 $max $fsize $name.frames
		echo flood-rc=\$?" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err" &
	pid=$!
	if ! wait_text "$T_TMP/$name.out" '^up' 120; then
		not_ok "$name: session started"
		sed 's/^/# /' "$T_TMP/$name.err" | tail -10
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		return
	fi
	qpid=$(pgrep -P $pid -f qemu-system | head -1)
	if [ "$name" = net ]; then
		mpid=$(pgrep -P $pid -x ccvm-egress | head -1)
	else
		mpid=$pid
	fi
	if [ -z "$mpid" ]; then
		not_ok "$name: the relay process is found"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		return
	fi
	base=$(kib "$mpid" VmRSS)
	hwm0=$(kib "$mpid" VmHWM)
	hwm=$hwm0
	peak=$base
	touch go
	for ((i = 0; i < 900; i++)); do
		grep -q '^flood-rc=' "$T_TMP/$name.out" && break
		kill -0 $pid 2>/dev/null || break
		rss=$(kib "$mpid" VmRSS)
		[ -n "$rss" ] && [ "$rss" -gt "$peak" ] && peak=$rss
		h=$(kib "$mpid" VmHWM)
		[ -n "$h" ] && hwm=$h
		if [ $((peak - base)) -gt $RUNAWAY_KIB ]; then
			diag "$name: the relay grew past $RUNAWAY_KIB KiB: stopped"
			break
		fi
		sleep 0.1
	done
	h=$(kib "$mpid" VmHWM)
	[ -n "$h" ] && hwm=$h
	diag "$name: relay pid $mpid: VmRSS $base -> peak $peak KiB; VmHWM $hwm0 -> $hwm KiB; guest: $(grep -a -e '^sent' -e '^flood-rc' "$T_TMP/$name.out" | tr '\n' ' ')"
	check "$name flood: the relay's RSS grew by at most $BOUND_KIB KiB (${base:-unread} -> ${peak:-unread})" \
		within "$base" "$peak"
	check "$name flood: its peak (VmHWM) grew by at most $BOUND_KIB KiB (${hwm0:-unread} -> ${hwm:-unread})" \
		within "$hwm0" "$hwm"
	# The probe ran: the guest got to flood (a marker only it prints).
	check "$name flood: the guest wrote requests" grep -q '^sent [1-9]' "$T_TMP/$name.out"
	for ((i = 0; i < 600; i++)); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
	if kill -0 $pid 2>/dev/null; then
		not_ok "$name flood: the session ends"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
	else
		wait $pid
		rc=$?
		check "$name flood: the session ends cleanly (rc=$rc, $(grep -a '^flood-rc' "$T_TMP/$name.out"))" \
			grep -q '^flood-rc=0' "$T_TMP/$name.out"
		check "$name flood: ccvm exits 0" [ $rc -eq 0 ]
		[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/$name.err" | tail -10
	fi
	check "$name flood: the relay process is gone" [ ! -e "/proc/$mpid/status" ]
	for ((i = 0; i < 50; i++)); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
	check "$name flood: its QEMU (${qpid:-never seen}) is gone, no QEMU or virtiofsd left" \
		bash -c '[ -n "$1" ] && [ ! -e "/proc/$1" ] && [ -z "$2" ]' _ "$qpid" "$(leftovers)"
	kill_session_qemu
}

flood net 16 $((16 << 20))
flood ctl 10 $((32 << 20))

done_testing
