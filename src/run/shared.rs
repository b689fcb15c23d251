//! Shared-key labels: one key and one certificate for several hosts (a load-balanced service
//! whose members must present the same certificate). The group renews together; the key is made
//! on the first member in inventory order that is due and reachable (the origin), one order is
//! opened with its CSR, and before deployment the staged key is copied from the origin to every
//! other member through the two SSH connections. The bytes pass through certorch's memory only
//! (wiped after use), never the bastion's disk.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::{Ctx, Due, Issued, Keyed};
use crate::host::files::{self, FileSpec};
use crate::plan::Reason;
use crate::problem::Kind;
use crate::report::{Outcome, Stage};

/// Splits due certificates into those that make their own key (ordinary ones and the origin
/// of each shared label) and the other members of shared labels, which wait for the origin.
pub(crate) fn split(due: Vec<Due<'_>>) -> (Vec<Due<'_>>, Vec<Due<'_>>) {
    let mut origins: BTreeMap<String, String> = BTreeMap::new();
    let mut own = Vec::new();
    let mut waiting = Vec::new();
    // Members come in inventory order, so the first one seen is the first member.
    let mut sorted: Vec<Due> = due;
    sorted.sort_by_key(|d| {
        d.item.spec.shared.as_ref().map_or(0, |m| {
            m.iter()
                .position(|h| h == &d.item.host.name)
                .unwrap_or(usize::MAX)
        })
    });
    for d in sorted {
        if d.item.spec.shared.is_none() {
            own.push(d);
            continue;
        }
        if origins.contains_key(&d.item.spec.label) {
            waiting.push(d);
        } else {
            origins.insert(d.item.spec.label.clone(), d.item.host.name.clone());
            own.push(d);
        }
    }
    (own, waiting)
}

/// Members that were current, with the (fingerprint, serial) each serves: a group whose members
/// serve different certificates is due on all of them; the rest stay current.
#[allow(clippy::type_complexity)]
pub(crate) fn differing<'a>(
    due: &mut Vec<Due<'a>>,
    current: Vec<(super::Item<'a>, Outcome, (String, String))>,
) -> Vec<(super::Item<'a>, Outcome)> {
    let members: Vec<crate::plan::shared::Member> = current
        .iter()
        .map(
            |(i, _, (fingerprint, serial))| crate::plan::shared::Member {
                label: &i.spec.label,
                position: i.spec.shared.as_ref().map_or(usize::MAX, |hosts| {
                    hosts
                        .iter()
                        .position(|h| h == &i.host.name)
                        .unwrap_or(usize::MAX)
                }),
                host: &i.host.name,
                fingerprint,
                serial,
            },
        )
        .collect();
    let reasons = crate::plan::shared::differing_groups(&members);
    let mut rest = Vec::new();
    for (item, outcome, _) in current {
        match reasons.get(&item.spec.label) {
            Some(reason) => due.push(Due {
                item,
                reason: reason.clone(),
                replaces: None,
                resume: None,
                not_after: None,
            }),
            None => rest.push((item, outcome)),
        }
    }
    rest
}

/// Members that were current join a group that is due elsewhere: the group renews together.
pub(crate) fn join_current<'a>(
    due: &mut Vec<Due<'a>>,
    current: Vec<(super::Item<'a>, Outcome)>,
) -> Vec<Outcome> {
    let mut done = Vec::new();
    for (item, outcome) in current {
        let due_on = due
            .iter()
            .find(|d| d.item.spec.shared.is_some() && d.item.spec.label == item.spec.label)
            .map(|d| d.item.host.name.clone());
        match due_on {
            Some(host) => due.push(Due {
                item,
                reason: Reason::Shared { host },
                replaces: None,
                resume: None,
                not_after: None,
            }),
            None => done.push(outcome),
        }
    }
    done
}

/// Gives every waiting member its origin's key and certificate; failures go to the context.
pub(crate) async fn fan_out<'a>(
    ctx: &Ctx<'_>,
    issued: &[Issued<'a>],
    waiting: Vec<Due<'a>>,
) -> Vec<Issued<'a>> {
    let results: Vec<Result<Issued<'a>, Outcome>> = futures::stream::iter(waiting)
        .map(|d| {
            let origin = issued.iter().find(|i| {
                i.item().spec.shared.is_some() && i.item().spec.label == d.item.spec.label
            });
            let copy = origin.map(|o| {
                (
                    o.item().host.name.clone(),
                    o.item().conn.clone(),
                    o.item().spec.key.clone(),
                    o.keyed.csr.clone(),
                    o.order_url.clone(),
                    o.leaf.clone(),
                    o.chain.clone(),
                )
            });
            async move {
                let Some((from, conn, key, csr, order_url, leaf, chain)) = copy else {
                    return Err(d.item.fail_with(
                        Stage::Key,
                        Kind::GroupOriginFailed,
                        "the group's key and certificate were not made (the member that makes them failed)",
                        format!(
                            "the shared label {} got no certificate this run: see the error of its first member, fix it and run certorch again",
                            d.item.spec.label
                        ),
                    ));
                };
                d.item.stage(ctx.reporter, Stage::Key);
                let spec = d.item.spec;
                let copied = async {
                    let bytes = files::read_staged_key(conn.as_ref(), &key).await?;
                    let file = FileSpec {
                        path: &spec.key,
                        content: &bytes,
                        mode: spec.key_mode,
                        owner: spec.owner.as_ref(),
                        group: spec.group.as_ref(),
                    };
                    files::stage(d.item.conn.as_ref(), &file).await
                }
                .await;
                if let Err(e) = copied {
                    return Err(d.item.fail_with(
                        Stage::Key,
                        crate::problem::Problem::kind(&e),
                        format!("copying the shared key from {from}: {e}"),
                        crate::problem::Problem::hint(&e).unwrap_or_default(),
                    ));
                }
                Ok(Issued {
                    keyed: Keyed {
                        due: d,
                        csr,
                        key_resumed: false,
                        targets: Default::default(),
                    },
                    order_url,
                    extra: Vec::new(),
                    leaf,
                    chain,
                })
            }
        })
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    super::context::keep_ok(ctx, results)
}
