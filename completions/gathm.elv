
use builtin;
use str;

set edit:completion:arg-completer[gathm] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'gathm'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'gathm'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List the tools the role may discover'
            cand show 'Show a tool''s whole manifest'
            cand validate 'Check manifests (file, line and column), the fallback graph and the policies'
            cand schema 'Print the JSON Schema of tool.yaml or policies.yaml'
            cand run 'Run a tool: gathm''s options first, then TOOL and its arguments'
            cand status 'Version, paths, tools, open breakers, cache'
            cand completions 'Print a shell completion script'
            cand health 'Check executables, system dependencies, API health endpoints and breakers'
            cand heal 'Re-check a tool (or `all`) and reset the breaker of each healthy one'
            cand breaker 'Circuit-breaker state'
            cand cache 'The result cache'
            cand policy 'Policy decisions and the effective policy'
            cand parallel 'Run several tools at once; output grouped per tool, in the order given'
            cand chain 'Run tools one after another, each step''s stdout feeding the next step''s stdin'
            cand pipeline 'Run or check a DAG of steps described in a YAML file'
            cand schedule 'Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron'
            cand serve 'Serve the HTTP API (see README, "gathm serve")'
            cand new-tool 'Create a new tool: NAME/tool.yaml and an executable script that handles --help'
            cand ask 'Pick the tool for a plain-language request (keyword scoring; no model)'
            cand init 'Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent)'
            cand monitor 'Run the health checks periodically, feeding the breakers; log transitions'
            cand __complete 'For the shell completion scripts: print tool names, one a line'
            cand mcp 'Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP")'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;list'= {
            cand --category 'Only tools of this category'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;show'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;validate'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --strict 'Treat warnings (unknown keys, cycles, shadowed tools) as errors'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;schema'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gathm;run'= {
            cand --timeout 'Kill the tool''s process group after SECS seconds (overrides the manifest)'
            cand --wait-timeout 'Wait at most SECS seconds for a concurrency-group slot, then exit 75'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --no-cache 'Neither read nor write the result cache'
            cand --refresh 'Ignore a cached result but store the new one'
            cand --approve 'Approve a tool that the role''s policy marks `requires_approval`'
            cand --no-wait 'Exit 75 at once if the tool''s concurrency group is full, instead of waiting'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;status'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;completions'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;health'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;heal'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;breaker'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand status 'Show breaker state (all tools with state, or one)'
            cand reset 'Reset a tool''s breaker to closed (`all` for every one)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;breaker;status'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;breaker;reset'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;breaker;help'= {
            cand status 'Show breaker state (all tools with state, or one)'
            cand reset 'Reset a tool''s breaker to closed (`all` for every one)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;breaker;help;status'= {
        }
        &'gathm;breaker;help;reset'= {
        }
        &'gathm;breaker;help;help'= {
        }
        &'gathm;cache'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand stats 'Entry counts and sizes'
            cand clear 'Remove every entry (empty the cache)'
            cand purge 'Remove expired entries only'
            cand invalidate 'Remove one tool''s entries'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;cache;stats'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;cache;clear'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;cache;purge'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;cache;invalidate'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;cache;help'= {
            cand stats 'Entry counts and sizes'
            cand clear 'Remove every entry (empty the cache)'
            cand purge 'Remove expired entries only'
            cand invalidate 'Remove one tool''s entries'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;cache;help;stats'= {
        }
        &'gathm;cache;help;clear'= {
        }
        &'gathm;cache;help;purge'= {
        }
        &'gathm;cache;help;invalidate'= {
        }
        &'gathm;cache;help;help'= {
        }
        &'gathm;policy'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand check 'Print the decision for a role and tool, and the rule behind it'
            cand show 'Print the effective policy and where it came from'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;policy;check'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --approve 'Treat the call as approved'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;policy;show'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;policy;help'= {
            cand check 'Print the decision for a role and tool, and the rule behind it'
            cand show 'Print the effective policy and where it came from'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;policy;help;check'= {
        }
        &'gathm;policy;help;show'= {
        }
        &'gathm;policy;help;help'= {
        }
        &'gathm;parallel'= {
            cand -j 'At most N tools at once (default: the number of CPUs)'
            cand --jobs 'At most N tools at once (default: the number of CPUs)'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --approve 'Approve tools that the role''s policy marks `requires_approval`'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;chain'= {
            cand --timeout 'Kill each step''s process group after SECS seconds (overrides the manifest)'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --approve 'Approve tools that the role''s policy marks `requires_approval`'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;pipeline'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand run 'Validate, then run the steps (independent ones in parallel)'
            cand validate 'Check the file without running anything (exit 65 on problems)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;pipeline;run'= {
            cand -j 'At most N steps at once (default: the number of CPUs)'
            cand --jobs 'At most N steps at once (default: the number of CPUs)'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --approve 'Approve tools that the role''s policy marks `requires_approval`'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;pipeline;validate'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;pipeline;help'= {
            cand run 'Validate, then run the steps (independent ones in parallel)'
            cand validate 'Check the file without running anything (exit 65 on problems)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;pipeline;help;run'= {
        }
        &'gathm;pipeline;help;validate'= {
        }
        &'gathm;pipeline;help;help'= {
        }
        &'gathm;schedule'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
            cand list 'Every schedule with its next and last run and the last outcome'
            cand next 'The next fire times of a schedule'
            cand validate 'Check gathm.yaml (exit 65 on problems, each with file:line:col)'
            cand run 'Run a schedule now, by hand (with its overlap rule)'
            cand tick 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;schedule;list'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;schedule;next'= {
            cand -n 'How many'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;schedule;validate'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;schedule;run'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;schedule;tick'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;schedule;help'= {
            cand list 'Every schedule with its next and last run and the last outcome'
            cand next 'The next fire times of a schedule'
            cand validate 'Check gathm.yaml (exit 65 on problems, each with file:line:col)'
            cand run 'Run a schedule now, by hand (with its overlap rule)'
            cand tick 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;schedule;help;list'= {
        }
        &'gathm;schedule;help;next'= {
        }
        &'gathm;schedule;help;validate'= {
        }
        &'gathm;schedule;help;run'= {
        }
        &'gathm;schedule;help;tick'= {
        }
        &'gathm;schedule;help;help'= {
        }
        &'gathm;serve'= {
            cand --host 'Address to bind'
            cand --port 'Port to bind (0: any free port; the address is printed first)'
            cand --state-url 'Share breakers, rate limits, group slots and jobs with a fleet on this Redis (redis://[user:pass@]host:port/db or rediss://); overrides GATHM_STATE_URL and state.url in gathm.yaml'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;new-tool'= {
            cand --category 'Category: security, networking, data, media, utility, finance, science or productivity'
            cand --lang 'Script language'
            cand --dir 'Create it under DIR (default: the first directory of the tool search path)'
            cand --description 'One-line description'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
        }
        &'gathm;ask'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --explain 'Show how each candidate scored'
            cand --run 'Run the best match with the words after `--` as its arguments'
            cand -y 'With --run: do not ask for confirmation'
            cand --yes 'With --run: do not ask for confirmation'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;init'= {
            cand --from 'Copy the tools from DIR (default: the repository''s tools/ found beside the executable)'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --link 'Symlink each tool instead of copying it'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;monitor'= {
            cand --interval 'Seconds between rounds (default: $GATHM_MONITOR_INTERVAL, else 30)'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --once 'One round, then exit (1 if any tool is unhealthy)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;__complete'= {
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;mcp'= {
            cand --approve-tools 'Approve the tools matching GLOB that the role''s policy marks `requires_approval` (repeatable)'
            cand --role 'Role for policy decisions'
            cand --tools-dir 'Look for tools here (repeatable; replaces GATHM_TOOLS_PATH and ./tools)'
            cand --policies 'Policies file (default: $GATHM_POLICIES, $GATHM_HOME/policies.yaml, ./policies.yaml, built-in)'
            cand --config 'Configuration file with schedules and groups (default: $GATHM_CONFIG, $GATHM_HOME/config.yaml, ./gathm.yaml)'
            cand --json 'Print JSON instead of text'
            cand -q 'Print a run''s output only if it failed (for cron)'
            cand --quiet 'Print a run''s output only if it failed (for cron)'
            cand -h 'Print help'
            cand --help 'Print help'
        }
        &'gathm;help'= {
            cand list 'List the tools the role may discover'
            cand show 'Show a tool''s whole manifest'
            cand validate 'Check manifests (file, line and column), the fallback graph and the policies'
            cand schema 'Print the JSON Schema of tool.yaml or policies.yaml'
            cand run 'Run a tool: gathm''s options first, then TOOL and its arguments'
            cand status 'Version, paths, tools, open breakers, cache'
            cand completions 'Print a shell completion script'
            cand health 'Check executables, system dependencies, API health endpoints and breakers'
            cand heal 'Re-check a tool (or `all`) and reset the breaker of each healthy one'
            cand breaker 'Circuit-breaker state'
            cand cache 'The result cache'
            cand policy 'Policy decisions and the effective policy'
            cand parallel 'Run several tools at once; output grouped per tool, in the order given'
            cand chain 'Run tools one after another, each step''s stdout feeding the next step''s stdin'
            cand pipeline 'Run or check a DAG of steps described in a YAML file'
            cand schedule 'Cron schedules from gathm.yaml: list, next fire times, run, or tick from system cron'
            cand serve 'Serve the HTTP API (see README, "gathm serve")'
            cand new-tool 'Create a new tool: NAME/tool.yaml and an executable script that handles --help'
            cand ask 'Pick the tool for a plain-language request (keyword scoring; no model)'
            cand init 'Set up $GATHM_HOME (~/.gathm) with the shipped tools and policies (idempotent)'
            cand monitor 'Run the health checks periodically, feeding the breakers; log transitions'
            cand __complete 'For the shell completion scripts: print tool names, one a line'
            cand mcp 'Serve the tools over MCP (Model Context Protocol) on stdin/stdout (see README, "MCP")'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'gathm;help;list'= {
        }
        &'gathm;help;show'= {
        }
        &'gathm;help;validate'= {
        }
        &'gathm;help;schema'= {
        }
        &'gathm;help;run'= {
        }
        &'gathm;help;status'= {
        }
        &'gathm;help;completions'= {
        }
        &'gathm;help;health'= {
        }
        &'gathm;help;heal'= {
        }
        &'gathm;help;breaker'= {
            cand status 'Show breaker state (all tools with state, or one)'
            cand reset 'Reset a tool''s breaker to closed (`all` for every one)'
        }
        &'gathm;help;breaker;status'= {
        }
        &'gathm;help;breaker;reset'= {
        }
        &'gathm;help;cache'= {
            cand stats 'Entry counts and sizes'
            cand clear 'Remove every entry (empty the cache)'
            cand purge 'Remove expired entries only'
            cand invalidate 'Remove one tool''s entries'
        }
        &'gathm;help;cache;stats'= {
        }
        &'gathm;help;cache;clear'= {
        }
        &'gathm;help;cache;purge'= {
        }
        &'gathm;help;cache;invalidate'= {
        }
        &'gathm;help;policy'= {
            cand check 'Print the decision for a role and tool, and the rule behind it'
            cand show 'Print the effective policy and where it came from'
        }
        &'gathm;help;policy;check'= {
        }
        &'gathm;help;policy;show'= {
        }
        &'gathm;help;parallel'= {
        }
        &'gathm;help;chain'= {
        }
        &'gathm;help;pipeline'= {
            cand run 'Validate, then run the steps (independent ones in parallel)'
            cand validate 'Check the file without running anything (exit 65 on problems)'
        }
        &'gathm;help;pipeline;run'= {
        }
        &'gathm;help;pipeline;validate'= {
        }
        &'gathm;help;schedule'= {
            cand list 'Every schedule with its next and last run and the last outcome'
            cand next 'The next fire times of a schedule'
            cand validate 'Check gathm.yaml (exit 65 on problems, each with file:line:col)'
            cand run 'Run a schedule now, by hand (with its overlap rule)'
            cand tick 'Run whatever is due now and exit: `* * * * * gathm schedule tick` in a crontab'
        }
        &'gathm;help;schedule;list'= {
        }
        &'gathm;help;schedule;next'= {
        }
        &'gathm;help;schedule;validate'= {
        }
        &'gathm;help;schedule;run'= {
        }
        &'gathm;help;schedule;tick'= {
        }
        &'gathm;help;serve'= {
        }
        &'gathm;help;new-tool'= {
        }
        &'gathm;help;ask'= {
        }
        &'gathm;help;init'= {
        }
        &'gathm;help;monitor'= {
        }
        &'gathm;help;__complete'= {
        }
        &'gathm;help;mcp'= {
        }
        &'gathm;help;help'= {
        }
    ]
    $completions[$command]
}
