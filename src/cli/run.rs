//! `certorch run` and `certorch issue`: the same pipeline, `issue` forcing issuance.

use super::{Cli, Command, exit};

use std::io::IsTerminal;

use crate::report::{Printer, Progress, RunOutput, Style};
use crate::run::{self, Request};

pub async fn execute(cli: Cli) -> u8 {
    let dry_run = matches!(cli.command, Command::Run { dry_run: true });
    let (patterns, force) = match &cli.command {
        Command::Issue { targets } => (targets.clone(), true),
        _ => (cli.limit.clone(), false),
    };
    let (inv, targets) = match super::load_targets(&cli, &patterns) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // The dry-run inventory keeps every host in its place, so the targets stay valid.
    let inv = if dry_run {
        match inv.for_dry_run() {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: {}: {e}", cli.inventory.display());
                return exit::USAGE;
            }
        }
    } else {
        inv
    };
    let mut location = match super::state_location(&cli, &inv) {
        Ok(l) => l,
        Err(code) => return code,
    };
    // A dry run keeps its own account, records and lock: production state never sees it.
    if dry_run {
        location = location.dry_run();
    }
    let (_lock, state) = match super::open_state_locked(&cli, &location) {
        Ok(x) => x,
        Err(code) => return code,
    };
    // A run that cannot record anything stops before it orders anything.
    if let Err(e) = state.begin_run(if force { "issue" } else { "run" }) {
        super::stopped(&cli, &e);
        return exit::SOME_FAILED;
    }
    let concurrency = cli.concurrency.unwrap_or(inv.concurrency).max(1);
    let reporter = Progress::new(
        cli.verbose,
        !cli.json && !cli.quiet && std::io::stderr().is_terminal(),
    );
    let summary = run::run(
        &Request {
            inventory: &inv,
            targets: &targets,
            force: force || dry_run,
            state: &state,
            concurrency,
        },
        &reporter,
    )
    .await;
    let mut summary = summary;
    summary.dry_run = dry_run;
    if let Some(cfg) = &inv.notify {
        // The notification names what is deployed; without the record it still goes out.
        let recorded = match state.certificates() {
            Ok(r) => r,
            Err(e) => {
                summary.warnings.push(format!(
                    "the notification lacks the recorded certificates: {e}"
                ));
                Vec::new()
            }
        };
        summary
            .warnings
            .extend(crate::notify::send(cfg, &summary, &recorded).await);
    }
    reporter.finish();
    let style = if std::io::stdout().is_terminal() && !cli.quiet {
        Style::Terminal
    } else {
        Style::Quiet {
            verbose: cli.verbose,
        }
    };
    let printed = Printer { json: cli.json }.print(&RunOutput {
        summary: &summary,
        style,
    });
    let finished = state.finish_run(if summary.failed() { "failed" } else { "ok" });
    if let Err(e) = &finished {
        eprintln!("error: {e}\n  hint: {}", e.hint());
    }
    if let Err(e) = &printed {
        return crate::report::printer::output_failed(e);
    }
    if summary.failed() || finished.is_err() {
        exit::SOME_FAILED
    } else {
        exit::OK
    }
}
