#!/bin/bash
# Egress (issue 6): the guest has no NIC; its TCP and DNS go through the
# host's policy.  Test hosts live in network namespaces this script makes
# (a user+net+mount namespace with a veth pair to a second netns); names come
# from a private /etc/hosts and a logging fake DNS server on the test's own
# addresses.  Nothing leaves this machine.
source "$(dirname "$0")/lib.sh"
export CCVM_ACCEL=tcg
HERE=$(cd "$(dirname "$0")" && pwd)

if [ -z "${CCVM_EGRESS_INNER:-}" ]; then
	need_image
	if ! unshare -r true 2>/dev/null; then
		skip_missing userns "egress tests" "unprivileged user namespaces are not available here"
		done_testing
		exit 0
	elif ! unshare -rnm true 2>/dev/null; then
		not_ok "egress tests: a user namespace may have its own network and mounts (unshare -rnm)"
		done_testing
		exit 1
	fi
	CCVM_EGRESS_INNER=1 unshare -rnm --kill-child bash "$0"
	exit $?
fi

# --- inside our own namespaces: build the test "internet" ----------------
PY=/usr/bin/python3
ip link set lo up
unshare -n sleep 3600 &
INNER=$!
# The second netns exists once that process has left ours (a fixed sleep
# raced on a loaded machine: v1 then stayed here).
for ((i = 0; i < 100; i++)); do
	[ "$(readlink /proc/$INNER/ns/net)" != "$(readlink /proc/self/ns/net)" ] && break
	sleep 0.05
done
trap 'kill $SRV $LB $LB6 $ANY $INNER 2>/dev/null; pkill -P $SRV 2>/dev/null; rm -rf "$T_TMP"' EXIT
ip link add v0 type veth peer name v1
ip link set v1 netns "$INNER"
ip addr add 10.77.0.1/24 dev v0
ip -6 addr add fd77::1/64 dev v0 nodad
ip link set v0 up
ip route add 10.77.1.0/24 dev v0
# Cloud metadata and Tailscale's address, served next door like any host.
ip route add 168.63.129.16/32 dev v0
ip route add 100.100.100.100/32 dev v0
ip -6 route add fd20:ce::/64 dev v0
# A local prefix route (AnyIP): all of 10.99.0.0/24 is this host, though
# only 10.99.0.1 is an interface address.
ip addr add 10.99.0.1/24 dev lo
in_inner() { nsenter -t "$INNER" -n "$@"; }
in_inner ip link set lo up
in_inner ip link set v1 up
for a in 10.77.0.2/24 10.77.0.3/24 10.77.0.53/24 10.77.1.5/24 168.63.129.16/32 100.100.100.100/32; do
	in_inner ip addr add $a dev v1
done
in_inner ip -6 addr add fd77::2/64 dev v1 nodad
in_inner ip -6 addr add fd20:ce::254/64 dev v1 nodad
in_inner ip route add default dev v1
in_inner ip -6 route add default dev v1

DNSLOG=$T_TMP/dns.log
: >"$DNSLOG"
in_inner $PY "$HERE/egress_servers.py" 10.77.0.53 "$DNSLOG" 10.77.0.2:8080 \
	10.77.0.2:8081 10.77.0.3:8080 10.77.1.5:8080 '[fd77::2]:8080' \
	168.63.129.16:8080 100.100.100.100:8080 '[fd20:ce::254]:8080' &
SRV=$!
# A service on the host's own loopback.
$PY -m http.server --bind 127.0.0.1 8099 --directory "$T_TMP" >/dev/null 2>&1 &
LB=$!
# And one on ::1 only: host.ccvm.internal reaches either, whichever address
# family the guest picked.
$PY -m http.server --bind ::1 8098 --directory "$T_TMP" >/dev/null 2>&1 &
LB6=$!
# One on an address of the AnyIP prefix: this host, not an interface's.
$PY "$HERE/egress_servers.py" 10.99.0.7 /dev/null 10.99.0.7:8090 &
ANY=$!

cat >"$T_TMP/hosts" <<'H'
127.0.0.1 localhost
10.77.0.2 web.test rot.test
10.77.0.3 other.test
fd77::2 web6.test
H
echo 'nameserver 10.77.0.53' >"$T_TMP/resolv.conf"
mount --bind "$T_TMP/hosts" /etc/hosts
mount --bind "$T_TMP/resolv.conf" /etc/resolv.conf
up=no
for ((i = 0; i < 40; i++)); do # the servers start in a second or so
	curl -s -m 5 http://web.test:8080/ | grep -q 'hello from 10.77.0.2:8080' && up=yes && break
	sleep 0.25
done
if [ $up != yes ]; then
	not_ok "test servers reachable from the host namespace"
	done_testing
	exit 1
fi
# The refusals below mean something only if these answer here.
for u in http://10.99.0.7:8090/ http://168.63.129.16:8080/ \
	http://100.100.100.100:8080/ 'http://[fd20:ce::254]:8080/'; do
	got=
	for ((i = 0; i < 40; i++)); do
		got=$(curl -s -m 5 "$u") && [ -n "$got" ] && break
		sleep 0.25
	done
	check "control: $u answers in ccvm's namespace ($got)" [ -n "$got" ]
done

export CCVM_ALLOW_ROOT=1
P=$(new_project)
cd "$P" || exit 1
# The audit log (issue 23): one file per session under $XDG_STATE_HOME/ccvm.
export XDG_STATE_HOME=$T_TMP/state
AUD=$XDG_STATE_HOME/ccvm
run_guest() { # CONFIG_JSON SCRIPT -> stdout in $T_TMP/out, stderr in $T_TMP/err
	printf '%s\n' "$1" >"$T_TMP/cfg.json"
	CCVM_CONFIG=$T_TMP/cfg.json timeout 300 "$CCVM" --shell -- bash -c "$2" >"$T_TMP/out" 2>"$T_TMP/err"
}
# The newest session's audit log.
last_log() { ls -1 "$AUD"/*.jsonl 2>/dev/null | sort | tail -1; }
# jq -e over the newest log's lines, slurped.
audit_has() { jq -e -s "$1" "$(last_log)" >/dev/null 2>&1; }
field() { sed -n "s/^$1=//p" "$T_TMP/out" | head -1; }
# refused NAME: probe NAME ran in the guest (its line is there, with an exit
# status) and failed, or (a plaintext HTTP request) got ccvm's 403 body.
# A session that never ran refuses nothing.
refused() {
	local rc
	rc=$(field "$1" | cut -d'|' -f2)
	[[ $rc =~ ^[0-9]+$ ]] && { [ "$rc" != 0 ] || [[ $(field "$1") == "ccvm: blocked: "* ]]; }
}
# In the guest: R NAME CMD... prints NAME=<first line of output>|rc|ms
G_LIB='R() { local n=$1; shift; local t0=$(date +%s%N); local o rc; o=$(set -o pipefail; "$@" 2>/dev/null | head -1); rc=$?; echo "$n=$o|$rc|$(( ($(date +%s%N) - t0) / 1000000 ))"; }
C() { curl -s -m 15 "$@"; }
CW() { curl -s -m 15 -w " %{http_code}" "$@" | tr "\n" " "; }
'

# --- open mode ------------------------------------------------------------
run_guest '{}' "$G_LIB"'
R name C http://web.test:8080/
R sizes C -o /dev/null -w "%{size_request} %{size_header} %{size_download}" http://web.test:8080/sized
R ip C http://10.77.0.3:8080/
R v6 C "http://[fd77::2]:8080/"
R v6name C http://web6.test:8080/
R lbname C http://host.ccvm.internal:8099/
R lbalias C http://192.0.2.2:8099/
R lbself C http://10.77.0.1:8099/
R anyip C http://10.99.0.7:8090/
R azure C http://168.63.129.16:8080/
R tailscale C http://100.100.100.100:8080/
R gcp6 C "http://[fd20:ce::254]:8080/"
R nics sh -c "echo \$(ls /sys/class/net)"
R rules sh -c "L() { sudo -n nft list ruleset && sudo -n nft --debug=netlink list ruleset | grep -F \"  [\"; }; L > /tmp/ours && printf \"table inet ccvm {\n chain out {\n  type nat hook output priority -100; policy accept;\n  meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :999\n  meta l4proto tcp ip6 daddr != ::1 redirect to :999\n }\n}\n\" > /tmp/ref.nft && sudo -n nft flush ruleset && sudo -n nft -f /tmp/ref.nft && L | cmp - /tmp/ours && grep -c redir /tmp/ours"
cat /run/ccvm/egress.log | sed "s/^/LOG: /"
'
diag "open mode: $(tr '\n' ' ' <"$T_TMP/out" | head -c 1500)"
check "open mode: a test host by name" [ "$(field name | cut -d'|' -f1)" = "hello from 10.77.0.2:8080" ]
check "open mode: a test host by IP" [ "$(field ip | cut -d'|' -f1)" = "hello from 10.77.0.3:8080" ]
check "open mode: IPv6 by address" [ "$(field v6 | cut -d'|' -f1)" = "hello from fd77::2:8080" ]
check "open mode: IPv6 by name" [ "$(field v6name | cut -d'|' -f1)" = "hello from fd77::2:8080" ]
check "open mode: host.ccvm.internal does not resolve unless listed" refused lbname
check "open mode: host loopback via the alias address refused" refused lbalias
check "open mode: the host's own address refused" refused lbself
check "open mode: an address of a local prefix route (AnyIP on lo) refused as the host" refused anyip
check "egress.log: the AnyIP address is the host itself" grep -q 'LOG: .*10.99.0.7:8090 is the host itself' "$T_TMP/out"
check "open mode: Azure's 168.63.129.16 refused as metadata" refused azure
check "open mode: Tailscale's 100.100.100.100 refused as the host" refused tailscale
check "open mode: GCP's fd20:ce::254 refused as metadata" refused gcp6
check "egress.log: fd20:ce::254 is metadata" grep -q 'LOG: .*fd20:ce::254.*cloud metadata' "$T_TMP/out"
check "the guest has no NIC (only lo and the dummy)" [ "$(field nics | cut -d'|' -f1)" = "ccvm0 lo" ]
check "ccvm-init's nftables rules are what nft makes of the same ruleset ($(field rules))" \
	[ "$(field rules | cut -d'|' -f1,2)" = "4|0" ]
check "egress.log explains the host-loopback denial" grep -q 'LOG: .*192.0.2.2.*blocked: host.ccvm.internal:8099: host.ccvm.internal is not in egressAllowlist' "$T_TMP/out"
check "exit summary names host.ccvm.internal:8099" grep -q 'egress blocked:.*host.ccvm.internal:8099' "$T_TMP/err"

# The audit log of that session.
L1=$(last_log)
diag "audit log: ${L1:-none}: $(wc -l <"${L1:-/dev/null}") lines"
check "audit: one log file for the session ($(ls "$AUD" 2>/dev/null | tr '\n' ' '))" \
	[ "$(ls "$AUD"/*.jsonl 2>/dev/null | wc -l)" = 1 ]
check "audit: the directory is 0700, the file 0600" \
	bash -c '[ "$(stat -c %a "$1")" = 700 ] && [ "$(stat -c %a "$2")" = 600 ]' _ "$AUD" "$L1"
check "audit: every line is a JSON object" bash -c 'jq -e -c . "$1" >/dev/null' _ "$L1"
check "audit: the session line names the project and open mode" \
	audit_has "first | .event == \"session\" and .project == \"$P\" and .mode == \"open\""
check "audit: the lookup of web.test, allowed, with its address" \
	audit_has 'any(.[]; .event == "lookup" and .name == "web.test" and .verdict == "allowed" and (.answers | index("10.77.0.2")))'
read -r s_req s_hdr s_body <<<"$(field sizes | cut -d'|' -f1)"
check "audit: a connection's bytes each way are what curl sent and got (up $s_req, down $((s_hdr + s_body)))" \
	audit_has "any(.[]; .event == \"connect\" and .dest == \"web.test\" and .addr == \"10.77.0.2\" and .port == 8080 and .verdict == \"allowed\" and .up == $s_req and .down == $((s_hdr + s_body)) and .ms >= 0)"
check "audit: the refused host-alias connection, with the reason" \
	audit_has 'any(.[]; .event == "connect" and .addr == "192.0.2.2" and .port == 8099 and .verdict == "blocked" and (.reason | test("not in egressAllowlist")))'
check "audit: metadata refused, with the reason" \
	audit_has 'any(.[]; .event == "connect" and .addr == "168.63.129.16" and .verdict == "blocked" and (.reason | test("metadata")))'
check "audit: no payload in the log (the test server's answer text is absent)" \
	bash -c '! grep -q "hello from" "$1"' _ "$L1"

# --ccvm-egress summarises that session; --ccvm-egress-suggest writes the
# allowlist it needed, under which the same work passes and an unlisted
# name is refused (issue 23 items 2, 3).
"$CCVM" --ccvm-egress >"$T_TMP/sum" 2>&1
diag "summary: $(head -c 1500 "$T_TMP/sum" | tr '\n' ' ')"
check "--ccvm-egress names web.test and the refused metadata address" \
	bash -c 'grep -q "web.test" "$1" && grep -q "168.63.129.16" "$1"' _ "$T_TMP/sum"
check "--ccvm-egress gives the metadata refusal's reason once worded" \
	bash -c 'grep -q "^  blocked: 168.63.129.16:8080 is cloud metadata" "$1" && ! grep -q "blocked: blocked" "$1"' _ "$T_TMP/sum"
"$CCVM" --ccvm-egress-suggest >"$T_TMP/suggest.json" 2>"$T_TMP/suggest.err"
diag "suggestion: $(tr '\n' ' ' <"$T_TMP/suggest.json")"
check "--ccvm-egress-suggest lists web.test and port 8080, not the refused ones" \
	jq -e '(.egressAllowlist | index("web.test")) and (.egressPorts | index(8080)) and
		(.egressAllowlist | index("168.63.129.16") | not) and (.egressAllowlist | index("192.0.2.2") | not)' "$T_TMP/suggest.json"
run_guest "$(cat "$T_TMP/suggest.json")" "$G_LIB"'
R same C http://web.test:8080/
R unlisted getent hosts other.test
'
diag "suggested config: $(tr '\n' ' ' <"$T_TMP/out")"
check "under the suggestion the same work passes" [ "$(field same | cut -d'|' -f1)" = "hello from 10.77.0.2:8080" ]
check "under the suggestion an unlisted name is refused" refused unlisted

# --- host.ccvm.internal listed ----------------------------------------------
run_guest '{"egressAllowlist": ["host.ccvm.internal"], "egressPorts": [8099, 8098]}' "$G_LIB"'
R lb C -4 -o /dev/null -w "%{http_code}" http://host.ccvm.internal:8099/
R lb_6to4 C -6 -o /dev/null -w "%{http_code}" http://host.ccvm.internal:8099/
R lb_4to6 C -4 -o /dev/null -w "%{http_code}" http://host.ccvm.internal:8098/
R still C http://web.test:8080/
'
diag "alias: $(tr '\n' ' ' <"$T_TMP/out")"
check "host.ccvm.internal listed: the host's 127.0.0.1 service answers" [ "$(field lb | cut -d'|' -f1)" = 200 ]
check "host.ccvm.internal over IPv6 reaches a service on the host's 127.0.0.1 only" [ "$(field lb_6to4 | cut -d'|' -f1)" = 200 ]
check "host.ccvm.internal over IPv4 reaches a service on the host's ::1 only" [ "$(field lb_4to6 | cut -d'|' -f1)" = 200 ]
check "host.ccvm.internal listed: still open mode for the rest" [ "$(field still | cut -d'|' -f1)" = "hello from 10.77.0.2:8080" ]

# --- allowlist ------------------------------------------------------------
: >"$DNSLOG"
rm -f "$P/step1" "$P/step2"
(
	for ((i = 0; i < 600; i++)); do [ -e "$P/step1" ] && break; sleep 0.5; done
	printf '127.0.0.1 localhost\n10.77.0.2 web.test\n10.77.0.3 rot.test other.test\n' >"$T_TMP/hosts"
	touch "$P/step2"
) &
run_guest '{"egressAllowlist": ["web.test", "rot.test", "dnsonly.test", "10.77.1.0/24", "168.63.129.16"], "egressPorts": [8080]}' "$G_LIB"'
R ok C http://web.test:8080/
R fronthttp C --resolve fronted.test:8080:10.77.0.2 http://fronted.test:8080/
R front403 C -o /dev/null -w "%{http_code}" --resolve fronted.test:8080:10.77.0.2 http://fronted.test:8080/
R fronttls C -k --resolve fronted.test:8080:10.77.0.2 -o /dev/null -w "%{http_code}" https://fronted.test:8080/
R okTLS C -k --resolve web.test:8080:10.77.0.2 -o /dev/null -w "%{http_code}" https://web.test:8080/
R nohost C -H "Host:" -w " %{http_code}" http://web.test:8080/
R ipconn C -o /dev/null -w "%{http_code}" http://10.77.1.5:8080/
R azure C http://168.63.129.16:8080/
R port C http://web.test:8081/
R unlisted_ip C http://10.77.0.3:8080/
R cidr C http://10.77.1.5:8080/
R tunnel getent hosts secretdata123.unlisted.test
R port403 CW http://web.test:8081/
R ip403 CW http://10.77.0.3:8080/
R iptls C -k -o /dev/null -w "%{http_code}" https://10.77.0.3:8080/
R silent timeout 10 bash -c "exec 3<>/dev/tcp/10.77.0.3/8080; cat <&3"
R control getent hosts dnsonly.test
R rot1 C http://rot.test:8080/
touch step1; for i in $(seq 300); do [ -e step2 ] && break; sleep 0.2; done
R rot2 C http://rot.test:8080/
# root in the guest tries to get around it
R sudo sudo -n true
sudo -n nft flush ruleset
R flushed C -m 5 http://10.77.0.3:8080/
sudo -n ip route add 10.77.0.0/24 dev lo 2>/dev/null
R routed C -m 5 http://10.77.0.3:8080/
printf "nameserver 10.77.0.53\noptions timeout:2 attempts:1\n" | sudo -n tee /etc/resolv.conf >/dev/null
R otherdns getent hosts leak456.unlisted.test
cat /run/ccvm/egress.log | sed "s/^/LOG: /"
'
diag "allowlist: $(tr '\n' ' ' <"$T_TMP/out" | head -c 3000)"
diag "stderr: $(tr '\n' ' ' <"$T_TMP/err" | head -c 500)"
check "allowlist: allowed name on an allowed port" [ "$(field ok | cut -d'|' -f1)" = "hello from 10.77.0.2:8080" ]
check "allowlist: allowed name, other port refused" refused port
ms=$(field port | cut -d'|' -f3)
check "allowlist: other port refused fast (${ms} ms < 1000)" [ "${ms:-99999}" -lt 1000 ]
check "allowlist: unlisted IP refused" refused unlisted_ip
ms=$(field unlisted_ip | cut -d'|' -f3)
check "allowlist: unlisted IP refused fast (${ms} ms < 1000)" [ "${ms:-99999}" -lt 1000 ]
# Denials the agent understands (issue 23 item 5): plaintext HTTP refused
# by address or port is answered 403 with the reason; TLS is reset; a
# client that sends nothing is reset once the wait for first bytes ends.
check "allowlist: HTTP to an unlisted port gets 403 with the reason ($(field port403))" \
	bash -c '[[ $1 == "ccvm: blocked: "*"8081"*"egressPorts"*" 403|0|"* ]]' _ "$(field port403)"
check "allowlist: HTTP to an unlisted address gets 403 with the reason ($(field ip403))" \
	bash -c '[[ $1 == "ccvm: blocked: 10.77.0.3:8080"*"not in egressAllowlist"*" 403|0|"* ]]' _ "$(field ip403)"
check "egress.log explains the 403 for the unlisted address" \
	grep -q 'LOG: .* 10.77.0.3:8080: blocked: 10.77.0.3:8080 is not in egressAllowlist' "$T_TMP/out"
check "allowlist: the 403 comes fast ($(field ip403 | cut -d'|' -f3) ms < 1000)" \
	[ "$(field ip403 | cut -d'|' -f3)" -lt 1000 ]
check "allowlist: TLS to an unlisted address is reset, not answered ($(field iptls))" \
	bash -c '[[ $1 == 000"|"[1-9]* ]]' _ "$(field iptls)"
ms=$(field silent | cut -d'|' -f3)
check "allowlist: a client that sends nothing is reset after the 1 s wait ($(field silent))" \
	bash -c '[[ $1 == *"|"[1-9]*"|"* ]] && [ "$2" -ge 900 ] && [ "$2" -lt 5000 ]' _ "$(field silent)" "${ms:-0}"
check "allowlist: a CIDR entry works" [ "$(field cidr | cut -d'|' -f1)" = "hello from 10.77.1.5:8080" ]
# Names bound to connections (issue 23 item 4): 10.77.0.2 was resolved for
# web.test; fronted.test is not listed.
check "allowlist: HTTP to an allowed name's address with an unlisted Host gets 403 ($(field front403))" \
	[ "$(field front403 | cut -d'|' -f1)" = 403 ]
check "allowlist: ... and the body says why ($(field fronthttp))" \
	bash -c '[[ $1 == "ccvm: blocked: 10.77.0.2:8080: Host fronted.test is not in egressAllowlist"* ]]' _ "$(field fronthttp)"
check "allowlist: TLS to an allowed name's address naming an unlisted server is refused ($(field fronttls))" \
	bash -c 'f=$1; rc=${f#*|}; rc=${rc%%|*}; [ "$rc" != 0 ] && [ "${f%%|*}" = 000 ]' _ "$(field fronttls)"
check "egress.log explains the refused server name" \
	grep -q 'LOG: .*blocked: .*server name fronted.test is not in egressAllowlist' "$T_TMP/out"
check "allowlist: HTTP to an allowed name without a Host is refused" bash -c '[[ $1 != *"hello from"* ]]' _ "$(field nohost)"
check "allowlist: a CIDR entry needs no name (HTTP by address works: $(field ipconn))" \
	[ "$(field ipconn | cut -d'|' -f1)" = 200 ]
check "allowlist: metadata named exactly is reached" [ "$(field azure | cut -d'|' -f1)" = "hello from 168.63.129.16:8080" ]
check "allowlist: unlisted name does not resolve" refused tunnel
# no_query PROBE NAME: lookup PROBE ran and failed, and no query for NAME
# reached the test's DNS server.
no_query() { refused "$1" && ! grep -q "$2" "$DNSLOG"; }
check "allowlist: no query for the unlisted name left the host (DNS tunnel)" no_query tunnel unlisted
check "allowlist: control: an allowed name unknown to /etc/hosts did reach the test DNS" grep -q '^dnsonly.test$' "$DNSLOG"
check "allowlist: rotating name, first address" [ "$(field rot1 | cut -d'|' -f1)" = "hello from 10.77.0.2:8080" ]
check "allowlist: rotating name, new address still works" [ "$(field rot2 | cut -d'|' -f1)" = "hello from 10.77.0.3:8080" ]
if [ "$(field sudo | cut -d'|' -f2)" = 0 ]; then
	check "root: flushing nftables gives no path to an unlisted host" refused flushed
	check "root: adding routes gives no path to an unlisted host" refused routed
	check "root: another DNS server gives no lookup outside" no_query otherdns leak456
else
	not_ok "root in the guest: sudo works for the agent (agentSudo is on by default)"
fi
check "egress.log explains the refused port" grep -q 'LOG: .*10.77.0.2:8081: blocked: web.test:8081.*port not in egressPorts' "$T_TMP/out"
check "egress.log explains the refused lookup" grep -q 'LOG: .*blocked: lookup of secretdata123.unlisted.test' "$T_TMP/out"
check "exit summary lists the blocked destinations" grep -q 'egress blocked:.*10.77.0.3:8080' "$T_TMP/err"
check "exit summary lists the refused port and lookup" bash -c "grep -q 'web.test:8081' '$T_TMP/err' && grep -q 'secretdata123.unlisted.test (lookup)' '$T_TMP/err'"
check "audit: the allowlist session has a log of its own" [ "$(ls "$AUD"/*.jsonl 2>/dev/null | wc -l)" = 4 ]
check "audit: its session line has the allowlist and ports" \
	audit_has 'first | .mode == "allowlist" and (.allowlist | index("web.test")) and .ports == [8080]'
check "audit: the refused lookup (a DNS tunnel attempt), with the reason" \
	audit_has 'any(.[]; .event == "lookup" and .name == "secretdata123.unlisted.test" and .verdict == "blocked")'
check "audit: the refused port, with the reason" \
	audit_has 'any(.[]; .event == "connect" and .addr == "10.77.0.2" and .port == 8081 and .verdict == "blocked" and (.reason | test("egressPorts")))'
check "audit: the TLS connection naming web.test was let through, with its server name" \
	audit_has 'any(.[]; .event == "connect" and .sni == "web.test" and .verdict == "allowed")'
check "audit: the fronted TLS connection, blocked, with its server name" \
	audit_has 'any(.[]; .event == "connect" and .sni == "fronted.test" and .verdict == "blocked")'
check "audit: the fronted HTTP request, blocked, with its Host" \
	audit_has 'any(.[]; .event == "connect" and .host == "fronted.test" and .verdict == "blocked")'
check "audit: the allowed HTTP request carries its Host" \
	audit_has 'any(.[]; .event == "connect" and .host == "web.test" and .verdict == "allowed" and .down > 0)'
check "audit: the CIDR-allowed connection" \
	audit_has 'any(.[]; .event == "connect" and .addr == "10.77.1.5" and .verdict == "allowed" and .down > 0)'

# CCVM_EGRESS_LOG=0: the session keeps no log (and works as before).
n_before=$(ls "$AUD"/*.jsonl 2>/dev/null | wc -l)
CCVM_EGRESS_LOG=0 run_guest '{}' "$G_LIB"'
R nolog C http://web.test:8080/
'
check "CCVM_EGRESS_LOG=0: the session works ($(field nolog))" [ "$(field nolog | cut -d'|' -f1)" = "hello from 10.77.0.2:8080" ]
check "CCVM_EGRESS_LOG=0: no log file was written ($n_before before, $(ls "$AUD"/*.jsonl 2>/dev/null | wc -l) after)" \
	[ "$(ls "$AUD"/*.jsonl 2>/dev/null | wc -l)" = "$n_before" ]
check "CCVM_EGRESS_LOG=0: no warning about the log" bash -c '! grep -q "audit log" "$1"' _ "$T_TMP/err"

done_testing
