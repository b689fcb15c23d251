//! Reading the public material certorch handles: CSRs from hosts, certificates from the CA and
//! from hosts. Nothing here ever sees a private key.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::inventory::{DnsName, KeyType};

/// The facts about a certificate that decisions and reports need.
#[derive(Debug, Clone)]
pub struct CertInfo {
    /// The certificate's DER.
    pub der: Vec<u8>,
    pub names: BTreeSet<String>,
    pub key_type: Option<KeyType>,
    /// DER of the SubjectPublicKeyInfo, to match keys and CSRs.
    pub spki: Vec<u8>,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER, lower-case hex.
    pub fingerprint: String,
    /// The issuer's distinguished name (RFC 4514 text), for matching and for messages.
    pub issuer_dn: String,
    /// The authority key identifier (RFC 5280 §4.2.1.1): the signer's key id, if named.
    pub aki: Option<Vec<u8>>,
    /// Issuer and subject are the same name and its own key verifies its signature.
    pub self_signed: bool,
}

/// A CA certificate that signs leaves: an ACME CA's intermediate, the internal CA, or an
/// intermediate the operator adopted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerCert {
    /// Subject distinguished name (RFC 4514 text).
    pub subject_dn: String,
    /// Subject key identifier (RFC 5280 §4.2.1.2), if the certificate carries one.
    pub ski: Option<Vec<u8>>,
    pub der: Vec<u8>,
    /// basicConstraints says CA:TRUE.
    pub is_ca: bool,
}

/// Splits PEM text into the DER of each `CERTIFICATE` block, in order.
pub fn pem_certificates(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for item in Pem::iter_from_buffer(pem) {
        let item = item.map_err(|e| format!("unreadable PEM: {e}"))?;
        if item.label == "CERTIFICATE" {
            out.push(item.contents);
        }
    }
    Ok(out)
}

/// Parses one DER certificate.
pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut names = BTreeSet::new();
    for ext in cert.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for n in &san.general_names {
                if let GeneralName::DNSName(d) = n {
                    names.insert(d.to_ascii_lowercase());
                }
            }
        }
    }
    let spki = cert.public_key().raw.to_vec();
    let issuer_dn = cert.issuer().to_string();
    let self_signed =
        cert.issuer().as_raw() == cert.subject().as_raw() && cert.verify_signature(None).is_ok();
    Ok(CertInfo {
        issuer_dn,
        aki: aki_of(&cert),
        self_signed,
        der: der.to_vec(),
        names,
        key_type: key_type_of(cert.public_key()),
        spki,
        serial: cert.raw_serial_as_string().replace(':', ""),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        fingerprint: hex(&Sha256::digest(der)),
    })
}

fn aki_of(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
}

/// Parses a CA certificate (an intermediate, the internal CA) for matching leaves to it.
pub fn issuer_cert(der: &[u8]) -> Result<IssuerCert, String> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let ski = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        });
    let is_ca = cert
        .basic_constraints()
        .ok()
        .flatten()
        .is_some_and(|b| b.value.ca);
    Ok(IssuerCert {
        subject_dn: cert.subject().to_string(),
        ski,
        der: der.to_vec(),
        is_ca,
    })
}

/// Whether `issuer` signed `leaf`: the leaf names the issuer's subject as its issuer, its
/// authority key id is the issuer's subject key id when both carry one (RFC 5280 §4.2.1.1),
/// and the leaf's signature verifies with the issuer's key. The names alone would let any
/// placeholder that copies a CA's DN pass.
pub fn signed_by(leaf: &CertInfo, issuer: &IssuerCert) -> bool {
    if leaf.issuer_dn != issuer.subject_dn {
        return false;
    }
    if let (Some(aki), Some(ski)) = (&leaf.aki, &issuer.ski)
        && aki != ski
    {
        return false;
    }
    let (Ok((_, l)), Ok((_, i))) = (
        X509Certificate::from_der(&leaf.der),
        X509Certificate::from_der(&issuer.der),
    ) else {
        return false;
    };
    l.issuer().as_raw() == i.subject().as_raw() && l.verify_signature(Some(i.public_key())).is_ok()
}

fn key_type_of(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>) -> Option<KeyType> {
    match spki.parsed().ok()? {
        PublicKey::EC(point) => match point.key_size() {
            256 => Some(KeyType::EcdsaP256),
            384 => Some(KeyType::EcdsaP384),
            _ => None,
        },
        PublicKey::RSA(rsa) => match rsa.key_size() {
            2048 => Some(KeyType::Rsa2048),
            3072 => Some(KeyType::Rsa3072),
            4096 => Some(KeyType::Rsa4096),
            _ => None,
        },
        _ => None,
    }
}

/// A CSR that was checked against what the inventory asked for.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    pub der: Vec<u8>,
    /// DER of its SubjectPublicKeyInfo: the issued certificate must carry the same key.
    pub spki: Vec<u8>,
}

/// Checks a CSR from a host: valid self-signature, exactly the requested names, the expected
/// key type. The host could be compromised or its openssl odd; the CA would sign whatever we
/// send, so this is the last point where a wrong request can be stopped.
pub fn check_csr(pem: &[u8], names: &[DnsName], key_type: KeyType) -> Result<CheckedCsr, String> {
    let der = match Pem::iter_from_buffer(pem).next() {
        Some(Ok(p)) if p.label == "CERTIFICATE REQUEST" => p.contents,
        _ => return Err("the host did not return a PEM certificate request".into()),
    };
    check_csr_der(der, names, key_type)
}

/// [`check_csr`] for a CSR in DER.
pub fn check_csr_der(
    der: Vec<u8>,
    names: &[DnsName],
    key_type: KeyType,
) -> Result<CheckedCsr, String> {
    let (_, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| format!("unreadable CSR: {e}"))?;
    csr.verify_signature()
        .map_err(|_| "the CSR's signature does not verify".to_string())?;
    let info = &csr.certification_request_info;
    let mut got = BTreeSet::new();
    if let Some(exts) = csr.requested_extensions() {
        for ext in exts {
            if let ParsedExtension::SubjectAlternativeName(san) = ext {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => {
                            got.insert(d.to_ascii_lowercase());
                        }
                        other => return Err(format!("the CSR asks for a non-DNS name: {other}")),
                    }
                }
            }
        }
    }
    let want: BTreeSet<String> = names.iter().map(|n| n.as_str().to_string()).collect();
    if got != want {
        let extra: Vec<_> = got.difference(&want).cloned().collect();
        let missing: Vec<_> = want.difference(&got).cloned().collect();
        return Err(format!(
            "the CSR's names differ from the inventory (extra: [{}], missing: [{}])",
            extra.join(", "),
            missing.join(", ")
        ));
    }
    let actual = key_type_of(&info.subject_pki);
    if actual != Some(key_type) {
        let shown = actual.map_or("an unsupported key".to_string(), |k| k.to_string());
        return Err(format!(
            "the CSR carries {shown}, the inventory asks for {key_type}"
        ));
    }
    Ok(CheckedCsr {
        spki: info.subject_pki.raw.to_vec(),
        der,
    })
}

/// The key of a CSR certorch checked before (recorded in the state), from its DER.
pub fn csr_info(der: &[u8]) -> Option<CheckedCsr> {
    let (_, csr) = X509CertificationRequest::from_der(der).ok()?;
    Some(CheckedCsr {
        spki: csr.certification_request_info.subject_pki.raw.to_vec(),
        der: der.to_vec(),
    })
}

/// DER of the public key in a `PUBLIC KEY` PEM block (as `openssl pkey -pubout` prints it).
pub fn pem_public_key(pem: &[u8]) -> Option<Vec<u8>> {
    Pem::iter_from_buffer(pem)
        .filter_map(Result::ok)
        .find(|p| p.label == "PUBLIC KEY")
        .map(|p| p.contents)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders DER certificates as PEM.
pub fn to_pem(ders: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for der in ders {
        pem_block(&mut out, "CERTIFICATE", der);
    }
    out
}

/// A public key (SPKI DER) as PEM, byte for byte as `openssl pkey -pubout` prints it, so a
/// host can compare the two as text.
pub fn public_key_pem(spki: &[u8]) -> String {
    let mut out = String::new();
    pem_block(&mut out, "PUBLIC KEY", spki);
    out
}

/// One PEM block as OpenSSL writes it: 64 base64 characters a line, each line ended.
fn pem_block(out: &mut String, label: &str, der: &[u8]) {
    use base64::Engine;
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::str::FromStr;

    /// A CSR made by the same openssl invocation hosts use.
    fn openssl_csr(alg: &[&str], san: &str) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let st = Command::new("openssl")
            .arg("genpkey")
            .args(alg)
            .arg("-out")
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let out = Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=a.example.org", "-addext"])
            .arg(format!("subjectAltName={san}"))
            .arg("-key")
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn names(n: &[&str]) -> Vec<DnsName> {
        n.iter().map(|s| DnsName::from_str(s).unwrap()).collect()
    }

    #[test]
    fn csr_checks() {
        let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
        let pem = openssl_csr(&ec, "DNS:a.example.org,DNS:b.example.org");
        let want = names(&["b.example.org", "a.example.org"]);
        assert!(check_csr(&pem, &want, KeyType::EcdsaP256).is_ok());
        let err = check_csr(&pem, &want, KeyType::EcdsaP384).unwrap_err();
        assert_eq!(
            err,
            "the CSR carries ecdsa-p256, the inventory asks for ecdsa-p384"
        );
        let err = check_csr(&pem, &names(&["a.example.org"]), KeyType::EcdsaP256).unwrap_err();
        assert_eq!(
            err,
            "the CSR's names differ from the inventory (extra: [b.example.org], missing: [])"
        );
        let pem = openssl_csr(
            &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "DNS:a.example.org",
        );
        assert!(check_csr(&pem, &names(&["a.example.org"]), KeyType::Rsa2048).is_ok());
        let pem = openssl_csr(&ec, "DNS:a.example.org,IP:127.0.0.1");
        assert!(
            check_csr(&pem, &names(&["a.example.org"]), KeyType::EcdsaP256)
                .unwrap_err()
                .contains("non-DNS")
        );
        assert!(check_csr(b"garbage", &want, KeyType::EcdsaP256).is_err());
    }

    #[test]
    fn pem_round_trip() {
        let ders = vec![vec![1u8, 2, 3], vec![4u8; 100]];
        assert_eq!(pem_certificates(to_pem(&ders).as_bytes()).unwrap(), ders);
    }

    /// Hosts compare `openssl pkey -pubout` with this text, so it must be the same bytes.
    #[test]
    fn public_key_pem_is_what_openssl_prints() {
        for alg in [
            ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let key = dir.path().join("k");
            let st = Command::new("openssl")
                .arg("genpkey")
                .args(alg)
                .arg("-out")
                .arg(&key)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            let out = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(&key)
                .output()
                .unwrap();
            assert!(out.status.success());
            let spki = pem_public_key(&out.stdout).unwrap();
            assert_eq!(public_key_pem(&spki).as_bytes(), out.stdout, "{alg:?}");
        }
    }
}
