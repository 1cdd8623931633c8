#!/bin/bash
# A damaged cache (docs/failures.md, "The cache is damaged"): a truncated or
# altered image file, initramfs or saved boot is found before the boot, said
# in one line, and rebuilt or removed; never a boot of damaged files.  Real
# VMs under TCG, on a copy of the cache (copy_image_cache): the real one is
# never damaged.  Where the image must be built again, the test stops the
# build once it has started (a build takes ten minutes here).
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
C=$T_TMP/cache
cv() { XDG_CACHE_HOME=$C "$CCVM" "$@"; }

# A fresh copy of the image: sets IMG (its directory) and KK (the cached
# kernel's key, or "").
fresh() {
	rm -rf "$C"
	IMG=$(copy_image_cache "$C") || {
		not_ok "the image is copied for the test"
		done_testing
		exit 1
	}
	KK=$(sed -n 's/^ *"kernelKey": "\([0-9a-f]*\)".*/\1/p' "$IMG/manifest.json")
}

# wait_for FILE PATTERN SECS: FILE has a line matching PATTERN.
wait_for() {
	local i
	for ((i = 0; i < $3 * 5; i++)); do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}

# start_damaged NAME: a session on the damaged copy, stopped once it has
# started building the image again; its stderr in $T_TMP/NAME.
start_damaged() {
	XDG_CACHE_HOME=$C "$CCVM" --shell -- true >/dev/null 2>"$T_TMP/$1" &
	local pid=$! i
	wait_for "$T_TMP/$1" "no guest image for these options yet" 120 || diag "no build started"
	kill -TERM "$pid" 2>/dev/null
	wait "$pid"
	# The stopped build's helpers (npm, mmdebstrap) end with it.
	for ((i = 0; i < 100; i++)); do
		pgrep -u "$(id -u)" -f "$C/" >/dev/null || break
		sleep 0.2
	done
	check "nothing of the stopped build runs on ($1)" [ $i -lt 100 ]
}

# flip FILE OFFSET: inverts 64 bytes of FILE at OFFSET, keeping its size.
flip() {
	python3 -c 'import os,sys
fd = os.open(sys.argv[1], os.O_RDWR); off = int(sys.argv[2])
b = os.pread(fd, 64, off); os.pwrite(fd, bytes(x ^ 0xff for x in b), off)' "$1" "$2"
}

P=$(new_project)
cd "$P" || exit 1

# 1. An image from before checksums gets them at its first use, and its
# files are hashed again only when they change.
fresh
python3 -c 'import json,sys
m = json.load(open(sys.argv[1])); m.pop("sha256", None)
json.dump(m, open(sys.argv[1], "w"))' "$IMG/manifest.json"
cv --shell -- cat /etc/hostname >"$T_TMP/o1" 2>"$T_TMP/e1"
rc=$?
check "a session on the copied image runs (rc=$rc)" test $rc -eq 0 -a "$(cat "$T_TMP/o1")" = ccvm
[ $rc -eq 0 ] || tail -5 "$T_TMP/e1" | sed 's/^/# /'
sums=$(python3 -c 'import json,sys
print(" ".join(sorted(json.load(open(sys.argv[1])).get("sha256", {}))))' "$IMG/manifest.json")
check "the manifest has gained checksums ($sums)" \
	grep -q "modules/load.list root.sqfs vmlinux" <<<"$sums"
check "and what was checked is recorded" [ -s "$IMG/verified" ]
ino=$(stat -c %i "$IMG/verified")
t0=$(date +%s%N)
cv --ccvm-build >/dev/null 2>&1
ms=$((($(date +%s%N) - t0) / 1000000))
check "unchanged files are not hashed again (the record stays as it was; ${ms} ms)" \
	[ "$(stat -c %i "$IMG/verified")" = "$ino" ]
touch "$IMG/root.sqfs"
t0=$(date +%s%N)
cv --ccvm-build >/dev/null 2>&1
rc=$?
ms2=$((($(date +%s%N) - t0) / 1000000))
check "a touched file is hashed again and passes (rc=$rc, ${ms2} ms)" \
	test $rc -eq 0 -a "$(stat -c %i "$IMG/verified")" != "$ino"
diag "the image check: ${ms} ms with nothing changed, ${ms2} ms hashing root.sqfs again"

# 2. root.sqfs altered, same size: the checksum finds it before any boot.
size=$(stat -c %s "$IMG/root.sqfs")
flip "$IMG/root.sqfs" $((size / 2))
start_damaged e2
check "an altered root.sqfs is named in one line" grep -qx \
	"ccvm: the guest image $IMG is damaged (root.sqfs ($size bytes) does not match the checksum in its manifest); removing it and building it again" \
	"$T_TMP/e2"
grep -q "damaged" "$T_TMP/e2" || head -5 "$T_TMP/e2" | sed 's/^/# /'
check "the damaged image is removed" [ ! -e "$IMG" ]
check "no QEMU was started" [ -z "$(leftovers)" ]

# 3. vmlinux cut short; it is the kernel cache's own file (a hard link):
# both go.
fresh
vsize=$(stat -c %s "$IMG/vmlinux")
shared=0
[ -n "$KK" ] && [ "$(stat -c %i "$IMG/vmlinux")" = "$(stat -c %i "$C/ccvm/kernels/$KK/vmlinux" 2>/dev/null)" ] && shared=1
truncate -s 1M "$IMG/vmlinux"
start_damaged e3
check "a truncated vmlinux is named in one line" grep -qx \
	"ccvm: the guest image $IMG is damaged (vmlinux is 1048576 bytes, the manifest says $vsize); removing it and building it again" \
	"$T_TMP/e3"
grep -q "damaged" "$T_TMP/e3" || head -5 "$T_TMP/e3" | sed 's/^/# /'
check "the damaged image is removed" [ ! -e "$IMG" ]
if [ $shared = 1 ]; then
	check "and the cached kernel it shared its vmlinux with" [ ! -e "$C/ccvm/kernels/$KK" ]
	check "which is said too" grep -q "^ccvm: the cached guest kernel $C/ccvm/kernels/$KK is damaged too; removing it$" "$T_TMP/e3"
else
	skip "the cached kernel goes too" "this image has Debian's stock kernel (no cached kernel)"
fi

# 4. The manifest itself.
fresh
printf '{"key": ' >"$IMG/manifest.json"
start_damaged e4
check "an unreadable manifest is named in one line" \
	grep -q "^ccvm: the guest image $IMG is damaged (manifest.json: line 1: .*); removing it and building it again$" "$T_TMP/e4"
check "the image is removed" [ ! -e "$IMG" ]

# 5. The initramfs (written by ccvm beside the image): written again.
fresh
cv --shell -- true >/dev/null 2>&1
initrd=$(cv --ccvm-build 2>/dev/null | sed -n 's/^initrd //p')
flip "$initrd" 4096
cv --shell -- cat /etc/hostname >"$T_TMP/o5" 2>"$T_TMP/e5"
rc=$?
check "an altered initramfs: the session runs (rc=$rc)" test $rc -eq 0 -a "$(cat "$T_TMP/o5")" = ccvm
check "after one line saying it was written again" \
	grep -q "^ccvm: the initramfs $initrd is damaged (.*); writing it again$" "$T_TMP/e5"
check "no image build for it" [ "$(grep -c 'no guest image for these options yet' "$T_TMP/e5")" = 0 ]

# 6. A saved boot whose RAM was altered: removed, the session boots and
# saves a new one.  (The key differs with --ccvm-debug: every session here
# uses it.)
saved() { sed -n 's/.*ccvm: boot saved as \(.*\) in [0-9]* ms.*/\1/p' "$1"; }
cv --ccvm-debug --shell -- true >/dev/null 2>"$T_TMP/e6"
snap=$(saved "$T_TMP/e6")
check "a boot is saved ($snap)" [ -f "$snap" ]
ram_data=$(python3 -c 'import os,struct,sys
fd = os.open(sys.argv[1], os.O_RDONLY)
ram_off = struct.unpack("<Q", os.pread(fd, 8, 16 + 16))[0]
print(os.lseek(fd, ram_off + (8 << 20), os.SEEK_DATA))' "$snap")
flip "$snap" "$ram_data"
cv --ccvm-debug --shell -- cat /etc/hostname >"$T_TMP/o7" 2>"$T_TMP/e7"
rc=$?
check "altered saved RAM: the session runs (rc=$rc)" test $rc -eq 0 -a "$(cat "$T_TMP/o7")" = ccvm
n=$(grep -c "^ccvm: no saved boot: $snap does not match its checksum (damaged); removed, this session boots and saves a new one$" "$T_TMP/e7")
check "says so once ($n)" [ "$n" = 1 ]
check "does not restore it" [ "$(grep -c 'ccvm: restored' "$T_TMP/e7")" = 0 ]
check "and saves a new one" [ "$(saved "$T_TMP/e7")" = "$snap" ]
cv --ccvm-debug --shell -- true >/dev/null 2>"$T_TMP/e8"
check "which the next session restores" grep -q "ccvm: restored $snap" "$T_TMP/e8"

# 7. A saved boot cut short.
truncate -s 1M "$snap"
cv --ccvm-debug --shell -- true >/dev/null 2>"$T_TMP/e9"
rc=$?
check "a truncated saved boot: the session runs (rc=$rc)" [ $rc -eq 0 ]
check "says so in one line" grep -q "^ccvm: no saved boot: $snap: not a whole saved boot (damaged); removed" "$T_TMP/e9"
check "and saves a new one" [ "$(saved "$T_TMP/e9")" = "$snap" ]
check "no QEMU or virtiofsd left behind" [ -z "$(leftovers)" ]

done_testing
