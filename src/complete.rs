//! Completions that know the tools: clap_complete writes the static part
//! (subcommands, options) and this module appends, for bash, zsh and fish,
//! a small layer that asks `gathm __complete tools` for the tool names on
//! the same search path (honouring `--tools-dir` on the line being typed).
//! Tool names complete after `run`, `show`, `health`, `heal`, `validate`,
//! `breaker reset`, `cache invalidate`, `policy check`, and as the first word.

use crate::config::Context;

/// Tool names on the search path, sorted (for `gathm __complete tools`).
pub fn tool_names(ctx: &Context) -> Vec<String> {
    ctx.search
        .scan()
        .tools
        .into_iter()
        .map(|t| t.name)
        .collect()
}

/// Options whose value is the next word (skipped when finding positions).
const VALUE_OPTIONS: &str = "--role --tools-dir --policies --timeout --category -j --jobs --lang --dir --description --interval --from";

fn commands() -> String {
    crate::cli::SUBCOMMANDS
        .iter()
        .filter(|c| !c.starts_with('_'))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The bash layer, appended to clap's script (which defines `_gathm`).
pub fn bash() -> String {
    let opts = VALUE_OPTIONS.replace(' ', " | ");
    format!(
        r#"
# --- Tool names (dynamic): `gathm __complete tools` ---
_gathm_tools() {{
    local i dirs=()
    for ((i = 1; i < ${{#COMP_WORDS[@]}}; i++)); do
        case "${{COMP_WORDS[i]}}" in
            --tools-dir) dirs+=(--tools-dir "${{COMP_WORDS[i+1]}}") ;;
            --tools-dir=*) dirs+=("${{COMP_WORDS[i]}}") ;;
        esac
    done
    "${{COMP_WORDS[0]}}" "${{dirs[@]}}" __complete tools 2>/dev/null
}}

_gathm_dynamic() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" i w words=() want=
    case "${{COMP_WORDS[COMP_CWORD-1]}}" in
        {opts}) _gathm "$@"; return ;;
    esac
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        case "$w" in
            {opts}) ((i++)) ;;
            -*) ;;
            *) words+=("$w") ;;
        esac
    done
    if [[ $cur != -* ]]; then
        case "${{#words[@]}}:${{words[*]}}" in
            0:) want=first ;;
            1:run | 1:show | 1:health | 1:heal | 2:breaker\ reset | 2:cache\ invalidate | 2:policy\ check) want=tool ;;
            *) [[ ${{words[0]}} == validate ]] && want=tool ;;
        esac
    fi
    # A tool's own arguments (after `run TOOL` or `gathm TOOL`): files.
    if [[ -z $want && ${{#words[@]}} -gt 0 ]] &&
        [[ ${{words[0]}} == run && ${{#words[@]}} -ge 2 || " {commands} " != *" ${{words[0]}} "* ]]; then
        COMPREPLY=()
        return 0
    fi
    case "$want" in
        first)
            COMPREPLY=($(compgen -W "{commands} $(_gathm_tools)" -- "$cur"))
            return 0
            ;;
        tool)
            COMPREPLY=($(compgen -W "$(_gathm_tools)" -- "$cur"))
            return 0
            ;;
    esac
    _gathm "$@"
}}

if [[ "${{BASH_VERSINFO[0]}}" -eq 4 && "${{BASH_VERSINFO[1]}}" -ge 4 || "${{BASH_VERSINFO[0]}}" -gt 4 ]]; then
    complete -F _gathm_dynamic -o nosort -o bashdefault -o default gathm
else
    complete -F _gathm_dynamic -o bashdefault -o default gathm
fi
"#,
        commands = commands()
    )
}

/// The fish script: clap's (without the hidden `__complete`), plus the
/// layer that completes tool names.
pub fn fish(generated: &str) -> String {
    let mut out: String = generated
        .lines()
        .filter(|l| !l.contains("-a \"__complete\""))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&fish_layer());
    out
}

fn fish_layer() -> String {
    format!(
        r#"
# --- Tool names (dynamic): `gathm __complete tools` ---
function __gathm_tools
    set -l words (commandline -opc)
    set -l dirs
    for i in (seq 2 (count $words))
        if test "$words[$i]" = --tools-dir; and test $i -lt (count $words)
            set -a dirs --tools-dir $words[(math $i + 1)]
        end
    end
    $words[1] $dirs __complete tools 2>/dev/null
end

function __gathm_wants_tool
    set -l words (commandline -opc)
    set -e words[1]
    set -l pos
    set -l skip 0
    for w in $words
        if test $skip = 1
            set skip 0
            continue
        end
        if contains -- $w {opts}
            set skip 1
        else if not string match -q -- '-*' $w
            set -a pos $w
        end
    end
    switch (string join ' ' -- $pos)
        case '' run show health heal validate 'validate *' 'breaker reset' 'cache invalidate' 'policy check'
            return 0
    end
    return 1
end

complete -c gathm -n __gathm_wants_tool -f -a '(__gathm_tools)' -d tool
"#,
        opts = VALUE_OPTIONS
    )
}

/// The zsh script: clap's, with tool arguments completed from the search
/// path and tool names offered beside the subcommands.
pub fn zsh(generated: &str) -> String {
    let mut out = String::new();
    for line in generated.lines() {
        if line.starts_with("'__complete:") {
            continue;
        }
        let l = if (line.contains(":tool -- ") || line.contains("::tools -- "))
            && line.contains(":_default'")
        {
            line.replace(":_default'", ":_gathm_tools'")
        } else {
            line.to_string()
        };
        out.push_str(&l);
        out.push('\n');
        if line
            .trim_start()
            .starts_with("_describe -t commands 'gathm commands' commands")
        {
            out.push_str("    _gathm_tools\n");
        }
    }
    let helper = r#"
(( $+functions[_gathm_tools] )) ||
_gathm_tools() {
    # $words is shifted inside subcommands: read the whole line instead.
    local -a tools dirs line
    local i
    line=(${(z)BUFFER})
    for ((i = 2; i < $#line; i++)); do
        [[ $line[i] == --tools-dir ]] && dirs+=(--tools-dir ${(Q)line[i+1]})
    done
    tools=(${(f)"$(${(Q)line[1]} $dirs __complete tools 2>/dev/null)"})
    compadd -a tools
}
"#;
    // Define the helper before the final `compdef`/call line of clap's script.
    match out.rfind("\nif [ \"$funcstack[1]\" = \"_gathm\" ]") {
        Some(i) => {
            out.insert_str(i + 1, helper.trim_start());
            out
        }
        None => out + helper,
    }
}
