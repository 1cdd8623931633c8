#!/bin/bash
# The shared directory over virtiofs: the guest never reads stale data after
# the host changes a file mid-session; guest-made files belong to the host
# user; read-only mode holds even against root in the guest remounting the
# share; 9p is the fallback, silent unless --ccvm-debug.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
if [ ! -x /usr/lib/qemu/virtiofsd ]; then
	skip_missing virtiofsd "virtiofs share" "/usr/lib/qemu/virtiofsd is not installed (qemu-system-common)"
	done_testing
	exit 0
fi
P=$(new_project)
cd "$P" || exit 1
wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# --- coherence: host edits, then input -------------------------------------
# The guest caches names and attributes (read-write share); the host tells
# it what changed.  The user's order: edit on the host, then type.  Each
# step's line reaches the guest only after the edits made before it are
# applied there, so each read below must see them at once.
printf 'aaaa\n' >f
echo bye >gone
mkdir sub && echo inside >sub/h
mkdir lst && echo 1 >lst/one
echo x >late
printf 'Q\n' >rep
cat >g.sh <<'EOF'
grep " $PWD " /proc/mounts >mounts
cat f >seen0; cat sub/h late rep >/dev/null; ls -lR >/dev/null; touch ready1
read -r l; cat f >seen1; cat rep >seen-rep; touch ready2
read -r l; cat f >seen2
if [ -e gone ]; then echo present; else echo absent; fi >gone-seen
cat new >seen-new 2>&1; ls >listing; ls lst >listing-lst
{ cat sub/h; cat sub2/h; } >seen-moved 2>&1; touch ready3
read -r l; cat f >seen3; echo guest-wrote >mine; touch ready4
read -r l; cat mine >seen-mine; touch ready5
# No input this time: a host edit still arrives, just not ordered.
s0=$(date +%s%N)
until [ "$(stat -c %s late 2>/dev/null)" = 9 ]; do
	[ $((($(date +%s%N) - s0) / 1000000)) -gt 20000 ] && break
done
echo $((($(date +%s%N) - s0) / 1000000)) >late-ms
cat late >seen-late 2>&1
echo guest >by-user; sudo -n sh -c 'echo root > by-root'
EOF
mkfifo "$T_TMP/in.fifo"
"$CCVM" --shell -- bash g.sh <"$T_TMP/in.fifo" >"$T_TMP/out" 2>&1 &
PID=$!
exec 7>"$T_TMP/in.fifo"
if wait_file ready1 120; then
	vfsd=$(pgrep -u "$(id -u)" -f "virtiofsd.*source=$P" | head -1)
	ps -o args= -p "$vfsd" >"$T_TMP/vfsd-args" 2>/dev/null
	printf 'bbbb\n' >f.tmp && cat f.tmp >f && rm f.tmp # same size, in place
	printf 'R\n' >rep.tmp && mv rep.tmp rep # replaced, as editors save
	echo step1 >&7
	wait_file ready2 60
	printf 'a longer line than before\n' >>f # grown
	rm gone
	echo hello >new
	mv sub sub2 # a directory the guest has looked into
	# A name added under a directory time set back (as tar, rsync -t and
	# cp -p do): the guest's listing of it must not survive on mtime.
	m=$(stat -c %.9Y lst)
	echo 2 >lst/two
	touch -m -d "@$m" lst
	echo step2 >&7
	wait_file ready3 60
	printf 'c\n' >f # shrunk
	echo step3 >&7
	wait_file ready4 60
	echo host-wrote >mine # over the guest's own write
	echo step4 >&7
	wait_file ready5 60
	echo 12345678 >late
fi
exec 7>&-
wait $PID
rc=$?
check "session exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/out" | tail -20
check "the share is virtiofs ($(cat mounts 2>/dev/null))" grep -q ' virtiofs ' mounts
check "virtiofsd lets the guest cache names and attributes" \
	grep -q 'timeout=31536000' "$T_TMP/vfsd-args"
check "guest read the first content" [ "$(cat seen0 2>/dev/null)" = aaaa ]
check "same-size edit on the host seen at once ($(cat seen1 2>/dev/null))" \
	[ "$(cat seen1 2>/dev/null)" = bbbb ]
check "a file replaced on the host (written aside, renamed over it) seen at once ($(cat seen-rep 2>/dev/null))" \
	[ "$(cat seen-rep 2>/dev/null)" = R ]
check "grown file seen at once, whole ($(tr '\n' '|' <seen2 2>/dev/null))" \
	[ "$(cat seen2 2>/dev/null)" = $'bbbb\na longer line than before' ]
check "file deleted on the host is gone in the guest" [ "$(cat gone-seen 2>/dev/null)" = absent ]
check "file created on the host shows up in the guest" [ "$(cat seen-new 2>/dev/null)" = hello ]
check "listing has the new file, not the deleted one" \
	bash -c 'grep -qx new listing && ! grep -qx gone listing'
check "a name added under a directory whose mtime was set back is listed ($(tr '\n' ' ' <listing-lst 2>/dev/null))" \
	bash -c 'grep -qx one listing-lst && grep -qx two listing-lst'
check "directory renamed on the host: old path gone, new one there ($(tr '\n' '|' <seen-moved 2>/dev/null))" \
	bash -c 'grep -q "sub/h: No such file" seen-moved && grep -qx inside seen-moved'
check "shrunk file seen at once ($(cat seen3 2>/dev/null))" [ "$(cat seen3 2>/dev/null)" = c ]
check "host write over a guest write seen ($(cat seen-mine 2>/dev/null))" \
	[ "$(cat seen-mine 2>/dev/null)" = host-wrote ]
check "a host edit with no input after it still arrives ($(cat late-ms 2>/dev/null) ms)" \
	[ "$(cat seen-late 2>/dev/null)" = 12345678 ]
diag "a host edit, no input after it, seen $(cat late-ms 2>/dev/null) ms after the guest began to look (the host polls every 0.1 s)"
check "a file the guest user made is the host user's" \
	[ "$(stat -c %u:%g by-user 2>/dev/null)" = "$(id -u):$(id -g)" ]
check "a file root in the guest made is the host user's" \
	[ "$(stat -c %u:%g by-root 2>/dev/null)" = "$(id -u):$(id -g)" ]
check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]

# --- a lookup miss fills the directory --------------------------------------
# ccvm's kernel answers the first lookup that misses in a directory with one
# READDIRPLUS of the whole directory (guest-kernel.patch), so a cold
# `git status` costs a few round trips per directory, not one per file.
# What it links must be what the host has; uncached, it stays off.
imgdir=$("$CCVM" --ccvm-build 2>/dev/null | sed -n 's/^image //p')
kind=$(jq -r '.kernel // "stock"' "$imgdir/manifest.json" 2>/dev/null)
if [ "$kind" = custom ]; then
	mkdir pf pf/sub && ln -s f7 pf/link && echo in >pf/sub/x
	for ((i = 0; i < 300; i++)); do printf '%*s' $i '' >"pf/f$i"; done
	chmod 600 pf/f3 && touch -m -d @1000000000 pf/f5
	cat >pf.sh <<'EOF'
cat /sys/module/fuse/parameters/lookup_prefetch
ls . >/dev/null # the root's own entries are looked up: pf is linked
stat --version >/dev/null # and stat's own files, on the root
n0=$(awk '{print $1}' /proc/sys/fs/dentry-state)
stat pf/f0 >/dev/null
n1=$(awk '{print $1}' /proc/sys/fs/dentry-state)
echo $((n1 - n0))
(cd pf && stat -c '%n %s %Y %a %F %i' * | sort && readlink link && cat sub/x)
# Six processes looking up the same cold directory's names at once, in two
# orders, four times over: every one gets every name right, none hangs.
fwd=$(seq 0 299 | sed 's|^|pf/f|') rev=$(seq 299 -1 0 | sed 's|^|pf/f|')
for r in 1 2 3 4; do
	sudo -n sh -c 'sync; echo 3 >/proc/sys/vm/drop_caches'
	for w in 1 2 3 4 5 6; do
		if [ $((w % 2)) = 0 ]; then set -- $fwd; else set -- $rev; fi
		stat -c '%n %s' "$@" | sort >/tmp/pf-w$w &
	done
	wait
	cat /tmp/pf-w* | sort | uniq -c | awk '{print $1, $2, $3}'
done | sort | uniq -c | awk '{print $1, $2, $3, $4}' >/tmp/pf-sum
wc -l </tmp/pf-sum; awk '$1 != 4 || $2 != 6 {bad++} END {print bad + 0}' /tmp/pf-sum
EOF
	host=$(cd pf && stat -c '%n %s %Y %a %F %i' * | sort && readlink link && cat sub/x)
	"$CCVM" --shell -- bash pf.sh >"$T_TMP/pf" 2>&1
	rc=$?
	check "cached share: the guest kernel prefetches ($(head -1 "$T_TMP/pf"), rc=$rc)" \
		[ "$(head -1 "$T_TMP/pf")" = Y ]
	d=$(sed -n 2p "$T_TMP/pf")
	# 302 names; uncached, the same stat adds a few dentries (+14-29 seen)
	check "a miss in a 300-file directory links its entries (dentries +$d)" \
		[ "${d:-0}" -ge 250 ]
	check "every prefetched name, size, time, mode, type and inode is the host's" \
		[ "$(sed -n '3,$p' "$T_TMP/pf" | head -n -2)" = "$host" ]
	check "six processes looking up one cold directory at once: all 300 names, each time ($(tail -2 "$T_TMP/pf" | tr '\n' ' '))" \
		[ "$(tail -2 "$T_TMP/pf" | tr '\n' ' ')" = "300 0 " ]
	CCVM_SHARE_CACHE=0 "$CCVM" --shell -- bash pf.sh >"$T_TMP/pf0" 2>&1
	d=$(sed -n 2p "$T_TMP/pf0") off=no
	[ "$(head -1 "$T_TMP/pf0")" = N ] && [ "${d:-999}" -lt 50 ] && off=yes
	check "uncached share: no prefetch ($(head -1 "$T_TMP/pf0"), dentries +$d)" \
		[ $off = yes ]
	check "... and the same names and attributes" \
		[ "$(sed -n '3,$p' "$T_TMP/pf0" | head -n -2)" = "$host" ]
else
	skip "lookup prefetch" "the image has Debian's stock kernel ($kind)"
fi

# --- new files: fewer requests, the same semantics ---------------------------
# ccvm's kernel creates a file opened with O_CREAT without a LOOKUP first,
# keeps a directory's permissions when names change in it and sends no
# FLUSH at close (guest-kernel.patch items 3-5).  Whatever the kernel: an
# open with O_CREAT of a name that exists is still an open of that file, an
# O_EXCL one still fails, a dangling link is followed, permissions still
# hold, and a file the guest wrote and closed is on the host, byte for byte,
# within a second while the session runs.
mkdir -p oc/adir oc/rodir oc/many
printf 'ABCDEFGH' >oc/exist
echo ro >oc/ro && chmod 444 oc/ro
ln -s made-by-link oc/dangling
chmod 555 oc/rodir
cat >oc.sh <<'EOF'
cd oc
for k in create_nolookup dir_keep_perm noflush async_release poll_us; do
	printf '%s=%s ' $k "$(cat /sys/module/fuse/parameters/$k 2>/dev/null || echo -)"
done >knobs
{
	printf XY 1<>exist; echo "rdwr-creat $?"
	dd if=/dev/null of=exist conv=excl 2>/dev/null; echo "excl-existing $?"
	dd if=/dev/null of=fresh conv=excl 2>/dev/null; echo "excl-new $?"
	echo via-link >dangling; echo "dangling $?"
	(echo x >adir) 2>/dev/null; echo "onto-dir $?"
	(echo x >>ro) 2>/dev/null; echo "ro-file $?"
	(echo x >rodir/new) 2>/dev/null; echo "ro-dir $?"
} >results
for i in $(seq 200); do echo "file $i $RANDOM" >many/f$i; done
: >many-done
head -c 65536 /dev/urandom >blob
sha256sum blob >blob.tmp && mv blob.tmp blob.sum
read -r l
(echo x >many/after-chmod) 2>/dev/null; echo "after-host-chmod $?" >>results
: >oc-done
EOF
"$CCVM" --shell -- bash oc.sh <"$T_TMP/in.fifo" >"$T_TMP/oc-out" 2>&1 &
PID=$!
exec 7>"$T_TMP/in.fifo"
# Each guest file is compared from the moment the guest says it closed it.
exact_within() { # marker-file check-command...: time until check holds
	local m=$1 i
	shift
	wait_file "$m" 180 || { echo never; return; }
	for ((i = 0; i < 100; i++)); do
		"$@" >/dev/null 2>&1 && { echo "$((i * 10)) ms"; return; }
		sleep 0.01
	done
	echo "over 1 s"
}
many_ok() { local i; for ((i = 1; i <= 200; i++)); do grep -q "^file $i " "oc/many/f$i" || return 1; done; }
t_many=$(exact_within oc/many-done many_ok)
t_blob=$(exact_within oc/blob.sum sh -c 'cd oc && sha256sum -c --status blob.sum')
chmod 555 oc/many
echo go >&7
wait_file oc/oc-done 60
exec 7>&-
wait $PID
chmod 755 oc/many oc/rodir
r() { awk -v k="$1" '$1 == k {print $2}' oc/results; }
check "O_RDWR|O_CREAT of an existing file opens it, not a new one ($(r rdwr-creat), $(cat oc/exist))" \
	[ "$(cat oc/exist)" = XYCDEFGH ]
check "O_CREAT|O_EXCL of an existing name fails, of a new one succeeds ($(r excl-existing), $(r excl-new))" \
	test "$(r excl-existing)" != 0 -a "$(r excl-new)" = 0 -a -f oc/fresh
check "O_CREAT through a dangling link makes its target ($(r dangling), $(cat oc/made-by-link 2>&1))" \
	test "$(cat oc/made-by-link 2>/dev/null)" = via-link -a -L oc/dangling
check "O_CREAT onto a directory, a read-only file, into a read-only directory: refused ($(r onto-dir) $(r ro-file) $(r ro-dir))" \
	test "$(r onto-dir)" != 0 -a "$(r ro-file)" != 0 -a "$(r ro-dir)" != 0 \
	-a "$(cat oc/ro)" = ro -a ! -e oc/rodir/new
check "200 files the guest wrote and closed: on the host, byte-exact, within a second ($t_many)" \
	[ "${t_many% ms}" != "$t_many" ]
check "a 64 KiB file the guest wrote and closed: byte-exact on the host within a second ($t_blob)" \
	[ "${t_blob% ms}" != "$t_blob" ]
check "a host chmod of a directory the guest just made files in still holds there ($(r after-host-chmod))" \
	test -n "$(r after-host-chmod)" -a "$(r after-host-chmod)" != 0 -a ! -e oc/many/after-chmod
if [ "$kind" = custom ]; then
	check "ccvm's kernel: the four round-trip-saving knobs are on, async_release off ($(cat oc/knobs))" \
		[ "$(cat oc/knobs)" = "create_nolookup=Y dir_keep_perm=Y noflush=Y async_release=N poll_us=200 " ]
else
	skip "request-saving knobs" "the image has Debian's stock kernel ($kind)"
fi

# --- requests per new file, counted in virtiofsd's own log -------------------
# virtiofsd logs every request at log_level=debug (a wrapper adds it). In one
# session, 100 files untarred with ccvm's knobs off (the kernel as Debian's
# behaves), then with them on: off is the control that shows the count can
# fail. Markers: a lookup of a unique name, logged with its name.
if [ "$kind" = custom ]; then
	mkdir -p rq/src
	for d in 0 1 2 3 4; do
		mkdir rq/src/p$d
		for f in $(seq 20); do head -c 1024 /dev/urandom >rq/src/p$d/m$f.js; done
	done
	tar -C rq/src -cf rq/small.tar . && rm -rf rq/src
	cat >"$T_TMP/vfsdbg" <<EOF
#!/bin/sh
exec /usr/lib/qemu/virtiofsd "\$@" -o log_level=debug 2>>"$T_TMP/vfs.log"
EOF
	chmod 755 "$T_TMP/vfsdbg"
	cat >rq.sh <<'EOF'
P=/sys/module/fuse/parameters
knobs() { for k in create_nolookup dir_keep_perm noflush reval_drops_listing; do echo $1 | sudo -n tee $P/$k >/dev/null; done; }
for s in N Y; do
	knobs $s
	sleep 1; stat .rq-start-$s >/dev/null 2>&1
	mkdir rq/x$s && tar -xf rq/small.tar -C rq/x$s
	sleep 1; stat .rq-end-$s >/dev/null 2>&1
done
EOF
	CCVM_VIRTIOFSD="$T_TMP/vfsdbg" "$CCVM" --shell -- bash rq.sh >"$T_TMP/rq-out" 2>&1
	# "LOOKUP FLUSH GETATTR OPENDIR CREATE" between the markers for s
	ops() {
		awk -v s="$1" '
			/lo_lookup\(.*name=\.rq-start-/ && index($0, "rq-start-" s ")") {on = 1; next}
			/lo_lookup\(.*name=\.rq-end-/ && index($0, "rq-end-" s ")") {on = 0}
			on && match($0, /opcode: [A-Z_]+/) {n[substr($0, RSTART + 8, RLENGTH - 8)]++}
			END {print n["LOOKUP"] + 0, n["FLUSH"] + 0, n["GETATTR"] + 0, n["OPENDIR"] + 0, n["CREATE"] + 0}' \
			"$T_TMP/vfs.log"
	}
	read -r l0 f0 g0 o0 c0 <<<"$(ops N)"
	read -r l1 f1 g1 o1 c1 <<<"$(ops Y)"
	diag "100 new files, knobs off: LOOKUP $l0 FLUSH $f0 GETATTR $g0 OPENDIR $o0 CREATE $c0; on: LOOKUP $l1 FLUSH $f1 GETATTR $g1 OPENDIR $o1 CREATE $c1"
	check "knobs off (the control): a LOOKUP and a FLUSH per new file ($l0, $f0 for $c0 files)" \
		test "$c0" = 100 -a "$l0" -ge 100 -a "$f0" -ge 100
	check "knobs on: no LOOKUP before a create, no FLUSH at close ($l1 lookups, $f1 flushes for $c1 files)" \
		test "$c1" = 100 -a "$l1" -le 40 -a "$f1" = 0
	check "knobs on: no GETATTR of the parent after each create, no OPENDIR per echo ($g1, $o1)" \
		test "$g1" -le 10 -a "$o1" -le 10
	check "... and all 100 files are the host's, byte for byte" \
		sh -c 'cd rq && diff -r xN xY >/dev/null && [ "$(find xY -type f | wc -l)" = 100 ]'
else
	skip "requests per new file" "the image has Debian's stock kernel ($kind)"
fi

# --- close() does not wait for RELEASE (guest-kernel.patch item 7) ----------
# With virtiofsd stopped (SIGSTOP), a close() of a file on the share returns
# when async_release is on and hangs until virtiofsd runs again when it is
# off (the control).  The guest says "closed" on its terminal, which does
# not go through virtiofsd.
if [ "$kind" = custom ]; then
	cat >ar.sh <<'EOF'
P=/sys/module/fuse/parameters/async_release
for s in Y N; do
	echo $s | sudo -n tee $P >/dev/null
	exec 3>ar-$s
	echo "opened $s $(cat $P)"
	read -r l
	exec 3>&-
	echo "closed $s"
	read -r l
done
EOF
	rm -f "$T_TMP/in.fifo" && mkfifo "$T_TMP/in.fifo"
	"$CCVM" --shell -- bash ar.sh <"$T_TMP/in.fifo" >"$T_TMP/ar-out" 2>&1 &
	PID=$!
	exec 7>"$T_TMP/in.fifo"
	line_within() { # line seconds: waits for the line in the session's output
		local i
		for ((i = 0; i < $2 * 20; i++)); do
			grep -qx "$1" "$T_TMP/ar-out" && return 0
			sleep 0.05
		done
		return 1
	}
	vfsd=
	declare -A ar_stopped ar_after
	for s in Y N; do
		ar_stopped[$s]=no ar_after[$s]=no
		line_within "opened $s $s" 120 || break
		# virtiofsd forks: the child serves, the parent waits; stop both.
		[ -n "$vfsd" ] || vfsd=$(pgrep -u "$(id -u)" -f "virtiofsd.*source=$P")
		[ -n "$vfsd" ] || break
		kill -STOP $vfsd
		echo go >&7
		line_within "closed $s" 3 && ar_stopped[$s]=yes
		kill -CONT $vfsd
		line_within "closed $s" 30 && ar_after[$s]=yes
		echo next >&7
	done
	exec 7>&-
	wait $PID
	rc=$?
	check "async_release on: close() returns while virtiofsd is stopped (${ar_stopped[Y]}; rc=$rc)" \
		test "${ar_stopped[Y]}" = yes -a $rc -eq 0 -a -f ar-Y
	check "async_release off (the control): close() waits for virtiofsd (returned while stopped: ${ar_stopped[N]}, after: ${ar_after[N]})" \
		test "${ar_stopped[N]}" = no -a "${ar_after[N]}" = yes
	[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/ar-out" | tail -5
else
	skip "close() without waiting for RELEASE" "the image has Debian's stock kernel ($kind)"
fi

# --- answers looked for, not waited for (guest-kernel.patch item 8) ---------
# With fuse.poll_us a program that sent a request looks for the answer in the
# virtqueue, the interrupt off, before it sleeps: over 300 lookups of names
# that are not there (a LOOKUP each, nothing in the background), the request
# queue's interrupts in /proc/interrupts fall from one an answer (poll_us=0,
# the control) to a few (0-15 here); 300 files written with each setting
# are the host's, byte for byte.  An answer slower than the look (virtiofsd stopped,
# above) still wakes the program: the close() that waited there returned
# once virtiofsd ran again.
if [ "$kind" = custom ]; then
	cat >pl.sh <<'EOF'
irqs() { awk '/-requests/ {for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) t += $i} END {print t + 0}' /proc/interrupts; }
for v in 0 200; do
	echo $v | sudo -n tee /sys/module/fuse/parameters/poll_us >/dev/null
	a=$(irqs)
	for i in $(seq 300); do [ -e pl/none-$v-$i ]; done
	b=$(irqs)
	echo "$v $((b - a))"
	mkdir -p pl/x$v
	for i in $(seq 300); do echo "file $i" >pl/x$v/f$i; done
done >pl/irqs
EOF
	mkdir -p pl
	"$CCVM" --shell -- bash pl.sh >"$T_TMP/pl-out" 2>&1
	rc=$?
	i0=$(awk '$1 == 0 {print $2}' pl/irqs 2>/dev/null)
	i1=$(awk '$1 == 200 {print $2}' pl/irqs 2>/dev/null)
	pl_ok() {
		local v i
		for v in 0 200; do
			for ((i = 1; i <= 300; i++)); do
				[ "$(cat "pl/x$v/f$i")" = "file $i" ] || return 1
			done
		done
	}
	check "poll_us=0 (the control): an interrupt for each answer to 300 lookups (${i0:-none}; rc=$rc)" \
		test "${i0:-0}" -ge 300
	check "poll_us=200: the program finds most answers itself (${i1:-none} interrupts against ${i0:-none})" \
		test -n "$i1" -a "${i1:-0}" -le "$((${i0:-0} / 2))"
	check "... and the 600 files are on the host, each with what the guest wrote" pl_ok
	[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/pl-out" | tail -5
else
	skip "answers looked for" "the image has Debian's stock kernel ($kind)"
fi

# --- many new files against a low open-file limit ---------------------------
# virtiofsd holds a file open for every inode the guest knows; ccvm asks the
# guest to let go of unused ones before virtiofsd's limit (the user's hard
# RLIMIT_NOFILE). With a limit of 6,000: 8,000 files untarred, then every
# one of them read back, one after another, must not fail with EMFILE.
# (A single walk that lists more names at once than the limit, such as
# `git add -A` of a tree of more files than that, can still fail: READDIRPLUS
# makes an inode of every name it returns; docs/share.md.)
mkdir -p fd/src
(
	cd fd/src
	for d in $(seq 80); do
		mkdir p$d
		for f in $(seq 100); do echo "$d $f" >p$d/f$f; done
	done
)
tar -C fd/src -cf fd/many.tar . && rm -rf fd/src
cat >fd.sh <<'EOF'
cd fd && mkdir x && tar -xf many.tar -C x && echo extracted
sudo -n sh -c 'echo 2 >/proc/sys/vm/drop_caches'
echo "read back $(find x -type f -exec cat {} + | awk 'NF == 2' | wc -l)"
EOF
prlimit --nofile=6000:6000 "$CCVM" --ccvm-debug --shell -- bash fd.sh >"$T_TMP/fd-out" 2>&1
rc=$?
n=$(find fd/x -type f 2>/dev/null | wc -l)
trims=$(grep -c 'asking the guest to drop unused inodes' "$T_TMP/fd-out")
check "open-file limit 6,000: 8,000 files untarred and read back, no EMFILE (rc=$rc, $n on the host, $(grep -m1 '^read back' "$T_TMP/fd-out"), $trims trims; $(grep -m1 -i 'too many' "$T_TMP/fd-out"))" \
	test $rc -eq 0 -a "$n" -eq 8000 -a "$(grep -c '^read back 8000$' "$T_TMP/fd-out")" -eq 1
rm -rf fd

# Pages a program leaves dirty through a shared mmap of a file on the
# share, never synced by it: on the host once ccvm has exited.
cat >"$T_TMP/mmapw.c" <<'EOF'
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(void)
{
	int fd = open("mapped", O_RDWR | O_CREAT, 0644);
	if (fd < 0 || ftruncate(fd, 4096) < 0)
		return 1;
	char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 2;
	memcpy(p, "MMAP-OK", 7);
	return 0; /* no msync, no munmap, no close */
}
EOF
if cc -static -O2 -o mmapw "$T_TMP/mmapw.c" 2>"$T_TMP/cc.err"; then
	# virtiofs, then 9p: the guest flushes the share alone (syncfs).
	for via in virtiofs 9p; do
		rm -f mapped
		if [ $via = 9p ]; then
			CCVM_VIRTIOFSD=none "$CCVM" --shell -- ./mmapw >"$T_TMP/out" 2>&1
		else
			"$CCVM" --shell -- ./mmapw >"$T_TMP/out" 2>&1
		fi
		rc=$?
		check "$via: a program writing through a shared mmap exits 0 (rc=$rc)" [ $rc -eq 0 ]
		check "... and its pages are on the host after ccvm exits ($(head -c 7 mapped 2>/dev/null | tr -cd '[:print:]'))" \
			[ "$(head -c 7 mapped 2>/dev/null)" = MMAP-OK ]
	done
else
	skip_missing static-cc "mmap write-back" "no static C compiler here ($(head -1 "$T_TMP/cc.err"))"
fi

# Read-only mode puts an overlay over the share, which cannot be told
# about host changes: nothing is cached there, and nothing is watched.
n=$("$CCVM" --ccvm-debug --read-only-cwd --shell -- true 2>&1 | grep -c 'watching .* directories of the share')
check "read-only: the host does not watch, the guest does not cache ($n)" [ "$n" -eq 0 ]
n=$("$CCVM" --ccvm-debug --shell -- true 2>&1 | grep -c 'watching .* directories of the share')
check "read-write: the host watches the share ($n)" [ "$n" -eq 1 ]

# --- read-only: root in the guest mounting the share again, read-write -----
# Over virtiofs (virtiofsd's read-only bind) and over 9p (QEMU's
# readonly=on): root mounts the share's tag again, read-write (9p serves one
# mount per channel: root first unmounts the read-only view, which frees
# it), tries to write, remounts read-write and tries again.  The host tree
# must not change.
R=$(new_project)
cd "$R" || exit 1
echo orig >keep
for via in virtiofs 9p; do
	before=$(find . -printf '%p %s %T@ %m\n' | sort; cat keep)
	fs=$via
	[ $via = 9p ] && fs="9p -o trans=virtio,version=9p2000.L"
	out=$( ([ $via = 9p ] && export CCVM_VIRTIOFSD=none
		"$CCVM" --read-only-cwd --shell -- sh -c '
	echo x >>keep; echo y >made; cat keep made
	d=$PWD; cd /
	sudo -n mkdir -p /mnt/again
	m() { sudo -n mount -t '"$fs"' ccvm.cwd /mnt/again 2>/dev/null; }
	if m; then
		echo remounted
	else
		sudo -n umount -l "$d"
		for i in 1 2 3 4 5 6 7 8 9 10; do m && echo remounted && break; sleep 0.5; done
	fi
	awk "\$2 == \"/mnt/again\" {print \"fstype\", \$3}" /proc/mounts
	[ -f /mnt/again/keep ] && echo reached
	sudo -n sh -c "echo evil >/mnt/again/evil" 2>/dev/null && echo wrote
	sudo -n mount -o remount,rw /mnt/again 2>/dev/null &&
		sudo -n sh -c "echo evil >/mnt/again/evil2" 2>/dev/null && echo wrote2
	true') 2>&1)
	rc=$?
	check "$via ro: session exits 0 (rc=$rc)" [ $rc -eq 0 ]
	check "$via ro: the guest sees its own writes" grep -q '^y$' <<<"$out"
	check "$via ro: root in the guest mounts the share again, over $via, and reaches it ($(grep '^fstype' <<<"$out"))" \
		bash -c 'grep -qx remounted <<<"$1" && grep -qx "fstype $2" <<<"$1" && grep -qx reached <<<"$1"' _ "$out" "$via"
	check "$via ro: ... but cannot write through it ($(tr '\n' '|' <<<"$out"))" \
		bash -c 'grep -qx reached <<<"$1" && ! grep -q "^wrote" <<<"$1"' _ "$out"
	after=$(find . -printf '%p %s %T@ %m\n' | sort; cat keep)
	check "$via ro: host tree byte-for-byte unchanged" [ "$before" = "$after" ]
done

# --- guest RAM: a nameless huge-page file (src/host/vm/ram.h) ---------------------
# virtiofsd maps guest RAM, so it is a shared file: ccvm's own, on a tmpfs
# mounted huge=always in a throw-away namespace and attached nowhere, not
# QEMU's memfd (4 KiB pages: ~0.3 s of every TCG boot).
cd "$P" || exit 1
rm -f up stop
"$CCVM" --shell -- sh -c 'touch up; while [ ! -e stop ]; do sleep 0.2; done' \
	>/dev/null 2>"$T_TMP/err" &
PID=$!
if wait_file up 120; then
	Q=$(pgrep -u "$(id -u)" -P "$PID" -f qemu-system | head -1)
	qargs=$(tr '\0' ' ' <"/proc/$Q/cmdline")
	check "QEMU's RAM is the inherited file, not a memfd" \
		grep -q 'memory-backend-file,id=mem,size=[0-9]*M,share=on,align=2M,mem-path=/proc/self/fd/8 ' <<<"$qargs"
	ram=/proc/$Q/fd/8
	check "the RAM file is on a tmpfs ($(stat -L -f -c %T "$ram"))" [ "$(stat -L -f -c %T "$ram")" = tmpfs ]
	check "the RAM file has no name ($(stat -L -c %h "$ram") links)" [ "$(stat -L -c %h "$ram")" = 0 ]
	# No mount anywhere on the host reaches its file system.
	dev=$(stat -L -c '%Hd:%Ld' "$ram")
	check "its tmpfs ($dev) is mounted nowhere on the host" \
		bash -c '! awk "{print \$3}" /proc/self/mountinfo /proc/1/mountinfo | grep -qx "$1"' _ "$dev"
	shmem=$(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null)
	pmd=$(awk '$1 == "ShmemPmdMapped:" {print $2}' "/proc/$Q/smaps_rollup")
	if [[ $shmem == *"[deny]"* || -z $shmem ]]; then
		skip_missing shmem-hugepages "guest RAM in 2 MiB pages" "the host denies huge shmem pages (shmem_enabled: $shmem)"
	else
		check "guest RAM is in 2 MiB pages (ShmemPmdMapped ${pmd:-?} kB)" [ "${pmd:-0}" -gt 0 ]
	fi
	touch stop
	wait "$PID"
	rc=$?
	check "the session ends normally (rc=$rc)" [ $rc -eq 0 ]
else
	not_ok "session with the RAM file started: $(tail -3 "$T_TMP/err")"
	kill "$PID" 2>/dev/null
	wait "$PID"
fi
rm -f up stop

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
