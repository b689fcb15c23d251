//! The HTTPS client certorch talks ACME through: instant-acme's hyper client with every request
//! bounded in time. Without a bound, a CA that accepts a connection and never answers (Pebble
//! does under load; a real CA can during an incident) would hold a cron run, and its lock,
//! forever; with one, the request fails, the certificate's outcome says so, the run ends.
//!
//! It also notes each answer's status and `Retry-After` for the step that made the request
//! ([`observe`]): instant-acme turns an error answer into `Error::Api(Problem)` and drops the
//! headers, so this is the one place that sees how long the CA asks certorch to wait
//! (RFC 8555 §6.6, RFC 9110 §10.2.3).

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};
use std::cell::Cell;
use std::time::SystemTime;

/// The last answer the CA gave within one attempt at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// When the CA's `Retry-After` says to ask again.
    pub retry_after: Option<SystemTime>,
}

tokio::task_local! {
    /// Set by [`Timed`] for the future [`observe`] runs: a task-local, so concurrent steps
    /// (orders opened in parallel on one task) each see their own answers, and requests made
    /// outside `observe` cost nothing.
    static LAST: Cell<Option<Answer>>;
}

/// Runs `f` (one attempt at a step) and returns its output with the last answer the CA gave
/// during it (`None` when the last request got no answer at all).
pub async fn observe<F: Future>(f: F) -> (F::Output, Option<Answer>) {
    LAST.scope(Cell::new(None), async move {
        let out = f.await;
        (out, LAST.with(Cell::get))
    })
    .await
}

fn note(answer: Option<Answer>) {
    // Outside `observe` nobody asked: nothing to note.
    LAST.try_with(|c| c.set(answer)).unwrap_or_default();
}

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an IMF-fixdate.
pub fn retry_after(value: &str, now: SystemTime) -> Option<SystemTime> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return now.checked_add(Duration::from_secs(secs));
    }
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let t = time::PrimitiveDateTime::parse(value, format).ok()?;
    Some(t.assume_utc().into())
}

/// How long one ACME request (connect, send, whole answer) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

struct Timed {
    inner: Box<dyn HttpClient>,
    timeout: Duration,
    /// Set by the first request that got no answer: a CA that went quiet for `timeout` is not
    /// asked again in this run, so a run over many certificates ends in one timeout, not one
    /// per order.
    silent: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The CA did not answer in time; not retried (see [`crate::acme::transient`]).
#[derive(Debug)]
pub struct NoAnswer(String);

impl std::fmt::Display for NoAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoAnswer {}

impl HttpClient for Timed {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
        use std::sync::atomic::Ordering;
        let what = format!("{} {}", req.method(), req.uri());
        let timeout = self.timeout;
        if self.silent.load(Ordering::Relaxed) {
            return Box::pin(async move {
                note(None);
                Err(Error::Other(Box::new(NoAnswer(format!(
                    "not sending {what}: the CA left a request unanswered for {}s earlier in this run",
                    timeout.as_secs()
                )))))
            });
        }
        let fut = self.inner.request(req);
        let silent = self.silent.clone();
        Box::pin(async move {
            note(None);
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => {
                    if let Ok(rsp) = &r {
                        note(Some(Answer {
                            status: rsp.parts.status.as_u16(),
                            retry_after: rsp
                                .parts
                                .headers
                                .get(hyper::header::RETRY_AFTER)
                                .and_then(|v| v.to_str().ok())
                                .and_then(|v| retry_after(v, SystemTime::now())),
                        }));
                    }
                    r
                }
                Err(_) => {
                    silent.store(true, Ordering::Relaxed);
                    Err(Error::Other(Box::new(NoAnswer(format!(
                        "the CA did not answer {what} within {}s",
                        timeout.as_secs()
                    )))))
                }
            }
        })
    }
}

/// A client trusting the system's roots, or only `trust_root` (a PEM file) when given.
pub fn client(trust_root: Option<&Path>) -> Result<Box<dyn HttpClient>, String> {
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    let builder = match trust_root {
        None => builder
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?,
        Some(path) => {
            use rustls_pki_types::pem::PemObject;
            let der = rustls_pki_types::CertificateDer::from_pem_file(path)
                .map_err(|e| format!("not a PEM certificate: {e}"))?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(der).map_err(|e| e.to_string())?;
            let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder.with_tls_config(config)
        }
    };
    let connector = builder.https_only().enable_http1().build();
    let hyper: Client<_, BodyWrapper<Bytes>> =
        Client::builder(TokioExecutor::new()).build(connector);
    Ok(Box::new(Timed {
        inner: Box::new(hyper),
        timeout: REQUEST_TIMEOUT,
        silent: Default::default(),
    }))
}

/// What a request returned: status, headers and the whole body.
pub struct Fetched {
    pub status: hyper::StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// Sends `req` through `client` and reads the whole answer; `Err` carries what went wrong
/// for an error message.
pub async fn send(
    client: &dyn HttpClient,
    req: hyper::Request<BodyWrapper<Bytes>>,
) -> Result<Fetched, String> {
    let what = format!("{} {}", req.method(), req.uri());
    let mut rsp = client
        .request(req)
        .await
        .map_err(|e| format!("{what}: {}", super::error_chain(&e)))?;
    let body = rsp
        .body
        .into_bytes()
        .await
        .map_err(|e| format!("{what}: reading the answer: {e}"))?;
    Ok(Fetched {
        status: rsp.parts.status,
        headers: rsp.parts.headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose requests never complete, like a CA that accepted and went quiet.
    struct Silent;

    impl HttpClient for Silent {
        fn request(
            &self,
            _req: hyper::Request<BodyWrapper<Bytes>>,
        ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, Error>> + Send>> {
            Box::pin(std::future::pending())
        }
    }

    #[tokio::test]
    async fn a_silent_ca_fails_the_request_instead_of_hanging() {
        let client = Timed {
            inner: Box::new(Silent),
            timeout: Duration::from_secs(1),
            silent: Default::default(),
        };
        let req = || {
            hyper::Request::post("https://ca.example/acme/new-order")
                .body(BodyWrapper::default())
                .unwrap()
        };
        let e = match client.request(req()).await {
            Err(e) => e,
            Ok(_) => panic!("a request that never completes succeeded"),
        };
        assert!(!crate::acme::transient(&e), "a timeout must not be retried");
        let e = e.to_string();
        assert!(
            e.contains("did not answer POST https://ca.example/acme/new-order within 1s"),
            "{e}"
        );
        // The next request is not sent at all.
        let started = std::time::Instant::now();
        let e = match client.request(req()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("succeeded"),
        };
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(
            e.contains("left a request unanswered for 1s earlier in this run"),
            "{e}"
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(
            retry_after("120", now),
            Some(now + Duration::from_secs(120))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("", now), None);
    }
}
