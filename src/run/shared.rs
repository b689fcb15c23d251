//! Shared-key labels: one key and one certificate for several hosts (a load-balanced service
//! whose members must present the same certificate). The group renews together; the key is made
//! on the first member in inventory order that is due and reachable (the origin), one order is
//! opened with its CSR, and before deployment the staged key is copied from the origin to every
//! other member through the two SSH connections. The bytes pass through certorch's memory only
//! (wiped after use), never the bastion's disk.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::challenge::Routed;
use super::{Due, Issued, Keyed};
use crate::host::files::{self, FileSpec};
use crate::host::sh::Cmd;
use crate::plan::Reason;
use crate::report::{Outcome, Reporter, Stage};

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
            }),
            None => done.push(outcome),
        }
    }
    done
}

/// Gives every waiting member its origin's key and certificate.
pub(crate) async fn fan_out<'a>(
    issued: &mut Vec<Issued<'a>>,
    waiting: Vec<Due<'a>>,
    reporter: &dyn Reporter,
    concurrency: usize,
) -> Vec<Outcome> {
    use futures::StreamExt;
    let results: Vec<Result<Issued<'a>, Outcome>> = futures::stream::iter(waiting)
        .map(|d| {
            let origin = issued.iter().find(|i| {
                i.keyed.routed.due.item.spec.shared.is_some()
                    && i.keyed.routed.due.item.spec.label == d.item.spec.label
            });
            let copy = origin.map(|o| {
                (
                    o.keyed.routed.due.item.host.name.clone(),
                    o.keyed.routed.due.item.conn.clone(),
                    o.keyed.routed.due.item.spec.key.clone(),
                    o.keyed.csr.clone(),
                    o.order_url.clone(),
                    o.leaf.clone(),
                    o.chain.clone(),
                )
            });
            async move {
                let Some((from, conn, key, csr, order_url, leaf, chain)) = copy else {
                    let hint = Some(format!(
                        "the shared label {} got no certificate this run: see the error of its first member, fix it and run certorch again",
                        d.item.spec.label
                    ));
                    return Err(d.item.fail(
                        Stage::Key,
                        "the group's key and certificate were not made (the member that makes them failed)",
                        hint,
                    ));
                };
                d.item.stage(reporter, Stage::Key);
                if let Err((e, hint)) = copy_key(&from, conn.as_ref(), &key, &d).await {
                    return Err(d.item.fail(Stage::Key, e, Some(hint)));
                }
                Ok(Issued {
                    keyed: Keyed {
                        routed: Routed {
                            due: d,
                            targets: Default::default(),
                        },
                        csr,
                    },
                    order_url,
                    extra: Vec::new(),
                    leaf,
                    chain,
                })
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(i) => issued.push(i),
            Err(f) => failed.push(f),
        }
    }
    failed
}

/// Reads the origin's staged key and stages it on the member with the member's owner and mode.
async fn copy_key(
    from: &str,
    origin: &dyn crate::transport::Transport,
    key: &crate::inventory::RemotePath,
    to: &Due<'_>,
) -> Result<(), (String, String)> {
    let staged = crate::host::staged(key);
    let read = Cmd::new("cat").arg("--").arg(staged.clone());
    let out = origin.run(&read, None).await.map_err(|e| {
        (
            format!("reading the shared key on {from}: {e}"),
            e.hint().unwrap_or_default(),
        )
    })?;
    // Wiped when dropped, whatever happens next.
    let ok = out.success();
    let bytes = Zeroizing::new(out.stdout);
    if !ok || bytes.is_empty() {
        return Err((
            format!(
                "reading the shared key {staged} on {from} failed: {}",
                out.stderr.trim()
            ),
            format!("check that {from} still has {staged}; run certorch again"),
        ));
    }
    let spec = to.item.spec;
    let file = FileSpec {
        path: &spec.key,
        content: &bytes,
        mode: spec.key_mode,
        owner: spec.owner.as_ref(),
        group: spec.group.as_ref(),
    };
    files::stage(to.item.conn.as_ref(), &file)
        .await
        .map_err(|e| {
            (
                format!("copying the shared key from {from}: {e}"),
                e.hint().unwrap_or_default(),
            )
        })
}
