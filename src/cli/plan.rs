//! `certorch plan`: what a run would do and why, touching nothing.

use super::{Cli, exit};

use std::io::IsTerminal;

use crate::report::{Printer, Progress};
use crate::run;

pub async fn execute(cli: &Cli) -> u8 {
    let limit = &cli.limit;
    let (inv, targets) = match super::load_targets(cli, limit) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let state =
        match super::state_location(cli, &inv).and_then(|l| super::open_state_read_only(cli, &l)) {
            Ok(s) => s,
            Err(code) => return code,
        };
    let concurrency = cli.concurrency.unwrap_or(inv.concurrency).max(1);
    let progress = Progress::new(
        cli.verbose,
        !cli.json && !cli.quiet && std::io::stderr().is_terminal(),
    );
    let report = run::plan(&inv, &targets, &state, false, concurrency, &progress).await;
    progress.finish();
    if let Err(e) = (Printer { json: cli.json }).print(&report) {
        return crate::report::printer::output_failed(&e);
    }
    if report.items.iter().any(|i| i.action == "failed") {
        exit::SOME_FAILED
    } else {
        exit::OK
    }
}
