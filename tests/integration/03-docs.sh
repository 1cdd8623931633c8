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
# (The test runner's variables, which ccvm only knows so as not to warn
# about them, are on lines marked "test runner" in options/table.c.)
mapfile -t envs < <(cat "$SRC"/src/host/*.[ch] "$SRC"/src/host/*/*.[ch] |
	grep -v '/\* test runner \*/' | grep -oE '"CCVM_[A-Z_]+"' | tr -d '"' | sort -u)
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
		# The docs' example of a misspelt variable (the warning).
		[ "$v" = CCVM_MEMROY ] && continue
		printf '%s\n' "${envs[@]}" | grep -qxF -- "$v" || extra+=("$v")
	done < <(grep -oE 'CCVM_[A-Z_]+\*?' "$f" | sort -u)
done
check "the docs name no CCVM_* variable the code lacks (${extra[*]:-})" \
	test ${#extra[@]} -eq 0

# Every variable the host code names is one ccvm knows (no warning for
# it): it is in the option table's file, options/table.c.
bad=()
for v in "${envs[@]}"; do
	grep -qF "\"$v\"" "$SRC/src/host/options/table.c" || bad+=("$v")
done
check "every CCVM_* variable the code reads is in options/table.c, so ccvm does not warn about it (${bad[*]:-})" \
	test ${#bad[@]} -eq 0

# ---- descriptions: one sentence per option, from the option table ----
# --ccvm-help prints each row's description under its key; the man page
# (a line of its own), options.md ("- `key`: ...") and the home-manager
# module (the description string) must have the same words.
declare -A desc=()
while IFS= read -r line; do
	if [[ $line =~ ^\ \ ([A-Za-z.]+)\ \( ]]; then
		cur=${BASH_REMATCH[1]}
	elif [[ -n ${cur:-} && $line == "      "* ]]; then
		desc[$cur]=${line#      }
		cur=
	else
		cur=
	fi
done <"$T_TMP/help"
check "--ccvm-help describes all ${#keys[@]} options (${#desc[@]})" \
	test ${#desc[@]} -eq ${#keys[@]}
HMF=$SRC/contrib/home-manager/ccvm.nix
bad=()
for k in "${keys[@]}"; do
	d=${desc[$k]:-}
	if [ -z "$d" ]; then
		bad+=("$k: no description in --ccvm-help")
		continue
	fi
	grep -qxF -- "$d" "$T_TMP/man" || bad+=("$k: man")
	grep -qxF -- "- \`$k\`: $d" "$SRC/docs/options.md" || bad+=("$k: options.md")
	grep -F "\"$d\";" "$HMF" | grep -qE "(^|[^A-Za-z])${k##*.}[[:space:]]*=" ||
		bad+=("$k: ccvm.nix")
done
check "each option's description is word for word the table's in the man page, options.md and the home-manager module (${bad[*]:-})" \
	test ${#bad[@]} -eq 0

# ---- the docs stand alone when installed ----
# make install copies README.md and docs/*.md to share/doc/ccvm: a link to
# a file outside those (bench/, ../shared, src/) would be dead there.
bad=()
for f in "$SRC/README.md" "$SRC"/docs/*.md; do
	while IFS= read -r l; do
		t=${l%%#*}
		[ -n "$t" ] || continue
		[[ $t == http://* || $t == https://* || $t == mailto:* ]] && continue
		dir=$(dirname "$f")
		target=$(realpath -m "$dir/$t")
		case $target in
		"$SRC/README.md" | "$SRC/LICENSE" | "$SRC"/docs/*.md) [ -e "$target" ] || bad+=("${f#"$SRC"/}: $l (missing)") ;;
		*) bad+=("${f#"$SRC"/}: $l") ;;
		esac
	done < <(grep -oE '\]\([^)]+\)' "$f" | sed 's/^](//; s/)$//')
done
check "README.md and docs/ link only to each other and LICENSE (${bad[*]:-})" \
	test ${#bad[@]} -eq 0
bad=$(grep -v '^\.\\"' "$T_TMP/man" | grep -nE '(^|[^a-z])(bench|\.\./shared|src|tests|contrib)/' | head -3)
check "the man page names no file of the source tree ($bad)" test -z "$bad"
check "LICENSE exists and is MIT" grep -q 'MIT License' "$SRC/LICENSE"

# ---- the README's two commands ----
# One builds and runs ccvm with what that needs (make deps = .ci/deps
# --runtime), the other runs the whole suite with everything CI installs.
check "the README builds and runs ccvm after make deps" \
	grep -qxF '    make deps && make && ./build/ccvm' "$SRC/README.md"
check "the README runs the whole suite after .ci/deps" \
	grep -qxF '    .ci/deps && make check' "$SRC/README.md"
if command -v make >/dev/null; then
	check "make deps runs .ci/deps --runtime ($(make -s -n -C "$SRC" deps 2>&1 | tr '\n' ' '))" \
		bash -c 'make -s -n -C "$1" deps 2>/dev/null | grep -qxF ".ci/deps --runtime"' _ "$SRC"
fi
"$SRC/.ci/deps" --no-such-flag >/dev/null 2>&1
check ".ci/deps refuses an unknown flag before installing anything (exit $?)" test $? -eq 2
# Every runtime package is in the full set too (the full set = both lists).
rt=$(sed -n '/^RUNTIME="/,/"$/p' "$SRC/.ci/deps" | tr -d '"' | sed 's/^RUNTIME=//' | tr -s ' \n' '\n\n' | grep -c .)
check ".ci/deps --runtime installs a smaller set ($rt packages), building and running only" \
	bash -c '[ "$1" -ge 10 ] && ! sed -n "/^RUNTIME=\"/,/\"\$/p" "$2" | grep -qwE "clang-tidy|cppcheck|tmux|xvfb|nix-bin|libcmocka-dev"' _ "$rt" "$SRC/.ci/deps"

# ---- troubleshooting: linked from the README and the doctor ----
TS=$SRC/docs/troubleshooting.md
check "docs/troubleshooting.md exists" test -r "$TS"
check "the README links docs/troubleshooting.md" \
	grep -qF '](docs/troubleshooting.md' "$SRC/README.md"
# Every section the doctor points at exists (as GitHub makes anchors).
mapfile -t anchors < <(grep -ohE 'SEE\("[a-z0-9-]+"\)' "$SRC/src/host/doctor.c" | sed 's/^SEE("//; s/")$//' | sort -u)
check "the doctor points at troubleshooting sections (${#anchors[@]})" test ${#anchors[@]} -ge 5
have=$(grep -E '^#{2,3} ' "$TS" | sed -E 's/^#+ //' | tr 'A-Z' 'a-z' |
	sed -E 's/[^a-z0-9 -]//g; s/ /-/g')
bad=()
for a in "${anchors[@]}"; do grep -qxF -- "$a" <<<"$have" || bad+=("$a"); done
check "every section the doctor names is in troubleshooting.md (${bad[*]:-})" \
	test ${#bad[@]} -eq 0
# Each entry quotes what the user sees (indented lines starting "ccvm: ",
# "FAIL  " or "warn  "), split where a value goes (paths, numbers, <...>,
# parentheses); in each piece of four words or more, a run of words
# covering most of it must be in the code (its string literals joined).
bad=$(perl -e '
	local $/;
	my $code = "";
	for my $f (@ARGV[1..$#ARGV]) { open my $h, "<", $f or next; my $t = <$h>;
		$t =~ s/"\s*\n\s*"//g; $code .= $t; }
	open my $h, "<", $ARGV[0] or die; my $doc = <$h>;
	my ($n, @bad) = (0);
	for my $q ($doc =~ /^    (?:ccvm: |FAIL  [a-z ]+ |warn  [a-z ]+ )(.*)$/mg) {
		for my $fr (split /<[^>]*>|[():;"%]|\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\S*[\/0-9]\S*|\.\.\./, $q) {
			my @w = split " ", $fr;
			next if @w < 4;
			$n++;
			my $best = 0;
			for my $i (0..$#w) { for my $j (reverse $i..$#w) {
				last if $j - $i + 1 <= $best;
				if (index($code, join(" ", @w[$i..$j])) >= 0) { $best = $j - $i + 1; last; }
			} }
			my $need = int(0.7 * @w + 0.99); $need = 3 if $need < 3;
			push @bad, join(" ", @w) if $best < $need;
		}
	}
	print "quoted $n; ", join(" | ", @bad);
' "$TS" "$SRC"/src/host/*.c "$SRC"/src/host/*/*.c)
check "the messages troubleshooting.md quotes are in the code ($bad)" \
	bash -c '[[ $1 == "quoted "* && $1 != "quoted 0;"* && $1 == *"; " ]]' _ "$bad"

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
