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
                    let hint = problems
                        .iter()
                        .filter_map(|p| p.hint())
                        .collect::<Vec<_>>()
                        .join("; ");
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
