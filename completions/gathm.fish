# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_gathm_global_optspecs
    string join \n json q/quiet role= tools-dir= policies= config= h/help V/version
end

function __fish_gathm_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_gathm_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_gathm_using_subcommand
    set -l cmd (__fish_gathm_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c gathm -n "__fish_gathm_needs_command" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_needs_command" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_needs_command" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_needs_command" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_needs_command" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_needs_command" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_needs_command" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_needs_command" -s V -l version -d 'Print version'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "list" -d 'List the tools the role may discover'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "show" -d 'Show a tool\'s whole manifest'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "validate" -d 'Check manifests (file, line and column), the fallback graph and the policies'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "schema" -d 'Print the JSON Schema of tool.yaml or policies.yaml'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "run" -d 'Run a tool: gathm\'s options first, then TOOL and its arguments'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "status" -d 'Version, paths, tools, open breakers, cache'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "health" -d 'Check executables, system dependencies, API health endpoints and breakers'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "heal" -d 'Re-check a tool (or `all`) and reset the breaker of each healthy one'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "breaker" -d 'Circuit-breaker state'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "cache" -d 'The result cache'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "policy" -d 'Policy decisions and the effective policy'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "parallel" -d 'Run several tools at once; output grouped per tool, in the order given'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "chain" -d 'Run tools one after another, each step\'s stdout feeding the next step\'s stdin'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "pipeline" -d 'Run or check a DAG of steps described in a YAML file'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "schedule" -d 'Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "serve" -d 'Serve the HTTP API (see README, "gathm serve")'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "new-tool" -d 'Create a new tool: NAME/tool.yaml and an executable script that handles --help'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "ask" -d 'Pick the tool for a plain-language request (keyword scoring; no model)'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "init" -d 'Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent)'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "monitor" -d 'Run the health checks periodically, feeding the breakers; log transitions'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "mcp" -d 'Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP")'
complete -c gathm -n "__fish_gathm_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand list" -l category -d 'Only tools of this category' -r
complete -c gathm -n "__fish_gathm_using_subcommand list" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand list" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand list" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand list" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand list" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand list" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand list" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand show" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand show" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand show" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand show" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand show" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand show" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand show" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand validate" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand validate" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand validate" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand validate" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand validate" -l strict -d 'Treat warnings (unknown keys, cycles, shadowed tools) as errors'
complete -c gathm -n "__fish_gathm_using_subcommand validate" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand validate" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand validate" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schema" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schema" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schema" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schema" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schema" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schema" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schema" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gathm -n "__fish_gathm_using_subcommand run" -l timeout -d 'Kill the tool\'s process group after SECS seconds (overrides the manifest)' -r
complete -c gathm -n "__fish_gathm_using_subcommand run" -l wait-timeout -d 'Wait at most SECS seconds for a concurrency-group slot, then exit 75' -r
complete -c gathm -n "__fish_gathm_using_subcommand run" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand run" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand run" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand run" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand run" -l no-cache -d 'Neither read nor write the result cache'
complete -c gathm -n "__fish_gathm_using_subcommand run" -l refresh -d 'Ignore a cached result but store the new one'
complete -c gathm -n "__fish_gathm_using_subcommand run" -l approve -d 'Approve a tool that the role\'s policy marks `requires_approval`'
complete -c gathm -n "__fish_gathm_using_subcommand run" -l no-wait -d 'Exit 75 at once if the tool\'s concurrency group is full, instead of waiting'
complete -c gathm -n "__fish_gathm_using_subcommand run" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand run" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand run" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand status" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand status" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand status" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand status" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand status" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand status" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand status" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand completions" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand completions" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand completions" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand completions" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand completions" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand completions" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand completions" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand health" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand health" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand health" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand health" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand health" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand health" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand health" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand heal" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand heal" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand heal" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand heal" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand heal" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand heal" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand heal" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -f -a "status" -d 'Show breaker state (all tools with state, or one)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -f -a "reset" -d 'Reset a tool\'s breaker to closed (`all` for every one)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and not __fish_seen_subcommand_from status reset help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from reset" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from help" -f -a "status" -d 'Show breaker state (all tools with state, or one)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from help" -f -a "reset" -d 'Reset a tool\'s breaker to closed (`all` for every one)'
complete -c gathm -n "__fish_gathm_using_subcommand breaker; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -f -a "stats" -d 'Entry counts and sizes'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -f -a "clear" -d 'Remove every entry (empty the cache)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -f -a "purge" -d 'Remove expired entries only'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -f -a "invalidate" -d 'Remove one tool\'s entries'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and not __fish_seen_subcommand_from stats clear purge invalidate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from stats" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from clear" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from purge" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from invalidate" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "stats" -d 'Entry counts and sizes'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "clear" -d 'Remove every entry (empty the cache)'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "purge" -d 'Remove expired entries only'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "invalidate" -d 'Remove one tool\'s entries'
complete -c gathm -n "__fish_gathm_using_subcommand cache; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -f -a "check" -d 'Print the decision for a role and tool, and the rule behind it'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -f -a "show" -d 'Print the effective policy and where it came from'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and not __fish_seen_subcommand_from check show help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -l approve -d 'Treat the call as approved'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from check" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "check" -d 'Print the decision for a role and tool, and the rule behind it'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "show" -d 'Print the effective policy and where it came from'
complete -c gathm -n "__fish_gathm_using_subcommand policy; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -s j -l jobs -d 'At most N tools at once (default: the number of CPUs)' -r
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -l approve -d 'Approve tools that the role\'s policy marks `requires_approval`'
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand parallel" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l timeout -d 'Kill each step\'s process group after SECS seconds (overrides the manifest)' -r
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l approve -d 'Approve tools that the role\'s policy marks `requires_approval`'
complete -c gathm -n "__fish_gathm_using_subcommand chain" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand chain" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand chain" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -f -a "run" -d 'Validate, then run the steps (independent ones in parallel)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -f -a "validate" -d 'Check the file without running anything (exit 65 on problems)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and not __fish_seen_subcommand_from run validate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -s j -l jobs -d 'At most N steps at once (default: the number of CPUs)' -r
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -l approve -d 'Approve tools that the role\'s policy marks `requires_approval`'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from validate" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from help" -f -a "run" -d 'Validate, then run the steps (independent ones in parallel)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from help" -f -a "validate" -d 'Check the file without running anything (exit 65 on problems)'
complete -c gathm -n "__fish_gathm_using_subcommand pipeline; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -f -a "list" -d 'Every schedule with its next and last run and the last outcome'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -f -a "next" -d 'The next fire times of a schedule'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -f -a "validate" -d 'Check gathm.yaml (exit 65 on problems, each with file:line:col)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -f -a "run" -d 'Run a schedule now, by hand (with its overlap rule)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -f -a "tick" -d 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and not __fish_seen_subcommand_from list next validate run tick help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -s n -d 'How many' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from next" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from validate" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from run" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from tick" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "list" -d 'Every schedule with its next and last run and the last outcome'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "next" -d 'The next fire times of a schedule'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "validate" -d 'Check gathm.yaml (exit 65 on problems, each with file:line:col)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "run" -d 'Run a schedule now, by hand (with its overlap rule)'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "tick" -d 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab'
complete -c gathm -n "__fish_gathm_using_subcommand schedule; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l host -d 'Address to bind' -r
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l port -d 'Port to bind (0: any free port; the address is printed first)' -r
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l state-url -d 'Share breakers, rate limits, group slots and jobs with a fleet on this Redis (redis://[user:pass@]host:port/db or rediss://); overrides GATHM_STATE_URL and state.url in gathm.yaml' -r
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand serve" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand serve" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand serve" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l category -d 'Category: security, networking, data, media, utility, finance, science or productivity' -r
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l lang -d 'Script language' -r -f -a "bash\t'A bash script'
python\t'A python3 script'"
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l dir -d 'Create it under DIR (default: the first directory of the tool search path)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l description -d 'One-line description' -r
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand new-tool" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l explain -d 'Show how each candidate scored'
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l run -d 'Run the best match with the words after `--` as its arguments'
complete -c gathm -n "__fish_gathm_using_subcommand ask" -s y -l yes -d 'With --run: do not ask for confirmation'
complete -c gathm -n "__fish_gathm_using_subcommand ask" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand ask" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand ask" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand init" -l from -d 'Copy the tools from DIR (default: the repository\'s tools/ found beside the executable)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand init" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand init" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand init" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand init" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand init" -l link -d 'Symlink each tool instead of copying it'
complete -c gathm -n "__fish_gathm_using_subcommand init" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand init" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand init" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l interval -d 'Seconds between rounds (default: $GATHM_MONITOR_INTERVAL, else 30)' -r
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l once -d 'One round, then exit (1 if any tool is unhealthy)'
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand monitor" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand __complete" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -l approve-tools -d 'Approve the tools matching GLOB that the role\'s policy marks `requires_approval` (repeatable)' -r
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -l role -d 'Role for policy decisions' -r
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -l tools-dir -d 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -l policies -d 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -l config -d 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)' -r -F
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -l json -d 'Print JSON instead of text'
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -s q -l quiet -d 'Print a run\'s output only if it failed (for cron)'
complete -c gathm -n "__fish_gathm_using_subcommand mcp" -s h -l help -d 'Print help'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "list" -d 'List the tools the role may discover'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "show" -d 'Show a tool\'s whole manifest'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "validate" -d 'Check manifests (file, line and column), the fallback graph and the policies'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "schema" -d 'Print the JSON Schema of tool.yaml or policies.yaml'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "run" -d 'Run a tool: gathm\'s options first, then TOOL and its arguments'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "status" -d 'Version, paths, tools, open breakers, cache'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "completions" -d 'Print a shell completion script'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "health" -d 'Check executables, system dependencies, API health endpoints and breakers'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "heal" -d 'Re-check a tool (or `all`) and reset the breaker of each healthy one'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "breaker" -d 'Circuit-breaker state'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "cache" -d 'The result cache'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "policy" -d 'Policy decisions and the effective policy'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "parallel" -d 'Run several tools at once; output grouped per tool, in the order given'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "chain" -d 'Run tools one after another, each step\'s stdout feeding the next step\'s stdin'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "pipeline" -d 'Run or check a DAG of steps described in a YAML file'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "schedule" -d 'Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "serve" -d 'Serve the HTTP API (see README, "gathm serve")'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "new-tool" -d 'Create a new tool: NAME/tool.yaml and an executable script that handles --help'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "ask" -d 'Pick the tool for a plain-language request (keyword scoring; no model)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "init" -d 'Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "monitor" -d 'Run the health checks periodically, feeding the breakers; log transitions'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "mcp" -d 'Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP")'
complete -c gathm -n "__fish_gathm_using_subcommand help; and not __fish_seen_subcommand_from list show validate schema run status completions health heal breaker cache policy parallel chain pipeline schedule serve new-tool ask init monitor __complete mcp help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from breaker" -f -a "status" -d 'Show breaker state (all tools with state, or one)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from breaker" -f -a "reset" -d 'Reset a tool\'s breaker to closed (`all` for every one)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "stats" -d 'Entry counts and sizes'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "clear" -d 'Remove every entry (empty the cache)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "purge" -d 'Remove expired entries only'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from cache" -f -a "invalidate" -d 'Remove one tool\'s entries'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "check" -d 'Print the decision for a role and tool, and the rule behind it'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from policy" -f -a "show" -d 'Print the effective policy and where it came from'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from pipeline" -f -a "run" -d 'Validate, then run the steps (independent ones in parallel)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from pipeline" -f -a "validate" -d 'Check the file without running anything (exit 65 on problems)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "list" -d 'Every schedule with its next and last run and the last outcome'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "next" -d 'The next fire times of a schedule'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "validate" -d 'Check gathm.yaml (exit 65 on problems, each with file:line:col)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "run" -d 'Run a schedule now, by hand (with its overlap rule)'
complete -c gathm -n "__fish_gathm_using_subcommand help; and __fish_seen_subcommand_from schedule" -f -a "tick" -d 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab'

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
        if contains -- $w --role --tools-dir --policies --timeout --category -j --jobs --lang --dir --description --interval --from
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
