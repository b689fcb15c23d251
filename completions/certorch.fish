# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_certorch_global_optspecs
    string join \n i/inventory= state= concurrency= l/limit= v/verbose q/quiet json h/help V/version
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
complete -c certorch -n "__fish_certorch_needs_command" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_needs_command" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_needs_command" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_needs_command" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_needs_command" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_needs_command" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_needs_command" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_needs_command" -s V -l version -d 'Print version'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "run" -d 'Issue and deploy every certificate that is missing or due (the cron job); what the CA\'s rate limits (acme.limits) leave no room for is deferred to its slot, most urgent first'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "issue" -d 'Issue and deploy now, whether due or not; a reissue the CA\'s rate limits (acme.limits) leave no room for is deferred, with the time to ask again'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "plan" -d 'Show what a run would do and why, and when the CA\'s rate limits let each certificate be ordered (the schedule); changes nothing'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "check" -d 'Preflight: SSH, the hosts, every _acme-challenge CNAME, CAA, the signing zone and the CA; one line per problem with its fix. Orders nothing, writes no live file'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "status" -d 'One line per certificate from the state: names, expiry, days left, last result (and the next slot of a deferred one)'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "init" -d 'Write a commented starter inventory to --inventory (never over an existing file)'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "playbooks" -d 'List the deploy playbooks (built-in and the inventory\'s own), or print one'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "account" -d 'The ACME account for the inventory\'s CA'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "revoke" -d 'Revoke the certificate certorch deployed at HOST/CERT; the next run replaces it'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "generate" -d 'Write man pages or shell completions into a directory (for packagers)'
complete -c certorch -n "__fish_certorch_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand run" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand run" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand run" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand run" -l dry-run -d 'Prove the inventory works without touching production: issue every selected certificate from the staging CA (acme.staging) with a separate account, into dry_run_root on each host, without reloads; TXT records are published and removed as for real'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand run" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand run" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand issue" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand issue" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand issue" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand plan" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand plan" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand plan" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand check" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand check" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand check" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand check" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand check" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand check" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand check" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand check" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand status" -l prometheus -d 'Also write the metrics for node_exporter\'s textfile collector to this file' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand status" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand status" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand status" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand status" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand status" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand status" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand status" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand status" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand init" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand init" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand init" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand init" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand init" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand init" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand init" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand init" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -l dir -d 'The directory of your own playbooks; default: `playbooks:` of the inventory' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand playbooks" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -f -a "show" -d 'Show the account: directory, account URL, contact, when it was registered'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -f -a "register" -d 'Register the account now (a run does it when needed)'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -f -a "rollover" -d 'Replace the account\'s key with a new one at the CA (RFC 8555 §7.3.5) and store it; the account stays the same. Prints the old and new key thumbprints, never the key'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -f -a "deactivate" -d 'Deactivate the account at the CA; final'
complete -c certorch -n "__fish_certorch_using_subcommand account; and not __fish_seen_subcommand_from show register rollover deactivate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from show" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from register" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from rollover" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l yes -d 'Confirm: the CA refuses the account from then on'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from deactivate" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "show" -d 'Show the account: directory, account URL, contact, when it was registered'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "register" -d 'Register the account now (a run does it when needed)'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "rollover" -d 'Replace the account\'s key with a new one at the CA (RFC 8555 §7.3.5) and store it; the account stays the same. Prints the old and new key thumbprints, never the key'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "deactivate" -d 'Deactivate the account at the CA; final'
complete -c certorch -n "__fish_certorch_using_subcommand account; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -l reason -d 'The reason given to the CA (RFC 5280 §5.3.1)' -r -f -a "unspecified\t''
key-compromise\t''
superseded\t''
cessation-of-operation\t''
affiliation-changed\t''"
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand revoke" -s h -l help -d 'Print help'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s i -l inventory -d 'The host inventory (YAML)' -r -F
complete -c certorch -n "__fish_certorch_using_subcommand generate" -l state -d 'Where the state lives: a directory (ACME accounts, records, the run lock) or a PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several bastions share [default: the inventory\'s `state:`, else /var/lib/certorch as root, else $XDG_STATE_HOME/certorch]' -r
complete -c certorch -n "__fish_certorch_using_subcommand generate" -l concurrency -d 'How many hosts to work on at once, 1 to 1000 [default: the inventory\'s `concurrency`, else 20]' -r
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s l -l limit -d 'Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is everything)' -r
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s v -l verbose -d 'Print each step as it happens'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s q -l quiet -d 'Print only errors and warnings, even on a terminal'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -l json -d 'Print the result as one JSON document on stdout'
complete -c certorch -n "__fish_certorch_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "run" -d 'Issue and deploy every certificate that is missing or due (the cron job); what the CA\'s rate limits (acme.limits) leave no room for is deferred to its slot, most urgent first'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "issue" -d 'Issue and deploy now, whether due or not; a reissue the CA\'s rate limits (acme.limits) leave no room for is deferred, with the time to ask again'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "plan" -d 'Show what a run would do and why, and when the CA\'s rate limits let each certificate be ordered (the schedule); changes nothing'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "check" -d 'Preflight: SSH, the hosts, every _acme-challenge CNAME, CAA, the signing zone and the CA; one line per problem with its fix. Orders nothing, writes no live file'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "status" -d 'One line per certificate from the state: names, expiry, days left, last result (and the next slot of a deferred one)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "init" -d 'Write a commented starter inventory to --inventory (never over an existing file)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "playbooks" -d 'List the deploy playbooks (built-in and the inventory\'s own), or print one'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "account" -d 'The ACME account for the inventory\'s CA'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "revoke" -d 'Revoke the certificate certorch deployed at HOST/CERT; the next run replaces it'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "generate" -d 'Write man pages or shell completions into a directory (for packagers)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and not __fish_seen_subcommand_from run issue plan check status init playbooks account revoke generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "show" -d 'Show the account: directory, account URL, contact, when it was registered'
complete -c certorch -n "__fish_certorch_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "register" -d 'Register the account now (a run does it when needed)'
complete -c certorch -n "__fish_certorch_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "rollover" -d 'Replace the account\'s key with a new one at the CA (RFC 8555 §7.3.5) and store it; the account stays the same. Prints the old and new key thumbprints, never the key'
complete -c certorch -n "__fish_certorch_using_subcommand help; and __fish_seen_subcommand_from account" -f -a "deactivate" -d 'Deactivate the account at the CA; final'
