//! Rendering what a run did. Stages send [`Event`]s to a [`Reporter`] and return a
//! [`RunSummary`]; they never print. The renderers here only draw.

use std::io::Write;
use std::sync::Mutex;

use serde::Serialize;

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
    Deploy,
    Reload,
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
            Stage::Deploy => "deploy",
            Stage::Reload => "reload",
        }
    }
}

/// A certificate that could not be brought up to date, and what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub host: String,
    pub cert: String,
    pub stage: Stage,
    pub error: String,
    pub hint: Option<String>,
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
}

/// Everything a run did, in inventory order.
#[derive(Debug, Default, Serialize)]
pub struct RunSummary {
    pub outcomes: Vec<Outcome>,
    /// Orders opened at the CA in this run.
    pub orders: usize,
    /// Problems that failed no certificate but need attention (a TXT record left behind).
    pub warnings: Vec<String>,
}

impl RunSummary {
    /// True when any certificate failed.
    pub fn failed(&self) -> bool {
        self.outcomes
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

/// Writes progress lines to stderr when verbose, nothing otherwise (cron gets silence).
pub struct Lines {
    pub verbose: bool,
    out: Mutex<std::io::Stderr>,
}

impl Lines {
    pub fn new(verbose: bool) -> Self {
        Lines {
            verbose,
            out: Mutex::new(std::io::stderr()),
        }
    }
}

impl Reporter for Lines {
    fn event(&self, event: Event<'_>) {
        if !self.verbose {
            return;
        }
        let line = match event {
            Event::Stage { host, cert, stage } => format!("{host}/{cert}: {}", stage.as_str()),
            Event::Info(s) => s.to_string(),
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
    }
}

/// The human summary: one line per certificate, then each failure with its hint.
pub fn render_text(
    summary: &RunSummary,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<()> {
    for o in &summary.outcomes {
        match o {
            Outcome::Issued {
                host,
                cert,
                reason,
                serial,
                not_after,
                ..
            } => writeln!(
                out,
                "{host}/{cert}: issued ({reason}), serial {serial}, expires {}",
                date(*not_after)
            )?,
            Outcome::Current {
                host,
                cert,
                not_after,
                renew_at,
            } => writeln!(
                out,
                "{host}/{cert}: current, expires {}, renews from {}",
                date(*not_after),
                date(*renew_at)
            )?,
            Outcome::Failed(f) => {
                writeln!(out, "{}/{}: failed at {}", f.host, f.cert, f.stage.as_str())?
            }
        }
    }
    for w in &summary.warnings {
        writeln!(err, "warning: {w}")?;
    }
    for o in &summary.outcomes {
        if let Outcome::Failed(f) = o {
            writeln!(err, "error: {}/{}: {}", f.host, f.cert, f.error)?;
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
