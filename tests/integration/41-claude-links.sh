#!/bin/bash
# Links ccvm follows on the host cannot be steered by the guest, ccvm shares
# no directory that holds secrets, and persistClaudeProjects shares this
# project's transcripts only (issue 20, items 2, 8 and 12).
#
# The attack of item 2: the user keeps dotfiles in a project, with
# ~/.claude/CLAUDE.md linked into it.  The guest of a session in that
# project replaces the project's CLAUDE.md by a link to the user's ssh key;
# the next session, started in another directory, must not stage the key.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
fake_home
U=$$$RANDOM
C_SSH=ccvmCanaryLinkedSshKey$U
C_OTHER=ccvmCanaryOtherTranscript$U
mkdir -p "$H/.ssh" "$H/.claude" "$T_TMP/dots"
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n-----END OPENSSH PRIVATE KEY-----\n' \
	"$C_SSH" >"$H/.ssh/id_ed25519"
chmod 600 "$H/.ssh/id_ed25519"
# Canaries go to the guest hex-encoded, so no argv holds them.
hexenc() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | sed 's/\(..\)/\\x\1/g'; }

P1=$(new_project) # holds the dotfiles
P2=$(new_project) # another project
mkdir -p "$P1/dotfiles"
printf '# dotfiles\ndotfile-md-marker-%s\n' "$U" >"$P1/dotfiles/CLAUDE.md"
ln -s "$P1/dotfiles/CLAUDE.md" "$H/.claude/CLAUDE.md"
# A benign link outside any share: always staged.
echo "{\"kb\": \"benign-kb-marker-$U\"}" >"$T_TMP/dots/keybindings.json"
ln -s "$T_TMP/dots/keybindings.json" "$H/.claude/keybindings.json"
name_of() { local p=$1; echo "${p//[^a-zA-Z0-9]/-}"; }

# Lists what the guest got: CLAUDE.md, keybindings, a canary count over the
# home and /tmp, the projects mount and directory.  $1: out dir (in the
# project), $2: hex canaries, $3: this project's transcripts directory name.
GUEST='
out=$1; mkdir -p "$out"; cd ~ || exit 1
echo probe-ran >"$out/marker"
cp .claude/CLAUDE.md "$out/CLAUDE.md" 2>/dev/null
cp .claude/keybindings.json "$out/kb.json" 2>/dev/null
pats=()
for h in $2; do printf -v p "%b" "$h"; pats+=(-e "$p"); done
grep -rlaF "${pats[@]}" ~ /tmp >"$out/leaks" 2>/dev/null
echo $? >"$out/leaks.rc"
awk "\$1 == \"ccvm.projects\" {print \$2}" /proc/mounts >"$out/projmount"
ls -A .claude/projects >"$out/projects.ls" 2>&1
if [ -n "$3" ] && [ -d ".claude/projects/$3" ]; then
	cat ".claude/projects/$3/host.jsonl" >"$out/host-transcript" 2>&1
	echo guest-wrote >".claude/projects/$3/guest.jsonl"
fi
exit 0
'
run_guest() { # run_guest PROJECT OUT HEXPATS NAME [VAR=VALUE...]
	local p=$1 o=$2 pats=$3 n=$4
	shift 4
	(cd "$p" && env "$@" timeout 600 "$CCVM" --shell -- bash -c "$GUEST" guest "$o" "$pats" "$n") \
		>"$o.stdout" 2>"$o.err"
}
HEX_SSH=$(hexenc "$C_SSH")
HEX_OTHER=$(hexenc "$C_OTHER")

# --- item 12: no share of what holds secrets ---------------------------------
# Each refusal: exit 2, one line naming the directory and why, before
# anything is built (an empty image cache stays empty; read-only, so that a
# ccvm that goes on fails at once instead of building) or started.
EMPTY_CACHE=$T_TMP/empty-cache
mkdir -p "$EMPTY_CACHE" "$H/.ssh/sub" "$H/.config/gh" "$T_TMP/h2" "$T_TMP/dots/claude" \
	"$H/work"
ln -s "$T_TMP/dots/claude" "$T_TMP/h2/.claude"
chmod 555 "$EMPTY_CACHE"
refused() { # refused DESC DIR WANT [VAR=VALUE...]
	local desc=$1 dir=$2 want=$3 rc lines
	shift 3
	(cd "$dir" && env XDG_CACHE_HOME="$EMPTY_CACHE" "$@" timeout 120 "$CCVM" --shell -- true) \
		>"$T_TMP/r.out" 2>"$T_TMP/r.err"
	rc=$?
	lines=$(wc -l <"$T_TMP/r.err")
	local good=no
	[ $rc -eq 2 ] && [ "$lines" -eq 1 ] &&
		grep -q "^ccvm: refusing to share $dir with the VM: .*$want.*CCVM_ALLOW_SECRET_DIRS=1" "$T_TMP/r.err" &&
		[ -z "$(ls -A "$EMPTY_CACHE")" ] && good=yes
	check "$desc: exit 2 (rc=$rc), one line naming it, nothing built" [ $good = yes ]
	[ $good = yes ] || sed 's/^/# /' "$T_TMP/r.err" | head -5
}
before=$(find "$T_TMP" -path "$T_TMP/r.*" -prune -o -print | sort)
refused "an ancestor of HOME" "$T_TMP" "contains the home directory $H"
refused "~/.ssh itself" "$H/.ssh" "contains $H/.ssh"
refused "inside ~/.ssh" "$H/.ssh/sub" "inside $H/.ssh"
refused "~/.config (holds ~/.config/gh and gcloud)" "$H/.config" "contains $H/.config/g"
refused "a directory holding the real ~/.claude" "$T_TMP/dots" \
	"contains $T_TMP/dots/claude" HOME="$T_TMP/h2"
refused "CCVM_ALLOW_SECRET_DIRS=0 is no override" "$H/.ssh/sub" "inside" \
	CCVM_ALLOW_SECRET_DIRS=0
after=$(find "$T_TMP" -path "$T_TMP/r.*" -prune -o -print | sort)
check "the refusals left nothing behind in the test area" [ "$before" = "$after" ]
check "no QEMU or virtiofsd started by the refusals" [ -z "$(leftovers)" ]

# The config file in the project: the guest could rewrite it.
mkdir -p "$P1/cfg"
echo '{}' >"$P1/cfg/ccvm.json"
mkdir -p "$H/.config/ccvm"
ln -s "$P1/cfg/ccvm.json" "$H/.config/ccvm/config.json"
(cd "$P1" && env XDG_CACHE_HOME="$EMPTY_CACHE" timeout 60 "$CCVM" --shell -- true) \
	>/dev/null 2>"$T_TMP/r.err"
rc=$?
good=no
[ $rc -eq 2 ] && [ "$(wc -l <"$T_TMP/r.err")" -eq 1 ] &&
	grep -q "config file $H/.config/ccvm/config.json: .*$P1.*refusing to start" "$T_TMP/r.err" &&
	[ -z "$(ls -A "$EMPTY_CACHE")" ] && good=yes
check "a config file linked into the project: refused before anything starts (rc=$rc)" [ $good = yes ]
[ $good = yes ] || sed 's/^/# /' "$T_TMP/r.err" | head -5

# --- session A, in P2: the benign links are staged; projects ------------------
# (The config link above is followed here: P1 is not shared.)  Another
# project's transcripts sit on the host; this project's directory gets a
# host file, and the guest writes one back.
N2=$(name_of "$P2")
mkdir -p "$H/.claude/projects/-some-other-project" "$H/.claude/projects/$N2"
printf '{"t":"%s"}\n' "$C_OTHER" >"$H/.claude/projects/-some-other-project/s.jsonl"
echo "host-transcript-marker-$U" >"$H/.claude/projects/$N2/host.jsonl"
OA=$P2/outA
run_guest "$P2" "$OA" "$HEX_SSH $HEX_OTHER" "$N2" CCVM_PERSIST_PROJECTS=1
rc=$?
check "session A (another project) exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$OA.err" | tail -20
check "session A: the guest probe ran" [ "$(cat "$OA/marker" 2>/dev/null)" = probe-ran ]
check "control: CLAUDE.md linked into a project that is not shared is staged" \
	grep -q "dotfile-md-marker-$U" "$OA/CLAUDE.md"
check "control: keybindings.json linked outside any share is staged" \
	grep -q "benign-kb-marker-$U" "$OA/kb.json"
check "control: the config file linked into an unshared project is used" \
	bash -c '! grep -q "config file" "$1"' _ "$OA.err"
# Item 8.
guest_home=$(getent passwd "$(id -u)" | cut -d: -f6)
check "persistClaudeProjects: only this project's directory is mounted" \
	[ "$(cat "$OA/projmount" 2>/dev/null)" = "$guest_home/.claude/projects/$N2" ]
check "persistClaudeProjects: the guest sees this project's directory only" \
	[ "$(cat "$OA/projects.ls" 2>/dev/null)" = "$N2" ]
check "persistClaudeProjects: a host transcript of this project is readable in the guest" \
	[ "$(cat "$OA/host-transcript" 2>/dev/null)" = "host-transcript-marker-$U" ]
check "persistClaudeProjects: a guest write there reaches the host" \
	[ "$(cat "$H/.claude/projects/$N2/guest.jsonl" 2>/dev/null)" = guest-wrote ]
check "no canary (another project's transcript, the key) under the guest home or /tmp" \
	bash -c '[ "$(cat "$1/leaks.rc")" = 1 ] && [ ! -s "$1/leaks" ]' _ "$OA"
[ -s "$OA/leaks" ] && sed "s/^/# /" "$OA/leaks"
# A new project's directory is made when missing.
P3=$(new_project)
N3=$(name_of "$P3")
OC=$P3/outC
run_guest "$P3" "$OC" "$HEX_OTHER" "$N3" CCVM_PERSIST_PROJECTS=1
rc=$?
check "persistClaudeProjects: a new project's directory is made and written back (rc=$rc)" \
	[ "$(cat "$H/.claude/projects/$N3/guest.jsonl" 2>/dev/null)" = guest-wrote ]
[ $rc -eq 0 ] || sed 's/^/# /' "$OC.err" | tail -10

# --- session B, in P1: its own dotfiles are refused; the guest attacks -------
rm "$H/.config/ccvm/config.json"
OB=$P1/outB
ATTACK='
out=$1; mkdir -p "$out"; cd ~ || exit 1
echo probe-ran >"$out/marker"
cp .claude/CLAUDE.md "$out/CLAUDE.md" 2>/dev/null
cd "$2/dotfiles" && rm -f CLAUDE.md && ln -s "$3" CLAUDE.md && echo repointed >"$out/attack"
exit 0
'
(cd "$P1" && timeout 600 "$CCVM" --shell -- bash -c "$ATTACK" guest "$OB" "$P1" "$H/.ssh/id_ed25519") \
	>"$OB.stdout" 2>"$OB.err"
rc=$?
check "session B (the dotfiles' project) exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$OB.err" | tail -20
check "session B: the guest probe ran" [ "$(cat "$OB/marker" 2>/dev/null)" = probe-ran ]
check "CLAUDE.md linked into the shared project: not staged" \
	bash -c '[ -e "$1" ] && ! grep -q "dotfile-md-marker" "$1"' _ "$OB/CLAUDE.md"
check "... with one warning line naming it" \
	grep -q "warning: $H/.claude/CLAUDE.md: .*$P1.*shared with the guest.*not staged" "$OB.err"
check "the guest repointed the project's CLAUDE.md at the ssh key (host sees the link)" \
	[ "$(readlink "$P1/dotfiles/CLAUDE.md")" = "$H/.ssh/id_ed25519" ]

# --- session C, in P2 again: the key must not be staged -----------------------
OC2=$P2/outC2
run_guest "$P2" "$OC2" "$HEX_SSH" ""
rc=$?
check "session C (another directory) exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$OC2.err" | tail -20
check "session C: the guest probe ran" [ "$(cat "$OC2/marker" 2>/dev/null)" = probe-ran ]
check "the ssh key reached through the repointed link is absent from the guest" \
	bash -c '[ "$(cat "$1/leaks.rc")" = 1 ] && [ ! -s "$1/leaks" ] && ! grep -q "$2" "$1/CLAUDE.md"' \
	_ "$OC2" "$C_SSH"
[ -s "$OC2/leaks" ] && sed "s/^/# /" "$OC2/leaks"
check "... with one warning line naming CLAUDE.md and the key" \
	grep -q "warning: $H/.claude/CLAUDE.md: it leads to $H/.ssh/id_ed25519.*not staged" "$OC2.err"
check "control: session C still stages the benign linked keybindings.json" \
	grep -q "benign-kb-marker-$U" "$OC2/kb.json"
check "control: session C still has the built-in CLAUDE.md note" grep -qi ccvm "$OC2/CLAUDE.md"

# --- item 12's positive control: the override runs ----------------------------
mkdir -p "$H/.ssh/proj"
OD=$H/.ssh/proj/outD
run_guest "$H/.ssh/proj" "$OD" "$HEX_OTHER" "" CCVM_ALLOW_SECRET_DIRS=1
rc=$?
check "CCVM_ALLOW_SECRET_DIRS=1: a session inside ~/.ssh runs (rc=$rc)" \
	bash -c '[ $1 -eq 0 ] && [ "$(cat "$2/marker" 2>/dev/null)" = probe-ran ]' _ $rc "$OD"
[ $rc -eq 0 ] || sed 's/^/# /' "$OD.err" | tail -10

check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
done_testing
