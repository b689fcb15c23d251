//! The pipeline of a run: connect and inspect, decide, preflight DNS, keys and CSRs on the
//! hosts, orders, one publish and one propagation wait for the whole run, validation and
//! finalization, withdrawal, deployment. A failure drops its certificate from later stages and
//! lands in the summary; the others go on.

mod challenge;
pub mod check;
mod deploy;
mod hosts;
mod local;
mod repair;
mod shared;
mod survey;

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use instant_acme::Account;

use crate::acme::{self, OpenOrder};
use crate::inventory::{CertSpec, ChallengeKind, Host, Inventory, Issuer, RemotePath, Target};
use crate::plan::Reason;
use crate::report::{Event, Failure, Outcome, Reporter, RunSummary, Stage, ms_since};
use crate::state::State;
use crate::transport::Transport;
use crate::x509::{CertInfo, CheckedCsr};

use challenge::Routed;

/// What the caller asks of a run.
pub struct Request<'a> {
    pub inventory: &'a Inventory,
    pub targets: &'a [Target],
    /// Issue even when the deployed certificate is current (`certorch issue`).
    pub force: bool,
    pub state: &'a State,
    pub concurrency: usize,
}

/// One certificate of one host, as it moves through the stages.
pub(crate) struct Item<'a> {
    host: &'a Host,
    spec: &'a CertSpec,
    conn: Arc<dyn Transport>,
}

impl Item<'_> {
    fn fail(&self, stage: Stage, error: impl ToString, hint: Option<String>) -> Outcome {
        Outcome::Failed(Failure {
            host: self.host.name.clone(),
            cert: self.spec.label.clone(),
            stage,
            error: error.to_string(),
            hint,
        })
    }

    fn stage(&self, r: &dyn Reporter, stage: Stage) {
        r.event(Event::Stage {
            host: &self.host.name,
            cert: &self.spec.label,
            stage,
        });
    }
}

/// A certificate that is due, with its reason.
pub(crate) struct Due<'a> {
    item: Item<'a>,
    reason: Reason,
    /// The certificate this one replaces, for the order's `replaces` (RFC 9773 §5).
    replaces: Option<instant_acme::CertificateIdentifier<'static>>,
}

/// A routed certificate whose key and CSR exist on the host.
pub(crate) struct Keyed<'a> {
    routed: Routed<'a>,
    csr: CheckedCsr,
}

/// A keyed certificate with an open order.
pub(crate) struct Ordered<'a> {
    keyed: Keyed<'a>,
    open: OpenOrder,
}

/// A certificate the CA issued, not yet deployed.
pub(crate) struct Issued<'a> {
    keyed: Keyed<'a>,
    order_url: String,
    /// Further files to put in place with the certificate (the internal CA for trust stores).
    extra: Vec<(RemotePath, String)>,
    leaf: CertInfo,
    chain: Vec<Vec<u8>>,
}

/// New orders in flight at once, at most. Creating an order is one quick request, so 200
/// orders still take about a second; more in flight buys nothing, weighs on the CA, and
/// deadlocked Pebble 2.4 (an authorization lock left held) in the benchmark.
const ORDER_PARALLEL: usize = 4;

/// Runs the whole pipeline for the request's targets.
pub async fn run(req: &Request<'_>, reporter: &dyn Reporter) -> RunSummary {
    let started = Instant::now();
    let inv = req.inventory;
    let state = req.state;
    let mut summary = RunSummary::default();

    // The SSH control sockets of this run live in a private directory removed at the end.
    let control = match hosts::control_dir() {
        Ok(d) => d,
        Err(e) => {
            for t in req.targets {
                summary.outcomes.push(Outcome::Failed(Failure {
                    host: inv.hosts[t.host].name.clone(),
                    cert: t.cert.clone().unwrap_or_else(|| "*".into()),
                    stage: Stage::Connect,
                    error: format!("cannot create a directory for SSH control sockets: {e}"),
                    hint: Some("check that $TMPDIR (or /tmp) is writable".into()),
                }));
            }
            return summary;
        }
    };

    // The stored account, if any: for ARI and to repair orders a killed run left open. A CA
    // that cannot be reached does not stop a run that has nothing to order.
    let account = match acme::account::load(inv, state).await {
        Ok(a) => a,
        Err(e) => {
            summary.warnings.push(format!(
                "{e}; renewal information (ARI) is not consulted this run"
            ));
            None
        }
    };
    if let Some(account) = &account {
        summary
            .warnings
            .extend(repair::open_orders(state, inv, account, reporter).await);
    }
    let mut dns = None;
    if state.leftover_txt().map(|l| !l.is_empty()).unwrap_or(false) {
        match challenge::DnsHandles::new(inv).await {
            Ok(d) => {
                summary
                    .warnings
                    .extend(repair::leftover_txt(state, &d, reporter).await);
                dns = Some(d);
            }
            Err(challenge::Setup(error, _)) => summary.warnings.push(format!(
                "cannot withdraw TXT records a previous run left: {error}"
            )),
        }
    }

    summary.timings.setup_ms = ms_since(started);
    let t = Instant::now();
    let recorded = state.certificates().unwrap_or_default();
    let issuers = survey::known_issuers(state, inv)
        .map_err(|w| summary.warnings.push(w))
        .ok();
    let surveyed = survey::survey(
        inv,
        req.targets,
        &recorded,
        issuers.as_deref(),
        account.as_ref(),
        control.path(),
        req.force,
        req.concurrency,
        reporter,
    )
    .await;
    for (host, label, w) in &surveyed.windows {
        let _ = state.set_ari(host, label, w.start, w.end);
    }
    summary.timings.connect_ms = surveyed.connect_ms;
    summary.timings.inspect_ms = ms_since(t).saturating_sub(surveyed.connect_ms);
    summary.outcomes.extend(surveyed.done);
    let due = surveyed.due;
    if due.is_empty() {
        return finish(inv, state, summary, started);
    }
    // Members of a shared label other than the one that makes the key wait for its certificate.
    let (due, waiting) = shared::split(due);
    // Self-signed and internal certificates need no DNS and no CA order.
    let (acme_due, local_due): (Vec<Due>, Vec<Due>) = due
        .into_iter()
        .partition(|d| d.item.spec.issuer == Issuer::Acme);
    let mut issued = Vec::new();
    if !local_due.is_empty() {
        let routed = local_due
            .into_iter()
            .map(|due| Routed {
                due,
                targets: Default::default(),
            })
            .collect();
        let t = Instant::now();
        let keyed = make_keys(routed, reporter, req.concurrency, &mut summary).await;
        summary.timings.key_ms += ms_since(t);
        let t = Instant::now();
        issued.extend(
            local::issue_all(keyed, inv, state, reporter, req.concurrency, &mut summary).await,
        );
        summary.timings.local_ms = ms_since(t);
    }
    if !acme_due.is_empty() {
        issued.extend(
            via_acme(
                acme_due,
                account,
                dns,
                inv,
                state,
                reporter,
                req.concurrency,
                &mut summary,
            )
            .await,
        );
    }
    let t = Instant::now();
    if !waiting.is_empty() {
        let failed = shared::fan_out(&mut issued, waiting, reporter, req.concurrency).await;
        summary.outcomes.extend(failed);
    }
    let deployed = deploy::deploy_all(issued, state, reporter, req.concurrency).await;
    summary.timings.deploy_ms = ms_since(t);
    summary.outcomes.extend(deployed);
    finish(inv, state, summary, started)
}

/// Keys and CSRs, made on the hosts.
async fn make_keys<'a>(
    routed: Vec<Routed<'a>>,
    reporter: &dyn Reporter,
    concurrency: usize,
    summary: &mut RunSummary,
) -> Vec<Keyed<'a>> {
    let keyed: Vec<Result<Keyed, Outcome>> = futures::stream::iter(routed)
        .map(|r| async move {
            let item = &r.due.item;
            item.stage(reporter, Stage::Key);
            match crate::host::keygen::make_key_and_csr(item.conn.as_ref(), item.spec).await {
                Ok(csr) => Ok(Keyed { routed: r, csr }),
                Err(e) => {
                    let hint = e.hint();
                    Err(item.fail(Stage::Key, e, hint))
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    split(keyed, summary)
}

/// The ACME path: DNS preflight, keys, orders, one publish and one wait, validation.
#[allow(clippy::too_many_arguments)]
async fn via_acme<'a>(
    due: Vec<Due<'a>>,
    account: Option<Account>,
    dns: Option<challenge::DnsHandles>,
    inv: &Inventory,
    state: &State,
    reporter: &dyn Reporter,
    concurrency: usize,
    summary: &mut RunSummary,
) -> Vec<Issued<'a>> {
    // http-01 needs no DNS; dns-01 names must lead into the signing zone, and nothing is
    // ordered while the signing zone refuses our key.
    let (dns_due, http_due): (Vec<Due>, Vec<Due>) = due
        .into_iter()
        .partition(|d| d.item.spec.challenge == ChallengeKind::Dns01);
    let mut routed: Vec<Routed> = http_due
        .into_iter()
        .map(|due| Routed {
            due,
            targets: Default::default(),
        })
        .collect();
    let mut dns = dns;
    let t = Instant::now();
    if !dns_due.is_empty() {
        let handles = match dns.take() {
            Some(d) => Ok(d),
            None => challenge::DnsHandles::new(inv).await,
        };
        let ready = match handles {
            Ok(d) => match d.probe().await {
                Ok(()) => Ok(d),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match ready {
            Ok(d) => {
                let (ok, failed) = challenge::preflight(&d, dns_due, reporter, concurrency).await;
                summary.outcomes.extend(failed);
                routed.extend(ok);
                dns = Some(d);
            }
            Err(challenge::Setup(error, hint)) => {
                for d in dns_due {
                    summary
                        .outcomes
                        .push(d.item.fail(Stage::Preflight, &error, hint.clone()));
                }
            }
        }
    }
    summary.timings.preflight_ms = ms_since(t);
    let t = Instant::now();
    let keyed = make_keys(routed, reporter, concurrency, summary).await;
    summary.timings.key_ms += ms_since(t);
    if keyed.is_empty() {
        return Vec::new();
    }
    let t = Instant::now();
    let account = match account {
        Some(a) => a,
        None => match acme::load_or_create(inv, state).await {
            Ok(a) => a,
            Err(e) => {
                let hint = e.hint();
                for k in keyed {
                    summary
                        .outcomes
                        .push(k.routed.due.item.fail(Stage::Order, &e, hint.clone()));
                    deploy::discard_key(&k).await;
                }
                return Vec::new();
            }
        },
    };
    summary.timings.account_ms = ms_since(t);
    let t = Instant::now();
    let ordered = open_orders(&account, inv, state, keyed, reporter, concurrency, summary).await;
    summary.timings.order_ms = ms_since(t);
    // One publish, one wait, then validation, then withdrawal whatever happened.
    challenge::answer(
        dns.as_ref(),
        inv,
        state,
        ordered,
        reporter,
        concurrency,
        summary,
    )
    .await
}

async fn open_orders<'a>(
    account: &Account,
    inv: &Inventory,
    state: &State,
    keyed: Vec<Keyed<'a>>,
    reporter: &dyn Reporter,
    concurrency: usize,
    summary: &mut RunSummary,
) -> Vec<Ordered<'a>> {
    let directory = &inv.acme.directory;
    let results: Vec<Result<Ordered, (Outcome, Keyed)>> = futures::stream::iter(keyed)
        .map(|k| async move {
            k.routed.due.item.stage(reporter, Stage::Order);
            let spec = k.routed.due.item.spec;
            match acme::order::open(
                account,
                directory,
                &spec.names,
                k.routed.due.replaces.clone(),
                spec.profile.as_deref(),
                spec.challenge,
            )
            .await
            {
                Ok(open) => {
                    // Recorded before any challenge is answered, so a killed run's order is found.
                    let names: Vec<String> = spec.names.iter().map(|n| n.to_string()).collect();
                    let _ = state.record_order(
                        &open.url,
                        directory,
                        &k.routed.due.item.host.name,
                        &spec.label,
                        &names,
                    );
                    Ok(Ordered { keyed: k, open })
                }
                Err(e) => {
                    let hint = e.hint();
                    Err((k.routed.due.item.fail(Stage::Order, &e, hint), k))
                }
            }
        })
        .buffer_unordered(concurrency.min(ORDER_PARALLEL))
        .collect()
        .await;
    let mut out = Vec::new();
    for r in results {
        match r {
            Ok(o) => {
                summary.orders += 1;
                out.push(o);
            }
            Err((failure, k)) => {
                deploy::discard_key(&k).await;
                summary.outcomes.push(failure);
            }
        }
    }
    out
}

/// Moves failures into the summary and returns the successes.
fn split<T>(results: Vec<Result<T, Outcome>>, summary: &mut RunSummary) -> Vec<T> {
    let mut ok = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(f) => summary.outcomes.push(f),
        }
    }
    ok
}

/// Records every outcome in the audit log and the certificates' last results, then puts the
/// outcomes in inventory order (stages finish in any order).
fn finish(inv: &Inventory, state: &State, mut summary: RunSummary, started: Instant) -> RunSummary {
    let t = Instant::now();
    state.batch(|| {
        for o in &summary.outcomes {
            let _ = match o {
                Outcome::Issued {
                    host,
                    cert,
                    reason,
                    serial,
                    ..
                } => state.audit(
                    host,
                    cert,
                    "issue",
                    "ok",
                    &format!("serial {serial}: {reason}"),
                ),
                Outcome::Current { host, cert, .. } => state.set_result(host, cert, "current"),
                Outcome::Failed(f) => {
                    let _ = state.set_result(
                        &f.host,
                        &f.cert,
                        &format!("failed at {}", f.stage.as_str()),
                    );
                    state.audit(&f.host, &f.cert, f.stage.as_str(), "failed", &f.error)
                }
            };
        }
    });
    let key = |o: &Outcome| {
        let (h, c) = match o {
            Outcome::Issued { host, cert, .. } | Outcome::Current { host, cert, .. } => {
                (host, cert)
            }
            Outcome::Failed(f) => (&f.host, &f.cert),
        };
        let hi = inv
            .hosts
            .iter()
            .position(|x| &x.name == h)
            .unwrap_or(usize::MAX);
        let ci = inv
            .hosts
            .get(hi)
            .and_then(|x| x.certs.iter().position(|s| &s.label == c))
            .unwrap_or(usize::MAX);
        (hi, ci)
    };
    summary.outcomes.sort_by_key(key);
    summary.timings.record_ms = ms_since(t);
    summary.timings.total_ms = ms_since(started);
    summary
}

/// What `certorch plan` reports for one certificate.
#[derive(Debug, serde::Serialize)]
pub struct PlanItem {
    pub host: String,
    pub cert: String,
    /// `issue`, `none` or `failed`.
    pub action: &'static str,
    pub reason: Option<String>,
    pub names: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<time::OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub renew_at: Option<time::OffsetDateTime>,
    pub error: Option<String>,
    pub hint: Option<String>,
}

/// What a run would do, and the rate limits it would meet.
#[derive(Debug, serde::Serialize)]
pub struct PlanReport {
    pub items: Vec<PlanItem>,
    pub limits: Vec<crate::plan::forecast::LimitWarning>,
    pub warnings: Vec<String>,
}

/// The front of a run, touching nothing: hosts are read, the state is opened read-only, no
/// key, order or DNS record is made.
pub async fn plan(
    inv: &Inventory,
    targets: &[Target],
    state: &State,
    force: bool,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> PlanReport {
    use crate::plan::forecast::{self, History, Planned};
    let mut warnings = Vec::new();
    let control = match hosts::control_dir() {
        Ok(d) => d,
        Err(e) => {
            return PlanReport {
                items: Vec::new(),
                limits: Vec::new(),
                warnings: vec![format!(
                    "cannot create a directory for SSH control sockets: {e}"
                )],
            };
        }
    };
    let account = acme::account::load(inv, state).await.unwrap_or_else(|e| {
        warnings.push(format!("{e}; renewal information (ARI) is not consulted"));
        None
    });
    let recorded = state.certificates().unwrap_or_default();
    let issuers = survey::known_issuers(state, inv)
        .map_err(|w| warnings.push(w))
        .ok();
    let surveyed = survey::survey(
        inv,
        targets,
        &recorded,
        issuers.as_deref(),
        account.as_ref(),
        control.path(),
        force,
        concurrency,
        reporter,
    )
    .await;
    let mut items = Vec::new();
    let mut planned = Vec::new();
    let mut shared_planned = std::collections::BTreeSet::new();
    for d in &surveyed.due {
        let names: Vec<String> = d.item.spec.names.iter().map(|n| n.to_string()).collect();
        // A shared label is one order for all its members.
        if d.item.spec.shared.is_none() || shared_planned.insert(d.item.spec.label.clone()) {
            planned.push(Planned {
                names: names.clone(),
                exempt: matches!(d.reason, Reason::Ari { .. }),
            });
        }
        items.push(PlanItem {
            host: d.item.host.name.clone(),
            cert: d.item.spec.label.clone(),
            action: "issue",
            reason: Some(d.reason.to_string()),
            names,
            not_after: None,
            renew_at: None,
            error: None,
            hint: None,
        });
    }
    for o in &surveyed.done {
        items.push(match o {
            Outcome::Current {
                host,
                cert,
                not_after,
                renew_at,
            } => PlanItem {
                host: host.clone(),
                cert: cert.clone(),
                action: "none",
                reason: None,
                names: Vec::new(),
                not_after: Some(*not_after),
                renew_at: Some(*renew_at),
                error: None,
                hint: None,
            },
            Outcome::Failed(f) => PlanItem {
                host: f.host.clone(),
                cert: f.cert.clone(),
                action: "failed",
                reason: None,
                names: Vec::new(),
                not_after: None,
                renew_at: None,
                error: Some(f.error.clone()),
                hint: f.hint.clone(),
            },
            Outcome::Issued { .. } => continue,
        });
    }
    let order = |h: &str, c: &str| {
        let hi = inv
            .hosts
            .iter()
            .position(|x| x.name == h)
            .unwrap_or(usize::MAX);
        let ci = inv
            .hosts
            .get(hi)
            .and_then(|x| x.certs.iter().position(|s| s.label == c))
            .unwrap_or(usize::MAX);
        (hi, ci)
    };
    items.sort_by_key(|i| order(&i.host, &i.cert));
    let now = time::OffsetDateTime::now_utc();
    let names_of = |host: &str, label: &str| -> Vec<String> {
        inv.hosts
            .iter()
            .find(|h| h.name == host)
            .and_then(|h| h.certs.iter().find(|c| c.label == label))
            .map(|c| c.names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default()
    };
    let history = History {
        orders_3h: state
            .orders_since(&inv.acme.directory, now - time::Duration::hours(3))
            .unwrap_or(0),
        issued_7d: state
            .issued_name_sets_since(now - time::Duration::days(7))
            .unwrap_or_default(),
        failed_1h: state
            .failed_validations_since(now - time::Duration::hours(1))
            .unwrap_or_default()
            .iter()
            .flat_map(|(h, l)| names_of(h, l))
            .collect(),
    };
    PlanReport {
        items,
        limits: forecast::forecast(&planned, &history),
        warnings,
    }
}
