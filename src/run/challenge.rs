//! dns-01 for the whole run: preflight of every `_acme-challenge` CNAME, one publish of every
//! TXT value, one propagation wait on every authoritative server of the signing zone, then
//! validation and finalization per order, and withdrawal of the records whatever happened.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::rr::Name;

use super::{Due, Issued, Ordered};
use crate::acme;
use crate::dns::publisher::exec::Exec;
use crate::dns::publisher::zonefile::ZoneFile;
use crate::dns::{
    self, lookup, propagation, publisher::Publisher, publisher::rfc2136::Rfc2136, tsig::TsigKey,
    txt::TxtRecord, txt::TxtSet,
};
use crate::host::webroot;
use crate::inventory::model::{PublisherConfig, Rfc2136Config};
use crate::inventory::{ChallengeKind, Inventory, SecretSource};
use crate::limits;
use crate::report::{Event, Outcome, Reporter, RunSummary, Stage, ms_since};
use crate::state::State;

/// The DNS side of a run: where to look names up and how to publish.
pub struct DnsHandles {
    resolver: SocketAddr,
    /// What publishes, for the state's record of TXT rows (a server address, or the command).
    describe: String,
    /// The TSIG key's name, when updates are signed.
    key_name: Option<String>,
    zone: Name,
    publisher: Box<dyn Publisher>,
    ttl: u32,
    propagation_timeout: Duration,
}

/// Loads the TSIG key from a file or the environment; never from the command line.
fn tsig_key(rfc: &Rfc2136Config) -> Result<TsigKey, Setup> {
    let alg = match rfc.algorithm.as_deref() {
        None => None,
        Some(a) => Some(
            a.parse::<dns::tsig::TsigAlgorithm>()
                .map_err(|e| Setup(e.to_string(), None))?,
        ),
    };
    let key = match &rfc.secret {
        SecretSource::File(path) => TsigKey::load(path, rfc.key_name.as_deref(), alg),
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(b64) => TsigKey::from_base64(
                rfc.key_name.as_deref().unwrap_or("certorch"),
                alg.unwrap_or_default(),
                b64.trim(),
            ),
            Err(_) => {
                return Err(Setup(
                    format!("the TSIG secret variable {var} is not set"),
                    Some(format!(
                        "export {var} with the base64 secret before running certorch (cron: set it in the crontab or a wrapper)"
                    )),
                ));
            }
        },
    };
    key.map_err(|e| {
        let hint = e.hint();
        Setup(e.to_string(), hint)
    })
}

/// A failure before any host-specific work: message and hint.
pub struct Setup(pub String, pub Option<String>);

const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// Orders validated and finalized at once, at least (`concurrency` when larger).
const VALIDATE_PARALLEL: usize = 64;

impl DnsHandles {
    /// Loads the TSIG key and picks the resolver.
    pub async fn new(inv: &Inventory) -> Result<DnsHandles, Setup> {
        let cfg = &inv.dns;
        let (publisher, describe, key_name): (Box<dyn Publisher>, String, Option<String>) =
            match &cfg.publisher {
                PublisherConfig::Rfc2136(rfc) => {
                    let key = tsig_key(rfc)?;
                    let name = key.name.clone();
                    (
                        Box::new(Rfc2136::new(rfc.server, key, DNS_TIMEOUT)),
                        rfc.server.to_string(),
                        Some(name),
                    )
                }
                PublisherConfig::ZoneFile(z) => {
                    let zone = Name::from_ascii(format!("{}.", cfg.signing_zone))
                        .map_err(|e| Setup(e.to_string(), None))?;
                    let describe = format!("zonefile:{}:{}", z.host.name, z.path);
                    let p = ZoneFile::new(z.clone(), inv.ssh.clone(), zone)
                        .map_err(|e| Setup(e.to_string(), e.hint()))?;
                    (Box::new(p), describe, None)
                }
                PublisherConfig::Exec { command } => (
                    Box::new(Exec::new(command.clone())),
                    format!("exec:{}", command[0]),
                    None,
                ),
            };
        let resolver = cfg
            .resolver
            .or_else(lookup::system_resolver)
            .ok_or_else(|| {
                Setup(
                    "no resolver: dns.resolver is not set and /etc/resolv.conf names no nameserver"
                        .into(),
                    Some(
                        "set dns.resolver in the inventory to a recursive resolver's address"
                            .into(),
                    ),
                )
            })?;
        let zone = Name::from_ascii(format!("{}.", cfg.signing_zone))
            .map_err(|e| Setup(e.to_string(), None))?;
        Ok(DnsHandles {
            resolver,
            zone,
            describe,
            key_name,
            publisher,
            ttl: cfg.ttl,
            propagation_timeout: cfg.propagation_timeout,
        })
    }

    /// Adds and removes a probe TXT record with the configured key, so a refused key or a dead
    /// server stops the run before any order is opened at the CA.
    pub async fn probe(&self) -> Result<(), Setup> {
        let name = Name::from_ascii(format!("_certorch-probe.{}", self.zone))
            .map_err(|e| Setup(e.to_string(), None))?;
        let mut set = TxtSet::new(self.ttl);
        set.insert(TxtRecord {
            zone: self.zone.clone(),
            name,
            value: format!("certorch probe {}", std::process::id()),
        });
        let fail = |e: dns::Error| {
            let hint = e.hint();
            Setup(e.to_string(), hint)
        };
        self.publisher.publish(&set).await.map_err(fail)?;
        self.publisher.withdraw(&set).await.map_err(fail)
    }

    /// Withdraws `set` (used to repair what a killed run left).
    pub async fn withdraw(&self, set: &TxtSet) -> Result<(), dns::Error> {
        self.publisher.withdraw(set).await
    }

    /// Where `_acme-challenge.<name>` leads, if that is inside the signing zone.
    async fn target(&self, name: &crate::inventory::DnsName) -> Result<Name, (String, String)> {
        let challenge = Name::from_ascii(format!("{}.", name.challenge_name()))
            .map_err(|e| (e.to_string(), String::new()))?;
        let suggested = format!(
            "{}.{}.",
            name.as_str().trim_start_matches("*."),
            self.zone.to_ascii().trim_end_matches('.')
        );
        let record = format!("{challenge} IN CNAME {suggested}");
        let chain = lookup::follow_cnames(self.resolver, &challenge, limits::MAX_CNAME_HOPS)
            .await
            .map_err(|e| {
                (
                    format!("looking up {challenge}: {e}"),
                    e.hint().unwrap_or_default(),
                )
            })?;
        match chain.last() {
            None => Err((
                format!(
                    "{challenge} has no CNAME into the signing zone {}",
                    self.zone
                ),
                format!(
                    "add this record to the zone of {}: {record}",
                    name.as_str().trim_start_matches("*.")
                ),
            )),
            Some(end) if self.zone.zone_of(end) => Ok(end.clone()),
            Some(end) => {
                // A wildcard one level up answers for every name below it that has no record
                // of its own, the classic silent capture of _acme-challenge (RFC 4592 §2.2).
                // The wildcard's owner is the highest ancestor under which an invented name still gets
                // the same CNAME.
                let mut owner = None;
                let mut parent = challenge.base_name();
                while parent.num_labels() > 1 {
                    let Ok(probe) = Name::from_ascii(format!("_certorch-wildcard-probe.{parent}"))
                    else {
                        break;
                    };
                    if lookup::cname_target(self.resolver, &probe)
                        .await
                        .ok()
                        .flatten()
                        .as_ref()
                        != chain.first()
                    {
                        break;
                    }
                    owner = Some(parent.clone());
                    parent = parent.base_name();
                }
                if let Some(parent) = owner {
                    Err((
                        format!(
                            "{challenge} is answered by the wildcard *.{parent} (CNAME to {end}), outside the signing zone {}",
                            self.zone
                        ),
                        format!(
                            "add a record of its own, which takes precedence over the wildcard: {record}"
                        ),
                    ))
                } else {
                    Err((
                        format!(
                            "{challenge} leads to {end}, outside the signing zone {}",
                            self.zone
                        ),
                        format!("replace it with: {record}"),
                    ))
                }
            }
        }
    }

    /// Checks one name for `check`: where its challenge record leads, or what to fix.
    pub async fn check_name(
        &self,
        name: &crate::inventory::DnsName,
    ) -> Result<Name, (String, String)> {
        self.target(name).await
    }

    /// The signing zone.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// How long resolvers may cache a missing record in the signing zone: the smaller of the
    /// SOA's minimum and its TTL (RFC 2308 §5), asked of the resolver.
    pub async fn negative_ttl(&self) -> Option<u32> {
        let m = lookup::query(
            self.resolver,
            &self.zone,
            hickory_proto::rr::RecordType::SOA,
            true,
        )
        .await
        .ok()?;
        m.answers.iter().find_map(|r| match &r.data {
            hickory_proto::rr::RData::SOA(soa) => Some(soa.minimum.min(r.ttl)),
            _ => None,
        })
    }

    /// The TSIG key's name, when updates are signed.
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// The resolver used for lookups.
    pub fn resolver(&self) -> SocketAddr {
        self.resolver
    }
}

/// A due certificate with the TXT name each of its names' challenges is published at.
pub(crate) struct Routed<'a> {
    pub due: Due<'a>,
    /// Name (without `*.`) → TXT owner name in the signing zone.
    pub targets: BTreeMap<String, Name>,
}

/// Checks every name's CNAME before any order is opened.
pub(crate) async fn preflight<'a>(
    dns: &DnsHandles,
    due: Vec<Due<'a>>,
    reporter: &dyn Reporter,
    concurrency: usize,
) -> (Vec<Routed<'a>>, Vec<Outcome>) {
    let results: Vec<Result<Routed, Outcome>> = futures::stream::iter(due)
        .map(|d| async move {
            d.item.stage(reporter, Stage::Preflight);
            let mut targets = BTreeMap::new();
            let mut problems = Vec::new();
            let mut hints = Vec::new();
            for name in &d.item.spec.names {
                let base = name.as_str().trim_start_matches("*.").to_string();
                if targets.contains_key(&base) {
                    continue;
                }
                match dns.target(name).await {
                    Ok(t) => {
                        targets.insert(base, t);
                    }
                    Err((problem, hint)) => {
                        problems.push(problem);
                        hints.push(hint);
                    }
                }
            }
            if problems.is_empty() {
                Ok(Routed { due: d, targets })
            } else {
                Err(d.item.fail(
                    Stage::Preflight,
                    problems.join("; "),
                    Some(hints.join("; ")),
                ))
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for r in results {
        match r {
            Ok(r) => ok.push(r),
            Err(f) => failed.push(f),
        }
    }
    (ok, failed)
}

/// Publishes every TXT value of the run, waits once for every authoritative server, has the
/// CA validate and finalizes each order, then withdraws the records.
pub(crate) async fn answer<'a>(
    dns: Option<&DnsHandles>,
    inv: &Inventory,
    state: &State,
    mut ordered: Vec<Ordered<'a>>,
    reporter: &dyn Reporter,
    concurrency: usize,
    summary: &mut RunSummary,
) -> Vec<Issued<'a>> {
    let directory = &inv.acme.directory;
    let mut txt_ids = Vec::new();
    let mut set = TxtSet::new(dns.map_or(limits::TXT_TTL, |d| d.ttl));
    for o in &ordered {
        let Some(dns) =
            dns.filter(|_| o.keyed.routed.due.item.spec.challenge == ChallengeKind::Dns01)
        else {
            continue;
        };
        for ch in &o.open.challenges {
            let base = ch.identifier.trim_start_matches("*.");
            // Preflight routed every name of the order; an identifier the CA added would be a
            // CA bug, and publishing nothing for it makes that order fail validation visibly.
            if let Some(target) = o.keyed.routed.targets.get(base) {
                set.insert(TxtRecord {
                    zone: dns.zone.clone(),
                    name: target.clone(),
                    value: ch.value.clone(),
                });
            }
        }
    }

    let t = std::time::Instant::now();
    if let Some(dns) = dns.filter(|_| !set.is_empty()) {
        for o in &ordered {
            o.keyed.routed.due.item.stage(reporter, Stage::Publish);
        }
        // Recorded before the update is sent: a run killed after it is repaired by the next.
        let rows: Vec<(String, String, String)> = set
            .iter()
            .map(|r| (r.zone.to_string(), r.name.to_string(), r.value.clone()))
            .collect();
        txt_ids = state
            .record_txt(&dns.describe, &rows, set.ttl)
            .unwrap_or_default();
        let published = dns.publisher.publish(&set).await;
        summary.timings.publish_ms = ms_since(t);
        if let Err(e) = published {
            let hint = e.hint();
            give_up(
                ordered,
                state,
                Stage::Publish,
                &e.to_string(),
                hint,
                summary,
            )
            .await;
            // A partial update is possible over several messages; withdraw is idempotent.
            if dns.publisher.withdraw(&set).await.is_ok() {
                let _ = state.remove_txt(&txt_ids);
            }
            return Vec::new();
        }
        let t = std::time::Instant::now();
        for o in &ordered {
            o.keyed.routed.due.item.stage(reporter, Stage::Wait);
        }
        let waited = wait(dns, &set, reporter).await;
        summary.timings.wait_ms = ms_since(t);
        if let Err((error, hint)) = waited {
            give_up(ordered, state, Stage::Wait, &error, hint, summary).await;
            withdraw(dns, state, &set, &txt_ids, summary).await;
            return Vec::new();
        }
    }

    let t = std::time::Instant::now();
    let negative_ttl = match dns.filter(|_| !set.is_empty()) {
        Some(d) => d.negative_ttl().await,
        None => None,
    };
    let negative_ttl = &negative_ttl;
    let results: Vec<Result<Issued, Outcome>> = futures::stream::iter(ordered.drain(..))
        .map(|mut o| async move {
            let negative_ttl = *negative_ttl;
            o.keyed.routed.due.item.stage(reporter, Stage::Validate);
            let item = &o.keyed.routed.due.item;
            let spec = item.spec;
            // http-01: the tokens go into the host's webroot before the CA looks, and away after.
            let tokens: Vec<(String, String)> = match (&spec.webroot, spec.challenge) {
                (Some(_), ChallengeKind::Http01) => o
                    .open
                    .challenges
                    .iter()
                    .map(|c| (c.token.clone(), c.key_authorization.clone()))
                    .collect(),
                _ => Vec::new(),
            };
            let r: Result<_, (String, Option<String>)> = async {
                if let (Some(webroot), false) = (&spec.webroot, tokens.is_empty()) {
                    webroot::place(item.conn.as_ref(), webroot, &tokens)
                        .await
                        .map_err(|e| (e.to_string(), e.hint()))?;
                }
                let acme_err = |e: acme::Error| (e.to_string(), e.hint());
                acme::order::set_ready(&mut o.open.order, directory, spec.challenge)
                    .await
                    .map_err(acme_err)?;
                acme::order::finalize(&mut o.open.order, directory, &o.keyed.csr, &spec.names)
                    .await
                    .map_err(acme_err)
            }
            .await;
            if let (Some(webroot), false) = (&spec.webroot, tokens.is_empty()) {
                let names: Vec<String> = tokens.iter().map(|(t, _)| t.clone()).collect();
                webroot::remove(item.conn.as_ref(), webroot, &names).await;
            }
            match r {
                Ok((leaf, chain)) => Ok(Issued {
                    keyed: o.keyed,
                    order_url: o.open.url,
                    extra: Vec::new(),
                    leaf,
                    chain,
                }),
                Err((e, mut hint)) => {
                    // A CA resolver that asked too early remembers the miss for the zone's
                    // negative TTL: a retry before then fails the same way.
                    if let (Some(ttl), ChallengeKind::Dns01) = (negative_ttl, spec.challenge) {
                        let wait = format!("resolvers may remember a missing record in the signing zone for up to {ttl}s (its negative TTL): wait that long before retrying");
                        hint = Some(match hint {
                            Some(h) => format!("{h}; {wait}"),
                            None => wait,
                        });
                    }
                    acme::order::abandon(&mut o.open.order).await;
                    let _ = state.set_order_status(&o.open.url, "abandoned");
                    super::deploy::discard_key(&o.keyed).await;
                    Err(o.keyed.routed.due.item.fail(
                        Stage::Validate,
                        format!("{e} (order {})", o.open.url),
                        hint,
                    ))
                }
            }
        })
        // Validation is mostly waiting on the CA, a few small requests per order: more orders
        // in flight than hosts worked on at once, and none held back by a slow neighbour.
        .buffer_unordered(concurrency.max(VALIDATE_PARALLEL))
        .collect()
        .await;
    summary.timings.validate_ms = ms_since(t);
    let t = std::time::Instant::now();
    if let Some(dns) = dns.filter(|_| !set.is_empty()) {
        withdraw(dns, state, &set, &txt_ids, summary).await;
    }
    summary.timings.withdraw_ms = ms_since(t);
    super::split(results, summary)
}

async fn wait(
    dns: &DnsHandles,
    set: &TxtSet,
    reporter: &dyn Reporter,
) -> Result<(), (String, Option<String>)> {
    let servers = lookup::authoritative_servers(dns.resolver, &dns.zone)
        .await
        .map_err(|e| {
            (
                format!("finding the name servers of {}: {e}", dns.zone),
                e.hint(),
            )
        })?;
    let mut by_zone = BTreeMap::new();
    by_zone.insert(dns.zone.clone(), servers);
    let progress = |s: &propagation::PropagationStatus| {
        reporter.event(Event::Info(&format!("propagation: {s}")));
    };
    propagation::wait_for(set, &by_zone, dns.propagation_timeout, limits::PROPAGATION_POLL, &progress)
        .await
        .map(|evidence| {
            for (server, after) in &evidence.ready_after {
                reporter.event(Event::Info(&format!("propagation: {server} served every value after {:.1}s", after.as_secs_f32())));
            }
        })
        .map_err(|e| {
            (
                e.to_string(),
                Some(e.hint().unwrap_or_else(|| "check that every name server of the signing zone receives updates (NOTIFY, zone transfers) and run again".into())),
            )
        })
}

async fn withdraw(
    dns: &DnsHandles,
    state: &State,
    set: &TxtSet,
    ids: &[i64],
    summary: &mut RunSummary,
) {
    match dns.publisher.withdraw(set).await {
        Ok(()) => {
            let _ = state.remove_txt(ids);
        }
        Err(e) => {
            summary.warnings.push(format!(
            "could not remove {} TXT record(s) from {}: {e}; they are harmless but should be removed (the next run retries)",
            set.len(),
            dns.zone
        ));
        }
    }
}

/// Fails every order of the run at `stage`, leaving nothing pending at the CA or on hosts.
async fn give_up(
    ordered: Vec<Ordered<'_>>,
    state: &State,
    stage: Stage,
    error: &str,
    hint: Option<String>,
    summary: &mut RunSummary,
) {
    for mut o in ordered {
        acme::order::abandon(&mut o.open.order).await;
        let _ = state.set_order_status(&o.open.url, "abandoned");
        super::deploy::discard_key(&o.keyed).await;
        summary
            .outcomes
            .push(o.keyed.routed.due.item.fail(stage, error, hint.clone()));
    }
}
