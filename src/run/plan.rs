//! `certorch plan`: the front of a run, touching nothing. Hosts are read, the state is opened
//! read-only, no key, order or DNS record is made.

use super::{Ctx, hosts, schedule, survey};
use crate::acme;
use crate::inventory::{Inventory, Target};
use crate::plan::Reason;
use crate::plan::schedule::Slot;
use crate::report::{Outcome, Reporter};
use crate::state::State;

/// What `certorch plan` reports for one certificate.
#[derive(Debug, serde::Serialize)]
pub struct PlanItem {
    pub host: String,
    pub cert: String,
    /// `issue`, `defer` (the CA's rate limits leave no room now), `none` or `failed`.
    pub action: &'static str,
    pub reason: Option<String>,
    pub names: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub renew_at: Option<time::OffsetDateTime>,
    pub error: Option<String>,
    /// The failure's stable kind, for `failed`.
    pub kind: Option<crate::problem::Kind>,
    pub hint: Option<String>,
    /// For `defer`: the first time the limit leaves room, and the limit.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_slot: Option<time::OffsetDateTime>,
    pub limit: Option<&'static str>,
}

/// How many due certificates go at one time: `at` null for now.
#[derive(Debug, serde::Serialize)]
pub struct Batch {
    #[serde(with = "time::serde::rfc3339::option")]
    pub at: Option<time::OffsetDateTime>,
    pub certificates: usize,
}

/// What a run would do, and the rate limits it would meet.
#[derive(Debug, serde::Serialize)]
pub struct PlanReport {
    pub items: Vec<PlanItem>,
    /// When the due certificates would be ordered, within the CA's rate limits.
    pub schedule: Vec<Batch>,
    pub limits: Vec<crate::plan::forecast::LimitWarning>,
    pub warnings: Vec<String>,
}

impl crate::report::Render for PlanReport {
    fn text(
        &self,
        out: &mut dyn std::io::Write,
        err: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        for i in &self.items {
            match i.action {
                "issue" => writeln!(
                    out,
                    "{}/{}: would issue ({})",
                    i.host,
                    i.cert,
                    i.reason.as_deref().unwrap_or("")
                )?,
                "defer" => writeln!(
                    out,
                    "{}/{}: would defer to {} ({}; {})",
                    i.host,
                    i.cert,
                    i.next_slot.map(crate::state::fmt_time).unwrap_or_default(),
                    i.reason.as_deref().unwrap_or(""),
                    i.limit.unwrap_or("")
                )?,
                "none" => writeln!(
                    out,
                    "{}/{}: nothing to do until {}",
                    i.host,
                    i.cert,
                    i.renew_at.map(crate::state::fmt_time).unwrap_or_default()
                )?,
                _ => writeln!(
                    out,
                    "{}/{}: cannot tell: {}",
                    i.host,
                    i.cert,
                    i.error.as_deref().unwrap_or("")
                )?,
            }
        }
        if self.schedule.iter().any(|b| b.at.is_some()) {
            let parts: Vec<String> = self
                .schedule
                .iter()
                .map(|b| match b.at {
                    None => format!("{} now", b.certificates),
                    Some(t) => format!("{} at {}", b.certificates, crate::state::fmt_time(t)),
                })
                .collect();
            writeln!(out, "schedule: {}", parts.join(", "))?;
        }
        for w in &self.limits {
            writeln!(err, "warning: rate limit `{}`: {}", w.limit, w.detail)?;
        }
        for w in &self.warnings {
            writeln!(err, "warning: {w}")?;
        }
        Ok(())
    }
}

/// The front of a run, touching nothing: hosts are read, the state is opened read-only, no
/// key, order or DNS record is made.
pub async fn plan(
    inv: &Inventory,
    targets: &[Target],
    state: &State,
    force: bool,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> PlanReport {
    use crate::plan::forecast::{self, History, Planned};
    let mut warnings = Vec::new();
    let control = match hosts::control_dir() {
        Ok(d) => d,
        Err(e) => {
            return PlanReport {
                items: Vec::new(),
                schedule: Vec::new(),
                limits: Vec::new(),
                warnings: vec![format!(
                    "cannot create a directory for SSH control sockets: {e}"
                )],
            };
        }
    };
    let account = acme::account::load(inv, state).await.unwrap_or_else(|e| {
        warnings.push(format!("{e}; renewal information (ARI) is not consulted"));
        None
    });
    let ctx = Ctx::new(inv, state, reporter, concurrency);
    let surveyed = survey::survey(&ctx, targets, account.as_ref(), control.path(), force).await;
    warnings.extend(surveyed.warnings.iter().cloned());
    let now = time::OffsetDateTime::now_utc();
    let (slots, unread) = schedule::slots(&ctx, &surveyed.due, now);
    warnings.extend(unread);
    let schedule = crate::plan::schedule::batches(&slots)
        .into_iter()
        .map(|(at, certificates)| Batch { at, certificates })
        .collect();
    let mut items = Vec::new();
    let mut planned = Vec::new();
    let mut shared_planned = std::collections::BTreeSet::new();
    for (d, slot) in surveyed.due.iter().zip(&slots) {
        let names: Vec<String> = d.item.spec.names.iter().map(|n| n.to_string()).collect();
        // A shared label is one order for all its members.
        if d.item.spec.shared.is_none() || shared_planned.insert(d.item.spec.label.clone()) {
            planned.push(Planned {
                names: names.clone(),
                exempt: matches!(d.reason, Reason::Ari { .. }),
            });
        }
        let (action, next_slot, limit) = match slot {
            Slot::Now => ("issue", None, None),
            Slot::At { at, limit } => ("defer", Some(*at), Some(*limit)),
        };
        items.push(PlanItem {
            next_slot,
            limit,
            kind: None,
            host: d.item.host.name.clone(),
            cert: d.item.spec.label.clone(),
            action,
            reason: Some(d.reason.to_string()),
            names,
            not_after: None,
            renew_at: None,
            error: None,
            hint: None,
        });
    }
    for o in &surveyed.done {
        items.push(match o {
            Outcome::Current {
                host,
                cert,
                not_after,
                renew_at,
            } => PlanItem {
                next_slot: None,
                limit: None,
                kind: None,
                host: host.clone(),
                cert: cert.clone(),
                action: "none",
                reason: None,
                names: Vec::new(),
                not_after: Some(*not_after),
                renew_at: Some(*renew_at),
                error: None,
                hint: None,
            },
            Outcome::Failed(f) => PlanItem {
                next_slot: None,
                limit: None,
                kind: Some(f.kind),
                host: f.host.clone(),
                cert: f.cert.clone(),
                action: "failed",
                reason: None,
                names: Vec::new(),
                not_after: None,
                renew_at: None,
                error: Some(f.error.clone()),
                hint: f.hint.clone(),
            },
            Outcome::Issued { .. } | Outcome::Deferred { .. } => continue,
        });
    }
    items.sort_by_key(|i| inv.position(&i.host, &i.cert));
    let names_of = |host: &str, label: &str| -> Vec<String> {
        inv.host(host)
            .and_then(|h| h.certs.iter().find(|c| c.label == label))
            .map(|c| c.names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    };
    fn read<T: Default>(r: Result<T, crate::state::Error>, warnings: &mut Vec<String>) -> T {
        r.unwrap_or_else(|e| {
            warnings.push(format!("the rate-limit forecast is incomplete: {e}"));
            T::default()
        })
    }
    let failed_1h = read(
        state.failed_validations_since(now - time::Duration::hours(1)),
        &mut warnings,
    );
    let history = History {
        failed_1h: failed_1h.iter().flat_map(|(h, l)| names_of(h, l)).collect(),
    };
    PlanReport {
        items,
        schedule,
        limits: forecast::forecast(&planned, &history),
        warnings,
    }
}
