//! `certorch status`: what the state says about every certificate, without touching hosts or
//! the CA; `--json` for tools and `--prometheus FILE` for node_exporter's textfile collector.

use std::io::Write;
use std::path::Path;

use serde::Serialize;
use time::OffsetDateTime;

use super::{Cli, Command, exit};

use crate::report::{Printer, Render};
use crate::state::{LastResult, Recorded, fmt_time};

/// One line of `status`.
#[derive(Debug, Serialize)]
pub struct StatusLine {
    pub host: String,
    pub cert: String,
    pub names: Vec<String>,
    /// False when the inventory has the certificate but certorch never deployed it.
    pub deployed: bool,
    pub serial: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_after: Option<OffsetDateTime>,
    pub days_left: Option<i64>,
    pub last_result: String,
    /// When the last run deferred it for the CA's rate limits: the first time it may be ordered.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_slot: Option<OffsetDateTime>,
    /// The last run left it in order (for the textfile).
    #[serde(skip)]
    pub ok: bool,
}

pub async fn execute(cli: &Cli) -> u8 {
    let Command::Status { prometheus } = &cli.command else {
        unreachable!("dispatched on Status")
    };
    let limit = &cli.limit;
    let (inv, targets) = match super::load_targets(cli, limit) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let state =
        match super::state_location(cli, &inv).and_then(|l| super::open_state_read_only(cli, &l)) {
            Ok(s) => s,
            Err(code) => return code,
        };
    let read = state
        .certificates()
        .and_then(|r| Ok((r, state.deferrals()?)));
    let (recorded, deferrals) = match read {
        Ok(r) => r,
        Err(e) => return super::state_error(cli, &e),
    };
    let now = OffsetDateTime::now_utc();
    let mut lines = Vec::new();
    for t in &targets {
        let host = &inv.hosts[t.host];
        for spec in host
            .certs
            .iter()
            .filter(|s| t.cert.as_ref().is_none_or(|c| c == &s.label))
        {
            let rec: Option<&Recorded> = recorded
                .iter()
                .find(|r| r.host == host.name && r.label == spec.label);
            // A certificate never deployed has no record: its deferral is in the audit log.
            let next_slot = match rec.map(|r| &r.last_result) {
                Some(LastResult::Deferred { until }) => Some(*until),
                Some(_) => None,
                None => deferrals
                    .iter()
                    .find(|(h, l, _)| h == &host.name && l == &spec.label)
                    .and_then(|(_, _, detail)| deferred_until(detail)),
            };
            lines.push(StatusLine {
                next_slot,
                host: host.name.clone(),
                cert: spec.label.clone(),
                names: spec.names.iter().map(|n| n.to_string()).collect(),
                deployed: rec.is_some(),
                serial: rec.map(|r| r.serial.clone()),
                not_after: rec.map(|r| r.not_after),
                days_left: rec.map(|r| (r.not_after - now).whole_days()),
                last_result: match (rec, next_slot) {
                    (Some(r), _) => r.last_result.to_string(),
                    (None, Some(t)) => format!("deferred until {}", fmt_time(t)),
                    (None, None) => "never issued".to_string(),
                },
                ok: rec.is_some_and(|r| r.last_result.ok()),
            });
        }
    }
    if let Some(path) = prometheus
        && let Err(e) = write_textfile(path, &lines, now)
    {
        eprintln!("error: cannot write {}: {e}", path.display());
        eprintln!(
            "  hint: point --prometheus at node_exporter's textfile directory, writable by this user"
        );
        return exit::SOME_FAILED;
    }
    let report = Status {
        lines,
        // With --prometheus the file is the output; the lines only when asked for.
        text: prometheus.is_none() || cli.verbose,
    };
    match (Printer { json: cli.json }).print(&report) {
        Ok(()) => exit::OK,
        Err(e) => crate::report::printer::output_failed(&e),
    }
}

/// What `status` prints: a list of lines (`--json`), or text when `text` is set.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct Status {
    lines: Vec<StatusLine>,
    #[serde(skip)]
    text: bool,
}

impl Render for Status {
    fn text(&self, out: &mut dyn Write, _err: &mut dyn Write) -> std::io::Result<()> {
        if !self.text {
            return Ok(());
        }
        for l in &self.lines {
            match (l.not_after, l.days_left) {
                (Some(na), Some(days)) => writeln!(
                    out,
                    "{}/{}  {}  expires {} ({days} days)  last: {}",
                    l.host,
                    l.cert,
                    l.names.join(","),
                    fmt_time(na),
                    l.last_result
                )?,
                _ => writeln!(
                    out,
                    "{}/{}  {}  {}",
                    l.host,
                    l.cert,
                    l.names.join(","),
                    l.last_result
                )?,
            }
        }
        Ok(())
    }
}

/// The time in an audit entry's `until <time>: <limit>`.
fn deferred_until(detail: &str) -> Option<OffsetDateTime> {
    let t = detail.strip_prefix("until ")?.split(": ").next()?;
    OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
}

/// Escapes a Prometheus label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Writes the metrics through a temporary file and rename, so node_exporter never reads half.
fn write_textfile(path: &Path, lines: &[StatusLine], now: OffsetDateTime) -> std::io::Result<()> {
    let mut s = String::new();
    s.push_str("# HELP certorch_certificate_expiry_timestamp_seconds When the deployed certificate expires (0: never deployed).\n");
    s.push_str("# TYPE certorch_certificate_expiry_timestamp_seconds gauge\n");
    for l in lines {
        let t = l.not_after.map_or(0, |t| t.unix_timestamp());
        s.push_str(&format!(
            "certorch_certificate_expiry_timestamp_seconds{{host=\"{}\",cert=\"{}\"}} {t}\n",
            label(&l.host),
            label(&l.cert)
        ));
    }
    s.push_str("# HELP certorch_certificate_last_run_ok Whether certorch's last run left the certificate in order.\n");
    s.push_str("# TYPE certorch_certificate_last_run_ok gauge\n");
    for l in lines {
        let ok = u8::from(l.deployed && l.ok);
        s.push_str(&format!(
            "certorch_certificate_last_run_ok{{host=\"{}\",cert=\"{}\"}} {ok}\n",
            label(&l.host),
            label(&l.cert)
        ));
    }
    s.push_str("# HELP certorch_status_generated_timestamp_seconds When this file was written.\n");
    s.push_str("# TYPE certorch_status_generated_timestamp_seconds gauge\n");
    s.push_str(&format!(
        "certorch_status_generated_timestamp_seconds {}\n",
        now.unix_timestamp()
    ));
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, s)?;
    std::fs::rename(&tmp, path)
}
