#!/bin/bash
# The host never runs a program from a place the guest can write.  With a
# project directory first on the user's PATH (an activated virtualenv,
# direnv's PATH_add bin), the guest plants xclip, git and
# qemu-system-x86_64 there; a clipboard image request (in that session and
# the next) and the next session's start must run the real programs, never
# the planted ones, and ccvm warns once per session about the PATH entry.
source "$(dirname "$0")/lib.sh"
for tool in Xvfb xclip python3 git; do
	if ! command -v "$tool" >/dev/null; then
		skip_missing "$tool" "planted host programs" "$tool not installed (Debian: xvfb, xclip, git)"
		done_testing
		exit 0
	fi
done
need_image
export CCVM_ACCEL=tcg
unset WAYLAND_DISPLAY CCVM_CLIPBOARD_IMAGES CCVM_QEMU CCVM_XCLIP CCVM_WL_PASTE
P=$(new_project)
cd "$P" || exit 1
MARK=$T_TMP/marks
mkdir -p "$MARK"

# A real X server of our own, its clipboard owned by the real xclip.
start_xvfb
OWNER=
cleanup() {
	kill $OWNER "$XVFB" 2>/dev/null
	rm -rf "$T_TMP"
}
trap cleanup EXIT
printf '\x89PNG\r\n\x1a\nccvm-host-exec-%s' "$RANDOM$RANDOM" >"$T_TMP/img.png"
WANT=$(sha256sum <"$T_TMP/img.png" | cut -d' ' -f1)
/usr/bin/xclip -selection clipboard -t image/png -i -quiet "$T_TMP/img.png" 2>/dev/null &
OWNER=$!
sleep 0.5

# A git config of the user's own that the guest sees when the host's real
# git read it.
export XDG_CONFIG_HOME=$T_TMP/xdg
mkdir -p "$XDG_CONFIG_HOME/git"
NAME="ccvm-probe-$RANDOM$RANDOM"
printf '[user]\n\tname = %s\n' "$NAME" >"$XDG_CONFIG_HOME/git/config"

# The project's bin directory first on PATH, as direnv's PATH_add does.
export PATH=$P/bin:$PATH
TOOLS=(xclip git qemu-system-x86_64)
warnings() { grep -c "warning: PATH entry $P/bin is inside a directory shared with the VM" "$1"; }

# Session 1: the guest plants the programs, then asks for the clipboard.
"$CCVM" --shell -- sh -c '
	mkdir -p bin
	for t in xclip git qemu-system-x86_64; do
		printf "#!/bin/sh\ntouch %s/%s.ran\nexit 1\n" "$1" "$t" >bin/$t
		chmod +x bin/$t
	done
	xclip -selection clipboard -o -t image/png >got1.png
	echo "planted $?"' _ "$MARK" >"$T_TMP/out1" 2>"$T_TMP/err1"
rc=$?
check "session 1 ran and planted the programs (rc=$rc, $(cat "$T_TMP/out1"))" \
	[ "$rc" -eq 0 -a -x "$P/bin/xclip" -a -x "$P/bin/git" -a -x "$P/bin/qemu-system-x86_64" ]
check "session 1: the guest got the clipboard image from the real xclip" \
	[ "$(sha256sum <"$P/got1.png" | cut -d' ' -f1)" = "$WANT" ]
check "session 1: one warning line about the PATH entry ($(warnings "$T_TMP/err1"))" \
	[ "$(warnings "$T_TMP/err1")" = 1 ]

# Session 2: the planted programs are there from the start.
"$CCVM" --shell -- sh -c '
	xclip -selection clipboard -o -t image/png >got2.png
	git config --global user.name' >"$T_TMP/out2" 2>"$T_TMP/err2"
rc=$?
check "session 2 started with the real QEMU (rc=$rc)" [ "$rc" -eq 0 ]
check "session 2: the guest got the clipboard image from the real xclip" \
	[ "$(sha256sum <"$P/got2.png" 2>/dev/null | cut -d' ' -f1)" = "$WANT" ]
check "session 2: the guest's git config came from the real git ($(tr '\n' ' ' <"$T_TMP/out2"))" \
	grep -qx "$NAME" "$T_TMP/out2"
check "session 2: one warning line about the PATH entry ($(warnings "$T_TMP/err2"))" \
	[ "$(warnings "$T_TMP/err2")" = 1 ]
for t in "${TOOLS[@]}"; do
	check "the planted $t never ran on the host" [ ! -e "$MARK/$t.ran" ]
done
[ -s "$T_TMP/err2" ] && sed 's/^/# err2: /' "$T_TMP/err2" | tail -5

# Positive control: run directly, each planted program leaves its marker.
for t in "${TOOLS[@]}"; do
	"$P/bin/$t" >/dev/null 2>&1
	check "control: the planted $t leaves its marker when run" [ -e "$MARK/$t.ran" ]
done
check "no QEMU left behind" [ -z "$(leftovers)" ]
done_testing
