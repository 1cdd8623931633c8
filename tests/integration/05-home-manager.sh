#!/bin/bash
# contrib/home-manager/ccvm.nix, evaluated with Debian's nix-instantiate
# against a stub of lib (hm-eval.nix; no nixpkgs, no network): it declares
# exactly ccvm's options (plus enable and ccvmPackage), writes only the
# options set, never `enable`, and ccvm accepts what it writes with the
# same values.  No VM.  Needs the source checkout (CCVM_SRC).
. "$(dirname "$0")/lib.sh"

SRC=${CCVM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
HM=$SRC/contrib/home-manager/ccvm.nix
EVAL=$(dirname "$0")/hm-eval.nix
if [ ! -r "$HM" ]; then
	skip_missing source-checkout "home-manager module" "no readable source checkout at $SRC"
	done_testing
	exit 0
fi
if ! command -v nix-instantiate >/dev/null; then
	skip_missing nix-instantiate "home-manager module" "nix-instantiate missing (Debian package nix-bin)"
	done_testing
	exit 0
fi
export HOME=$T_TMP/home
mkdir -p "$HOME"

# hm USER-EXPR: evaluates the module; output JSON in $T_TMP/hm.json.
hm() {
	nix-instantiate --store dummy:// --eval --strict --json "$EVAL" \
		--arg module "$HM" --arg user "$1" >"$T_TMP/hm.json" 2>"$T_TMP/hm.err"
}
# accepts: ccvm reads the written config.json; the dump in $T_TMP/dump.
accepts() {
	jq -r .json "$T_TMP/hm.json" >"$T_TMP/config.json"
	env -i PATH=/usr/bin:/bin HOME="$HOME" CCVM_CONFIG="$T_TMP/config.json" \
		"$CCVM" --ccvm-dump-config >"$T_TMP/dump" 2>"$T_TMP/err"
}

if ! hm '{ }'; then
	not_ok "home-manager module: nix-instantiate evaluates it offline: $(tail -1 "$T_TMP/hm.err")"
	done_testing
	exit 1
fi
check "disabled: no config.json, nothing installed" \
	test "$(jq -c '[.json, .packages]' "$T_TMP/hm.json")" = '[null,[]]'

# The declared options are ccvm's, by the dump's key names.
env -i PATH=/usr/bin:/bin HOME="$HOME" "$CCVM" --ccvm-dump-config >"$T_TMP/defaults"
want=$( (jq -r 'def leaves: to_entries[] | if (.value | type) == "object"
	then .key as $k | (.value | leaves | "\($k).\(.)") else .key end;
	leaves' "$T_TMP/defaults"; echo enable; echo ccvmPackage) | sort)
got=$(jq -r '.options[]' "$T_TMP/hm.json" | sort)
check "the module declares exactly ccvm's options + enable, ccvmPackage ($(diff <(echo "$want") <(echo "$got") | grep '^[<>]' | tr '\n' ' '))" \
	test "$want" = "$got"

hm '{ enable = true; }'
check "enabled with nothing set: config.json is {} and ccvm is installed" \
	test "$(jq -c '[.json, .packages]' "$T_TMP/hm.json")" = '["{}",["ccvm-stub"]]'
accepts
check "ccvm accepts the empty config (defaults)" cmp -s "$T_TMP/dump" "$T_TMP/defaults"

# Every option set to a value other than its default.
ALL='{
  enable = true; ccvmPackage = null;
  writableCwd = false; memory = 8192; cores = 2; acceleration = "tcg";
  share = { settings = false; claudeMd = false; keybindings = false;
    commands = false; agents = false; skills = false; outputStyles = false;
    plugins = true; config = true; gitConfig = false; };
  nix = { enable = true; substituters = [ "https://cache.example.org" ];
    trustedPublicKeys = [ "cache.example.org-1:AAAA" ]; };
  persistClaudeProjects = true; vmDiskSize = 8; clipboard.images = false;
  egressAllowlist = [ "github.com" "*.npmjs.org" "10.0.0.0/8" ];
  egressPorts = [ 443 22 ]; agentSudo = false; apiKeyVariable = "MY_KEY";
  credentialProxy = false;
  extraClaudeMd = "hello\n"; extraPackages = [ "ripgrep" "jq" ];
  package = "@anthropic-ai/claude-code@2.1.0";
  extraGuestModules = [ "/etc/ccvm/setup.sh" ]; lockGuestMemory = true;
}'
if hm "$ALL"; then
	ok "every option set: the module evaluates"
else
	not_ok "every option set: the module evaluates"
	sed 's/^/# /' "$T_TMP/hm.err" | tail -5
fi
check "ccvmPackage = null installs nothing" \
	test "$(jq -c .packages "$T_TMP/hm.json")" = '[]'
check "enable and ccvmPackage are not written" \
	test "$(jq -r '.json | fromjson | has("enable") or has("ccvmPackage")' "$T_TMP/hm.json")" = false
accepts
check "ccvm accepts the module's config.json ($(cat "$T_TMP/err"))" test -s "$T_TMP/dump"
# Every value the module wrote is the value ccvm resolved.
diffs=$(jq -n --slurpfile w <(jq -r .json "$T_TMP/hm.json") --slurpfile d "$T_TMP/dump" '
	[$w[0] | paths(type != "object") as $p |
	 select(($w[0] | getpath($p)) != ($d[0] | getpath($p))) | $p | join(".")]
	| join(" ")' -r)
check "ccvm resolves every written option to the value set (${diffs:-})" test -z "$diffs"
n=$(jq -r '.json | fromjson | def leaves: to_entries[] |
	if (.value | type) == "object" then (.value | leaves) else .key end;
	[leaves] | length' "$T_TMP/hm.json")
check "all 30 options are written when all are set ($n)" test "$n" -eq 30

hm '{ enable = true; memory = 0; }'
check "a non-positive memory is refused at evaluation" test $? -ne 0
hm '{ enable = true; nosuch = 1; }'
check "an unknown option is refused at evaluation" test $? -ne 0
hm '{ enable = true; acceleration = "hvf"; }'
check "acceleration outside auto/kvm/tcg is refused" test $? -ne 0

done_testing
