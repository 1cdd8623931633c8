#!/bin/bash
# The shared directory over virtiofs: the guest never reads stale data after
# the host changes a file mid-session; guest-made files belong to the host
# user; read-only mode holds even against root in the guest remounting the
# share; 9p is the fallback, silent unless --ccvm-debug.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
if [ ! -x /usr/lib/qemu/virtiofsd ]; then
	skip "virtiofs share" "/usr/lib/qemu/virtiofsd is not installed (qemu-system-common)"
	done_testing
	exit 0
fi
P=$(new_project)
cd "$P" || exit 1
wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# --- coherence: host edits while the guest keeps reading -------------------
printf 'aaaa\n' >f
echo bye >gone
# The guest rereads f in a loop (so whatever it caches is fresh) until the
# host's next step file appears, then reads f once more at once.
cat >g.sh <<'EOF'
step() {
	local i=0
	while [ ! -e "$1" ]; do
		cat f >/dev/null
		i=$((i + 1)); [ $i -gt 3000 ] && exit 9
	done
}
mount | grep " $PWD " >mounts
cat f >seen0; touch ready1
step step1; cat f >seen1; touch ready2
step step2; cat f >seen2
if [ -e gone ]; then echo present; else echo absent; fi >gone-seen
cat new >seen-new 2>&1; ls >listing; touch ready3
step step3; cat f >seen3
echo guest >by-user; sudo -n sh -c 'echo root > by-root'
EOF
"$CCVM" --shell -- bash g.sh >"$T_TMP/out" 2>&1 &
PID=$!
if wait_file ready1 120; then
	printf 'bbbb\n' >f.tmp && cat f.tmp >f && rm f.tmp # same size, in place
	touch step1
	wait_file ready2 60
	printf 'a longer line than before\n' >>f # grown
	rm gone
	echo hello >new
	touch step2
	wait_file ready3 60
	printf 'c\n' >f # shrunk
	touch step3
fi
wait $PID
rc=$?
check "session exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/out" | tail -20
check "the share is virtiofs ($(cat mounts 2>/dev/null))" grep -q ' virtiofs ' mounts
check "guest read the first content" [ "$(cat seen0 2>/dev/null)" = aaaa ]
check "same-size edit on the host seen at once ($(cat seen1 2>/dev/null))" \
	[ "$(cat seen1 2>/dev/null)" = bbbb ]
check "grown file seen at once, whole ($(tr '\n' '|' <seen2 2>/dev/null))" \
	[ "$(cat seen2 2>/dev/null)" = $'bbbb\na longer line than before' ]
check "file deleted on the host is gone in the guest" [ "$(cat gone-seen 2>/dev/null)" = absent ]
check "file created on the host shows up in the guest" [ "$(cat seen-new 2>/dev/null)" = hello ]
check "listing has the new file, not the deleted one" \
	bash -c 'grep -qx new listing && ! grep -qx gone listing'
check "shrunk file seen at once ($(cat seen3 2>/dev/null))" [ "$(cat seen3 2>/dev/null)" = c ]
check "a file the guest user made is the host user's" \
	[ "$(stat -c %u:%g by-user 2>/dev/null)" = "$(id -u):$(id -g)" ]
check "a file root in the guest made is the host user's" \
	[ "$(stat -c %u:%g by-root 2>/dev/null)" = "$(id -u):$(id -g)" ]
check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]

# --- read-only: root in the guest mounting the share again, read-write -----
R=$(new_project)
cd "$R" || exit 1
echo orig >keep
before=$(find . -printf '%p %s %T@ %m\n' | sort; cat keep)
out=$("$CCVM" --read-only-cwd --shell -- sh -c '
	echo x >>keep; echo y >made; cat keep made
	sudo -n mkdir -p /mnt/again
	sudo -n mount -t virtiofs ccvm.cwd /mnt/again && echo remounted
	sudo -n sh -c "echo evil >/mnt/again/evil" 2>/dev/null && echo wrote
	sudo -n mount -o remount,rw /mnt/again 2>/dev/null &&
		sudo -n sh -c "echo evil >/mnt/again/evil2" 2>/dev/null && echo wrote2
	true' 2>&1)
rc=$?
check "ro session exits 0 (rc=$rc)" [ $rc -eq 0 ]
check "ro: the guest sees its own writes" grep -q '^y$' <<<"$out"
check "ro: root in the guest can mount the share again" grep -q '^remounted$' <<<"$out"
check "ro: ... but cannot write through it ($(tr '\n' '|' <<<"$out"))" \
	bash -c '! grep -q "^wrote" <<<"$1"' _ "$out"
after=$(find . -printf '%p %s %T@ %m\n' | sort; cat keep)
check "ro: host tree byte-for-byte unchanged" [ "$before" = "$after" ]

# --- fallback to 9p --------------------------------------------------------
cd "$P" || exit 1
out=$(CCVM_VIRTIOFSD=none "$CCVM" --shell -- sh -c 'mount | grep " $PWD "' 2>"$T_TMP/err")
check "CCVM_VIRTIOFSD=none shares over 9p ($out)" grep -q ' 9p ' <<<"$out"
check "... silently" [ ! -s "$T_TMP/err" ]
CCVM_VIRTIOFSD=/nonexistent "$CCVM" --ccvm-debug --shell -- true >/dev/null 2>"$T_TMP/err"
n=$(grep -c 'sharing over 9p' "$T_TMP/err")
check "--ccvm-debug says once why it uses 9p ($n)" [ "$n" -eq 1 ]
check "no QEMU or virtiofsd left at the end" [ -z "$(leftovers)" ]

done_testing
