//! ACME (RFC 8555) through instant-acme: the account kept in the state directory, orders with
//! dns-01 challenges, finalization with the host's CSR.

pub mod account;
pub mod ari;
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
                }
            }
            other => Error::Unreachable {
                directory: directory.into(),
                step,
                detail: error_chain(&other),
            },
        }
    }

    /// What the operator should do next.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::Refused { detail, .. } if detail.contains("rateLimited") => {
                "the CA's rate limit was hit: wait until the time it names, and check `certorch plan` before the next run".into()
            }
            Error::Refused { detail, .. } if detail.contains("unauthorized") || detail.contains("dns") => {
                "the CA could not see the TXT record: check that _acme-challenge CNAMEs point into the signing zone and every name server of that zone answers".into()
            }
            Error::Refused { .. } => "read the CA's detail above; run again once it is fixed".into(),
            Error::Unreachable { directory, .. } => format!("check the network path to {directory} and acme.trust_root if the CA uses a private root"),
            Error::AccountFile { .. } => "fix the file's permissions, or move it away to register a new account".into(),
            Error::Chain(_) => "the CA returned an unexpected chain; run again, and report it if it repeats".into(),
        })
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
