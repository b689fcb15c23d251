//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window for a certificate.
//! A certificate renews at a point inside the window; an order that renews carries `replaces`,
//! which Let's Encrypt exempts from its rate limits.

use instant_acme::{Account, CertificateIdentifier, RenewalInfo};
use rustls_pki_types::Der;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Error;

/// A suggested renewal window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

impl From<&RenewalInfo> for Window {
    fn from(r: &RenewalInfo) -> Self {
        Window {
            start: r.suggested_window.start,
            end: r.suggested_window.end,
        }
    }
}

/// The ARI identifier of a certificate: its authority key identifier and serial (§4.1).
pub fn cert_id(leaf_der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    let (_, cert) = X509Certificate::from_der(leaf_der).ok()?;
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })?;
    let serial = cert.raw_serial().to_vec();
    Some(
        CertificateIdentifier::new(Der::from(aki.as_slice()), Der::from(serial.as_slice()))
            .into_owned(),
    )
}

/// Asks the CA for the window; `None` when the CA does not offer ARI.
pub async fn fetch(
    account: &Account,
    directory: &str,
    id: &CertificateIdentifier<'_>,
) -> Result<Option<Window>, Error> {
    retrying!(
        directory,
        "fetching renewal information",
        match account.renewal_info(id).await {
            Ok((info, _retry_after)) => Ok(Some(Window::from(&info))),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(e),
        }
    )
}

/// When to renew within `w`: a point spread uniformly over the window (§4.2 asks clients to
/// pick one at random), derived from the certificate's fingerprint so every run of certorch
/// picks the same point and a fleet does not renew all at once.
pub fn renewal_point(w: Window, fingerprint: &str) -> OffsetDateTime {
    if w.end <= w.start {
        return w.start;
    }
    let h = Sha256::digest(fingerprint.as_bytes());
    let x = u64::from_be_bytes(h[..8].try_into().expect("sha256 is 32 bytes"));
    let frac = (x as f64) / (u64::MAX as f64);
    w.start + (w.end - w.start) * frac
}

/// Whether the window says renew now: past the chosen point, or the whole window is past.
pub fn due(w: Window, fingerprint: &str, now: OffsetDateTime) -> bool {
    now >= w.end || now >= renewal_point(w, fingerprint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// Responses as Let's Encrypt serves them (RFC 9773 §4.2 example shape).
    const NORMAL: &str = r#"{"suggestedWindow":{"start":"2027-01-01T00:00:00Z","end":"2027-01-03T00:00:00Z"},"explanationURL":"https://example.com/docs/ari"}"#;
    const REVOKING: &str =
        r#"{"suggestedWindow":{"start":"2026-11-20T00:00:00Z","end":"2026-11-21T00:00:00Z"}}"#;

    fn window(json: &str) -> Window {
        let info: RenewalInfo = serde_json::from_str(json).unwrap();
        Window::from(&info)
    }

    #[test]
    fn a_normal_window() {
        let w = window(NORMAL);
        let p = renewal_point(w, "abc");
        assert!(p >= w.start && p <= w.end);
        assert_eq!(
            p,
            renewal_point(w, "abc"),
            "the point is stable across runs"
        );
        assert!(!due(w, "abc", datetime!(2026-12-31 23:59 UTC)));
        assert!(due(w, "abc", datetime!(2027-01-03 00:00 UTC)));
        assert!(due(w, "abc", p));
        // Different certificates spread over the window.
        let points: std::collections::BTreeSet<_> =
            (0..20).map(|i| renewal_point(w, &i.to_string())).collect();
        assert!(points.len() > 15);
    }

    #[test]
    fn a_window_moved_into_the_past_means_renew_now() {
        // The CA moved the window earlier (e.g. mass revocation): renew at once.
        assert!(due(
            window(REVOKING),
            "abc",
            datetime!(2026-11-23 08:00 UTC)
        ));
    }

    #[test]
    fn identifiers_from_certificates() {
        // A certificate made by openssl has an AKI; the id is base64url(AKI).base64url(serial).
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let st = std::process::Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                "/CN=t",
                "-set_serial",
                "4660",
            ])
            .arg("-keyout")
            .arg(dir.path().join("k"))
            .arg("-out")
            .arg(&ca)
            .output()
            .unwrap();
        assert!(st.status.success());
        let der = crate::x509::pem_certificates(&std::fs::read(&ca).unwrap())
            .unwrap()
            .remove(0);
        let id = cert_id(&der).unwrap();
        assert_eq!(id.serial, "EjQ"); // 0x1234
        assert!(!id.authority_key_identifier.is_empty());
    }
}
