#!/bin/bash
# Tokens in the user's git config and Claude settings never enter the guest
# (issue 20, items 3 and 4; docs/security.md, the staging promises).  A
# fake HOME plants a unique canary in every place the sanitizers cover: URL
# userinfo in git section names and values (url.*.insteadOf,
# pushInsteadOf, http.proxy, remote URLs, files pulled in by include and
# includeIf), extraHeader, a foreign section; settings.json env names with
# PWD, DSN, WEBHOOK, CONNECTION_STRING, AUTH, PASS; MCP servers in
# ~/.claude.json with credentials in args, url and command, at top level and
# per project; customApiKeyResponses.  One real session then reads the
# guest's `git config --global --list`, ~/.claude.json and settings.json,
# and greps the guest home and /tmp for every canary.  Positive controls:
# harmless entries next to each planted one arrive, and the grep finds a
# control canary planted in the guest.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
fake_home
mkdir -p "$H/.claude" "$XDG_CONFIG_HOME"

# --- the fixture -----------------------------------------------------------
U=$$$RANDOM
G_URLSUB=ccvmGitUrlSection$U
G_INSTEAD=ccvmGitInsteadOfValue$U
G_PUSH=ccvmGitPushInsteadOf$U
G_PROXY=ccvmGitProxy$U
G_REMOTE=ccvmGitRemoteUrl$U
G_HDR=ccvmGitExtraHeader$U
G_HDRURL=ccvmGitExtraHeaderUrl$U
G_INC=ccvmGitIncluded$U
G_INCIF=ccvmGitIncludedIf$U
G_FOREIGN=ccvmGitForeignSection$U
S_PWD=ccvmSettingsPwd$U
S_DSN=ccvmSettingsDsn$U
S_HOOK=ccvmSettingsWebhook$U
S_CONN=ccvmSettingsConnString$U
S_AUTH=ccvmSettingsAuth$U
S_PASS=ccvmSettingsPass$U
S_URL=ccvmSettingsUrlUser$U
C_ARGS=ccvmMcpArgs$U
C_URL=ccvmMcpUrl$U
C_KEY=ccvmMcpAnthropicKey$U
C_PROJ=ccvmMcpProject$U
C_APPROVED=ccvmApprovedKeyTail$U
C_MEMBER=ccvmMemberPwd$U
CANARIES=("$G_URLSUB" "$G_INSTEAD" "$G_PUSH" "$G_PROXY" "$G_REMOTE" "$G_HDR"
	"$G_HDRURL" "$G_INC" "$G_INCIF" "$G_FOREIGN" "$S_PWD" "$S_DSN" "$S_HOOK"
	"$S_CONN" "$S_AUTH" "$S_PASS" "$S_URL" "$C_ARGS" "$C_URL" "$C_KEY"
	"$C_PROJ" "$C_APPROVED" "$C_MEMBER")

cat >"$H/.gitconfig" <<EOF
[user]
	name = Host Person
	email = host-person@example.com
[alias]
	st = status
[remote "upstream"]
	url = https://example.com/upstream.git
[remote "origin"]
	url = https://$G_REMOTE@example.com/origin.git
[url "git@github.com:"]
	insteadOf = gh:
[url "https://ghp_$G_URLSUB@github.com/"]
	insteadOf = https://github.com/
[url "https://mirror.example/"]
	insteadOf = https://ghp_$G_INSTEAD@mirror.example/
	pushInsteadOf = https://person:$G_PUSH@mirror.example/
[http]
	proxy = http://$G_PROXY@proxy.example:3128
	extraHeader = Authorization: Bearer $G_HDR
[http "https://git.corp.example/"]
	extraHeader = Authorization: Basic $G_HDRURL
	sslVerify = false
[hub]
	oauthtoken = $G_FOREIGN
[include]
	path = ~/.gitconfig.local
[includeIf "hasconfig:remote.*.url:https://example.com/**"]
	path = ~/.gitconfig.work
EOF
cat >"$H/.gitconfig.local" <<EOF
[url "https://person:$G_INC@git.example/"]
	insteadOf = https://git.example/
[alias]
	lg = log --oneline
EOF
cat >"$H/.gitconfig.work" <<EOF
[http "https://corp.example/"]
	proxy = person:$G_INCIF@proxy.corp.example:8080
[core]
	autocrlf = input
EOF

cat >"$H/.claude/settings.json" <<EOF
{"hostSettingsMarker": true,
 "env": {"DB_PWD": "$S_PWD", "SENTRY_DSN": "https://$S_DSN@o1.ingest.example/1",
  "SLACK_WEBHOOK_URL": "https://hooks.example/$S_HOOK",
  "AZURE_STORAGE_CONNECTION_STRING": "AccountKey=$S_CONN",
  "BASIC_AUTH": "person:$S_AUTH", "SMTP_PASS": "$S_PASS",
  "REPO_URL": "https://$S_URL@github.com/a/b.git",
  "DISABLE_TELEMETRY": "1", "GIT_AUTHOR_NAME": "Host Person",
  "MY_PATH": "/opt/x", "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1"}}
EOF
# The key of the session's host; the host approved it (Claude Code keeps
# the last 20 characters).  The agent gets the proxy's placeholder instead:
# the guest approves that alone.
KEY_TAIL=ccvmKeyTail$U$U$U
KEY_TAIL=${KEY_TAIL: -20}
SESSION_KEY=sk-ant-api03-session-$KEY_TAIL
cat >"$H/.claude.json" <<EOF
{
  "userID": "user-id-marker-$U",
  "customApiKeyResponses": {"approved": ["$C_APPROVED", "$KEY_TAIL"], "rejected": ["$C_APPROVED"]},
  "dbPwd": "$C_MEMBER",
  "author": "author-marker",
  "mcpServers": {
    "argsrv": {"command": "npx", "args": ["-y", "pg-mcp", "postgres://person:$C_ARGS@db.example/x"]},
    "urlsrv": {"type": "http", "url": "https://$C_URL@mcp.example/"},
    "keysrv": {"command": "env ANTHROPIC_API_KEY=sk-ant-api03-$C_KEY mcp-server"},
    "fine": {"command": "npx", "args": ["-y", "pkg@1.2.3"], "url": "https://mcp.example/path"}
  },
  "projects": {
    "/some/project": {"allowedTools": [],
      "mcpServers": {"projsrv": {"command": "c", "args": ["--url", "https://$C_PROJ@mcp.example/"]},
        "projfine": {"command": "proj-cmd-marker"}}}
  }
}
EOF

# Canaries go to the guest hex-encoded (\xNN), so no argv holds them.
hexenc() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | sed 's/\(..\)/\\x\1/g'; }
HEX_CANARIES=
for c in "${CANARIES[@]}"; do HEX_CANARIES+="$(hexenc "$c") "; done
CONTROL=ccvmControlCanary$U # planted in the guest: the grep must find it
HEX_CONTROL=$(hexenc "$CONTROL")

# --- the session -------------------------------------------------------------
GUEST='
set -u
out=$1/out hexpats=$2
mkdir -p "$out"
echo probe-ran >"$out/marker"
printf -v control "%b" "$3"
echo "$control" >/tmp/control.txt
pats=(-e "$control")
for h in $hexpats; do printf -v p "%b" "$h"; pats+=(-e "$p"); done
grep -rlaF "${pats[@]}" ~ /tmp >"$out/leaks" 2>/dev/null
echo $? >"$out/leaks.rc"
# Copies for the host to read, made after the grep (the project, under
# /tmp, is shared at the same path).
git config --global --list >"$out/git.list" 2>"$out/git.err"
echo $? >"$out/git.rc"
cp ~/.claude.json "$out/claude.json"
cp ~/.claude/settings.json "$out/settings.json"
key=${ANTHROPIC_API_KEY:-}
printf "%s" "${key: -20}" >"$out/key.tail"
'
P=$(new_project)
O=$P/out
(cd "$P" && ANTHROPIC_API_KEY=$SESSION_KEY timeout 600 "$CCVM" --shell -- bash -c "$GUEST" guest "$P" \
	"$HEX_CANARIES" "$HEX_CONTROL") >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
check "session exits 0 (rc=$rc)" [ $rc -eq 0 ]
[ $rc -eq 0 ] || sed 's/^/# /' "$T_TMP/err" | tail -20
check "the guest probe ran" grep -qx probe-ran "$O/marker"

# Nothing planted is anywhere in the guest's home or /tmp; the grep found
# the control.
check "guest grep finds the control canary planted in the guest" \
	grep -qx /tmp/control.txt "$O/leaks"
leaks=$(grep -vx /tmp/control.txt "$O/leaks" 2>/dev/null)
check "no canary in any file of the guest home or /tmp" [ -z "$leaks" ]
[ -z "$leaks" ] || diag "$leaks"
# The copies, read here on the host, canary by canary.
found=
for c in "${CANARIES[@]}"; do
	grep -qF -- "$c" "$O/git.list" "$O/claude.json" "$O/settings.json" 2>/dev/null &&
		found+="$c "
done
check "no canary in guest git config, ~/.claude.json or settings.json" [ -z "$found" ]
[ -z "$found" ] || diag "found: $found"

# Git: the tokens are gone, harmless keys (also from the included files)
# arrived.
L=$O/git.list
check "guest git config --global --list ran (rc=$(cat "$O/git.rc" 2>/dev/null))" \
	[ "$(cat "$O/git.rc" 2>/dev/null)" = 0 ]
for kv in 'user.name=Host Person' 'alias.st=status' 'alias.lg=log --oneline' \
	'remote.upstream.url=https://example.com/upstream.git' \
	'url.git@github.com:.insteadof=gh:' 'core.autocrlf=input' \
	'http.https://git.corp.example/.sslverify=false'; do
	check "guest git config has $kv" grep -qxF -- "$kv" "$L"
done
lacks_key() { ! awk -v k="$1" 'index($0, k) == 1 { f = 1 } END { exit !f }' "$2"; }
for k in remote.origin.url= http.proxy= http.extraheader= \
	http.https://git.corp.example/.extraheader= url.https://mirror.example/.insteadof= \
	url.https://mirror.example/.pushinsteadof= http.https://corp.example/.proxy= hub.; do
	check "guest git config lacks $k" lacks_key "$k" "$L"
done
check "guest git config has no URL with userinfo" \
	bash -c '! grep -qE "://[^/@[:space:]]*@" "$1"' _ "$L"

# ~/.claude.json.
jqt() { jq -e "$@" >/dev/null 2>&1; }
J=$O/claude.json
check "guest ~/.claude.json keeps userID, author and the harmless MCP servers" jqt \
	--arg u "user-id-marker-$U" '.userID == $u and .author == "author-marker" and
	.mcpServers.fine.args == ["-y", "pkg@1.2.3"] and
	.projects["/some/project"].mcpServers.projfine.command == "proj-cmd-marker"' "$J"
check "guest ~/.claude.json lacks the MCP servers holding credentials" jqt \
	'(.mcpServers | has("argsrv") or has("urlsrv") or has("keysrv") | not) and
	(.projects["/some/project"].mcpServers | has("projsrv") | not)' "$J"
check "guest ~/.claude.json lacks dbPwd" jqt 'has("dbPwd") | not' "$J"
# The agent's key is the credential proxy's placeholder (36-apiproxy.sh):
# that is the one approved, and no key of the host's.
PH_TAIL=$(cat "$O/key.tail" 2>/dev/null)
check "guest ~/.claude.json approves the agent's key (the placeholder) alone, no host key's tail" \
	jqt --arg t "$PH_TAIL" --arg k "$KEY_TAIL" \
	'.customApiKeyResponses == {approved: [$t], rejected: []} and $t != "" and $t != $k' "$J"

# settings.json.
S=$O/settings.json
check "guest settings.json keeps its harmless members" jqt \
	'.hostSettingsMarker == true and .env == {"DISABLE_TELEMETRY": "1",
	"GIT_AUTHOR_NAME": "Host Person", "MY_PATH": "/opt/x",
	"CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1"}' "$S"

# The host's warnings name what was dropped, never a value.
E=$T_TMP/err
for w in 'git config: dropping url.https://***@github.com/.insteadof' \
	'git config: dropping remote.origin.url' 'git config: dropping http.proxy' \
	'git config: dropping url.https://***@git.example/.insteadof' \
	'git config: dropping http.https://corp.example/.proxy' \
	'git config: sections not staged (not git'"'"'s own, or mail and CVS settings): hub' \
	'settings.json: env.DB_PWD not staged' 'settings.json: env.REPO_URL not staged' \
	'.claude.json: mcpServers.argsrv not staged' \
	'.claude.json: mcpServers.keysrv not staged' \
	'.claude.json: projects./some/project.mcpServers.projsrv not staged'; do
	check "host warning: $w" grep -qF -- "$w" "$E"
done
found=
for c in "${CANARIES[@]}"; do grep -qF -- "$c" "$E" "$T_TMP/out" && found+="$c "; done
check "no canary in ccvm's own output" [ -z "$found" ]
[ -z "$found" ] || diag "found: $found"

check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
done_testing
