//! The CA validates every order's pending challenges. dns-01 goes in rounds (see
//! `dns::rounds`): per round, one wait for what resolvers may still cache, one publish, one
//! propagation wait on every authoritative server, the CA asked to look, one withdrawal. http-01
//! tokens go into each host's webroot. Orders whose every authorization is valid go on to
//! finalization; the others are abandoned at the CA, leaving nothing pending.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_proto::rr::Name;
use time::OffsetDateTime;

use super::{Ctx, Ordered};
use crate::acme;
use crate::dns::rounds::{self, Presented};
use crate::dns::signing::SigningZone;
use crate::dns::txt::{TxtRecord, TxtSet};
use crate::dns::{lookup, propagation};
use crate::host::webroot;
use crate::inventory::ChallengeKind;
use crate::limits;
use crate::problem::{Kind, Plain, Problem};
use crate::report::{Event, Outcome, RunSummary, Stage, ms_since};
use crate::state::{Phase, Presentation};

/// Orders validated at once, at least (`concurrency` when larger). Validation is mostly
/// waiting on the CA, a few small requests per order.
const VALIDATE_PARALLEL: usize = 64;

/// A resolver's cache may expire a little after the TTL it was given (Unbound counts in whole
/// seconds from a clock it updates per event, and the CA's lookup may come a moment after the
/// time recorded): this much is added. Seen too short at 1 s in the test bed.
const CACHE_MARGIN: Duration = Duration::from_secs(3);

/// Validates every order; returns those whose authorizations are all valid.
pub(crate) async fn validate<'a>(
    ctx: &Ctx<'_>,
    dns: Option<&SigningZone>,
    ordered: Vec<Ordered<'a>>,
    summary: &mut RunSummary,
) -> Vec<Ordered<'a>> {
    let (dns_orders, other): (Vec<Ordered>, Vec<Ordered>) = ordered.into_iter().partition(|o| {
        o.keyed.item().spec.challenge == ChallengeKind::Dns01 && !o.open.challenges.is_empty()
    });
    let t = Instant::now();
    let mut ready: Vec<Ordered> = futures::stream::iter(other)
        .map(|o| http(ctx, o))
        .buffer_unordered(ctx.concurrency.max(VALIDATE_PARALLEL))
        .filter_map(|r| async move {
            match r {
                Ok(o) => Some(o),
                Err(f) => {
                    ctx.fail(f);
                    None
                }
            }
        })
        .collect()
        .await;
    summary.timings.validate_ms += ms_since(t);
    if dns_orders.is_empty() {
        return ready;
    }
    let Some(dns) = dns else {
        // Preflight fails dns-01 certificates without a signing zone; none get here.
        for o in dns_orders {
            ctx.fail(o.keyed.item().fail_with(
                Stage::Publish,
                Kind::DnsConfig,
                "no signing zone to publish in",
                "fix the dns section of the inventory",
            ));
        }
        return ready;
    };
    ready.extend(in_rounds(ctx, dns, dns_orders, summary).await);
    ready
}

/// http-01 (or an order with nothing pending): tokens in the webroot, the CA asked, tokens
/// removed.
async fn http<'a>(ctx: &Ctx<'_>, mut o: Ordered<'a>) -> Result<Ordered<'a>, Outcome> {
    let identifiers: Vec<String> = o
        .open
        .challenges
        .iter()
        .map(|c| c.identifier.clone())
        .collect();
    if identifiers.is_empty() {
        return Ok(o);
    }
    let item = o.keyed.item();
    item.stage(ctx.reporter, Stage::Validate);
    let spec = item.spec;
    let tokens: Vec<(String, String)> = o
        .open
        .challenges
        .iter()
        .map(|c| (c.token.clone(), c.key_authorization.clone()))
        .collect();
    let r: Result<(), Outcome> = async {
        if let Some(webroot) = &spec.webroot {
            webroot::place(item.conn.as_ref(), webroot, &tokens)
                .await
                .map_err(|e| item.fail(Stage::Validate, &e))?;
        }
        acme::order::validate(
            &mut o.open.order,
            ctx.directory(),
            spec.challenge,
            &identifiers,
        )
        .await
        .map_err(|e| item.fail(Stage::Validate, &e))
    }
    .await;
    if let Some(webroot) = &spec.webroot {
        let names: Vec<String> = tokens.iter().map(|(t, _)| t.clone()).collect();
        if let Err(e) = webroot::remove(item.conn.as_ref(), webroot, &names).await {
            ctx.warn(format!(
                "{}/{}: {e}; hint: {}",
                item.host.name,
                spec.label,
                e.hint().unwrap_or_default()
            ));
        }
    }
    match r {
        Ok(()) => Ok(o),
        Err(f) => {
            give_up(ctx, &mut o).await;
            Err(f)
        }
    }
}

/// One value of one order to present in DNS.
struct Wanted {
    order: usize,
    identifier: String,
    presented: Presented,
}

/// dns-01 in rounds.
async fn in_rounds<'a>(
    ctx: &Ctx<'_>,
    dns: &SigningZone,
    orders: Vec<Ordered<'a>>,
    summary: &mut RunSummary,
) -> Vec<Ordered<'a>> {
    let mut wanted = Vec::new();
    for (i, o) in orders.iter().enumerate() {
        for ch in &o.open.challenges {
            let base = ch.identifier.trim_start_matches("*.");
            // Preflight routed every name of the order; an identifier the CA added would be a
            // CA bug, and publishing nothing for it makes that order fail validation visibly.
            let (Some(target), Ok(query)) = (
                o.keyed.targets.get(base),
                Name::from_ascii(format!("_acme-challenge.{base}.")),
            ) else {
                continue;
            };
            wanted.push(Wanted {
                order: i,
                identifier: ch.identifier.clone(),
                presented: Presented {
                    target: target.clone(),
                    query,
                    value: ch.value.clone(),
                },
            });
        }
    }
    let values: Vec<Presented> = wanted.iter().map(|w| w.presented.clone()).collect();
    let rounds = rounds::split(&values, ctx.inv.dns.max_rrset_bytes);
    if rounds.len() > 1 {
        ctx.info(&format!(
            "validation in {} rounds: names sharing a CNAME target keep each TXT answer within {} bytes (dns.max_rrset_bytes)",
            rounds.len(),
            ctx.inv.dns.max_rrset_bytes
        ));
    }
    let mut slots: Vec<Option<Ordered>> = orders.into_iter().map(Some).collect();
    for round in rounds {
        let in_round = |w: &&Wanted| {
            round
                .iter()
                .any(|p| p.target == w.presented.target && p.value == w.presented.value)
        };
        // Each order of the round with the identifiers it answers in it.
        let mut members: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for w in wanted.iter().filter(in_round) {
            if slots[w.order].is_some() {
                members
                    .entry(w.order)
                    .or_default()
                    .push(w.identifier.clone());
            }
        }
        if members.is_empty() {
            continue;
        }
        let (indices, mut taken): (Vec<usize>, Vec<(Ordered, Vec<String>)>) = members
            .into_iter()
            .filter_map(|(i, ids)| slots[i].take().map(|o| (i, (o, ids))))
            .unzip();
        // Only the values of orders still alive in this round.
        let mut set = TxtSet::new(dns.ttl);
        for w in wanted.iter().filter(in_round) {
            if indices.contains(&w.order) {
                set.insert(TxtRecord {
                    zone: dns.zone().clone(),
                    name: w.presented.target.clone(),
                    value: w.presented.value.clone(),
                });
            }
        }
        let survivors = if set.is_empty() {
            taken.iter().map(|(o, _)| o.open.url.clone()).collect()
        } else {
            one_round(ctx, dns, &mut taken, &set, summary).await
        };
        for (i, (mut o, _)) in indices.into_iter().zip(taken) {
            if survivors.contains(&o.open.url) {
                slots[i] = Some(o);
            } else {
                give_up(ctx, &mut o).await;
            }
        }
    }
    slots.into_iter().flatten().collect()
}

/// One round: wait out caches, publish, wait for propagation, have the CA look, withdraw.
/// Returns the URLs of the orders whose authorizations of this round are valid; failed ones
/// are reported to the context.
async fn one_round(
    ctx: &Ctx<'_>,
    dns: &SigningZone,
    taken: &mut [(Ordered<'_>, Vec<String>)],
    set: &TxtSet,
    summary: &mut RunSummary,
) -> BTreeSet<String> {
    let mut ok: BTreeSet<String> = taken.iter().map(|(o, _)| o.open.url.clone()).collect();
    let by_name = values_by_name(set);

    // 1. A value new at a name the CA looked at within the TTL would meet the cached RRset.
    let t = Instant::now();
    let wait = match cache_wait(ctx, &by_name) {
        Ok(w) => w,
        Err(e) => {
            fail_all(ctx, taken, &mut ok, Stage::Publish, &e);
            return ok;
        }
    };
    if let Some((wait, name)) = wait {
        for (o, _) in taken.iter() {
            o.keyed.item().stage(ctx.reporter, Stage::Wait);
        }
        ctx.info(&format!(
            "waiting {}s before presenting new values at {name}: the CA's resolver may still cache the values it saw there (TTL {}s)",
            wait.as_secs(),
            dns.ttl
        ));
        tokio::time::sleep(wait).await;
    }
    summary.timings.wait_ms += ms_since(t);

    // 2. Publish, recorded before the update is sent: a run killed after it is repaired.
    let t = Instant::now();
    for (o, _) in taken.iter() {
        o.keyed.item().stage(ctx.reporter, Stage::Publish);
    }
    let rows: Vec<(String, String, String)> = set
        .iter()
        .map(|r| (r.zone.to_string(), r.name.to_string(), r.value.clone()))
        .collect();
    let ids = match ctx.state.record_txt(&dns.describe, &rows, set.ttl) {
        Ok(ids) => ids,
        Err(e) => {
            fail_all(ctx, taken, &mut ok, Stage::Publish, &e);
            return ok;
        }
    };
    let (set, ids, by_name) = match dns.publish(set).await {
        Ok(()) => (set.clone(), ids, by_name),
        // The server refuses part of the batch (an update-policy that leaves some names
        // out): one update per order finds whose, and the others go on.
        Err(e) if e.kind() == Kind::DnsUpdateRefused && taken.len() > 1 => {
            let (published, ids) = publish_apart(ctx, dns, taken, &mut ok, set, &ids).await;
            if published.is_empty() {
                return ok;
            }
            let by_name = values_by_name(&published);
            (published, ids, by_name)
        }
        Err(e) => {
            fail_all(ctx, taken, &mut ok, Stage::Publish, &e);
            // A partial update is possible over several messages; withdraw is idempotent.
            withdraw(ctx, dns, set, &ids, summary).await;
            return ok;
        }
    };
    let set = &set;
    for (o, _) in taken.iter() {
        if !ok.contains(&o.open.url) {
            continue;
        }
        if let Err(e) = o.keyed.item().phase(ctx.state, Phase::Published) {
            ok.remove(&o.open.url);
            ctx.fail(o.keyed.item().fail(Stage::Publish, &e));
        }
    }
    summary.timings.publish_ms += ms_since(t);

    // 3. Every authoritative server serves every value.
    let t = Instant::now();
    for (o, _) in taken.iter() {
        o.keyed.item().stage(ctx.reporter, Stage::Wait);
    }
    let waited = wait_propagation(ctx, dns, set).await;
    summary.timings.wait_ms += ms_since(t);
    if let Err(e) = waited {
        fail_all(ctx, taken, &mut ok, Stage::Wait, &e);
        withdraw(ctx, dns, set, &ids, summary).await;
        return ok;
    }

    // 4. The CA looks; what it may cache is recorded first (and again when it is done).
    let t = Instant::now();
    if let Err(e) = record_presented(ctx, &by_name, dns.ttl) {
        fail_all(ctx, taken, &mut ok, Stage::Validate, &e);
        withdraw(ctx, dns, set, &ids, summary).await;
        return ok;
    }
    let asking = &ok;
    let results: Vec<(String, Result<(), acme::Error>)> = futures::stream::iter(
        taken
            .iter_mut()
            .filter(|(o, _)| asking.contains(&o.open.url)),
    )
    .map(|(o, identifiers)| async move {
        o.keyed.item().stage(ctx.reporter, Stage::Validate);
        let spec = o.keyed.item().spec;
        let r = acme::order::validate(
            &mut o.open.order,
            ctx.directory(),
            spec.challenge,
            identifiers,
        )
        .await;
        (o.open.url.clone(), r)
    })
    .buffer_unordered(ctx.concurrency.max(VALIDATE_PARALLEL))
    .collect()
    .await;
    let recorded = record_presented(ctx, &by_name, dns.ttl);
    summary.timings.validate_ms += ms_since(t);
    for (url, r) in results {
        let Some((o, _)) = taken.iter().find(|(o, _)| o.open.url == url) else {
            continue;
        };
        let item = o.keyed.item();
        match r {
            Ok(()) => {
                if let Err(e) = &recorded {
                    ok.remove(&url);
                    ctx.fail(item.fail(Stage::Validate, e));
                }
            }
            Err(e) => {
                ok.remove(&url);
                let mut failure = Plain {
                    kind: e.kind(),
                    message: format!("{e} (order {url})"),
                    hint: e.hint(),
                };
                if e.is_validation_failure() {
                    failure.hint = Some(served_hint(dns, o, failure.hint).await);
                }
                ctx.fail(item.fail(Stage::Validate, &failure));
            }
        }
    }

    // 5. Withdrawn whatever happened.
    withdraw(ctx, dns, set, &ids, summary).await;
    ok
}

/// Publishes each order's records of `set` in an update of its own, after the server refused
/// the whole batch: orders whose update is refused fail, the others' records are returned with
/// their state ids. Records never published are forgotten by the state.
async fn publish_apart(
    ctx: &Ctx<'_>,
    dns: &SigningZone,
    taken: &[(Ordered<'_>, Vec<String>)],
    ok: &mut BTreeSet<String>,
    set: &TxtSet,
    ids: &[i64],
) -> (TxtSet, Vec<i64>) {
    let mut published = TxtSet::new(set.ttl);
    for (o, identifiers) in taken {
        let mut mine = TxtSet::new(set.ttl);
        for ch in o
            .open
            .challenges
            .iter()
            .filter(|c| identifiers.contains(&c.identifier))
        {
            let Some(target) = o.keyed.targets.get(ch.identifier.trim_start_matches("*.")) else {
                continue;
            };
            for r in set
                .iter()
                .filter(|r| &r.name == target && r.value == ch.value)
            {
                mine.insert(r.clone());
            }
        }
        match dns.publish(&mine).await {
            Ok(()) => {
                for r in mine.iter() {
                    published.insert(r.clone());
                }
            }
            Err(e) => {
                if ok.remove(&o.open.url) {
                    ctx.fail(o.keyed.item().fail(Stage::Publish, &e));
                }
            }
        }
    }
    let mut kept = Vec::new();
    let mut never = Vec::new();
    for (r, id) in set.iter().zip(ids) {
        if published.iter().any(|p| p == r) {
            kept.push(*id);
        } else {
            never.push(*id);
        }
    }
    if let Err(e) = ctx.state.remove_txt(&never) {
        ctx.warn(format!(
            "{} TXT record(s) the server refused stay recorded ({e}): the next run tries to withdraw them, harmlessly",
            never.len()
        ));
    }
    (published, kept)
}

/// The values of `set` per owner name.
fn values_by_name(set: &TxtSet) -> BTreeMap<Name, Vec<String>> {
    let mut m: BTreeMap<Name, Vec<String>> = BTreeMap::new();
    for r in set.iter() {
        m.entry(r.name.clone()).or_default().push(r.value.clone());
    }
    m
}

/// The longest a name of this round must wait until values the CA may have cached there have
/// expired, with that name.
fn cache_wait(
    ctx: &Ctx<'_>,
    by_name: &BTreeMap<Name, Vec<String>>,
) -> Result<Option<(Duration, Name)>, crate::state::Error> {
    let now = OffsetDateTime::now_utc();
    let mut longest: Option<(Duration, Name)> = None;
    for (name, values) in by_name {
        let seen = ctx.state.presentation(&name.to_string())?;
        if let Some(w) = wait_for(seen.as_ref(), values, now)
            && longest.as_ref().is_none_or(|(l, _)| w > *l)
        {
            longest = Some((w, name.clone()));
        }
    }
    Ok(longest)
}

/// How long to wait before presenting `values` at a name where `seen` was presented: nothing
/// when the CA never looked within the TTL, or when every value is among those it may have
/// cached (a resumed order answers again with the same values).
fn wait_for(
    seen: Option<&Presentation>,
    values: &[String],
    now: OffsetDateTime,
) -> Option<Duration> {
    let seen = seen?;
    if values.iter().all(|v| seen.values.contains(v)) {
        return None;
    }
    // The margin counts from the TTL's end, whether or not that end has passed: a resolver
    // may still serve the old set a moment after it.
    let expires = seen.asked_at + time::Duration::seconds(i64::from(seen.ttl)) + CACHE_MARGIN;
    let left = expires - now;
    (left > time::Duration::ZERO).then(|| left.unsigned_abs())
}

/// Records, for every name of the round, the values the CA may now cache there.
fn record_presented(
    ctx: &Ctx<'_>,
    by_name: &BTreeMap<Name, Vec<String>>,
    ttl: u32,
) -> Result<(), crate::state::Error> {
    ctx.state.batch(|| {
        for (name, values) in by_name {
            ctx.state.presented(&name.to_string(), values, ttl)?;
        }
        Ok(())
    })
}

/// For a wrong or missing value: what the resolver serves at the order's names, and for how
/// much longer.
async fn served_hint(dns: &SigningZone, o: &Ordered<'_>, hint: Option<String>) -> String {
    let mut parts: Vec<String> = hint.into_iter().collect();
    let targets: BTreeSet<&Name> = o.keyed.targets.values().collect();
    // Asked at once: with a name server down, each question may take the lookup timeout.
    let answers = futures::future::join_all(
        targets
            .iter()
            .map(|t| async move { (*t, dns.served(t).await) }),
    )
    .await;
    for (target, answer) in answers {
        match answer {
            Ok((values, ttl)) if !values.is_empty() => parts.push(format!(
                "the resolver {} serves {} value(s) at {target} for another {ttl}s; run again after that",
                dns.resolver(),
                values.len()
            )),
            Ok(_) => parts.push(format!(
                "the resolver {} serves no TXT value at {target} now",
                dns.resolver()
            )),
            // The CA's lookups most likely failed the same way.
            Err(e) => parts.push(format!(
                "the resolver {} cannot look up {target} now either ({e}): a name server of {} may be down or not answering",
                dns.resolver(),
                dns.zone()
            )),
        }
    }
    parts.join("; ")
}

async fn wait_propagation(
    ctx: &Ctx<'_>,
    dns: &SigningZone,
    set: &TxtSet,
) -> Result<(), crate::dns::Error> {
    let servers = lookup::authoritative_servers(dns.resolver(), dns.zone()).await?;
    let mut by_zone = BTreeMap::new();
    by_zone.insert(dns.zone().clone(), servers);
    let progress = |s: &propagation::PropagationStatus| {
        ctx.reporter
            .event(Event::Info(&format!("propagation: {s}")));
    };
    let evidence = propagation::wait_for(
        set,
        &by_zone,
        dns.propagation_timeout,
        limits::PROPAGATION_POLL,
        &progress,
    )
    .await?;
    for (server, after) in &evidence.ready_after {
        ctx.info(&format!(
            "propagation: {server} served every value after {:.1}s",
            after.as_secs_f32()
        ));
    }
    Ok(())
}

/// Withdraws the round's records; a failure is a warning (the next run withdraws them).
async fn withdraw(
    ctx: &Ctx<'_>,
    dns: &SigningZone,
    set: &TxtSet,
    ids: &[i64],
    summary: &mut RunSummary,
) {
    let t = Instant::now();
    match dns.withdraw(set).await {
        Ok(()) => {
            if let Err(e) = ctx.state.remove_txt(ids) {
                summary.warnings.push(format!(
                    "withdrew {} TXT record(s), but could not record it ({e}): the next run withdraws them again, harmlessly",
                    set.len()
                ));
            }
        }
        Err(e) => summary.warnings.push(format!(
            "could not remove {} TXT record(s) from {}: {e}; they are harmless but should be removed (the next run retries)",
            set.len(),
            dns.zone()
        )),
    }
    summary.timings.withdraw_ms += ms_since(t);
}

/// Fails every order of the round with `problem`.
fn fail_all(
    ctx: &Ctx<'_>,
    taken: &[(Ordered<'_>, Vec<String>)],
    ok: &mut BTreeSet<String>,
    stage: Stage,
    problem: &dyn Problem,
) {
    for (o, _) in taken {
        if ok.remove(&o.open.url) {
            ctx.fail(o.keyed.item().fail(stage, problem));
        }
    }
}

/// Leaves nothing pending at the CA or on the host for an order given up on.
async fn give_up(ctx: &Ctx<'_>, o: &mut Ordered<'_>) {
    acme::order::abandon(&mut o.open.order).await;
    if let Err(e) = ctx.state.set_order_status(&o.open.url, "abandoned") {
        ctx.info(&format!(
            "{}/{}: could not record that order {} was abandoned: {e}",
            o.keyed.item().host.name,
            o.keyed.item().spec.label,
            o.open.url
        ));
    }
    super::order::discard_key(ctx, &o.keyed).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_values_wait_for_what_the_ca_may_cache() {
        let now = OffsetDateTime::now_utc();
        let seen = Presentation {
            name: "x.signing.test.".into(),
            values: vec!["a".into()],
            ttl: 60,
            asked_at: now - time::Duration::seconds(20),
        };
        // Never looked at: no wait. The same value again: no wait.
        assert_eq!(wait_for(None, &["b".into()], now), None);
        assert_eq!(wait_for(Some(&seen), &["a".into()], now), None);
        // A new value waits out the rest of the TTL, plus the margin.
        assert_eq!(
            wait_for(Some(&seen), &["a".into(), "b".into()], now),
            Some(Duration::from_secs(43))
        );
        // Just past the TTL, the margin still holds (the race the caching bed showed); past
        // the margin, nothing to wait for.
        let just_past = Presentation {
            asked_at: now - time::Duration::seconds(61),
            ..seen.clone()
        };
        assert_eq!(
            wait_for(Some(&just_past), &["b".into()], now),
            Some(Duration::from_secs(2))
        );
        let long_ago = Presentation {
            asked_at: now - time::Duration::seconds(64),
            ..seen
        };
        assert_eq!(wait_for(Some(&long_ago), &["b".into()], now), None);
    }
}
