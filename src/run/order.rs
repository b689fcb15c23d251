//! Orders at the CA: an interrupted run's order is taken up again where the CA still holds it;
//! otherwise a new one is opened, its intent recorded before it is sent.

use futures::StreamExt;
use instant_acme::Account;

use super::{Ctx, Keyed, Ordered};
use crate::acme::{self, order::Resumed};
use crate::report::{Outcome, Stage};
use crate::state::Phase;

/// New orders in flight at once, at most. Creating an order is one quick request, so 200
/// orders still take about a second; more in flight buys nothing, weighs on the CA, and
/// deadlocked Pebble 2.4 (an authorization lock left held) in the benchmark.
const ORDER_PARALLEL: usize = 4;

/// The ACME account, registered now if there is none; without one, every keyed certificate
/// fails and its staged key is removed.
pub(crate) async fn account<'a>(
    ctx: &Ctx<'_>,
    account: Option<Account>,
    keyed: Vec<Keyed<'a>>,
) -> Option<(Account, Vec<Keyed<'a>>)> {
    if let Some(a) = account {
        return Some((a, keyed));
    }
    match acme::load_or_create(ctx.inv, ctx.state).await {
        Ok(a) => Some((a, keyed)),
        Err(e) => {
            for k in keyed {
                ctx.fail(k.item().fail(Stage::Order, &e));
                discard_key(ctx, &k).await;
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

/// Takes up or opens an order for every keyed certificate; returns them and how many orders
/// are new.
pub(crate) async fn open_all<'a>(
    ctx: &Ctx<'_>,
    account: &Account,
    keyed: Vec<Keyed<'a>>,
) -> (Vec<Ordered<'a>>, usize) {
    let results: Vec<Result<Ordered, Outcome>> = futures::stream::iter(keyed)
        .map(|k| async move {
            let r = open(ctx, account, &k).await;
            match r {
                Ok(open) => Ok(Ordered { keyed: k, open }),
                // A validated order the CA did not answer about is taken up by the next run,
                // with this key.
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
        })
        .buffer_unordered(ctx.concurrency.min(ORDER_PARALLEL))
        .collect()
        .await;
    let ordered = super::context::keep_ok(ctx, results);
    let new = ordered.iter().filter(|o| !o.open.resumed).count();
    (ordered, new)
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
    let mut open = acme::order::open(
        account,
        directory,
        &spec.names,
        k.due.replaces.clone(),
        spec.profile.as_deref(),
        spec.challenge,
    )
    .await
    .map_err(|e| item.fail(Stage::Order, &e))?;
    // Recorded before any challenge is answered, so a killed run's order is taken up again;
    // with what it replaces, so the rate-limit budget does not count an exempt ARI renewal.
    let replaces = k.due.replaces.as_ref().map(|r| r.to_string());
    if let Err(e) = ctx
        .state
        .ordered(&item.host.name, &spec.label, &open.url, replaces.as_deref())
    {
        acme::order::abandon(&mut open.order).await;
        return Err(item.fail(Stage::Order, &e));
    }
    Ok(open)
}
