//! Telling people: after a run, one JSON POST to a webhook (Slack, Mattermost and Matrix
//! bridges read its `text`) and/or one `exec` of an operator's command with the same JSON on
//! stdin, for failures (and, with `on: always`, every issuance).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use serde::Serialize;

use crate::inventory::model::{NotifyConfig, NotifyOn};
use crate::report::{Outcome, RunSummary};
use crate::state::Recorded;

/// One thing worth telling.
#[derive(Debug, Serialize)]
pub struct NotifyEvent {
    /// `failed` or `issued`.
    pub event: &'static str,
    pub host: String,
    pub cert: String,
    pub phase: Option<String>,
    pub error: Option<String>,
    pub hint: Option<String>,
    /// Days left on the certificate the host has now, when certorch knows it.
    pub days_left: Option<i64>,
}

/// The document sent.
#[derive(Debug, Serialize)]
pub struct Notification {
    /// A human summary, one line per event (what chat webhooks show).
    pub text: String,
    pub dry_run: bool,
    pub events: Vec<NotifyEvent>,
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// The events of a run worth telling under `on`.
pub fn events(summary: &RunSummary, on: NotifyOn, recorded: &[Recorded]) -> Vec<NotifyEvent> {
    let now = time::OffsetDateTime::now_utc();
    let days_left = |host: &str, cert: &str| {
        recorded
            .iter()
            .find(|r| r.host == host && r.label == cert)
            .map(|r| (r.not_after - now).whole_days())
    };
    summary
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Failed(f) => Some(NotifyEvent {
                event: "failed",
                host: f.host.clone(),
                cert: f.cert.clone(),
                phase: Some(f.stage.as_str().to_string()),
                error: Some(f.error.clone()),
                hint: f.hint.clone(),
                days_left: days_left(&f.host, &f.cert),
            }),
            Outcome::Issued {
                host,
                cert,
                not_after,
                ..
            } if on == NotifyOn::Always => Some(NotifyEvent {
                event: "issued",
                host: host.clone(),
                cert: cert.clone(),
                phase: None,
                error: None,
                hint: None,
                days_left: Some((*not_after - now).whole_days()),
            }),
            _ => None,
        })
        .collect()
}

/// Sends the run's events; returns a warning per channel that failed.
pub async fn send(cfg: &NotifyConfig, summary: &RunSummary, recorded: &[Recorded]) -> Vec<String> {
    let events = events(summary, cfg.on, recorded);
    if events.is_empty() {
        return Vec::new();
    }
    let text = events
        .iter()
        .map(|e| match e.event {
            "failed" => format!(
                "certorch: {}/{} failed at {}: {}{}",
                e.host,
                e.cert,
                e.phase.as_deref().unwrap_or("?"),
                e.error.as_deref().unwrap_or(""),
                e.days_left
                    .map(|d| format!(" ({d} days left on the current certificate)"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "certorch: {}/{} issued, valid {} days",
                e.host,
                e.cert,
                e.days_left.unwrap_or(0)
            ),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let doc = Notification {
        text,
        dry_run: summary.dry_run,
        events,
    };
    let body = match serde_json::to_vec(&doc) {
        Ok(b) => b,
        Err(e) => return vec![format!("cannot encode the notification: {e}")],
    };
    let mut warnings = Vec::new();
    if let Some(url) = &cfg.webhook
        && let Err(e) = post(url, body.clone()).await
    {
        warnings.push(format!(
            "the webhook {} did not take the notification: {e}",
            redact(url)
        ));
    }
    if let Some(argv) = &cfg.exec
        && let Err(e) = exec(argv, &body, TIMEOUT * 3).await
    {
        warnings.push(format!("the notify command `{}` failed: {e}", argv[0]));
    }
    warnings
}

/// A webhook URL's path often is its secret (Slack, Mattermost): show scheme and host only,
/// never a user name or password before an `@` (the inventory refuses those; this is the
/// second wall).
fn redact(url: &str) -> String {
    match url.find("://").map(|i| i + 3) {
        Some(start) => {
            let host_end = url[start..].find('/').map_or(url.len(), |i| start + i);
            let host_start = url[start..host_end]
                .rfind('@')
                .map_or(start, |i| start + i + 1);
            format!("{}{}/…", &url[..start], &url[host_start..host_end])
        }
        None => "(webhook)".into(),
    }
}

async fn post(url: &str, body: Vec<u8>) -> Result<(), String> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| e.to_string())?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Full<Bytes>>(https);
    let req = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header(
            "user-agent",
            concat!("certorch/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let rsp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| crate::acme::error_chain(&e))?;
    if rsp.status().is_success() {
        Ok(())
    } else {
        Err(format!("HTTP {}", rsp.status()))
    }
}

/// Runs the notify command with the notification on stdin; it and anything it started are
/// killed after `timeout`, so a command that hangs cannot hold the run at exit.
async fn exec(argv: &[String], body: &[u8], timeout: Duration) -> Result<(), String> {
    let done = crate::process::run(argv, body, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if done.status.success() {
        Ok(())
    } else {
        Err(format!("{}: {}", done.status, done.stderr.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Failure, Stage};

    /// Regression (holes #2): a notify command that never exits, with a child that never
    /// exits either, is killed at the timeout instead of holding certorch at exit.
    #[tokio::test]
    async fn a_notify_command_that_hangs_is_killed_at_the_timeout() {
        let argv: Vec<String> = ["sh", "-c", "sleep 1000 & sleep 1000"]
            .map(String::from)
            .into();
        let started = std::time::Instant::now();
        let err = exec(&argv, b"{}", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{err}");
        assert_eq!(
            err,
            "did not finish within 1s and was killed with everything it started"
        );
    }

    #[test]
    fn webhook_urls_are_redacted() {
        assert_eq!(
            redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact("http://127.0.0.1:8080"), "http://127.0.0.1:8080/…");
        assert_eq!(
            redact("https://user:hunter2@hooks.example/x"),
            "https://hooks.example/…"
        );
    }

    #[test]
    fn failures_always_issuance_on_request() {
        let summary = RunSummary {
            outcomes: vec![
                Outcome::Failed(Failure {
                    host: "h".into(),
                    cert: "c".into(),
                    stage: Stage::Connect,
                    kind: crate::problem::Kind::SshUnreachable,
                    error: "down".into(),
                    hint: None,
                }),
                Outcome::Issued {
                    host: "h2".into(),
                    cert: "c".into(),
                    reason: "r".into(),
                    names: vec![],
                    serial: "1".into(),
                    fingerprint: "f".into(),
                    not_after: time::OffsetDateTime::now_utc() + time::Duration::days(90),
                },
            ],
            ..Default::default()
        };
        let f = events(&summary, NotifyOn::Failure, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].event, f[0].phase.as_deref()),
            ("failed", Some("connect"))
        );
        assert_eq!(events(&summary, NotifyOn::Always, &[]).len(), 2);
    }
}
