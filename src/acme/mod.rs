//! ACME (RFC 8555) through instant-acme: the account kept in the state directory, orders with
//! dns-01 challenges, finalization with the host's CSR.

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
    },
    #[error("cannot reach the CA at {directory} ({step}): {detail}")]
    Unreachable {
        directory: String,
        step: &'static str,
        detail: String,
    },
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
                }
            }
            other => Error::Unreachable {
                directory: directory.into(),
                step,
                detail: error_chain(&other),
            },
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
            Error::Refused { .. } => "read the CA's detail above; run again once it is fixed".into(),
            Error::Unreachable { directory, .. } => format!("check the network path to {directory} and acme.trust_root if the CA uses a private root"),
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
            Error::Refused { .. } => Kind::CaRefused,
            Error::Unreachable { .. } => Kind::CaUnreachable,
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
            ) || p.status.is_some_and(|s| s >= 500)
        }
        // A CA that did not answer within the request timeout is not retried: waiting the
        // timeout again per attempt would stretch one outage over minutes per order.
        instant_acme::Error::Other(e) => !e.is::<http::NoAnswer>(),
        instant_acme::Error::Hyper(_) | instant_acme::Error::Http(_) => true,
        _ => false,
    }
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
}
