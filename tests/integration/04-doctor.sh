#!/bin/bash
# ccvm --ccvm-doctor: one line per check, real findings (a fake QEMU's
# version, a missing QEMU, a lowered RLIMIT_MEMLOCK, a cached image, a
# clipboard tool), exit 0 exactly when no check fails, and fast.  No VM.
. "$(dirname "$0")/lib.sh"

H=$T_TMP/home
FAKE=$T_TMP/bin
mkdir -p "$H" "$FAKE"
# The user's own cache (where 10-image builds the image), before the
# doctor gets an empty one of its own.
REAL_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}
export XDG_CACHE_HOME=$T_TMP/cache
DOCTOR_PATH=$FAKE:/usr/bin:/bin

# doctor [NAME=VALUE...]: runs the doctor in a clean environment; sets RC,
# OUT, ERR and MS (wall time).
doctor() {
	local t0 t1
	t0=$(date +%s%N)
	env -i PATH="$DOCTOR_PATH" HOME="$H" XDG_CACHE_HOME="$XDG_CACHE_HOME" \
		"$@" "$CCVM" --ccvm-doctor >"$T_TMP/out" 2>"$T_TMP/err"
	RC=$?
	t1=$(date +%s%N)
	MS=$(((t1 - t0) / 1000000))
	OUT=$(cat "$T_TMP/out")
	ERR=$(cat "$T_TMP/err")
}
line() { grep -E "^[a-zA-Z]+ +$1 " <<<"$OUT"; }
# The doctor ran to its end: a line per check and the closing verdict.
reported() { grep -q '^ccvm can' <<<"$OUT" && [ "$(grep -c . <<<"$OUT")" -gt 13 ]; }
verdict() { line "$1" | awk '{print $1}'; }
consistent() { # the doctor reported, and its exit status matches the FAIL lines
	reported || return 1
	if grep -q '^FAIL' <<<"$OUT"; then [ "$RC" -eq 1 ]; else [ "$RC" -eq 0 ]; fi
}

doctor CCVM_ACCEL=tcg
check "doctor runs in under 2 s (${MS} ms)" test "$MS" -lt 2000
quiet() { reported && [ -z "$ERR" ]; }
check "doctor reports, and writes nothing to stderr ($ERR)" quiet
# The environment given is the one the doctor used: HOME names the config
# file, XDG_CACHE_HOME the image cache.
check "the planted HOME and XDG_CACHE_HOME reached the doctor ($(line config | head -c 80))" \
	bash -c 'grep -qF " $1/.config/ccvm/" <<<"$3" && grep -qF "($2/ccvm/images/" <<<"$4"' \
	_ "$H" "$XDG_CACHE_HOME" "$(line config)" "$(line image)"
names=(user config qemu firmware kvm memlock image "build tools" subids kernel
	disk scratch clipboard)
bad=()
for n in "${names[@]}"; do
	[ "$(line "$n" | wc -l)" -eq 1 ] || bad+=("$n")
done
check "one line per check (${bad[*]:-})" test ${#bad[@]} -eq 0
malformed=$(grep -vE '^(ok|warn|FAIL|skip) +[a-z ]+ +[^ ]' <<<"$OUT" |
	grep -v '^ccvm can' | head -2)
well_formed() { reported && [ -z "$malformed" ]; }
check "every line is VERDICT CHECK DETAIL ($malformed)" well_formed
check "exit status is 1 exactly when a check fails (rc $RC)" consistent
check "kvm is not probed with acceleration tcg" test "$(verdict kvm)" = skip
check "an empty cache: image not built, with what to do" \
	test "$(verdict image)" = warn -a -n "$(line image | grep -e '--ccvm-build')"
check "the cache's disk space is reported" test "$(verdict disk)" = ok
if [ -f /usr/src/linux-source-6.1.tar.xz ] && command -v make gcc bc bison flex >/dev/null &&
	[ -f /usr/include/gelf.h ] && [ -f /usr/include/openssl/opensslv.h ]; then
	check "kernel: with the source and tools, ccvm's own kernel" test "$(verdict kernel)" = ok
fi
doctor CCVM_ACCEL=tcg CCVM_STOCK_KERNEL=1
check "kernel: CCVM_STOCK_KERNEL=1 means the stock kernel, said as a warning" \
	test "$(verdict kernel)" = warn -a -n "$(line kernel | grep CCVM_STOCK_KERNEL)"

# The QEMU line comes from running the binary.
printf '#!/bin/sh\necho "QEMU emulator version 9.8.7 (fake)"\n' >"$FAKE/qemu-system-x86_64"
chmod +x "$FAKE/qemu-system-x86_64"
# The canary: in the doctor's environment, PATH finds the fake first (and
# it runs), so that the check below has something to ignore.
canary=$(env -i PATH="$DOCTOR_PATH" sh -c 'command -v qemu-system-x86_64')
[ "$canary" != "$FAKE/qemu-system-x86_64" ] || canary="$canary: $("$canary")"
check "qemu: the fake QEMU is first on the PATH the doctor gets ($canary)" \
	test "$canary" = "$FAKE/qemu-system-x86_64: QEMU emulator version 9.8.7 (fake)"
doctor CCVM_ACCEL=tcg
check "qemu: one in a PATH directory of the user's is not used ($(line qemu))" \
	bash -c '[ -n "$1" ] && ! grep -qF "$2/" <<<"$1" && ! grep -q 9.8.7 <<<"$1"' \
	_ "$(line qemu | grep -E '^(ok|FAIL) +qemu +/')" "$FAKE"
doctor CCVM_ACCEL=tcg CCVM_QEMU="$FAKE/qemu-system-x86_64"
check "qemu: the version comes from running the binary (CCVM_QEMU)" \
	test -n "$(line qemu | grep -F "$FAKE/qemu-system-x86_64: QEMU emulator version 9.8.7")"
rm -f "$FAKE/qemu-system-x86_64"

doctor CCVM_ACCEL=tcg CCVM_QEMU=/nonexistent/qemu
check "a missing QEMU is a failure with a fix, exit 1" \
	test "$(verdict qemu)" = FAIL -a "$RC" -eq 1 \
	-a -n "$(line qemu | grep -F CCVM_QEMU)"

printf '#!/bin/sh\nexec sleep 30\n' >"$T_TMP/hang"
chmod +x "$T_TMP/hang"
doctor CCVM_ACCEL=tcg CCVM_QEMU="$T_TMP/hang"
check "a QEMU that hangs fails the check and the doctor still ends (${MS} ms)" \
	test "$(verdict qemu)" = FAIL -a "$MS" -lt 4000

# lockGuestMemory against a lowered RLIMIT_MEMLOCK.
if [ "$(id -u)" -eq 0 ]; then
	skip "memlock failure" "root has CAP_IPC_LOCK: the limit does not apply"
else
	(ulimit -l 64 && doctor CCVM_ACCEL=tcg CCVM_MLOCK=1 && echo "$RC" >"$T_TMP/rc" &&
		echo "$OUT" >"$T_TMP/o2")
	OUT=$(cat "$T_TMP/o2")
	check "lockGuestMemory with RLIMIT_MEMLOCK 64 KiB fails the memlock check" \
		test "$(verdict memlock)" = FAIL -a "$(cat "$T_TMP/rc")" -eq 1
fi
doctor CCVM_ACCEL=tcg
check "memlock is skipped when lockGuestMemory is off" test "$(verdict memlock)" = skip

# A complete image directory for the current options is "cached".  Which
# directory that is comes from elsewhere than the doctor: the image root
# from --ccvm-images, the key from the image built in the user's own cache
# (10-image) when there is one for these options, and in every case
# --ccvm-images marking the planted directory as the current one.
# images CACHE: --ccvm-images with the doctor's options, cache CACHE.
images() {
	env -i PATH="$DOCTOR_PATH" HOME="$H" XDG_CACHE_HOME="$1" "$CCVM" --ccvm-images 2>/dev/null
}
root=$(images "$XDG_CACHE_HOME" | sed -n 's/^no guest images in //p; s/.*; in \(.*\))$/\1/p')
check "--ccvm-images names the image root under XDG_CACHE_HOME ($root)" \
	test "$root" = "$XDG_CACHE_HOME/ccvm/images"
prefix=$(images "$REAL_CACHE" | awk '$1 == "*" && !/incomplete/ {print $2}')
key=
if [ -n "$prefix" ]; then
	key=$(cd "$REAL_CACHE/ccvm/images" 2>/dev/null &&
		printf '%s\n' "$prefix"* | grep -E '^[0-9a-f]{64}$')
fi
doctor CCVM_ACCEL=tcg
named=$(line image | sed -n 's/.*options (\([^)]*\)).*/\1/p')
if [ -n "$key" ] && [ "$(wc -l <<<"$key")" -eq 1 ]; then
	want=$root/$key src="the image built in $REAL_CACHE"
	check "the doctor names the directory of the image built for these options ($key)" \
		test "$named" = "$want"
else
	# No image built for these options yet (10-image comes later in
	# a full run): the planted directory is the doctor's, and only
	# --ccvm-images below vouches for it.
	want=$named src=
	under_root() { [ "${named%/*}" = "$root" ] && [[ ${named##*/} =~ ^[0-9a-f]{64}$ ]]; }
	check "the doctor names a directory under the image root, by a 64-hex key ($named)" under_root
fi
diag "image directory: $want (key from ${src:-the doctor, vouched for by --ccvm-images})"
# plant DIR: the files that make an image directory complete.
plant() {
	mkdir -p "$1/modules"
	touch "$1/vmlinux" "$1/root.sqfs" "$1/modules/load.list"
	printf '{"key": "%s"}\n' "${1##*/}" >"$1/manifest.json"
}
# marked KEY: --ccvm-images lists KEY, complete, as the current options'.
marked() {
	images "$XDG_CACHE_HOME" | grep -E "^\* ${1:0:16} " | grep -qv incomplete
}
if [ -n "$want" ] && [ -n "$root" ]; then
	decoy=$root/$(printf '%064d' 0)
	[ "$want" != "$decoy" ] || decoy=$root/$(printf '%064d' 1)
	plant "$decoy"
	doctor CCVM_ACCEL=tcg
	check "a complete image under another key is not reported as cached ($(verdict image))" \
		test "$(verdict image)" = warn
	rm -rf "$decoy"
	plant "$want"
	check "--ccvm-images marks the planted directory as the current options' image" \
		marked "${want##*/}"
	doctor CCVM_ACCEL=tcg
	check "an image in the cache for these options is reported as cached, by its directory" \
		test "$(verdict image)" = ok -a -n "$(line image | grep -F "cached for these options: $want")"
	rm -rf "$want"
else
	not_ok "the image directory is known (root '$root', doctor's line: $(line image))"
fi

# Clipboard tools, only when image paste is on and there is a display.
doctor CCVM_ACCEL=tcg CCVM_CLIPBOARD_IMAGES=0
check "clipboard skipped with CCVM_CLIPBOARD_IMAGES=0" test "$(verdict clipboard)" = skip
if command -v xclip >/dev/null; then
	skip_missing host-without-xclip "xclip missing is a warning" "xclip is installed on this host"
else
	doctor CCVM_ACCEL=tcg DISPLAY=:99
	check "DISPLAY without xclip: a warning naming the package" \
		test "$(verdict clipboard)" = warn -a -n "$(line clipboard | grep xclip)"
	printf '#!/bin/sh\nexit 0\n' >"$FAKE/xclip"
	chmod +x "$FAKE/xclip"
	doctor CCVM_ACCEL=tcg DISPLAY=:99 CCVM_XCLIP="$FAKE/xclip"
	check "DISPLAY with CCVM_XCLIP: ok" test "$(verdict clipboard)" = ok
	rm -f "$FAKE/xclip"
fi

# acceleration=kvm makes an unusable KVM a failure, auto only a warning.
doctor CCVM_ACCEL=kvm
k=$(verdict kvm)
check "acceleration kvm: the kvm check is ok or FAIL ($k), exit consistent" \
	test "$k" = ok -o "$k" = FAIL
check "exit status consistent with acceleration kvm" consistent
doctor CCVM_ACCEL=auto
k=$(verdict kvm)
check "acceleration auto: the kvm check is ok or warn ($k) (${MS} ms)" \
	test "$k" = ok -o "$k" = warn

env -i PATH=/usr/bin:/bin HOME="$H" "$CCVM" --ccvm-doctor extra >/dev/null 2>"$T_TMP/err"
check "--ccvm-doctor takes no other arguments (exit 2)" test $? -eq 2
done_testing
