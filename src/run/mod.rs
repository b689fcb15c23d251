//! The pipeline of a run: connect and inspect, decide, preflight DNS, keys and CSRs on the
//! hosts, orders, one publish and one propagation wait for the whole run, validation and
//! finalization, withdrawal, deployment. A failure drops its certificate from later stages and
//! lands in the summary; the others go on.

mod challenge;
mod deploy;
mod hosts;

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use instant_acme::Account;

use crate::acme::{self, OpenOrder};
use crate::host::inspect::Current;
use crate::inventory::{CertSpec, Host, Inventory, Target};
use crate::plan::{self, Decision, Reason};
use crate::report::{Event, Failure, Outcome, Reporter, RunSummary, Stage};
use crate::transport::Transport;
use crate::x509::{CertInfo, CheckedCsr};

use challenge::Routed;

/// What the caller asks of a run.
pub struct Request<'a> {
    pub inventory: &'a Inventory,
    pub targets: &'a [Target],
    /// Issue even when the deployed certificate is current (`certorch issue`).
    pub force: bool,
    pub state_dir: &'a Path,
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
    leaf: CertInfo,
    chain: Vec<Vec<u8>>,
}

/// Runs the whole pipeline for the request's targets.
pub async fn run(req: &Request<'_>, reporter: &dyn Reporter) -> RunSummary {
    let inv = req.inventory;
    let mut summary = RunSummary::default();
    let now = time::OffsetDateTime::now_utc();

    // Connect to each host once; every later step of the run reuses the connection.
    let control = match hosts::control_dir() {
        Ok(d) => d,
        Err(e) => {
            for t in req.targets {
                let host = &inv.hosts[t.host];
                summary.outcomes.push(Outcome::Failed(Failure {
                    host: host.name.clone(),
                    cert: t.cert.clone().unwrap_or_else(|| "*".into()),
                    stage: Stage::Connect,
                    error: format!("cannot create a directory for SSH control sockets: {e}"),
                    hint: Some("check that $TMPDIR (or /tmp) is writable".into()),
                }));
            }
            return summary;
        }
    };
    let connected =
        hosts::connect_all(inv, req.targets, control.path(), req.concurrency, reporter).await;

    // Inspect every selected certificate and decide.
    let mut items = Vec::new();
    for (target, conn) in connected {
        let host = &inv.hosts[target.host];
        match conn {
            Ok(conn) => {
                for spec in host
                    .certs
                    .iter()
                    .filter(|s| target.cert.as_ref().is_none_or(|c| c == &s.label))
                {
                    items.push(Item {
                        host,
                        spec,
                        conn: conn.clone(),
                    });
                }
            }
            Err(e) => {
                let hint = e.hint();
                for spec in host
                    .certs
                    .iter()
                    .filter(|s| target.cert.as_ref().is_none_or(|c| c == &s.label))
                {
                    summary.outcomes.push(Outcome::Failed(Failure {
                        host: host.name.clone(),
                        cert: spec.label.clone(),
                        stage: Stage::Connect,
                        error: e.to_string(),
                        hint: hint.clone(),
                    }));
                }
            }
        }
    }
    let inspected: Vec<(Item, Result<Current, crate::host::Error>)> = futures::stream::iter(items)
        .map(|item| async move {
            item.stage(reporter, Stage::Inspect);
            let r = crate::host::inspect::inspect(item.conn.as_ref(), item.spec).await;
            (item, r)
        })
        .buffered(req.concurrency)
        .collect()
        .await;
    let mut due = Vec::new();
    for (item, current) in inspected {
        match current {
            Err(e) => {
                let hint = e.hint();
                summary.outcomes.push(item.fail(Stage::Inspect, e, hint));
            }
            Ok(current) => match plan::decide(item.spec, &current, now, req.force) {
                Decision::Current {
                    not_after,
                    renew_at,
                } => summary.outcomes.push(Outcome::Current {
                    host: item.host.name.clone(),
                    cert: item.spec.label.clone(),
                    not_after,
                    renew_at,
                }),
                Decision::Due(reason) => due.push(Due { item, reason }),
            },
        }
    }
    if due.is_empty() {
        return finish(inv, summary);
    }

    // Nothing is ordered for a name whose _acme-challenge does not lead into the signing zone.
    let dns = match challenge::DnsHandles::new(inv).await {
        Ok(d) => d,
        Err(challenge::Setup(error, hint)) => {
            for d in due {
                summary
                    .outcomes
                    .push(d.item.fail(Stage::Preflight, &error, hint.clone()));
            }
            return finish(inv, summary);
        }
    };
    if let Err(challenge::Setup(error, hint)) = dns.probe().await {
        for d in due {
            summary
                .outcomes
                .push(d.item.fail(Stage::Preflight, &error, hint.clone()));
        }
        return finish(inv, summary);
    }
    let (due, failed) = challenge::preflight(&dns, due, reporter, req.concurrency).await;
    summary.outcomes.extend(failed);

    // Keys and CSRs, made on the hosts.
    let keyed: Vec<Result<Keyed, Outcome>> = futures::stream::iter(due)
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
        .buffered(req.concurrency)
        .collect()
        .await;
    let keyed = split(keyed, &mut summary);
    if keyed.is_empty() {
        return finish(inv, summary);
    }

    let account = match acme::load_or_create(inv, req.state_dir).await {
        Ok(a) => a,
        Err(e) => {
            let hint = e.hint();
            for k in keyed {
                summary
                    .outcomes
                    .push(k.routed.due.item.fail(Stage::Order, &e, hint.clone()));
                deploy::discard_key(&k).await;
            }
            return finish(inv, summary);
        }
    };
    let ordered = open_orders(
        &account,
        inv,
        keyed,
        reporter,
        req.concurrency,
        &mut summary,
    )
    .await;

    // One publish, one wait, then validation, then withdrawal whatever happened.
    let issued =
        challenge::answer(&dns, inv, ordered, reporter, req.concurrency, &mut summary).await;

    let deployed = deploy::deploy_all(issued, reporter, req.concurrency).await;
    summary.outcomes.extend(deployed);
    finish(inv, summary)
}

async fn open_orders<'a>(
    account: &Account,
    inv: &Inventory,
    keyed: Vec<Keyed<'a>>,
    reporter: &dyn Reporter,
    concurrency: usize,
    summary: &mut RunSummary,
) -> Vec<Ordered<'a>> {
    let directory = &inv.acme.directory;
    let results: Vec<Result<Ordered, (Outcome, Keyed)>> = futures::stream::iter(keyed)
        .map(|k| async move {
            k.routed.due.item.stage(reporter, Stage::Order);
            match acme::order::open(account, directory, &k.routed.due.item.spec.names).await {
                Ok(open) => Ok(Ordered { keyed: k, open }),
                Err(e) => {
                    let hint = e.hint();
                    Err((k.routed.due.item.fail(Stage::Order, &e, hint), k))
                }
            }
        })
        .buffered(concurrency)
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

/// Puts the outcomes in inventory order (stages finish in any order).
fn finish(inv: &Inventory, mut summary: RunSummary) -> RunSummary {
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
    summary
}
