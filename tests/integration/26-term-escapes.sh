#!/bin/bash
# The host terminal obeys ccvm, not the guest: escape sequences that act
# outside the window or make the terminal answer with the host's data
# (OSC 52 clipboard, title and colour reports, DCS, APC, iTerm2's and
# kitty's file transfer, C1 forms) never reach the host's terminal, from
# the program's output or from the guest's LOG text; what the agent's UI
# draws with (SGR, hyperlinks, titles, synchronized output) arrives
# unchanged, and the real agent's full-screen UI renders in tmux.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
HERE=$(cd "$(dirname "$0")" && pwd)
P=$(new_project)
cd "$P" || exit 1
PTYRUN=("/usr/bin/python3" "$HERE/ptyrun.py")

# has FILE BYTES: FILE holds BYTES (a fixed string, no newline).
has() { LC_ALL=C grep -aqF -e "$2" "$1"; }
lacks() { ! has "$@"; }

# The guest prints the attacks between markers, then the sequences that
# must pass.  The script lives in the shared project directory.
cat >"$P/probe.sh" <<'PROBE'
printf 'A1\033]52;c;SGVsbG8=\007A2\033]52;c;?\033\\A3\033[21tA4\033[20tA5'
printf '\033[14tA6\033P$qm\033\\A7\033P+q544e\033\\A8'
printf '\033Ptmux;\033\033]52;c;SGk=\007\033\\A9'
printf '\033_Gf=100,t=f;L2V0Yy9wYXNzd2Q=\033\\A10'
printf '\033]1337;File=name=eA==;inline=0:eA==\007A11\033]11;?\007A12'
printf '\033]50;?\007A13\302\235''52;c;SGk=\302\234A14\302\233''21tA15'
printf '\033]7;file://h/tmp\007A16\033^pm\033\\A17\033Xsos\033\\A18'
printf '\033]5113;ac=send\033\\A19\033[1;1;1;1;1;1*yA20\005A21\n'
printf 'B1\033[31mRED\033[0mB2\033]8;;http://example.com/\033\\LINK'
printf '\033]8;;\033\\B3\033]2;ccvm-title\007B4\033[?2026hB5\033[?2026lB6\n'
PROBE
GOOD=$'B1\e[31mRED\e[0mB2\e]8;;http://example.com/\e\\LINK\e]8;;\e\\B3\e]2;ccvm-title\aB4\e[?2026hB5\e[?2026lB6'

OUT=$T_TMP/pty.out
timeout --kill-after=10 240 "${PTYRUN[@]}" "$OUT" 30 100 -- \
	"$CCVM" --shell -- sh ./probe.sh
rc=$?
check "session on a terminal exits 0" [ "$rc" -eq 0 ]
if has "$OUT" A1A2A3A4A5A6A7A8A9A10A11A12A13A14A15A16A17A18A19A20A21; then
	ok "the probe ran; every attack between its markers is gone, whole"
else
	not_ok "the probe ran; every attack between its markers is gone, whole"
	grep -a 'A1' "$OUT" | head -3 | od -c | head -20 | sed 's/^/# /'
fi
check "no OSC 52 (clipboard) reaches the terminal" lacks "$OUT" $'\e]52'
check "no CSI 21t (title report)" lacks "$OUT" $'\e[21t'
check "no CSI 20t (icon label report)" lacks "$OUT" $'\e[20t'
check "no DCS" lacks "$OUT" $'\eP'
check "no APC (kitty graphics)" lacks "$OUT" $'\e_'
no_c1() { ! LC_ALL=C grep -aq $'\xc2[\x80-\x9f]' "$1"; }
check "no C1 control (UTF-8 encoded)" no_c1 "$OUT"
check "SGR, OSC 8 hyperlink, OSC 2 title, CSI ?2026 arrive unchanged" \
	has "$OUT" "$GOOD"

# Into a file or a pipe the output is data: unchanged.
timeout --kill-after=10 240 "$CCVM" --shell -- sh ./probe.sh \
	</dev/null >"$T_TMP/file.out" 2>"$T_TMP/file.err"
sh ./probe.sh >"$T_TMP/want.out"
check "output into a file is not filtered (byte for byte)" \
	cmp -s "$T_TMP/want.out" "$T_TMP/file.out"

# The guest's LOG text (printed with --ccvm-debug): the program's name is
# logged as it starts.
NAME=$(printf 'sh\033]52;c;TE9H\007\033[21t')
timeout --kill-after=10 240 "${PTYRUN[@]}" "$T_TMP/log.out" 30 100 -- \
	"$CCVM" --ccvm-debug --shell -- "$NAME"
if has "$T_TMP/log.out" "ccvm: guest: started sh (pid"; then
	ok "the guest's LOG line is printed, its escape sequences removed"
else
	not_ok "the guest's LOG line is printed, its escape sequences removed"
	grep -a 'started' "$T_TMP/log.out" | od -c | head -10 | sed 's/^/# /'
fi
check "no OSC 52 in --ccvm-debug's log and console output" \
	lacks "$T_TMP/log.out" $'\e]52'

# The real agent's full-screen UI in tmux, through the filter: its screen
# renders, and a prompt typed into it is answered by a stand-in of the
# Anthropic API on the host's loopback (as in 35-agent-e2e.sh).
if ! command -v tmux >/dev/null; then
	skip_missing tmux "the agent's UI in tmux" "tmux is not installed"
	done_testing
	exit
fi
fake_home
# Onboarding done and this directory trusted: straight to the prompt.
printf '{"hasCompletedOnboarding": true, "theme": "dark", "projects": {"%s": {"hasTrustDialogAccepted": true}}}\n' \
	"$P" >"$H/.claude.json"
U=$$$RANDOM
MARKER=CCVM-TUI-OK-$U
start_fake_api "$T_TMP/api.log" "$MARKER"
export TMUX_TMPDIR=$T_TMP
S=ccvm-e$$
trap 'tmux kill-server 2>/dev/null; kill $API 2>/dev/null; rm -rf "$T_TMP"' EXIT
dump() { tmux capture-pane -p -t $S | grep -v '^ *$' | sed 's/^/# /'; }
tmux new-session -d -s $S -x 120 -y 40 "bash --norc --noprofile"
tmux pipe-pane -o -t $S "cat >>'$T_TMP/tui.raw'"
tmux send-keys -t $S "ANTHROPIC_BASE_URL=http://127.0.0.1:$PORT ANTHROPIC_API_KEY=sk-ant-test-$U '$CCVM'; echo EXIT=\$?" Enter
if tmux_wait $S 300 'custom API key\|Claude Code v'; then
	if tmux capture-pane -p -t $S | grep -q 'custom API key'; then
		tmux send-keys -t $S Up # "Yes": use the key
		sleep 1
		tmux send-keys -t $S Enter
	fi
fi
if tmux_wait $S 120 'Claude Code v' && tmux_wait $S 60 '^❯'; then
	ok "the agent's full-screen UI renders in tmux (banner, prompt box)"
	tmux send-keys -t $S "say the magic word"
	sleep 2
	tmux send-keys -t $S Enter
	check "a prompt typed into the UI is answered on screen ($MARKER)" \
		tmux_wait $S 240 "$MARKER"
	tmux_wait $S 1 "$MARKER" || dump
else
	not_ok "the agent's full-screen UI renders in tmux (banner, prompt box)"
	dump
fi
check "its title (OSC 0) reaches the terminal" has "$T_TMP/tui.raw" $'\e]0;'
check "its bracketed paste mode (CSI ?2004h) reaches the terminal" \
	has "$T_TMP/tui.raw" $'\e[?2004h'
# The terminal goes away (SIGHUP): ccvm ends the session, nothing left.
tmux kill-session -t $S
for ((i = 0; i < 75; i++)); do
	[ -z "$(leftovers)" ] && break
	sleep 0.2
done
check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
leftovers | sed 's/^/# left: /'
done_testing
