# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_certorch_global_optspecs
    string join \n i/inventory= state= concurrency= l/limit= v/verbose json h/help V/version
end

function __fish_certorch_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_certorch_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_certorch_using_subcommand
    set -l cmd (__fish_certorch_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c certorch -n "__fish_certorch_needs_command" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_needs_command" -l state -d 'State directory: ACME accounts and the run lock [default: /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r -F
complete -c certorch -n "__fish_certorch_needs_command" -l concurrency -d 'How many hosts to work on at once [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_needs_command" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_needs_command" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_needs_command" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_needs_command" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_needs_command" -s V -l version -d 'Print version'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "run" -d 'Issue and deploy every certificate that is missing or due (the cron job)'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "issue" -d 'Issue and deploy now, whether due or not'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "plan" -d 'Show what a run would do and why, and the rate limits it would meet; changes nothing'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "status" -d 'One line per certificate from the state: names, expiry, days left, last result'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "generate" -d 'Write man pages or shell completions into a directory (for packagers)'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand run" -l state -d 'State directory: ACME accounts and the run lock [default: /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand run" -l concurrency -d 'How many hosts to work on at once [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand run" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand run" -l dry-run -d 'Prove the inventory works without touching production: issue every selected certificate from the staging CA (acme.staging) with a separate account, into dry_run_root on each host, without reloads; TXT records are published and removed as for real'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand run" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand issue" -l state -d 'State directory: ACME accounts and the run lock [default: /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand issue" -l concurrency -d 'How many hosts to work on at once [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand plan" -l state -d 'State directory: ACME accounts and the run lock [default: /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand plan" -l concurrency -d 'How many hosts to work on at once [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand status" -l prometheus -d 'Also write the metrics for node_exporter\'s textfile collector to this file' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand status" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand status" -l state -d 'State directory: ACME accounts and the run lock [default: /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand status" -l concurrency -d 'How many hosts to work on at once [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand status" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand status" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand status" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand status" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand generate" -l state -d 'State directory: ACME accounts and the run lock [default: /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand generate" -l concurrency -d 'How many hosts to work on at once [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan status generate help" -f -a "run" -d 'Issue and deploy every certificate that is missing or due (the cron job)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan status generate help" -f -a "issue" -d 'Issue and deploy now, whether due or not'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan status generate help" -f -a "plan" -d 'Show what a run would do and why, and the rate limits it would meet; changes nothing'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan status generate help" -f -a "status" -d 'One line per certificate from the state: names, expiry, days left, last result'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan status generate help" -f -a "generate" -d 'Write man pages or shell completions into a directory (for packagers)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan status generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
