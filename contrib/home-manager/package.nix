# ccvm built from this checkout with nixpkgs (the default ccvmPackage of
# ccvm.nix).  Not built in ccvm's CI: Debian's test machine has no
# nixpkgs.  The image build tools and QEMU are put on ccvm's PATH;
# mmdebstrap's unshare mode also needs the setuid newuidmap/newgidmap of
# the host (NixOS: users.users.<you>.subUidRanges/subGidRanges).
{ lib, stdenv, pkg-config, jansson, nettle, glibc, makeWrapper, qemu
, mmdebstrap, squashfsTools, nodejs, util-linux, xz, zstd, gzip }:

stdenv.mkDerivation {
  pname = "ccvm";
  version = "0.1.0";
  src = lib.cleanSource ../..;
  nativeBuildInputs = [ pkg-config makeWrapper ];
  # The guest init is linked -static-pie.
  buildInputs = [ jansson nettle glibc.static ];
  makeFlags = [ "PREFIX=$(out)" ];
  buildFlags = [ "all" ];
  postInstall = ''
    wrapProgram $out/bin/ccvm --suffix PATH : ${lib.makeBinPath [
      qemu mmdebstrap squashfsTools nodejs util-linux xz zstd gzip ]}
  '';
  meta = {
    description = "Claude Code in a throw-away QEMU VM that sees only the current directory";
    platforms = [ "x86_64-linux" ];
    mainProgram = "ccvm";
  };
}
