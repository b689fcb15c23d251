//! What every stage of a run shares (the run context) and the types a certificate takes as it
//! moves through the stages: [`Due`] → [`Keyed`] → [`Ordered`] → [`Issued`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;

use crate::acme::OpenOrder;
use crate::inventory::{CertSpec, Host, Inventory, RemotePath};
use crate::plan::Reason;
use crate::problem::{Kind, Plain, Problem};
use crate::report::{Event, Failure, Outcome, Reporter, Stage};
use crate::state::{Lifecycle, Phase, State};
use crate::transport::Transport;
use crate::x509::{CertInfo, CheckedCsr};

/// The handles of one run, passed to every stage instead of one argument each.
pub(crate) struct Ctx<'a> {
    pub inv: &'a Inventory,
    pub state: &'a State,
    pub reporter: &'a dyn Reporter,
    /// Hosts worked on at once.
    pub concurrency: usize,
    /// Certificates that failed, in the order they failed; sorted at the end.
    failed: Mutex<Vec<Outcome>>,
    /// What failed no certificate but needs attention (a staged file left on a host).
    warnings: Mutex<Vec<String>>,
    /// Commands run on hosts: SSH sessions, each a fork and a shell there.
    pub sessions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The CA created an order without the `replaces` it was asked for: later orders of this
    /// run do not name one (each would cost an order more).
    pub replaces_ignored: std::sync::atomic::AtomicBool,
}

impl<'a> Ctx<'a> {
    pub fn new(
        inv: &'a Inventory,
        state: &'a State,
        reporter: &'a dyn Reporter,
        concurrency: usize,
    ) -> Ctx<'a> {
        Ctx {
            inv,
            state,
            reporter,
            concurrency,
            failed: Mutex::new(Vec::new()),
            warnings: Mutex::new(Vec::new()),
            sessions: Default::default(),
            replaces_ignored: Default::default(),
        }
    }

    /// The ACME directory of this run.
    pub fn directory(&self) -> &'a str {
        &self.inv.acme.directory
    }

    /// Records a failed certificate; it drops out of later stages.
    pub fn fail(&self, outcome: Outcome) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(outcome);
    }

    /// Every failure so far.
    pub fn take_failed(&self) -> Vec<Outcome> {
        std::mem::take(&mut *self.failed.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records a warning for the run's summary.
    pub fn warn(&self, line: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    /// Every warning so far.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reports a line of progress.
    pub fn info(&self, line: &str) {
        self.reporter.event(Event::Info(line));
    }
}

/// One certificate of one host, as it moves through the stages.
pub(crate) struct Item<'a> {
    pub host: &'a Host,
    pub spec: &'a CertSpec,
    pub conn: Arc<dyn Transport>,
}

impl Item<'_> {
    /// This certificate failed at `stage` with `problem`.
    pub fn fail(&self, stage: Stage, problem: &dyn Problem) -> Outcome {
        Outcome::Failed(Failure::new(
            &self.host.name,
            &self.spec.label,
            stage,
            problem,
        ))
    }

    /// This certificate failed at `stage`, described here.
    pub fn fail_with(
        &self,
        stage: Stage,
        kind: Kind,
        error: impl Into<String>,
        hint: impl Into<String>,
    ) -> Outcome {
        self.fail(stage, &Plain::new(kind, error, hint))
    }

    /// Reports that this certificate entered `stage`.
    pub fn stage(&self, r: &dyn Reporter, stage: Stage) {
        r.event(Event::Stage {
            host: &self.host.name,
            cert: &self.spec.label,
            stage,
        });
    }

    /// Moves the certificate's lifecycle to `phase`; the caller fails the certificate when
    /// this cannot be recorded.
    pub fn phase(&self, state: &State, phase: Phase) -> Result<(), crate::state::Error> {
        state.set_phase(&self.host.name, &self.spec.label, phase)
    }

    /// Removes the files staged for this certificate at `paths`; a failure is a warning.
    pub async fn discard(&self, ctx: &Ctx<'_>, paths: &[&RemotePath]) {
        if let Err(e) = crate::host::files::discard(self.conn.as_ref(), paths).await {
            ctx.warn(format!(
                "{}/{}: {e}; hint: {}",
                self.host.name,
                self.spec.label,
                crate::problem::Problem::hint(&e).unwrap_or_default()
            ));
        }
    }

    /// The names, as strings.
    pub fn names(&self) -> Vec<String> {
        self.spec.names.iter().map(|n| n.to_string()).collect()
    }
}

/// A certificate that is due, with its reason.
pub(crate) struct Due<'a> {
    pub item: Item<'a>,
    pub reason: Reason,
    /// The certificate this one replaces, for the order's `replaces` (RFC 9773 §5).
    pub replaces: Option<instant_acme::CertificateIdentifier<'static>>,
    /// What an interrupted run left for this certificate, to be resumed.
    pub resume: Option<Lifecycle>,
    /// When the certificate on the host expires (`None`: none readable), for scheduling.
    pub not_after: Option<time::OffsetDateTime>,
}

/// A due certificate with the TXT owner name each of its names' challenges is published at.
pub(crate) struct Routed<'a> {
    pub due: Due<'a>,
    /// Name (without `*.`) → TXT owner name in the signing zone.
    pub targets: BTreeMap<String, Name>,
}

/// A certificate whose key is staged on the host, with its CSR.
pub(crate) struct Keyed<'a> {
    pub due: Due<'a>,
    pub csr: CheckedCsr,
    /// The staged key is the one an interrupted run made (its CSR was recorded).
    pub key_resumed: bool,
    /// dns-01: name (without `*.`) → the TXT owner name in the signing zone it leads to.
    pub targets: BTreeMap<String, Name>,
}

impl<'a> Keyed<'a> {
    pub fn item(&self) -> &Item<'a> {
        &self.due.item
    }
}

/// A keyed certificate with an order at the CA.
pub(crate) struct Ordered<'a> {
    pub keyed: Keyed<'a>,
    pub open: OpenOrder,
}

/// A certificate the CA (or the internal CA, or the host) issued, not yet live.
pub(crate) struct Issued<'a> {
    pub keyed: Keyed<'a>,
    pub order_url: String,
    /// Further files to put in place with the certificate (the internal CA for trust stores).
    pub extra: Vec<(RemotePath, String)>,
    pub leaf: CertInfo,
    pub chain: Vec<Vec<u8>>,
}

impl<'a> Issued<'a> {
    pub fn item(&self) -> &Item<'a> {
        &self.keyed.due.item
    }
}

/// Splits stage results: failures to the context, successes returned.
pub(crate) fn keep_ok<T>(ctx: &Ctx<'_>, results: Vec<Result<T, Outcome>>) -> Vec<T> {
    let mut ok = Vec::new();
    for r in results {
        match r {
            Ok(v) => ok.push(v),
            Err(f) => ctx.fail(f),
        }
    }
    ok
}
