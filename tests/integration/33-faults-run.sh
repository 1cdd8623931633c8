#!/bin/bash
# When a part of a running session fails (docs/failures.md): the user learns
# it in one line, the work already written is on the host, the terminal is
# restored, and nothing is left behind.
#  1. The share server dies (virtiofsd, or its sandbox child, killed): ccvm
#     ends the session at once with 125 and "the project share stopped".
#  2. The network relay dies, mid-session or while the VM boots: the
#     session goes on with no network at all (fails closed), and ccvm says
#     so exactly once.
#  3. A flood on the terminal (`yes` for 10 s on a PTY): Ctrl-C ends it
#     within a second, ccvm's memory stays bounded, the terminal's settings
#     are the same afterwards.  (32-liveness.sh: a flood against SIGTERM.)
# Each session runs on a pseudo-terminal of ptydrive.py, which compares the
# terminal's settings before and after; cases 1 and 2 run ccvm under
# proctree.py, which lists what of its process tree outlived it.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
P=$(new_project)
cd "$P" || exit 1
marker=$T_TMP/marker
touch "$marker"

wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
# Waits up to $2 s for pid $1 to end; its status in $RC, the time in $MS.
wait_end() {
	local i t0
	t0=$(date +%s%N)
	for ((i = 0; i < $2 * 20; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
	MS=$((($(date +%s%N) - t0) / 1000000))
	if kill -0 "$1" 2>/dev/null; then
		kill -KILL "$1" 2>/dev/null
		wait "$1" 2>/dev/null
		RC=timeout
		return 1
	fi
	wait "$1"
	RC=$?
}
# A value of ptydrive.py's report $1.
rep() { sed -n "s/^$2 //p" "$1" | head -1; }
# Temp files this user created outside the test's area since $marker (as
# 22-teardown.sh).  The areas of other scripts, benchmarks (bench/soak's
# too) and image builds (mmdebstrap) that run side by side as the same user
# are theirs: no session here builds an image.
strays() {
	find /tmp /var/tmp "${XDG_RUNTIME_DIR:-/nonexistent}" -maxdepth 2 -user "$(id -u)" \
		-newer "$marker" 2>/dev/null |
		grep -v -e "^$T_TMP" -e "^/tmp/tmux-" -e '^/tmp/ccvm-t\.' -e '^/tmp/ccvm-it\.' \
			-e '^/tmp/ccvm-bench' -e '^/tmp/ccvm-soak\.' -e '^/tmp/mmdebstrap\.' -e '^/tmp/\.X11-unix' || true
}
# The session's report after the fact: nothing of ccvm's tree outlived it
# (the probe saw processes, among them $2...), no QEMU, no temp file.
TREE=$T_TMP/tree
none_left() {
	local what=$1 n i
	shift
	check "$what: the probe saw processes under ccvm" grep -q '^seen ' "$TREE"
	for n in "$@"; do
		check "$what: the probe saw $n in ccvm's tree" grep -q "^seen [0-9]* $n " "$TREE"
	done
	check "$what: nothing ccvm started outlives it ($(grep -E '^(left|zombie)' "$TREE" | tr '\n' ' '))" \
		bash -c '! grep -qE "^(left|zombie)" "$1"' _ "$TREE"
	for ((i = 0; i < 50; i++)); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
	check "$what: no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
	local st
	st=$(strays)
	check "$what: no temp files left" [ -z "$st" ]
	leftovers | sed 's/^/# left: /'
	[ -z "$st" ] || sed 's/^/# stray: /' <<<"$st"
	kill_session_qemu
}
# driven REPORT [ptydrive options] -- CCVM-ARGS...: ccvm under proctree.py on
# a terminal of ptydrive.py, in the background ($PID: ptydrive's).
driven() {
	local report=$1
	shift
	local opts=()
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	rm -f "$TREE" "$TREE.pid" "$report" "$report.pid"
	$PY "$HERE/ptydrive.py" "$report" "${opts[@]}" -- \
		$PY "$HERE/proctree.py" "$TREE" -- "$CCVM" "$@" &
	PID=$!
}
# ccvm's pid, once proctree.py has started it.
ccvm_pid() { wait_file "$TREE.pid" 20 && cat "$TREE.pid"; }
# The terminal's output $1 as lines: a carriage return ends one (the
# spinner's frames end so), escape sequences dropped.
text() { tr '\r' '\n' <"$1" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g'; }
# The lines after the guest's line $2 in the terminal's output $1, blank
# ones dropped.
after_line() { text "$1" | sed -n "/^$2\$/,\$p" | sed 1d | grep -v '^ *$'; }

# --- 1. the share server dies ------------------------------------------------
if [ ! -x /usr/lib/qemu/virtiofsd ]; then
	skip_missing virtiofsd "the share server dies" "/usr/lib/qemu/virtiofsd is not installed (qemu-system-common)"
else
	# $1: which process to kill, "daemon" (the one ccvm started) or
	# "sandbox" (its child that serves the requests); $2: the signal;
	# $3: what ccvm says it exited with.
	share_dies() {
		local which="$1 $2" sig=$2 status=$3 R=$T_TMP/share-$1-$2 cpid vpid kpid out
		rm -f "$P/ready" "$P/written.bin"
		# The agent writes and closes a file, prints its checksum, then
		# keeps reading the share.
		driven "$R" -- --shell -- sh -c 'head -c 3000000 /dev/urandom >written.bin
			echo "GUEST-SUM $(sha256sum <written.bin | cut -c1-64)"
			echo SHARE-UP; touch ready
			while :; do ls >/dev/null; sleep 0.2; done'
		if ! wait_file "$P/ready" 180 || ! cpid=$(ccvm_pid); then
			not_ok "share dies ($which): the session started"
			kill -KILL "$PID" 2>/dev/null
			wait "$PID" 2>/dev/null
			kill_session_qemu
			return
		fi
		vpid=$(pgrep -P "$cpid" -x virtiofsd | head -1)
		kpid=$vpid
		[ "$1" = daemon ] || kpid=$(pgrep -P "$vpid" -x virtiofsd | head -1)
		if [ -z "$kpid" ]; then
			not_ok "share dies ($which): found the process to kill (ccvm $cpid, virtiofsd ${vpid:-none})"
			kill -KILL "$cpid"
			wait "$PID" 2>/dev/null
			kill_session_qemu
			return
		fi
		kill -"$sig" "$kpid"
		wait_end "$PID" 60 || kill -KILL "$cpid" 2>/dev/null
		out=$R.out
		check "share dies ($which): ccvm ends within 10 s (rc=$RC, ${MS} ms)" \
			[ "$RC" != timeout -a "$MS" -le 10000 ]
		check "share dies ($which): ccvm exits 125 (rc=$RC)" [ "$RC" = 125 ]
		check "share dies ($which): ccvm says the share stopped ($status)" \
			grep -aq "^ccvm: the project share stopped (virtiofsd exited: $status" "$out"
		check "share dies ($which): that line is all ccvm says ($(after_line "$out" SHARE-UP | head -5 | tr '\n' '|'))" \
			[ "$(after_line "$out" SHARE-UP | wc -l)" = 1 ]
		check "share dies ($which): the terminal's settings are restored (termios $(rep "$R" termios))" \
			[ "$(rep "$R" termios)" = same ]
		local gsum hsum
		gsum=$(text "$out" | sed -n 's/^GUEST-SUM //p' | head -1)
		hsum=$(sha256sum <"$P/written.bin" 2>/dev/null | cut -c1-64)
		check "share dies ($which): the file written before is complete on the host" \
			[ -n "$gsum" -a "$gsum" = "$hsum" ]
		none_left "share dies ($which)" virtiofsd qemu-system-x86
		[ "$RC" = 125 ] || text "$out" | tail -20 | sed 's/^/# out: /'
	}
	share_dies daemon KILL "killed by signal 9 (SIGKILL))"
	share_dies sandbox KILL ""
	share_dies daemon TERM ""
fi

# --- 2. the network relay dies -----------------------------------------------
# A web server on the host's loopback, opened to the guest as
# host.ccvm.internal (docs/egress.md): reached before the kill (the positive
# control), refused after it.
$PY -c '
import http.server, sys
s = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
print(s.server_address[1], flush=True)
s.serve_forever()' >"$T_TMP/web.port" 2>/dev/null &
WEB=$!
for ((i = 0; i < 50; i++)); do [ -s "$T_TMP/web.port" ] && break; sleep 0.1; done
WPORT=$(head -1 "$T_TMP/web.port")
printf '{"egressAllowlist": ["host.ccvm.internal"], "egressPorts": [%s]}\n' "$WPORT" >"$T_TMP/net.json"
R=$T_TMP/net
rm -f "$P/net-up" "$P/go"
export CCVM_CONFIG=$T_TMP/net.json
driven "$R" -- --shell -- sh -c '
	get() { t0=$(date +%s%N); code=$(curl -s -m 20 -o /dev/null -w "%{http_code}" "$2"); rc=$?
		echo "$1 code=$code rc=$rc ms=$((($(date +%s%N) - t0) / 1000000))"; }
	get BEFORE http://host.ccvm.internal:'"$WPORT"'/
	echo NET-UP; touch net-up
	while [ ! -e go ]; do sleep 0.1; done
	get AFTER http://host.ccvm.internal:'"$WPORT"'/
	get AFTER-IP http://192.0.2.7:'"$WPORT"'/
	echo "NICS $(ls /sys/class/net | tr "\n" " ")"
	echo "DEVICES $(cd /sys/class/net && for n in *; do [ -e "$n/device" ] && echo "$n"; done | tr "\n" " ")"
	sleep 1
	get AFTER-AGAIN http://host.ccvm.internal:'"$WPORT"'/
	echo NET-END'
unset CCVM_CONFIG
if [ -z "$WPORT" ] || ! wait_file "$P/net-up" 180 || ! cpid=$(ccvm_pid); then
	not_ok "relay dies: the session started (web server port ${WPORT:-none})"
	kill -KILL "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	kill_session_qemu
else
	epid=$(pgrep -P "$cpid" -x ccvm-egress | head -1)
	check "relay dies: found the relay (ccvm-egress) under ccvm" [ -n "$epid" ]
	[ -z "$epid" ] || kill -KILL "$epid"
	sleep 1
	touch "$P/go"
	wait_end "$PID" 120 || kill -KILL "$cpid" 2>/dev/null
	out=$R.out
	line() { text "$out" | grep -a "^$1 " | head -1; }
	diag "$(line BEFORE)" "$(line AFTER)" "$(line AFTER-IP)" "$(line AFTER-AGAIN)" "$(line NICS)"
	check "relay dies: control: the guest reached the host's server before the kill" \
		grep -aq '^BEFORE code=200 ' <(text "$out")
	for what in AFTER AFTER-IP AFTER-AGAIN; do
		l=$(line $what)
		ms=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$l")
		check "relay dies: the guest's connection fails after the kill ($what: ${l:-no line})" \
			bash -c '[[ $1 == *" rc="* && $1 != *" rc=0 "* && $1 != *"code=200"* ]]' _ "$l"
		check "relay dies: ... at once, not by a timeout ($what: ${ms:-?} ms < 5000)" [ "${ms:-99999}" -lt 5000 ]
	done
	check "relay dies: the guest has no network device to go around it ($(line NICS); with a device: $(line DEVICES))" \
		bash -c '[[ $1 == "NICS "*lo* && $2 == "DEVICES" ]]' _ "$(line NICS)" "$(line DEVICES | sed 's/ *$//')"
	check "relay dies: the session goes on to its end (rc=$RC)" \
		bash -c '[ "$1" = 0 ] && grep -aq "^NET-END" <<<"$2"' _ "$RC" "$(text "$out")"
	n=$(grep -ac '^ccvm: the network relay stopped (killed by signal 9 (SIGKILL)): the guest has no network' <(text "$out"))
	check "relay dies: ccvm says so exactly once ($n times)" [ "$n" = 1 ]
	check "relay dies: the terminal's settings are restored (termios $(rep "$R" termios))" \
		[ "$(rep "$R" termios)" = same ]
	none_left "relay dies" virtiofsd qemu-system-x86 ccvm-egress
	[ "$n" = 1 ] || text "$out" | tail -20 | sed 's/^/# out: /'
fi

# The relay killed while the VM boots (the spinner on the terminal): the
# program still runs, without a network, and the line comes once.  A boot,
# not a restored one (CCVM_SAVED_BOOT=0): a longer time to catch it in.
export CCVM_CONFIG=$T_TMP/net.json CCVM_SAVED_BOOT=0
R=$T_TMP/net-boot
driven "$R" -- --shell -- sh -c 'echo PROGRAM-RAN
	curl -s -m 20 -o /dev/null http://host.ccvm.internal:'"$WPORT"'/; echo "BOOT-CURL rc=$?"'
unset CCVM_CONFIG CCVM_SAVED_BOOT
epid=
for ((i = 0; i < 400; i++)); do
	cpid=$(cat "$TREE.pid" 2>/dev/null) && epid=$(pgrep -P "$cpid" -x ccvm-egress | head -1)
	[ -z "$epid" ] || break
	sleep 0.05
done
[ -z "$epid" ] || kill -KILL "$epid"
wait_end "$PID" 180 || kill -KILL "$cpid" 2>/dev/null
out=$R.out
if [ -z "$epid" ]; then
	not_ok "relay dies during boot: found the relay under ccvm"
	kill_session_qemu
else
	l=$(text "$out" | grep -a '^BOOT-CURL ' | head -1)
	n=$(text "$out" | grep -ac '^ccvm: the network relay stopped')
	said=$(text "$out" | grep -an '^ccvm: the network relay stopped' | head -1 | cut -d: -f1)
	ran=$(text "$out" | grep -an '^PROGRAM-RAN' | head -1 | cut -d: -f1)
	check "relay dies during boot: ccvm said it before the program's first line (line ${said:-none} < ${ran:-none})" \
		[ "${said:-0}" -gt 0 -a "${said:-0}" -lt "${ran:-0}" ]
	check "relay dies during boot: the program runs to its end (rc=$RC)" [ "$RC" = 0 ]
	check "relay dies during boot: its connection fails (${l:-no line})" \
		bash -c '[[ $1 == "BOOT-CURL rc="* && $1 != "BOOT-CURL rc=0" ]]' _ "$l"
	check "relay dies during boot: ccvm says so exactly once ($n times)" [ "$n" = 1 ]
	check "relay dies during boot: the terminal's settings are restored (termios $(rep "$R" termios))" \
		[ "$(rep "$R" termios)" = same ]
	none_left "relay dies during boot" qemu-system-x86 ccvm-egress
fi
kill "$WEB" 2>/dev/null
wait "$WEB" 2>/dev/null

# --- 3. a flood on the terminal ----------------------------------------------
# `yes` for 10 s, then Ctrl-C typed on the terminal: the program's INT trap
# prints INT-SEEN and YES-ENDED.  ccvm's own memory is sampled every 0.1 s
# from the flood's start.
R=$T_TMP/flood
$PY "$HERE/ptydrive.py" "$R" --type FLOOD-START 10 '\x03' --end YES-ENDED -- \
	"$CCVM" --shell -- sh -c 'trap "echo INT-SEEN" INT; echo FLOOD-START; yes; echo YES-ENDED' &
PID=$!
wait_end "$PID" 300
typed=$(rep "$R" typed_ms) end=$(rep "$R" end_ms) bytes=$(rep "$R" bytes)
first=$(rep "$R" rss_kb_samples | cut -d, -f1) max=$(rep "$R" rss_kb_max)
diag "flood: $bytes bytes; Ctrl-C at ${typed:-?} ms, YES-ENDED at ${end:-?} ms; ccvm RSS ${first:-?} kB at the start, ${max:-?} kB at most"
check "flood: the session ran and ended (rc=$RC)" [ "$RC" = 0 ]
check "flood: the flood flowed (${bytes:-0} bytes > 1 MB)" [ "${bytes:-0}" -gt 1000000 ]
if [ -n "$typed" ] && [ -n "$end" ]; then
	check "flood: Ctrl-C ends it within a second ($((end - typed)) ms)" [ $((end - typed)) -le 1000 ]
else
	not_ok "flood: Ctrl-C ends it within a second (typed: ${typed:-never}, ended: ${end:-never})"
fi
check "flood: ccvm's memory is bounded (RSS at most ${max:-?} kB <= 65536)" [ "${max:-999999}" -le 65536 ]
check "flood: ccvm's memory does not grow with the flood (${first:-?} -> ${max:-?} kB, < 8 MiB more)" \
	[ -n "$first" -a $((${max:-999999} - ${first:-0})) -lt 8192 ]
check "flood: the terminal's settings are restored (termios $(rep "$R" termios))" [ "$(rep "$R" termios)" = same ]
[ "$RC" = 0 ] || text "$R.out" | tail -10 | sed 's/^/# out: /'
for ((i = 0; i < 50; i++)); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
check "flood: no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
kill_session_qemu

done_testing
