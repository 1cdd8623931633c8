#!/bin/bash
# nix.enable: Debian's nix-bin in a second guest image, multi-user (a
# nix-daemon started by ccvm-init, builds as the nixbld users), the agent
# not trusted, nix.conf from the options, and a writable store: in RAM by
# default, on the encrypted scratch disk with vmDiskSize.  The default
# image (nix.enable=false) has no nix.
#
# The test derivation's builder: Debian's nix-bin sets no sandbox-paths, so
# a build sandbox has no /bin/sh, and there is no network for a bootstrap.
# So the builder is a static C program compiled here and referenced as a
# path (`builder = ./builder;`): Nix copies it into the store, and it runs
# in the sandbox as a build user with nothing else.  It writes its
# /proc/self/uid_map into $out, which shows which host uid ran the build.
source "$(dirname "$0")/lib.sh"
export CCVM_ACCEL=tcg
unset CCVM_VM_DISK_SIZE CCVM_SCRATCH_DIR

# --- the default image: no nix ------------------------------------------------
need_image
P=$(new_project)
cd "$P" || exit 1
echo '{}' >"$T_TMP/default.json"
out=$(CCVM_CONFIG=$T_TMP/default.json "$CCVM" --shell -- bash -c \
	'command -v nix nix-daemon nix-build; echo "rc=$?"; test -e /etc/nix && echo etc-nix; echo end' 2>"$T_TMP/err")
check "default image: command -v nix fails, no /etc/nix (got: $(echo $out))" [ "$(echo $out)" = "rc=1 end" ]

# --- the Nix image: built once per test run, then cached ----------------------
# The options stay fixed so that the image is built once and then reused.
NIXCFG=$T_TMP/nix.json
cat >"$NIXCFG" <<'EOF'
{"nix": {"enable": true,
         "substituters": ["https://cache.example.org", "http://host.ccvm.internal:5000"],
         "trustedPublicKeys": ["cache.example.org-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}}
EOF
export CCVM_CONFIG=$NIXCFG
t0=$(date +%s)
if ! "$CCVM" --ccvm-build >"$T_TMP/build.out" 2>"$T_TMP/build.err"; then
	sed 's/^/# /' "$T_TMP/build.err" | tail -15
	not_ok "nix image: ccvm --ccvm-build builds the Nix guest image (see above)"
	done_testing
	exit 1
fi
if grep -q 'building the guest image' "$T_TMP/build.err"; then
	diag "Nix image built in $(($(date +%s) - t0)) s"
else
	diag "Nix image was cached"
fi
IMG=$(awk '$1 == "image" {print $2}' "$T_TMP/build.out")
DEF=$(CCVM_CONFIG=$T_TMP/default.json "$CCVM" --ccvm-build 2>/dev/null | awk '$1 == "image" {print $2}')
check "the Nix image is a second image next to the default one" \
	bash -c '[ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ] && [ -f "$1/root.sqfs" ]' _ "$IMG" "$DEF"
check "its manifest records nix.enable" grep -q '"enable": true' "$IMG/manifest.json"

P=$(new_project)
cd "$P" || exit 1
if ! command -v cc >/dev/null || ! printf 'int main(void){return 0;}\n' >t.c ||
	! cc -static -o t t.c 2>/dev/null; then
	skip_missing static-cc "nix builds" "no C compiler with static glibc here (Debian: gcc, libc6-dev)"
	HAVE_CC=0
else
	HAVE_CC=1
	rm -f t t.c
	cat >builder.c <<'EOF'
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
	const char *out = getenv("out");
	FILE *f = out ? fopen(out, "w") : NULL;
	FILE *m = fopen("/proc/self/uid_map", "r");
	char line[256];
	if (!f)
		return 2;
	fprintf(f, "ccvm-nix-test\n");
	while (m && fgets(line, sizeof(line), m))
		fprintf(f, "uid_map %s", line);
	return fclose(f) ? 3 : 0;
}
EOF
	cc -static -O2 -o builder builder.c
	echo 'derivation { name = "ccvm-nix-test"; system = "x86_64-linux"; builder = ./builder; }' >default.nix
	echo 'derivation { name = "ccvm-nix-scratch"; system = "x86_64-linux"; builder = ./builder; }' >scratch.nix
fi

# --- session 1: store in RAM --------------------------------------------------
cat >g1.sh <<'EOF'
exec >out1.txt 2>&1
X="--extra-experimental-features nix-command"
echo "== whoami $(id -un)"
echo "== version $(nix --version)"
echo "== remote $NIX_REMOTE"
echo "== ping"; nix $X store ping
echo "== show-config"; nix $X show-config
echo "== nix.conf"; cat /etc/nix/nix.conf
echo "== nixbld $(getent group nixbld)"
echo "== nixmount $(awk '$2 == "/nix"' /proc/mounts | wc -l)"
if [ -e builder ]; then
	p=$(nix-build --no-out-link --option substitute false default.nix)
	echo "== build rc=$? $p"
	echo "== output"; cat "$p"
	echo "== untrusted"
	nix-build --debug --no-out-link --option substitute false \
		--option sandbox false --option substituters http://untrusted.invalid \
		default.nix 2>&1 | grep -E 'not a trusted user|ignoring untrusted'
	if sudo -n true 2>/dev/null; then
		r=$(sudo -n env NIX_REMOTE=daemon nix-build --debug --no-out-link \
			--option substitute false --option sandbox false \
			--option substituters http://untrusted.invalid default.nix 2>&1)
		echo "== rootrc $?"
		echo "== root"
		grep -E 'not a trusted user|ignoring untrusted' <<<"$r"
		echo "== daemon log"; sudo -n cat /run/ccvm/nix-daemon.log
	fi
fi
echo "== end"
EOF
rm -f out1.txt
timeout 300 "$CCVM" --shell -- bash g1.sh >"$T_TMP/out1" 2>"$T_TMP/err1"
rc=$?
check "nix session ends normally (rc=$rc)" [ $rc -eq 0 ]
if [ ! -f out1.txt ]; then
	not_ok "the nix session wrote its report"; sed 's/^/# /' "$T_TMP/err1" | tail -20
else
	sec() { awk -v s="== $1" 'index($0, "== ") == 1 {on = index($0, s) == 1; next} on' out1.txt; }
	line() { grep -m1 "^== $1" out1.txt; }
	check "nix --version as the agent: $(line version)" grep -qx "== version nix (Nix) 2.8.0" out1.txt
	check "the agent is the host user" grep -qx "== whoami $(id -un)" out1.txt
	check "the agent talks to the daemon (NIX_REMOTE=daemon, nix store ping)" \
		bash -c 'grep -qx "== remote daemon" "$1" && grep -qx "Store URL: daemon" "$1"' _ out1.txt
	conf=$(sec nix.conf)
	check "nix.conf: the configured substituters, nothing else" \
		grep -qx 'substituters = https://cache.example.org http://host.ccvm.internal:5000' <<<"$conf"
	check "nix.conf: the configured trusted-public-keys, nothing else" \
		grep -qx 'trusted-public-keys = cache.example.org-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' <<<"$conf"
	check "nix.conf: require-sigs = true, trusted-users = root only" \
		bash -c 'grep -qx "require-sigs = true" <<<"$1" && grep -qx "trusted-users = root" <<<"$1"' _ "$conf"
	sc=$(sec show-config)
	check "show-config as the agent: trusted-users = root, substituters as configured" \
		bash -c 'grep -qx "trusted-users = root" <<<"$1" &&
			grep -qx "substituters = https://cache.example.org http://host.ccvm.internal:5000" <<<"$1" &&
			grep -qx "require-sigs = true" <<<"$1"' _ "$sc"
	check "build users exist ($(line nixbld))" grep -qx '== nixbld nixbld:x:30000:nixbld1,.*nixbld8' out1.txt
	check "without a scratch disk /nix is the root overlay's (no extra mount)" grep -qx '== nixmount 0' out1.txt
	if [ "$HAVE_CC" = 1 ]; then
		check "a local derivation builds: $(line build)" grep -Eq '^== build rc=0 /nix/store/[a-z0-9]{32}-ccvm-nix-test$' out1.txt
		output=$(sec output)
		check "its output is the builder's" [ "$(head -1 <<<"$output")" = ccvm-nix-test ]
		# uid_map: <inside> <outside> <count>: uid 1000 in the sandbox's
		# user namespace is build user nixbld1..8 outside.
		check "it ran sandboxed as a Nix build user ($(grep uid_map <<<"$output" | tr -s ' '))" \
			grep -Eq "^uid_map +1000 +3000[1-8] +1$" <<<"$output"
		untr=$(sec untrusted)
		check "the daemon treats the agent as untrusted: restricted setting ignored" \
			grep -q "ignoring the client-specified setting 'sandbox', because it is a restricted setting and you are not a trusted user" <<<"$untr"
		check "the daemon treats the agent as untrusted: its substituter ignored" \
			grep -q "ignoring untrusted substituter 'http://untrusted.invalid'" <<<"$untr"
		if grep -q '^== root' out1.txt; then
			check "root's build through the daemon works ($(line rootrc))" grep -qx "== rootrc 0" out1.txt
			check "root (trusted) gets no such refusal" [ -z "$(sec root)" ]
			log=$(sec "daemon log")
			check "daemon log: the agent's connections are not trusted" \
				grep -q "accepted connection from pid [0-9]*, user $(id -un)\$" <<<"$log"
			check "daemon log: no connection of the agent is trusted" \
				bash -c '! grep -q "user $1 (trusted)" <<<"$2"' _ "$(id -un)" "$log"
			check "daemon log: root's connection is trusted" grep -q "user root (trusted)" <<<"$log"
		else
			not_ok "trusted root comparison: sudo works for the agent (agentSudo is on by default)"
		fi
	fi
	check "the report is complete" grep -qx "== end" out1.txt
	[ $T_FAILS -eq 0 ] || sed 's/^/# /' out1.txt | tail -40
fi

# --- session 2: store on the scratch disk --------------------------------------
cat >g2.sh <<'EOF'
exec >out2.txt 2>&1
echo "== mount $(awk '$2 == "/nix" {print $3, $4}' /proc/mounts)"
ls /run/ccvm/scratch >/dev/null 2>&1 && echo "== agent sees scratch root"
if [ -e builder ]; then
	# With substitution on, the daemon asks the configured substituters
	# first (none is reachable: the warnings name them), then builds.
	p=$(nix-build --no-out-link scratch.nix 2>subst.txt)
	echo "== build rc=$? $p"
	echo "== substituters $(grep -c 'cache.example.org/nix-cache-info' subst.txt) $(grep -c 'host.ccvm.internal:5000/nix-cache-info' subst.txt)"
	if sudo -n true 2>/dev/null; then
		echo "== upper $(sudo -n ls /run/ccvm/scratch/nix/upper/store | grep -c -- "^${p#/nix/store/}\$")"
	fi
fi
echo "== end"
EOF
rm -f out2.txt
CCVM_VM_DISK_SIZE=1 timeout 300 "$CCVM" --shell -- bash g2.sh >"$T_TMP/out2" 2>"$T_TMP/err2"
rc=$?
check "nix session with vmDiskSize=1 ends normally (rc=$rc)" [ $rc -eq 0 ]
if [ ! -f out2.txt ]; then
	not_ok "the scratch nix session wrote its report"; sed 's/^/# /' "$T_TMP/err2" | tail -20
else
	line() { grep -m1 "^== $1" out2.txt; }
	check "/nix is an overlay with its upper on the scratch disk: $(line mount)" \
		grep -Eq '^== mount overlay .*upperdir=/run/ccvm/scratch/nix/upper,workdir=/run/ccvm/scratch/nix/work' out2.txt
	check "the agent cannot reach the store's upper directory directly" bash -c '! grep -q "^== agent sees scratch root" out2.txt'
	if [ "$HAVE_CC" = 1 ]; then
		check "a derivation builds into the scratch store: $(line build)" \
			grep -Eq '^== build rc=0 /nix/store/[a-z0-9]{32}-ccvm-nix-scratch$' out2.txt
		check "the daemon asked both configured substituters ($(line substituters))" \
			grep -Eq '^== substituters [1-9][0-9]* [1-9][0-9]*$' out2.txt
		if grep -q '^== upper' out2.txt; then
			check "the built path lies in the upper directory on /scratch's disk" grep -qx '== upper 1' out2.txt
		else
			not_ok "built path in the upper directory: sudo works for the agent (agentSudo is on by default)"
		fi
	fi
	check "the report is complete" grep -qx "== end" out2.txt
	[ $T_FAILS -eq 0 ] || sed 's/^/# /' out2.txt | tail -20
fi
check "no QEMU left behind" [ -z "$(leftovers)" ]
done_testing
