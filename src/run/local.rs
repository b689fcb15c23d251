//! Certificates without a public CA, through the same keys, files, reloads and checks:
//! `issuer: self-signed` (the host signs its own key) and `issuer: internal` (a small CA kept in
//! the bastion's state signs the host's CSR with rcgen). No DNS, no orders, no rate limits.

use futures::StreamExt;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use rustls_pki_types::CertificateSigningRequestDer;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Ctx, Issued, Keyed};
use crate::host::selfsign;
use crate::inventory::{Issuer as Kind, RemotePath};
use crate::problem::Kind as ProblemKind;
use crate::report::{Outcome, Stage};
use crate::secret::Secret;
use crate::state::State;
use crate::x509;

/// How long the internal CA's own certificate lives.
const CA_LIFETIME: time::Duration = time::Duration::days(3650);

/// The internal CA: its certificate and key.
pub struct InternalCa {
    pub cert_pem: String,
    key: KeyPair,
}

/// Loads the internal CA from the state, or makes one (ECDSA P-256, ten years).
pub fn internal_ca(state: &State) -> Result<InternalCa, String> {
    if let Some((cert_pem, key_pem)) = state.internal_ca().map_err(|e| e.to_string())? {
        let key = KeyPair::from_pem(key_pem.expose())
            .map_err(|_| "the internal CA's key in the state is unreadable".to_string())?;
        return Ok(InternalCa { cert_pem, key });
    }
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "certorch internal CA");
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + CA_LIFETIME;
    p.serial_number = Some(serial(b"certorch internal CA"));
    let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
    let cert_pem = cert.pem();
    state
        .save_internal_ca(&cert_pem, &Secret::new(key.serialize_pem()))
        .map_err(|e| e.to_string())?;
    Ok(InternalCa { cert_pem, key })
}

/// A positive 128-bit serial, unique per call (RFC 5280 §4.1.2.2 allows up to 20 octets).
fn serial(seed: &[u8]) -> SerialNumber {
    let mut h = Sha256::new();
    h.update(seed);
    h.update(
        OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_be_bytes(),
    );
    h.update(std::process::id().to_be_bytes());
    let mut bytes = h.finalize()[..16].to_vec();
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes)
}

impl InternalCa {
    /// Signs a host's CSR for `validity`; returns the leaf and the chain (leaf, CA).
    pub fn sign(
        &self,
        csr_der: &[u8],
        validity: std::time::Duration,
    ) -> Result<(x509::CertInfo, Vec<Vec<u8>>), String> {
        let issuer =
            Issuer::from_ca_cert_pem(&self.cert_pem, &self.key).map_err(|e| e.to_string())?;
        let mut csr = CertificateSigningRequestParams::from_der(
            &CertificateSigningRequestDer::from(csr_der.to_vec()),
        )
        .map_err(|e| e.to_string())?;
        let now = OffsetDateTime::now_utc();
        csr.params.not_before = now - time::Duration::minutes(5);
        csr.params.not_after = now + validity;
        csr.params.serial_number = Some(serial(csr_der));
        csr.params.is_ca = IsCa::ExplicitNoCa;
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        csr.params.use_authority_key_identifier_extension = true;
        let leaf = csr.signed_by(&issuer).map_err(|e| e.to_string())?;
        let ca_der = x509::pem_certificates(self.cert_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or("no CA certificate")?;
        let leaf_der = leaf.der().to_vec();
        Ok((x509::cert_info(&leaf_der)?, vec![leaf_der, ca_der]))
    }
}

/// Issues every self-signed and internal certificate.
pub(crate) async fn issue_all<'a>(ctx: &Ctx<'_>, keyed: Vec<Keyed<'a>>) -> Vec<Issued<'a>> {
    let needs_ca = keyed.iter().any(|k| k.item().spec.issuer == Kind::Internal);
    let ca = if needs_ca {
        Some(internal_ca(ctx.state))
    } else {
        None
    };
    let ca = ca.as_ref();
    let trust: Option<&RemotePath> = ctx.inv.internal_ca_trust_path.as_ref();
    let results: Vec<Result<Issued, Outcome>> = futures::stream::iter(keyed)
        .map(|k| async move {
            let item = k.item();
            item.stage(ctx.reporter, Stage::Validate);
            let issued = match item.spec.issuer {
                Kind::SelfSigned => selfsign::self_sign(item.conn.as_ref(), item.spec, &k.csr.spki)
                    .await
                    .map(|(leaf, chain)| (leaf, chain, Vec::new(), "self-signed".to_string()))
                    .map_err(|e| item.fail(Stage::Validate, &e)),
                _ => match ca {
                    Some(Ok(ca)) => ca
                        .sign(&k.csr.der, item.spec.validity)
                        .map(|(leaf, chain)| {
                            let extra = trust
                                .map(|p| vec![(p.clone(), ca.cert_pem.clone())])
                                .unwrap_or_default();
                            (leaf, chain, extra, "internal-ca".to_string())
                        })
                        .map_err(|e| {
                            item.fail_with(
                                Stage::Validate,
                                ProblemKind::IssuerFailed,
                                format!("the internal CA could not sign: {e}"),
                                "check the state directory; run again",
                            )
                        }),
                    Some(Err(e)) => Err(item.fail_with(
                        Stage::Validate,
                        ProblemKind::IssuerFailed,
                        format!("the internal CA is not usable: {e}"),
                        "check the state directory's permissions",
                    )),
                    None => Err(item.fail_with(
                        Stage::Validate,
                        ProblemKind::IssuerFailed,
                        "no internal CA",
                        "check the state directory",
                    )),
                },
            };
            match issued {
                Ok((leaf, chain, extra, order_url)) => Ok(Issued {
                    keyed: k,
                    order_url,
                    leaf,
                    chain,
                    extra,
                }),
                Err(failure) => {
                    super::order::discard_key(ctx, &k).await;
                    Err(failure)
                }
            }
        })
        .buffered(ctx.concurrency)
        .collect()
        .await;
    super::context::keep_ok(ctx, results)
}
