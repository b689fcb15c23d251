//! ACME (RFC 8555) through instant-acme: the account kept in the state directory, orders with
//! dns-01 challenges, finalization with the host's CSR.

use std::time::{Duration, SystemTime};

/// Makes the request in `$e` (an expression ending in `.await`) until it succeeds or
/// [`next`] says to stop: transient errors are retried after [`BACKOFF`], a `Retry-After` of
/// up to [`MAX_WAIT`] is honoured, anything else fails the step as [`Error::from_attempt`]
/// describes it. Evaluates to `Result<_, Error>`.
macro_rules! retrying {
    ($directory:expr, $step:expr, $e:expr) => {{
        let mut attempt = 0;
        loop {
            let (r, seen) = $crate::acme::http::observe(async { $e }).await;
            match r {
                Ok(v) => break Ok(v),
                Err(e) => {
                    let now = std::time::SystemTime::now();
                    match $crate::acme::next(&e, seen, attempt, now) {
                        Some(wait) => {
                            tokio::time::sleep(wait).await;
                            attempt += 1;
                        }
                        None => {
                            break Err($crate::acme::Error::from_attempt(
                                $directory, $step, e, seen, now,
                            ));
                        }
                    }
                }
            }
        }
    }};
}

pub mod account;
pub mod ari;
pub mod chain;
pub mod directory;
pub mod http;
pub mod order;

pub use account::load_or_create;
pub use order::OpenOrder;

/// An ACME step failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the CA at {directory} refused {step}: {detail}")]
    Refused {
        directory: String,
        step: &'static str,
        detail: String,
        /// The problem type without its URN prefix (`rateLimited`, `unauthorized`), when the
        /// CA named one (RFC 8555 §6.7).
        problem: Option<String>,
        /// The HTTP status of the CA's answer, when there was one.
        status: Option<u16>,
    },
    /// The CA asked to be left alone (429, or a 5xx with `Retry-After`) for longer than a run
    /// waits.
    #[error("the CA at {directory} refused {step} and asks certorch to come back after {}: {detail}", when(.until))]
    Later {
        directory: String,
        step: &'static str,
        detail: String,
        until: SystemTime,
        /// A rate limit (429, `rateLimited`), not an outage.
        rate_limited: bool,
    },
    #[error("cannot reach the CA at {directory} ({step}): {detail}")]
    Unreachable {
        directory: String,
        step: &'static str,
        detail: String,
    },
    /// The CA created the order but did not name in it the certificate the order `replaces`,
    /// as a CA that offers renewal information must (RFC 9773 §5): it took the order for a
    /// plain new one.
    #[error(
        "the CA at {directory} created the order but did not reflect its `replaces` (RFC 9773 §5): {detail}"
    )]
    ReplacesIgnored { directory: String, detail: String },
    #[error("account file {path}: {detail}")]
    AccountFile { path: String, detail: String },
    #[error("{0}")]
    Chain(String),
}

impl Error {
    /// Wraps an instant-acme error with the step it happened in.
    pub fn from_acme(directory: &str, step: &'static str, e: instant_acme::Error) -> Error {
        match e {
            instant_acme::Error::Api(p) => {
                let problem = p.r#type.as_deref().map(|t| {
                    t.trim_start_matches("urn:ietf:params:acme:error:")
                        .to_string()
                });
                let mut detail = match (&p.r#type, &p.detail) {
                    (Some(t), Some(d)) => format!(
                        "{d} ({})",
                        t.trim_start_matches("urn:ietf:params:acme:error:")
                    ),
                    (None, Some(d)) => d.clone(),
                    (Some(t), None) => t.clone(),
                    (None, None) => "no detail".into(),
                };
                for sub in &p.subproblems {
                    if let Some(d) = &sub.detail {
                        detail.push_str(&format!("; {d}"));
                    }
                }
                Error::Refused {
                    directory: directory.into(),
                    step,
                    detail,
                    problem,
                    status: p.status,
                }
            }
            other if replaces_not_reflected(&other) => Error::ReplacesIgnored {
                directory: directory.into(),
                detail: error_chain(&other),
            },
            other => Error::Unreachable {
                directory: directory.into(),
                step,
                detail: error_chain(&other),
            },
        }
    }

    /// The last attempt at `step` failed with `e`, the CA's last answer being `seen`: a
    /// `Retry-After` still ahead on a rate limit or a server error makes it [`Error::Later`].
    pub fn from_attempt(
        directory: &str,
        step: &'static str,
        e: instant_acme::Error,
        seen: Option<http::Answer>,
        now: SystemTime,
    ) -> Error {
        let limited = rate_limited(&e, seen);
        let until = seen
            .and_then(|a| a.retry_after)
            .filter(|t| *t > now)
            .filter(|_| limited || transient(&e) || server_error(seen));
        let plain = Error::from_acme(directory, step, e);
        match (until, plain) {
            (Some(until), Error::Refused { detail, .. } | Error::Unreachable { detail, .. }) => {
                Error::Later {
                    directory: directory.into(),
                    step,
                    detail,
                    until,
                    rate_limited: limited,
                }
            }
            (_, plain) => plain,
        }
    }

    /// Whether the CA said, for the URL asked, that it holds nothing there for this account:
    /// 404, `malformed` (Pebble's answer for an unknown order) or `unauthorized` (another
    /// account's). Anything else (no answer, a 5xx) says nothing about the order.
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Refused {
                problem, status, ..
            } => {
                *status == Some(404)
                    || matches!(problem.as_deref(), Some("malformed" | "unauthorized"))
            }
            _ => false,
        }
    }

    /// The CA's problem type, when it named one.
    pub fn problem(&self) -> Option<&str> {
        match self {
            Error::Refused { problem, .. } => problem.as_deref(),
            _ => None,
        }
    }

    /// The CA could not validate a challenge (RFC 8555 §6.7: the response did not match, or the
    /// lookup failed).
    pub fn is_validation_failure(&self) -> bool {
        matches!(
            self.problem(),
            Some("unauthorized" | "incorrectResponse" | "dns" | "connection" | "caa")
        )
    }

    /// What the operator should do next.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Refused { problem: Some(p), .. } if p == "rateLimited" => {
                "the CA's rate limit was hit: wait until the time it names, and check `certorch plan` before the next run".into()
            }
            e @ Error::Refused { .. } if e.is_validation_failure() => {
                "the CA could not see the TXT record: check that _acme-challenge CNAMEs point into the signing zone and every name server of that zone answers".into()
            }
            Error::Refused { status: Some(s), .. } if *s >= 500 => format!("the CA is in trouble (HTTP {s}) and stayed so through {} retries: run again later; its status page may say more", BACKOFF.len()),
            Error::Refused { .. } => "read the CA's detail above; run again once it is fixed".into(),
            Error::Later { until, rate_limited: true, .. } => format!("the CA's rate limit was hit: it takes requests again after {}; run again after then (a run before only hits the limit again), and check `certorch plan` first", when(until)),
            Error::Later { until, .. } => format!("the CA is unavailable and asks to be left alone until {}: run again after then; certorch waits up to {}s within a run, not longer", when(until), MAX_WAIT.as_secs()),
            Error::Unreachable { directory, .. } => format!("check the network path to {directory} and acme.trust_root if the CA uses a private root"),
            Error::ReplacesIgnored { .. } => "the CA counts this renewal as a new order: certorch orders without `replaces` from this CA for the rest of the run; report the CA's missing `replaces` to its operator".into(),
            Error::AccountFile { .. } => "fix the file's permissions, or move it away to register a new account".into(),
            Error::Chain(_) => "the CA returned an unexpected chain; run again, and report it if it repeats".into(),
        })
    }
}

impl crate::problem::Problem for Error {
    fn kind(&self) -> crate::problem::Kind {
        use crate::problem::Kind;
        match self {
            Error::Refused {
                problem: Some(p), ..
            } if p == "rateLimited" => Kind::CaRateLimited,
            e @ Error::Refused { .. } if e.is_validation_failure() => Kind::CaUnauthorized,
            Error::Refused {
                status: Some(s), ..
            } if *s >= 500 => Kind::CaUnavailable,
            Error::Refused { .. } => Kind::CaRefused,
            Error::Later {
                rate_limited: true, ..
            } => Kind::CaRateLimited,
            Error::Later { .. } => Kind::CaUnavailable,
            Error::Unreachable { .. } => Kind::CaUnreachable,
            Error::ReplacesIgnored { .. } => Kind::CaRefused,
            Error::AccountFile { .. } => Kind::CaAccount,
            Error::Chain(_) => Kind::CaBadChain,
        }
    }
    fn hint(&self) -> Option<String> {
        Error::hint(self)
    }
}

/// Joins an error and its sources into one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s = format!("{s}: {text}");
        }
        src = inner.source();
    }
    s
}

/// Whether an ACME error is worth retrying at once: the CA's internal errors (5xx,
/// `serverInternal`), broken connections, and `badNonce` (RFC 8555 §6.5: the client should
/// retry; instant-acme retries it three times within one request, and a CA that rejects some
/// nonces at random — Pebble, 5 % — occasionally rejects all three). `rateLimited` is not: its
/// window is hours long, so the run reports it with the CA's detail instead (RFC 8555 §6.6).
pub fn transient(e: &instant_acme::Error) -> bool {
    match e {
        instant_acme::Error::Api(p) => {
            matches!(
                p.r#type.as_deref(),
                Some(
                    "urn:ietf:params:acme:error:serverInternal"
                        | "urn:ietf:params:acme:error:badNonce"
                )
            ) || p.status.is_some_and(|s| s >= 500) && p.status != Some(501)
        }
        // A CA that did not answer within the request timeout is not retried: waiting the
        // timeout again per attempt would stretch one outage over minutes per order. Nor is
        // an order created without its `replaces`: asking again creates another order.
        other @ instant_acme::Error::Other(e) => {
            !e.is::<http::NoAnswer>() && !replaces_not_reflected(other)
        }
        instant_acme::Error::Hyper(_) | instant_acme::Error::Http(_) => true,
        _ => false,
    }
}

/// Whether instant-acme refused a created order because the CA did not reflect the
/// `replaces` it was asked for (instant-acme 0.8 checks RFC 9773 §5 and says so only in its
/// message; tests/schedule.rs `a_ca_that_drops_replaces_costs_one_plain_order_more` runs it
/// against a CA that drops it).
fn replaces_not_reflected(e: &instant_acme::Error) -> bool {
    matches!(e, instant_acme::Error::Other(inner) if inner.to_string().starts_with("replaces field mismatch"))
}

/// Whether the CA's last answer was a server error (its body may not have been a problem
/// document: instant-acme then reports a parse error).
fn server_error(seen: Option<http::Answer>) -> bool {
    seen.is_some_and(|a| a.status >= 500 && a.status != 501)
}

/// Whether the CA refused for a rate limit (RFC 8555 §6.6).
fn rate_limited(e: &instant_acme::Error, seen: Option<http::Answer>) -> bool {
    seen.is_some_and(|a| a.status == 429)
        || matches!(e, instant_acme::Error::Api(p)
            if p.r#type.as_deref() == Some("urn:ietf:params:acme:error:rateLimited")
                || p.status == Some(429))
}

/// How long to wait before attempt `attempt + 1` at a step whose attempt `attempt` (from 0)
/// failed with `e`, the CA's last answer being `seen`; `None`: fail the step now.
/// - A rate limit is retried only after the CA's `Retry-After`, and only when that is at most
///   [`MAX_WAIT`]: asking again at once only counts against the limit.
/// - A server error or `badNonce` or a broken connection is retried after the CA's
///   `Retry-After` if it gave one (failing at once when that is over [`MAX_WAIT`]), else after
///   [`BACKOFF`].
/// - Anything else (the CA refused for a reason, or did not answer in time) is final.
pub fn next(
    e: &instant_acme::Error,
    seen: Option<http::Answer>,
    attempt: usize,
    now: SystemTime,
) -> Option<Duration> {
    let backoff = *BACKOFF.get(attempt)?;
    let after = seen
        .and_then(|a| a.retry_after)
        .map(|t| t.duration_since(now).unwrap_or(Duration::ZERO));
    if rate_limited(e, seen) {
        return after.filter(|d| *d <= MAX_WAIT);
    }
    if !transient(e) && !server_error(seen) {
        return None;
    }
    match after {
        Some(d) => (d <= MAX_WAIT).then_some(d),
        None => Some(backoff),
    }
}

/// The longest `Retry-After` certorch waits out within a run. A CA asking for longer fails
/// the certificate with the time in its hint: a cron run holding the lock for an hour is
/// worse than the next run.
pub const MAX_WAIT: Duration = Duration::from_secs(60);

/// A time for the operator: RFC 3339, UTC, to the second.
fn when(t: &SystemTime) -> String {
    let t = time::OffsetDateTime::from(*t)
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::from(*t));
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| format!("{t}"))
}

/// Delays between attempts at a step that failed transiently.
pub const BACKOFF: [std::time::Duration; 3] = [
    std::time::Duration::from_secs(1),
    std::time::Duration::from_secs(3),
    std::time::Duration::from_secs(9),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(json: &str) -> instant_acme::Error {
        instant_acme::Error::Api(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn a_missing_replaces_is_told_apart_and_not_retried() {
        let dropped = || {
            instant_acme::Error::Other(
                "replaces field mismatch: expected Some(CertificateIdentifier { .. }), found None"
                    .into(),
            )
        };
        assert!(!transient(&dropped()));
        assert_eq!(next(&dropped(), None, 0, SystemTime::now()), None);
        let e = Error::from_acme("https://ca/dir", "a new order", dropped());
        assert!(matches!(e, Error::ReplacesIgnored { .. }), "{e:?}");
        assert_eq!(
            crate::problem::Problem::kind(&e),
            crate::problem::Kind::CaRefused
        );
        assert!(e.hint().unwrap().contains("without `replaces`"));
        // Any other failure of that kind is still a broken exchange, retried.
        assert!(transient(&instant_acme::Error::Other(
            "connection reset".into()
        )));
    }

    #[test]
    fn which_errors_are_retried() {
        assert!(transient(&problem(
            r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"oops","status":500}"#
        )));
        assert!(transient(&problem(
            r#"{"detail":"bad gateway","status":502}"#
        )));
        assert!(transient(&problem(
            r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce","status":400}"#
        )));
        let limited = problem(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-11-24T08:00:00Z","status":429}"#,
        );
        assert!(!transient(&limited));
        let e = Error::from_acme("https://ca/dir", "a new order", limited);
        assert!(
            e.to_string()
                .contains("retry after 2026-11-24T08:00:00Z (rateLimited)"),
            "{e}"
        );
        assert!(e.hint().unwrap().starts_with("the CA's rate limit was hit"));
        assert!(!transient(&problem(
            r#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no","status":403}"#
        )));
    }

    #[test]
    fn what_to_do_after_a_failed_attempt() {
        use crate::problem::{Kind, Problem};
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let seen = |status, after: Option<u64>| {
            Some(http::Answer {
                status,
                retry_after: after.map(|s| now + Duration::from_secs(s)),
            })
        };
        let internal = || {
            problem(
                r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"oops","status":500}"#,
            )
        };
        let limited = || {
            problem(
                r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many","status":429}"#,
            )
        };
        // Server errors: backoff, or the CA's Retry-After when it is short; never past the
        // last attempt.
        assert_eq!(next(&internal(), seen(500, None), 0, now), Some(BACKOFF[0]));
        assert_eq!(next(&internal(), seen(500, None), 2, now), Some(BACKOFF[2]));
        assert_eq!(next(&internal(), seen(500, None), 3, now), None);
        assert_eq!(
            next(&internal(), seen(503, Some(2)), 0, now),
            Some(Duration::from_secs(2))
        );
        assert_eq!(next(&internal(), seen(503, Some(3600)), 0, now), None);
        // A 5xx whose body was no problem document (a proxy's HTML page) is still a 5xx.
        let garbage = instant_acme::Error::Str("not JSON");
        assert_eq!(next(&garbage, seen(502, None), 0, now), Some(BACKOFF[0]));
        assert_eq!(next(&garbage, seen(400, None), 0, now), None);
        // A rate limit: never at once; a short Retry-After is waited out, a long one fails.
        assert_eq!(next(&limited(), seen(429, None), 0, now), None);
        assert_eq!(
            next(&limited(), seen(429, Some(5)), 0, now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(next(&limited(), seen(429, Some(3600)), 0, now), None);

        // What the operator gets.
        let e = Error::from_attempt(
            "https://ca/dir",
            "a new order",
            limited(),
            seen(429, Some(3600)),
            now,
        );
        assert_eq!(e.kind(), Kind::CaRateLimited);
        assert!(
            e.to_string()
                .contains("come back after 2027-01-15T09:00:00Z"),
            "{e}"
        );
        assert!(
            e.hint()
                .unwrap()
                .contains("again after 2027-01-15T09:00:00Z")
        );
        let e = Error::from_attempt(
            "https://ca/dir",
            "a new order",
            internal(),
            seen(503, Some(3600)),
            now,
        );
        assert_eq!(e.kind(), Kind::CaUnavailable);
        assert!(
            e.hint().unwrap().contains("until 2027-01-15T09:00:00Z"),
            "{e}"
        );
        let e = Error::from_attempt(
            "https://ca/dir",
            "a new order",
            internal(),
            seen(500, None),
            now,
        );
        assert_eq!(e.kind(), Kind::CaUnavailable);
        assert!(
            e.hint()
                .unwrap()
                .starts_with("the CA is in trouble (HTTP 500)")
        );
        let e = Error::from_attempt(
            "https://ca/dir",
            "a new order",
            limited(),
            seen(429, None),
            now,
        );
        assert_eq!(e.kind(), Kind::CaRateLimited);
        assert!(
            e.hint()
                .unwrap()
                .starts_with("the CA's rate limit was hit: wait until")
        );
    }

    #[test]
    fn only_a_definite_answer_means_an_order_is_gone() {
        let now = SystemTime::now();
        let gone = |json: &str, status| {
            Error::from_attempt(
                "https://ca/dir",
                "fetching an interrupted order",
                problem(json),
                Some(http::Answer {
                    status,
                    retry_after: None,
                }),
                now,
            )
            .is_not_found()
        };
        assert!(gone(
            r#"{"type":"urn:ietf:params:acme:error:malformed","detail":"no such order","status":404}"#,
            404
        ));
        assert!(gone(
            r#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"not yours","status":403}"#,
            403
        ));
        assert!(!gone(
            r#"{"type":"urn:ietf:params:acme:error:serverInternal","detail":"oops","status":500}"#,
            500
        ));
        let unreachable = Error::from_acme(
            "https://ca/dir",
            "fetching an interrupted order",
            instant_acme::Error::Str("connection reset"),
        );
        assert!(!unreachable.is_not_found());
    }
}
