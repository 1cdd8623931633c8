#!/bin/bash
# Nothing outlives a session, whatever way it ends.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
P=$(new_project)
cd "$P" || exit 1
marker=$T_TMP/marker
touch "$marker"

# Temp files this user created outside the test's own area since $marker.
strays() {
	find /tmp /var/tmp "${XDG_RUNTIME_DIR:-/nonexistent}" -maxdepth 2 -user "$(id -u)" \
		-newer "$marker" 2>/dev/null | grep -v -e "^$T_TMP" -e "^/tmp/tmux-" || true
}
wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_gone() { local i; for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
clean_after() {
	local what=$1 i
	for ((i = 0; i < 50; i++)); do [ -z "$(leftovers)" ] && break; sleep 0.1; done
	check "$what: no QEMU left" [ -z "$(leftovers)" ]
	check "$what: no temp files left" [ -z "$(strays)" ]
	leftovers | sed 's/^/# left: /'
	strays | sed 's/^/# stray: /'
	for pid in $(leftovers | awk '{print $1}'); do kill -KILL "$pid" 2>/dev/null; done
}

# A session that is up and running its program (which made a file).
start_session() {
	rm -f "$P/ready"
	"$CCVM" --shell -- sh -c 'touch ready; exec sleep 300' >/dev/null 2>"$T_TMP/err" &
	PID=$!
	wait_file "$P/ready" 90
}

# Normal exit.
"$CCVM" --shell -- true >/dev/null 2>&1
clean_after "normal exit"

# SIGTERM and SIGHUP to ccvm: forwarded, then everything ends.
for sig in TERM HUP; do
	if start_session; then
		kill -$sig $PID
		if wait_gone $PID 20; then
			wait $PID; rc=$?
			check "SIG$sig to ccvm ends the session (rc=$rc)" [ $rc -ne 0 ]
		else
			not_ok "SIG$sig to ccvm ends the session within 20 s"; kill -9 $PID
		fi
		clean_after "SIG$sig"
	else
		not_ok "session for SIG$sig started"; kill -9 $PID 2>/dev/null
	fi
done

# SIGKILL to ccvm: QEMU dies with it (parent-death signal).
if start_session; then
	kill -KILL $PID
	wait $PID 2>/dev/null
	clean_after "SIGKILL of ccvm"
else
	not_ok "session for SIGKILL started"
fi

# Ctrl-C (SIGINT) while the VM boots (a boot, not a restore: that one
# could be over before the signal).
CCVM_SAVED_BOOT=0 "$CCVM" --shell -- true >/dev/null 2>"$T_TMP/err" &
PID=$!
sleep 1
kill -INT $PID
wait $PID; rc=$?
check "SIGINT during boot exits 130 (rc=$rc)" [ $rc -eq 130 ]
clean_after "SIGINT during boot"

# QEMU killed under ccvm: a clear error and status 125.
if start_session; then
	kill_session_qemu
	wait $PID; rc=$?
	check "QEMU killed: ccvm exits 125 (rc=$rc)" [ $rc -eq 125 ]
	check "QEMU killed: ccvm says so" grep -qi 'qemu' "$T_TMP/err"
	clean_after "QEMU killed"
else
	not_ok "session for QEMU kill started"
	diag "stderr: $(tail -c 1500 "$T_TMP/err" | tr '\n' ' ')"
fi

# Guest kernel panic (needs root in the guest: agentSudo is on by default).
"$CCVM" --shell -- sh -c 'sudo -n sh -c "echo c > /proc/sysrq-trigger"' >/dev/null 2>"$T_TMP/err"
rc=$?
check "guest panic: ccvm exits 125 (rc=$rc)" [ $rc -eq 125 ]
check "guest panic: ccvm says the guest kernel panicked" grep -q 'guest kernel panicked' "$T_TMP/err"
clean_after "guest panic"

done_testing
