//! `certorch check`: the preflight, one line per problem with its fix.

use std::io::IsTerminal;

use super::{Cli, exit};
use crate::report::{Printer, Progress};
use crate::run::check;

pub async fn execute(cli: &Cli) -> u8 {
    let (inv, targets) = match super::load_targets(cli, &cli.limit) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let state =
        match super::state_location(cli, &inv).and_then(|l| super::open_state_read_only(cli, &l)) {
            Ok(s) => s,
            Err(code) => return code,
        };
    let progress = Progress::new(
        cli.verbose,
        !cli.json && !cli.quiet && std::io::stderr().is_terminal(),
    );
    let findings = check::check(
        &inv,
        &targets,
        &state,
        cli.concurrency.unwrap_or(inv.concurrency).max(1),
        &progress,
    )
    .await;
    progress.finish();
    let failed = findings.iter().any(|f| !f.ok);
    let report = check::Report {
        findings,
        show_ok: cli.verbose || std::io::stdout().is_terminal(),
    };
    if let Err(e) = (Printer { json: cli.json }).print(&report) {
        return crate::report::printer::output_failed(&e);
    }
    if failed { exit::SOME_FAILED } else { exit::OK }
}
