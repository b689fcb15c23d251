//! Orders at the CA, each opened as soon as its key is made on the host: an interrupted run's
//! order is taken up again where the CA still holds it; otherwise a new one is opened, its
//! intent recorded before it is sent.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use instant_acme::Account;

use super::context::Routed;
use super::{Ctx, Keyed, Ordered, keys};
use crate::acme::{self, order::Resumed};
use crate::report::{Outcome, Stage};
use crate::state::Phase;

/// New orders in flight at once, at most. Creating an order is one quick request, so 200
/// orders still take about a second; more in flight buys nothing, weighs on the CA, and
/// deadlocked Pebble 2.4 (an authorization lock left held) in the benchmark.
const ORDER_PARALLEL: usize = 4;

/// The ACME account, registered now if there is none; without one, every routed certificate
/// fails before any key is made for it.
pub(crate) async fn account<'a>(
    ctx: &Ctx<'_>,
    account: Option<Account>,
    routed: Vec<Routed<'a>>,
) -> Option<(Account, Vec<Routed<'a>>)> {
    if let Some(a) = account {
        return Some((a, routed));
    }
    match acme::load_or_create(ctx.inv, ctx.state).await {
        Ok(a) => Some((a, routed)),
        Err(e) => {
            for r in routed {
                ctx.fail(r.due.item.fail(Stage::Order, &e));
            }
            None
        }
    }
}

/// Removes a staged key whose certificate will not come in this run.
pub(crate) async fn discard_key(ctx: &Ctx<'_>, k: &Keyed<'_>) {
    let item = k.item();
    item.discard(ctx, &[&item.spec.key]).await;
}

/// What [`key_and_open`] did: the ordered certificates, how many orders are new, and when
/// the last key was made.
pub(crate) struct Opened<'a> {
    pub ordered: Vec<Ordered<'a>>,
    pub new: usize,
    pub keys_done: Instant,
}

/// Makes every routed certificate's key and CSR on its host and opens its order as soon as
/// the key is there: the CA's requests overlap the other hosts' key generation. A
/// certificate's own order still follows its key (the lifecycle records the CSR first).
pub(crate) async fn key_and_open<'a>(
    ctx: &Ctx<'_>,
    account: &Account,
    routed: Vec<Routed<'a>>,
) -> Opened<'a> {
    let mut keying = futures::stream::iter(routed)
        .map(|r| keys::make_one(ctx, r))
        .buffer_unordered(ctx.concurrency);
    let mut keying_done = None;
    let mut keyed: VecDeque<Keyed<'a>> = VecDeque::new();
    let mut opening = FuturesUnordered::new();
    let mut ordered = Vec::new();
    loop {
        while opening.len() < ctx.concurrency.min(ORDER_PARALLEL)
            && let Some(k) = keyed.pop_front()
        {
            opening.push(open_keyed(ctx, account, k));
        }
        tokio::select! {
            next = keying.next(), if keying_done.is_none() => match next {
                Some(Ok(k)) => keyed.push_back(k),
                Some(Err(failure)) => ctx.fail(failure),
                None => keying_done = Some(Instant::now()),
            },
            Some(r) = opening.next(), if !opening.is_empty() => match r {
                Ok(o) => ordered.push(o),
                Err(failure) => ctx.fail(failure),
            },
            else => break,
        }
    }
    let new = ordered
        .iter()
        .filter(|o: &&Ordered| !o.open.resumed)
        .count();
    Opened {
        ordered,
        new,
        keys_done: keying_done.unwrap_or_else(Instant::now),
    }
}

/// Takes up or opens the order of one keyed certificate; a staged key whose order will not
/// come is removed.
async fn open_keyed<'a>(
    ctx: &Ctx<'_>,
    account: &Account,
    k: Keyed<'a>,
) -> Result<Ordered<'a>, Outcome> {
    match open(ctx, account, &k).await {
        Ok(open) => Ok(Ordered { keyed: k, open }),
        // A validated order the CA did not answer about is taken up by the next run, with
        // this key.
        Err(Outcome::Failed(f))
            if super::record::keeps_in_flight(f.kind, k.due.resume.as_ref()) =>
        {
            Err(Outcome::Failed(f))
        }
        Err(failure) => {
            discard_key(ctx, &k).await;
            Err(failure)
        }
    }
}

async fn open(ctx: &Ctx<'_>, account: &Account, k: &Keyed<'_>) -> Result<acme::OpenOrder, Outcome> {
    let item = k.item();
    let spec = item.spec;
    let directory = ctx.directory();
    item.stage(ctx.reporter, Stage::Order);
    let url = k.due.resume.as_ref().and_then(|l| l.order_url.clone());
    if let Some(url) = url {
        match acme::order::resume(account, directory, &url, spec.challenge, k.key_resumed).await {
            Ok(Resumed::Usable(open)) => {
                ctx.info(&format!(
                    "resume: {}/{}: the CA still holds order {url}; taking it up",
                    item.host.name, spec.label
                ));
                return Ok(*open);
            }
            Ok(Resumed::Spent) => ctx.info(&format!(
                "resume: {}/{}: order {url} is valid, but its key is gone from the host: ordering again",
                item.host.name, spec.label
            )),
            Ok(Resumed::Gone(why)) => ctx.info(&format!(
                "resume: {}/{}: {why}: ordering again",
                item.host.name, spec.label
            )),
            Err(e) => return Err(item.fail(Stage::Order, &e)),
        }
        if let Err(e) = ctx.state.set_order_status(&url, "abandoned") {
            return Err(item.fail(Stage::Order, &e));
        }
    }
    // The intent is recorded before the request: a run killed while it is in flight is known
    // to have perhaps opened an order.
    item.phase(ctx.state, Phase::Ordering)
        .map_err(|e| item.fail(Stage::Order, &e))?;
    let ignored = &ctx.replaces_ignored;
    let mut replaces = k.due.replaces.clone().filter(|_| !ignored.load(Relaxed));
    let opened = loop {
        let open = acme::order::open(
            account,
            directory,
            &spec.names,
            replaces.clone(),
            spec.profile.as_deref(),
            spec.challenge,
        )
        .await;
        match open {
            // The CA made an order of it but not a renewal (RFC 9773 §5): instant-acme keeps
            // no handle on that order, so it is left to expire; the renewal is ordered again
            // as a plain new order, once, and so is every later one of this run.
            Err(e @ acme::Error::ReplacesIgnored { .. }) if replaces.is_some() => {
                ignored.store(true, Relaxed);
                ctx.warn(format!(
                    "{}/{}: {e}; the order it created stays pending there and expires; ordered again without `replaces`, and the rest of this run orders so: this renewal counts against the CA's rate limits; hint: {}",
                    item.host.name,
                    spec.label,
                    e.hint().unwrap_or_default()
                ));
                replaces = None;
            }
            other => break other,
        }
    };
    let mut open = opened.map_err(|e| item.fail(Stage::Order, &e))?;
    // Recorded before any challenge is answered, so a killed run's order is taken up again;
    // with what it replaces, so the rate-limit budget does not count an exempt ARI renewal.
    let replaces = replaces.as_ref().map(|r| r.to_string());
    if let Err(e) = ctx
        .state
        .ordered(&item.host.name, &spec.label, &open.url, replaces.as_deref())
    {
        acme::order::abandon(&mut open.order).await;
        return Err(item.fail(Stage::Order, &e));
    }
    Ok(open)
}
