# bash completion for ccvm's own flags.  Every other argument goes to the
# agent (claude), so after "--" (or for words not starting with "--") the
# shell's default completion applies.  Installed as
# $PREFIX/share/bash-completion/completions/ccvm; or source this file.

_ccvm() {
	local cur=${COMP_WORDS[COMP_CWORD]} i
	for ((i = 1; i < COMP_CWORD; i++)); do
		if [[ ${COMP_WORDS[i]} == -- ]]; then
			# After "--": the agent's arguments, or --shell's command.
			if [[ " ${COMP_WORDS[*]:1:i} " == *" --shell "* ]] &&
				((COMP_CWORD == i + 1)); then
				mapfile -t COMPREPLY < <(compgen -c -- "$cur" | sort -u)
			fi
			return 0
		fi
	done
	if [[ " ${COMP_WORDS[*]:1:COMP_CWORD-1} " == *" --ccvm-egress"* ]]; then
		# The log readers: their options, and session ids.
		local dir=${XDG_STATE_HOME:-}
		[[ $dir == /* ]] || dir=$HOME/.local/state
		if [[ $cur == -* ]]; then
			mapfile -t COMPREPLY < <(compgen -W "--json --follow" -- "$cur")
		else
			mapfile -t COMPREPLY < <(cd "$dir/ccvm" 2>/dev/null &&
				compgen -G "$cur*.jsonl" | sed 's/\.jsonl$//')
		fi
		return 0
	fi
	if [[ $cur == --* ]]; then
		local flags="--writable-cwd --read-only-cwd --shell --ccvm-debug
			--ccvm-dump-config --ccvm-build --ccvm-images --ccvm-prune
			--ccvm-doctor --ccvm-egress --ccvm-egress-suggest --ccvm-help
			--ccvm-version"
		mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
	fi
	return 0
}
complete -o default -o bashdefault -F _ccvm ccvm
