//! Alternate chains (RFC 8555 §7.4.2): the CA may offer the same certificate under other
//! roots, each at a URL in a `Link: rel="alternate"` header of the certificate's answer.
//! `acme.preferred_chain` names the one to deploy by issuer common name.
//!
//! instant-acme 0.8.5 downloads only the default chain and drops the headers of that answer,
//! and has no public way to send a POST-as-GET to another URL; so the certificate URL and its
//! alternates are fetched here, with a JWS (RFC 8555 §6.2, ES256 with the account's `kid`)
//! signed by the stored account key, through the same HTTPS client.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use instant_acme::{BodyWrapper, HttpClient};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::Error;
use crate::inventory::Inventory;
use crate::state::State;

/// Attempts at one request when the CA rejects the nonce (RFC 8555 §6.5: retry with the
/// fresh one it sent).
const NONCE_ATTEMPTS: usize = 5;

/// The common names a chain answers to: the issuer of its topmost certificate (the root it
/// leads to), and that certificate's own subject.
pub fn chain_names(chain: &[Vec<u8>]) -> Vec<String> {
    let Some(top) = chain.last() else {
        return Vec::new();
    };
    let Ok((_, cert)) = X509Certificate::from_der(top) else {
        return Vec::new();
    };
    let cn = |n: &x509_parser::x509::X509Name<'_>| {
        n.iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .map(str::to_string)
    };
    [cn(cert.issuer()), cn(cert.subject())]
        .into_iter()
        .flatten()
        .collect()
}

/// The index of the first chain whose topmost certificate's issuer (or own subject) has the
/// common name `preferred`.
pub fn select(chains: &[Vec<Vec<u8>>], preferred: &str) -> Option<usize> {
    chains
        .iter()
        .position(|c| chain_names(c).iter().any(|n| n == preferred))
}

/// The URLs of `Link: <url>;rel="alternate"` headers (RFC 8288).
pub fn alternate_links(headers: &hyper::HeaderMap) -> Vec<String> {
    headers
        .get_all(hyper::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|link| {
            let (target, params) = link.trim().split_once('>')?;
            let url = target.trim().strip_prefix('<')?;
            let alternate = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p.eq_ignore_ascii_case("rel=\"alternate\"")
                    || p.eq_ignore_ascii_case("rel=alternate")
            });
            alternate.then(|| url.to_string())
        })
        .collect()
}

/// Signs POST-as-GET requests for the stored account.
struct Signer {
    client: Box<dyn HttpClient>,
    key: EcdsaKeyPair,
    kid: String,
    new_nonce: String,
    nonce: Option<String>,
    directory: String,
}

impl Signer {
    fn err(&self, detail: impl Into<String>) -> Error {
        Error::Unreachable {
            directory: self.directory.clone(),
            step: "fetching the alternate chains",
            detail: detail.into(),
        }
    }

    async fn fresh_nonce(&mut self) -> Result<String, Error> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let req = hyper::Request::head(self.new_nonce.as_str())
            .body(BodyWrapper::<Bytes>::default())
            .map_err(|e| self.err(e.to_string()))?;
        let answer = super::http::send(self.client.as_ref(), req)
            .await
            .map_err(|e| self.err(e))?;
        replay_nonce(&answer.headers).ok_or_else(|| self.err("the CA sent no Replay-Nonce"))
    }

    /// POST-as-GET (RFC 8555 §6.3) of `url`.
    async fn get(&mut self, url: &str) -> Result<super::http::Fetched, Error> {
        for _ in 0..NONCE_ATTEMPTS {
            let nonce = self.fresh_nonce().await?;
            let protected = serde_json::json!({
                "alg": "ES256", "kid": self.kid, "nonce": nonce, "url": url,
            });
            let protected = URL_SAFE_NO_PAD.encode(protected.to_string());
            let signature = self
                .key
                .sign(&SystemRandom::new(), format!("{protected}.").as_bytes())
                .map_err(|_| self.err("signing the request failed"))?;
            let body = serde_json::json!({
                "protected": protected,
                "payload": "",
                "signature": URL_SAFE_NO_PAD.encode(signature.as_ref()),
            });
            let req = hyper::Request::post(url)
                .header(hyper::header::CONTENT_TYPE, "application/jose+json")
                .body(BodyWrapper::from(body.to_string().into_bytes()))
                .map_err(|e| self.err(e.to_string()))?;
            let answer = super::http::send(self.client.as_ref(), req)
                .await
                .map_err(|e| self.err(e))?;
            self.nonce = replay_nonce(&answer.headers);
            if answer.status.is_success() {
                return Ok(answer);
            }
            let text = String::from_utf8_lossy(&answer.body).into_owned();
            if !text.contains("urn:ietf:params:acme:error:badNonce") {
                return Err(Error::Refused {
                    directory: self.directory.clone(),
                    step: "fetching the alternate chains",
                    detail: format!("{url} answered {}: {}", answer.status, text.trim()),
                    problem: None,
                    status: Some(answer.status.as_u16()),
                });
            }
        }
        Err(self.err(format!(
            "the CA rejected {NONCE_ATTEMPTS} nonces in a row for {url}"
        )))
    }
}

fn replay_nonce(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get("replay-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// What the preferred-chain choice came to.
pub enum Chosen {
    /// The chain whose root is the preferred one (the default chain when that is it).
    Preferred(Vec<Vec<u8>>),
    /// None matched: the default chain stays; the names the offered chains lead to.
    NoMatch(Vec<String>),
}

/// Downloads the certificate at `cert_url` and every alternate the CA offers, and picks the
/// one `preferred` names.
pub async fn choose(
    inv: &Inventory,
    state: &State,
    cert_url: &str,
    preferred: &str,
) -> Result<Chosen, Error> {
    let directory = inv.acme.directory.clone();
    let account = |detail: &str| Error::AccountFile {
        path: "state database".into(),
        detail: detail.into(),
    };
    let stored = state
        .account(&directory)
        .map_err(|e| account(&e.to_string()))?
        .ok_or_else(|| account("no account is stored for this CA"))?;
    let credentials: serde_json::Value =
        serde_json::from_str(&stored).map_err(|_| account("the stored account is unreadable"))?;
    let kid = credentials["id"].as_str().unwrap_or_default().to_string();
    let der = credentials["key_pkcs8"]
        .as_str()
        .and_then(|k| URL_SAFE_NO_PAD.decode(k).ok())
        .ok_or_else(|| account("the stored account has no usable key"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
        .map_err(|_| account("the stored account key is not a P-256 key"))?;
    let dir = super::directory::fetch(inv).await?;
    let mut signer = Signer {
        client: super::account::http_client(inv)?,
        key,
        kid,
        new_nonce: dir.new_nonce,
        nonce: None,
        directory,
    };
    let default = signer.get(cert_url).await?;
    let mut urls = alternate_links(&default.headers);
    let mut chains = vec![pem_chain(&signer, &default.body)?];
    // Only as far as needed: the first match wins.
    while select(&chains, preferred).is_none() && !urls.is_empty() {
        let url = urls.remove(0);
        let answer = signer.get(&url).await?;
        chains.push(pem_chain(&signer, &answer.body)?);
    }
    Ok(match select(&chains, preferred) {
        Some(i) => Chosen::Preferred(chains.swap_remove(i)),
        None => Chosen::NoMatch(chains.iter().flat_map(|c| chain_names(c)).collect()),
    })
}

fn pem_chain(signer: &Signer, body: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    crate::x509::pem_certificates(body).map_err(|e| signer.err(format!("a chain is not PEM: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alternate_links_are_read_from_every_link_header() {
        let mut h = hyper::HeaderMap::new();
        h.append(
            hyper::header::LINK,
            r#"<https://ca/dir>;rel="index""#.parse().unwrap(),
        );
        h.append(
            hyper::header::LINK,
            r#"<https://ca/cert/1/1>;rel="alternate", <https://ca/cert/1/2>; rel=alternate"#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            alternate_links(&h),
            ["https://ca/cert/1/1", "https://ca/cert/1/2"]
        );
    }

    /// A self-signed CA certificate with common name `cn`, and one `leaf_cn` signed by it.
    fn pair(cn: &str, leaf_cn: &str) -> Vec<Vec<u8>> {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(rcgen::DnType::CommonName, cn);
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let mut leaf = rcgen::CertificateParams::new(vec!["www.example.org".into()]).unwrap();
        leaf.distinguished_name
            .push(rcgen::DnType::CommonName, leaf_cn);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
        vec![leaf.der().to_vec(), ca_cert.der().to_vec()]
    }

    #[test]
    fn the_chain_is_chosen_by_its_roots_common_name() {
        let chains = vec![pair("Root A", "leaf"), pair("Root B", "leaf")];
        assert_eq!(select(&chains, "Root B"), Some(1));
        assert_eq!(select(&chains, "Root A"), Some(0));
        assert_eq!(select(&chains, "Root C"), None);
        assert_eq!(chain_names(&chains[1]), ["Root B", "Root B"]);
    }
}
