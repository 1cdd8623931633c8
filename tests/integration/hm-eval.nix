# Evaluates contrib/home-manager/ccvm.nix without nixpkgs or home-manager:
# a stub of the few lib functions and types it uses, and a tiny module
# evaluation (user values type-checked against the declared options,
# unknown ones refused, defaults filled in).  Used by 05-home-manager.sh:
#   nix-instantiate --store dummy:// --eval --strict --json hm-eval.nix \
#     --arg module /path/to/ccvm.nix --arg user '{ enable = true; ... }'
{ module, user }:
let
  isOption = v: builtins.isAttrs v && (v._type or null) == "option";
  mk = name: check: { inherit name check; };
  types = {
    bool = mk "bool" builtins.isBool;
    str = mk "str" builtins.isString;
    lines = mk "lines" builtins.isString;
    path = mk "path" (v: builtins.isPath v
      || (builtins.isString v && builtins.substring 0 1 v == "/"));
    port = mk "port" (v: builtins.isInt v && v >= 0 && v <= 65535);
    package = mk "package" (v: builtins.isAttrs v && (v.type or null) == "derivation");
    ints = {
      positive = mk "positive int" (v: builtins.isInt v && v > 0);
      unsigned = mk "unsigned int" (v: builtins.isInt v && v >= 0);
    };
    attrs = mk "attribute set" builtins.isAttrs;
    functionTo = t: mk "function to ${t.name}" builtins.isFunction;
    either = a: b: mk "${a.name} or ${b.name}" (v: a.check v || b.check v);
    enum = vals: mk "one of ${builtins.toJSON vals}" (v: builtins.elem v vals);
    nullOr = t: mk "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: mk "list of ${t.name}" (v: builtins.isList v && builtins.all t.check v);
  };
  lib = {
    inherit types;
    mkOption = a: a // { _type = "option"; };
    mkEnableOption = name: {
      _type = "option"; type = types.bool; default = false;
      description = "Whether to enable ${name}.";
    };
    mkIf = condition: content: { _type = "if"; inherit condition content; };
    literalExpression = text: { _type = "literalExpression"; inherit text; };
    filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap
      (n: if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ])
      (builtins.attrNames set));
    optional = c: x: if c then [ x ] else [ ];
  };
  pkgs = { callPackage = _: _: { type = "derivation"; name = "ccvm-stub"; }; };

  resolve = path: opts: vals:
    let unknown = builtins.filter (n: !(opts ? ${n})) (builtins.attrNames vals);
    in if unknown != [ ] then throw "unknown option ${path}.${builtins.head unknown}"
    else builtins.mapAttrs (n: o:
      if isOption o then
        (if vals ? ${n} then
          (if o.type.check vals.${n} then vals.${n}
           else throw "${path}.${n}: not a ${o.type.name}")
        else o.default)
      else resolve "${path}.${n}" o (vals.${n} or { })) opts;
  leaves = prefix: opts: builtins.concatMap (n:
    if isOption opts.${n} then [ "${prefix}${n}" ]
    else leaves "${prefix}${n}." opts.${n}) (builtins.attrNames opts);

  declared = (import module { config = config; inherit lib pkgs; }).options.programs.ccvm;
  config = { programs.ccvm = resolve "programs.ccvm" declared user; };
  m = import module { inherit config lib pkgs; };
  out = if m.config.condition then m.config.content else { };
in {
  json = out.xdg.configFile."ccvm/config.json".text or null;
  packages = map (p: p.name) (out.home.packages or [ ]);
  options = leaves "" declared;
}
