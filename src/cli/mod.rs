//! The command line: clap definitions, and turning them into stage inputs.

mod generate;
mod plan;
mod run;
mod status;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Exit codes, documented in the man page.
pub mod exit {
    /// Everything selected is in order.
    pub const OK: u8 = 0;
    /// At least one certificate could not be issued or deployed.
    pub const SOME_FAILED: u8 = 1;
    /// The inventory or the command line is wrong; nothing was touched.
    pub const USAGE: u8 = 2;
    /// Another run holds the state directory's lock.
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
    after_help = "Exit status: 0 all selected certificates are in order; 1 some certificate failed (the others were still done); 2 inventory or usage error, nothing touched; 3 another run holds the lock."
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

    /// State directory: ACME accounts and the run lock [default: /var/lib/certorch as root,
    /// else $XDG_STATE_HOME/certorch].
    #[arg(long, global = true, env = "CERTORCH_STATE")]
    pub state: Option<PathBuf>,

    /// How many hosts to work on at once [default: the inventory's `concurrency`, else 20].
    #[arg(long, global = true)]
    pub concurrency: Option<usize>,

    /// Only these hosts, groups, or host/cert (repeatable; `*` globs host names, `all` is
    /// everything).
    #[arg(short, long = "limit", global = true, value_name = "PATTERN")]
    pub limit: Vec<String>,

    /// Print each step as it happens.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Print the result as one JSON document on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Issue and deploy every certificate that is missing or due (the cron job).
    Run {
        /// Prove the inventory works without touching production: issue every selected
        /// certificate from the staging CA (acme.staging) with a separate account, into
        /// dry_run_root on each host, without reloads; TXT records are published and removed
        /// as for real.
        #[arg(long)]
        dry_run: bool,
    },
    /// Issue and deploy now, whether due or not.
    Issue {
        /// Hosts, groups or host/cert to issue for.
        #[arg(required = true, value_name = "HOST[/CERT]")]
        targets: Vec<String>,
    },
    /// Show what a run would do and why, and the rate limits it would meet; changes nothing.
    Plan,
    /// One line per certificate from the state: names, expiry, days left, last result.
    Status {
        /// Also write the metrics for node_exporter's textfile collector to this file.
        #[arg(long, value_name = "FILE")]
        prometheus: Option<PathBuf>,
    },
    /// Write man pages or shell completions into a directory (for packagers).
    #[command(hide = true)]
    Generate {
        #[arg(value_enum)]
        what: Generated,
        dir: PathBuf,
    },
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
