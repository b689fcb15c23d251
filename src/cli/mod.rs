//! The command line: clap definitions, and turning them into stage inputs.

mod admin;
mod check;
mod generate;
mod inventory_man;
mod plan;
mod run;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::state::Location;

/// Exit codes, documented in the man page.
pub mod exit {
    /// Everything selected is in order.
    pub const OK: u8 = 0;
    /// At least one certificate could not be issued or deployed.
    pub const SOME_FAILED: u8 = 1;
    /// The inventory or the command line is wrong; nothing was touched.
    pub const USAGE: u8 = 2;
    /// Another run holds the run lock (the state directory's, or the PostgreSQL advisory lock).
    pub const LOCKED: u8 = 3;
}

/// Agentless certificate orchestrator: keys are made on each host, dns-01 goes through a
/// CNAME'd signing zone, certificates are pushed back over SSH.
#[derive(Debug, Parser)]
#[command(
    name = "certorch",
    version,
    about,
    long_about = None,
    after_help = "Exit status: 0 all selected certificates are in order; 1 some certificate failed (the others were still done), or the state directory cannot be used (nothing ordered); 2 inventory or usage error, nothing touched; 3 another run holds the lock."
)]
pub struct Cli {
    /// The host inventory (YAML).
    #[arg(
        short,
        long,
        global = true,
        env = "CERTORCH_INVENTORY",
        default_value = "/etc/certorch/inventory.yaml"
    )]
    pub inventory: PathBuf,

    /// Where the state lives: a directory (ACME accounts, records, the run lock) or a
    /// PostgreSQL database, postgresql://USER@HOST/DB?password_file=FILE, that several
    /// bastions share [default: the inventory's `state:`, else /var/lib/certorch as root,
    /// else $XDG_STATE_HOME/certorch].
    #[arg(long, global = true, env = "CERTORCH_STATE", value_name = "DIR|URL")]
    pub state: Option<String>,

    /// How many hosts to work on at once, 1 to 1000 [default: the inventory's `concurrency`,
    /// else 20].
    #[arg(long, global = true, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1000))]
    pub concurrency: Option<usize>,

    /// Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is
    /// everything).
    #[arg(short, long = "limit", global = true, value_name = "PATTERN")]
    pub limit: Vec<String>,

    /// Print each step as it happens.
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Print only errors and warnings, even on a terminal.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Print the result as one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue and deploy every certificate that is missing or due (the cron job); what the CA's
    /// rate limits (acme.limits) leave no room for is deferred to its slot, most urgent first.
    Run {
        /// Prove the inventory works without touching production: issue every selected
        /// certificate from the staging CA (acme.staging) with a separate account, into
        /// dry_run_root on each host, without reloads; TXT records are published and removed
        /// as for real.
        #[arg(long)]
        dry_run: bool,
    },
    /// Issue and deploy now, whether due or not; a reissue the CA's rate limits (acme.limits)
    /// leave no room for is deferred, with the time to ask again.
    Issue {
        /// Hosts, groups or host/cert to issue for.
        #[arg(required = true, value_name = "HOST[/CERT]")]
        targets: Vec<String>,
    },
    /// Show what a run would do and why, and when the CA's rate limits let each certificate be
    /// ordered (the schedule); changes nothing.
    Plan,
    /// Preflight: SSH, the hosts, every _acme-challenge CNAME, CAA, the signing zone and the CA;
    /// one line per problem with its fix. Orders nothing, writes no live file.
    Check,
    /// One line per certificate from the state: names, expiry, days left, last result (and the
    /// next slot of a deferred one).
    Status {
        /// Also write the metrics for node_exporter's textfile collector to this file.
        #[arg(long, value_name = "FILE")]
        prometheus: Option<PathBuf>,
    },
    /// Write a commented starter inventory to --inventory (never over an existing file).
    Init,
    /// List the deploy playbooks (built-in and the inventory's own), or print one.
    Playbooks {
        /// Print this playbook's YAML (to copy it into your playbooks directory and change it).
        name: Option<String>,
        /// The directory of your own playbooks; default: `playbooks:` of the inventory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The ACME account for the inventory's CA.
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Revoke the certificate certorch deployed at HOST/CERT; the next run replaces it.
    Revoke {
        #[arg(value_name = "HOST/CERT")]
        target: String,
        /// The reason given to the CA (RFC 5280 §5.3.1).
        #[arg(long, value_enum, default_value = "unspecified")]
        reason: RevokeReason,
    },
    /// Write man pages or shell completions into a directory (for packagers).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generated,
        dir: PathBuf,
    },
}

/// What `certorch account` does.
#[derive(Debug, Subcommand)]
pub enum AccountAction {
    /// Show the account: directory, account URL, contact, when it was registered.
    Show,
    /// Register the account now (a run does it when needed).
    Register,
    /// Replace the account's key with a new one at the CA (RFC 8555 §7.3.5) and store it; the
    /// account stays the same. Prints the old and new key thumbprints, never the key.
    Rollover,
    /// Deactivate the account at the CA; final.
    Deactivate {
        /// Confirm: the CA refuses the account from then on.
        #[arg(long)]
        yes: bool,
    },
}

/// Why a certificate is revoked.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RevokeReason {
    Unspecified,
    KeyCompromise,
    Superseded,
    CessationOfOperation,
    AffiliationChanged,
}

/// What `certorch generate` writes.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Generated {
    /// Man pages (section 1).
    Man,
    /// bash, zsh and fish completions.
    Completions,
}

/// Runs the parsed command line; returns the process exit code.
pub async fn main(cli: Cli) -> u8 {
    if let Command::Generate { what, dir } = &cli.command {
        let r = match what {
            Generated::Man => generate::man_pages(dir),
            Generated::Completions => generate::completions(dir),
        };
        return match r {
            Ok(()) => exit::OK,
            Err(e) => {
                eprintln!("error: cannot write to {}: {e}", dir.display());
                exit::USAGE
            }
        };
    }
    match cli.command {
        Command::Plan => plan::execute(&cli).await,
        Command::Status { .. } => status::execute(&cli).await,
        Command::Init => admin::init(&cli),
        Command::Playbooks { .. } => admin::playbooks(&cli),
        Command::Check => check::execute(&cli).await,
        Command::Account { .. } => admin::account(&cli).await,
        Command::Revoke { .. } => admin::revoke(&cli).await,
        _ => run::execute(cli).await,
    }
}

/// The default state directory for this user.
pub fn default_state_dir() -> PathBuf {
    // The effective uid from /proc: no libc call needed, and $USER can lie under sudo.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/certorch");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("certorch");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".local/state/certorch")
}

/// Loads the inventory, printing the error (exit 2 is the caller's).
pub(crate) fn load_inventory(cli: &Cli) -> Result<crate::inventory::Inventory, ()> {
    let inv = crate::inventory::load(&cli.inventory).map_err(|e| eprintln!("error: {e}"))?;
    for w in &inv.warnings {
        eprintln!("warning: {w}");
    }
    Ok(inv)
}

/// Loads the inventory and resolves --limit (or `patterns`), printing the error.
pub(crate) fn load_targets(
    cli: &Cli,
    patterns: &[String],
) -> Result<(crate::inventory::Inventory, Vec<crate::inventory::Target>), u8> {
    let inv = load_inventory(cli).map_err(|()| exit::USAGE)?;
    match inv.select(patterns) {
        Ok(t) => Ok((inv, t)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(exit::USAGE)
        }
    }
}

/// Takes the run lock and opens the state for writing. The lock is the returned file's in a
/// state directory; on PostgreSQL it is the state's own connection's (an advisory lock), so
/// there is no file.
pub(crate) fn open_state_locked(
    cli: &Cli,
    location: &Location,
) -> Result<(Option<std::fs::File>, crate::state::State), u8> {
    match location {
        Location::Dir(dir) => {
            let lock = lock(cli, dir)?;
            match crate::state::State::open(dir) {
                Ok(s) => Ok((Some(lock), s)),
                Err(e) => Err(state_error(cli, &e)),
            }
        }
        Location::Postgres(url) => match crate::state::State::open_postgres(url) {
            Ok(Some(s)) => Ok((None, s)),
            Ok(None) => {
                let (code, error, hint) = held(location);
                eprintln!("error: {error}");
                eprintln!("  hint: {hint}");
                Err(code)
            }
            Err(e) => Err(state_error(cli, &e)),
        },
    }
}

/// Opens the state to read (`plan`, `status`, `check`): no lock, nothing created.
pub(crate) fn open_state_read_only(
    cli: &Cli,
    location: &Location,
) -> Result<crate::state::State, u8> {
    match location {
        Location::Dir(dir) => crate::state::State::open_read_only(dir),
        Location::Postgres(url) => crate::state::State::open_postgres_read_only(url),
    }
    .map_err(|e| state_error(cli, &e))
}

/// Where the state is: --state (or CERTORCH_STATE), else the inventory's `state:`, else the
/// default directory. A bad URL is a usage error, printed here.
pub(crate) fn state_location(cli: &Cli, inv: &crate::inventory::Inventory) -> Result<Location, u8> {
    match &cli.state {
        Some(s) => Location::parse(s).map_err(|e| {
            eprintln!("error: --state: {e}");
            eprintln!(
                "  hint: give a directory, or postgresql://USER@HOST/DB with the password in password_file= or PGPASSWORD"
            );
            exit::USAGE
        }),
        None => Ok(inv
            .state
            .clone()
            .unwrap_or_else(|| Location::Dir(default_state_dir()))),
    }
}

/// Prints a state error with its hint; returns the exit code: 1, as for a certificate that
/// failed (the state directory is the bastion's fault, not the inventory's), with nothing
/// ordered or written.
pub(crate) fn state_error(cli: &Cli, e: &crate::state::Error) -> u8 {
    stopped(cli, e);
    exit::SOME_FAILED
}

/// What a command that stops before it starts prints: `error:` and `hint:` on stderr and,
/// with --json, `{ "error", "kind", "hint" }` on stdout (docs/json.md).
pub(crate) fn stopped(cli: &Cli, p: &dyn crate::problem::Problem) {
    eprintln!("error: {p}");
    if let Some(h) = p.hint() {
        eprintln!("  hint: {h}");
    }
    if cli.json {
        let doc = serde_json::json!({
            "error": p.to_string(),
            "kind": p.kind(),
            "hint": p.hint(),
        });
        if let Err(e) = serde_json::to_writer_pretty(std::io::stdout().lock(), &doc)
            .map_err(std::io::Error::from)
            .and_then(|()| {
                use std::io::Write;
                writeln!(std::io::stdout().lock())
            })
        {
            crate::report::printer::output_failed(&e);
        }
    }
}

/// Takes the run lock in `state`, printing why not when it cannot. The lock lives as long as
/// the returned file and is released by the kernel if the process dies.
pub(crate) fn lock(cli: &Cli, state: &std::path::Path) -> Result<std::fs::File, u8> {
    use std::os::unix::fs::PermissionsExt;
    let lock_path = state.join("lock");
    let f = std::fs::create_dir_all(state)
        .and_then(|()| std::fs::metadata(state))
        .and_then(|m| {
            // Changed only when it differs: a chmod is a write, and a read-only state
            // directory should fail on the lock file, named, not on the directory's mode.
            if m.permissions().mode() & 0o777 == 0o700 {
                Ok(())
            } else {
                std::fs::set_permissions(state, std::fs::Permissions::from_mode(0o700))
            }
        })
        .and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
        });
    let f = match f {
        Ok(f) => f,
        Err(e) => {
            stopped(cli, &unusable(state, &e));
            return Err(exit::SOME_FAILED);
        }
    };
    match locked(f.try_lock(), state) {
        Ok(()) => Ok(f),
        Err((code, error, hint)) => {
            eprintln!("error: {error}");
            eprintln!("  hint: {hint}");
            Err(code)
        }
    }
}

/// Why the state directory cannot take the lock (it cannot be created, it is read-only, it
/// belongs to someone else): nothing is ordered without a place to record it.
fn unusable(state: &std::path::Path, e: &std::io::Error) -> crate::problem::Plain {
    let db = state.join(crate::state::DB_FILE);
    crate::problem::Plain::new(
        crate::problem::Kind::StateWriteFailed,
        format!(
            "cannot write to the state directory {}: {e}",
            state.display()
        ),
        if e.raw_os_error() == Some(libc::EROFS) {
            format!(
                "the file system is read-only: certorch records each step in {} before it acts, so it ordered nothing; remount it read-write (or pass --state with a writable directory) and run again; {} was not changed",
                db.display(),
                db.display()
            )
        } else {
            format!(
                "certorch records each step in {} before it acts, so it ordered nothing: create the directory, make it writable by this user, or pass --state with a writable directory",
                db.display()
            )
        },
    )
}

/// Another run holds the lock on `location`: exit 3, and why.
fn held(location: &Location) -> (u8, String, String) {
    (
        exit::LOCKED,
        format!("another certorch run holds the lock on {location}"),
        "wait for it to finish; cron runs that overlap are skipped safely".into(),
    )
}

/// What taking the lock came to: only `WouldBlock` means another run holds it; any other
/// error (a file system without locks, an I/O error) is that error, exit 1.
fn locked(
    r: Result<(), std::fs::TryLockError>,
    state: &std::path::Path,
) -> Result<(), (u8, String, String)> {
    match r {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(held(&Location::Dir(state.to_path_buf()))),
        Err(std::fs::TryLockError::Error(e)) => Err((
            exit::SOME_FAILED,
            format!(
                "cannot lock {}: {e}",
                state.join("lock").display()
            ),
            "put the state directory (--state) on a local file system that supports flock(2), and check the disk".into(),
        )),
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    /// Regression (holes #5): only a lock held elsewhere is "another run"; any other error
    /// is reported as itself, with exit 1.
    #[test]
    fn a_lock_error_is_not_another_run() {
        let state = std::path::Path::new("/var/lib/certorch");
        assert_eq!(
            locked(Err(std::fs::TryLockError::WouldBlock), state),
            Err((
                exit::LOCKED,
                "another certorch run holds the lock on /var/lib/certorch".into(),
                "wait for it to finish; cron runs that overlap are skipped safely".into()
            ))
        );
        let (code, error, hint) = locked(
            Err(std::fs::TryLockError::Error(
                std::io::Error::from_raw_os_error(libc::ENOLCK),
            )),
            state,
        )
        .unwrap_err();
        assert_eq!(code, exit::SOME_FAILED);
        assert_eq!(
            error,
            "cannot lock /var/lib/certorch/lock: No locks available (os error 37)"
        );
        assert!(hint.contains("supports flock(2)"), "{hint}");
        assert_eq!(locked(Ok(()), state), Ok(()));
    }
}
