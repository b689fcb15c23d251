//! The HTTPS client certorch talks ACME through: instant-acme's hyper client with every request
//! bounded in time. Without a bound, a CA that accepts a connection and never answers (Pebble
//! does under load; a real CA can during an incident) would hold a cron run, and its lock,
//! forever; with one, the request fails, the certificate's outcome says so, the run ends.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, Error, HttpClient};

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
                Err(Error::Other(Box::new(NoAnswer(format!(
                    "not sending {what}: the CA left a request unanswered for {}s earlier in this run",
                    timeout.as_secs()
                )))))
            });
        }
        let fut = self.inner.request(req);
        let silent = self.silent.clone();
        Box::pin(async move {
            match tokio::time::timeout(timeout, fut).await {
                Ok(r) => r,
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
pub struct Answer {
    pub status: hyper::StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

/// Sends `req` through `client` and reads the whole answer; `Err` carries what went wrong
/// for an error message.
pub async fn send(
    client: &dyn HttpClient,
    req: hyper::Request<BodyWrapper<Bytes>>,
) -> Result<Answer, String> {
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
    Ok(Answer {
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
}
