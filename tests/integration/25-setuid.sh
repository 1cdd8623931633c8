#!/bin/bash
# No setuid or setgid file for the host (issue 20): root in the guest sets
# S_ISUID/S_ISGID on files and directories in the share, by chmod, by
# install -m and by creating a file with the bits; on the host none of them
# carries either bit, over virtiofs and over 9p.  An ordinary chmod in the
# same run does reach the host.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg

# Runs as root in the guest, in the share.  Each step prints NAME=rc.
cat >"$T_TMP/g.sh" <<'EOF'
touch f4 f2 f6 ctl755 ctl700
mkdir d2 d4 ctld
chmod 644 ctl755 ctl700
chmod 4755 f4; echo "chmod4755=$?"
chmod 2755 f2; echo "chmod2755=$?"
chmod 6755 f6; echo "chmod6755=$?"
chmod 2755 d2; echo "chmoddir2755=$?"
chmod u+s,g+s d4; echo "chmoddirugs=$?"
install -m 6755 /bin/true inst6; echo "install6755=$?"
perl -MFcntl -e 'sysopen(F, "open6", O_CREAT | O_WRONLY, 06755) or exit 1'; echo "open6755=$?"
mkdir -m 2775 mkd2; echo "mkdir2775=$?"
cp -p /usr/bin/sudo cpsudo; echo "cpsudo=$?"
chmod 755 ctl755; echo "ctl755=$?"
chmod 700 ctl700; echo "ctl700=$?"
chmod 1777 ctld; echo "ctld=$?"
EOF
# And as the guest's user, on its own file.
USER_STEP='touch fu; chmod 4755 fu; echo "user4755=$?"; echo GUEST-DONE'

for via in virtiofs 9p; do
	P=$(new_project)
	cd "$P" || exit 1
	cp "$T_TMP/g.sh" g.sh
	if [ $via = 9p ]; then
		CCVM_VIRTIOFSD=none timeout 300 "$CCVM" --shell -- \
			bash -c "sudo -n bash g.sh; $USER_STEP" >"$T_TMP/out" 2>&1
	else
		timeout 300 "$CCVM" --shell -- \
			bash -c "sudo -n bash g.sh; $USER_STEP" >"$T_TMP/out" 2>&1
	fi
	rc=$?
	diag "$via: $(tr '\n' ' ' <"$T_TMP/out" | head -c 600)"
	check "$via: the guest's script ran to its end (rc=$rc)" grep -q GUEST-DONE "$T_TMP/out"
	check "$via: root in the guest ran the steps" grep -q '^ctl755=0' "$T_TMP/out"
	for f in f4 f2 f6 d2 d4 inst6 open6 mkd2 cpsudo fu; do
		if [ -e "$f" ]; then
			m=$(stat -c %a "$f")
			check "$via: $f has no setuid or setgid bit on the host (mode $m)" \
				[ $((8#$m & 8#6000)) -eq 0 ]
		else
			ok "$via: $f has no setuid or setgid bit on the host (not made)"
		fi
	done
	check "$via: control: chmod 755 reached the host ($(stat -c %a ctl755))" \
		[ "$(stat -c %a ctl755)" = 755 ]
	check "$via: control: chmod 700 reached the host ($(stat -c %a ctl700))" \
		[ "$(stat -c %a ctl700)" = 700 ]
	check "$via: control: a sticky directory reached the host ($(stat -c %a ctld))" \
		[ "$(stat -c %a ctld)" = 1777 ]
	check "$via: control: the guest made files here (f4 exists)" [ -f f4 ]
	cd / || exit 1
done
check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
done_testing
