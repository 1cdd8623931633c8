# ccvm built from this checkout with nixpkgs (the default ccvmPackage of
# ccvm.nix).  Not built in ccvm's CI: Debian's test machine has no
# nixpkgs (tests/integration/05-home-manager.sh evaluates this file against
# stub arguments only).  The image build tools and QEMU are put on ccvm's
# PATH; mmdebstrap's unshare mode also needs the setuid newuidmap/newgidmap
# of the host (NixOS: users.users.<you>.subUidRanges/subGidRanges).
#
# From nixpkgs, when it has them:
#   qboot      the firmware for the fast PVH boot: ccvm's fixed Debian
#              path /usr/share/qemu/qboot.rom becomes ${qboot}/bios.bin
#              (without the qboot attribute, QEMU's own
#              ${qemu}/share/qemu/qboot.rom);
#   virtiofsd  the project directory's server: CCVM_VIRTIOFSD in the
#              wrapper (without it, ccvm shares over 9p).
# ccvm's own guest kernel is not built under Nix: its build reads Debian's
# linux-source-6.1 (/usr/src/linux-source-6.1.tar.xz and its dpkg version),
# which nixpkgs does not have, so images get the stock kernel of the
# Debian root (`ccvm --ccvm-doctor` says so on its kernel line).
{ lib, stdenv, pkg-config, jansson, nettle, curl, openssl, libpsl, glibc, makeWrapper
, qemu, mmdebstrap, squashfsTools, nodejs, util-linux, xz, zstd, gzip
, qboot ? null, virtiofsd ? null }:

let
  firmware = if qboot != null then "${qboot}/bios.bin"
    else "${qemu}/share/qemu/qboot.rom";
in
stdenv.mkDerivation {
  pname = "ccvm";
  version = "0.1.0";
  src = lib.cleanSource ../..;
  nativeBuildInputs = [ pkg-config makeWrapper ];
  # The guest init is linked -static-pie.
  buildInputs = [ jansson nettle curl openssl libpsl glibc.static ];
  postPatch = ''
    substituteInPlace src/host/vm/qemu.h \
      --replace /usr/share/qemu/qboot.rom ${firmware}
  '';
  makeFlags = [ "PREFIX=$(out)" ];
  buildFlags = [ "all" ];
  postInstall = ''
    wrapProgram $out/bin/ccvm --suffix PATH : ${lib.makeBinPath [
      qemu mmdebstrap squashfsTools nodejs util-linux xz zstd gzip ]}''
    + lib.optionalString (virtiofsd != null) " --set-default CCVM_VIRTIOFSD ${virtiofsd}/bin/virtiofsd"
    + "\n";
  meta = {
    description = "Claude Code in a throw-away QEMU VM that sees only the current directory";
    license = lib.licenses.mit or "MIT";
    platforms = [ "x86_64-linux" ];
    mainProgram = "ccvm";
  };
}
