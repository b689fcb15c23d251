//! Rate-limit-aware scheduling, the glue: the account's recent orders and issuance read from
//! the state, each due ACME certificate (a shared-key group as one) made a candidate, and the
//! decision of `plan::schedule` applied: what fits goes on, the rest is deferred. Used by
//! `run` and `plan`.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::{Ctx, Due};
use crate::inventory::Issuer;
use crate::limits::WEEK;
use crate::plan::Reason;
use crate::plan::schedule::{self, Candidate, Cost, History, Slot};
use crate::report::Outcome;

/// The slot of each due certificate (in `due`'s order), and what could not be read. Only
/// certificates ordered at the CA are scheduled: self-signed and internal ones always go now.
pub(crate) fn slots(
    ctx: &Ctx<'_>,
    due: &[Due<'_>],
    now: OffsetDateTime,
) -> (Vec<Slot>, Vec<String>) {
    // Whole seconds, as the state records times: a slot is never shown earlier than it is.
    let now = match now.nanosecond() {
        0 => now,
        n => now + time::Duration::nanoseconds(1_000_000_000 - i64::from(n)),
    };
    let limits = ctx.inv.acme.limits;
    let directory = ctx.directory();
    let mut warnings = Vec::new();
    // Unreadable history: this run's own orders are still scheduled within the budget.
    let orders = ctx
        .state
        .order_times_since(directory, now - limits.orders_window)
        .unwrap_or_else(|e| {
            warnings.push(format!(
                "{e}; the orders of the last {} are not counted against the CA's rate limit",
                crate::plan::human(limits.orders_window.unsigned_abs())
            ));
            Vec::new()
        });
    let issued = ctx
        .state
        .issued_since(directory, now - WEEK)
        .unwrap_or_else(|e| {
            warnings.push(format!(
                "{e}; the certificates of the last 7 days are not counted against the CA's rate limits"
            ));
            Vec::new()
        });
    let history = History { orders, issued };

    // One candidate per order, in inventory order (new ones go in that order): a shared-key
    // label is one order for all its members.
    let position = |d: &Due<'_>| ctx.inv.position(&d.item.host.name, &d.item.spec.label);
    let mut in_order: Vec<usize> = (0..due.len()).collect();
    in_order.sort_by_key(|&i| position(&due[i]));
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut group: BTreeMap<&str, usize> = BTreeMap::new();
    let mut which: Vec<Option<usize>> = vec![None; due.len()];
    for k in in_order {
        let d = &due[k];
        if d.item.spec.issuer != Issuer::Acme {
            continue;
        }
        let cost = match &d.reason {
            // An interrupted run's order is taken up; without one yet, it opens one now.
            Reason::Resumed { .. } if d.resume.as_ref().is_some_and(|l| l.order_url.is_some()) => {
                Cost::Free
            }
            Reason::Resumed { .. } => Cost::Committed,
            // Let's Encrypt exempts ARI renewals that name what they replace (DOMAIN.md).
            _ if d.replaces.is_some() => Cost::Free,
            _ => Cost::Counted,
        };
        let candidate = Candidate {
            names: d.item.names(),
            cost,
            not_after: d.not_after,
        };
        let shared = d
            .item
            .spec
            .shared
            .is_some()
            .then_some(d.item.spec.label.as_str());
        let i = match shared.and_then(|l| group.get(l).copied()) {
            Some(i) => {
                // The group goes as its most urgent and most committed member.
                let c = &mut candidates[i];
                c.not_after = match (c.not_after, candidate.not_after) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                if candidate.cost != Cost::Counted {
                    c.cost = candidate.cost;
                }
                i
            }
            None => {
                candidates.push(candidate);
                if let Some(l) = shared {
                    group.insert(l, candidates.len() - 1);
                }
                candidates.len() - 1
            }
        };
        which[k] = Some(i);
    }
    let decided = schedule::schedule(&candidates, &history, &limits, now);
    let slots = which
        .into_iter()
        .map(|w| w.map_or(Slot::Now, |i| decided[i]))
        .collect();
    (slots, warnings)
}

/// Splits a run's due certificates into those ordered now and those deferred.
pub(crate) fn split<'a>(ctx: &Ctx<'_>, due: Vec<Due<'a>>) -> (Vec<Due<'a>>, Vec<Outcome>) {
    let (slots, warnings) = slots(ctx, &due, OffsetDateTime::now_utc());
    for w in warnings {
        ctx.warn(w);
    }
    let mut now = Vec::new();
    let mut deferred = Vec::new();
    for (d, slot) in due.into_iter().zip(slots) {
        match slot {
            Slot::Now => now.push(d),
            Slot::At { at, limit } => deferred.push(Outcome::Deferred {
                host: d.item.host.name.clone(),
                cert: d.item.spec.label.clone(),
                reason: d.reason.to_string(),
                names: d.item.names(),
                next_slot: at,
                limit: limit.to_string(),
                requested: matches!(d.reason, Reason::Forced),
            }),
        }
    }
    if !deferred.is_empty() {
        ctx.info(&format!(
            "{} certificate(s) deferred by the CA's rate limits",
            deferred.len()
        ));
    }
    (now, deferred)
}
