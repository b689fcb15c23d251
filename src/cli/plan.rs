//! `certorch plan`: what a run would do and why, touching nothing.

use std::io::Write;

use super::{Cli, exit};

use std::io::IsTerminal;

use crate::report::Progress;
use crate::run;
use crate::state::State;

pub async fn execute(cli: &Cli) -> u8 {
    let limit = &cli.limit;
    let (inv, targets) = match super::load_targets(cli, limit) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let state_dir = super::state_dir(cli);
    let state = match State::open_read_only(&state_dir) {
        Ok(s) => s,
        Err(e) => return super::state_error(&e),
    };
    let concurrency = cli.concurrency.unwrap_or(inv.concurrency).max(1);
    let progress = Progress::new(
        cli.verbose,
        !cli.json && !cli.quiet && std::io::stderr().is_terminal(),
    );
    let report = run::plan(&inv, &targets, &state, false, concurrency, &progress).await;
    progress.finish();
    let mut out = std::io::stdout();
    if cli.json {
        let _ = serde_json::to_writer_pretty(&mut out, &report);
        let _ = writeln!(out);
    } else {
        for i in &report.items {
            let _ = match i.action {
                "issue" => writeln!(
                    out,
                    "{}/{}: would issue ({})",
                    i.host,
                    i.cert,
                    i.reason.as_deref().unwrap_or("")
                ),
                "none" => writeln!(
                    out,
                    "{}/{}: nothing to do until {}",
                    i.host,
                    i.cert,
                    i.renew_at.map(crate::state::fmt_time).unwrap_or_default()
                ),
                _ => writeln!(
                    out,
                    "{}/{}: cannot tell: {}",
                    i.host,
                    i.cert,
                    i.error.as_deref().unwrap_or("")
                ),
            };
        }
        for w in &report.limits {
            eprintln!("warning: rate limit `{}`: {}", w.limit, w.detail);
        }
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    if report.items.iter().any(|i| i.action == "failed") {
        exit::SOME_FAILED
    } else {
        exit::OK
    }
}
