#!/bin/bash
# The guest image: a real build through `ccvm --ccvm-build` into the test
# user's cache (once per test run; later tests reuse it), its contents,
# the cached fast path, an interrupted build, and list/prune.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIN=2.1.332 # CCVM_DEFAULT_PACKAGE's version

missing=""
for t in mmdebstrap npm mksquashfs unsquashfs cpio; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	skip_missing image-build-tools "guest image build" "missing tools:$missing (run .ci/deps)"
	done_testing
	exit
fi

# 1. Build (cold) or reuse the image in the real cache.
t0=$(date +%s.%N)
"$CCVM" --ccvm-build >"$T_TMP/build.out" 2>"$T_TMP/build.err"
rc=$?
t1=$(date +%s.%N)
secs=$(echo "$t1 - $t0" | bc)
if grep -q 'building the guest image' "$T_TMP/build.err"; then
	diag "cold build: ${secs} s"
else
	diag "image was already cached (${secs} s)"
fi
if [ $rc -ne 0 ]; then
	not_ok "ccvm --ccvm-build exits 0 (rc=$rc)"
	sed 's/^/# /' "$T_TMP/build.err" | tail -30
	done_testing
	exit
fi
ok "ccvm --ccvm-build exits 0"

kernel=$(sed -n 's/^kernel //p' "$T_TMP/build.out")
initrd=$(sed -n 's/^initrd //p' "$T_TMP/build.out")
rootfs=$(sed -n 's/^rootfs //p' "$T_TMP/build.out")
dir=$(dirname "$rootfs")
key=$(basename "$dir")
check "kernel, initrd and rootfs paths are in one image dir" \
	test "$(dirname "$kernel")" = "$dir" -a "$(dirname "$initrd")" = "$dir"
check "image files exist and are non-empty" \
	test -s "$kernel" -a -s "$initrd" -a -s "$rootfs" -a -s "$dir/manifest.json" \
	-a -f "$dir/modules/load.list"
check "image dir is named by a 64-hex key" \
	grep -qE '^[0-9a-f]{64}$' <<<"$key"
check "no temp dir left in the cache" \
	test -z "$(find "$(dirname "$dir")" -maxdepth 1 -name '.tmp-*')"
check "the root is squashfs with lz4 (cheap to decompress under TCG)" \
	bash -c "unsquashfs -s '$rootfs' 2>/dev/null | grep -qx 'Compression lz4'"
mib() { echo "$(($(stat -c %s "$1") / 1048576)) MiB"; }
diag "sizes: vmlinux $(mib "$kernel"), root.sqfs $(mib "$rootfs"), initrd $(mib "$initrd")"

# The kernel: an x86-64 ELF (the PVH note is checked by the builder).
check "vmlinux is an ELF file" \
	test "$(head -c4 "$kernel" | od -An -c | tr -d ' ')" = '177ELF'

# claude --version ran inside the built root and printed the pin.
if command -v jq >/dev/null; then
	v=$(jq -r .claudeVersionOutput "$dir/manifest.json")
	diag "claude --version in the root: $v"
	check "claude --version in the built root printed $PIN" \
		grep -q "^$PIN " <<<"$v"
	check "manifest records the key and kernel version" \
		test "$(jq -r .key "$dir/manifest.json")" = "$key" -a \
		-n "$(jq -r '.kernelVersion // empty' "$dir/manifest.json")"
else
	check "claude --version in the built root printed $PIN" \
		grep -q "\"claudeVersionOutput\": \"$PIN " "$dir/manifest.json"
fi

# The root file system's contents.
unsquashfs -lln "$rootfs" >"$T_TMP/ls" 2>&1
check "claude is /usr/local/bin/claude, root-owned and executable" \
	grep -qE '^-rwxr-xr-x 0/0 +[0-9]+ .* squashfs-root/usr/local/bin/claude$' "$T_TMP/ls"
check "squashfs root directory is owned by root" \
	grep -qE '^drwxr-xr-x 0/0 .* squashfs-root$' "$T_TMP/ls"
check "no file in the root is owned by the building user" \
	bash -c "! awk '{print \$2}' '$T_TMP/ls' | grep -q '^$(id -u)/'"
check "agent sudo is on: /etc/sudoers.d/ccvm-sudo is 0440" \
	grep -qE '^-r--r----- 0/0 .* squashfs-root/etc/sudoers.d/ccvm-sudo$' "$T_TMP/ls"
for p in bin/bash bin/git bin/rg usr/bin/sudo usr/sbin/nft sbin/dmsetup \
	sbin/mke2fs usr/bin/curl usr/bin/less bin/ip; do
	grep -qE " squashfs-root/(usr/)?$p\$" "$T_TMP/ls" || missing_p="${missing_p:-} $p"
done
check "the agent's tools are in the root${missing_p:+ (missing:$missing_p)}" \
	test -z "${missing_p:-}"
check "terminfo is in the root" \
	grep -qE 'squashfs-root/(usr/share|usr/lib|lib)/terminfo/x/xterm-256color$' "$T_TMP/ls"
check "no kernel, modules, docs or man pages in the root" \
	bash -c "! grep -E '^-' '$T_TMP/ls' | grep -qE 'squashfs-root/(boot/vmlinuz|usr/lib/modules/[0-9]|usr/share/man/man1/|usr/share/doc/git/[^c])'"
check "the host's resolv.conf is not in the root" \
	bash -c "! grep -q 'squashfs-root/etc/resolv.conf' '$T_TMP/ls'"
hn=$(unsquashfs -cat "$rootfs" etc/hostname 2>/dev/null)
check "hostname is ccvm" test "$hn" = ccvm
# ccvm-init pages in the loader, libc and the account files by fixed paths
# (mount.c): all of them must be regular files in this root.  It logs so
# in a boot, not in a restored one (snap.h).
(cd "$T_TMP" && CCVM_SAVED_BOOT=0 "$CCVM" --ccvm-debug --shell -- true) >"$T_TMP/pf.out" 2>&1
check "ccvm-init's prefetch finds all its files ($(grep -o 'prefetched [0-9]* of [0-9]*' "$T_TMP/pf.out"))" \
	grep -q 'prefetched 5 of 5 files' "$T_TMP/pf.out"

# The initramfs: /init plus the listed modules, in a newc cpio.
# check_modules IMAGE-DIR INITRD: Debian's stock kernel and its modules.
check_modules() {
	cpio -it <"$2" >"$T_TMP/cpio" 2>/dev/null
	check "initramfs holds /init" grep -qx init "$T_TMP/cpio"
	nmods=$(wc -l <"$1/modules/load.list")
	have=0
	while read -r m; do
		grep -qx "lib/modules/ccvm/$m" "$T_TMP/cpio" && have=$((have + 1))
	done <"$1/modules/load.list"
	check "stock kernel: initramfs holds all $nmods listed modules" \
		test "$have" -eq "$nmods" -a "$nmods" -gt 20
	check "stock kernel: virtio_ring loads before virtio_pci, jbd2 before ext4" \
		bash -c "grep -n . '$1/modules/load.list' | awk -F: '
			/:virtio_ring.ko\$/ {r=\$1} /:virtio_pci.ko\$/ {p=\$1}
			/:jbd2.ko\$/ {j=\$1} /:ext4.ko\$/ {e=\$1}
			END {exit !(r && p && r < p && j && e && j < e)}'"
}
kind=$(jq -r '.kernel // "stock"' "$dir/manifest.json" 2>/dev/null)
diag "kernel: $kind $(jq -r .kernelVersion "$dir/manifest.json" 2>/dev/null)"
if [ -f /usr/src/linux-source-6.1.tar.xz ]; then
	check "with linux-source-6.1 installed the image has ccvm's own kernel" \
		test "$kind" = custom
fi
if [ "$kind" = custom ]; then
	kkey=$(jq -r .kernelKey "$dir/manifest.json")
	kdir=$(dirname "$(dirname "$dir")")/kernels/$kkey
	diag "kernel build: $(jq -r .buildSeconds "$kdir/kernel.json" 2>/dev/null) s"
	check "the built kernel is cached in kernels/ and is the image's vmlinux" \
		cmp -s "$kdir/vmlinux" "$kernel"
	patch=${CCVM_SRC:-.}/src/host/image/guest-kernel.patch
	check "it was built with ccvm's kernel patch" \
		test "$(jq -r .patchSha256 "$kdir/kernel.json")" = \
		"$(sha256sum <"$patch" | cut -d' ' -f1)"
	check "its release is a -ccvm one" \
		grep -q -- '-ccvm$' <<<"$(jq -r .kernelVersion "$dir/manifest.json")"
	check "ccvm's kernel has nothing to load: load.list is empty" \
		test ! -s "$dir/modules/load.list"
	cpio -it <"$initrd" >"$T_TMP/cpio" 2>/dev/null
	check "initramfs holds /init and no module" \
		bash -c "grep -qx init '$T_TMP/cpio' && ! grep -q '\.ko\$' '$T_TMP/cpio'"
	# The stock kernel stays available (CCVM_STOCK_KERNEL, a separate
	# image): built here once, later runs reuse it.
	CCVM_STOCK_KERNEL=1 "$CCVM" --ccvm-build >"$T_TMP/stock.out" 2>"$T_TMP/stock.err"
	rc=$?
	srootfs=$(sed -n 's/^rootfs //p' "$T_TMP/stock.out")
	sdir=$(dirname "$srootfs")
	check "CCVM_STOCK_KERNEL=1 --ccvm-build exits 0 (rc=$rc)" test $rc -eq 0
	check "the stock-kernel image is another image" \
		test -n "$srootfs" -a "$sdir" != "$dir"
	check "it says it uses the stock kernel" \
		bash -c "grep -q CCVM_STOCK_KERNEL '$T_TMP/stock.err' || ! grep -q building '$T_TMP/stock.err'"
	check "its manifest says stock" \
		test "$(jq -r .kernel "$sdir/manifest.json" 2>/dev/null)" = stock
	check_modules "$sdir" "$(sed -n 's/^initrd //p' "$T_TMP/stock.out")"
	# ...and its network worker loads the netfilter modules, then the
	# redirect rules over nfnetlink (nfrules.c).
	(cd "$T_TMP" && CCVM_STOCK_KERNEL=1 "$CCVM" --shell -- sh -c 'grep -q "^virtio_blk " /proc/modules && echo stock-ok
		for i in $(seq 100); do sudo -n nft list table inet ccvm >/dev/null 2>&1 && break; sleep 0.2; done
		echo "rules $(sudo -n nft list ruleset | grep -c "redirect to :999")"') \
		>"$T_TMP/stock.run" 2>&1
	check "a session boots with the stock kernel and its modules" \
		grep -q stock-ok "$T_TMP/stock.run"
	check "with the stock kernel the redirect rules are in ($(grep '^rules' "$T_TMP/stock.run"))" \
		grep -qx 'rules 2' "$T_TMP/stock.run"
else
	check_modules "$dir" "$initrd"
fi

# The kernel boots through its PVH entry and runs our /init.
if command -v qemu-system-x86_64 >/dev/null; then
	qemu-system-x86_64 -accel tcg -M pc -m 512 -nodefaults -nographic \
		-serial "file:$T_TMP/console" -no-reboot -kernel "$kernel" \
		-initrd "$initrd" -append "console=ttyS0 panic=-1" \
		</dev/null >/dev/null 2>&1 &
	qpid=$!
	for _ in $(seq 1 120); do
		grep -q 'Run /init as init process' "$T_TMP/console" 2>/dev/null && break
		kill -0 $qpid 2>/dev/null || break
		sleep 0.5
	done
	kill $qpid 2>/dev/null
	wait $qpid 2>/dev/null
	check "vmlinux boots (PVH) and runs /init from the initramfs" \
		grep -q 'Run /init as init process' "$T_TMP/console"
else
	skip_missing qemu "vmlinux boots and runs /init" "qemu-system-x86_64 not installed"
fi

# 2. Cached: a second --ccvm-build builds nothing and is fast.
mtime=$(stat -c %Y "$dir/manifest.json")
t0=$(date +%s.%N)
"$CCVM" --ccvm-build >"$T_TMP/b2.out" 2>"$T_TMP/b2.err"
rc=$?
secs=$(echo "$(date +%s.%N) - $t0" | bc)
diag "cached --ccvm-build: ${secs} s"
check "cached --ccvm-build exits 0" test $rc -eq 0
check "cached --ccvm-build builds nothing" \
	bash -c "! grep -q building '$T_TMP/b2.err' && test $mtime = \$(stat -c %Y '$dir/manifest.json')"
check "cached --ccvm-build takes under 2 s" \
	test "$(echo "$secs < 2" | bc)" = 1

# A missing initramfs (say, after a ccvm-init update) is rebuilt alone.
mv "$initrd" "$T_TMP/initrd.save"
"$CCVM" --ccvm-build >/dev/null 2>"$T_TMP/b3.err"
check "a missing initramfs is rebuilt without rebuilding the root" \
	bash -c "test -s '$initrd' && cmp -s '$initrd' '$T_TMP/initrd.save' && ! grep -q building '$T_TMP/b3.err'"

# 3. An interrupted build (Ctrl-C) leaves nothing behind and says so in
# one line, exit 130 (issue 25 item 3).
export XDG_CACHE_HOME="$T_TMP/xdg"
images="$XDG_CACHE_HOME/ccvm/images"
ls -d /tmp/mmdebstrap.* 2>/dev/null | sort >"$T_TMP/mm.before"
# build_until N FILE: a --ccvm-build in the background (pid in $bpid, stderr
# in FILE) once it is inside step N.
build_until() {
	"$CCVM" --ccvm-build >/dev/null 2>"$2" &
	bpid=$!
	for _ in $(seq 1 240); do
		grep -q "\[$1/7\]" "$2" 2>/dev/null && break
		kill -0 $bpid 2>/dev/null || break
		sleep 0.5
	done
}
build_until 3 "$T_TMP/int.err"
sleep 8 # well inside mmdebstrap
lines_before=$(wc -l <"$T_TMP/int.err")
kill -INT $bpid
t0=$(date +%s)
wait $bpid
rc=$?
diag "interrupted build ($(($(date +%s) - t0)) s): $(tail -n +$((lines_before + 1)) "$T_TMP/int.err" | tr '\n' '|')"
check "an interrupted build exits 130 (rc=$rc)" test $rc -eq 130
check "it says so in one line: image build interrupted; nothing kept" \
	bash -c '[ "$(tail -n +$(($2 + 1)) "$1")" = "ccvm: image build interrupted; nothing kept" ]' _ "$T_TMP/int.err" "$lines_before"
check "an interrupted build leaves no temp dir, image or log" \
	test -z "$(find "$images" -mindepth 1 -maxdepth 1 ! -name .lock 2>/dev/null)"
sleep 1
ls -d /tmp/mmdebstrap.* 2>/dev/null | sort >"$T_TMP/mm.after"
check "an interrupted build leaves no mmdebstrap temp dir" \
	test -z "$(comm -13 "$T_TMP/mm.before" "$T_TMP/mm.after")"
# The processes of a build in $images (not a check's own command line).
build_procs() { pgrep -u "$(id -u)" -f "$images" | while read -r p; do ps -o pid=,args= -p "$p"; done; }
left=$(build_procs)
check "no process of the interrupted build is left (${left:-none})" test -z "$left"
# A second Ctrl-C ends ccvm at once; the next build removes the leftovers.
build_until 3 "$T_TMP/int2.err"
sleep 8
kill -INT $bpid
sleep 0.3
t0=$(date +%s%N)
kill -INT $bpid
wait $bpid
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
check "a second Ctrl-C ends the build at once (rc=$rc, ${ms} ms)" \
	bash -c '[ "$1" -eq 130 ] && [ "$2" -lt 1000 ]' _ "$rc" "$ms"
check "... saying so" grep -q "image build stopped at once" "$T_TMP/int2.err"
for _ in $(seq 1 50); do [ -z "$(build_procs)" ] && break; sleep 0.2; done
left=$(build_procs)
check "... and its children end with it (${left:-none})" test -z "$left"
build_until 1 "$T_TMP/int3.err"
kill -INT $bpid
wait $bpid
check "the next build removes what the stopped one left" \
	bash -c 'grep -q "removed an interrupted build" "$1" && test -z "$(find "$2" -mindepth 1 -maxdepth 1 ! -name .lock)"' _ "$T_TMP/int3.err" "$images"

# A stale temp dir from a killed build is removed by the next build
# (checked through prune, which takes the same lock and cleans the same).
kernels="$XDG_CACHE_HOME/ccvm/kernels"
old=deadbeef$(printf '0%.0s' {1..56}) # an old image's key (64 hex digits)
mkdir -p "$images/.tmp-stale1/out" "$images/$old" "$images/$key" \
	"$kernels/.tmp-stale2/linux-source-6.1" "$kernels/feedface0000"
echo failed >"$kernels/feedface0001.failed"
echo '{"built": "2020-01-01T00:00:00Z"}' >"$images/$old/manifest.json"
echo "a failed build's log" >"$images/failed-build.log"
echo '{"built": "2026-01-01T00:00:00Z"}' >"$images/$key/manifest.json"
"$CCVM" --ccvm-images >"$T_TMP/list" 2>&1
check "--ccvm-images marks the current image" \
	grep -qE "^\* ${key:0:16} " "$T_TMP/list"
check "--ccvm-images lists the old image" grep -qE '^  deadbeef00000000 ' "$T_TMP/list"
check "--ccvm-images lists no failed build's log and no temp dir as an image" \
	bash -c '! grep -qE "failed-build|\.tmp-" "$1"' _ "$T_TMP/list"
"$CCVM" --ccvm-prune >"$T_TMP/prune" 2>&1
check "--ccvm-prune removes old images and stale temp dirs, keeps the current" \
	test ! -e "$images/$old" -a ! -e "$images/.tmp-stale1" -a -d "$images/$key"
check "--ccvm-prune removes kernels the current image does not use, failure marks, stale kernel builds" \
	test ! -e "$kernels/feedface0000" -a ! -e "$kernels/feedface0001.failed" -a ! -e "$kernels/.tmp-stale2"

done_testing
