#!/bin/bash
# The session: real VMs under TCG, run as an unprivileged user.
# Shares, argv, exit codes, stdin/stdout/stderr, and the terminal.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg

P=$(new_project)
cd "$P" || exit 1
echo "from the host" > in.txt

# rw: a file written in the guest appears on the host, owned by us.
# Lines 4-6: TCG's guest keeps one address layout (norandmaps, qemu.c), so
# two runs of grep map libc at the same address.  Line 7: nor does it use
# the fast-string instructions TCG runs an element at a time (sse2 is there
# to show the flags were read).
out=$("$CCVM" --shell -- sh -c 'echo hello > made-in-guest.txt; id -u; pwd; cat "$0"
	cat /proc/sys/kernel/randomize_va_space
	grep -m1 "/libc\." /proc/self/maps; grep -m1 "/libc\." /proc/self/maps
	grep -m1 "^flags" /proc/cpuinfo | grep -owE "erms|fsrm|rep_good|sse2" | sort | tr "\n" " "' "$P/in.txt" 2>"$T_TMP/err")
rc=$?
check "rw session exits 0 (rc=$rc)" [ $rc -eq 0 ]
check "guest file appears on the host" [ "$(cat made-in-guest.txt 2>/dev/null)" = hello ]
check "guest file is owned by the host user" [ "$(stat -c %u made-in-guest.txt 2>/dev/null)" = "$(id -u)" ]
check "agent runs with the host uid" [ "$(sed -n 1p <<<"$out")" = "$(id -u)" ]
check "guest cwd is the launch directory's absolute path" [ "$(sed -n 2p <<<"$out")" = "$P" ]
check "host file readable in the guest at the same path" [ "$(sed -n 3p <<<"$out")" = "from the host" ]
check "TCG: no address randomisation in the guest ($(sed -n 4p <<<"$out"))" [ "$(sed -n 4p <<<"$out")" = 0 ]
libc1=$(sed -n 5p <<<"$out") libc2=$(sed -n 6p <<<"$out") same=no
[ -n "$libc1" ] && [ "$libc1" = "$libc2" ] && same=yes
check "TCG: libc at the same address in two runs (${libc1%% *})" [ $same = yes ]
check "TCG: no erms, fsrm or rep_good in the guest ($(sed -n 7p <<<"$out"))" [ "$(sed -n 7p <<<"$out")" = "sse2 " ]
[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/err"

# ro: the guest writes to an overlay; the host tree does not change.
snapshot() { (cd "$P" && find . -printf '%p %s %m %T@\n' | sort && find . -type f -exec sha256sum {} + | sort) | sha256sum; }
before=$(snapshot)
out=$("$CCVM" --read-only-cwd --shell -- sh -c 'echo x > new.txt && echo y >> in.txt && rm made-in-guest.txt && mkdir d && cat new.txt in.txt' 2>&1)
rc=$?
check "ro session: guest sees its own writes (rc=$rc)" [ "$out" = $'x\nfrom the host\ny' ]
check "ro session: host tree byte-for-byte unchanged" [ "$(snapshot)" = "$before" ]
# The guest writes (to its overlay) and reads back: the marker shows the
# session ran, so the file's absence on the host means something.
out=$(CCVM_WRITABLE_CWD=false "$CCVM" --shell -- sh -c 'echo z > viaenv.txt && cat viaenv.txt && echo ccvm-ro-env-ran' 2>"$T_TMP/roenv.err")
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/roenv.err"
check "CCVM_WRITABLE_CWD=false: the session ran and wrote in the guest (rc=$rc, $(tr '\n' ' ' <<<"$out" | head -c 200))" \
	[ $rc -eq 0 -a "$out" = $'z\nccvm-ro-env-ran' ]
check "CCVM_WRITABLE_CWD=false is read-only too" [ ! -e viaenv.txt ]

# argv: byte-exact, including empty strings, newlines, quotes, non-UTF-8.
args=("a b" "" $'line1\nline2' "q'\"\\" $'\xff\xfe' "--help" "-" "*")
want=$(printf '[%s]\n' "${args[@]}" | od -An -tx1)
got=$("$CCVM" --shell -- printf '[%s]\n' "${args[@]}" 2>/dev/null | od -An -tx1)
check "argv reaches the guest byte for byte" [ "$got" = "$want" ]

# exit codes, including death by signal.
for c in 0 1 42; do
	"$CCVM" --shell -- sh -c "exit $c" >/dev/null 2>"$T_TMP/code.err"
	rc=$?
	check "exit code $c passes through (got $rc)" [ $rc -eq "$c" ]
	[ $rc -eq "$c" ] || sed 's/^/# /' "$T_TMP/code.err"
done
"$CCVM" --shell -- sh -c 'kill -TERM $$' >/dev/null 2>"$T_TMP/sig.err"
rc=$?
check "death by SIGTERM gives 143 (got $rc)" [ $rc -eq 143 ]
[ $rc -eq 143 ] || sed 's/^/# /' "$T_TMP/sig.err"
"$CCVM" --shell -- sh -c 'kill -KILL $$' >/dev/null 2>"$T_TMP/sig.err"
rc=$?
check "agent killed (SIGKILL) gives 137 (got $rc)" [ $rc -eq 137 ]
[ $rc -eq 137 ] || sed 's/^/# /' "$T_TMP/sig.err"
"$CCVM" --shell -- /no/such/command >/dev/null 2>&1
rc=$?
check "a missing command gives 127 (got $rc)" [ $rc -eq 127 ]

# stdin pipe with EOF; stdout and stderr kept apart.
got=$(printf 'a\nb\n' | "$CCVM" --shell -- wc -l 2>/dev/null)
check "stdin pipe and EOF: wc -l counts 2 (got '$got')" [ "$got" = 2 ]
head -c 300000 /dev/urandom > "$T_TMP/blob"
got=$("$CCVM" --shell -- sha256sum < "$T_TMP/blob" 2>"$T_TMP/blob.err" | cut -d' ' -f1)
want=$(sha256sum < "$T_TMP/blob" | cut -d' ' -f1)
check "300 KB of binary stdin arrives intact" [ "$got" = "$want" ]
[ "$got" = "$want" ] || diag "got '$got'; stderr: $(tr '\n' ' ' <"$T_TMP/blob.err" | head -c 1500)"
"$CCVM" --shell -- sh -c 'echo out; echo err >&2' >"$T_TMP/o" 2>"$T_TMP/e"
sep=no; [ "$(cat "$T_TMP/o")" = out ] && [ "$(cat "$T_TMP/e")" = err ] && sep=yes
check "stdout and stderr stay separate" [ $sep = yes ]

# Two sessions in the same directory at once.
"$CCVM" --shell -- sh -c 'sleep 1; echo one > one.txt' >/dev/null 2>&1 &
a=$!
"$CCVM" --shell -- sh -c 'sleep 1; echo two > two.txt' >/dev/null 2>&1 &
b=$!
wait $a; ra=$?
wait $b; rb=$?
both=no; [ $ra -eq 0 ] && [ $rb -eq 0 ] && [ -f one.txt ] && [ -f two.txt ] && both=yes
check "two concurrent sessions both succeed ($ra, $rb)" [ $both = yes ]

# A project path with a comma and a space: escaped for QEMU, not split.
odd="$T_TMP/odd,dir name"
mkdir -p "$odd"
(cd "$odd" && "$CCVM" --shell -- sh -c 'pwd > where.txt') >/dev/null 2>&1
check "a path with ',' and ' ' is shared as it is" [ "$(cat "$odd/where.txt" 2>/dev/null)" = "$odd" ]

# lockGuestMemory with the default 8 MiB RLIMIT_MEMLOCK: a clear error.
if [ "$(ulimit -l)" != unlimited ] && [ "$(ulimit -l)" -lt 1048576 ]; then
	CCVM_MLOCK=1 "$CCVM" --shell -- true >/dev/null 2>"$T_TMP/mlock.err"
	rc=$?
	check "lockGuestMemory over RLIMIT_MEMLOCK fails (rc=$rc) naming the limit" \
		grep -q 'RLIMIT_MEMLOCK' "$T_TMP/mlock.err"
else
	skip "lockGuestMemory refused over RLIMIT_MEMLOCK" "memlock limit is $(ulimit -l)"
fi

check "no QEMU left after the sessions" [ -z "$(leftovers)" ]

# acceleration: kvm fails with a reason here; auto picks TCG and says so.
if [ -e /dev/kvm ]; then
	CCVM_ACCEL=kvm "$CCVM" --shell -- true >/dev/null 2>"$T_TMP/kvm.err"
	rc=$?
	if [ $rc -eq 0 ]; then
		skip "acceleration=kvm fails on a broken KVM" "KVM works on this machine"
	else
		check "acceleration=kvm fails with a reason (rc=$rc)" grep -qi 'kvm' "$T_TMP/kvm.err"
	fi
	start=$(date +%s%N)
	CCVM_ACCEL=auto "$CCVM" --shell -- true >/dev/null 2>"$T_TMP/auto.err"
	rc=$?
	if grep -qi 'using TCG' "$T_TMP/auto.err"; then
		ok "acceleration=auto falls back to TCG with a message"
	elif [ $rc -eq 0 ]; then
		skip "acceleration=auto falls back to TCG" "KVM works on this machine"
	else
		not_ok "acceleration=auto (rc=$rc)"; sed 's/^/# /' "$T_TMP/auto.err"
	fi
else
	CCVM_ACCEL=kvm "$CCVM" --shell -- true >/dev/null 2>"$T_TMP/kvm.err"
	check "acceleration=kvm without /dev/kvm names the device" grep -q '/dev/kvm' "$T_TMP/kvm.err"
fi

done_testing
