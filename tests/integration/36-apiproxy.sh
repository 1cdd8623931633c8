#!/bin/bash
# The credential proxy (issue 22): the agent never holds a credential.
# The guest gets ANTHROPIC_BASE_URL=http://api.ccvm.internal and a
# per-session placeholder; the host's relay checks it, swaps in the real
# credential and forwards to the upstream over verified HTTPS.  The
# upstream here is the stand-in (fake_anthropic.py) on the host's
# 127.0.0.1, over HTTPS with a test CA made by this script and trusted on
# the host through SSL_CERT_FILE, for this script only.  Real VM, real
# agent binary; nothing leaves this machine.
#
#   R  a shell session, API key (apiKeyVariable names another variable
#      than ANTHROPIC_API_KEY, which holds a decoy): the guest's environment, raw requests to
#      the proxy (good, wrong or missing placeholder, malformed and
#      smuggling attempts), streaming, keep-alive, large bodies both ways,
#      upstream errors passed through; then the root scan of the guest
#      (files, environments, command lines), of guest RAM and of the
#      host's processes for every real credential
#   L  a shell session on the host's login file: re-read at request time,
#      an expired one refused with a reason
#   A1-A7  the agent (-p): API key; ANTHROPIC_AUTH_TOKEN and a tool call
#      that writes a file; CLAUDE_CODE_OAUTH_TOKEN over a plain-HTTP
#      loopback upstream; the login file (base URL from settings.json);
#      expired login; upstream down; bad certificate; A8 through the
#      host's HTTPS_PROXY with NODE_EXTRA_CA_CERTS, A9 NO_PROXY
#   T  the agent's TUI in tmux: no API-key prompt, a typed prompt answered,
#      /status names the proxy
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
fake_home
unset CLAUDE_CODE_OAUTH_TOKEN CCVM_CREDENTIAL_PROXY CCVM_API_KEY_VARIABLE \
	ANTHROPIC_BASE_URL SSL_CERT_FILE SSL_CERT_DIR NODE_EXTRA_CA_CERTS \
	HTTPS_PROXY https_proxy HTTP_PROXY http_proxy ALL_PROXY all_proxy \
	NO_PROXY no_proxy CURL_CA_BUNDLE

U=$$$RANDOM
MARKER=CCVM-PROXY-OK-$U
KEY=sk-ant-api03-ccvmProxyKey$U-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
TOKEN=ccvmProxyAuthToken$U
OAUTH=sk-ant-oat01-ccvmProxyOauth$U
ACCESS=sk-ant-oat01-ccvmProxyAccess$U
ACCESS2=sk-ant-oat01-ccvmProxyAccessTwo$U
DECOY=sk-ant-api03-ccvmProxyDecoy$U # ANTHROPIC_API_KEY when apiKeyVariable names another
REALS=("$KEY" "$TOKEN" "$OAUTH" "$ACCESS" "$ACCESS2" "$DECOY")
LOG=$T_TMP/api.log     # the HTTPS stand-in's requests
PLOG=$T_TMP/plain.log  # the plain-HTTP one's
BLOG=$T_TMP/badcert.log # the one with a certificate of another CA
: >"$LOG"
: >"$PLOG"
: >"$BLOG"
SERVERS=()
cleanup() {
	tmux kill-server 2>/dev/null
	kill "${SERVERS[@]}" 2>/dev/null
	rm -rf "$T_TMP"
}
trap cleanup EXIT

# --- the upstreams ------------------------------------------------------------
if ! make_test_ca "$T_TMP/ca" || ! make_test_ca "$T_TMP/ca2"; then
	sed 's/^/# /' "$T_TMP/ca/openssl.log" "$T_TMP/ca2/openssl.log" 2>/dev/null | tail -20
	not_ok "a test CA and server certificates made with openssl"
	done_testing
	exit 1
fi
CA=$T_TMP/ca/ca.pem
start_fake_api_args "$LOG" "$MARKER" --tls-cert "$T_TMP/ca/server.pem" --tls-key "$T_TMP/ca/server.key"
SERVERS+=("$API")
GPORT=$PORT
start_fake_api_args "$PLOG" "$MARKER" # plain HTTP on the loopback
SERVERS+=("$API")
PPORT=$PORT
start_fake_api_args "$BLOG" "$MARKER" --tls-cert "$T_TMP/ca2/server.pem" --tls-key "$T_TMP/ca2/server.key"
SERVERS+=("$API")
BPORT=$PORT
# A port nothing listens on: the kernel gave it to a server that is gone.
start_fake_api_args "$T_TMP/down.log" "$MARKER"
kill "$API"
wait "$API" 2>/dev/null
DPORT=$PORT
GOOD=https://127.0.0.1:$GPORT
# The host trusts the test CA, for this script only.
export SSL_CERT_FILE=$CA
check "the HTTPS stand-in answers on the host with the test CA (port $GPORT)" \
	curl -sf -m 5 -o /dev/null "$GOOD/"
check "the certificate of the other CA is refused on the host (port $BPORT)" \
	bash -c '! curl -s -m 5 -o /dev/null "https://127.0.0.1:$1/"' _ "$BPORT"
: >"$LOG"

# Claude Code's retries (10, with back-off) would make the error sessions
# slow; nothing here needs them.
mkdir -p "$H/.claude"
SETTINGS='{"env": {"CLAUDE_CODE_MAX_RETRIES": "0", "DISABLE_TELEMETRY": "1", "DISABLE_ERROR_REPORTING": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}}'
printf '%s\n' "$SETTINGS" >"$H/.claude/settings.json"

# Helpers.
hexenc() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n' | sed 's/\(..\)/\\x\1/g'; }
HEX_REALS=
for c in "${REALS[@]}"; do HEX_REALS+="$(hexenc "$c") "; done
CONTROL=ccvmControlCanary$U # planted in the guest: the scans must find it
HEX_CONTROL=$(hexenc "$CONTROL")
# Lines of the stand-in log $1 whose path holds ?t=$2 (or &t=).
tagged() { grep -E "\"path\": \"[^\"]*[?&]t=$2[\"&]" "$1"; }
# The value of member $2 of the (first) log line tagged $3 in log $1.
logval() { tagged "$1" "$3" | head -1 | jq -r --arg k "$2" '.[$k] // "ABSENT"'; }
login_file() { # login_file TOKEN EXPIRES_AT_MS
	printf '{"claudeAiOauth":{"accessToken":"%s","refreshToken":"ccvm-refresh-%s","expiresAt":%s,"scopes":["user:inference"],"subscriptionType":"max"}}\n' \
		"$1" "$U" "$2" >"$H/.claude/.credentials.json.new"
	chmod 600 "$H/.claude/.credentials.json.new"
	mv "$H/.claude/.credentials.json.new" "$H/.claude/.credentials.json"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }
# QEMU processes of sessions in project $1.
my_qemu() {
	local pid
	for pid in $(pgrep -u "$(id -u)" -f 'qemu-system'); do
		if [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$1"* ||
			$(readlink "/proc/$pid/cwd" 2>/dev/null) == "$1"* ]]; then
			echo "$pid"
		fi
	done
}
# The stand-in's counters (LOG.stats): member $2 of file $1.
stat_of() { jq -r ".$2" "$1.stats" 2>/dev/null || echo 0; }
# The exit summary lines of ccvm's stderr $1.
summary_lines() { grep -c '^ccvm: API proxy:' "$1"; }
# The status a guest request TAG of session R got.
code() { cat "$O/r.$1.code" 2>/dev/null; }
# api_error FILE: an API-shaped error of ccvm's own.
api_error() {
	jq -e '.type == "error" and (.error.type | type == "string") and
		(.error.message | startswith("ccvm:"))' "$1" >/dev/null 2>&1
}
# Agent requests in log $1 after its line $2: the POSTs to /v1/messages.
since() { tail -n +"$(($2 + 1))" "$1"; }
msgs_since() { since "$1" "$2" | grep '"method": "POST", "path": "/v1/messages[?"]'; }
# all_have LOG START JQ-FILTER: there are such requests, and all match.
all_have() {
	local lines
	lines=$(msgs_since "$1" "$2")
	[ -n "$lines" ] && ! jq -c "select(($3) | not)" <<<"$lines" | grep -q .
}
# What the agent printed, without ccvm's own lines ("ccvm: ...").
agent_said() { cat "$@" 2>/dev/null | grep -v '^ccvm: '; }
export -f tagged logval code api_error since msgs_since all_have agent_said

# --- R: raw requests from the guest, then the scans ----------------------------
# Runs as the agent user.  Writes what it saw into $1/out.
# shellcheck disable=SC2016
GUEST_RAW='
set -u
trap "" PIPE
P=$1 GPORT=$2 hexpats=$3 hexcontrol=$4
out=$P/out
mkdir -p "$out"
: >"$out/started"
tr "\0" "\n" </proc/$$/environ | grep -E "^(ANTHROPIC_[A-Z_]*|CLAUDE_CODE_OAUTH_TOKEN)=" | sort >"$out/env"
B=${ANTHROPIC_BASE_URL:-none}
PH=${ANTHROPIC_API_KEY:-}
J="content-type: application/json"
V="anthropic-version: 2023-06-01"
MSG="{\"model\":\"claude-test\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
req() { # req TAG CURL-ARGS...: $out/r.TAG.{code,hdr,body,err}
	local tag=$1
	shift
	curl -sS --noproxy "*" -m 60 -o "$out/r.$tag.body" -D "$out/r.$tag.hdr" \
		-w "%{http_code}" "$@" >"$out/r.$tag.code" 2>"$out/r.$tag.err"
}
req ok "$B/v1/messages?t=ok" -H "x-api-key: $PH" -H "$V" \
	-H "anthropic-beta: ccvm-test-beta-$$" -H "$J" -d "$MSG,\"stream\":true}"
req bearer "$B/v1/messages?t=bearer" -H "authorization: Bearer $PH" -H "$V" -H "$J" -d "$MSG}"
# The same length as the placeholder, one character changed.
last=${PH: -1}
[ "$last" = A ] && sub=B || sub=A
wrong=${PH%?}$sub
req wrong "$B/v1/messages?t=refused-wrong" -H "x-api-key: $wrong" -H "$V" -H "$J" -d "$MSG}"
req wrongbearer "$B/v1/messages?t=refused-wrongbearer" -H "authorization: Bearer $wrong" -H "$J" -d "$MSG}"
req missing "$B/v1/messages?t=refused-missing" -H "$V" -H "$J" -d "$MSG}"
req e429 "$B/v1/messages?t=e429" -H "x-api-key: $PH" -H "$J" -d "{\"ccvm_mode\":\"status\",\"status\":429}"
curl -sS --noproxy "*" -m 120 "$B/v1/messages?t=big" -H "x-api-key: $PH" -H "$J" \
	-d "{\"ccvm_mode\":\"big\",\"bytes\":10000000}" -o /dev/null \
	-w "%{http_code} %{size_download} %{time_total}" >"$out/big" 2>"$out/big.err"
head -c 8000000 /dev/urandom >/tmp/up.bin
sha256sum </tmp/up.bin | cut -d" " -f1 >"$out/up.sha"
req upcl "$B/v1/messages/count_tokens?t=upcl" -H "x-api-key: $PH" -H "$J" --data-binary @/tmp/up.bin
req upch "$B/v1/messages/count_tokens?t=upch" -H "x-api-key: $PH" -H "$J" \
	-H "Transfer-Encoding: chunked" --data-binary @/tmp/up.bin
rm -f /tmp/up.bin
# Five requests on one connection.
args=()
for i in 1 2 3 4 5; do
	[ $i = 1 ] || args+=(--next)
	args+=(--noproxy "*" -m 60 "$B/v1/messages/count_tokens?t=ka$i" -H "x-api-key: $PH" -H "$J" -d "{}"
		-o /dev/null -w "%{http_code} %{num_connects}\n")
done
curl -sS "${args[@]}" >"$out/ka" 2>"$out/ka.err"
# Streaming: the stand-in sends its last events only once the release
# file exists, which this side creates when it has read the first event.
rm -f "$P/release"
curl -sSN --noproxy "*" -m 90 "$B/v1/messages?t=slow" -H "x-api-key: $PH" -H "$J" \
	-d "{\"ccvm_mode\":\"slow\",\"stream\":true,\"pause\":0.2,\"release_file\":\"$P/release\",\"release_wait\":30}" \
	2>"$out/slow.err" | while IFS= read -r line; do
	case $line in
	event:*) [ -e "$P/release" ] || { echo "$line" >"$out/first-event"; touch "$P/release"; } ;;
	esac
	printf "%s\n" "$line"
done >"$out/slow"
# Raw requests the proxy must refuse: "raw NAME" sends stdin on a new
# connection and keeps what comes back (5 s at most).
raw() {
	if ! exec 3<>/dev/tcp/api.ccvm.internal/80; then
		echo "connect failed" >"$out/raw.$1"
		return
	fi
	cat >&3 2>/dev/null
	timeout 5 cat <&3 >"$out/raw.$1" 2>/dev/null
	exec 3<&- 3>&-
}
H="Host: api.ccvm.internal"
K="x-api-key: $PH"
lines() { printf "%s\r\n" "$@"; } # the lines of a request, CRLF-terminated
C="Connection: close"
lines "GET http://api.ccvm.internal/v1/models?t=refused-absform HTTP/1.1" "$H" "$K" "$C" "" | raw absform
lines "GET http://example.com/?t=refused-absforeign HTTP/1.1" "Host: example.com" "$K" "$C" "" | raw absforeign
lines "CONNECT api.anthropic.com:443 HTTP/1.1" "Host: api.anthropic.com:443" "$K" "" | raw connect
lines "GET /v1/models?t=refused-host HTTP/1.1" "Host: evil.example" "$K" "$C" "" | raw host
lines "GET /v1/models?t=refused-nohost HTTP/1.1" "$K" "$C" "" | raw nohost
lines "POST /v1/messages?t=refused-clte HTTP/1.1" "$H" "$K" "Content-Length: 60" \
	"Transfer-Encoding: chunked" "" "0" "" "GET /v1/models?t=refused-smuggled HTTP/1.1" "$H" "$K" "" | raw clte
lines "POST /v1/messages?t=refused-dupcl HTTP/1.1" "$H" "$K" "Content-Length: 2" "Content-Length: 40" "" \
	"{}GET /v1/models?t=refused-smuggled2 HTTP/1.1" "$H" "" | raw dupcl
lines "POST /v1/messages/count_tokens?t=refused-chunk HTTP/1.1" "$H" "$K" "Transfer-Encoding: chunked" "" \
	"zz" "hello" "0" "" | raw chunk
lines "POST /v1/messages/count_tokens?t=refused-chunkbig HTTP/1.1" "$H" "$K" "Transfer-Encoding: chunked" "" \
	"fffffffffffffffffff" "hello" "0" "" | raw chunkbig
lines "POST /v1/messages/count_tokens?t=refused-tegzip HTTP/1.1" "$H" "$K" "Transfer-Encoding: gzip, chunked" "" \
	"0" "" | raw tegzip
lines "GET /v1/models?t=refused-fold HTTP/1.1" "$H" "$K" "X-Fold: a" " b" "$C" "" | raw fold
{ lines "GET /v1/models?t=refused-huge HTTP/1.1" "$H" "$K"
	printf "X-Big: "
	head -c 100000 /dev/zero | tr "\0" a
	lines "" "$C" ""; } | raw huge
{ lines "GET /v1/models?t=refused-many HTTP/1.1" "$H" "$K"
	for i in $(seq 1 500); do lines "X-H$i: v"; done
	lines "$C" ""; } | raw many
# A second request after a good one on one connection (pipelined, no
# placeholder): the first is answered, the second refused on its own.
lines "POST /v1/messages/count_tokens?t=pipe1 HTTP/1.1" "$H" "$K" "Content-Length: 2" "" \
	"{}GET /v1/models?t=refused-pipe2 HTTP/1.1" "$H" "$C" "" | raw pipe
# The upstream directly (the old path): closed now.
curl -sS --noproxy "*" -m 15 -k -o /dev/null -w "%{http_code}" \
	"https://host.ccvm.internal:$GPORT/" >"$out/direct" 2>"$out/direct.err"
echo $? >"$out/direct.rc"
# With an allowlist, the API host is not added for the guest.
getent ahosts api.anthropic.com >"$out/dns-api" 2>&1
echo $? >"$out/dns-api.rc"
getent ahosts api.ccvm.internal >"$out/dns-proxy" 2>&1
cp ~/.claude.json "$out/claude.json" 2>/dev/null
cp ~/.claude/settings.json "$out/settings.json" 2>/dev/null
# The agent itself, so that the scans below also cover what it leaves in
# guest memory and files.
claude -p "say the magic word" --output-format text </dev/null >"$out/agent.out" 2>"$out/agent.err"
# The host scans guest RAM while this waits (before the root scan below
# decodes the real credentials to look for them: then they are in guest
# memory, put there by the test), then the root scan (files, environments,
# command lines).
printf -v control "%b" "$hexcontrol"
echo "$control" >/tmp/control.txt
: >"$out/ram-ready"
for ((i = 0; i < 600; i++)); do [ -e "$P/ram-done" ] && break; sleep 0.2; done
sudo -n bash -c "$SCAN" scan "$hexpats" "$hexcontrol" >"$out/scan" 2>"$out/scan.err"
echo $? >"$out/scan.rc"
rm -f /tmp/control.txt
'
# Runs as root in the guest: LEAK lines for each pattern (the real
# credentials and the control) found in a process environment or command
# line, the kernel command line, or a file; FILES N.
# shellcheck disable=SC2016
GUEST_SCAN='
set -u
pats=()
for h in $1 $2; do printf -v p "%b" "$h"; pats+=(-e "$p"); done
for d in /proc/[0-9]*; do
	pid=${d#/proc/}
	[ "$pid" = "$$" ] && continue
	env=$(tr "\0" "\n" <"$d/environ" 2>/dev/null)
	cmd=$(tr "\0" " " <"$d/cmdline" 2>/dev/null)
	for ((i = 1; i < ${#pats[@]}; i += 2)); do
		p=${pats[i]}
		[[ $env == *"$p"* ]] && echo "LEAK environ of $pid ($(cat "$d/comm" 2>/dev/null))"
		[[ $cmd == *"$p"* ]] && echo "LEAK cmdline of $pid"
	done
done
for ((i = 1; i < ${#pats[@]}; i += 2)); do
	[[ $(cat /proc/cmdline) == *"${pats[i]}"* ]] && echo "LEAK /proc/cmdline"
done
prune=()
while read -r _ mnt type _; do
	case $type in overlay | tmpfs | devtmpfs | ramfs | ext4 | squashfs | xfs | btrfs) ;;
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
# Polls the host's processes while a session runs: every argv (ps), and
# the environment of QEMU (ccvm and its relay are not dumpable: their
# environ is root's, 61-key-copies.sh).
poll_host() { # poll_host CCVM_PID PROJECT
	local n=0 envs=0 a f c
	while kill -0 "$1" 2>/dev/null; do
		a=$(ps -eo args 2>/dev/null)
		for c in "${REALS[@]}"; do
			[[ $a == *"$c"* ]] && echo "ps args" >>"$T_TMP/ps.hits"
		done
		for f in $(my_qemu "$2"); do
			a=$(tr '\0' '\n' 2>/dev/null <"/proc/$f/environ") && envs=$((envs + 1))
			for c in "${REALS[@]}"; do
				[[ $a == *"$c"* ]] && echo "environ of qemu $f" >>"$T_TMP/ps.hits"
			done
		done
		n=$((n + 1))
		sleep 0.3
	done
	echo "$n $envs" >"$T_TMP/ps.polls"
}
# Greps guest RAM (QEMU's largest regular-file descriptor: the RAM file)
# for each real credential and the control: "RAM <name> <count>" lines.
ram_scan() { # ram_scan PROJECT
	local q fd best="" size max=0
	q=$(my_qemu "$1" | head -1)
	[ -n "$q" ] || { echo "RAM no-qemu"; return; }
	for fd in /proc/"$q"/fd/*; do
		[ -f "$fd" ] || continue
		size=$(stat -L -c %s "$fd" 2>/dev/null) || continue
		[ "$size" -gt "$max" ] && max=$size best=$fd
	done
	if [ -z "$best" ] || [ "$max" -lt $((256 << 20)) ] || [ ! -r "$best" ]; then
		echo "RAM unreadable ($best $max)"
		return
	fi
	echo "RAM file $best $max"
	# Only the data of the sparse file (SEEK_DATA), in pieces that overlap
	# by a pattern's length; the names and patterns come on stdin.
	paste -d' ' <(printf '%s\n' key token oauth access access2 decoy control) \
		<(printf '%s\n' "${REALS[@]}" "$CONTROL") | /usr/bin/python3 -c '
import os, sys
pats = [l.split(" ", 1) for l in sys.stdin.read().splitlines()]
pats = [(n, p.encode()) for n, p in pats]
count = {n: 0 for n, _ in pats}
over = max(len(p) for _, p in pats)
fd = os.open(sys.argv[1], os.O_RDONLY)
end = os.fstat(fd).st_size
off = 0
while off < end:
    try:
        off = os.lseek(fd, off, os.SEEK_DATA)
        hole = os.lseek(fd, off, os.SEEK_HOLE)
    except OSError:
        break
    prev = b""
    while off < hole:
        buf = os.pread(fd, min(16 << 20, hole - off), off)
        if not buf:
            break
        data = prev + buf
        for n, p in pats:
            count[n] += data.count(p) - prev.count(p)
        prev = data[-over:]
        off += len(buf)
for n, _ in pats:
    print("RAM", n, count[n])
' "$best"
}

PR=$(new_project)
hs0=$(stat_of "$LOG" handshakes)
login_file "$ACCESS" $(($(now_ms) + 3600000))
echo '{"egressAllowlist": ["only.example"], "apiKeyVariable": "CCVM_TEST_KEY"}' >"$T_TMP/allow.json"
rm -f "$T_TMP/ps.hits"
(cd "$PR" && CCVM_CONFIG=$T_TMP/allow.json ANTHROPIC_BASE_URL=$GOOD \
	CCVM_TEST_KEY=$KEY ANTHROPIC_API_KEY=$DECOY CLAUDE_CODE_OAUTH_TOKEN=$OAUTH timeout 400 \
	"$CCVM" --shell -- env SCAN="$GUEST_SCAN" bash -c "$GUEST_RAW" guest "$PR" "$GPORT" \
	"$HEX_REALS" "$HEX_CONTROL") >"$T_TMP/r.out" 2>"$T_TMP/r.err" &
rpid=$!
poll_host "$rpid" "$PR" &
poller=$!
export O=$PR/out
if wait_file "$O/ram-ready" 300; then
	ram_scan "$PR" >"$T_TMP/ram"
	: >"$PR/ram-done"
fi
wait "$rpid"
rc=$?
wait "$poller"
diag "session R: exit $rc; stderr: $(tail -c 1500 "$T_TMP/r.err" | tr '\n' ' ')"
check "R: the shell session exits 0 (rc=$rc)" [ "$rc" -eq 0 ]

# The guest's environment.
diag "R: guest environment: $(sed 's/=.*/=.../' "$O/env" 2>/dev/null | tr '\n' ' ')"
PH=$(sed -n 's/^ANTHROPIC_API_KEY=//p' "$O/env" 2>/dev/null)
check "R: the guest's ANTHROPIC_BASE_URL is http://api.ccvm.internal" \
	grep -qxF "ANTHROPIC_BASE_URL=http://api.ccvm.internal" "$O/env"
check "R: the guest's ANTHROPIC_API_KEY is a placeholder, not the key" \
	bash -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$PH" "$KEY"
check "R: the placeholder is long enough for 128 random bits (${#PH} characters)" [ "${#PH}" -ge 22 ]
check "R: no other credential variable in the guest (API key on the host wins)" \
	bash -c '! grep -qE "^(ANTHROPIC_AUTH_TOKEN|CLAUDE_CODE_OAUTH_TOKEN)=" "$1"' _ "$O/env"

# Good requests: the upstream saw the real key, never the placeholder.
check "R: x-api-key placeholder: 200 (got $(code ok))" [ "$(code ok)" = 200 ]
check "R: ... the answer streamed back (SSE with the stand-in's text)" \
	bash -c 'grep -q "^event: message_stop" "$1" && grep -qF "$2" "$1"' _ "$O/r.ok.body" "$MARKER"
check "R: ... the upstream got x-api-key = the key apiKeyVariable names (CCVM_TEST_KEY)" [ "$(logval "$LOG" x-api-key ok)" = "$KEY" ]
check "R: ... and no authorization header" [ "$(logval "$LOG" authorization ok)" = ABSENT ]
check "R: ... the upstream's Host is its own (127.0.0.1:$GPORT)" [ "$(logval "$LOG" host ok)" = "127.0.0.1:$GPORT" ]
check "R: ... anthropic-version and anthropic-beta passed through" \
	bash -c '[ "$(logval "$1" anthropic-version ok)" = 2023-06-01 ] && [ "$(logval "$1" anthropic-beta ok)" != ABSENT ]' _ "$LOG"
check "R: ... response headers request-id and anthropic-ratelimit-* passed back" \
	bash -c 'grep -qi "^request-id: req_ccvm" "$1" && grep -qi "^anthropic-ratelimit-requests-remaining: 999" "$1"' _ "$O/r.ok.hdr"
check "R: Authorization: Bearer placeholder: 200 (got $(code bearer))" [ "$(code bearer)" = 200 ]
check "R: ... the guest's Authorization dropped, the real key sent as x-api-key" \
	bash -c '[ "$(logval "$1" x-api-key bearer)" = "$2" ] && [ "$(logval "$1" authorization bearer)" = ABSENT ]' _ "$LOG" "$KEY"
check "R: no request reached the upstream with the placeholder" bash -c '! grep -qF -- "$1" "$2"' _ "$PH" "$LOG"

# Refused: wrong or missing placeholder.
for t in wrong wrongbearer missing; do
	check "R: $t placeholder: 401 (got $(code $t))" [ "$(code $t)" = 401 ]
	check "R: ... an API-shaped error from ccvm: $(head -c 200 "$O/r.$t.body" 2>/dev/null)" api_error "$O/r.$t.body"
done
check "R: upstream 429 reaches the guest as it is (status, retry-after, body)" \
	bash -c '[ "$(cat "$1.code")" = 429 ] && grep -qi "^retry-after: 7" "$1.hdr" &&
		jq -e ".error.type == \"rate_limit_error\"" "$1.body" >/dev/null' _ "$O/r.e429"

# Bodies both ways.
read -r bcode bsize btime <"$O/big" 2>/dev/null
check "R: a 10 MB streamed response arrives whole (status ${bcode:-?}, ${bsize:-0} bytes in ${btime:-?} s)" \
	[ "${bsize:-0}" = 10000000 ]
up=$(cat "$O/up.sha" 2>/dev/null)
check "R: an 8 MB request body (Content-Length) reaches the upstream intact" \
	bash -c '[ "$(code upcl)" = 200 ] && [ "$(logval "$1" body_sha256 upcl)" = "$2" ]' _ "$LOG" "$up"
check "R: an 8 MB chunked request body reaches the upstream intact" \
	bash -c '[ "$(code upch)" = 200 ] && [ "$(logval "$1" body_sha256 upch)" = "$2" ]' _ "$LOG" "$up"

# Keep-alive and connection reuse.
diag "R: keep-alive (code, new connections): $(tr '\n' ' ' <"$O/ka" 2>/dev/null)"
check "R: 5 requests on one guest connection: all 200, one connection" \
	[ "$(awk '$1 == 200 {n++; c += $2} END {print n "/" c}' "$O/ka" 2>/dev/null)" = 5/1 ]
kaconns=$(for i in 1 2 3 4 5; do logval "$LOG" conn "ka$i"; done | sort -u | wc -l)
check "R: ... they reached the upstream on one connection ($kaconns)" [ "$kaconns" = 1 ]
# The good requests, one after another on several guest connections
# (before the refused ones below, which may cost the upstream connection).
conns=$(for t in ok bearer e429 big upcl upch ka1 ka2 ka3 ka4 ka5 slow; do
	logval "$LOG" conn $t; done | sort -u | tr '\n' ' ')
hs=$(($(stat_of "$LOG" handshakes) - hs0))
diag "R: upstream: $(cat "$LOG.stats" 2>/dev/null); the session's TLS handshakes: $hs"
check "R: 12 good requests on 8 guest connections: one upstream connection (${conns% })" \
	[ "$(wc -w <<<"$conns")" = 1 ]

# Streaming.
diag "R: slow stream: $(grep '"event": "slow"' "$LOG" | tail -1)"
check "R: streaming: the guest read the first event before the stand-in sent the last" \
	bash -c 'grep "\"event\": \"slow\"" "$1" | tail -1 | jq -e ".released == true" >/dev/null' _ "$LOG"
check "R: ... and then the whole stream (message_stop)" grep -q '^event: message_stop' "$O/slow"

# Malformed and smuggling attempts.
refused_ok() { # refused_ok NAME: a 4xx or 501 status line
	head -1 "$O/raw.$1" 2>/dev/null | grep -qE '^HTTP/1\.[01] (4[0-9][0-9]|501) '
}
for t in absform absforeign connect host nohost clte dupcl chunk chunkbig tegzip fold huge many; do
	check "R: refused: $t ($(head -1 "$O/raw.$t" 2>/dev/null | tr -d '\r' | head -c 60))" refused_ok $t
done
shape=
for t in absform absforeign connect host nohost clte dupcl chunk chunkbig tegzip fold huge many; do
	sed '1,/^\r\{0,1\}$/d' "$O/raw.$t" >"$O/raw.$t.body" 2>/dev/null
	api_error "$O/raw.$t.body" || shape+="$t "
done
check "R: every refusal is an API-shaped error from ccvm${shape:+ (not: $shape)}" [ -z "$shape" ]
check "R: a pipelined request after a good one: the first answered 200" \
	bash -c 'head -1 "$1" | grep -q "^HTTP/1.1 200 "' _ "$O/raw.pipe"
seen=$(grep -oE '[?&]t=refused-[a-z0-9]+' "$LOG" | sort -u | tr '\n' ' ')
check "R: the upstream never saw a refused request${seen:+ (saw: $seen)}" [ -z "$seen" ]
[ -z "$seen" ] || grep -E '[?&]t=refused-' "$LOG" | cut -c1-400 | sed 's/^/# upstream: /'
check "R: the upstream never saw a broken request (its own parser's refusals)" \
	bash -c '! grep -q "\"event\": \"bad-request\"" "$1"' _ "$LOG"
check "R: the upstream's port is not reachable from the guest directly (curl rc $(cat "$O/direct.rc" 2>/dev/null), $(cat "$O/direct" 2>/dev/null))" \
	bash -c '[ "$(cat "$1/direct.rc")" != 0 ]' _ "$O"
check "R: with an allowlist, api.anthropic.com is not resolvable in the guest" \
	bash -c '[ "$(cat "$1/dns-api.rc")" != 0 ]' _ "$O"
check "R: ... and api.ccvm.internal is (the proxy is always reachable)" \
	grep -q '192.0.2.3' "$O/dns-proxy"
check "R: no ~/.claude.json on the host: the guest's approves the placeholder all the same (its last 20 characters)" \
	jq -e --arg t "${PH: -20}" '.customApiKeyResponses.approved | index($t) != null' "$O/claude.json"
check "R: the agent in this session answered through the proxy too" grep -qF -- "$MARKER" "$O/agent.out"
check "R: no ccvm: API proxy: summary (no upstream errors)" [ "$(summary_lines "$T_TMP/r.err")" = 0 ]

# The scans.
files=$(awk '/^FILES/ {print $2}' "$O/scan" 2>/dev/null)
check "R: the root scan ran in the guest (rc=$(cat "$O/scan.rc" 2>/dev/null), ${files:-0} files)" \
	bash -c '[ "$(cat "$1/scan.rc")" = 0 ] && [ "${2:-0}" -gt 3000 ]' _ "$O" "$files"
check "R: the scan finds the control canary planted in the guest" \
	grep -qx 'LEAK file /tmp/control.txt' "$O/scan"
leaks=$(grep '^LEAK' "$O/scan" 2>/dev/null | grep -vx 'LEAK file /tmp/control.txt')
check "R: no real credential in any guest file, environment or command line" [ -z "$leaks" ]
[ -z "$leaks" ] || diag "$leaks"
diag "R: $(tr '\n' ' ' <"$T_TMP/ram" 2>/dev/null)"
if grep -q '^RAM file' "$T_TMP/ram" 2>/dev/null; then
	check "R: guest RAM holds the control canary (the RAM scan works)" \
		bash -c '[ "$(awk "/^RAM control/ {print \$3}" "$1")" -gt 0 ]' _ "$T_TMP/ram"
	check "R: guest RAM holds no real credential" \
		bash -c '[ "$(awk "/^RAM (key|token|oauth|access|access2|decoy) / {s += \$3} END {print s + 0}" "$1")" = 0 ]' _ "$T_TMP/ram"
else
	skip "R: guest RAM scan" "$(head -1 "$T_TMP/ram" 2>/dev/null)"
	skip "R: guest RAM holds no real credential" "no RAM file"
fi
read -r polls envs <"$T_TMP/ps.polls" || polls=0 envs=0
check "R: host ps and QEMU's environment never show a real credential ($polls polls, $envs environments)" \
	bash -c '[ ! -s "$1" ] && [ "$2" -gt 3 ] && [ "$3" -gt 1 ]' _ "$T_TMP/ps.hits" "$polls" "$envs"
[ -s "$T_TMP/ps.hits" ] && diag "$(sort -u "$T_TMP/ps.hits")"
check "R: no QEMU left" [ -z "$(my_qemu "$PR")" ]

# --- L: the login file, read at request time --------------------------------
# shellcheck disable=SC2016
GUEST_LOGIN='
set -u
P=$1 out=$1/out
mkdir -p "$out"
tr "\0" "\n" </proc/$$/environ | grep -E "^(ANTHROPIC_[A-Z_]*|CLAUDE_CODE_OAUTH_TOKEN)=" | sort >"$out/env"
PH=${CLAUDE_CODE_OAUTH_TOKEN:-}
req() {
	curl -sS --noproxy "*" -m 60 -o "$out/r.$1.body" -w "%{http_code}" \
		"$ANTHROPIC_BASE_URL/v1/messages?t=$1" -H "authorization: Bearer $PH" \
		-H "anthropic-version: 2023-06-01" -H "content-type: application/json" \
		-d "{\"model\":\"claude-test\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
		>"$out/r.$1.code" 2>"$out/r.$1.err"
}
step() { : >"$P/$1"; for ((i = 0; i < 300; i++)); do [ -e "$P/$2" ] && return; sleep 0.2; done; }
req login1
step step1 go2
req login2
step step2 go3
req login3
'
PL=$(new_project)
login_file "$ACCESS" $(($(now_ms) + 3600000))
(cd "$PL" && ANTHROPIC_BASE_URL=$GOOD timeout 300 "$CCVM" --shell -- bash -c "$GUEST_LOGIN" guest "$PL") \
	>"$T_TMP/l.out" 2>"$T_TMP/l.err" &
lpid=$!
if wait_file "$PL/step1" 200; then
	login_file "$ACCESS2" $(($(now_ms) + 3600000))
	: >"$PL/go2"
fi
if wait_file "$PL/step2" 100; then
	login_file "$ACCESS2" $(($(now_ms) - 60000))
	: >"$PL/go3"
fi
wait "$lpid"
rc=$?
OL=$PL/out
diag "session L: exit $rc; stderr: $(tail -c 800 "$T_TMP/l.err" | tr '\n' ' ')"
check "L: the shell session exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
PHL=$(sed -n 's/^CLAUDE_CODE_OAUTH_TOKEN=//p' "$OL/env" 2>/dev/null)
check "L: host login file: the guest gets CLAUDE_CODE_OAUTH_TOKEN, a placeholder" \
	bash -c '[ -n "$1" ] && [[ $1 != *ccvmProxyAccess* ]]' _ "$PHL"
check "L: ... and no other credential variable" \
	bash -c '! grep -qE "^(ANTHROPIC_AUTH_TOKEN|ANTHROPIC_API_KEY)=" "$1"' _ "$OL/env"
check "L: a new session, a new placeholder" bash -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$PHL" "$PH"
check "L: first request: 200, upstream Bearer = the file's access token" \
	bash -c '[ "$(cat "$1/r.login1.code")" = 200 ] && [ "$(logval "$2" authorization login1)" = "Bearer $3" ]' _ "$OL" "$LOG" "$ACCESS"
check "L: the file rewritten mid-session: the next request carries the new token" \
	bash -c '[ "$(cat "$1/r.login2.code")" = 200 ] && [ "$(logval "$2" authorization login2)" = "Bearer $3" ]' _ "$OL" "$LOG" "$ACCESS2"
check "L: ... and no x-api-key" [ "$(logval "$LOG" x-api-key login1)" = ABSENT ]
check "L: expired login: 401 (got $(cat "$OL/r.login3.code" 2>/dev/null))" [ "$(cat "$OL/r.login3.code" 2>/dev/null)" = 401 ]
check "L: ... an API-shaped error saying the host's login expired: $(head -c 300 "$OL/r.login3.body" 2>/dev/null)" \
	bash -c 'api_error "$1" && grep -qi "expired" "$1" && grep -qi "login" "$1"' _ "$OL/r.login3.body"
check "L: ... it never reached the upstream" bash -c '[ -z "$(tagged "$1" login3)" ]' _ "$LOG"
rm -f "$H/.claude/.credentials.json"

# --- A: the agent ---------------------------------------------------------------
# agent NAME [VAR=VALUE...] -- [claude args]: `ccvm -p` in project $AP;
# stdout/stderr in $T_TMP/NAME.{out,err}, exit status in RC.
agent() {
	local name=$1 t0
	shift
	local vars=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
	shift
	t0=$(date +%s%N)
	(cd "$AP" && env "${vars[@]}" timeout 240 "$CCVM" -p "$@" \
		</dev/null >"$T_TMP/$name.out" 2>"$T_TMP/$name.err")
	RC=$?
	diag "$name: exit $RC in $((($(date +%s%N) - t0) / 1000000)) ms"
	diag "$name: stdout: $(head -c 600 "$T_TMP/$name.out" | tr '\n' ' ')"
	diag "$name: stderr: $(tail -c 1200 "$T_TMP/$name.err" | tr '\n' ' ')"
}

# A1: the API key.
n0=$(wc -l <"$LOG")
AP=$(new_project)
agent a1 ANTHROPIC_BASE_URL="$GOOD" ANTHROPIC_API_KEY="$KEY" -- "say the magic word" --output-format text
check "A1 (API key): ccvm exits 0" [ "$RC" -eq 0 ]
check "A1: the agent printed the stand-in's answer" grep -qF -- "$MARKER" "$T_TMP/a1.out"
check "A1: the upstream got streaming POSTs to /v1/messages" \
	bash -c 'msgs_since "$1" "$2" | grep -q "\"stream\": true"' _ "$LOG" "$n0"
check "A1: each carried x-api-key = the real key and no authorization" \
	all_have "$LOG" "$n0" ".\"x-api-key\" == \"$KEY\" and (has(\"authorization\") | not)"
check "A1: no ccvm: API proxy: summary line (no upstream errors)" [ "$(summary_lines "$T_TMP/a1.err")" = 0 ]

# A2: ANTHROPIC_AUTH_TOKEN, and a tool call that writes into the project.
n0=$(wc -l <"$LOG")
AP=$(new_project)
want=written-$U
agent a2 ANTHROPIC_BASE_URL="$GOOD" ANTHROPIC_AUTH_TOKEN="$TOKEN" -- \
	"Please do CCVM_WRITE $AP/proxy-wrote.txt $want" --output-format text \
	--permission-mode acceptEdits --allowedTools Write,Bash
check "A2 (ANTHROPIC_AUTH_TOKEN, tool call): ccvm exits 0" [ "$RC" -eq 0 ]
diag "A2: tools offered: $(msgs_since "$LOG" "$n0" | jq -r '.tools // empty | join(",")' | sort -u | head -2 | cut -c1-300)"
check "A2: the agent ran the stand-in's tool call: the file is in the project" \
	[ "$(cat "$AP/proxy-wrote.txt" 2>/dev/null)" = "$want" ]
check "A2: the stand-in got the tool result and the agent printed the final answer" \
	bash -c 'grep -qF -- "$1 TOOL-DONE" "$2" && msgs_since "$3" "$4" | grep -q "\"tool_result\": true"' _ "$MARKER" "$T_TMP/a2.out" "$LOG" "$n0"
check "A2: each request carried Authorization: Bearer <the real token>, no x-api-key" \
	all_have "$LOG" "$n0" ".authorization == \"Bearer $TOKEN\" and (has(\"x-api-key\") | not)"

# A3: CLAUDE_CODE_OAUTH_TOKEN, upstream plain HTTP on the host's loopback.
n0=$(wc -l <"$PLOG")
AP=$(new_project)
agent a3 ANTHROPIC_BASE_URL="http://127.0.0.1:$PPORT" CLAUDE_CODE_OAUTH_TOKEN="$OAUTH" -- \
	"say the magic word" --output-format text
check "A3 (CLAUDE_CODE_OAUTH_TOKEN, http:// loopback upstream): ccvm exits 0" [ "$RC" -eq 0 ]
check "A3: the agent printed the stand-in's answer" grep -qF -- "$MARKER" "$T_TMP/a3.out"
check "A3: each request carried Authorization: Bearer <the real token>, no x-api-key" \
	all_have "$PLOG" "$n0" ".authorization == \"Bearer $OAUTH\" and (has(\"x-api-key\") | not)"

# A4: the host's login file; the base URL from the host's settings.json.
n0=$(wc -l <"$LOG")
login_file "$ACCESS" $(($(now_ms) + 3600000))
jq --arg u "$GOOD" '.env.ANTHROPIC_BASE_URL = $u' <<<"$SETTINGS" >"$H/.claude/settings.json"
AP=$(new_project)
agent a4 -- "say the magic word" --output-format text
check "A4 (login file, base URL in settings.json): ccvm exits 0" [ "$RC" -eq 0 ]
check "A4: the agent printed the stand-in's answer" grep -qF -- "$MARKER" "$T_TMP/a4.out"
check "A4: each request carried Authorization: Bearer <the file's access token>" \
	all_have "$LOG" "$n0" ".authorization == \"Bearer $ACCESS\" and (has(\"x-api-key\") | not)"
printf '%s\n' "$SETTINGS" >"$H/.claude/settings.json"

# A5: an expired login file.
n0=$(wc -l <"$LOG")
login_file "$ACCESS" $(($(now_ms) - 60000))
AP=$(new_project)
agent a5 ANTHROPIC_BASE_URL="$GOOD" -- "say the magic word" --output-format text
check "A5 (expired login): ccvm ends by itself, the agent's failure (rc=$RC)" \
	bash -c '[ "$1" -ne 0 ] && [ "$1" -lt 124 ]' _ "$RC"
check "A5: the agent shows why: the host's login expired" \
	bash -c 'agent_said "$1" "$2" | grep -i "expired" | grep -qi "login"' _ "$T_TMP/a5.out" "$T_TMP/a5.err"
check "A5: nothing reached the upstream" bash -c '[ -z "$(msgs_since "$1" "$2")" ]' _ "$LOG" "$n0"
rm -f "$H/.claude/.credentials.json"

# A6: the upstream is down.
AP=$(new_project)
agent a6 ANTHROPIC_BASE_URL="https://127.0.0.1:$DPORT" ANTHROPIC_API_KEY="$KEY" -- \
	"say the magic word" --output-format text
check "A6 (upstream down): ccvm ends by itself, the agent's failure (rc=$RC)" \
	bash -c '[ "$1" -ne 0 ] && [ "$1" -lt 124 ]' _ "$RC"
check "A6: the agent shows a 502 from ccvm naming the cause" \
	bash -c 'agent_said "$1" "$2" | grep "ccvm" | grep -qiE "connect|refused|unreachable"' _ "$T_TMP/a6.out" "$T_TMP/a6.err"
check "A6: one ccvm: API proxy: summary line at exit" [ "$(summary_lines "$T_TMP/a6.err")" = 1 ]

# A7: a certificate the host does not trust.
AP=$(new_project)
tf0=$(stat_of "$BLOG" tls_failures)
agent a7 ANTHROPIC_BASE_URL="https://127.0.0.1:$BPORT" ANTHROPIC_API_KEY="$KEY" -- \
	"say the magic word" --output-format text
check "A7 (bad certificate): ccvm ends by itself, the agent's failure (rc=$RC)" \
	bash -c '[ "$1" -ne 0 ] && [ "$1" -lt 124 ]' _ "$RC"
check "A7: the agent shows an error from ccvm naming the certificate" \
	bash -c 'agent_said "$1" "$2" | grep "ccvm" | grep -qiE "certificate|TLS|SSL|verif"' _ "$T_TMP/a7.out" "$T_TMP/a7.err"
check "A7: the upstream never got a request" \
	bash -c '! grep -q "\"method\"" "$1"' _ "$BLOG"
check "A7: the upstream saw the TLS handshake fail (the host refused its certificate)" \
	[ "$(stat_of "$BLOG" tls_failures)" -gt "$tf0" ]
# A8: a corporate host: an HTTP proxy the upstream is reached through
# (CONNECT), and the test CA added to the system's with NODE_EXTRA_CA_CERTS
# instead of replacing it with SSL_CERT_FILE.  A9: NO_PROXY names it.
CLOG=$T_TMP/connect.log
: >"$CLOG"
cpf=$T_TMP/connect.port
/usr/bin/python3 "$(dirname "$0")/connect_proxy.py" "$CLOG" >"$cpf" 2>"$cpf.err" &
SERVERS+=("$!")
CPORT=
for ((i = 0; i < 50; i++)); do
	CPORT=$(head -1 "$cpf" 2>/dev/null)
	[ -n "$CPORT" ] && break
	sleep 0.1
done
AP=$(new_project)
agent a8 SSL_CERT_FILE= NODE_EXTRA_CA_CERTS="$CA" HTTPS_PROXY="http://127.0.0.1:$CPORT" \
	ANTHROPIC_BASE_URL="$GOOD" ANTHROPIC_API_KEY="$KEY" -- "say the magic word" --output-format text
diag "a8: the proxy saw: $(tr '\n' ' ' <"$CLOG")"
check "A8 (HTTPS_PROXY, NODE_EXTRA_CA_CERTS): ccvm exits 0" [ "$RC" -eq 0 ]
check "A8: the agent printed the stand-in's answer" grep -qF -- "$MARKER" "$T_TMP/a8.out"
check "A8: the upstream was reached through the host's proxy (CONNECT 127.0.0.1:$GPORT)" \
	grep -qx "CONNECT 127.0.0.1:$GPORT" "$CLOG"
: >"$CLOG"
AP=$(new_project)
agent a9 HTTPS_PROXY="http://127.0.0.1:$CPORT" NO_PROXY=127.0.0.1 \
	ANTHROPIC_BASE_URL="$GOOD" ANTHROPIC_API_KEY="$KEY" -- "say the magic word" --output-format text
check "A9 (NO_PROXY names the upstream): the agent printed the stand-in's answer" \
	grep -qF -- "$MARKER" "$T_TMP/a9.out"
check "A9: ... and the host's proxy saw nothing" [ ! -s "$CLOG" ]
check "no QEMU left after the agent sessions" [ -z "$(leftovers)" ]

# --- T: the TUI ---------------------------------------------------------------------
if ! command -v tmux >/dev/null; then
	skip_missing tmux "the agent's TUI through the proxy" "tmux is not installed"
	done_testing
	exit
fi
PT=$(new_project)
printf '{"hasCompletedOnboarding": true, "theme": "dark", "projects": {"%s": {"hasTrustDialogAccepted": true}}}\n' \
	"$PT" >"$H/.claude.json"
export TMUX_TMPDIR=$T_TMP
S=ccvm-p$$
dump() { tmux capture-pane -p -t $S | grep -v '^ *$' | sed 's/^/# /'; }
n0=$(wc -l <"$LOG")
tmux new-session -d -s $S -x 120 -y 40 "bash --norc --noprofile"
tmux pipe-pane -o -t $S "cat >>'$T_TMP/tui.raw'"
tmux send-keys -t $S "cd '$PT' && ANTHROPIC_BASE_URL=$GOOD ANTHROPIC_API_KEY=$KEY SSL_CERT_FILE=$CA '$CCVM'; echo EXIT=\$?" Enter
if tmux_wait $S 240 'custom API key\|Claude Code v' && tmux_wait $S 60 'custom API key\|^❯'; then
	if tmux capture-pane -p -t $S | grep -q 'custom API key'; then
		not_ok "T: no API-key prompt (the placeholder is approved)"
		dump
		tmux send-keys -t $S Up
		sleep 1
		tmux send-keys -t $S Enter
		tmux_wait $S 60 '^❯'
	else
		ok "T: no API-key prompt (the placeholder is approved)"
	fi
	tmux send-keys -t $S "say the magic word"
	sleep 2
	tmux send-keys -t $S Enter
	check "T: a prompt typed into the UI is answered on screen" tmux_wait $S 240 "$MARKER"
	tmux_wait $S 1 "$MARKER" || dump
	check "T: ... through the proxy (x-api-key = the real key upstream)" \
		all_have "$LOG" "$n0" ".\"x-api-key\" == \"$KEY\""
	tmux send-keys -t $S "/status"
	sleep 2
	tmux send-keys -t $S Enter
	check "T: /status shows the proxy (api.ccvm.internal)" tmux_wait $S 60 'api\.ccvm\.internal'
	tmux_wait $S 1 'api\.ccvm\.internal' || dump
else
	not_ok "T: the agent's UI came up"
	dump
fi
tmux kill-session -t $S
for ((i = 0; i < 75; i++)); do
	[ -z "$(leftovers)" ] && break
	sleep 0.2
done
check "no QEMU or virtiofsd left" [ -z "$(leftovers)" ]
leftovers | sed 's/^/# left: /'
done_testing
