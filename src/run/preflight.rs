//! Before any key or order: every dns-01 name's `_acme-challenge` record must lead into the
//! signing zone, and the signing zone must take our updates (a probe record added and removed).

use std::collections::BTreeMap;

use futures::StreamExt;

use super::context::Routed;
use super::{Ctx, Due};
use crate::dns::signing::SigningZone;
use crate::inventory::ChallengeKind;
use crate::problem::{Kind, Plain};
use crate::report::Stage;

/// Certificates that need no DNS (self-signed, internal, http-01).
pub(crate) fn unrouted(due: Vec<Due<'_>>) -> Vec<Routed<'_>> {
    due.into_iter()
        .map(|due| Routed {
            due,
            targets: BTreeMap::new(),
        })
        .collect()
}

/// Routes every dns-01 name; failures go to the context.
pub(crate) async fn route<'a>(
    ctx: &Ctx<'_>,
    dns: Option<&SigningZone>,
    due: Vec<Due<'a>>,
) -> Vec<Routed<'a>> {
    let (dns_due, other): (Vec<Due>, Vec<Due>) = due
        .into_iter()
        .partition(|d| d.item.spec.challenge == ChallengeKind::Dns01);
    let mut routed = unrouted(other);
    if dns_due.is_empty() {
        return routed;
    }
    let Some(dns) = dns else {
        let problem = Plain::new(
            Kind::DnsConfig,
            "the signing zone is not usable (see the warning above)",
            "fix the dns section of the inventory; certorch check shows what is wrong",
        );
        for d in dns_due {
            ctx.fail(d.item.fail(Stage::Preflight, &problem));
        }
        return routed;
    };
    if let Err(e) = dns.probe().await {
        for d in dns_due {
            ctx.fail(d.item.fail(Stage::Preflight, &e));
        }
        return routed;
    }
    let results: Vec<Result<Routed, crate::report::Outcome>> = futures::stream::iter(dns_due)
        .map(|d| async move {
            d.item.stage(ctx.reporter, Stage::Preflight);
            let mut targets = BTreeMap::new();
            let mut problems = Vec::new();
            for name in &d.item.spec.names {
                let base = name.as_str().trim_start_matches("*.").to_string();
                if targets.contains_key(&base) {
                    continue;
                }
                match dns.route(name).await {
                    Ok(t) => {
                        targets.insert(base, t);
                    }
                    Err(e) => problems.push(e),
                }
            }
            match problems.as_slice() {
                [] => Ok(Routed { due: d, targets }),
                [one] => Err(d.item.fail(Stage::Preflight, one)),
                [first, ..] => {
                    // Every name's problem in one failure, each with its fix.
                    use crate::problem::Problem;
                    let error = problems
                        .iter()
                        .map(|p| p.to_string())
                        .collect::<Vec<_>>()
                        .join("; ");
                    let hint = distinct(problems.iter().filter_map(|p| p.hint())).join("; ");
                    Err(d.item.fail(
                        Stage::Preflight,
                        &Plain {
                            kind: first.kind(),
                            message: error,
                            hint: Some(hint),
                        },
                    ))
                }
            }
        })
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    routed.extend(super::context::keep_ok(ctx, results));
    routed
}

/// The CA's CAA identities, asked of the directory only once a CAA set restricts some name:
/// a run whose names have no CAA records never reads the directory for this.
pub(crate) struct Identities<'i> {
    inv: &'i crate::inventory::Inventory,
    got: tokio::sync::OnceCell<Result<Vec<String>, crate::acme::Error>>,
}

impl<'i> Identities<'i> {
    pub fn new(inv: &'i crate::inventory::Inventory) -> Self {
        Identities {
            inv,
            got: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn get(&self) -> &Result<Vec<String>, crate::acme::Error> {
        self.got
            .get_or_init(|| crate::acme::directory::caa_identities(self.inv))
            .await
    }
}

/// Whether the CA may issue for each of `names` under CAA (RFC 8659): one problem per name it
/// may not issue for, or whose lookup failed.
pub(crate) async fn caa_problems(
    resolver: std::net::SocketAddr,
    identities: &Identities<'_>,
    names: &[crate::inventory::DnsName],
) -> Vec<Plain> {
    use crate::dns::caa;
    let mut problems: Vec<Plain> = Vec::new();
    for name in names {
        let (owner, set) = match caa::lookup_for(resolver, name).await {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                problems.push(plain(&e));
                continue;
            }
        };
        match identities.get().await {
            Ok(ids) => {
                if let Err(e) = caa::verdict(name, &owner, &set, ids) {
                    problems.push(plain(&e));
                }
            }
            Err(e) => problems.push(Plain {
                kind: crate::problem::Problem::kind(e),
                message: format!(
                    "{name} has CAA records at {owner}, and the CA's identities could not be read: {e}"
                ),
                hint: crate::problem::Problem::hint(e),
            }),
        }
    }
    problems
}

/// Drops every certificate the CA may not issue for under CAA, before any key or order.
pub(crate) async fn caa<'a>(ctx: &Ctx<'_>, routed: Vec<Routed<'a>>) -> Vec<Routed<'a>> {
    let Some(resolver) = ctx
        .inv
        .dns
        .resolver
        .or_else(crate::dns::lookup::system_resolver)
    else {
        // No resolver to ask: the CA checks CAA itself and refuses with its own detail.
        return routed;
    };
    let identities = Identities::new(ctx.inv);
    let identities = &identities;
    let results: Vec<Result<Routed, crate::report::Outcome>> = futures::stream::iter(routed)
        .map(|r| async move {
            let problems = caa_problems(resolver, identities, &r.due.item.spec.names).await;
            match one_problem(&problems) {
                None => Ok(r),
                Some(p) => Err(r.due.item.fail(Stage::Preflight, &p)),
            }
        })
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    super::context::keep_ok(ctx, results)
}

fn plain(p: &dyn crate::problem::Problem) -> Plain {
    Plain {
        kind: p.kind(),
        message: p.to_string(),
        hint: p.hint(),
    }
}

/// Several names' problems as one: the first one's kind, every message and every fix.
fn one_problem(problems: &[Plain]) -> Option<Plain> {
    let first = problems.first()?;
    if problems.len() == 1 {
        return Some(first.clone());
    }
    Some(Plain {
        kind: first.kind,
        message: problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("; "),
        hint: Some(distinct(problems.iter().filter_map(|p| p.hint.clone())).join("; ")),
    })
}

/// Each hint once, in order: names that failed for one reason (the resolver down) share a fix.
fn distinct(hints: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for h in hints {
        if !out.contains(&h) {
            out.push(h);
        }
    }
    out
}
