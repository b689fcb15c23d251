//! `certorch check`: the preflight, one line per problem with its fix.

use std::io::{IsTerminal, Write};

use super::{Cli, exit};
use crate::report::Progress;
use crate::run::check;
use crate::state::State;

pub async fn execute(cli: &Cli) -> u8 {
    let (inv, targets) = match super::load_targets(cli, &cli.limit) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let state = match State::open_read_only(&super::state_dir(cli)) {
        Ok(s) => s,
        Err(e) => return super::state_error(&e),
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
    let mut out = std::io::stdout();
    if cli.json {
        let _ = serde_json::to_writer_pretty(&mut out, &findings);
        let _ = writeln!(out);
    } else {
        for f in &findings {
            if f.ok {
                if cli.verbose || out.is_terminal() {
                    let _ = writeln!(out, "ok    {}/{} {}: {}", f.host, f.cert, f.area, f.what);
                }
            } else {
                let _ = writeln!(out, "FAIL  {}/{} {}: {}", f.host, f.cert, f.area, f.what);
                if let Some(fix) = &f.fix {
                    let _ = writeln!(out, "      fix: {fix}");
                }
            }
        }
        // Every missing or wrong _acme-challenge record once more, ready to paste into the zones.
        let records: Vec<&str> = findings
            .iter()
            .filter(|f| !f.ok && f.area == "dns")
            .filter_map(|f| f.fix.as_deref())
            .filter_map(|fix| fix.find("_acme-challenge.").map(|i| &fix[i..]))
            .filter(|r| r.contains(" IN CNAME "))
            .collect();
        if !records.is_empty() {
            let _ = writeln!(out, "\n; records to add (zone-file lines):");
            for r in records {
                let _ = writeln!(out, "{r}");
            }
        }
    }
    if findings.iter().any(|f| !f.ok) {
        exit::SOME_FAILED
    } else {
        exit::OK
    }
}
