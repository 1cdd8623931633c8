#!/bin/bash
# No stray copies of the API key on the host.  During a session every ccvm
# process (ccvm itself and the children it forks without executing another
# program: the network relay, whose API proxy holds the key) is non-dumpable (its /proc files belong to
# root: no ptrace, no /proc/PID/environ or mem for other processes of the
# user) and has RLIMIT_CORE 0; and none holds the key in /proc/PID/environ.
# To read the environ of a non-dumpable process the second session runs in
# a user namespace of this test's own (unshare -r), where this unprivileged
# test is allowed what root would be.
source "$(dirname "$0")/lib.sh"
need_image
export CCVM_ACCEL=tcg
P=$(new_project)
cd "$P" || exit 1
KEY="sk-ant-api03-ccvmtest-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
export ANTHROPIC_API_KEY=$KEY
unset CCVM_API_KEY_VARIABLE
# A core limit ccvm has to lower itself.
ulimit -S -c "$(ulimit -H -c)"
diag "core limit before ccvm: $(ulimit -S -c) (hard $(ulimit -H -c))"

wait_file() { local i; for ((i = 0; i < $2 * 10; i++)); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

# PID and its descendants whose name says they are ccvm (not a program it
# executed): "PID COMM" lines.
ccvm_procs() {
	local -A kids=()
	local f line pid rest
	for f in /proc/[0-9]*/stat; do
		read -r line <"$f" 2>/dev/null || continue
		pid=${line%% *}
		rest=${line##*) }
		rest=${rest#* }
		kids[${rest%% *}]+=" $pid"
	done
	local todo=("$1") p c
	while [ ${#todo[@]} -gt 0 ]; do
		p=${todo[0]}
		todo=("${todo[@]:1}")
		c=$(cat "/proc/$p/comm" 2>/dev/null) || continue
		[[ $c == ccvm* ]] && echo "$p $c"
		# shellcheck disable=SC2206
		todo+=(${kids[$p]:-})
	done
}

# One session; runs probe PID while the program runs.  $1: a prefix
# command (may be empty).
session() {
	rm -f ready stop seen
	"$@" "$CCVM" --shell -- sh -c '
		printenv ANTHROPIC_API_KEY >seen; touch ready
		while [ ! -e stop ]; do sleep 0.2; done' >/dev/null 2>"$T_TMP/err" &
	local pid=$!
	if ! wait_file ready 120; then
		not_ok "session started"; sed 's/^/# /' "$T_TMP/err" | tail -5
		kill -9 $pid; return 1
	fi
	# ccvm: unshare and env execute it in place.
	local top=$pid

	ccvm_procs "$top" >"$T_TMP/procs"
	diag "ccvm's processes: $(tr '\n' ' ' <"$T_TMP/procs")"
	local p c
	: >"$T_TMP/facts"
	while read -r p c; do
		local env=unreadable
		if [ -r "/proc/$p/environ" ] && tr '\0' '\n' <"/proc/$p/environ" >"$T_TMP/env.$p" 2>/dev/null; then
			env=$(grep -qF "$KEY" "$T_TMP/env.$p" && echo has-key || echo no-key)
			env="$env,$(wc -l <"$T_TMP/env.$p")-vars"
		fi
		echo "$c owner=$(stat -c %u "/proc/$p/environ") core=$(awk '/^Max core file size/ {print $5 "/" $6}' "/proc/$p/limits") env=$env" >>"$T_TMP/facts"
	done <"$T_TMP/procs"
	touch stop
	wait $pid
	RC=$?
}

# 1. As the user runs it.
if session; then
	check "the guest got a placeholder for the key, not the key (so ccvm read it)" \
		bash -c '[ -s seen ] && ! grep -qF "$1" seen' _ "$KEY"
	check "the probe saw ccvm and its network relay ($(awk '{print $2}' "$T_TMP/procs" | tr '\n' ' '))" \
		bash -c 'grep -q " ccvm$" "$1" && grep -q " ccvm-egress$" "$1"' _ "$T_TMP/procs"
	sed 's/^/# /' "$T_TMP/facts"
	while read -r c rest; do
		check "$c: not dumpable (/proc/PID/environ owned by root: $rest)" \
			grep -q "^$c owner=0 " <<<"$c $rest"
		check "$c: RLIMIT_CORE 0 ($rest)" grep -q " core=0/0 " <<<"$c $rest"
		check "$c: no key in /proc/PID/environ ($rest)" bash -c '! grep -q "env=has-key" <<<"$1"' _ "$rest"
	done <"$T_TMP/facts"
	check "session 1 ended normally (rc=$RC)" [ "$RC" -eq 0 ]
fi

# 2. In a user namespace of the test's own, where it may read the
# environ of a non-dumpable process: no key there.
if ! unshare -r true 2>/dev/null; then
	skip_missing userns "environ contents" "unshare -r: unprivileged user namespaces are not allowed here"
elif session unshare -r env CCVM_ALLOW_ROOT=1; then
	check "in a user namespace: the guest got a placeholder for the key" \
		bash -c '[ -s seen ] && ! grep -qF "$1" seen' _ "$KEY"
	sed 's/^/# /' "$T_TMP/facts"
	check "in a user namespace: the probe read the environ of ccvm and its relay" \
		bash -c '[ "$(grep -c "env=no-key\|env=has-key" "$1")" -ge 2 ]' _ "$T_TMP/facts"
	while read -r c rest; do
		check "$c: no key in /proc/PID/environ ($rest)" bash -c '! grep -q "env=has-key" <<<"$1"' _ "$rest"
	done <"$T_TMP/facts"
	check "session 2 ended normally (rc=$RC)" [ "$RC" -eq 0 ]
fi
check "no QEMU left behind" [ -z "$(leftovers)" ]
done_testing
