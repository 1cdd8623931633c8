# Sourced by integration tests: TAP helpers and a scratch area.
# Tests get $CCVM (the binary under test) and run as an unprivileged user.
set -u
CCVM=${CCVM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/ccvm}
T_N=0
T_FAILS=0

ok() { T_N=$((T_N + 1)); echo "ok $T_N - $*"; }
not_ok() { T_N=$((T_N + 1)); T_FAILS=$((T_FAILS + 1)); echo "not ok $T_N - $*"; }
# skip DESC REASON: a check that cannot run here for any other reason than
# a missing piece of the machine.  With CCVM_TEST_STRICT=1 tests/run counts
# it as a failure.  A check that cannot run because the product failed is
# not a skip: not_ok.
skip() { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP ${2:-}"; }
# skip_missing WHAT DESC REASON: a check that needs WHAT (a short name:
# userns, tmux, headless-wayland, ...), which this machine lacks.  Strict
# runs accept it only for what CI's machine lacks too (the list in
# tests/run); any other WHAT fails there like a plain skip.
skip_missing() {
	T_N=$((T_N + 1))
	echo "ok $T_N - $2 # SKIP lacks $1: ${3:-}"
}
# check DESC CMD...: ok when CMD succeeds.
check() {
	local desc=$1; shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}
diag() { printf '# %s\n' "$@"; }
done_testing() { echo "1..$T_N"; [ "$T_FAILS" -eq 0 ]; }

# A private temp area, removed at exit.
T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ccvm-t.XXXXXX")
trap 'rm -rf "$T_TMP"' EXIT

# Makes sure the guest image exists (built by 10-image.sh, cached after);
# bails out of the whole script when it cannot.
need_image() {
	if ! "$CCVM" --ccvm-build >"$T_TMP/build.log" 2>&1; then
		tail -20 "$T_TMP/build.log" | sed 's/^/# /'
		not_ok "guest image available (ccvm --ccvm-build)"
		done_testing
		exit 1
	fi
}

# A fresh project directory to run sessions in.
new_project() {
	local d
	d=$(mktemp -d "$T_TMP/proj.XXXXXX")
	echo "$d"
}

# QEMU and virtiofsd processes of this script's sessions (their argv or
# working directory names a project under $T_TMP), so tests running side by
# side do not see each other's: "PID ARGV" lines.
leftovers() {
	local pid cmd
	for pid in $(pgrep -u "$(id -u)" -f 'qemu-system|virtiofsd'); do
		cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || continue
		if [[ $cmd == *"$T_TMP"* ||
			$(readlink "/proc/$pid/cwd" 2>/dev/null) == "$T_TMP"* ]]; then
			echo "$pid $cmd"
		fi
	done
}

# Kills this script's QEMU processes (see leftovers).
kill_session_qemu() {
	local pid
	for pid in $(leftovers | awk '$2 ~ /qemu-system/ {print $1}'); do
		kill -KILL "$pid" 2>/dev/null
	done
}

# Waits up to $2 seconds for a tmux pane to show text matching $3.
tmux_wait() {
	local target=$1 secs=$2 pattern=$3 i
	for ((i = 0; i < secs * 5; i++)); do
		if tmux capture-pane -p -t "$target" 2>/dev/null | grep -q -- "$pattern"; then
			return 0
		fi
		sleep 0.2
	done
	return 1
}

# Replaces the user's home and every variable that points ccvm at the
# user's Claude or git setup by an empty fake home, $H (= $T_TMP/home); the
# image cache stays where need_image found it.  For the tests of what of
# the user's setup enters the guest.
fake_home() {
	export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$HOME/.cache}
	H=$T_TMP/home
	export HOME=$H XDG_CONFIG_HOME=$H/.config XDG_DATA_HOME=$H/.local/share
	unset XDG_STATE_HOME CCVM_CONFIG GIT_CONFIG_GLOBAL GIT_CONFIG_SYSTEM \
		GIT_CONFIG_NOSYSTEM CCVM_CLAUDE_MD CCVM_PERSIST_PROJECTS \
		CCVM_SHARE_CLAUDE_CONFIG CCVM_SHARE_SETTINGS CCVM_SHARE_CLAUDEMD \
		CCVM_SHARE_KEYBINDINGS CCVM_SHARE_COMMANDS CCVM_SHARE_AGENTS \
		CCVM_SHARE_SKILLS CCVM_SHARE_OUTPUTSTYLES CCVM_SHARE_PLUGINS \
		CCVM_SHARE_CONFIG CCVM_SHARE_GIT_CONFIG CCVM_ALLOW_SECRET_DIRS \
		ANTHROPIC_API_KEY ANTHROPIC_AUTH_TOKEN
	mkdir -p "$H"
}

# Starts a real X server of this script's own (Xvfb, no TCP): sets XVFB
# (its pid) and exports DISPLAY; one not-ok line and the end of the script
# when it does not come up.
start_xvfb() {
	exec 3>"$T_TMP/display"
	Xvfb -displayfd 3 -nolisten tcp -screen 0 64x64x24 >"$T_TMP/xvfb.log" 2>&1 &
	XVFB=$!
	exec 3>&-
	local i
	for ((i = 0; i < 100; i++)); do [ -s "$T_TMP/display" ] && break; sleep 0.1; done
	if [ ! -s "$T_TMP/display" ]; then
		not_ok "Xvfb started"; sed 's/^/# /' "$T_TMP/xvfb.log"; kill "$XVFB"
		done_testing; exit 1
	fi
	export DISPLAY=:$(cat "$T_TMP/display")
}

# Starts the stand-in Anthropic API (fake_anthropic.py) on the host's
# 127.0.0.1, logging requests to $1 and answering with the text $2: sets
# API (its pid) and PORT; one not-ok line and the end of the script when it
# does not come up.
start_fake_api() {
	/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/fake_anthropic.py" \
		"$1" "$2" >"$T_TMP/port" 2>"$T_TMP/api.err" &
	API=$!
	PORT=
	local i
	for ((i = 0; i < 50; i++)); do
		PORT=$(head -1 "$T_TMP/port" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.1
	done
	if [ -z "$PORT" ]; then
		sed 's/^/# /' "$T_TMP/api.err"
		not_ok "the stand-in API server started"
		done_testing
		exit 1
	fi
}

# Makes a throw-away test CA and a server certificate it signs, for
# 127.0.0.1, ::1, localhost and host.ccvm.internal, in directory $1:
# ca.pem (the CA's certificate: what a client trusts), server.pem (the
# server's certificate followed by the CA's) and server.key.  Each call
# makes a new CA, so a second directory is a CA the first does not trust.
# Returns non-zero (openssl's messages in $1/openssl.log) on failure.
make_test_ca() {
	local d=$1
	mkdir -p "$d" || return 1
	(
		set -e
		cd "$d"
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
			-nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=ccvm test CA $$" \
			-addext basicConstraints=critical,CA:TRUE \
			-addext keyUsage=critical,keyCertSign,cRLSign
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout server.key -out server.csr -subj "/CN=127.0.0.1"
		printf '%s\n' 'basicConstraints=CA:FALSE' \
			'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' \
			'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost,DNS:host.ccvm.internal' \
			>server.ext
		openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
			-CAcreateserial -days 2 -extfile server.ext -out server.crt
		cat server.crt ca.pem >server.pem
		chmod 600 ca.key server.key
	) >"$d/openssl.log" 2>&1
}

# start_fake_api_args LOG MARKER [fake_anthropic.py options...]: like
# start_fake_api, with options (--tls-cert, --tls-key, --stats); sets API
# (its pid) and PORT, and can run several times (one server each).
start_fake_api_args() {
	local log=$1 marker=$2 pf
	shift 2
	pf=$(mktemp "$T_TMP/port.XXXXXX")
	/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/fake_anthropic.py" \
		"$log" "$marker" "$@" >"$pf" 2>"$pf.err" &
	API=$!
	PORT=
	local i
	for ((i = 0; i < 50; i++)); do
		PORT=$(head -1 "$pf" 2>/dev/null)
		[ -n "$PORT" ] && break
		sleep 0.1
	done
	if [ -z "$PORT" ]; then
		sed 's/^/# /' "$pf.err"
		not_ok "the stand-in API server started ($*)"
		done_testing
		exit 1
	fi
}

# copy_image_cache DIR: a copy of the current guest image (need_image's) where
# XDG_CACHE_HOME=DIR finds it, without its saved boots, and of the cached
# kernel its vmlinux is a hard link of (linked the same way); prints the
# copy's image directory.  For tests that damage or remove an image: the
# real cache stays untouched.
copy_image_cache() {
	local dst=$1 img key kk kernels
	img=$("$CCVM" --ccvm-build 2>/dev/null | sed -n 's/^image //p')
	[ -d "$img" ] || return 1
	key=${img##*/} kernels=${img%/images/*}/kernels
	mkdir -p "$dst/ccvm/images/$key" "$dst/ccvm/kernels" || return 1
	(cd "$img" && cp -a --reflink=auto manifest.json vmlinux root.sqfs \
		modules initrd-*.cpio "$dst/ccvm/images/$key/") || return 1
	kk=$(sed -n 's/^ *"kernelKey": "\([0-9a-f]*\)".*/\1/p' "$img/manifest.json")
	if [ -n "$kk" ] && [ -d "$kernels/$kk" ]; then
		cp -a --reflink=auto "$kernels/$kk" "$dst/ccvm/kernels/" || return 1
		[ "$(stat -c %i "$img/vmlinux")" != "$(stat -c %i "$kernels/$kk/vmlinux")" ] ||
			ln -f "$dst/ccvm/kernels/$kk/vmlinux" "$dst/ccvm/images/$key/vmlinux"
	fi
	echo "$dst/ccvm/images/$key"
}

# kvm_usable: 0 when ccvm's KVM probe (the doctor's kvm check) says KVM is
# usable on this machine; else 1, with KVM_WHY set to the probe's reason.
# Tests that need a working KVM run where it is and otherwise report
# skip_missing usable-kvm "..." "skipped: no usable KVM ($KVM_WHY)".
kvm_usable() {
	local l
	l=$(CCVM_ACCEL=auto "$CCVM" --ccvm-doctor 2>&1 | grep -m1 -E '^[a-zA-Z]+ +kvm ')
	KVM_WHY=$(sed -E 's/^[a-zA-Z]+ +kvm +//; s/; sessions run under TCG.*//' <<<"$l")
	[[ $l == ok* ]]
}
