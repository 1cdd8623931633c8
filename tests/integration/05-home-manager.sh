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

# The guest is Debian: NixOS habits are refused at evaluation, each with
# one message that says what to write instead; the right form passes.
# refused DESC USER-EXPR WORDS...: evaluation fails and the error has WORDS.
refused() {
	local desc=$1 expr=$2 w miss=()
	shift 2
	if hm "$expr"; then
		not_ok "$desc: refused at evaluation (it evaluated)"
		return
	fi
	for w in "$@"; do grep -qF -- "$w" "$T_TMP/hm.err" || miss+=("$w"); done
	check "$desc: refused, saying what to write (missing: ${miss[*]:-none}; $(grep -m1 -o 'programs.ccvm[^)]*' "$T_TMP/hm.err" | head -c 300))" \
		test ${#miss[@]} -eq 0
}
DRV='{ type = "derivation"; name = "ripgrep-14.1.0"; pname = "ripgrep"; }'
refused "a pkgs.* value in extraPackages" \
	"{ enable = true; extraPackages = [ \"jq\" $DRV ]; }" \
	"programs.ccvm.extraPackages: ripgrep is a Nix package" \
	"write its Debian package name as a string" '"ripgrep"'
refused "a pkgs.* value as package" \
	"{ enable = true; package = $DRV; }" \
	"programs.ccvm.package: ripgrep is a Nix package" "npm package spec"
refused "a .nix file in extraGuestModules" \
	'{ enable = true; extraGuestModules = [ "/etc/ccvm/setup.sh" /etc/ccvm/guest.nix ]; }' \
	"programs.ccvm.extraGuestModules: /etc/ccvm/guest.nix is a Nix file" \
	"give the path of a shell script" "Debian package names in extraPackages"
refused "a NixOS module (a function) in extraGuestModules" \
	'{ enable = true; extraGuestModules = [ ({ pkgs, ... }: { }) ]; }' \
	"programs.ccvm.extraGuestModules: a NixOS module cannot configure" \
	"give the path of a shell script"
refused "a NixOS module (an attribute set) in extraGuestModules" \
	'{ enable = true; extraGuestModules = [ { services.foo.enable = true; } ]; }' \
	"a NixOS module cannot configure"
# The controls: a script path (also as a Nix path) and Debian names pass.
if hm '{ enable = true; extraGuestModules = [ "/etc/ccvm/setup.sh" /etc/ccvm/more.sh ];
	extraPackages = [ "ripgrep" ]; package = "@anthropic-ai/claude-code@2.1.0"; }'; then
	got=$(jq -c '.json | fromjson | [.extraGuestModules, .extraPackages, .package]' "$T_TMP/hm.json")
	check "scripts (string or path), Debian names and an npm spec pass ($got)" \
		test "$got" = '[["/etc/ccvm/setup.sh","/etc/ccvm/more.sh"],["ripgrep"],"@anthropic-ai/claude-code@2.1.0"]'
else
	not_ok "scripts, Debian names and an npm spec pass: $(tail -1 "$T_TMP/hm.err")"
fi

# package.nix: evaluated against a stub of the nixpkgs arguments it takes
# (no nixpkgs here): it names qboot's firmware and virtiofsd when given.
PKG=$SRC/contrib/home-manager/package.nix
pkgeval() {
	nix-instantiate --store dummy:// --eval --strict --json -E "
	let
	  drv = name: { type = \"derivation\"; inherit name; outPath = \"/nix/store/x-\" + name; };
	  lib = { cleanSource = p: p; makeBinPath = ps: builtins.concatStringsSep \":\" (map (p: p.outPath + \"/bin\") ps);
	    optionalString = c: s: if c then s else \"\"; filter = builtins.filter; };
	  stdenv = { mkDerivation = a: a; };
	  f = import $PKG;
	  args = builtins.mapAttrs (n: _: if n == \"lib\" then lib else if n == \"stdenv\" then stdenv
	    else if n == \"glibc\" then drv n // { static = drv \"glibc-static\"; }
	    else if n == \"linux_6_1\" then drv n // { src = drv \"linux-6.1-src\"; } else drv n)
	    (builtins.functionArgs f);
	  r = f (args // $1);
	in { inherit (r) postPatch postInstall; args = builtins.attrNames (builtins.functionArgs f); }" \
		>"$T_TMP/pkg.json" 2>"$T_TMP/pkg.err"
}
if pkgeval '{ }'; then
	pp=$(jq -r .postPatch "$T_TMP/pkg.json") pi=$(jq -r .postInstall "$T_TMP/pkg.json")
	check "package.nix: ccvm's qboot path is nixpkgs' qboot firmware" \
		grep -qF '/usr/share/qemu/qboot.rom' <<<"$pp"
	check "package.nix: the qboot replacement is qboot's bios.bin ($(grep -o '/nix/store/[^ ]*' <<<"$pp" | head -1))" \
		grep -qF '/nix/store/x-qboot/bios.bin' <<<"$pp"
	check "package.nix: the wrapper points CCVM_VIRTIOFSD at nixpkgs' virtiofsd" \
		grep -qF 'CCVM_VIRTIOFSD /nix/store/x-virtiofsd/bin/virtiofsd' <<<"$pi"
	check "package.nix: the kernel is built from nixpkgs' linux_6_1.src (CCVM_KERNEL_SOURCE)" \
		grep -qF 'CCVM_KERNEL_SOURCE /nix/store/x-linux-6.1-src' <<<"$pi"
	check "package.nix: the kernel build's tools are on the wrapper's PATH" \
		bash -c 'for t in gnumake gcc bc bison flex gnupatch perl elfutils; do grep -qF "/nix/store/x-$t/bin" <<<"$1" || exit 1; done' _ "$pi"
else
	not_ok "package.nix evaluates against stub arguments: $(tail -1 "$T_TMP/pkg.err")"
fi
if pkgeval '{ qboot = null; virtiofsd = null; linux_6_1 = null; }'; then
	pp=$(jq -r .postPatch "$T_TMP/pkg.json") pi=$(jq -r .postInstall "$T_TMP/pkg.json")
	check "package.nix without qboot and virtiofsd: QEMU's own qboot.rom, no CCVM_VIRTIOFSD" \
		test -n "$(grep -F '/nix/store/x-qemu/share/qemu/qboot.rom' <<<"$pp")" \
		-a -z "$(grep -F CCVM_VIRTIOFSD <<<"$pi")"
	check "package.nix without linux_6_1: no CCVM_KERNEL_SOURCE (the stock kernel)" \
		test -z "$(grep -F CCVM_KERNEL_SOURCE <<<"$pi")"
else
	not_ok "package.nix evaluates without qboot, virtiofsd and linux_6_1: $(tail -1 "$T_TMP/pkg.err")"
fi

done_testing
