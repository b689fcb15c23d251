//! The end of a run: every outcome recorded in one transaction (audit log, last results, the
//! lifecycle of failed certificates), then the outcomes put in inventory order.

use std::time::Instant;

use super::Ctx;
use crate::problem::Kind;
use crate::report::{Outcome, RunSummary, ms_since};
use crate::state::{LastResult, Lifecycle, Phase};

/// Whether a certificate that failed with `kind` keeps its staged key and its lifecycle in
/// flight: its order was validated (`lifecycle` is at `validated` with an order) and then the
/// CA did not answer, or answered with server errors, or asked to be left alone for a while.
/// The order may yet be finalized, and the next run takes it up instead of ordering again.
/// Likewise a certificate whose chain was obtained (`finalized`) or whose files went live
/// (`deployed`) and whose host then went away before the service was reloaded and the files
/// could be put back (the files, their commit and the reload run as one command, so a host
/// lost in it may hold either set): the next run deploys the recorded chain where it is not
/// live yet, and reloads and verifies what is live, instead of taking the unreloaded files
/// for drift and ordering again.
pub(crate) fn keeps_in_flight(kind: Kind, lifecycle: Option<&Lifecycle>) -> bool {
    let validated = || {
        matches!(kind, Kind::CaUnreachable | Kind::CaUnavailable)
            && lifecycle.is_some_and(|l| l.phase == Phase::Validated && l.order_url.is_some())
    };
    let deployed = || {
        kind.host_went_away()
            && lifecycle.is_some_and(|l| matches!(l.phase, Phase::Finalized | Phase::Deployed))
    };
    validated() || deployed()
}

/// Records every outcome and sorts them; a run whose results cannot be recorded says so and
/// fails.
pub(crate) fn finish(ctx: &Ctx<'_>, mut summary: RunSummary, started: Instant) -> RunSummary {
    let t = Instant::now();
    summary.outcomes.extend(ctx.take_failed());
    summary.warnings.extend(ctx.take_warnings());
    let state = ctx.state;
    let recorded = state.batch(|| {
        for o in &summary.outcomes {
            match o {
                Outcome::Issued {
                    host,
                    cert,
                    reason,
                    serial,
                    ..
                } => state.audit(
                    host,
                    cert,
                    "issue",
                    "ok",
                    &format!("serial {serial}: {reason}"),
                )?,
                Outcome::Current { host, cert, .. } => {
                    state.set_result(host, cert, &LastResult::Current)?
                }
                Outcome::Deferred {
                    host,
                    cert,
                    next_slot,
                    limit,
                    ..
                } => {
                    let until = LastResult::Deferred { until: *next_slot };
                    state.set_result(host, cert, &until)?;
                    state.audit(
                        host,
                        cert,
                        "defer",
                        "deferred",
                        &format!("until {}: {limit}", crate::state::fmt_time(*next_slot)),
                    )?;
                }
                Outcome::Failed(f) => {
                    let failed = LastResult::Failed {
                        stage: f.stage.as_str().to_string(),
                    };
                    state.set_result(&f.host, &f.cert, &failed)?;
                    state.audit(&f.host, &f.cert, f.stage.as_str(), "failed", &f.error)?;
                    // What could not be recorded stays in flight, for the next run to resume;
                    // so does an order the CA validated and then did not answer about.
                    let resumable =
                        keeps_in_flight(f.kind, state.lifecycle(&f.host, &f.cert)?.as_ref());
                    if f.kind != Kind::StateWriteFailed && !resumable {
                        state.failed(&f.host, &f.cert, &f.kind.to_string())?;
                    }
                }
            }
        }
        Ok(())
    });
    if let Err(e) = recorded {
        summary.record_failed = Some(format!(
            "the run's results were not recorded: {e}; hint: {}",
            e.hint()
        ));
    }
    let inv = ctx.inv;
    let key = |o: &Outcome| {
        let (h, c) = match o {
            Outcome::Issued { host, cert, .. }
            | Outcome::Current { host, cert, .. }
            | Outcome::Deferred { host, cert, .. } => (host, cert),
            Outcome::Failed(f) => (&f.host, &f.cert),
        };
        inv.position(h, c)
    };
    summary.outcomes.sort_by_key(key);
    summary.timings.record_ms = ms_since(t);
    summary.ssh_sessions = ctx.sessions.load(std::sync::atomic::Ordering::Relaxed);
    summary.timings.total_ms = ms_since(started);
    summary
}
