//! Rendering what a run did. Stages send [`Event`]s to a [`Reporter`] and return a
//! [`RunSummary`]; they never print. The renderers here only draw.

pub mod printer;

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

pub use printer::{Printer, Render};

/// The phases a certificate moves through, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Connect,
    Inspect,
    Preflight,
    Key,
    Order,
    Publish,
    Wait,
    Validate,
    Finalize,
    Deploy,
    Check,
    Reload,
    Verify,
}

impl Stage {
    /// The name shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Inspect => "inspect",
            Stage::Preflight => "preflight",
            Stage::Key => "key",
            Stage::Order => "order",
            Stage::Publish => "publish",
            Stage::Wait => "wait",
            Stage::Validate => "validate",
            Stage::Finalize => "finalize",
            Stage::Deploy => "deploy",
            Stage::Check => "check",
            Stage::Reload => "reload",
            Stage::Verify => "verify",
        }
    }
}

/// A certificate that could not be brought up to date, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub host: String,
    pub cert: String,
    pub stage: Stage,
    /// The stable kind of the error, for machines (docs/json.md).
    pub kind: crate::problem::Kind,
    pub error: String,
    pub hint: Option<String>,
}

impl Failure {
    /// `host/cert` failed at `stage` with `problem`; the kind and hint come from its type.
    pub fn new(
        host: &str,
        cert: &str,
        stage: Stage,
        problem: &dyn crate::problem::Problem,
    ) -> Failure {
        Failure {
            host: host.to_string(),
            cert: cert.to_string(),
            stage,
            kind: problem.kind(),
            error: problem.to_string(),
            hint: problem.hint(),
        }
    }
}

/// What happened to one certificate.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum Outcome {
    Issued {
        host: String,
        cert: String,
        reason: String,
        names: Vec<String>,
        serial: String,
        fingerprint: String,
        #[serde(with = "time::serde::rfc3339")]
        not_after: time::OffsetDateTime,
    },
    Current {
        host: String,
        cert: String,
        #[serde(with = "time::serde::rfc3339")]
        not_after: time::OffsetDateTime,
        #[serde(with = "time::serde::rfc3339")]
        renew_at: time::OffsetDateTime,
    },
    Failed(Failure),
    /// Due, but the CA's rate limits leave no room this run: ordered at `next_slot` or
    /// later. Not a failure.
    Deferred {
        host: String,
        cert: String,
        reason: String,
        names: Vec<String>,
        /// The first time the limit leaves room for it (run certorch then or later).
        #[serde(with = "time::serde::rfc3339")]
        next_slot: time::OffsetDateTime,
        /// The limit that holds it back.
        limit: String,
        /// Asked for with `certorch issue` rather than due: the timer's `run` will not order
        /// it, so the operator is told to ask again at the slot.
        #[serde(skip)]
        requested: bool,
    },
}

/// Everything a run did, in inventory order.
#[derive(Debug, Default, Serialize)]
pub struct RunSummary {
    pub outcomes: Vec<Outcome>,
    /// Orders opened at the CA in this run.
    pub orders: usize,
    /// Problems that failed no certificate but need attention (a TXT record left behind).
    pub warnings: Vec<String>,
    /// A dry run: staging CA, isolated paths, no reloads.
    pub dry_run: bool,
    /// The outcomes could not be recorded in the state (why): the run fails.
    pub record_failed: Option<String>,
    /// Wall-clock time of each stage of the run.
    pub timings: Timings,
    /// Commands certorch ran on hosts, each one SSH session (a channel on the host's one
    /// connection): a fork and a shell on the host.
    pub ssh_sessions: usize,
}

/// Wall-clock milliseconds of each stage of a run, in pipeline order. The stages follow one
/// another (within a stage the hosts are worked on concurrently), so they add up to about
/// `total_ms`, except that deployment starts for each host as soon as its last order is
/// finalized and so overlaps finalization; a stage the run did not reach is 0. For benchmarks (`bench/run`) and for seeing where a slow
/// run spent its time.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Timings {
    /// Loading the account, repairing what a killed run left (orders, TXT records).
    pub setup_ms: u64,
    /// Opening one SSH connection per host, each followed at once by the command that reads
    /// what the host has, the CA's renewal window for its certificates and the decision.
    pub connect_ms: u64,
    /// The rest of the survey: shared labels decided across hosts, windows and stamps stored.
    pub inspect_ms: u64,
    /// The TSIG probe and every name's `_acme-challenge` CNAME.
    pub preflight_ms: u64,
    /// Keys and CSRs made on the hosts, until the last one is made (orders are opened as
    /// keys come in).
    pub key_ms: u64,
    /// Registering the ACME account (only on a run that has none yet).
    pub account_ms: u64,
    /// Opening the orders still left once the last key was made.
    pub order_ms: u64,
    /// The one DNS update of the run.
    pub publish_ms: u64,
    /// Waiting until every authoritative server serves every value.
    pub wait_ms: u64,
    /// The CA validating, finalizing with the hosts' CSRs, downloading the chains (until the
    /// last order is finalized).
    pub validate_ms: u64,
    /// Removing the TXT records.
    pub withdraw_ms: u64,
    /// Signing self-signed and internal certificates.
    pub local_ms: u64,
    /// Writing, checking, reloading and verifying on the hosts, from the first host's start to
    /// the last one's end.
    pub deploy_ms: u64,
    /// Writing the outcomes to the state.
    pub record_ms: u64,
    /// The whole run.
    pub total_ms: u64,
}

/// Milliseconds since `t`, for [`Timings`].
pub fn ms_since(t: std::time::Instant) -> u64 {
    ms_between(t, std::time::Instant::now())
}

/// Milliseconds from `from` to `to` (0 when `to` is earlier), for [`Timings`].
pub fn ms_between(from: std::time::Instant, to: std::time::Instant) -> u64 {
    u64::try_from(to.saturating_duration_since(from).as_millis()).unwrap_or(u64::MAX)
}

impl RunSummary {
    /// True when any certificate failed.
    pub fn failed(&self) -> bool {
        self.record_failed.is_some()
            || self
                .outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Failed(_)))
    }
}

/// Progress events from the stages.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    Stage {
        host: &'a str,
        cert: &'a str,
        stage: Stage,
    },
    Info(&'a str),
}

/// Receives progress while a run goes on.
pub trait Reporter: Send + Sync {
    fn event(&self, event: Event<'_>);
}

/// Progress while a run goes on: bars on a terminal (one per host and certificate, showing
/// its phase), lines on stderr with `-v` elsewhere, nothing otherwise (cron gets silence).
pub struct Progress {
    verbose: bool,
    bars: Option<
        Mutex<(
            indicatif::MultiProgress,
            std::collections::BTreeMap<String, indicatif::ProgressBar>,
        )>,
    >,
}

impl Progress {
    /// `terminal`: stderr is a terminal and bars may be drawn.
    pub fn new(verbose: bool, terminal: bool) -> Self {
        let bars = terminal.then(|| {
            Mutex::new((
                indicatif::MultiProgress::new(),
                std::collections::BTreeMap::new(),
            ))
        });
        Progress { verbose, bars }
    }

    /// Removes the bars before the summary is printed.
    pub fn finish(&self) {
        if let Some(b) = &self.bars
            && let Ok(mut b) = b.lock()
        {
            for bar in b.1.values() {
                bar.finish_and_clear();
            }
            let _ = b.0.clear();
            b.1.clear();
        }
    }
}

impl Reporter for Progress {
    fn event(&self, event: Event<'_>) {
        if let Some(b) = &self.bars {
            if let (Event::Stage { host, cert, stage }, Ok(mut b)) = (&event, b.lock()) {
                let key = format!("{host}/{cert}");
                let (multi, bars) = &mut *b;
                let bar = bars.entry(key.clone()).or_insert_with(|| {
                    let bar = multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {prefix:40} {msg}")
                            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
                    );
                    bar.set_prefix(key);
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    bar
                });
                bar.set_message(stage.as_str());
            }
            return;
        }
        if !self.verbose {
            return;
        }
        // -v without a terminal: structured log lines with host and cert fields, through
        // tracing, so they can be filtered and parsed.
        match event {
            Event::Stage { host, cert, stage } => {
                tracing::info!(host, cert, stage = stage.as_str(), "stage")
            }
            Event::Info(s) => tracing::info!("{s}"),
        }
    }
}

/// How the summary is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A table on stdout, problems on stderr.
    Terminal,
    /// Not a terminal (cron): nothing when all went well, unless verbose; on failure a compact
    /// report of each failed certificate on stderr, for cron to mail.
    Quiet { verbose: bool },
}

/// A run's summary as a command prints it: the summary itself for `--json`, drawn in `style`
/// as text.
pub struct RunOutput<'a> {
    pub summary: &'a RunSummary,
    pub style: Style,
}

impl Serialize for RunOutput<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.summary.serialize(s)
    }
}

impl Render for RunOutput<'_> {
    fn text(&self, out: &mut dyn Write, err: &mut dyn Write) -> std::io::Result<()> {
        render_text(self.summary, self.style, out, err)
    }
}

/// The human summary of a run.
fn render_text(
    summary: &RunSummary,
    style: Style,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    let rows: Vec<[String; 4]> = summary
        .outcomes
        .iter()
        .map(|o| match o {
            Outcome::Issued {
                host,
                cert,
                reason,
                serial,
                not_after,
                ..
            } => [
                format!("{host}/{cert}"),
                "issued".into(),
                date(*not_after),
                format!("{reason}; serial {serial}"),
            ],
            Outcome::Current {
                host,
                cert,
                not_after,
                renew_at,
            } => [
                format!("{host}/{cert}"),
                "current".into(),
                date(*not_after),
                format!("renews from {}", date(*renew_at)),
            ],
            Outcome::Failed(f) => [
                format!("{}/{}", f.host, f.cert),
                "failed".into(),
                String::new(),
                format!("at {}", f.stage.as_str()),
            ],
            Outcome::Deferred {
                host,
                cert,
                reason,
                next_slot,
                limit,
                ..
            } => [
                format!("{host}/{cert}"),
                "deferred".into(),
                String::new(),
                format!("{reason}; next slot {} ({limit})", date(*next_slot)),
            ],
        })
        .collect();
    match style {
        Style::Terminal => {
            let head = [
                "CERTIFICATE".to_string(),
                "RESULT".into(),
                "EXPIRES".into(),
                "DETAIL".into(),
            ];
            let mut w = [0usize; 3];
            for r in std::iter::once(&head).chain(rows.iter()) {
                for (i, c) in r.iter().take(3).enumerate() {
                    w[i] = w[i].max(c.chars().count());
                }
            }
            for r in std::iter::once(&head).chain(rows.iter()) {
                writeln!(
                    out,
                    "{:w0$}  {:w1$}  {:w2$}  {}",
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    w0 = w[0],
                    w1 = w[1],
                    w2 = w[2]
                )?;
            }
        }
        Style::Quiet { verbose: true } => {
            for r in &rows {
                let expires = if r[2].is_empty() {
                    String::new()
                } else {
                    format!(", expires {}", r[2])
                };
                writeln!(out, "{}: {}{expires} ({})", r[0], r[1], r[3])?;
            }
        }
        Style::Quiet { verbose: false } => {}
    }
    for w in &summary.warnings {
        writeln!(err, "warning: {w}")?;
    }
    let deferred: Vec<time::OffsetDateTime> = summary
        .outcomes
        .iter()
        .filter_map(|o| match o {
            // A dry run forces every certificate, but is repeated as a whole.
            Outcome::Deferred {
                next_slot,
                requested,
                ..
            } if !requested || summary.dry_run => Some(*next_slot),
            _ => None,
        })
        .collect();
    // Cron gets silence: deferral is not a failure, and the timer's next run takes them up.
    if let Some(first) = deferred.iter().min()
        && !matches!(style, Style::Quiet { verbose: false })
    {
        writeln!(
            err,
            "note: {} certificate(s) deferred by the CA's rate limits; the next slot opens at {}: run certorch again then (the timer does)",
            deferred.len(),
            date(*first)
        )?;
    }
    // A reissue asked for by hand that is not due: the timer's run will not order it. Said
    // even without a terminal: the operator (or a script) asked for something that did not
    // happen.
    for o in &summary.outcomes {
        if let Outcome::Deferred {
            host,
            cert,
            next_slot,
            limit,
            requested: true,
            ..
        } = o
            && !summary.dry_run
        {
            writeln!(
                err,
                "note: {host}/{cert}: the reissue is deferred by the CA's rate limit ({limit}) until {}: run `certorch issue {host}/{cert}` again then; `certorch run` renews it only when it is due",
                date(*next_slot)
            )?;
        }
    }
    if let Some(e) = &summary.record_failed {
        writeln!(err, "error: {e}")?;
    }
    for o in &summary.outcomes {
        if let Outcome::Failed(f) = o {
            writeln!(
                err,
                "error: {}/{}: {} failed: {}",
                f.host,
                f.cert,
                f.stage.as_str(),
                f.error
            )?;
            if let Some(h) = &f.hint {
                writeln!(err, "  hint: {h}")?;
            }
        }
    }
    Ok(())
}

fn date(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]Z");
    t.format(&f).unwrap_or_else(|_| t.to_string())
}
