
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'gathm' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'gathm'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'gathm' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the tools the role may discover')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a tool''s whole manifest')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check manifests (file, line and column), the fallback graph and the policies')
            [CompletionResult]::new('schema', 'schema', [CompletionResultType]::ParameterValue, 'Print the JSON Schema of tool.yaml or policies.yaml')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a tool: gathm''s options first, then TOOL and its arguments')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Version, paths, tools, open breakers, cache')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'Check executables, system dependencies, API health endpoints and breakers')
            [CompletionResult]::new('heal', 'heal', [CompletionResultType]::ParameterValue, 'Re-check a tool (or `all`) and reset the breaker of each healthy one')
            [CompletionResult]::new('breaker', 'breaker', [CompletionResultType]::ParameterValue, 'Circuit-breaker state')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'The result cache')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Policy decisions and the effective policy')
            [CompletionResult]::new('parallel', 'parallel', [CompletionResultType]::ParameterValue, 'Run several tools at once; output grouped per tool, in the order given')
            [CompletionResult]::new('chain', 'chain', [CompletionResultType]::ParameterValue, 'Run tools one after another, each step''s stdout feeding the next step''s stdin')
            [CompletionResult]::new('pipeline', 'pipeline', [CompletionResultType]::ParameterValue, 'Run or check a DAG of steps described in a YAML file')
            [CompletionResult]::new('schedule', 'schedule', [CompletionResultType]::ParameterValue, 'Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the HTTP API (see README, "gathm serve")')
            [CompletionResult]::new('new-tool', 'new-tool', [CompletionResultType]::ParameterValue, 'Create a new tool: NAME/tool.yaml and an executable script that handles --help')
            [CompletionResult]::new('ask', 'ask', [CompletionResultType]::ParameterValue, 'Pick the tool for a plain-language request (keyword scoring; no model)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent)')
            [CompletionResult]::new('monitor', 'monitor', [CompletionResultType]::ParameterValue, 'Run the health checks periodically, feeding the breakers; log transitions')
            [CompletionResult]::new('__complete', '__complete', [CompletionResultType]::ParameterValue, 'For the shell completion scripts: print tool names, one a line')
            [CompletionResult]::new('mcp', 'mcp', [CompletionResultType]::ParameterValue, 'Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP")')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;list' {
            [CompletionResult]::new('--category', '--category', [CompletionResultType]::ParameterName, 'Only tools of this category')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;show' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;validate' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Treat warnings (unknown keys, cycles, shadowed tools) as errors')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;schema' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gathm;run' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Kill the tool''s process group after SECS seconds (overrides the manifest)')
            [CompletionResult]::new('--wait-timeout', '--wait-timeout', [CompletionResultType]::ParameterName, 'Wait at most SECS seconds for a concurrency-group slot, then exit 75')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Neither read nor write the result cache')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Ignore a cached result but store the new one')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Approve a tool that the role''s policy marks `requires_approval`')
            [CompletionResult]::new('--no-wait', '--no-wait', [CompletionResultType]::ParameterName, 'Exit 75 at once if the tool''s concurrency group is full, instead of waiting')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;status' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;completions' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;health' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;heal' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;breaker' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show breaker state (all tools with state, or one)')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Reset a tool''s breaker to closed (`all` for every one)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;breaker;status' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;breaker;reset' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;breaker;help' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show breaker state (all tools with state, or one)')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Reset a tool''s breaker to closed (`all` for every one)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;breaker;help;status' {
            break
        }
        'gathm;breaker;help;reset' {
            break
        }
        'gathm;breaker;help;help' {
            break
        }
        'gathm;cache' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Entry counts and sizes')
            [CompletionResult]::new('clear', 'clear', [CompletionResultType]::ParameterValue, 'Remove every entry (empty the cache)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove expired entries only')
            [CompletionResult]::new('invalidate', 'invalidate', [CompletionResultType]::ParameterValue, 'Remove one tool''s entries')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;cache;stats' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;cache;clear' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;cache;purge' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;cache;invalidate' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;cache;help' {
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Entry counts and sizes')
            [CompletionResult]::new('clear', 'clear', [CompletionResultType]::ParameterValue, 'Remove every entry (empty the cache)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove expired entries only')
            [CompletionResult]::new('invalidate', 'invalidate', [CompletionResultType]::ParameterValue, 'Remove one tool''s entries')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;cache;help;stats' {
            break
        }
        'gathm;cache;help;clear' {
            break
        }
        'gathm;cache;help;purge' {
            break
        }
        'gathm;cache;help;invalidate' {
            break
        }
        'gathm;cache;help;help' {
            break
        }
        'gathm;policy' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Print the decision for a role and tool, and the rule behind it')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective policy and where it came from')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;policy;check' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Treat the call as approved')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;policy;show' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;policy;help' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Print the decision for a role and tool, and the rule behind it')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective policy and where it came from')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;policy;help;check' {
            break
        }
        'gathm;policy;help;show' {
            break
        }
        'gathm;policy;help;help' {
            break
        }
        'gathm;parallel' {
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'At most N tools at once (default: the number of CPUs)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'At most N tools at once (default: the number of CPUs)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Approve tools that the role''s policy marks `requires_approval`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;chain' {
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Kill each step''s process group after SECS seconds (overrides the manifest)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Approve tools that the role''s policy marks `requires_approval`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;pipeline' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Validate, then run the steps (independent ones in parallel)')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check the file without running anything (exit 65 on problems)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;pipeline;run' {
            [CompletionResult]::new('-j', '-j', [CompletionResultType]::ParameterName, 'At most N steps at once (default: the number of CPUs)')
            [CompletionResult]::new('--jobs', '--jobs', [CompletionResultType]::ParameterName, 'At most N steps at once (default: the number of CPUs)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--approve', '--approve', [CompletionResultType]::ParameterName, 'Approve tools that the role''s policy marks `requires_approval`')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;pipeline;validate' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;pipeline;help' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Validate, then run the steps (independent ones in parallel)')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check the file without running anything (exit 65 on problems)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;pipeline;help;run' {
            break
        }
        'gathm;pipeline;help;validate' {
            break
        }
        'gathm;pipeline;help;help' {
            break
        }
        'gathm;schedule' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every schedule with its next and last run and the last outcome')
            [CompletionResult]::new('next', 'next', [CompletionResultType]::ParameterValue, 'The next fire times of a schedule')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check gathm.yaml (exit 65 on problems, each with file:line:col)')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a schedule now, by hand (with its overlap rule)')
            [CompletionResult]::new('tick', 'tick', [CompletionResultType]::ParameterValue, 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;schedule;list' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;schedule;next' {
            [CompletionResult]::new('-n', '-n', [CompletionResultType]::ParameterName, 'How many')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;schedule;validate' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;schedule;run' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;schedule;tick' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;schedule;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every schedule with its next and last run and the last outcome')
            [CompletionResult]::new('next', 'next', [CompletionResultType]::ParameterValue, 'The next fire times of a schedule')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check gathm.yaml (exit 65 on problems, each with file:line:col)')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a schedule now, by hand (with its overlap rule)')
            [CompletionResult]::new('tick', 'tick', [CompletionResultType]::ParameterValue, 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;schedule;help;list' {
            break
        }
        'gathm;schedule;help;next' {
            break
        }
        'gathm;schedule;help;validate' {
            break
        }
        'gathm;schedule;help;run' {
            break
        }
        'gathm;schedule;help;tick' {
            break
        }
        'gathm;schedule;help;help' {
            break
        }
        'gathm;serve' {
            [CompletionResult]::new('--host', '--host', [CompletionResultType]::ParameterName, 'Address to bind')
            [CompletionResult]::new('--port', '--port', [CompletionResultType]::ParameterName, 'Port to bind (0: any free port; the address is printed first)')
            [CompletionResult]::new('--state-url', '--state-url', [CompletionResultType]::ParameterName, 'Share breakers, rate limits, group slots and jobs with a fleet on this Redis (redis://[user:pass@]host:port/db or rediss://); overrides GATHM_STATE_URL and state.url in gathm.yaml')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;new-tool' {
            [CompletionResult]::new('--category', '--category', [CompletionResultType]::ParameterName, 'Category: security, networking, data, media, utility, finance, science or productivity')
            [CompletionResult]::new('--lang', '--lang', [CompletionResultType]::ParameterName, 'Script language')
            [CompletionResult]::new('--dir', '--dir', [CompletionResultType]::ParameterName, 'Create it under DIR (default: the first directory of the tool search path)')
            [CompletionResult]::new('--description', '--description', [CompletionResultType]::ParameterName, 'One-line description')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            break
        }
        'gathm;ask' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--explain', '--explain', [CompletionResultType]::ParameterName, 'Show how each candidate scored')
            [CompletionResult]::new('--run', '--run', [CompletionResultType]::ParameterName, 'Run the best match with the words after `--` as its arguments')
            [CompletionResult]::new('-y', '-y', [CompletionResultType]::ParameterName, 'With --run: do not ask for confirmation')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'With --run: do not ask for confirmation')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;init' {
            [CompletionResult]::new('--from', '--from', [CompletionResultType]::ParameterName, 'Copy the tools from DIR (default: the repository''s tools/ found beside the executable)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--link', '--link', [CompletionResultType]::ParameterName, 'Symlink each tool instead of copying it')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;monitor' {
            [CompletionResult]::new('--interval', '--interval', [CompletionResultType]::ParameterName, 'Seconds between rounds (default: $GATHM_MONITOR_INTERVAL, else 30)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--once', '--once', [CompletionResultType]::ParameterName, 'One round, then exit (1 if any tool is unhealthy)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;__complete' {
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;mcp' {
            [CompletionResult]::new('--approve-tools', '--approve-tools', [CompletionResultType]::ParameterName, 'Approve the tools matching GLOB that the role''s policy marks `requires_approval` (repeatable)')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'Role for policy decisions')
            [CompletionResult]::new('--tools-dir', '--tools-dir', [CompletionResultType]::ParameterName, 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)')
            [CompletionResult]::new('--policies', '--policies', [CompletionResultType]::ParameterName, 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)')
            [CompletionResult]::new('--config', '--config', [CompletionResultType]::ParameterName, 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Print JSON instead of text')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print a run''s output only if it failed (for cron)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            break
        }
        'gathm;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List the tools the role may discover')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Show a tool''s whole manifest')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check manifests (file, line and column), the fallback graph and the policies')
            [CompletionResult]::new('schema', 'schema', [CompletionResultType]::ParameterValue, 'Print the JSON Schema of tool.yaml or policies.yaml')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a tool: gathm''s options first, then TOOL and its arguments')
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Version, paths, tools, open breakers, cache')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'Check executables, system dependencies, API health endpoints and breakers')
            [CompletionResult]::new('heal', 'heal', [CompletionResultType]::ParameterValue, 'Re-check a tool (or `all`) and reset the breaker of each healthy one')
            [CompletionResult]::new('breaker', 'breaker', [CompletionResultType]::ParameterValue, 'Circuit-breaker state')
            [CompletionResult]::new('cache', 'cache', [CompletionResultType]::ParameterValue, 'The result cache')
            [CompletionResult]::new('policy', 'policy', [CompletionResultType]::ParameterValue, 'Policy decisions and the effective policy')
            [CompletionResult]::new('parallel', 'parallel', [CompletionResultType]::ParameterValue, 'Run several tools at once; output grouped per tool, in the order given')
            [CompletionResult]::new('chain', 'chain', [CompletionResultType]::ParameterValue, 'Run tools one after another, each step''s stdout feeding the next step''s stdin')
            [CompletionResult]::new('pipeline', 'pipeline', [CompletionResultType]::ParameterValue, 'Run or check a DAG of steps described in a YAML file')
            [CompletionResult]::new('schedule', 'schedule', [CompletionResultType]::ParameterValue, 'Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Serve the HTTP API (see README, "gathm serve")')
            [CompletionResult]::new('new-tool', 'new-tool', [CompletionResultType]::ParameterValue, 'Create a new tool: NAME/tool.yaml and an executable script that handles --help')
            [CompletionResult]::new('ask', 'ask', [CompletionResultType]::ParameterValue, 'Pick the tool for a plain-language request (keyword scoring; no model)')
            [CompletionResult]::new('init', 'init', [CompletionResultType]::ParameterValue, 'Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent)')
            [CompletionResult]::new('monitor', 'monitor', [CompletionResultType]::ParameterValue, 'Run the health checks periodically, feeding the breakers; log transitions')
            [CompletionResult]::new('__complete', '__complete', [CompletionResultType]::ParameterValue, 'For the shell completion scripts: print tool names, one a line')
            [CompletionResult]::new('mcp', 'mcp', [CompletionResultType]::ParameterValue, 'Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP")')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'gathm;help;list' {
            break
        }
        'gathm;help;show' {
            break
        }
        'gathm;help;validate' {
            break
        }
        'gathm;help;schema' {
            break
        }
        'gathm;help;run' {
            break
        }
        'gathm;help;status' {
            break
        }
        'gathm;help;completions' {
            break
        }
        'gathm;help;health' {
            break
        }
        'gathm;help;heal' {
            break
        }
        'gathm;help;breaker' {
            [CompletionResult]::new('status', 'status', [CompletionResultType]::ParameterValue, 'Show breaker state (all tools with state, or one)')
            [CompletionResult]::new('reset', 'reset', [CompletionResultType]::ParameterValue, 'Reset a tool''s breaker to closed (`all` for every one)')
            break
        }
        'gathm;help;breaker;status' {
            break
        }
        'gathm;help;breaker;reset' {
            break
        }
        'gathm;help;cache' {
            [CompletionResult]::new('stats', 'stats', [CompletionResultType]::ParameterValue, 'Entry counts and sizes')
            [CompletionResult]::new('clear', 'clear', [CompletionResultType]::ParameterValue, 'Remove every entry (empty the cache)')
            [CompletionResult]::new('purge', 'purge', [CompletionResultType]::ParameterValue, 'Remove expired entries only')
            [CompletionResult]::new('invalidate', 'invalidate', [CompletionResultType]::ParameterValue, 'Remove one tool''s entries')
            break
        }
        'gathm;help;cache;stats' {
            break
        }
        'gathm;help;cache;clear' {
            break
        }
        'gathm;help;cache;purge' {
            break
        }
        'gathm;help;cache;invalidate' {
            break
        }
        'gathm;help;policy' {
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Print the decision for a role and tool, and the rule behind it')
            [CompletionResult]::new('show', 'show', [CompletionResultType]::ParameterValue, 'Print the effective policy and where it came from')
            break
        }
        'gathm;help;policy;check' {
            break
        }
        'gathm;help;policy;show' {
            break
        }
        'gathm;help;parallel' {
            break
        }
        'gathm;help;chain' {
            break
        }
        'gathm;help;pipeline' {
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Validate, then run the steps (independent ones in parallel)')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check the file without running anything (exit 65 on problems)')
            break
        }
        'gathm;help;pipeline;run' {
            break
        }
        'gathm;help;pipeline;validate' {
            break
        }
        'gathm;help;schedule' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'Every schedule with its next and last run and the last outcome')
            [CompletionResult]::new('next', 'next', [CompletionResultType]::ParameterValue, 'The next fire times of a schedule')
            [CompletionResult]::new('validate', 'validate', [CompletionResultType]::ParameterValue, 'Check gathm.yaml (exit 65 on problems, each with file:line:col)')
            [CompletionResult]::new('run', 'run', [CompletionResultType]::ParameterValue, 'Run a schedule now, by hand (with its overlap rule)')
            [CompletionResult]::new('tick', 'tick', [CompletionResultType]::ParameterValue, 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab')
            break
        }
        'gathm;help;schedule;list' {
            break
        }
        'gathm;help;schedule;next' {
            break
        }
        'gathm;help;schedule;validate' {
            break
        }
        'gathm;help;schedule;run' {
            break
        }
        'gathm;help;schedule;tick' {
            break
        }
        'gathm;help;serve' {
            break
        }
        'gathm;help;new-tool' {
            break
        }
        'gathm;help;ask' {
            break
        }
        'gathm;help;init' {
            break
        }
        'gathm;help;monitor' {
            break
        }
        'gathm;help;__complete' {
            break
        }
        'gathm;help;mcp' {
            break
        }
        'gathm;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
