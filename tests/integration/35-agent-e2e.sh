#!/bin/bash
# ccvm's main job end to end on the path without the credential proxy
# (credentialProxy=false, the weaker mode; 36-apiproxy.sh tests the
# default): the real agent (claude -p, the pinned package inside the VM)
# asks a stand-in of the Anthropic Messages API on the host's 127.0.0.1 and
# prints its answer.  ANTHROPIC_BASE_URL=http://127.0.0.1:PORT is rewritten
# by ccvm to host.ccvm.internal:PORT for the guest and exactly that port of
# the host's loopback is opened; the API key reaches the agent over the
# private channel only.  Nothing leaves this machine.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg

# A user without any Claude setup: the image cache stays where need_image
# found it, everything else is an empty fixture.
fake_home

U=$$$RANDOM
MARKER=CCVM-E2E-OK-$U
KEY=sk-ant-test-$U
LOG=$T_TMP/api.log
: >"$LOG"

start_fake_api "$LOG" "$MARKER"
trap 'kill $API 2>/dev/null; rm -rf "$T_TMP"' EXIT
: >"$LOG" # the probe below is not the agent's
check "the stand-in answers on the host's 127.0.0.1:$PORT" \
	curl -s -m 5 -o /dev/null "http://127.0.0.1:$PORT/"
: >"$LOG"

P=$(new_project)
cd "$P" || exit 1
t0=$(date +%s%N)
CCVM_CREDENTIAL_PROXY=false ANTHROPIC_BASE_URL=http://127.0.0.1:$PORT ANTHROPIC_API_KEY=$KEY \
	timeout 240 "$CCVM" -p "say the magic word" --output-format text \
	</dev/null >"$T_TMP/out" 2>"$T_TMP/err"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
diag "session: exit $rc in $ms ms"
diag "stdout: $(head -c 500 "$T_TMP/out" | tr '\n' ' ')"
diag "stderr: $(tail -c 1500 "$T_TMP/err" | tr '\n' ' ')"
diag "the agent's requests to the stand-in:"
sed 's/^/#   /' "$LOG" | sed "s/$KEY/<the key>/g" | head -40

check "ccvm exits 0" [ "$rc" -eq 0 ]
check "the agent printed the stand-in's answer ($MARKER)" grep -q -- "$MARKER" "$T_TMP/out"
check "the stand-in got a streaming POST /v1/messages" \
	grep -q '"method": "POST", "path": "/v1/messages[?"].*"stream": true' "$LOG"
check "the requests came through the host relay to the host's loopback" \
	grep -q "\"host\": \"host.ccvm.internal:$PORT\"" "$LOG"
check "the API key reached the agent (x-api-key on /v1/messages)" \
	grep -q "\"path\": \"/v1/messages[?\"].*\"x-api-key\": \"$KEY\"" "$LOG"
check "no leftover QEMU" [ -z "$(leftovers)" ]
done_testing
