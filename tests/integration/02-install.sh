#!/bin/bash
# make install / make uninstall, into a DESTDIR and into a user's ~/.local:
# the installed binary runs, the man page renders, the completions load,
# and uninstall leaves no file behind.  No VM.  Needs the source checkout
# (CCVM_SRC, set by tests/run) with an up-to-date build.
. "$(dirname "$0")/lib.sh"

SRC=${CCVM_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
BLD=${CCVM_BUILD:-build}
if [ ! -f "$SRC/Makefile" ] || [ ! -r "$SRC/docs/ccvm.1" ]; then
	skip_missing source-checkout "make install" "no readable source checkout at $SRC (set CCVM_SRC)"
	done_testing
	exit 0
fi
if ! command -v make >/dev/null; then
	skip_missing make "make install" "make is not installed"
	done_testing
	exit 0
fi
# The test user cannot write the build directory: it must be current.
if ! make -s -q -C "$SRC" BUILD="$BLD" "$BLD/ccvm" 2>/dev/null; then
	not_ok "$BLD/ccvm is up to date (run make first)"
	done_testing
	exit 1
fi

mk() { make -s -C "$SRC" BUILD="$BLD" "$@" >"$T_TMP/make.log" 2>&1; }

# ---- DESTDIR + PREFIX ----
D=$T_TMP/dest
P=/opt/ccvm-test
want=(bin/ccvm share/man/man1/ccvm.1 share/bash-completion/completions/ccvm
	share/zsh/site-functions/_ccvm share/doc/ccvm/README.md
	share/doc/ccvm/docs/options.md share/doc/ccvm/docs/security.md
	share/doc/ccvm/docs/getting-started.md share/doc/ccvm/docs/differences.md
	share/doc/ccvm/docs/troubleshooting.md share/doc/ccvm/LICENSE)
if mk install DESTDIR="$D" PREFIX="$P"; then
	ok "make install DESTDIR=... PREFIX=$P"
else
	not_ok "make install DESTDIR=... PREFIX=$P"
	sed 's/^/# /' "$T_TMP/make.log"
fi
missing=()
for f in "${want[@]}"; do [ -f "$D$P/$f" ] || missing+=("$f"); done
check "every file lands under DESTDIR/PREFIX (missing: ${missing[*]:-none})" \
	test ${#missing[@]} -eq 0
outside=$(find "$D" \( -type f -o -type l \) ! -path "$D$P/*" | head -3)
check "nothing is installed outside PREFIX ($outside)" test -z "$outside"
check "the installed binary is the built one" \
	cmp -s "$D$P/bin/ccvm" "$SRC/$BLD/ccvm"
check "the installed binary is executable" test -x "$D$P/bin/ccvm"

BIN=$D$P/bin/ccvm
out=$(env -i PATH=/usr/bin:/bin HOME="$T_TMP" "$BIN" --ccvm-version 2>&1)
check "installed ccvm --ccvm-version: $out" test "$out" = "ccvm 0.1.0"
# The doctor's last line points at the installed troubleshooting page
# (when a line warns or fails: CCVM_QEMU pointing nowhere makes sure).
last=$(env -i PATH=/usr/bin:/bin HOME="$T_TMP" CCVM_QEMU=/nonexistent "$BIN" --ccvm-doctor 2>&1 | tail -1)
check "the installed doctor names the installed troubleshooting.md ($last)" \
	bash -c '[[ $1 == *" $2" ]]' _ "$last" "$D$P/share/doc/ccvm/docs/troubleshooting.md"
out=$(env -i PATH=/usr/bin:/bin HOME="$T_TMP" "$BIN" --ccvm-help 2>&1)
rc=$?
check "installed ccvm --ccvm-help exits 0 and lists --ccvm-doctor" \
	test $rc -eq 0 -a -n "$(grep -e '--ccvm-doctor' <<<"$out")"

if command -v man >/dev/null; then
	page=$(MANWIDTH=80 LC_ALL=C.UTF-8 man -l "$D$P/share/man/man1/ccvm.1" 2>/dev/null)
	warn=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l \
		"$D$P/share/man/man1/ccvm.1" 2>&1 >/dev/null)
	check "man -l renders the page (NAME, --ccvm-doctor, EXIT STATUS)" \
		test -n "$(grep -e '^NAME' <<<"$page")" \
		-a -n "$(grep -e '--ccvm-doctor' <<<"$page")" \
		-a -n "$(grep -e '^EXIT STATUS' <<<"$page")"
	check "groff has no warnings about the page ($warn)" test -z "$warn"
else
	skip_missing man "man -l renders the page" "man (man-db) is not installed"
fi

comp=$(bash --norc -c '. "$1"; complete -p ccvm' _ \
	"$D$P/share/bash-completion/completions/ccvm" 2>&1)
check "bash completion registers ($comp)" \
	test -n "$(grep -e '-F _ccvm ccvm$' <<<"$comp")"
words=$(bash --norc -c '. "$1"; COMP_WORDS=(ccvm --ccvm-d); COMP_CWORD=1
	_ccvm; echo "${COMPREPLY[*]}"' _ \
	"$D$P/share/bash-completion/completions/ccvm" 2>&1)
check "bash completes --ccvm-d to our flags ($words)" \
	test "$words" = "--ccvm-debug --ccvm-dump-config --ccvm-doctor"
if command -v zsh >/dev/null; then
	z=$(HOME=$T_TMP zsh -f -c 'fpath=("$1" $fpath); autoload -Uz compinit
		compinit -u -d "$2"; print -r -- ${_comps[ccvm]}' _ \
		"$D$P/share/zsh/site-functions" "$T_TMP/zcompdump" 2>&1)
	check "zsh compinit picks up _ccvm ($z)" test "$z" = "_ccvm"
else
	skip_missing zsh "zsh completion loads" "zsh is not installed"
fi

if mk uninstall DESTDIR="$D" PREFIX="$P"; then
	ok "make uninstall"
else
	not_ok "make uninstall"
	sed 's/^/# /' "$T_TMP/make.log"
fi
left=$(find "$D" \( -type f -o -type l \) | head -5)
check "uninstall leaves no file behind ($left)" test -z "$left"
check "uninstall removes share/doc/ccvm" test ! -e "$D$P/share/doc/ccvm"

# ---- a user's ~/.local, then a fresh login shell ----
H=$T_TMP/home
mkdir -p "$H"
[ -r /etc/skel/.profile ] && cp /etc/skel/.profile "$H/.profile"
if mk install PREFIX="$H/.local"; then
	ok "make install PREFIX=~/.local"
else
	not_ok "make install PREFIX=~/.local"
	sed 's/^/# /' "$T_TMP/make.log"
fi
login() { env -i HOME="$H" USER="$(id -un)" PATH=/usr/bin:/bin TERM=dumb \
	bash -l -c "$1" 2>&1; }
if [ -r "$H/.profile" ]; then
	out=$(login 'ccvm --ccvm-version')
	check "a login shell finds ~/.local/bin/ccvm with no other step ($out)" \
		test "$out" = "ccvm 0.1.0"
	if command -v man >/dev/null; then
		out=$(login 'man -w ccvm')
		check "man finds the page next to ~/.local/bin ($out)" \
			test "$out" = "$H/.local/share/man/man1/ccvm.1"
	fi
else
	skip_missing skel-profile "login shell finds ccvm" "no /etc/skel/.profile to put ~/.local/bin on PATH"
fi
if [ -r /usr/share/bash-completion/bash_completion ]; then
	out=$(login '. /usr/share/bash-completion/bash_completion
		__load_completion ccvm && complete -p ccvm')
	check "bash-completion loads ccvm's completion from ~/.local ($out)" \
		test -n "$(grep -e '-F _ccvm ccvm$' <<<"$out")"
else
	skip_missing bash-completion "bash-completion autoloads from ~/.local" "bash-completion is not installed"
fi
mk uninstall PREFIX="$H/.local"
left=$(find "$H/.local" \( -type f -o -type l \) | head -5)
check "uninstall from ~/.local leaves no file ($left)" test -z "$left"

done_testing
