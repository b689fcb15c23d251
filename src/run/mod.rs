//! The pipeline of a run, as thin glue over one file per stage: survey (connect, inspect,
//! decide, take up what an interrupted run left), preflight of every `_acme-challenge` CNAME,
//! keys and CSRs on the hosts, orders, validation in rounds (publish, wait, answer, withdraw),
//! finalization and deployment (one pipeline: a host is deployed as soon as its last order is
//! finalized), record. A failure drops its certificate from later stages and
//! lands in the summary; the others go on. Each certificate's lifecycle is written to the state
//! at every transition, so a killed run is resumed by the next.

pub mod check;
mod context;
mod deliver;
mod deploy;
mod finalize;
mod hosts;
mod keys;
mod local;
mod order;
mod plan;
mod preflight;
mod record;
mod resume;
mod schedule;
mod shared;
mod survey;
mod validate;

use std::time::Instant;

use crate::dns::signing::SigningZone;
use crate::inventory::{ChallengeKind, Inventory, Issuer, Target};
use crate::problem::{Kind, Plain};
use crate::report::{Failure, Outcome, Reporter, RunSummary, Stage, ms_between, ms_since};
use crate::state::State;

pub use plan::plan;

pub(crate) use context::{Ctx, Due, Issued, Item, Keyed, Ordered};

/// What the caller asks of a run.
pub struct Request<'a> {
    pub inventory: &'a Inventory,
    pub targets: &'a [Target],
    /// Issue even when the deployed certificate is current (`certorch issue`).
    pub force: bool,
    pub state: &'a State,
    pub concurrency: usize,
}

/// Runs the whole pipeline for the request's targets.
pub async fn run(req: &Request<'_>, reporter: &dyn Reporter) -> RunSummary {
    let started = Instant::now();
    let ctx = Ctx::new(req.inventory, req.state, reporter, req.concurrency);
    let mut summary = RunSummary::default();

    // The SSH control sockets of this run live in a private directory removed at the end.
    let control = match hosts::control_dir() {
        Ok(d) => d,
        Err(e) => {
            let problem = Plain::new(
                Kind::RunSetupFailed,
                format!("cannot create a directory for SSH control sockets: {e}"),
                "check that $TMPDIR (or /tmp) is writable",
            );
            for t in req.targets {
                let host = &ctx.inv.hosts[t.host].name;
                let cert = t.cert.as_deref().unwrap_or("*");
                summary.outcomes.push(Outcome::Failed(Failure::new(
                    host,
                    cert,
                    Stage::Connect,
                    &problem,
                )));
            }
            return summary;
        }
    };

    // Before anything new: what an interrupted run left at the CA and in DNS.
    let setup = resume::setup(&ctx).await;
    summary.warnings.extend(setup.warnings);
    let (account, mut dns) = (setup.account, setup.dns);
    summary.timings.setup_ms = ms_since(started);

    let t = Instant::now();
    let surveyed = survey::survey(
        &ctx,
        req.targets,
        account.as_ref(),
        control.path(),
        req.force,
    )
    .await;
    for (host, label, w) in &surveyed.windows {
        if let Err(e) = ctx.state.set_ari(host, label, w.start, w.end) {
            summary.warnings.push(format!(
                "{host}/{label}: the CA's renewal window was not recorded: {e}"
            ));
        }
    }
    if !surveyed.stamps.is_empty() {
        let stored = ctx.state.batch(|| {
            for (host, label, stamp) in &surveyed.stamps {
                ctx.state.set_key_stamp(host, label, stamp)?;
            }
            Ok(())
        });
        if let Err(e) = stored {
            summary.warnings.push(format!(
                "the stamps of {} checked key files were not recorded ({e}): the next run checks those keys again",
                surveyed.stamps.len()
            ));
        }
    }
    summary.timings.connect_ms = surveyed.connect_ms;
    summary.timings.inspect_ms = ms_since(t).saturating_sub(surveyed.connect_ms);
    summary.outcomes.extend(surveyed.done);
    summary.warnings.extend(surveyed.warnings);
    // Only what fits the CA's rate limits is ordered; the rest waits for its slot.
    let (due, deferred) = schedule::split(&ctx, surveyed.due);
    summary.outcomes.extend(deferred);
    if due.is_empty() {
        return record::finish(&ctx, summary, started);
    }

    // Certificates an interrupted run already obtained go straight to deployment.
    let (finalized, due) = resume::finalized(&ctx, due);
    let mut issued = finalized;
    let mut validated = Vec::new();
    // Members of a shared label other than the one that makes the key wait for its certificate.
    let (due, waiting) = shared::split(due);
    // Self-signed and internal certificates need no DNS and no CA order.
    let (acme_due, local_due): (Vec<Due>, Vec<Due>) = due
        .into_iter()
        .partition(|d| d.item.spec.issuer == Issuer::Acme);
    if !local_due.is_empty() {
        let t = Instant::now();
        let keyed = keys::make(&ctx, preflight::unrouted(local_due)).await;
        summary.timings.key_ms += ms_since(t);
        let t = Instant::now();
        issued.extend(local::issue_all(&ctx, keyed).await);
        summary.timings.local_ms = ms_since(t);
    }
    if !acme_due.is_empty() {
        // dns-01 names must lead into the signing zone, and nothing is ordered while the
        // signing zone refuses our key.
        let t = Instant::now();
        let needs_dns = acme_due
            .iter()
            .any(|d| d.item.spec.challenge == ChallengeKind::Dns01);
        if needs_dns && dns.is_none() {
            dns = match SigningZone::new(ctx.inv).await {
                Ok(d) => Some(d),
                Err(e) => {
                    summary.warnings.push(e.to_string());
                    None
                }
            };
        }
        let routed = preflight::route(&ctx, dns.as_ref(), acme_due).await;
        // A CAA record that leaves this CA out makes the CA refuse after the order: refused here.
        let routed = preflight::caa(&ctx, routed).await;
        summary.timings.preflight_ms = ms_since(t);
        if !routed.is_empty() {
            let t = Instant::now();
            let account = order::account(&ctx, account, routed).await;
            summary.timings.account_ms = ms_since(t);
            if let Some((account, routed)) = account {
                let t = Instant::now();
                let opened = order::key_and_open(&ctx, &account, routed).await;
                summary.orders += opened.new;
                // The two overlap: keys until the last one was made, orders after that.
                summary.timings.key_ms += ms_between(t, opened.keys_done);
                summary.timings.order_ms = ms_since(opened.keys_done);
                validated =
                    validate::validate(&ctx, dns.as_ref(), opened.ordered, &mut summary).await;
            }
        }
    }
    // Each host goes into service as soon as its last certificate is finalized.
    let delivered = deliver::finalize_and_deploy(&ctx, validated, issued, waiting).await;
    summary.timings.validate_ms += delivered.finalize_ms;
    summary.timings.deploy_ms = delivered.deploy_ms;
    summary.outcomes.extend(delivered.outcomes);
    record::finish(&ctx, summary, started)
}
