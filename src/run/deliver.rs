//! Finalization and deployment as one pipeline: a host's certificates go into service as soon
//! as the last of them is finalized, instead of every host waiting for the slowest order of
//! the run. Hosts of shared-key labels are the exception: their members need the key staged
//! on the label's origin, copied before the origin commits it, so they are deployed together
//! once everything is finalized.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::{Ctx, Due, Issued, Ordered, deploy, finalize, shared};
use crate::report::{Outcome, ms_since};

/// What the pipeline did, with the time each half took. The halves overlap, so their sum can
/// exceed the step's wall time.
pub(crate) struct Delivered {
    pub outcomes: Vec<Outcome>,
    /// From the start until the last order was finalized.
    pub finalize_ms: u64,
    /// From the first host's deployment starting until the last one ended.
    pub deploy_ms: u64,
}

/// Finalizes `validated`, then deploys every host whose certificates are all in: those just
/// finalized, `ready` (finalized by an interrupted run, or issued without the CA), and the
/// members of shared labels in `waiting`, which take their origin's key and certificate.
pub(crate) async fn finalize_and_deploy<'a>(
    ctx: &Ctx<'_>,
    validated: Vec<Ordered<'a>>,
    ready: Vec<Issued<'a>>,
    waiting: Vec<Due<'a>>,
) -> Delivered {
    let started = Instant::now();
    // Held to the end: hosts with a waiting member, and the origins of those labels.
    let waiting_labels: BTreeSet<&str> =
        waiting.iter().map(|d| d.item.spec.label.as_str()).collect();
    let mut held: BTreeSet<String> = waiting.iter().map(|d| d.item.host.name.clone()).collect();
    let origins = validated
        .iter()
        .map(|o| o.keyed.item())
        .chain(ready.iter().map(|i| i.item()));
    for item in origins {
        if item.spec.shared.is_some() && waiting_labels.contains(item.spec.label.as_str()) {
            held.insert(item.host.name.clone());
        }
    }
    // Certificates each host still waits for, and those it has.
    let mut pending: BTreeMap<String, usize> = BTreeMap::new();
    for o in &validated {
        *pending.entry(o.keyed.item().host.name.clone()).or_default() += 1;
    }
    let mut bins: BTreeMap<String, Vec<Issued<'a>>> = BTreeMap::new();
    for i in ready {
        bins.entry(i.item().host.name.clone()).or_default().push(i);
    }
    let mut queue: VecDeque<Vec<Issued<'a>>> = VecDeque::new();
    let complete: Vec<String> = bins
        .keys()
        .filter(|h| !pending.contains_key(*h) && !held.contains(*h))
        .cloned()
        .collect();
    for h in complete {
        if let Some(certs) = bins.remove(&h) {
            queue.push_back(certs);
        }
    }

    let mut finalizing = futures::stream::iter(validated)
        .map(|o| {
            let host = o.keyed.item().host.name.clone();
            async move { (host, finalize::finalize(ctx, o).await) }
        })
        .buffer_unordered(ctx.concurrency.max(finalize::FINALIZE_PARALLEL));
    let mut finalizing_done = false;
    let mut finalize_ms = 0;
    let mut deploying = FuturesUnordered::new();
    let mut first_deploy: Option<Instant> = None;
    let mut outcomes = Vec::new();
    loop {
        while deploying.len() < ctx.concurrency
            && let Some(certs) = queue.pop_front()
        {
            first_deploy.get_or_insert_with(Instant::now);
            deploying.push(deploy::deploy_host(ctx, certs));
        }
        tokio::select! {
            next = finalizing.next(), if !finalizing_done => match next {
                Some((host, r)) => {
                    match r {
                        Ok(issued) => bins.entry(host.clone()).or_default().push(issued),
                        Err(failure) => ctx.fail(failure),
                    }
                    let left = pending.get_mut(&host).map(|n| {
                        *n -= 1;
                        *n
                    });
                    if left == Some(0) {
                        pending.remove(&host);
                        if !held.contains(&host)
                            && let Some(certs) = bins.remove(&host)
                        {
                            queue.push_back(certs);
                        }
                    }
                }
                None => {
                    finalizing_done = true;
                    finalize_ms = ms_since(started);
                }
            },
            Some(done) = deploying.next(), if !deploying.is_empty() => outcomes.extend(done),
            else => break,
        }
    }
    // Everything is finalized: the shared labels' members take their origin's key, and the
    // held hosts are deployed.
    let mut last: Vec<Issued<'a>> = bins.into_values().flatten().collect();
    if !waiting.is_empty() {
        let members = shared::fan_out(ctx, &last, waiting).await;
        last.extend(members);
    }
    if !last.is_empty() {
        first_deploy.get_or_insert_with(Instant::now);
        outcomes.extend(deploy::deploy_all(ctx, last).await);
    }
    Delivered {
        outcomes,
        finalize_ms,
        deploy_ms: first_deploy.map_or(0, ms_since),
    }
}
