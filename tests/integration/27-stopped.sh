#!/bin/bash
# A stopped guest program never freezes ccvm: ccvm stops itself with the
# program only as the foreground job of its terminal, where the shell's fg
# continues it; with no terminal, as a background job, or as a terminal's
# first process (nobody's job control above it), it continues the program.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(new_project)
cd "$P" || exit 1

# No terminal at all (setsid: whatever the test runner has): the program
# stops itself, is continued, and its output and exit status come back.
t0=$(date +%s)
setsid -w timeout --kill-after=10 150 "$CCVM" --shell -- \
	sh -c 'echo BEFORE-STOP; kill -STOP $$; echo RESUMED; exit 3' \
	</dev/null >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
diag "no terminal: exit $rc after $(($(date +%s) - t0)) s"
check "no terminal: the program ran up to its stop" grep -qx BEFORE-STOP "$T_TMP/out"
check "no terminal: ccvm returns with the program's exit status (3)" [ "$rc" -eq 3 ]
check "no terminal: the program was continued (its output after the stop)" \
	grep -qx RESUMED "$T_TMP/out"
[ "$rc" -eq 3 ] || sed 's/^/# stderr: /' "$T_TMP/err" | tail -5

# ccvm as the first process of a terminal, its session's leader (no shell
# whose fg could continue it): the program is continued.
timeout --kill-after=10 150 /usr/bin/python3 "$HERE/ptyrun.py" \
	"$T_TMP/lead.out" 30 100 -- "$CCVM" --shell -- \
	sh -c 'echo LEADER-START; kill -STOP $$; echo LEADER-RESUMED; exit 4'
rc=$?
check "session leader: ccvm returns with the program's exit status (4)" [ "$rc" -eq 4 ]
check "session leader: the program was continued" grep -aq LEADER-RESUMED "$T_TMP/lead.out"

if ! command -v tmux >/dev/null; then
	skip_missing tmux "terminal cases" "tmux is not installed"
	check "no QEMU left" [ -z "$(leftovers)" ]
	done_testing
	exit
fi
export TMUX_TMPDIR=$T_TMP
S=ccvm-s$$
trap 'tmux kill-server 2>/dev/null; rm -rf "$T_TMP"' EXIT
dump() { tmux capture-pane -p -S - -t "$1" | grep -v '^ *$' | sed 's/^/# /'; }

# The foreground job of an interactive shell: ccvm stops too (the shell
# says so) and fg continues both.
tmux new-session -d -s $S -x 100 -y 30 "bash --norc --noprofile"
tmux send-keys -t $S "'$CCVM' --shell -- sh -c 'echo FG-READY; kill -STOP \$\$; echo FG-RESUMED'" Enter
if tmux_wait $S 90 'Stopped'; then
	ok "foreground job: ccvm stops with the program (job stopped)"
	tmux send-keys -t $S "fg" Enter
	check "foreground job: fg continues the program" tmux_wait $S 30 '^FG-RESUMED'
	sleep 1
	tmux send-keys -t $S 'echo FG-EXIT=$?' Enter
	check "foreground job: and fg reports ccvm's exit status 0" tmux_wait $S 30 'FG-EXIT=0'
else
	not_ok "foreground job: ccvm stops with the program (job stopped)"
	dump $S
fi

# A background job of the same shell: not the terminal's foreground, so
# the program is continued and ccvm finishes on its own.
tmux send-keys -t $S "clear; '$CCVM' --shell -- sh -c 'kill -STOP \$\$; echo BG-RESUMED' </dev/null & wait \$!; echo BG-EXIT=\$?" Enter
if tmux_wait $S 90 'BG-EXIT=0'; then
	ok "background job: the program is continued, ccvm exits 0"
	check "background job: the program's output after the stop" tmux_wait $S 5 '^BG-RESUMED'
else
	not_ok "background job: the program is continued, ccvm exits 0"
	dump $S
fi

check "no QEMU left" [ -z "$(leftovers)" ]
done_testing
