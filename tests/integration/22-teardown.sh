#!/bin/bash
# Nothing outlives a session, whatever way it ends: at the instant ccvm
# returns, no process it started (found by parentage while the session
# ran: QEMU, virtiofsd and its sandbox child, the network relay, the
# clipboard tool, ...) is still there; after SIGKILL of ccvm, none is
# there a few seconds later.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
P=$(new_project)
cd "$P" || exit 1
marker=$T_TMP/marker
touch "$marker"

# Temp files this user created outside the test's own area since $marker
# (other test scripts' areas and X servers, when they run side by side,
# are theirs).
strays() {
	find /tmp /var/tmp "${XDG_RUNTIME_DIR:-/nonexistent}" -maxdepth 2 -user "$(id -u)" \
		-newer "$marker" 2>/dev/null |
		grep -v -e "^$T_TMP" -e "^/tmp/tmux-" -e '^/tmp/ccvm-t\.' -e '^/tmp/ccvm-it\.' -e '^/tmp/\.X11-unix' || true
}
wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_gone() { local i; for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
# The processes of the last traced tree ("seen" lines) that still run:
# same pid, same start time.
survivors() {
	local pid comm start s
	while read -r _ pid comm start; do
		s=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		s=${s##*) }
		# shellcheck disable=SC2086 # the fields after the name
		set -- $s
		[ "${20}" = "$start" ] && echo "$pid $comm"
	done < <(grep '^seen ' "$TREE" 2>/dev/null)
}
# Nothing of ccvm's tree is left (the probe saw a tree).
tree_gone() { grep -q '^seen ' "$TREE" && [ -z "$(survivors)" ]; }
clean_after() {
	local what=$1 i
	for ((i = 0; i < 50; i++)); do [ -z "$(leftovers)$(survivors)" ] && break; sleep 0.1; done
	check "$what: no QEMU left" [ -z "$(leftovers)" ]
	check "$what: no process of ccvm's tree left ($(survivors | tr '\n' ' '))" tree_gone
	check "$what: no temp files left" [ -z "$(strays)" ]
	leftovers | sed 's/^/# left: /'
	strays | sed 's/^/# stray: /'
	for pid in $(leftovers | awk '{print $1}') $(survivors | awk '{print $1}'); do
		kill -KILL "$pid" 2>/dev/null
	done
}

# ccvm under proctree.py, which records its process tree and, the moment
# ccvm exits, which of those processes are still there ($T_TMP/tree).
TREE=$T_TMP/tree
traced() { rm -f "$TREE" "$TREE.pid"; python3 "$(dirname "$0")/proctree.py" "$TREE" -- "$CCVM" "$@"; }
# ccvm's own pid, once proctree.py has started it.
ccvm_pid() { wait_file "$TREE.pid" 10 && cat "$TREE.pid"; }
# What: nothing of the tree outlived ccvm; the tree held the processes
# named in $2... (so the probe ran).
none_left() {
	local what=$1 n; shift
	check "$what: the probe saw processes under ccvm" grep -q '^seen ' "$TREE"
	for n in "$@"; do
		check "$what: the probe saw $n in ccvm's tree" grep -q "^seen [0-9]* $n" "$TREE"
	done
	check "$what: nothing ccvm started outlives it ($(grep -E '^(left|zombie)' "$TREE" | tr '\n' ' '))" \
		bash -c '! grep -qE "^(left|zombie)" "$1"' _ "$TREE"
}
SESSION=(qemu-system-x86 virtiofsd ccvm-egress)

# A session that is up and running its program (which made a file).
start_session() {
	CPID=
	rm -f "$P/ready"
	traced --shell -- sh -c 'touch ready; exec sleep 300' >/dev/null 2>"$T_TMP/err" &
	PID=$!
	wait_file "$P/ready" 90 && CPID=$(ccvm_pid)
}

# Normal exit.
traced --shell -- true >/dev/null 2>&1
none_left "normal exit" "${SESSION[@]}"
check "normal exit: the probe saw virtiofsd and its sandbox child" \
	test "$(grep -c '^seen [0-9]* virtiofsd ' "$TREE")" -ge 2
clean_after "normal exit"

# SIGTERM and SIGHUP to ccvm: forwarded, then everything ends.
for sig in TERM HUP; do
	if start_session; then
		kill -$sig $CPID
		if wait_gone $PID 20; then
			wait $PID; rc=$?
			check "SIG$sig to ccvm ends the session (rc=$rc)" [ $rc -ne 0 ]
			none_left "SIG$sig" "${SESSION[@]}"
		else
			not_ok "SIG$sig to ccvm ends the session within 20 s"; kill -9 $CPID $PID
		fi
		clean_after "SIG$sig"
	else
		not_ok "session for SIG$sig started"; kill -9 $CPID $PID 2>/dev/null
	fi
done

# SIGKILL to ccvm: QEMU dies with it (parent-death signal), soon after.
if start_session; then
	kill -KILL $CPID
	wait $PID 2>/dev/null
	clean_after "SIGKILL of ccvm"
else
	not_ok "session for SIGKILL started"
fi

# Ctrl-C (SIGINT) while the VM boots (a boot, not a restore: that one
# could be over before the signal).
CCVM_SAVED_BOOT=0 traced --shell -- true >/dev/null 2>"$T_TMP/err" &
PID=$!
sleep 1
kill -INT "$(ccvm_pid)"
wait $PID; rc=$?
check "SIGINT during boot exits 130 (rc=$rc)" [ $rc -eq 130 ]
none_left "SIGINT during boot"
clean_after "SIGINT during boot"

# QEMU killed under ccvm: a clear error and status 125.
if start_session; then
	kill_session_qemu
	wait $PID; rc=$?
	check "QEMU killed: ccvm exits 125 (rc=$rc)" [ $rc -eq 125 ]
	check "QEMU killed: ccvm says so" grep -qi 'qemu' "$T_TMP/err"
	none_left "QEMU killed" virtiofsd ccvm-egress
	clean_after "QEMU killed"
else
	not_ok "session for QEMU kill started"
	diag "stderr: $(tail -c 1500 "$T_TMP/err" | tr '\n' ' ')"
fi

# A clipboard tool still running when the session ends (a paste the guest
# asked for and did not wait for): a stand-in xclip that says it started,
# then sleeps.
mkdir -p "$T_TMP/bin"
cat >"$T_TMP/bin/xclip" <<EOF
#!/usr/bin/python3
import time
open("$P/clip-started", "w").close()
time.sleep(300)
EOF
chmod +x "$T_TMP/bin/xclip"
rm -f "$P/clip-started"
(
	unset WAYLAND_DISPLAY
	DISPLAY=:99 CCVM_XCLIP=$T_TMP/bin/xclip CCVM_CLIPBOARD_IMAGES=1 traced --shell -- sh -c '
		xclip -selection clipboard -o -t image/png >/dev/null 2>&1 &
		for i in $(seq 100); do [ -e clip-started ] && break; sleep 0.1; done
		[ -e clip-started ] && echo clip-started' >"$T_TMP/clip.out" 2>"$T_TMP/err"
)
check "clipboard: the host's tool was running when the guest left" grep -q clip-started "$T_TMP/clip.out"
none_left "clipboard tool running at exit" "${SESSION[@]}" xclip
clean_after "clipboard tool running at exit"

# Guest kernel panic (needs root in the guest: agentSudo is on by default).
traced --shell -- sh -c 'sudo -n sh -c "echo c > /proc/sysrq-trigger"' >/dev/null 2>"$T_TMP/err"
rc=$?
check "guest panic: ccvm exits 125 (rc=$rc)" [ $rc -eq 125 ]
none_left "guest panic" "${SESSION[@]}"
check "guest panic: ccvm says the guest kernel panicked" grep -q 'guest kernel panicked' "$T_TMP/err"
clean_after "guest panic"

done_testing
