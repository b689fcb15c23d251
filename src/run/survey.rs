//! The front of every run and of `plan`: connect to each selected host once, read what is
//! deployed, learn the CA's renewal window where it offers one, and decide. Reads only.

use std::collections::BTreeMap;

use futures::StreamExt;
use instant_acme::Account;

use super::{Ctx, Due, Item, hosts};
use crate::acme::ari::{self, Window};
use crate::host::batch::{self, Step};
use crate::host::inspect::{self, Current};
use crate::inventory::Target;
use crate::plan::{self, Decision, Known, Reason};
use crate::report::{Failure, Outcome, Stage};
use crate::state::{KeyStamp, Lifecycle, Recorded};

/// What the survey found: certificates that are due, and outcomes already final (current,
/// unreachable, unreadable).
pub(crate) struct Survey<'a> {
    pub due: Vec<Due<'a>>,
    pub done: Vec<Outcome>,
    /// The CA's windows learned this run, to be stored by a run (not by `plan`).
    pub windows: Vec<(String, String, Window)>,
    /// Keys checked with openssl this run and found to belong to their certificates, with
    /// their files' stamps: stored by a run (not by `plan`), so that the next survey does not
    /// check them again while the files are unchanged.
    pub stamps: Vec<(String, String, KeyStamp)>,
    /// How long connecting to the hosts, reading and deciding for each took, of the whole
    /// survey.
    pub connect_ms: u64,
    /// What the run should know but did not fail a certificate.
    pub warnings: Vec<String>,
}

/// The issuers certorch knows, from the state and the inventory's `acme.adopt_issuers`. An
/// error is a warning for the run: the issuer is then not checked, rather than every
/// certificate reissued for a failed read.
pub(crate) fn known_issuers(
    state: &crate::state::State,
    inv: &crate::inventory::Inventory,
) -> Result<Vec<plan::issuer::KnownIssuer>, String> {
    let read = state
        .issuers()
        .and_then(|received| Ok((received, state.internal_ca_cert()?)));
    match read {
        Ok((received, internal)) => Ok(plan::issuer::known(
            &received,
            internal.as_deref(),
            &inv.acme.adopt_issuers,
            &inv.acme.directory,
        )),
        Err(e) => Err(format!(
            "{e}; who signed the deployed certificates is not checked this run"
        )),
    }
}

/// Connects, inspects and decides for every target. A certificate an interrupted run left in
/// flight is due, to be resumed, whatever the host has now.
pub(crate) async fn survey<'a>(
    ctx: &Ctx<'a>,
    targets: &[Target],
    account: Option<&Account>,
    control: &std::path::Path,
    force: bool,
) -> Survey<'a> {
    let inv = ctx.inv;
    let concurrency = ctx.concurrency;
    let reporter = ctx.reporter;
    let now = time::OffsetDateTime::now_utc();
    let mut done = Vec::new();
    let recorded = match ctx.state.certificates() {
        Ok(r) => r,
        Err(e) => {
            // Without the record every deployed certificate would look like drift.
            for t in targets {
                let host = &inv.hosts[t.host];
                for spec in host
                    .certs
                    .iter()
                    .filter(|s| t.cert.as_ref().is_none_or(|c| c == &s.label))
                {
                    done.push(Outcome::Failed(Failure::new(
                        &host.name,
                        &spec.label,
                        Stage::Inspect,
                        &e,
                    )));
                }
            }
            return Survey {
                due: Vec::new(),
                done,
                windows: Vec::new(),
                stamps: Vec::new(),
                connect_ms: 0,
                warnings: Vec::new(),
            };
        }
    };
    let mut warnings = Vec::new();
    let issuers = known_issuers(ctx.state, inv)
        .map_err(|w| warnings.push(w))
        .ok();
    let issuers = issuers.as_deref();
    let in_flight: Vec<Lifecycle> = match ctx.state.in_flight() {
        Ok(r) => r,
        Err(e) => {
            ctx.info(&format!(
                "cannot read what an interrupted run left ({e}): deciding afresh"
            ));
            Vec::new()
        }
    };
    let seen = match ctx.state.key_stamps() {
        Ok(s) => s,
        Err(e) => {
            ctx.info(&format!(
                "cannot read when the keys were last checked ({e}): checking every key"
            ));
            BTreeMap::new()
        }
    };
    let seen = &seen;
    let by_key: BTreeMap<(&str, &str), &Recorded> = recorded
        .iter()
        .map(|r| ((r.host.as_str(), r.label.as_str()), r))
        .collect();
    let judge = Judge {
        inv,
        by_key: &by_key,
        issuers,
        in_flight: &in_flight,
        account,
        now,
        force,
    };
    let judge = &judge;
    // Each host is read and decided right after its own connection, in the same task: a host
    // does not wait for the slowest connection of the run before it is read, a run with
    // nothing to do costs each host one login and one command, back to back, and a host with
    // nothing due is let go at once (its connection, and an OpenSSH master, end there rather
    // than all together after the survey: at most `concurrency` of them are open at a time).
    let started = std::time::Instant::now();
    // Each host's targets, looked up once: searching every target for every host is
    // quadratic in the hosts.
    let mut by_host: BTreeMap<usize, Vec<&Target>> = BTreeMap::new();
    for t in targets {
        by_host.entry(t.host).or_default().push(t);
    }
    let by_host = &by_host;
    let hosts: Vec<usize> = by_host.keys().copied().collect();
    let mut read: Vec<(usize, Result<Vec<Judged>, crate::transport::Error>)> =
        futures::stream::iter(hosts)
            .map(|i| async move {
                // The host's one read is known before connecting: the connection may run it
                // as it logs in (OpenSSH's master does).
                let host = &inv.hosts[i];
                let specs = selected(host, &by_host[&i]);
                let stamped: Vec<Option<&KeyStamp>> = specs
                    .iter()
                    .map(|spec| seen.get(&(host.name.clone(), spec.label.clone())))
                    .collect();
                let steps: Vec<Step> = specs
                    .iter()
                    .zip(&stamped)
                    .map(|(spec, s)| Step::new(inspect::inspect_cmd(spec, *s)).keep_going())
                    .collect();
                let elevation = host.become_via.map_or(&[][..], |b| b.prefix());
                let batch = batch::prepare(&steps, elevation, false);
                let conn =
                    hosts::connect_one(inv, i, control, reporter, &ctx.sessions, batch.login_cmd())
                        .await;
                let conn = match conn {
                    Ok(conn) => conn,
                    Err(e) => return (i, Err(e)),
                };
                let mut judged = Vec::new();
                for (item, current) in read_host(ctx, host, specs, &stamped, &batch, conn).await {
                    judged.push(judge.one(item, current).await);
                }
                (i, Ok(judged))
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
    // Back in inventory order, whatever order the hosts answered in.
    read.sort_by_key(|(i, _)| *i);
    let connect_ms = crate::report::ms_since(started);
    let mut due = Vec::new();
    let mut windows = Vec::new();
    let mut stamps = Vec::new();
    // Members of shared labels that are current, until it is known whether their group is due.
    let mut current_shared = Vec::new();
    for (i, r) in read {
        let judged = match r {
            Ok(judged) => judged,
            Err(e) => {
                let host = &inv.hosts[i];
                for spec in selected(host, &by_host[&i]) {
                    done.push(Outcome::Failed(Failure::new(
                        &host.name,
                        &spec.label,
                        Stage::Connect,
                        &e,
                    )));
                }
                continue;
            }
        };
        for j in judged {
            windows.extend(j.window);
            stamps.extend(j.stamp);
            match j.verdict {
                Verdict::Done(o) => done.push(o),
                Verdict::Due(d) => due.push(d),
                Verdict::SharedCurrent(item, outcome, served) => {
                    current_shared.push((item, outcome, served))
                }
            }
        }
    }
    let current_shared = super::shared::differing(&mut due, current_shared);
    done.extend(super::shared::join_current(&mut due, current_shared));
    Survey {
        due,
        done,
        windows,
        stamps,
        connect_ms,
        warnings,
    }
}

/// What the survey knows before reading any host, to decide for each certificate.
struct Judge<'s, 'a> {
    inv: &'a crate::inventory::Inventory,
    by_key: &'s BTreeMap<(&'s str, &'s str), &'s Recorded>,
    issuers: Option<&'s [plan::issuer::KnownIssuer]>,
    in_flight: &'s [Lifecycle],
    account: Option<&'s Account>,
    now: time::OffsetDateTime,
    force: bool,
}

/// What became of one certificate in the survey.
enum Verdict<'a> {
    /// Final: current, or failed to be read.
    Done(Outcome),
    Due(Due<'a>),
    /// A current member of a shared label, until it is known whether its group is due: it
    /// keeps its host's connection. With the fingerprint and serial it serves.
    SharedCurrent(Item<'a>, Outcome, (String, String)),
}

/// A certificate's verdict, and what the run should store about it.
struct Judged<'a> {
    verdict: Verdict<'a>,
    /// The CA's renewal window learned for it.
    window: Option<(String, String, Window)>,
    /// Its key, checked with openssl and found to belong, with the files' settled stamp.
    stamp: Option<(String, String, KeyStamp)>,
}

impl<'a> Judge<'_, 'a> {
    /// Decides for `item`, whose host has `current`. A certificate an interrupted run left in
    /// flight is due, to be resumed, whatever the host has now.
    async fn one(
        &self,
        item: Item<'a>,
        current: Result<Current, crate::host::Error>,
    ) -> Judged<'a> {
        let directory = &self.inv.acme.directory;
        let (host, label) = (item.host.name.as_str(), item.spec.label.as_str());
        let rec = self.by_key.get(&(host, label)).copied();
        let current = match current {
            Ok(c) => c,
            Err(e) => {
                return Judged {
                    verdict: Verdict::Done(item.fail(Stage::Inspect, &e)),
                    window: None,
                    stamp: None,
                };
            }
        };
        // Ask the CA about the certificate only when it is the one certorch deployed.
        let mut window = None;
        if let (Current::Present(d), Some(rec), Some(account)) = (&current, rec, self.account)
            && rec.fingerprint == d.cert.fingerprint
            && let Some(id) = ari::cert_id(&d.cert.der)
        {
            window = ari::fetch(account, directory, &id).await.ok().flatten();
        }
        let mut stamp = None;
        if let Current::Present(d) = &current
            && d.key_matches
            && let Some(s) = &d.stamp
            && inspect::stamp_settled(s, self.now)
        {
            let s = KeyStamp {
                stamp: s.clone(),
                fingerprint: d.cert.fingerprint.clone(),
            };
            stamp = Some((host.to_string(), label.to_string(), s));
        }
        let judged = |verdict, window: Option<Window>| Judged {
            verdict,
            window: window.map(|w| (host.to_string(), label.to_string(), w)),
            stamp: stamp.clone(),
        };
        // What an interrupted run left for this certificate, when it still fits the inventory.
        let resume = self
            .in_flight
            .iter()
            .find(|l| {
                l.host == host
                    && l.label == label
                    && l.directory == *directory
                    && l.names == item.names()
            })
            .cloned();
        if let Some(row) = resume {
            let due = Due {
                item,
                reason: Reason::Resumed {
                    phase: row.phase.as_str(),
                },
                replaces: None,
                resume: Some(row),
                not_after: None,
            };
            return judged(Verdict::Due(due), None);
        }
        let wanted = plan::issuer::Signer::wanted(item.spec, directory);
        let known = Known {
            recorded: rec,
            ari: window,
            issuers: self.issuers.map(|known| plan::Issuers {
                wanted: &wanted,
                known,
            }),
        };
        let verdict = match plan::decide(item.spec, &current, known, self.now, self.force) {
            Decision::Current {
                not_after,
                renew_at,
            } => {
                let outcome = Outcome::Current {
                    host: host.to_string(),
                    cert: label.to_string(),
                    not_after,
                    renew_at,
                };
                match &current {
                    Current::Present(d) if item.spec.shared.is_some() => {
                        let served = (d.cert.fingerprint.clone(), d.cert.serial.clone());
                        Verdict::SharedCurrent(item, outcome, served)
                    }
                    _ => Verdict::Done(outcome),
                }
            }
            Decision::Due(reason) => {
                // A renewal of the certificate certorch deployed names it in the order
                // (RFC 9773 §5), when the CA offers ARI.
                let replaces = match (&current, window) {
                    (Current::Present(d), Some(_)) => ari::cert_id(&d.cert.der),
                    _ => None,
                };
                let not_after = match &current {
                    Current::Present(d) => Some(d.cert.not_after),
                    _ => None,
                };
                Verdict::Due(Due {
                    item,
                    reason,
                    replaces,
                    resume: None,
                    not_after,
                })
            }
        };
        judged(verdict, window)
    }
}

/// A certificate and what its host has, or why that could not be read.
type Read<'a> = (Item<'a>, Result<Current, crate::host::Error>);

/// The certificates of `host` that its `targets` select, in inventory order.
fn selected<'a>(
    host: &'a crate::inventory::Host,
    targets: &[&Target],
) -> Vec<&'a crate::inventory::CertSpec> {
    host.certs
        .iter()
        .filter(|s| {
            targets
                .iter()
                .any(|t| t.cert.as_ref().is_none_or(|c| c == &s.label))
        })
        .collect()
}

/// Reads every selected certificate (`specs`) of `host` with one command (`batch`, their
/// inspections): each SSH session costs the host a fork and a shell, and a run with nothing to
/// do needs no more than this.
async fn read_host<'a>(
    ctx: &Ctx<'a>,
    host: &'a crate::inventory::Host,
    specs: Vec<&'a crate::inventory::CertSpec>,
    stamped: &[Option<&KeyStamp>],
    batch: &batch::Prepared<'_>,
    conn: std::sync::Arc<dyn crate::transport::Transport>,
) -> Vec<Read<'a>> {
    let group: Vec<Item<'a>> = specs
        .into_iter()
        .map(|spec| Item {
            host,
            spec,
            conn: conn.clone(),
        })
        .collect();
    if group.is_empty() {
        return Vec::new();
    }
    for item in &group {
        item.stage(ctx.reporter, Stage::Inspect);
    }
    match batch.run(conn.as_ref(), None).await {
        Ok(outs) => group
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let current = match outs.get(i) {
                    Some(Ok(out)) => inspect::inspect_judge(out, stamped[i]),
                    Some(Err(e)) => Err(e.clone().into()),
                    None => Err(crate::host::Error::Rejected {
                        step: "reading the deployed certificate",
                        reason: "the host's command ended before this certificate was read".into(),
                        hint: "check that the host has memory and processes to spare, then run certorch again".into(),
                    }),
                };
                (item, current)
            })
            .collect(),
        Err(e) => group
            .into_iter()
            .map(|item| (item, Err(e.clone().into())))
            .collect(),
    }
}
