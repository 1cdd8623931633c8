#!/bin/bash
# The real ccvm binary's command line, config file and environment handling:
# error messages and exit codes.  No VM: every invocation here either prints
# help/version/config or fails before a session would start (keep it so).
. "$(dirname "$0")/lib.sh"

H=$T_TMP/home
mkdir -p "$H"

# run [NAME=VALUE...] ARGS...: runs $CCVM in a clean environment; sets RC,
# OUT and ERR.
run() {
	local envs=()
	while [ $# -gt 0 ] && [[ $1 == [A-Za-z_]*=* ]]; do
		envs+=("$1")
		shift
	done
	env -i PATH="$PATH" HOME="$H" "${envs[@]}" "$CCVM" "$@" \
		>"$T_TMP/out" 2>"$T_TMP/err"
	RC=$?
	OUT=$(cat "$T_TMP/out")
	ERR=$(cat "$T_TMP/err")
}

# expect_err DESC RC SUBSTRING...: last run exited RC with exactly one
# stderr line starting "ccvm: " and containing every SUBSTRING.
expect_err() {
	local desc=$1 rc=$2 s
	shift 2
	local good=1
	[ "$RC" -eq "$rc" ] || good=0
	[ "$(wc -l <"$T_TMP/err")" -eq 1 ] || good=0
	[[ $ERR == "ccvm: "* ]] || good=0
	for s in "$@"; do
		[[ $ERR == *"$s"* ]] || good=0
	done
	if [ $good -eq 1 ]; then
		ok "$desc"
	else
		not_ok "$desc"
		diag "exit $RC (want $rc), stderr: $ERR"
	fi
}

cfgfile() { # cfgfile NAME CONTENT: writes $T_TMP/NAME, prints its path
	printf '%s' "$2" >"$T_TMP/$1"
	printf '%s' "$T_TMP/$1"
}

# ---- version and help, even with a broken config and no usable cache ----
run --ccvm-version
check "--ccvm-version prints the version, exit 0" \
	test "$RC" -eq 0 -a "$OUT" = "ccvm 0.1.0" -a -z "$ERR"

run --ccvm-help
check "--ccvm-help exits 0 and lists flags, env vars and the config path" \
	test "$RC" -eq 0 -a -z "$ERR"
for want in --read-only-cwd --shell --ccvm-dump-config CCVM_MEMORY \
	CCVM_SHARE_CLAUDE_CONFIG CCVM_CLIPBOARD_IMAGES \
	"$H/.config/ccvm/config.json" docs/options.md; do
	check "--ccvm-help mentions $want" grep -qF -- "$want" "$T_TMP/out"
done

broken=$(cfgfile broken.json '{"memory": ')
mkdir -p "$T_TMP/ro-cache"
chmod 0500 "$T_TMP/ro-cache"
for flag in --ccvm-help --ccvm-version; do
	run CCVM_CONFIG="$broken" XDG_CACHE_HOME="$T_TMP/no/cache" "$flag"
	check "$flag works with a broken config file and a missing cache dir" \
		test "$RC" -eq 0 -a -n "$OUT" -a -z "$ERR"
	check "$flag did not create the cache dir" test ! -e "$T_TMP/no"
	run CCVM_CONFIG="$T_TMP/missing.json" XDG_CACHE_HOME="$T_TMP/ro-cache" \
		CCVM_MEMORY=junk "$flag" --ccvm-bogus
	check "$flag works with a missing CCVM_CONFIG, bad env, unwritable cache" \
		test "$RC" -eq 0 -a -n "$OUT" -a -z "$ERR"
	check "$flag wrote nothing into the cache dir" \
		test -z "$(ls -A "$T_TMP/ro-cache")"
done

# ---- CCVM_* variables ccvm does not know: one warning line each ----
run CCVM_MEMROY=8192 --ccvm-dump-config
check "an unknown CCVM_MEMROY: exit 0, one warning line suggesting CCVM_MEMORY ($ERR)" \
	test "$RC" -eq 0 -a "$(wc -l <"$T_TMP/err")" -eq 1 -a \
	"$ERR" = "ccvm: warning: CCVM_MEMROY is not a ccvm variable and is ignored; did you mean CCVM_MEMORY?"
check "the unknown variable changed nothing ($(grep '"memory"' "$T_TMP/out"))" \
	grep -qF '"memory": 4096,' "$T_TMP/out"
run CCVM_MEMORY=8192 CCVM_STOCK_KERNEL=1 CCVM_SAVED_BOOT=0 CCVM_TEST_ANYTHING=1 \
	CCVM_SRC=/x --ccvm-dump-config
check "known variables (and the test runner's) give no warning ($ERR)" \
	test "$RC" -eq 0 -a -z "$ERR" -a -n "$(grep -F '"memory": 8192,' "$T_TMP/out")"
run CCVM_NOSUCHTHING=1 CCVM_CORSE=2 --ccvm-dump-config
check "two unknown variables: two lines, the far one without a guess (${ERR//$'\n'/ | })" \
	test "$RC" -eq 0 -a "$(wc -l <"$T_TMP/err")" -eq 2 \
	-a -n "$(grep -F 'CCVM_NOSUCHTHING is not a ccvm variable and is ignored (ccvm --ccvm-help lists them)' "$T_TMP/err")" \
	-a -n "$(grep -F 'CCVM_CORSE is not a ccvm variable and is ignored; did you mean CCVM_CORES?' "$T_TMP/err")"
run CCVM_DEBUG=maybe --ccvm-dump-config
expect_err "CCVM_DEBUG must be a boolean" 2 "CCVM_DEBUG" '"maybe"'
run CCVM_DEBUG=1 --ccvm-dump-config
check "CCVM_DEBUG=1 is accepted (rc $RC, $ERR)" test "$RC" -eq 0 -a -z "$ERR"

# ---- config file errors: exit 2, one line naming file and key ----
f=$(cfgfile unknown.json '{"share": {"plugins": true, "foo": 1}}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "unknown nested key" 2 "$f" "share.foo" "unknown key"
check "nothing on stdout after a config error" test -z "$OUT"

f=$(cfgfile enable.json '{"enable": true}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "home-manager's enable is not a config key" 2 "$f" "enable"

f=$(cfgfile dup.json $'{"memory": 1,\n "memory": 2}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "duplicate key with line:column" 2 "$f:2:" "duplicate" "memory"

f=$(cfgfile syntax.json $'{\n  "cores": 2,\n}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "syntax error with line:column" 2 "$f:3:"

# A problem jansson does not see (a type, a value, an unknown key) is
# located in the text: file:line:column of the key or item.
f=$(cfgfile type.json $'{\n  "memory": 2,\n  "share": {"plugins": 1}\n}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "a wrong type names file:line:column" 2 "$f:3:13: share.plugins" \
	"expected true or false"
f=$(cfgfile unk.json $'{"memory": 2,\n\n     "memroy": 3}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "an unknown key names file:line:column" 2 "$f:3:6: memroy" "unknown key"
f=$(cfgfile item.json $'{"egressPorts": [\n  443,\n  0]}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "a bad list item names file:line:column" 2 "$f:3:3: egressPorts[1]"

f=$(cfgfile ports.json '{"egressPorts": [443, 70000]}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "port out of range" 2 "$f" "egressPorts[1]" "1..65535"

f=$(cfgfile egress.json '{"egressAllowlist": ["github.com", "10.0.0.0/33"]}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "invalid CIDR" 2 "$f" "egressAllowlist[1]" '"10.0.0.0/33"'

# An entry the session's egress policy refuses is refused by config
# resolution (the same parser), in every mode, before any image build:
# nothing appears in the cache.  PATH points nowhere, so that even a
# regression here could not start a real build.
f=$(cfgfile loop.json '{"egressAllowlist": ["github.com", "127.0.0.1"]}')
mkdir -p "$T_TMP/cache-loop" "$T_TMP/proj"
run CCVM_CONFIG="$f" XDG_CACHE_HOME="$T_TMP/cache-loop" --ccvm-dump-config
expect_err "a loopback egress entry is refused by --ccvm-dump-config" 2 \
	"$f" "egressAllowlist[1]" '"127.0.0.1"' "host loopback" \
	"host.ccvm.internal"
check "nothing on stdout after the refused egress entry" test -z "$OUT"
cd "$T_TMP/proj" || exit 1
for mode in --ccvm-build "--shell -- true" some-agent-arg; do
	# shellcheck disable=SC2086 # $mode is words on purpose
	run PATH="$T_TMP/nopath" CCVM_ALLOW_ROOT=1 CCVM_CONFIG="$f" \
		XDG_CACHE_HOME="$T_TMP/cache-loop" $mode
	expect_err "a loopback egress entry stops $mode (exit 2)" 2 \
		"egressAllowlist[1]" '"127.0.0.1"'
	check "$mode with a loopback egress entry left the cache empty" \
		test -z "$(ls -A "$T_TMP/cache-loop")"
done
cd - >/dev/null || exit 1

# What the session reads from the environment is refused before the image
# is looked for: the cache is a plain file here, so a regression fails at
# once on the cache instead of starting a build.
printf x >"$T_TMP/cache-file"
cd "$T_TMP/proj" || exit 1
run CCVM_ALLOW_ROOT=1 XDG_CACHE_HOME="$T_TMP/cache-file" \
	ANTHROPIC_BASE_URL="ftp://example.com" --shell -- true
expect_err "a bad ANTHROPIC_BASE_URL stops the session before the image (exit 2)" 2 \
	"ANTHROPIC_BASE_URL" '"ftp://example.com"'
run CCVM_ALLOW_ROOT=1 XDG_CACHE_HOME="$T_TMP/cache-file" \
	CCVM_BOOT_TIMEOUT=soon --shell -- true
expect_err "a bad CCVM_BOOT_TIMEOUT stops the session before the image (exit 2)" 2 \
	"CCVM_BOOT_TIMEOUT" '"soon"'
cd - >/dev/null || exit 1

f=$(cfgfile type.json '{"writableCwd": "yes"}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "wrong type" 2 "$f" "writableCwd" "expected true or false"

f=$(cfgfile range.json '{"memory": 0}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "out-of-range value" 2 "$f" "memory" "out of range"

f=$(cfgfile apikey.json '{"apiKeyVariable": "MY-KEY"}')
run CCVM_CONFIG="$f" --ccvm-dump-config
expect_err "bad apiKeyVariable" 2 "$f" "apiKeyVariable"

run CCVM_CONFIG="$T_TMP/missing.json" --ccvm-dump-config
expect_err "missing CCVM_CONFIG file" 2 "CCVM_CONFIG" "$T_TMP/missing.json"

mkdir -p "$T_TMP/xdg/ccvm"
printf '{"cores": "x"}' >"$T_TMP/xdg/ccvm/config.json"
run XDG_CONFIG_HOME="$T_TMP/xdg" --ccvm-dump-config
expect_err "the default file under XDG_CONFIG_HOME is read and checked" 2 \
	"$T_TMP/xdg/ccvm/config.json" "cores"

# The config error also stops the agent mode (before any VM).
f=$(cfgfile unknown2.json '{"nope": 1}')
run CCVM_CONFIG="$f" CCVM_ALLOW_ROOT=1 some-agent-arg
expect_err "a config error stops agent mode too" 2 "$f" "nope"

# ---- environment errors ----
run CCVM_MEMORY=abc --ccvm-dump-config
expect_err "bad CCVM_MEMORY" 2 "CCVM_MEMORY" '"abc"'
run CCVM_MEMORY=99999999999999999999999 --ccvm-dump-config
expect_err "overflowing CCVM_MEMORY" 2 "CCVM_MEMORY"
run CCVM_WRITABLE_CWD=maybe --ccvm-dump-config
expect_err "bad boolean" 2 "CCVM_WRITABLE_CWD" "maybe"
run CCVM_ACCEL=fast --ccvm-dump-config
expect_err "bad CCVM_ACCEL" 2 "CCVM_ACCEL"
run CCVM_SHARE_CLAUDE_CONFIG=2 --ccvm-dump-config
expect_err "bad CCVM_SHARE_CLAUDE_CONFIG" 2 "CCVM_SHARE_CLAUDE_CONFIG"
run CCVM_MLOCK=$'1\n2' --ccvm-dump-config
expect_err "a newline in a bad value stays on one line" 2 "CCVM_MLOCK" '1\n2'

# ---- command line ----
run --ccvm-bogus
expect_err "unknown --ccvm-* flag" 2 "unknown flag --ccvm-bogus"
run --shell ls
expect_err "--shell needs -- before the command" 2 "--shell -- CMD"
run --ccvm-build --ccvm-prune
expect_err "conflicting modes" 2 "conflicts"
run --ccvm-dump-config $'\xff'
expect_err "non-UTF-8 argument is reported escaped" 2 '"\xff"'
# Bare --help / --version are the agent's, not ours: with a bad env var
# ccvm fails on it instead of printing its own help.
for a in --help --version; do
	run CCVM_ALLOW_ROOT=1 CCVM_MEMORY=abc "$a"
	expect_err "bare $a is not consumed by ccvm" 2 "CCVM_MEMORY"
done

# ... but with no guest image yet, ccvm answers them itself (its own help or
# version, and one line saying why) instead of building one unasked.
for a in --help -h --version -v; do
	run CCVM_ALLOW_ROOT=1 XDG_CACHE_HOME="$T_TMP/empty-cache" "$a"
	case $a in
	-h | --help) want="ccvm's own help" got=$(grep -c -- --ccvm-build "$T_TMP/out") ;;
	*) want="ccvm's own version" got=$(grep -cx "ccvm [0-9.]*" "$T_TMP/out") ;;
	esac
	check "no image: bare $a prints $want, exit 0 (rc=$RC)" \
		bash -c '[ "$1" -eq 0 ] && [ "$2" -ge 1 ]' _ "$RC" "$got"
	check "no image: bare $a says in one line why, and how to build ($ERR)" \
		bash -c '[ "$(wc -l <"$1")" -eq 1 ] && grep -q "no guest image for these options yet.*--ccvm-build.*minutes" "$1"' _ "$T_TMP/err"
	check "no image: bare $a started no build" test ! -e "$T_TMP/empty-cache/ccvm/images"
done

# ---- --ccvm-dump-config ----
f=$(cfgfile prec.json '{"memory": 1000, "cores": 3, "writableCwd": true,
  "share": {"plugins": true}, "clipboard": {"images": true},
  "egressAllowlist": ["*.example.com", "2600:1f00::/24"], "egressPorts": [80]}')
run CCVM_CONFIG="$f" CCVM_MEMORY=2000 CCVM_WRITABLE_CWD=1 \
	CCVM_SHARE_CLAUDE_CONFIG=0 CCVM_SHARE_SKILLS=yes \
	CCVM_CLIPBOARD_IMAGES=0 CCVM_CREDENTIAL_PROXY=no --read-only-cwd --ccvm-dump-config
check "dump-config exits 0 with nothing on stderr" test "$RC" -eq 0 -a -z "$ERR"
cp "$T_TMP/out" "$T_TMP/dump1.json"
for want in '"memory": 2000' '"cores": 3' '"writableCwd": false' \
	'"plugins": false' '"skills": true' '"gitConfig": true' \
	'"images": false' '"*.example.com"' '"apiKeyVariable": "ANTHROPIC_API_KEY"' \
	'"credentialProxy": false'; do
	check "dump shows $want (default < file < env < flag)" \
		grep -qF -- "$want" "$T_TMP/dump1.json"
done
run CCVM_CONFIG="$T_TMP/dump1.json" --ccvm-dump-config
check "the dump, read back as a config file, gives the same dump" \
	cmp -s "$T_TMP/dump1.json" "$T_TMP/out"
check "re-reading the dump succeeded" test "$RC" -eq 0

run --ccvm-dump-config
check "dump-config without any config file exits 0" test "$RC" -eq 0 -a -z "$ERR"
check "defaults: memory 4096" grep -qF '"memory": 4096' "$T_TMP/out"

# ---- root ----
# A session as root is refused before any VM work.  tests/run runs this as
# an unprivileged user; a user namespace lets it appear as root.
as_root=()
if [ "$(id -u)" -eq 0 ]; then
	as_root=(env)
elif unshare -r true 2>/dev/null; then
	as_root=(unshare -r)
fi
if [ ${#as_root[@]} -eq 0 ]; then
	skip_missing userns "root refusal" "not root and unshare -r (user namespaces) fails here"
else
	"${as_root[@]}" env -i PATH="$PATH" HOME="$H" "$CCVM" >"$T_TMP/out" \
		2>"$T_TMP/err"
	RC=$?
	ERR=$(cat "$T_TMP/err")
	expect_err "ccvm refuses to run as root" 2 "refusing to run as root" \
		"CCVM_ALLOW_ROOT=1"
	"${as_root[@]}" env -i PATH="$PATH" HOME="$H" "$CCVM" --shell -- true \
		>"$T_TMP/out" 2>"$T_TMP/err"
	RC=$?
	ERR=$(cat "$T_TMP/err")
	expect_err "--shell is refused as root too" 2 "refusing to run as root"
	# CCVM_ALLOW_ROOT=1 passes the check: the next error (a bad env var,
	# so no VM starts) is what shows.
	"${as_root[@]}" env -i PATH="$PATH" HOME="$H" CCVM_ALLOW_ROOT=1 \
		CCVM_MEMORY=abc "$CCVM" >"$T_TMP/out" 2>"$T_TMP/err"
	RC=$?
	ERR=$(cat "$T_TMP/err")
	expect_err "CCVM_ALLOW_ROOT=1 lets root past the check" 2 "CCVM_MEMORY"
	for flag in --ccvm-help --ccvm-version --ccvm-dump-config; do
		"${as_root[@]}" env -i PATH="$PATH" HOME="$H" "$CCVM" "$flag" \
			>"$T_TMP/out" 2>"$T_TMP/err"
		RC=$?
		check "$flag works as root" test "$RC" -eq 0 -a ! -s "$T_TMP/err"
	done
fi

# ---- --ccvm-egress, --ccvm-egress-suggest: the log readers ----
# A hand-written log in a fake state directory; PATH holds only a QEMU
# stand-in that leaves a marker, so a regression that started a session
# would show.
ST=$T_TMP/state
LOGD=$ST/ccvm
mkdir -p "$LOGD" "$T_TMP/qpath"
printf '#!/bin/sh\ntouch %s/qemu-ran\nexit 1\n' "$T_TMP" >"$T_TMP/qpath/qemu-system-x86_64"
chmod +x "$T_TMP/qpath/qemu-system-x86_64"
t='"t":"2026-12-07T00:25:0'
{
	echo "{${t}1.000Z\",\"event\":\"session\",\"session\":\"20261207T002501Z-3fa9c1\",\"project\":\"/p\",\"mode\":\"open\",\"allowlist\":[],\"ports\":[443]}"
	echo "{${t}2.000Z\",\"event\":\"connect\",\"dest\":\"api.github.com\",\"sni\":\"api.github.com\",\"host\":null,\"addr\":\"140.82.1.1\",\"port\":443,\"verdict\":\"allowed\",\"reason\":\"open\",\"up\":2048,\"down\":4096,\"ms\":10}"
	echo "{${t}3.000Z\",\"event\":\"connect\",\"dest\":\"codeload.github.com\",\"sni\":\"codeload.github.com\",\"host\":null,\"addr\":\"140.82.1.2\",\"port\":443,\"verdict\":\"allowed\",\"reason\":\"open\",\"up\":1,\"down\":1,\"ms\":10}"
	echo "{${t}4.000Z\",\"event\":\"connect\",\"dest\":null,\"sni\":null,\"host\":null,\"addr\":\"169.254.169.254\",\"port\":80,\"verdict\":\"blocked\",\"reason\":\"cloud metadata\"}"
	echo "{${t}5.000Z\",\"event\":\"lookup\",\"name\":\"evil.example\",\"qtype\":\"A\",\"verdict\":\"blocked\",\"reason\":\"not listed\"}"
	echo "not json"
} >"$LOGD/20261207T002501Z-3fa9c1.jsonl"
echo "{${t}1.000Z\",\"event\":\"session\",\"session\":\"20261206T000000Z-000000\"}" \
	>"$LOGD/20261206T000000Z-000000.jsonl"
egress() { run PATH="$T_TMP/qpath" XDG_STATE_HOME="$ST" "$@"; }

egress --ccvm-egress
check "--ccvm-egress summarises the newest log (exit 0)" \
	test "$RC" -eq 0 -a -z "$ERR"
for want in "session 20261207T002501Z-3fa9c1, project /p, mode open" \
	"blocked: cloud metadata" "evil.example (A) x1: not listed" \
	"total: 2 connections (1 blocked), 2.0 KiB up, 4.0 KiB down; 1 lookups (1 blocked)" \
	"skipped: 1 malformed lines"; do
	check "--ccvm-egress shows: $want" grep -qF -- "$want" "$T_TMP/out"
done
check "--ccvm-egress: api.github.com row" \
	grep -qE '^api\.github\.com +1 +2\.0 KiB +4\.0 KiB +0$' "$T_TMP/out"
egress --ccvm-egress --json 20261207
check "--ccvm-egress --json PREFIX passes the lines through unchanged" \
	cmp -s "$T_TMP/out" "$LOGD/20261207T002501Z-3fa9c1.jsonl"
egress --ccvm-egress="$LOGD/20261206T000000Z-000000.jsonl"
check "--ccvm-egress=PATH reads that log" \
	grep -qF "session 20261206T000000Z-000000" "$T_TMP/out"
egress --ccvm-egress 2026
expect_err "an ambiguous prefix is an error (exit 1)" 1 '"2026"' "give more"
egress --ccvm-egress-suggest
check "--ccvm-egress-suggest prints the fragment (exit 0)" test "$RC" -eq 0
check "the suggestion collapses two subdomains and keeps the port" \
	test "$(tr -d ' \n' <"$T_TMP/out")" = '{"egressAllowlist":["*.github.com"],"egressPorts":[443]}'
check "the suggestion notes the blocked connection on stderr" \
	grep -qF "ccvm: not suggested: 1 blocked connections" "$T_TMP/err"
f=$(cfgfile suggested.json "$OUT")
run CCVM_CONFIG="$f" --ccvm-dump-config
check "the suggestion is a config file ccvm accepts" \
	bash -c '[ "$1" -eq 0 ] && tr -d " \n" <"$2" | grep -qF "\"egressAllowlist\":[\"*.github.com\"]"' _ "$RC" "$T_TMP/out"
egress --ccvm-egress-suggest 20261206T000000Z-000000
expect_err "nothing to suggest: exit 1, no fragment" 1 "nothing to suggest"
egress --ccvm-egress some-agent-arg other
expect_err "--ccvm-egress takes one SESSION" 2 "one SESSION"
run PATH="$T_TMP/qpath" XDG_STATE_HOME="$T_TMP/nostate" --ccvm-egress
expect_err "no log at all: one line naming the directory, exit 1" 1 \
	"$T_TMP/nostate/ccvm"
run PATH="$T_TMP/qpath" --ccvm-egress-suggest
expect_err "the default directory is ~/.local/state/ccvm" 1 \
	"$H/.local/state/ccvm"
# Straight to ccvm (env execs it), so that the SIGINT reaches it.
env -i PATH="$T_TMP/qpath" HOME="$H" XDG_STATE_HOME="$ST" "$CCVM" \
	--ccvm-egress --follow >"$T_TMP/out" 2>"$T_TMP/err" &
fpid=$!
sleep 0.6
echo "{${t}9.000Z\",\"event\":\"lookup\",\"name\":\"late.example\",\"qtype\":\"A\",\"verdict\":\"allowed\",\"reason\":\"open\"}" \
	>>"$LOGD/20261207T002501Z-3fa9c1.jsonl"
sleep 0.6
kill -INT $fpid 2>/dev/null
wait $fpid
RC=$?
check "--follow prints an event appended while it runs" \
	grep -qF "00:25:09 lookup late.example A allowed" "$T_TMP/out"
check "--follow ends on Ctrl-C with the summary, exit 0 ($RC)" \
	bash -c '[ "$1" -eq 0 ] && grep -qF "2 lookups (1 blocked)" "$2"' _ "$RC" "$T_TMP/out"
check "no egress mode started QEMU" test ! -e "$T_TMP/qemu-ran"

done_testing
