#!/bin/bash
# vmDiskSize: an encrypted, ephemeral /scratch.  The host file is only
# ciphertext, has no name while the session runs, and is gone after it,
# even after kill -9; RAM-backed places are refused.  The key is made in
# the guest, differs between sessions, is not zeros, and is never on the
# host (scratch file, argv, environment, cache dir).
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
unset CCVM_SCRATCH_DIR CCVM_VM_DISK_SIZE
P=$(new_project)
cd "$P" || exit 1

wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
wait_gone() { local i; for ((i = 0; i < $2 * 10; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; return 1; }
# QEMU's fds that are the scratch disk: deleted files in directory $2.
disk_fds() {
	local f
	for f in /proc/"$1"/fd/*; do
		case "$(readlink "$f" 2>/dev/null)" in "$2"/*"(deleted)") echo "$f" ;; esac
	done
}
qemu_of() { pgrep -u "$(id -u)" -P "$1" -f qemu-system | head -1; }

# The dm-crypt key: the guest reads it as root (dmsetup table --showkeys)
# and prints "key HEX" on stdout, never into the share.  key_of OUT waits
# for that line in file OUT and prints HEX.
key_of() {
	local i k
	for ((i = 0; i < 100; i++)); do
		k=$(sed -n 's/^key //p' "$1" 2>/dev/null | head -1)
		[ -n "$k" ] && break
		sleep 0.1
	done
	echo "$k"
}
# A key as the guest made it: 64 random bytes (128 hex digits), not zeros.
good_key() { [[ $1 =~ ^[0-9a-f]{128}$ && ! $1 =~ ^0+$ ]]; }
# hunt KEY FILE...: "found FILE" for each FILE holding KEY as hex text or
# as its 64 raw bytes, "unreadable FILE" for each that cannot be read.
hunt() {
	python3 - "$@" <<'PY'
import mmap, os, sys
key = sys.argv[1]
pats = [key.encode(), bytes.fromhex(key)]
for path in sys.argv[2:]:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:  # /proc files, empty files
                data = f.read()
            else:
                data = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            if any(data.find(p) >= 0 for p in pats):
                print("found", path)
    except (OSError, ValueError) as e:
        print("unreadable", path, getattr(e, "strerror", e))
PY
}
descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}
# key_nowhere WHAT KEY CCVMPID QEMUPID DISKFD STARTMARKER: the key is in
# none of the host's places that could hold it: the scratch file, the argv
# and environment of ccvm and of every process below it, the files of the
# cache dir ($SD) written since STARTMARKER.  Needs the search to work (it
# finds the key where the guest printed it) and QEMU's argv and environment
# and ccvm's argv to have been read.
key_nowhere() {
	local what=$1 key=$2 cpid=$3 q=$4 fd=$5 since=$6 files p res
	files=("$fd")
	for p in "$cpid" $(descendants "$cpid"); do
		files+=("/proc/$p/cmdline" "/proc/$p/environ")
	done
	while IFS= read -r -d '' p; do files+=("$p"); done < \
		<(find "$SD" -type f \( -newer "$since" -o -cnewer "$since" \) -print0 2>/dev/null)
	res=$(hunt "$key" "${files[@]}")
	diag "$what: searched ${#files[@]} places; $(grep -c '^unreadable' <<<"$res") unreadable: $(grep '^unreadable' <<<"$res" | cut -d' ' -f2 | tr '\n' ' ')"
	check "$what: control: the search finds the key where the guest printed it" \
		grep -q '^found' <<<"$(hunt "$key" "$T_TMP/$what.out")"
	check "$what: QEMU's argv and environment and ccvm's argv were read" \
		bash -c '[ -n "$2" ] && [ -n "$3" ] && ! grep -qE "^unreadable (/proc/$2/(cmdline|environ)|/proc/$3/cmdline) " <<<"$1"' \
		_ "$res" "$q" "$cpid"
	check "$what: the key is not in the scratch file, any argv or environment, or the cache ($(grep '^found' <<<"$res" | tr '\n' ' '))" \
		bash -c '! grep -q "^found" <<<"$1"' _ "$res"
}

# --- vmDiskSize=0: no disk, no /scratch --------------------------------------
out=$(CCVM_VM_DISK_SIZE=0 "$CCVM" --shell -- sh -c 'test -e /scratch && echo scratch; test -e /sys/block/vdb && echo vdb; echo end' 2>"$T_TMP/err")
check "vmDiskSize=0: no /scratch and no second disk (got: $(echo $out))" [ "$out" = end ]

# --- a running session with a 1 GiB disk in the default place -----------------
# ($XDG_CACHE_HOME/ccvm, where the images live too: compare listings.)
SD=${XDG_CACHE_HOME:-$HOME/.cache}/ccvm
listing() { ls -A "$SD" 2>/dev/null; }
before=$(listing)
CANARY="ccvm-canary-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
# The guest writes 1 MiB of canary lines to /scratch and syncs, reports what
# it sees, then waits for "stop".
cat > guest.sh <<'GEOF'
c=$1
yes "$c" | head -c 1048576 > /scratch/canary.txt
sync
{
	echo "size $(stat -c %s /scratch/canary.txt)"
	echo "owner $(stat -c %U:%a /scratch)"
	echo "mount $(awk '$2 == "/scratch" {print $1, $3, $4}' /proc/mounts)"
	echo "uuid $(cat /sys/block/dm-0/dm/uuid)"
	echo "slaves $(ls /sys/block/dm-0/slaves)"
	if sudo -n true 2>/dev/null; then
		echo "table $(sudo -n dmsetup table ccvm-scratch | awk '{print $3, $4, $6, $7}')"
		echo "key $(sudo -n dmsetup table --showkeys ccvm-scratch | awk '{print $5}')" >&3
	else
		echo "table nosudo"
	fi
	echo "rootmounted $(awk '$1 ~ /ccvm-scratch/' /proc/mounts | wc -l)"
} 3>&1 > info.tmp
mv info.tmp info
while [ ! -e stop ]; do sleep 0.2; done
GEOF
rm -f info stop
touch "$T_TMP/start1"
CCVM_VM_DISK_SIZE=1 "$CCVM" --shell -- sh guest.sh "$CANARY" >"$T_TMP/session1.out" 2>"$T_TMP/err" &
PID=$!
if wait_file info 120; then
	info=$(cat info)
	diag "guest: $(tr '\n' ';' <<<"$info")"
	check "guest wrote 1 MiB to /scratch" grep -qx "size 1048576" <<<"$info"
	check "/scratch is owned by the agent user" grep -qx "owner $(id -un):755" <<<"$info"
	check "/scratch is a dm-crypt mapping, ext4, nosuid,nodev" \
		grep -Eq '^mount /dev/mapper/ccvm-scratch ext4 (.*,)?nosuid,nodev' <<<"$info"
	check "the mapping is a plain dm-crypt device (uuid)" grep -qx "uuid CRYPT-PLAIN-ccvm-scratch" <<<"$info"
	check "the mapping sits on the second disk" grep -qx "slaves vdb" <<<"$info"
	if grep -qx "table nosudo" <<<"$info"; then
		not_ok "dmsetup table shows crypt aes-xts-plain64: sudo works for the agent (agentSudo is on by default)"
	else
		# fields: type, cipher, iv offset, device
		check "dmsetup table shows crypt aes-xts-plain64 over vdb" \
			grep -Eq '^table crypt aes-xts-plain64 0 (254:16|[0-9]+:[0-9]+)$' <<<"$info"
	fi
	check "nothing new in $SD has a name while the session runs" [ "$(listing)" = "$before" ]
	Q=$(qemu_of "$PID")
	fds=$(disk_fds "$Q" "$SD")
	check "QEMU holds the scratch disk as a deleted file in $SD" [ -n "$fds" ]
	for fd in $fds; do
		size=$(stat -L -c %s "$fd")
		nonzero=$(tr -d '\0' < "$fd" | wc -c)
		check "the disk QEMU holds is 1 GiB ($size)" [ "$size" -eq $((1 << 30)) ]
		# 1 MiB of file data plus metadata went there: the reader sees it.
		check "the disk holds written data ($nonzero non-zero bytes >= 1 MiB)" [ "$nonzero" -ge 1000000 ]
		check "the canary never appears in plaintext in the host file" \
			bash -c '! grep -aqF "$1" "$2"' _ "$CANARY" "$fd"
		check "nor does the ext4 label (metadata is encrypted too)" \
			bash -c '! grep -aqF "scratch" < <(head -c 8M "$1")' _ "$fd"
		break # the fds are one file; one read is enough
	done
	KEY1=$(key_of "$T_TMP/session1.out")
	check "session 1: the guest read its dm-crypt key as root (${KEY1:0:8}..., ${#KEY1} hex digits, not zeros)" \
		good_key "$KEY1"
	[ -z "$KEY1" ] || key_nowhere session1 "$KEY1" "$PID" "$Q" "${fds%%$'\n'*}" "$T_TMP/start1"
	touch stop
	if wait_gone "$PID" 60; then
		wait "$PID"; rc=$?
		check "the session ends normally (rc=$rc)" [ $rc -eq 0 ]
	else
		not_ok "the session ends within 60 s"; kill -9 "$PID"
	fi
	check "after exit nothing is left in $SD" [ "$(listing)" = "$before" ]
else
	not_ok "the scratch session started"; sed 's/^/# /' "$T_TMP/err" | tail -20
	kill -9 "$PID" 2>/dev/null
fi

# --- kill -9 of ccvm (and so of QEMU): still nothing left --------------------
SD2=$T_TMP/elsewhere
mkdir -p "$SD2"
rm -f info stop
touch "$T_TMP/start2"
CCVM_SCRATCH_DIR=$SD2 CCVM_VM_DISK_SIZE=1 "$CCVM" --shell -- sh guest.sh "$CANARY" >"$T_TMP/session2.out" 2>"$T_TMP/err" &
PID=$!
if wait_file info 120; then
	Q=$(qemu_of "$PID")
	fds=$(disk_fds "$Q" "$SD2")
	check "CCVM_SCRATCH_DIR picks the place" [ -n "$fds" ]
	KEY2=$(key_of "$T_TMP/session2.out")
	check "session 2: the guest read its dm-crypt key as root (${KEY2:0:8}..., ${#KEY2} hex digits, not zeros)" \
		good_key "$KEY2"
	check "the two sessions' keys differ" bash -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$KEY1" "$KEY2"
	[ -z "$KEY2" ] || key_nowhere session2 "$KEY2" "$PID" "$Q" "${fds%%$'\n'*}" "$T_TMP/start2"
	kill -KILL "$PID"
	wait "$PID" 2>/dev/null
	wait_gone "$Q" 10
	check "kill -9: QEMU is gone" bash -c '! kill -0 "$1" 2>/dev/null' _ "$Q"
	check "kill -9: nothing left in CCVM_SCRATCH_DIR" [ -z "$(ls -A "$SD2")" ]
else
	not_ok "the second scratch session started"; kill -9 "$PID" 2>/dev/null
fi
touch stop

# --- a RAM-backed place is refused -------------------------------------------
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	marker=$T_TMP/marker; touch "$marker"
	t0=$(date +%s)
	CCVM_SCRATCH_DIR=/dev/shm CCVM_VM_DISK_SIZE=1 "$CCVM" --shell -- true >"$T_TMP/out" 2>"$T_TMP/err"
	rc=$?
	t1=$(date +%s)
	check "tmpfs scratch dir: exit 2 (rc=$rc)" [ $rc -eq 2 ]
	check "tmpfs scratch dir: one line naming /dev/shm and CCVM_SCRATCH_DIR" \
		bash -c '[ "$(wc -l < "$1")" -eq 1 ] && grep -q /dev/shm "$1" && grep -q CCVM_SCRATCH_DIR "$1" && grep -qi "ram" "$1"' _ "$T_TMP/err"
	sed 's/^/# /' "$T_TMP/err"
	check "tmpfs scratch dir: nothing created in /dev/shm" \
		[ -z "$(find /dev/shm -maxdepth 1 -user "$(id -u)" -newer "$marker" 2>/dev/null)" ]
	# A boot takes several seconds under TCG; a refusal comes first.
	check "tmpfs scratch dir: refused before any VM starts ($((t1 - t0)) s)" [ $((t1 - t0)) -le 3 ]
else
	skip_missing shm-tmpfs "tmpfs scratch dir refused" "/dev/shm is not a tmpfs here"
fi

done_testing
