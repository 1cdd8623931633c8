#!/bin/bash
# When the guest's side fails mid-session (issue 24, items 3 to 6;
# docs/failures.md):
#  1. The host disk fills up: a write in the share gets ENOSPC in the guest
#     and the session goes on; a scratch disk whose host file cannot grow
#     gives I/O errors in the guest, not a hang, and ccvm says so at exit.
#  2. The guest runs out of memory: the program killed by the guest's OOM
#     killer is exit 137 and one line naming memory and its value.
#  3. The laptop sleeps (QEMU stopped 30 s, then continued): the session
#     goes on, the guest's clock is right, nothing timed out.
#  4. The host crashes mid-write: what the guest wrote and closed before a
#     guest panic or a kill -9 of QEMU is on the host byte for byte.
# Small file systems need mounts of the test's own: the whole script runs
# in a user and mount namespace (as 30-egress.sh does), as its root.
source "$(dirname "$0")/lib.sh"
export CCVM_ACCEL=tcg

if [ -z "${CCVM_FAULTS_INNER:-}" ]; then
	need_image
	if ! unshare -r true 2>/dev/null; then
		skip_missing userns "guest fault tests" "unprivileged user namespaces are not available here"
		done_testing
		exit 0
	elif ! unshare -rm true 2>/dev/null; then
		not_ok "guest fault tests: a user namespace may have its own mounts (unshare -rm)"
		done_testing
		exit 1
	fi
	CCVM_FAULTS_INNER=1 unshare -rm --kill-child bash "$0"
	exit $?
fi
export CCVM_ALLOW_ROOT=1
# The test's mounts go before its temp area does.
trap 'for m in sd up small; do umount "$T_TMP/$m"; done 2>/dev/null; rm -rf "$T_TMP"' EXIT
unset CCVM_SCRATCH_DIR CCVM_VM_DISK_SIZE CCVM_MEMORY

wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_gone() { local i; for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
# QEMU of the ccvm under timeout PID $1.
qemu_of() { pgrep -P "$(pgrep -P "$1" | head -1)" -f qemu-system | head -1; }
# ccvm's own lines on stderr ("ccvm: ...").
ccvm_lines() { grep -a '^ccvm: ' "$1"; }
show() { sed 's/^/# /' "$1" | tail -"${2:-10}"; }
# run_bg NAME ARGS...: ccvm in the background, stdout and stderr in
# $T_TMP/NAME.{out,err}; PID is its pid.
run_bg() {
	local name=$1
	shift
	timeout --kill-after=10 400 "$CCVM" "$@" >"$T_TMP/$name.out" 2>"$T_TMP/$name.err" &
	PID=$!
}
# end_of NAME SECS: waits for PID; its status in RC ("hung" when it did not
# end within SECS, then killed).
end_of() {
	if wait_gone "$PID" "$2"; then
		wait "$PID"
		RC=$?
	else
		RC=hung
		pkill -KILL -P "$PID" 2>/dev/null
		kill -KILL "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
		kill_session_qemu
	fi
}

# --- 1. The host disk fills up -------------------------------------------
# The share: a project on a 24 MiB tmpfs.  64 MiB do not fit: dd gets
# ENOSPC; the session goes on, and what it writes next reaches the host.
SMALL=$T_TMP/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=24m tmpfs "$SMALL"
P=$(mktemp -d "$SMALL/proj.XXXXXX")
cd "$P" || exit 1
run_bg share --shell -- sh -c '
	if dd if=/dev/zero of=big bs=1M count=64 2>/tmp/dd.err; then echo DD-WROTE-ALL
	else echo "DD-FAILED $(grep -v records /tmp/dd.err | head -1)"; fi
	rm -f big
	echo after-the-full-disk > after.txt && echo SESSION-GOES-ON'
end_of share 300
out=$(cat "$T_TMP/share.out")
diag "share: rc=$RC; $(tr '\n' ' ' <<<"$out")"
check "full share: the guest's write gets ENOSPC (dd: $(grep -o 'DD-.*' <<<"$out"))" \
	grep -q 'DD-FAILED.*No space left on device' <<<"$out"
check "full share: the session goes on and exits 0 (rc=$RC)" \
	bash -c '[ "$1" = 0 ] && grep -qx SESSION-GOES-ON <<<"$2"' _ "$RC" "$out"
check "full share: what the guest wrote after is on the host" \
	[ "$(cat "$P/after.txt" 2>/dev/null)" = after-the-full-disk ]
check "full share: ccvm printed no line of its own ($(ccvm_lines "$T_TMP/share.err" | head -1))" \
	[ -z "$(ccvm_lines "$T_TMP/share.err")" ]
[ "$RC" = 0 ] || show "$T_TMP/share.err"
cd / || exit 1

# The scratch disk: CCVM_SCRATCH_DIR on a file system with 48 MiB left.
# ccvm refuses a tmpfs there (RAM), so it is an overlay whose upper layer
# is a small tmpfs: the disk file's blocks land there and run out.
SD=$T_TMP/sd
mkdir -p "$T_TMP/low" "$T_TMP/up" "$SD"
mount -t tmpfs -o size=48m tmpfs "$T_TMP/up"
mkdir -p "$T_TMP/up/u" "$T_TMP/up/w"
mount -t overlay -o "lowerdir=$T_TMP/low,upperdir=$T_TMP/up/u,workdir=$T_TMP/up/w" overlay "$SD"
P=$(new_project)
cd "$P" || exit 1
t0=$(date +%s)
CCVM_SCRATCH_DIR=$SD CCVM_VM_DISK_SIZE=1 run_bg scratch --shell -- sh -c '
	if dd if=/dev/zero of=/scratch/big bs=1M count=200 conv=fsync 2>/tmp/dd.err; then
		echo DD-WROTE-ALL
	else echo "DD-FAILED $(grep -v -e records -e copied /tmp/dd.err | head -1)"; fi
	echo SESSION-GOES-ON'
end_of scratch 300
out=$(cat "$T_TMP/scratch.out")
diag "scratch: rc=$RC after $(($(date +%s) - t0)) s; $(tr '\n' ' ' <<<"$out")"
diag "scratch: ccvm said: $(ccvm_lines "$T_TMP/scratch.err" | tr '\n' ' ')"
check "full scratch disk: no hang, the session ends (rc=$RC)" [ "$RC" != hung ]
check "full scratch disk: the guest gets an I/O error ($(grep -o 'DD-.*' <<<"$out"))" \
	grep -q 'DD-FAILED.*Input/output error' <<<"$out"
check "full scratch disk: the session goes on and exits 0 (rc=$RC)" \
	bash -c '[ "$1" = 0 ] && grep -qx SESSION-GOES-ON <<<"$2"' _ "$RC" "$out"
check "full scratch disk: ccvm says in one line that it ran out of host space in $SD" \
	bash -c '[ "$(ccvm_lines() { grep -a "^ccvm: " "$1"; }; ccvm_lines "$1" | wc -l)" -eq 1 ] &&
		grep -a "^ccvm: " "$1" | grep "scratch disk" | grep "out of host space" | grep -qF "$2"' \
	_ "$T_TMP/scratch.err" "$SD"
[ "$RC" = 0 ] || show "$T_TMP/scratch.err"
check "full scratch disk: nothing left in the scratch directory" [ -z "$(ls -A "$SD")" ]
# The control: room enough, the same write passes and ccvm says nothing.
umount "$SD" "$T_TMP/up"
rm -rf "$T_TMP/up" "$T_TMP/low"
mkdir -p "$T_TMP/low" "$T_TMP/up"
mount -t tmpfs -o size=400m tmpfs "$T_TMP/up"
mkdir -p "$T_TMP/up/u" "$T_TMP/up/w"
mount -t overlay -o "lowerdir=$T_TMP/low,upperdir=$T_TMP/up/u,workdir=$T_TMP/up/w" overlay "$SD"
CCVM_SCRATCH_DIR=$SD CCVM_VM_DISK_SIZE=1 run_bg roomy --shell -- sh -c '
	dd if=/dev/zero of=/scratch/big bs=1M count=200 conv=fsync 2>/dev/null && echo DD-WROTE-ALL'
end_of roomy 300
check "control: with room the same write passes, and ccvm says nothing (rc=$RC)" \
	bash -c '[ "$1" = 0 ] && grep -qx DD-WROTE-ALL "$2" && ! grep -qa "^ccvm: " "$3"' \
	_ "$RC" "$T_TMP/roomy.out" "$T_TMP/roomy.err"
[ "$RC" = 0 ] || show "$T_TMP/roomy.err"
umount "$SD" "$T_TMP/up"
cd / || exit 1

# --- 2. The guest runs out of memory --------------------------------------
P=$(new_project)
cd "$P" || exit 1
HOG='my @a; push @a, "x" x (8 << 20) while 1'
t0=$(date +%s)
CCVM_MEMORY=512 run_bg oom --shell -- perl -e "$HOG"
end_of oom 300
diag "oom: rc=$RC after $(($(date +%s) - t0)) s; ccvm said: $(ccvm_lines "$T_TMP/oom.err" | tr '\n' ' ')"
check "out of memory: the program is killed, ccvm exits 137 (rc=$RC)" [ "$RC" = 137 ]
check "out of memory: one line naming memory and its value (memory = 512 MiB)" \
	bash -c '[ "$(grep -ac "^ccvm: " "$1")" -eq 1 ] &&
		grep -a "^ccvm: " "$1" | grep "out of memory" | grep -qF "memory = 512 MiB"' _ "$T_TMP/oom.err"
[ "$RC" = 137 ] || show "$T_TMP/oom.err"
# A program whose child the OOM killer kills goes on: its own status, and
# ccvm says how many processes were killed.
CCVM_MEMORY=512 run_bg oomchild --shell -- sh -c "perl -e '$HOG'; echo SURVIVED"
end_of oomchild 300
diag "oom of a child: rc=$RC; ccvm said: $(ccvm_lines "$T_TMP/oomchild.err" | tr '\n' ' ')"
check "out of memory in a child: the program goes on and exits 0 (rc=$RC)" \
	bash -c '[ "$1" = 0 ] && grep -qx SURVIVED "$2"' _ "$RC" "$T_TMP/oomchild.out"
check "out of memory in a child: one line naming memory and the process killed" \
	bash -c '[ "$(grep -ac "^ccvm: " "$1")" -eq 1 ] &&
		grep -a "^ccvm: " "$1" | grep "memory = 512 MiB" | grep -q "killed 1 process;"' _ "$T_TMP/oomchild.err"
# The control: a SIGKILL that is not the OOM killer's is 137 too, and
# ccvm says nothing of memory.
CCVM_MEMORY=512 run_bg kill9 --shell -- sh -c 'kill -KILL $$'
end_of kill9 300
check "control: a plain SIGKILL is 137 without a memory line (rc=$RC)" \
	bash -c '[ "$1" = 137 ] && ! grep -qa "memory" "$2"' _ "$RC" "$T_TMP/kill9.err"
cd / || exit 1

# --- 3. The laptop sleeps --------------------------------------------------
P=$(new_project)
cd "$P" || exit 1
run_bg sleep --shell -- sh -c '
	touch up
	while [ ! -e go ]; do sleep 0.2; done
	date +%s.%N > guest-time.tmp && mv guest-time.tmp guest-time
	echo "CHANGED $(cat changed.txt)"
	echo SESSION-GOES-ON'
if wait_file "$P/up" 240; then
	Q=$(qemu_of "$PID")
	kill -STOP "$Q"
	# A file changed on the host meanwhile: the guest, stopped, cannot
	# confirm it; ccvm waits rather than give up following the share.
	sleep 1
	echo while-stopped >"$P/changed.txt"
	sleep 29
	kill -CONT "$Q"
	t_go=$(date +%s.%N)
	touch "$P/go"
	wait_file "$P/guest-time" 60
	t_seen=$(date +%s.%N)
	g=$(cat "$P/guest-time" 2>/dev/null)
	end_of sleep 120
	diag "sleep: host ${t_go}..${t_seen}, guest ${g:-none}; rc=$RC"
	check "sleep: the session goes on after 30 s stopped and exits 0 (rc=$RC)" \
		bash -c '[ "$1" = 0 ] && grep -qx SESSION-GOES-ON "$2"' _ "$RC" "$T_TMP/sleep.out"
	check "sleep: the guest's clock is within 2 s of the host's (guest $g, host $t_go..$t_seen)" \
		awk -v g="${g:-0}" -v a="$t_go" -v b="$t_seen" 'BEGIN { exit !(g >= a - 2 && g <= b + 2) }'
	check "sleep: the guest sees the file the host changed while it was stopped" \
		grep -qx "CHANGED while-stopped" "$T_TMP/sleep.out"
	check "sleep: no timeout fired: ccvm printed nothing ($(ccvm_lines "$T_TMP/sleep.err" | head -1))" \
		[ -z "$(ccvm_lines "$T_TMP/sleep.err")" ]
else
	not_ok "sleep: the session started"
	show "$T_TMP/sleep.err"
	kill -KILL "$PID" 2>/dev/null
fi
cd / || exit 1

# --- 4. The host crashes mid-write -------------------------------------------
# The guest copies 3 MB the host put in the share (write and close by cp),
# says so, and then dies: by its own kernel's panic at once, or by a
# kill -9 of QEMU as soon as the host sees it said so.
P=$(new_project)
cd "$P" || exit 1
head -c 3000000 /dev/urandom >src.bin
want=$(sha256sum <src.bin)
run_bg panic --shell -- sh -c 'cp src.bin panic.bin && echo x > panic.done &&
	sudo -n sh -c "echo c > /proc/sysrq-trigger"; sleep 60'
end_of panic 300
check "guest panic: ccvm ends with 125 and says the guest kernel panicked (rc=$RC)" \
	bash -c '[ "$1" = 125 ] && grep -q "guest kernel panicked" "$2"' _ "$RC" "$T_TMP/panic.err"
check "guest panic: the file written and closed before is on the host byte for byte" \
	bash -c '[ -f panic.done ] && [ "$(sha256sum <panic.bin 2>/dev/null)" = "$1" ]' _ "$want"
# And a file written (write returned) but still open: virtiofs writes
# through, so it is there too (docs/failures.md).
run_bg kill --shell -- sh -c 'cp src.bin kill.bin && exec 3>open.bin &&
	cat src.bin >&3 && echo x > kill.done; sleep 120'
if wait_file "$P/kill.done" 240; then
	kill -KILL "$(qemu_of "$PID")"
	end_of kill 60
	check "kill -9 of QEMU: ccvm ends with 125 and says QEMU was killed (rc=$RC)" \
		bash -c '[ "$1" = 125 ] && grep -q "QEMU was killed by signal 9" "$2"' _ "$RC" "$T_TMP/kill.err"
	check "kill -9 of QEMU: the file written and closed before is on the host byte for byte" \
		[ "$(sha256sum <kill.bin 2>/dev/null)" = "$want" ]
	check "kill -9 of QEMU: the file written and still open is on the host byte for byte" \
		[ "$(sha256sum <open.bin 2>/dev/null)" = "$want" ]
else
	not_ok "kill -9 of QEMU: the guest wrote its file"
	show "$T_TMP/kill.err"
	kill -KILL "$PID" 2>/dev/null
fi
cd / || exit 1

check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
done_testing
