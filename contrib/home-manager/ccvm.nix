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
# provisioning scripts run as root in the guest root at image build.
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

  settings = clean {
    inherit (cfg) writableCwd memory cores acceleration persistClaudeProjects
      vmDiskSize egressAllowlist egressPorts agentSudo apiKeyVariable
      credentialProxy extraClaudeMd extraPackages package extraGuestModules lockGuestMemory;
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

    writableCwd = bool "true" "Share the launch directory read-write; false: read-only with an in-VM overlay.";
    memory = opt types.ints.positive "4096" "Guest memory in MiB.";
    cores = opt types.ints.positive "4" "Guest CPUs.";
    acceleration = opt (types.enum [ "auto" "kvm" "tcg" ]) "\"auto\"" "KVM, TCG, or KVM when it really works.";

    share = {
      settings = bool "true" "Stage ~/.claude/settings.json.";
      claudeMd = bool "true" "Stage ~/.claude/CLAUDE.md.";
      keybindings = bool "true" "Stage ~/.claude/keybindings.json.";
      commands = bool "true" "Stage ~/.claude/commands.";
      agents = bool "true" "Stage ~/.claude/agents.";
      skills = bool "true" "Stage ~/.claude/skills.";
      outputStyles = bool "true" "Stage ~/.claude/output-styles.";
      plugins = bool "false" "Stage ~/.claude/plugins.";
      config = bool "false" "Stage a sanitized ~/.claude.json.";
      gitConfig = bool "true" "Stage a sanitized git config.";
    };

    nix = {
      enable = bool "false" "Nix in the VM (build-time).";
      substituters = opt (types.listOf types.str) "[]" "Extra binary caches for in-VM Nix (build-time).";
      trustedPublicKeys = opt (types.listOf types.str) "[]" "Their public keys (build-time).";
    };

    persistClaudeProjects = bool "false" "Share ~/.claude/projects read-write so transcripts persist.";
    vmDiskSize = opt types.ints.unsigned "0" "GiB of encrypted ephemeral scratch disk at /scratch; 0: none.";
    clipboard.images = bool "true" "Image paste from the host clipboard.";
    egressAllowlist = opt (types.listOf types.str) "[]" "Host names, *.wildcards, IPs and CIDRs the guest may reach; empty: open.";
    egressPorts = opt (types.listOf types.port) "[ 443 ]" "Ports the allowlist permits.";
    agentSudo = opt types.bool "null (auto)" "Passwordless sudo for the agent; null: on unless an allowlist is set (build-time).";
    apiKeyVariable = opt types.str "\"ANTHROPIC_API_KEY\"" "Host variable holding the API key.";
    credentialProxy = bool "true" "Keep the API credential on the host (ccvm's API proxy adds it); false hands it to the agent.";
    extraClaudeMd = opt types.lines "a built-in note" "Text added to the agent's CLAUDE.md; \"\" disables.";
    extraPackages = opt (types.listOf types.str) "[]" "Debian package names added to the guest image (build-time).";
    package = opt types.str "the pinned @anthropic-ai/claude-code" "npm package spec of the agent (build-time).";
    extraGuestModules = opt (types.listOf types.path) "[]" "Provisioning scripts run as root in the guest root at image build.";
    lockGuestMemory = bool "false" "mlock guest memory; needs RLIMIT_MEMLOCK raised.";
  };

  config = mkIf cfg.enable {
    home.packages = lib.optional (cfg.ccvmPackage != null) cfg.ccvmPackage;
    xdg.configFile."ccvm/config.json".text = builtins.toJSON settings;
  };
}
