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
#   linux_6_1  ccvm's own guest kernel is built from its source tarball
#              (linux_6_1.src, as CCVM_KERNEL_SOURCE in the wrapper) with
#              gnumake, gcc, bc, bison, flex, gnupatch, perl, elfutils and
#              openssl on the wrapper's PATH.  Untried: nixpkgs is not on
#              ccvm's test machine, and ccvm's patch and config are made
#              for Debian's 6.1; when the build fails, ccvm says so in one
#              line and images keep the stock kernel of the Debian root
#              (`ccvm --ccvm-doctor` says which kernel on its kernel line).
{ lib, stdenv, pkg-config, jansson, nettle, curl, openssl, libpsl, glibc, makeWrapper
, qemu, mmdebstrap, squashfsTools, nodejs, util-linux, xz, zstd, gzip
, qboot ? null, virtiofsd ? null, linux_6_1 ? null
, gnumake ? null, gcc ? null, bc ? null, bison ? null, flex ? null
, gnupatch ? null, perl ? null, elfutils ? null }:

let
  firmware = if qboot != null then "${qboot}/bios.bin"
    else "${qemu}/share/qemu/qboot.rom";
  kernelTools = lib.filter (p: p != null)
    [ gnumake gcc bc bison flex gnupatch perl elfutils openssl ];
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
    + lib.optionalString (linux_6_1 != null)
      " --set-default CCVM_KERNEL_SOURCE ${linux_6_1.src} --suffix PATH : ${lib.makeBinPath kernelTools}"
    + "\n";
  meta = {
    description = "Claude Code in a throw-away QEMU VM that sees only the current directory";
    license = lib.licenses.mit or "MIT";
    platforms = [ "x86_64-linux" ];
    mainProgram = "ccvm";
  };
}
