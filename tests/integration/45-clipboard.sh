#!/bin/bash
# clipboard.images: the guest's xclip and wl-paste paste images from the
# host's clipboard (a real X server, Xvfb, with xclip as the owner), byte for
# byte, and never text; with the option off, nothing, and no tool runs.
source "$(dirname "$0")/lib.sh"
for tool in Xvfb xclip python3; do
	if ! command -v "$tool" >/dev/null; then
		skip_missing "$tool" "clipboard image paste" "$tool not installed (Debian: xvfb, xclip)"
		done_testing
		exit 0
	fi
done
need_image
export CCVM_ACCEL=tcg
unset WAYLAND_DISPLAY CCVM_CLIPBOARD_IMAGES CCVM_XCLIP
P=$(new_project)
cd "$P" || exit 1

# A real X server of our own.
start_xvfb
OWNERS=()
cleanup() {
	kill "${OWNERS[@]}" "$XVFB" 2>/dev/null
	rm -rf "$T_TMP"
}
trap cleanup EXIT

# Every xclip ccvm runs goes through this wrapper, which logs its argv
# (named by CCVM_XCLIP: a PATH entry the user owns is not searched).
mkdir -p "$T_TMP/bin"
LOG=$T_TMP/xclip.log
: >"$LOG"
cat >"$T_TMP/bin/xclip" <<EOF
#!/bin/sh
echo "\$*" >> "$LOG"
exec $(command -v xclip) "\$@"
EOF
chmod +x "$T_TMP/bin/xclip"
export CCVM_XCLIP=$T_TMP/bin/xclip

# A PNG of random pixels, large enough to take many frames (~480 KB).
python3 - "$T_TMP/img.png" <<'PYEOF'
import os, struct, sys, zlib
w = h = 400
raw = b"".join(b"\0" + os.urandom(w * 3) for _ in range(h))
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
       + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
open(sys.argv[1], "wb").write(png)
PYEOF
WANT=$(sha256sum <"$T_TMP/img.png" | cut -d' ' -f1)
TEXT="ccvm-clip-text-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"

# Owns the clipboard with file $2's content, as type $1 ("": text).
own() {
	/usr/bin/xclip -selection clipboard ${1:+-t "$1"} -i -quiet "$2" 2>/dev/null &
	OWNERS+=($!)
}
own image/png "$T_TMP/img.png"
sleep 0.5
check "the host clipboard holds the image" \
	bash -c '[ "$(/usr/bin/xclip -selection clipboard -o -t image/png | sha256sum | cut -d" " -f1)" = "$1" ]' _ "$WANT"

wait_file() { local i; for ((i = 0; i < $2 * 5; i++)); do [ -e "$1" ] && return 0; sleep 0.2; done; return 1; }
wait_gone() { local i; for ((i = 0; i < $2 * 5; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done; return 1; }

# The guest records exit code, stdout and stderr of each command.
cat >guest.sh <<'GEOF'
r() { n=$1; shift; "$@" >"out.$n" 2>"err.$n"; echo $? >"rc.$n"; }
r which sh -c 'command -v xclip; command -v wl-paste'
r targets xclip -selection clipboard -o -t TARGETS
r png xclip -selection clipboard -o -t image/png
r wllist wl-paste --list-types
r wlpng wl-paste --type image/png
r jpeg xclip -selection clipboard -o -t image/jpeg
r primary xclip -o -t image/png
r copyin sh -c 'echo x | xclip -selection clipboard -i'
touch phase1
while [ ! -e go2 ]; do sleep 0.2; done
r ttargets xclip -selection clipboard -o -t TARGETS
r tutf8 xclip -selection clipboard -o -t UTF8_STRING
r tplain xclip -selection clipboard -o -t text/plain
r tdefault xclip -selection clipboard -o
r tpng xclip -selection clipboard -o -t image/png
r twl wl-paste
r twlplain wl-paste --type text/plain
r twllist wl-paste -l
touch phase2
GEOF
rm -f phase1 phase2 go2
"$CCVM" --shell -- sh guest.sh >"$T_TMP/out" 2>"$T_TMP/err" &
PID=$!
rc_of() { cat "rc.$1" 2>/dev/null; }
if wait_file phase1 240; then
	check "the stand-ins are first on the agent's PATH ($(tr '\n' ' ' <out.which))" \
		[ "$(cat out.which)" = $'/run/ccvm-bin/xclip\n/run/ccvm-bin/wl-paste' ]
	check "xclip TARGETS lists the image type only ($(tr '\n' ' ' <out.targets))" \
		[ "$(rc_of targets):$(cat out.targets)" = "0:image/png" ]
	check "xclip -t image/png: the guest gets the image byte for byte (rc $(rc_of png), $(stat -c %s out.png) bytes)" \
		[ "$(rc_of png):$(sha256sum <out.png | cut -d' ' -f1)" = "0:$WANT" ]
	check "wl-paste --list-types lists the image type" \
		[ "$(rc_of wllist):$(cat out.wllist)" = "0:image/png" ]
	check "wl-paste --type image/png: the same bytes" \
		[ "$(rc_of wlpng):$(sha256sum <out.wlpng | cut -d' ' -f1)" = "0:$WANT" ]
	check "a type not on the clipboard: exit 1, no data, xclip's message ($(cat err.jpeg))" \
		[ "$(rc_of jpeg):$(wc -c <out.jpeg):$(cat err.jpeg)" = "1:0:Error: target image/jpeg not available" ]
	check "the PRIMARY selection: nothing" [ "$(rc_of primary):$(wc -c <out.primary)" = "1:0" ]
	check "copying in is refused" [ "$(rc_of copyin)" = 1 ]
	check "host ran xclip for TARGETS and the image only" \
		[ "$(sort -u "$LOG")" = "$(printf '%s\n' '-selection clipboard -o -t TARGETS' '-selection clipboard -o -t image/jpeg' '-selection clipboard -o -t image/png')" ]

	# Now the clipboard holds text.
	echo "$TEXT" >"$T_TMP/text"
	own "" "$T_TMP/text"
	sleep 0.5
	check "the host clipboard now holds the text" \
		[ "$(/usr/bin/xclip -selection clipboard -o)" = "$TEXT" ]
	: >"$LOG"
	touch go2
	if wait_file phase2 120; then
		for n in ttargets tutf8 tplain tdefault tpng twl twlplain twllist; do
			check "text on the clipboard: '$n' gets nothing (rc $(rc_of $n), $(wc -c <out.$n) bytes)" \
				[ "$(rc_of $n):$(wc -c <out.$n)" = "1:0" ]
		done
		check "xclip -o without -t says UTF8_STRING is not available" \
			[ "$(cat err.tdefault)" = "Error: target UTF8_STRING not available" ]
		check "wl-paste without a type: 'No suitable type of content copied'" \
			[ "$(cat err.twl)" = "No suitable type of content copied" ]
		# The text owner answers image/png with the text: the host
		# looked (TARGETS and image/png only) and kept it.
		check "host never asked for a text type ($(sort -u "$LOG" | tr '\n' ';'))" \
			bash -c '! grep -Eq "UTF8_STRING|text/|STRING\$" "$1" && grep -q "image/png" "$1"' _ "$LOG"
	else
		not_ok "guest finished the text phase"
	fi
	if wait_gone "$PID" 60; then
		wait "$PID"; rc=$?
		check "the session ends normally (rc=$rc)" [ $rc -eq 0 ]
	else
		not_ok "the session ends"; kill -9 "$PID"
	fi
	check "the text never appears in guest output or files" \
		bash -c '! grep -rqaF "$1" "$2" "$3" "$4"' _ "$TEXT" "$P" "$T_TMP/out" "$T_TMP/err"
else
	not_ok "the clipboard session started"; sed 's/^/# /' "$T_TMP/err" | tail -20
	kill -9 "$PID" 2>/dev/null
fi

# --- clipboard.images off: nothing, and no tool runs on the host -----------
own image/png "$T_TMP/img.png"
sleep 0.5
: >"$LOG"
out=$(CCVM_CLIPBOARD_IMAGES=0 "$CCVM" --shell -- sh -c '
	for t in image/png TARGETS; do
		xclip -selection clipboard -o -t $t >/tmp/o; echo "rc $? $(wc -c </tmp/o)"
	done
	wl-paste --type image/png >/tmp/o; echo "rc $? $(wc -c </tmp/o)"
	wl-paste -l >/tmp/o; echo "rc $? $(wc -c </tmp/o)"' 2>"$T_TMP/err")
diag "off: $(tr '\n' ' ' <<<"$out")"
check "CCVM_CLIPBOARD_IMAGES=0: every request fails with no bytes" \
	[ "$(echo $out)" = "rc 1 0 rc 1 0 rc 1 0 rc 1 0" ]
check "CCVM_CLIPBOARD_IMAGES=0: the host never ran a clipboard tool" [ ! -s "$LOG" ]
check "CCVM_CLIPBOARD_IMAGES=0: the guest says no image is there" \
	grep -q "target image/png not available" "$T_TMP/err"

skip_missing headless-wayland "Wayland (wl-paste on the host)" \
	"no Wayland compositor that can own a clipboard runs headless here; the host's Wayland argv, environment and type filter are unit tests (test_clip)"
check "no QEMU left behind" [ -z "$(leftovers)" ]
done_testing
