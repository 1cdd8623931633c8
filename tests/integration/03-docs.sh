#!/bin/bash
# The documentation cannot drift from the code: every option (from
# --ccvm-dump-config, which walks the option table in src/host/options/config.c),
# every environment variable the host code reads (its "CCVM_*" string
# literals) and every flag the parser knows (the "--..." literals in
# src/host/options/cli.c) must appear in the man page, README.md, docs/options.md
# and, for flags and option variables, in --ccvm-help and the completions;
# and the docs may name no option, variable or flag the code lacks.  The
# defaults in the README and options.md tables must equal the dumped ones.
# No VM.  Needs the source checkout (CCVM_SRC, set by tests/run).
. "$(dirname "$0")/lib.sh"

SRC=${CCVM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
if [ ! -r "$SRC/src/host/options/cli.c" ] || [ ! -r "$SRC/docs/ccvm.1" ]; then
	skip_missing source-checkout "docs agree with the code" "no readable source checkout at $SRC"
	done_testing
	exit 0
fi
if ! command -v jq >/dev/null; then
	skip_missing jq "docs agree with the code" "jq is not installed"
	done_testing
	exit 0
fi

H=$T_TMP/home
mkdir -p "$H"
# The man page source with roff's \- turned back into -.
sed 's/\\-/-/g' "$SRC/docs/ccvm.1" >"$T_TMP/man"
env -i PATH=/usr/bin:/bin HOME="$H" "$CCVM" --ccvm-help >"$T_TMP/help" 2>&1
env -i PATH=/usr/bin:/bin HOME="$H" "$CCVM" --ccvm-dump-config >"$T_TMP/dump" 2>&1
check "--ccvm-dump-config prints JSON" bash -c 'jq -e . "$1" >/dev/null' _ "$T_TMP/dump"

docs=("$T_TMP/man" "$SRC/README.md" "$SRC/docs/options.md")
names=(man README.md docs/options.md)

# present WORD FILE...: prints the names of the files lacking WORD.
lacking() {
	local w=$1 f miss=()
	shift
	for f in "$@"; do
		grep -qwF -- "$w" "$f" || miss+=("${f##*/}")
	done
	echo "${miss[*]}"
}

# ---- options ----
mapfile -t keys < <(jq -r 'def leaves: to_entries[] |
	if (.value | type) == "object" then .key as $k |
	(.value | leaves | "\($k).\(.)") else .key end; leaves' "$T_TMP/dump")
check "the dump has the 30 options of the design table (${#keys[@]})" \
	test ${#keys[@]} -eq 30
bad=()
for k in "${keys[@]}"; do
	m=$(lacking "$k" "$T_TMP/man")
	m+=$(lacking "\`$k\`" "$SRC/README.md" "$SRC/docs/options.md")
	[ -z "$m" ] || bad+=("$k: $m")
done
check "every option is in the man page, README.md and options.md (${bad[*]:-})" \
	test ${#bad[@]} -eq 0

# The option tables: first column a known key, default column equal to
# the dump (when it is a plain JSON literal in backticks).
for doc in README.md docs/options.md; do
	unknown=() wrong=() rows=0
	while IFS='|' read -r _ opt def _; do
		opt=$(sed 's/^ *`//; s/` *$//' <<<"$opt")
		[[ -z $opt || $opt == *" "* || $opt == option || $opt == -* ]] && continue
		rows=$((rows + 1))
		printf '%s\n' "${keys[@]}" | grep -qxF -- "$opt" || {
			unknown+=("$opt")
			continue
		}
		lit=$(sed -n 's/^ *`\([^`]*\)`.*/\1/p' <<<"$def")
		[ -n "$lit" ] || continue
		want=$(jq -c --arg p "$opt" 'getpath($p | split("."))' "$T_TMP/dump")
		got=$(jq -c -n "$lit" 2>/dev/null) || got="(not JSON: $lit)"
		[ "$want" = "$got" ] || wrong+=("$opt: doc $got, code $want")
	done < <(sed -n '/^| option | default/,/^$/p' "$SRC/$doc" | tail -n +3)
	check "$doc option table: $rows rows, all known options (${unknown[*]:-})" \
		test ${#unknown[@]} -eq 0 -a $rows -eq 30
	check "$doc option table defaults equal the code's (${wrong[*]:-})" \
		test ${#wrong[@]} -eq 0
done

# ---- environment variables ----
mapfile -t envs < <(grep -ohE '"CCVM_[A-Z_]+"' "$SRC"/src/host/*.[ch] "$SRC"/src/host/*/*.[ch] |
	tr -d '"' | sort -u)
check "the host reads CCVM_* variables (${#envs[@]})" test ${#envs[@]} -ge 20
bad=()
for v in "${envs[@]}"; do
	m=$(lacking "$v" "${docs[@]}")
	[ -z "$m" ] || bad+=("$v: $m")
done
check "every CCVM_* variable the code reads is documented (${bad[*]:-})" \
	test ${#bad[@]} -eq 0
# Option variables are listed by --ccvm-help (it walks the same table).
mapfile -t optenvs < <(grep -oE 'CCVM_[A-Z_]+' "$T_TMP/help" | sort -u)
check "--ccvm-help lists option variables (${#optenvs[@]})" \
	test ${#optenvs[@]} -ge 17
extra=()
for f in "${docs[@]}" "$T_TMP/help"; do
	while read -r v; do
		[[ $v == *"*" ]] && continue # a pattern: CCVM_SHARE_*
		# The test runner's own (CCVM_TEST_STRICT), read by tests/run.
		[[ $v == CCVM_TEST_* ]] && grep -qw -- "$v" "$SRC/tests/run" && continue
		printf '%s\n' "${envs[@]}" | grep -qxF -- "$v" || extra+=("$v")
	done < <(grep -oE 'CCVM_[A-Z_]+\*?' "$f" | sort -u)
done
check "the docs name no CCVM_* variable the code lacks (${extra[*]:-})" \
	test ${#extra[@]} -eq 0

# ---- flags ----
mapfile -t flags < <(grep -ohE '"--[a-z][a-z-]*[a-z]"' "$SRC/src/host/options/cli.c" |
	tr -d '"' | sort -u)
check "cli.c knows flags (${#flags[@]})" test ${#flags[@]} -ge 11
comps=("$SRC/contrib/completions/ccvm.bash" "$SRC/contrib/completions/_ccvm")
bad=()
for fl in "${flags[@]}"; do
	m=$(lacking "$fl" "${docs[@]}" "$T_TMP/help" "${comps[@]}")
	[ -z "$m" ] || bad+=("$fl: $m")
done
check "every flag is in the man page, README, options.md, help and completions (${bad[*]:-})" \
	test ${#bad[@]} -eq 0
extra=()
for f in "${docs[@]}" "$T_TMP/help" "${comps[@]}"; do
	while read -r fl; do
		printf '%s\n' "${flags[@]}" | grep -qxF -- "$fl" || extra+=("$fl(${f##*/})")
	done < <(grep -oE -- '--ccvm-[a-z][a-z-]*[a-z]' "$f" | sort -u)
done
check "the docs name no --ccvm-* flag the parser lacks (${extra[*]:-})" \
	test ${#extra[@]} -eq 0

ver=$(env -i PATH=/usr/bin:/bin HOME="$H" "$CCVM" --ccvm-version)
check "the man page's version is the binary's ($ver)" \
	grep -qF "\"$ver\"" "$T_TMP/man"

# ---- the home-manager module uses the same option names ----
HM=$SRC/contrib/home-manager/ccvm.nix
if [ -r "$HM" ]; then
	bad=()
	for k in "${keys[@]}"; do
		grep -qE "(^|[^A-Za-z])${k##*.}[[:space:]]*=" "$HM" || bad+=("$k")
	done
	check "the home-manager module declares every option (${bad[*]:-})" \
		test ${#bad[@]} -eq 0
else
	not_ok "contrib/home-manager/ccvm.nix exists"
fi

done_testing
