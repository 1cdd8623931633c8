# home-manager module for ccvm, with the reference system's option names:
#
#   imports = [ ./path/to/ccvm/contrib/home-manager/ccvm.nix ];
#   programs.ccvm = { enable = true; memory = 8192; egressAllowlist = [ "github.com" ]; };
#
# It installs ccvm (ccvmPackage) and writes ~/.config/ccvm/config.json with
# only the options you set: an option left at null keeps ccvm's built-in
# default (see `ccvm --ccvm-dump-config` and docs/options.md), so a newer
# ccvm's defaults apply.  `enable` and `ccvmPackage` are not written.
#
# Differences from the reference module, because the guest is a Debian
# image rather than NixOS: extraPackages are Debian package names,
# `package` is an npm package spec, and extraGuestModules are paths of
# provisioning scripts run as root in the guest root at image build.  A Nix
# package, a .nix file or a NixOS module given there is refused at
# evaluation with what to write instead.  The option descriptions are
# ccvm's own (its option table; tests/integration/03-docs.sh compares).
{ config, lib, pkgs, ... }:

let
  inherit (lib) mkOption mkIf types;
  cfg = config.programs.ccvm;

  # An option that is written to config.json only when set.
  opt = type: default: description:
    mkOption {
      type = types.nullOr type;
      default = null;
      defaultText = lib.literalExpression "null (ccvm's default: ${default})";
      inherit description;
    };
  bool = opt types.bool;

  # Drops nulls and groups left empty.  agentSudo = null means "auto",
  # which is also ccvm's default, so leaving it out is the same thing.
  clean = attrs:
    lib.filterAttrs (_: v: v != null && v != { })
      (builtins.mapAttrs (_: v: if builtins.isAttrs v then clean v else v) attrs);

  # The guest is Debian, not NixOS: a Nix package where ccvm wants a
  # Debian package name or an npm spec, and a Nix file or module where it
  # wants a provisioning script, are refused here with what to write.
  isDrv = v: builtins.isAttrs v && (v.type or null) == "derivation";
  drvName = v: v.pname or v.name or "the package";
  debName = v:
    if isDrv v then
      throw ("programs.ccvm.extraPackages: ${drvName v} is a Nix package, but "
        + "ccvm's guest is Debian: write its Debian package name as a string "
        + "(for example \"ripgrep\", not pkgs.ripgrep; apt-cache search finds it)")
    else v;
  npmSpec = v:
    if isDrv v then
      throw ("programs.ccvm.package: ${drvName v} is a Nix package, but ccvm "
        + "installs the agent with npm: write an npm package spec such as "
        + "\"@anthropic-ai/claude-code@2.1.332\", or leave package unset for "
        + "ccvm's pinned version")
    else v;
  guestScript = v:
    let s = toString v; in
    if builtins.isAttrs v || builtins.isFunction v then
      throw ("programs.ccvm.extraGuestModules: a NixOS module cannot configure "
        + "ccvm's Debian guest: give the path of a shell script, which ccvm "
        + "runs as root in the guest root at image build (for example "
        + "./ccvm-setup.sh), and Debian package names in extraPackages")
    else if builtins.match ".*\\.nix" s != null then
      throw ("programs.ccvm.extraGuestModules: ${s} is a Nix file, but ccvm's "
        + "guest is Debian, not NixOS: give the path of a shell script, which "
        + "ccvm runs as root in the guest root at image build (for example "
        + "./ccvm-setup.sh), and Debian package names in extraPackages")
    else s;
  mapOr = f: v: if v == null then null else f v;

  settings = clean {
    inherit (cfg) writableCwd memory cores acceleration persistClaudeProjects
      vmDiskSize egressAllowlist egressPorts agentSudo apiKeyVariable
      credentialProxy extraClaudeMd lockGuestMemory;
    extraPackages = mapOr (map debName) cfg.extraPackages;
    package = mapOr npmSpec cfg.package;
    extraGuestModules = mapOr (map guestScript) cfg.extraGuestModules;
    share = {
      inherit (cfg.share) settings claudeMd keybindings commands agents skills
        outputStyles plugins config gitConfig;
    };
    nix = { inherit (cfg.nix) enable substituters trustedPublicKeys; };
    clipboard = { inherit (cfg.clipboard) images; };
  };
in
{
  options.programs.ccvm = {
    enable = lib.mkEnableOption "ccvm, the Claude Code agent in a throw-away VM";

    ccvmPackage = mkOption {
      type = types.nullOr types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = lib.literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The ccvm package to install; null installs nothing (ccvm installed another way).";
    };

    writableCwd = bool "true" "Share the project directory read-write; false shares it read-only, and the agent's writes go to an in-VM overlay discarded on exit.";
    memory = opt types.ints.positive "4096" "Guest memory in MiB.";
    cores = opt types.ints.positive "4" "Guest CPUs.";
    acceleration = opt (types.enum [ "auto" "kvm" "tcg" ]) "\"auto\"" "auto uses KVM when a probe guest really runs under it, else TCG; kvm fails with the reason when KVM is unusable; tcg is software emulation.";

    share = {
      settings = bool "true" "Stage a sanitized ~/.claude/settings.json and ~/.claude.json.";
      claudeMd = bool "true" "Stage ~/.claude/CLAUDE.md.";
      keybindings = bool "true" "Stage ~/.claude/keybindings.json.";
      commands = bool "true" "Stage ~/.claude/commands.";
      agents = bool "true" "Stage ~/.claude/agents.";
      skills = bool "true" "Stage ~/.claude/skills.";
      outputStyles = bool "true" "Stage ~/.claude/output-styles.";
      plugins = bool "false" "Stage ~/.claude/plugins.";
      config = bool "false" "Stage ~/.claude/config.";
      gitConfig = bool "true" "Stage a sanitized git config: no credentials, signing off.";
    };

    nix = {
      enable = bool "false" "Put Nix in the guest image: Debian's nix-bin with a nix-daemon; build-time.";
      substituters = opt (types.listOf types.str) "[]" "Binary caches the guest's Nix may use, written to nix.conf as they are; build-time.";
      trustedPublicKeys = opt (types.listOf types.str) "[]" "Public keys that verify paths from those caches; build-time.";
    };

    persistClaudeProjects = bool "false" "Share this project's ~/.claude/projects directory read-write so transcripts persist across sessions.";
    vmDiskSize = opt types.ints.unsigned "0" "GiB of encrypted, ephemeral scratch disk at /scratch; 0 keeps the VM to RAM.";
    clipboard.images = bool "true" "Let the agent paste images, never text, from the host clipboard.";
    egressAllowlist = opt (types.listOf types.str) "[]" "Host names, *.example.com wildcards, IP addresses and CIDRs the guest may reach; empty means open egress.";
    egressPorts = opt (types.listOf types.port) "[ 443 ]" "Ports the allowlist permits.";
    agentSudo = opt types.bool "null (auto)" "Passwordless sudo for the agent; null (auto) means on, with or without an allowlist; build-time.";
    apiKeyVariable = opt types.str "\"ANTHROPIC_API_KEY\"" "The host environment variable holding the API key.";
    credentialProxy = bool "true" "Keep the API credential on the host, where ccvm adds it to the agent's requests; false hands it to the agent's environment.";
    extraClaudeMd = opt types.lines "a built-in note" "Text added to the agent's CLAUDE.md; null is a built-in note about the VM, an empty string disables it.";
    # A Nix package here is refused with what to write instead (debName).
    extraPackages = opt (types.listOf (types.either types.str types.package)) "[]" "Debian package names added to the guest image; build-time.";
    package = opt (types.either types.str types.package) "the pinned @anthropic-ai/claude-code" "The npm package spec of the agent; build-time.";
    # A .nix file or a NixOS module here is refused with what to write
    # instead (guestScript).
    extraGuestModules = opt (types.listOf (types.either types.path (types.either types.attrs (types.functionTo types.attrs)))) "[]" "Absolute paths of provisioning scripts run as root in the guest root at image build; build-time.";
    lockGuestMemory = bool "false" "Lock the guest's memory in RAM (mlock); needs RLIMIT_MEMLOCK raised.";
  };

  config = mkIf cfg.enable {
    home.packages = lib.optional (cfg.ccvmPackage != null) cfg.ccvmPackage;
    xdg.configFile."ccvm/config.json".text = builtins.toJSON settings;
  };
}
