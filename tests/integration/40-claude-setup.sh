#!/bin/bash
# The user's Claude setup inside the VM, their credentials never (issue 5,
# DESIGN.md section 4 promises 1-4).  A fake HOME holds canary secrets in
# every place a secret lives; real sessions then look for them everywhere
# in the guest (files, process environments, kernel command line) and on
# the host's process list.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
# The image cache stays where need_image found it; everything else of the
# user's environment is replaced by the fixture.
fake_home

# --- the fixture -----------------------------------------------------------
# Unique canaries; none may appear anywhere in the guest.  Neither may the
# API key: the credential proxy (the default, 36-apiproxy.sh) gives the
# agent a placeholder; session 3 runs with credentialProxy=false, where the
# key is in the agent's environment.
U=$$$RANDOM
C_CRED_TOP=ccvmCanaryCredTop$U
C_CRED_NESTED=ccvmCanaryCredNested$U
C_CRED_LINKED=ccvmCanaryCredLinked$U
C_CRED_PLUGIN=ccvmCanaryCredPlugin$U
C_OUTSIDE=ccvmCanaryOutsideLink$U
C_PRIMARY=ccvmCanaryPrimaryKey$U
C_MCP_ENV=ccvmCanaryMcpEnv$U
C_MCP_HDR=ccvmCanaryMcpHeader$U
C_PROJ_ENV=ccvmCanaryProjMcpEnv$U
C_GIT_HELPER=ccvmCanaryGitHelper$U
C_GIT_URL=ccvmCanaryGitUrlPass$U
C_GIT_CREDS=ccvmCanaryGitCredsFile$U
C_SIGNKEY=ccvmCanarySigningKey$U
C_SSH=ccvmCanarySshKey$U
C_ENV=ccvmCanaryEnvToken$U
C_HIST=ccvmCanaryHistory$U
C_SETTINGS=ccvmCanarySettingsEnv$U
KEY=sk-ant-ccvmCanaryApiKey$U
CANARIES=("$C_CRED_TOP" "$C_CRED_NESTED" "$C_CRED_LINKED" "$C_CRED_PLUGIN"
	"$C_OUTSIDE" "$C_PRIMARY" "$C_MCP_ENV" "$C_MCP_HDR" "$C_PROJ_ENV"
	"$C_GIT_HELPER" "$C_GIT_URL" "$C_GIT_CREDS" "$C_SIGNKEY" "$C_SSH"
	"$C_ENV" "$C_HIST" "$C_SETTINGS")

C=$H/.claude
mkdir -p "$C"/{commands,agents,output-styles,plugins/p1,config,projects,todos,statsig} \
	"$H/dotfiles/claude-skills/s1" "$H/dotfiles/claude-skills/big" \
	"$H/dotfiles/claude-skills/sub" "$H/shared-secrets" "$H/.ssh" "$XDG_CONFIG_HOME"
printf '{"claudeAiOauth":{"accessToken":"%s","refreshToken":"%s"}}\n' \
	"$C_CRED_TOP" "$C_CRED_TOP" >"$C/.credentials.json"
chmod 600 "$C/.credentials.json"
printf '{"theme": "dark", "hostSettingsMarker": true, "apiKeyHelper": "echo %s",
 "env": {"GITHUB_TOKEN": "%s", "DISABLE_TELEMETRY": "1"}}\n' \
	"$C_SETTINGS" "$C_SETTINGS" >"$C/settings.json"
printf '# Host instructions\nhost-claude-md-marker\n' >"$C/CLAUDE.md"
echo '{"bindings": "host-keybindings-marker"}' >"$C/keybindings.json"
echo 'host-command-marker' >"$C/commands/hello.md"
: >"$C/commands/empty.md"
printf '#!/bin/sh\necho run\n' >"$C/commands/run.sh"
chmod 755 "$C/commands/run.sh"
echo 'host-agent-marker' >"$C/agents/helper.md"
echo 'host-output-style-marker' >"$C/output-styles/terse.md"
echo '{"plugin": "host-plugin-marker"}' >"$C/plugins/p1/plugin.json"
printf '{"token":"%s"}\n' "$C_CRED_PLUGIN" >"$C/plugins/p1/.credentials.json"
echo '{"config": "host-config-marker"}' >"$C/config/c.json"
printf '{"display":"%s"}\n' "$C_HIST" >"$C/history.jsonl"
printf '[{"content":"%s"}]\n' "$C_HIST" >"$C/todos/t.json"
printf '%s\n' "$C_HIST" >"$C/statsig/s"
# skills: the item is a symlink into ~/dotfiles (as stow/home-manager make
# it), with a nested credentials file and a 1 MiB file.
echo 'host-skill-marker' >"$H/dotfiles/claude-skills/s1/SKILL.md"
head -c 1048576 /dev/urandom >"$H/dotfiles/claude-skills/big/blob.bin"
printf '{"t":"%s"}\n' "$C_CRED_NESTED" >"$H/dotfiles/claude-skills/sub/.credentials.json"
ln -s ../dotfiles/claude-skills "$C/skills"
# Links inside shared directories that lead out of the allowed roots or to
# the credential: a directory holding a credentials file, an ssh key, the
# top-level credential under another name, and a hard link to it.
printf '{"t":"%s"}\n' "$C_CRED_LINKED" >"$H/shared-secrets/.credentials.json"
printf '%s\n' "$C_OUTSIDE" >"$H/shared-secrets/notes.md"
ln -s "$H/shared-secrets" "$C/commands/shared"
ln -s "$H/.ssh/id_ed25519" "$C/commands/ssh-key.md"
ln -s ../.credentials.json "$C/agents/creds.json"
ln "$C/.credentials.json" "$C/agents/hard.md"
printf -- '-----BEGIN OPENSSH PRIVATE KEY-----\n%s\n-----END OPENSSH PRIVATE KEY-----\n' \
	"$C_SSH" >"$H/.ssh/id_ed25519"
chmod 600 "$H/.ssh/id_ed25519"
cat >"$H/.claude.json" <<EOF
{
  "userID": "user-id-marker-$U",
  "primaryApiKey": "$C_PRIMARY",
  "numStartups": 7,
  "oauthAccount": {"emailAddress": "host@example.com", "accountUuid": "acct-marker"},
  "mcpServers": {
    "hostserver": {"command": "/usr/bin/mcp-host-marker", "args": ["--x"],
      "env": {"MCP_TOKEN": "$C_MCP_ENV"},
      "headers": {"Authorization": "Bearer $C_MCP_HDR"}}
  },
  "projects": {
    "/some/project": {"allowedTools": [],
      "mcpServers": {"projserver": {"command": "proj-cmd-marker",
        "env": {"K": "$C_PROJ_ENV"}}}}
  }
}
EOF
printf 'https://user:%s@github.com\n' "$C_GIT_CREDS" >"$H/.git-credentials"
echo '*.excludedbyhost' >"$H/.gitignore_global"
cat >"$H/.gitconfig" <<EOF
[user]
	name = Host Person
	email = host-person@example.com
	signingkey = $C_SIGNKEY
[commit]
	gpgsign = true
[tag]
	gpgsign = true
[core]
	excludesfile = ~/.gitignore_global
[alias]
	st = status
[credential]
	helper = store --file=/opt/$C_GIT_HELPER
[credential "https://example.com"]
	username = someone
[url "https://someone:$C_GIT_URL@example.com/"]
	insteadOf = https://example.com/
EOF

# Canaries go to the guest hex-encoded (\xNN), so no argv holds them.
hexenc() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | sed 's/\(..\)/\\x\1/g'; }
HEX_CANARIES=
for c in "${CANARIES[@]}"; do HEX_CANARIES+="$(hexenc "$c") "; done
HEX_KEY=$(hexenc "$KEY")
CONTROL=ccvmControlCanary$U # planted in the guest: the scan must find it
HEX_CONTROL=$(hexenc "$CONTROL")

# --- guest side ------------------------------------------------------------
# Runs as the agent user: records what it sees into $1/out, exercises git
# and the projects share, then scans the guest as root.
GUEST_MAIN='
set -u
P=$1 hexpats=$2 hexkey=$3 hexcontrol=$4
out=$P/out
mkdir -p "$out"
: >"$out/started"
awk "\$3 == \"9p\" || \$3 == \"virtiofs\" {print \$1, \$2}" /proc/mounts | sort >"$out/9p"
cd ~ || exit 1
find . -path ./.claude/projects -prune -o -print | sort >"$out/home.list"
for f in .claude.json .claude/CLAUDE.md .claude/settings.json .gitconfig \
	.config/git/ignore; do
	[ -f "$f" ] && cp "$f" "$out/$(echo "$f" | tr / _)"
done
cp .claude/skills/big/blob.bin "$out/blob.bin" 2>/dev/null
stat -c "%n %a %U" .claude/commands/run.sh .claude/commands/hello.md >"$out/modes" 2>&1
touch .claude/guest-can-write 2>/dev/null && echo yes >"$out/claude-writable"
git config --get-regexp credential >"$out/git.cred" 2>&1
echo $? >"$out/git.cred.rc"
git config --global --list >"$out/git.list" 2>&1
mkdir "$P/repo" && cd "$P/repo" && git init -q &&
	echo hi >f && touch x.excludedbyhost && git add -A &&
	git commit -qm "from the guest" >"$out/git.commit" 2>&1
echo $? >"$out/git.commit.rc"
git log -1 --format="%an|%ae|%G?" >"$out/git.log" 2>&1
git ls-files >"$out/git.files" 2>&1
cd ~
n=${P//[^a-zA-Z0-9]/-} # this project'"'"'s transcripts, as Claude Code names them
echo persisted >".claude/projects/$n/p.txt"
echo not-persisted >.claude/not-persisted.txt
echo "{}" >.claude/settings.json
printf -v key "%b" "$hexkey"
if tr "\0" "\n" </proc/$$/environ | grep -qxF "ANTHROPIC_API_KEY=$key"; then
	echo yes >"$out/key-in-agent"
elif tr "\0" "\n" </proc/$$/environ | grep -q "^ANTHROPIC_API_KEY=."; then
	echo yes >"$out/placeholder-in-agent"
fi
printf -v control "%b" "$hexcontrol"
echo "$control" >/tmp/control.txt
sudo -n bash -c "$SCAN" scan "$hexpats" "$hexkey" "$hexcontrol" $$ >"$out/scan" 2>"$out/scan.err"
echo $? >"$out/scan.rc"
rm -f /tmp/control.txt
'
# Runs as root in the guest.  Prints LEAK lines for every canary found,
# KEYENV lines for every process whose environment holds the key, and
# counts; the host decides.
GUEST_SCAN='
set -u
hexpats=$1 key= control= agent=$4
printf -v key "%b" "$2"
printf -v control "%b" "$3"
pats=(-e "$key" -e "$control")
for h in $hexpats; do printf -v p "%b" "$h"; pats+=(-e "$p"); done
# Processes: environments and command lines.
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	env=$(tr "\0" "\n" <"$d/environ" 2>/dev/null)
	cmd=$(tr "\0" " " <"$d/cmdline" 2>/dev/null)
	for ((i = 2; i < ${#pats[@]}; i += 2)); do
		p=${pats[i+1]}
		[[ $env == *"$p"* ]] && echo "LEAK environ of $pid"
	done
	[[ $cmd == *"$key"* ]] && echo "LEAK key in cmdline of $pid"
	if [[ $env == *"$key"* ]]; then
		q=$pid desc=no
		while [ "$q" -gt 1 ]; do
			[ "$q" = "$agent" ] && desc=yes && break
			q=$(awk "/^PPid:/ {print \$2}" "/proc/$q/status" 2>/dev/null || echo 0)
			[ -n "$q" ] || q=0
		done
		echo "KEYENV $pid $desc $(cat "$d/comm" 2>/dev/null)"
	fi
done
for ((i = 0; i < ${#pats[@]}; i += 2)); do
	[[ $(cat /proc/cmdline) == *"${pats[i+1]}"* ]] && echo "LEAK /proc/cmdline"
done
# Files: every local file system; proc, sys and the 9p shares (the
# project, the persisted projects) pruned.  Not find -xdev: overlayfs
# reports the lower layer device for directories only in it.
prune=()
while read -r _ mnt type _; do
	case $type in overlay | tmpfs | devtmpfs | ramfs | ext4 | squashfs | xfs | btrfs) echo "MOUNT $mnt $type" ;;
	*) [ "$mnt" = / ] || prune+=(-path "$mnt" -prune -o) ;;
	esac
done </proc/mounts
find / "${prune[@]}" -type f -print0 2>/dev/null >/dev/shm/.ccvm-scan-list
n=$(tr -cd "\0" </dev/shm/.ccvm-scan-list | wc -c)
while IFS= read -r f; do
	echo "LEAK file $f"
done < <(xargs -0 -r grep -laF "${pats[@]}" -- </dev/shm/.ccvm-scan-list 2>/dev/null)
rm -f /dev/shm/.ccvm-scan-list
echo "FILES $n"
'

run_guest() { # run_guest PROJECT: GUEST_MAIN in a session there
	(cd "$1" && "$CCVM" --shell -- env SCAN="$GUEST_SCAN" bash -c "$GUEST_MAIN" \
		guest "$1" "$HEX_CANARIES" "$HEX_KEY" "$HEX_CONTROL")
}

# Polls the host's process list while a session runs: argv of every
# process (ps) and /proc/*/cmdline of ours; the environments of ccvm (after
# it has sent the key) and QEMU.  Pure bash matching: no argv holds $KEY.
poll_host() { # poll_host CCVM_PID
	local ccvm=$1 n=0 envs=0 a f
	while kill -0 "$ccvm" 2>/dev/null; do
		a=$(ps -eo args 2>/dev/null)
		[[ $a == *"$KEY"* ]] && echo "ps args" >>"$T_TMP/ps.hits"
		for f in /proc/[0-9]*; do
			[ -O "$f" ] || continue
			a=$(tr '\0' ' ' 2>/dev/null <"$f/cmdline")
			[[ $a == *"$KEY"* ]] && echo "cmdline ${f#/proc/}: $(cat "$f/comm")" >>"$T_TMP/ps.hits"
		done
		for f in $(my_qemu "$P1"); do
			a=$(tr '\0' '\n' 2>/dev/null <"/proc/$f/environ") && envs=$((envs + 1))
			[[ $a == *"$KEY"* ]] && echo "environ of qemu $f" >>"$T_TMP/ps.hits"
		done
		if [ -e "$P1/out/started" ]; then
			a=$(tr '\0' '\n' 2>/dev/null <"/proc/$ccvm/environ") && envs=$((envs + 1))
			[[ $a == *"$KEY"* ]] && echo "environ of ccvm after hand-over" >>"$T_TMP/ps.hits"
		fi
		n=$((n + 1))
		sleep 0.2
	done
	echo "$n $envs" >"$T_TMP/ps.polls"
}

# QEMU and virtiofsd processes of a session in project $1 (others may
# share this user): their argv or working directory names it.
my_qemu() {
	local pid
	for pid in $(pgrep -u "$(id -u)" -f 'qemu-system|virtiofsd'); do
		if [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$1"* ||
			$(readlink "/proc/$pid/cwd" 2>/dev/null) == "$1"* ]]; then
			echo "$pid"
		fi
	done
}

# --- session 1: defaults, key, persisted projects, the full scan -----------
P1=$(new_project)
export MY_SECRET_TOKEN=$C_ENV
host_settings=$(sha256sum <"$C/settings.json")
ANTHROPIC_API_KEY=$KEY CCVM_PERSIST_PROJECTS=1 run_guest "$P1" >"$T_TMP/s1.out" 2>"$T_TMP/s1.err" &
s1=$!
poll_host "$s1"
wait "$s1"
rc=$?
O=$P1/out
check "session 1 exits 0 (rc=$rc)" [ $rc -eq 0 ]
if [ $rc -ne 0 ]; then sed 's/^/# /' "$T_TMP/s1.err" | tail -20; fi
check "session 1: staging warned about the links it refused" \
	grep -q 'shared-secrets.*not staged' "$T_TMP/s1.err"

# The canary scan.
check "scan ran as root in the guest (rc=$(cat "$O/scan.rc" 2>/dev/null))" [ "$(cat "$O/scan.rc" 2>/dev/null)" = 0 ]
files=$(awk '/^FILES/ {print $2}' "$O/scan" 2>/dev/null)
check "scan covered the guest's file systems (${files:-0} files)" [ "${files:-0}" -gt 3000 ]
check "scan finds the control canary planted in the guest" \
	grep -qx 'LEAK file /tmp/control.txt' "$O/scan"
leaks=$(grep '^LEAK' "$O/scan" 2>/dev/null | grep -vx 'LEAK file /tmp/control.txt')
check "no canary in any guest file, environment or command line" [ -z "$leaks" ]
[ -z "$leaks" ] || diag "$leaks"
check "the agent's ANTHROPIC_API_KEY is a placeholder, not the key (credential proxy)" \
	bash -c '[ -s "$1/placeholder-in-agent" ] && [ ! -e "$1/key-in-agent" ]' _ "$O"
badkey=$(grep '^KEYENV' "$O/scan")
check "the API key is in no guest process's environment" [ -z "$badkey" ]
[ -z "$badkey" ] || diag "$badkey"
check "the API key is not in guest PID 1's environment" \
	bash -c '! grep -q "^KEYENV 1 " "$1"' _ "$O/scan"
read -r polls envs <"$T_TMP/ps.polls" || polls=0 envs=0
# ccvm's own environment is root's to read (not dumpable, 61-key-copies.sh);
# a poll takes a while on a loaded machine.
clean=no; [ ! -s "$T_TMP/ps.hits" ] && [ "$polls" -gt 5 ] && [ "$envs" -gt 2 ] && clean=yes
check "host ps, QEMU's and ccvm's environments never show the key ($polls polls, $envs environments)" [ $clean = yes ]
[ -s "$T_TMP/ps.hits" ] && diag "$(sort -u "$T_TMP/ps.hits")"
check "no QEMU or virtiofsd left after session 1" [ -z "$(my_qemu "$P1")" ]

# What was staged (defaults: all but plugins and config).
L=$O/home.list
has() { grep -qxF "./$1" "$L"; }
for item in .claude/settings.json .claude/CLAUDE.md .claude/keybindings.json \
	.claude/commands/hello.md .claude/commands/empty.md .claude/agents/helper.md \
	.claude/skills/s1/SKILL.md .claude/output-styles/terse.md .claude.json .gitconfig \
	.config/git/ignore; do
	check "default: $item staged" has "$item"
done
for item in .claude/plugins .claude/config .claude/history.jsonl .claude/todos \
	.claude/statsig .claude/.credentials.json .claude/commands/shared \
	.claude/commands/ssh-key.md .claude/agents/creds.json .claude/agents/hard.md \
	.claude/skills/sub/.credentials.json .ssh .git-credentials; do
	check "default: $item not staged" bash -c '! grep -q "^\./$1\(/\|$\)" "$2"' _ "$item" "$L"
done
check "no .credentials.json anywhere in the guest home" bash -c '! grep -q "credentials" "$1"' _ "$L"
check "1 MiB skills file arrives intact" cmp -s "$O/blob.bin" "$H/dotfiles/claude-skills/big/blob.bin"
check "executable staged file keeps its x bit" grep -q 'run.sh 700 ' "$O/modes"
check "plain staged file is 0600, owned by the agent" grep -q "hello.md 600 $(id -un)" "$O/modes"
check "guest ~/.claude is writable by the agent" [ -s "$O/claude-writable" ]
check "settings.json arrives without its credential env and helper, the rest kept" \
	jq -e '.hostSettingsMarker == true and .env == {"DISABLE_TELEMETRY": "1"} and
		(has("apiKeyHelper") | not)' "$O/.claude_settings.json"
check "staging named the settings.json entries it dropped" \
	grep -q 'settings.json: env.GITHUB_TOKEN not staged' "$T_TMP/s1.err"

# CLAUDE.md: the host's, then the built-in note.
md=$O/.claude_CLAUDE.md
hostmd=$(cat "$C/CLAUDE.md")
check "CLAUDE.md starts with the host CLAUDE.md" [ "$(head -c ${#hostmd} "$md" 2>/dev/null)" = "$hostmd" ]
check "CLAUDE.md then has the built-in ccvm note" \
	bash -c 'tail -n +4 "$1" | grep -qi ccvm' _ "$md"

check "CLAUDE.md note: the project path, writable, projects persist" \
	bash -c 'grep -qF "$2" "$1" && grep -qi "writable" "$1" && grep -q "claude/projects persists" "$1"' _ "$md" "$P1"
# Promise 1: the only host paths in the guest are the project and, when
# persisting, ~/.claude/projects.
N1=${P1//[^a-zA-Z0-9]/-}
want=$(printf 'ccvm.cwd %s\nccvm.projects %s\n' "$P1" "$(getent passwd "$(id -u)" | cut -d: -f6)/.claude/projects/$N1" | sort)
check "the only host shares (9p, virtiofs) are the project and its ~/.claude/projects directory" [ "$(cat "$O/9p" 2>/dev/null)" = "$want" ]
[ "$(cat "$O/9p" 2>/dev/null)" = "$want" ] || diag "$(cat "$O/9p" 2>/dev/null)"

# Sanitized .claude.json.
jqt() { jq -e "$@" >/dev/null 2>&1; }
J=$O/.claude.json
check ".claude.json is valid JSON in the guest" jqt . "$J"
check ".claude.json keeps the user id" jqt --arg u "user-id-marker-$U" '.userID == $u' "$J"
check ".claude.json keeps MCP server names and commands" jqt \
	'.mcpServers.hostserver.command == "/usr/bin/mcp-host-marker" and .mcpServers.hostserver.args == ["--x"] and .projects["/some/project"].mcpServers.projserver.command == "proj-cmd-marker"' "$J"
check ".claude.json: primaryApiKey, env and headers removed" jqt \
	'(has("primaryApiKey") | not) and (.mcpServers.hostserver | has("env") or has("headers") | not) and (.projects["/some/project"].mcpServers.projserver | has("env") | not)' "$J"
check ".claude.json keeps oauthAccount metadata" jqt '.oauthAccount.emailAddress == "host@example.com"' "$J"

# Git.
check "guest git config has no credential entries" \
	bash -c '[ "$(cat "$1/git.cred.rc")" = 1 ] && [ ! -s "$1/git.cred" ]' _ "$O"
check "guest git commit succeeds (signing off; rc=$(cat "$O/git.commit.rc" 2>/dev/null))" [ "$(cat "$O/git.commit.rc" 2>/dev/null)" = 0 ]
check "guest commit carries the host identity, unsigned" [ "$(cat "$O/git.log" 2>/dev/null)" = 'Host Person|host-person@example.com|N' ]
check "guest git: commit.gpgsign and tag.gpgsign false, alias kept" \
	bash -c 'grep -qx commit.gpgsign=false "$1" && grep -qx tag.gpgsign=false "$1" && grep -qx alias.st=status "$1" && ! grep -qi signingkey "$1"' _ "$O/git.list"
check "host excludes file applies in the guest" [ "$(cat "$O/git.files" 2>/dev/null)" = f ]
check "commit is visible on the host" [ "$(git -C "$P1/repo" log -1 --format=%an 2>/dev/null)" = 'Host Person' ]

# Persisted projects: only projects/ writes back.
check "persistClaudeProjects: guest write under ~/.claude/projects reaches the host" \
	[ "$(cat "$C/projects/$N1/p.txt" 2>/dev/null)" = persisted ]
check "persisted file is owned by the host user" [ "$(stat -c %u "$C/projects/$N1/p.txt" 2>/dev/null)" = "$(id -u)" ]
clean=no; [ ! -e "$C/not-persisted.txt" ] && [ ! -e "$C/guest-can-write" ] && clean=yes
check "a guest write elsewhere in ~/.claude does not reach the host" [ $clean = yes ]
check "host settings.json unchanged by the guest" [ "$(sha256sum <"$C/settings.json")" = "$host_settings" ]
unset MY_SECRET_TOKEN

# --- sessions 2 and 3: the toggles ------------------------------------------
# Lists the guest home and copies CLAUDE.md out; counts canaries under the
# home and /tmp (the full scan ran in session 1).
GUEST_LIST='
out=$1/out; mkdir -p "$out"; cd ~ || exit 1
find . -print | sort >"$out/home.list"
[ -f .claude/CLAUDE.md ] && cp .claude/CLAUDE.md "$out/CLAUDE.md"
pats=()
for h in $2; do printf -v p "%b" "$h"; pats+=(-e "$p"); done
grep -rlaF "${pats[@]}" ~ /tmp >"$out/leaks" 2>&1
echo $? >"$out/leaks.rc"
tr "\0" "\n" </proc/$$/environ | grep -E "^(ANTHROPIC_API_KEY|CCVM_TEST_KEY)=" >"$out/keyvars"
exit 0
'
run_list() { # run_list PROJECT [VAR=VALUE...]
	local p=$1
	shift
	(cd "$p" && env "$@" "$CCVM" --shell -- bash -c "$GUEST_LIST" guest "$p" "$HEX_CANARIES") \
		>"$p.out" 2>"$p.err"
}
# toggle_checks LABEL LIST ON_ITEMS... -- OFF_ITEMS...
toggle_checks() {
	local label=$1 list=$2 item on=1
	shift 2
	for item in "$@"; do
		if [ "$item" = -- ]; then on=0; continue; fi
		if [ $on = 1 ]; then
			check "$label: $item present" grep -qxF "./$item" "$list"
		else
			check "$label: $item absent" bash -c '! grep -q "^\./$1\(/\|$\)" "$2"' _ "$item" "$list"
		fi
	done
}

# All nine on at once, then per-item variables win: settings and commands
# off; no git config; CLAUDE.md text overridden.
P2=$(new_project)
run_list "$P2" CCVM_SHARE_CLAUDE_CONFIG=1 CCVM_SHARE_SETTINGS=0 CCVM_SHARE_COMMANDS=no \
	CCVM_SHARE_GIT_CONFIG=false CCVM_CLAUDE_MD="override-md-marker"
rc=$?
check "session 2 exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$P2.err" | tail -20
toggle_checks "CLAUDE_CONFIG=1" "$P2/out/home.list" \
	.claude/CLAUDE.md .claude/keybindings.json .claude/agents/helper.md \
	.claude/skills/s1/SKILL.md .claude/output-styles/terse.md \
	.claude/plugins/p1/plugin.json .claude/config/c.json -- \
	.claude/settings.json .claude.json .claude/commands .gitconfig .config/git/ignore \
	.claude/plugins/p1/.credentials.json
check "session 2: no canary under the guest home or /tmp" \
	bash -c '[ "$(cat "$1/out/leaks.rc")" = 1 ] && [ ! -s "$1/out/leaks" ]' _ "$P2"
want=$(printf '%s\n\n%s' "$(cat "$C/CLAUDE.md")" override-md-marker)
check "no API key variable on the host: none in the agent's environment" [ ! -s "$P2/out/keyvars" ]
check "CCVM_CLAUDE_MD: CLAUDE.md is the host file followed by the given text" \
	[ "$(cat "$P2/out/CLAUDE.md" 2>/dev/null)" = "$want" ]

# All off, then commands back on; CLAUDE.md sharing off and the extra text
# empty: no CLAUDE.md at all.  Without the credential proxy (the old path,
# credentialProxy=false): the key apiKeyVariable names is the agent's.
P3=$(new_project)
KEY2=sk-ant-ccvmOtherVariable$U
echo '{"apiKeyVariable": "CCVM_TEST_KEY"}' >"$T_TMP/cfg.json"
run_list "$P3" CCVM_SHARE_CLAUDE_CONFIG=0 CCVM_SHARE_COMMANDS=1 CCVM_CLAUDE_MD= \
	CCVM_CONFIG="$T_TMP/cfg.json" CCVM_TEST_KEY="$KEY2" ANTHROPIC_API_KEY="$KEY" \
	CCVM_CREDENTIAL_PROXY=false
rc=$?
check "session 3 exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$P3.err" | tail -20
check "credentialProxy=false, apiKeyVariable: the named variable becomes the agent's ANTHROPIC_API_KEY, nothing else" \
	[ "$(cat "$P3/out/keyvars" 2>/dev/null)" = "ANTHROPIC_API_KEY=$KEY2" ]
toggle_checks "CLAUDE_CONFIG=0" "$P3/out/home.list" \
	.claude/commands/hello.md .gitconfig -- \
	.claude/settings.json .claude.json .claude/CLAUDE.md .claude/keybindings.json \
	.claude/agents .claude/skills .claude/output-styles .claude/plugins .claude/config

# Each item's own variable, alone, switches it off (and plugins/config on).
# An unparsable ~/.claude.json is not staged, with a warning.
P4=$(new_project)
cp "$H/.claude.json" "$T_TMP/claude.json.good"
printf '{"userID": "x", "primaryApiKey": "%s",\n' "$C_PRIMARY" >"$H/.claude.json"
run_list "$P4" CCVM_SHARE_CLAUDEMD=0 CCVM_SHARE_KEYBINDINGS=0 CCVM_SHARE_AGENTS=0 \
	CCVM_SHARE_SKILLS=0 CCVM_SHARE_OUTPUTSTYLES=0 CCVM_SHARE_PLUGINS=1 CCVM_SHARE_CONFIG=1
rc=$?
check "session 4 exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$P4.err" | tail -20
cp "$T_TMP/claude.json.good" "$H/.claude.json"
check "unparsable .claude.json: a warning naming it" grep -q 'warning: .*\.claude\.json' "$P4.err"
toggle_checks "per-item" "$P4/out/home.list" \
	.claude/settings.json .claude/commands/hello.md \
	.claude/plugins/p1/plugin.json .claude/config/c.json -- \
	.claude.json .claude/keybindings.json .claude/agents .claude/skills .claude/output-styles
# claudeMd off: only the built-in note, none of the host file.
check "share.claudeMd off: CLAUDE.md is the built-in note only" \
	bash -c 'grep -qi ccvm "$1" && ! grep -q host-claude-md-marker "$1"' _ "$P4/out/CLAUDE.md"

# Limits: a file over the per-file limit stops ccvm before any VM starts,
# naming the file.
head -c $((16 * 1024 * 1024 + 1)) /dev/zero >"$C/commands/huge.md"
P6=$(new_project)
(cd "$P6" && "$CCVM" --shell -- true >/dev/null 2>"$P6.err")
rc=$?
rm -f "$C/commands/huge.md"
check "a staged file over the limit: exit 2 (rc=$rc) naming the file" \
	bash -c '[ $1 -eq 2 ] && grep -q "huge.md.*limit" "$2"' _ $rc "$P6.err"
[ $rc -eq 2 ] || sed 's/^/# /' "$P6.err" | tail -5

# --- agent mode end to end ------------------------------------------------------
P5=$(new_project)
out=$(cd "$P5" && ANTHROPIC_API_KEY=$KEY CCVM_BOOT_TIMEOUT=180 "$CCVM" --version 2>"$P5.err" </dev/null)
rc=$?
check "ccvm --version reaches claude in the VM, exit 0 (rc=$rc)" [ $rc -eq 0 ]
check "claude in the VM is the pinned version (got '$out')" [ "$out" = "2.1.332 (Claude Code)" ]
[ $rc -eq 0 ] || sed 's/^/# /' "$P5.err" | tail -20

check "no QEMU or virtiofsd left after the sessions" [ -z "$(my_qemu "$T_TMP")" ]
done_testing
