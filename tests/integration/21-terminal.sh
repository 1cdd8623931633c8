#!/bin/bash
# Terminal fidelity, driven through a real terminal (tmux): window size and
# resize, Ctrl-C, Ctrl-Z and fg, and a sane terminal afterwards.
source "$(dirname "$0")/lib.sh"
command -v tmux >/dev/null || { skip_missing tmux "terminal tests" "tmux is not installed"; done_testing; exit 0; }
need_image
export CCVM_ACCEL=tcg
P=$(new_project)
cd "$P" || exit 1
export TMUX_TMPDIR=$T_TMP
S=ccvm-t$$
trap 'tmux kill-server 2>/dev/null; rm -rf "$T_TMP"' EXIT

# Size and resize: stty in the guest reads the PTY's size.
tmux new-session -d -s $S -x 100 -y 30 "bash --norc --noprofile"
tmux set-option -t $S window-size manual >/dev/null 2>&1
tmux send-keys -t $S "'$CCVM' --shell -- sh -c 'stty size; read x; stty size; read y; echo TERM=\$TERM'; echo EXIT=\$?" Enter
if tmux_wait $S 60 '^30 100'; then ok "initial window size reaches the guest PTY"; else not_ok "initial window size"; tmux capture-pane -p -t $S | sed 's/^/# /'; fi
tmux resize-window -t $S -x 120 -y 40
sleep 1
tmux send-keys -t $S Enter
if tmux_wait $S 20 '^40 120'; then ok "SIGWINCH: resize reaches the guest PTY"; else not_ok "resize"; tmux capture-pane -p -t $S | sed 's/^/# /'; fi
tmux send-keys -t $S Enter
check "TERM passes through" tmux_wait $S 20 "TERM=$(tmux show-options -gv default-terminal 2>/dev/null || echo screen)"
check "session exits 0" tmux_wait $S 20 'EXIT=0'
tmux send-keys -t $S "clear; stty -a | tr ' ' '\n' | grep -x -e icanon -e echo -e opost | tr '\n' ' '; echo" Enter
check "terminal is sane afterwards (opost icanon echo)" tmux_wait $S 10 'opost icanon echo'

# Ctrl-C reaches the guest program, whose handler runs.
tmux send-keys -t $S "clear; '$CCVM' --shell -- sh -c 'trap \"echo GOT-INT; exit 7\" INT; echo READY; while :; do sleep 0.2; done'; echo EXIT=\$?" Enter
if tmux_wait $S 60 '^READY'; then
	tmux send-keys -t $S C-c
	check "Ctrl-C is delivered to the guest program" tmux_wait $S 20 'GOT-INT'
	check "its exit code comes back (7)" tmux_wait $S 20 'EXIT=7'
else
	not_ok "Ctrl-C test program started"; tmux capture-pane -p -t $S | sed 's/^/# /'
fi

# Ctrl-Z stops the program and ccvm with it; fg continues both.
tmux send-keys -t $S "clear; '$CCVM' --shell -- sh -c 'echo READY; read x; echo AFTER-FG=\$x'; echo EXIT=\$?" Enter
if tmux_wait $S 60 '^READY'; then
	tmux send-keys -t $S C-z
	if tmux_wait $S 20 'Stopped'; then
		ok "Ctrl-Z gives the shell back (job stopped)"
	else
		not_ok "Ctrl-Z gives the shell back (job stopped)"
		tmux capture-pane -p -t $S | sed 's/^/# /'
		ps -o pid,stat,args -u "$(id -u)" | grep -E 'ccvm|qemu' | grep -v grep | sed 's/^/# /'
	fi
	tmux send-keys -t $S "fg" Enter
	sleep 2
	tmux send-keys -t $S "resumed" Enter
	check "fg continues the program, which reads input" tmux_wait $S 20 'AFTER-FG=resumed'
	sleep 1
	tmux send-keys -t $S 'echo FG-EXIT=$?' Enter
	check "and fg reports its exit status 0" tmux_wait $S 20 'FG-EXIT=0'
else
	not_ok "Ctrl-Z test program started"; tmux capture-pane -p -t $S | sed 's/^/# /'
fi
check "no QEMU left after the terminal sessions" [ -z "$(leftovers)" ]
done_testing
