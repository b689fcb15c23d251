//! Who signed a deployed certificate, and whether that is who the inventory asks for. A
//! certificate with the right names from the wrong CA (a self-signed one, the staging CA, a
//! placeholder) is not current, however long it still lives. Pure: the caller reads the known
//! issuers from the state and the inventory.

use std::fmt;

use crate::inventory::{CertSpec, Issuer};
use crate::x509::{self, CertInfo, IssuerCert};

/// Who signs, or signed, a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// The ACME CA at this directory URL.
    Acme { directory: String },
    /// certorch's internal CA (`issuer: internal`).
    Internal,
    /// The host signed its own key (`issuer: self-signed`).
    SelfSigned,
    /// None certorch knows: the issuer's distinguished name.
    Unknown { issuer: String },
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signer::Acme { directory } => write!(f, "acme ({directory})"),
            Signer::Internal => f.write_str("internal"),
            Signer::SelfSigned => f.write_str("self-signed"),
            Signer::Unknown { issuer } => write!(f, "unknown issuer {issuer}"),
        }
    }
}

impl Signer {
    /// Who the inventory asks to sign `spec`; `directory` is the ACME directory of this run.
    pub fn wanted(spec: &CertSpec, directory: &str) -> Signer {
        match spec.issuer {
            Issuer::Acme => Signer::Acme {
                directory: directory.to_string(),
            },
            Issuer::Internal => Signer::Internal,
            Issuer::SelfSigned => Signer::SelfSigned,
        }
    }

    /// The signer the state recorded for a deployed certificate (`issuer`, `directory`
    /// columns); `None` when it was not recorded (rows written before certorch kept it).
    pub fn from_record(kind: Option<&str>, directory: Option<&str>) -> Option<Signer> {
        match (kind?, directory) {
            ("acme", Some(d)) => Some(Signer::Acme {
                directory: d.to_string(),
            }),
            ("internal", _) => Some(Signer::Internal),
            ("self-signed", _) => Some(Signer::SelfSigned),
            _ => None,
        }
    }
}

/// A CA certificate certorch knows, and for whom it signs.
#[derive(Debug, Clone, PartialEq)]
pub struct KnownIssuer {
    pub signer: Signer,
    pub cert: IssuerCert,
}

/// The issuers certorch knows: the intermediates it received from each ACME directory
/// (`received`: directory and DER), its internal CA, and the intermediates the operator adopted
/// (`acme.adopt_issuers`), which count as the configured directory's own. Unreadable rows are
/// left out: a certificate they signed then reads as from an unknown issuer.
pub fn known(
    received: &[(String, Vec<u8>)],
    internal_ca_pem: Option<&str>,
    adopted: &[IssuerCert],
    directory: &str,
) -> Vec<KnownIssuer> {
    let mut out: Vec<KnownIssuer> = received
        .iter()
        .filter_map(|(d, der)| {
            Some(KnownIssuer {
                signer: Signer::Acme {
                    directory: d.clone(),
                },
                cert: x509::issuer_cert(der).ok()?,
            })
        })
        .collect();
    let internal = internal_ca_pem
        .and_then(|pem| x509::pem_certificates(pem.as_bytes()).ok())
        .and_then(|ders| ders.into_iter().next())
        .and_then(|der| x509::issuer_cert(&der).ok());
    out.extend(internal.map(|cert| KnownIssuer {
        signer: Signer::Internal,
        cert,
    }));
    out.extend(adopted.iter().map(|cert| KnownIssuer {
        signer: Signer::Acme {
            directory: directory.to_string(),
        },
        cert: cert.clone(),
    }));
    out
}

/// Whether `wanted` signed `leaf`; if not, who did, as far as `known` tells.
pub fn check(leaf: &CertInfo, wanted: &Signer, known: &[KnownIssuer]) -> Result<(), Signer> {
    if leaf.self_signed {
        return match wanted {
            Signer::SelfSigned => Ok(()),
            _ => Err(Signer::SelfSigned),
        };
    }
    // One intermediate may be known under several directories (one CA, two URLs); any
    // match with the wanted signer will do.
    let mut found = None;
    for k in known.iter().filter(|k| x509::signed_by(leaf, &k.cert)) {
        if &k.signer == wanted {
            return Ok(());
        }
        found.get_or_insert_with(|| k.signer.clone());
    }
    Err(found.unwrap_or_else(|| Signer::Unknown {
        issuer: leaf.issuer_dn.clone(),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    };

    /// A CA named `cn`, with its key, as rcgen and as certorch read it.
    pub(crate) struct Ca {
        pub key: KeyPair,
        pub pem: String,
        pub cert: IssuerCert,
    }

    pub(crate) fn ca(cn: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        p.distinguished_name = dn;
        let c = p.self_signed(&key).unwrap();
        Ca {
            pem: c.pem(),
            cert: x509::issuer_cert(c.der()).unwrap(),
            key,
        }
    }

    /// A leaf for `names` signed by `by`, or self-signed when `by` is `None`.
    pub(crate) fn leaf(names: &[&str], by: Option<&Ca>) -> CertInfo {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names[0]);
        p.distinguished_name = dn;
        let der = match by {
            Some(ca) => {
                p.use_authority_key_identifier_extension = true;
                let issuer = Issuer::from_ca_cert_pem(&ca.pem, &ca.key).unwrap();
                p.signed_by(&key, &issuer).unwrap().der().to_vec()
            }
            None => p.self_signed(&key).unwrap().der().to_vec(),
        };
        x509::cert_info(&der).unwrap()
    }

    fn acme(d: &str) -> Signer {
        Signer::Acme {
            directory: d.into(),
        }
    }

    #[test]
    fn a_leaf_matches_the_intermediate_that_signed_it_and_no_other() {
        let r10 = ca("R10");
        let other = ca("R11");
        let l = leaf(&["a.example.org"], Some(&r10));
        assert!(!l.self_signed);
        assert_eq!(l.issuer_dn, "CN=R10");
        assert!(x509::signed_by(&l, &r10.cert));
        assert!(!x509::signed_by(&l, &other.cert));
        // A placeholder that copies the CA's name is not signed by it.
        let impostor = ca("R10");
        assert_eq!(impostor.cert.subject_dn, r10.cert.subject_dn);
        assert!(!x509::signed_by(&l, &impostor.cert));
        let own = leaf(&["a.example.org"], None);
        assert!(own.self_signed);
        assert!(!x509::signed_by(&own, &r10.cert));
    }

    #[test]
    fn checks_say_who_signed() {
        let prod = ca("prod");
        let staging = ca("staging");
        let internal = ca("certorch internal CA");
        let received = vec![
            ("https://ca/dir".to_string(), prod.cert.der.clone()),
            ("https://ca/staging".to_string(), staging.cert.der.clone()),
            ("https://ca/dir".to_string(), b"garbage".to_vec()),
        ];
        let known = known(&received, Some(&internal.pem), &[], "https://ca/dir");
        assert_eq!(known.len(), 3);
        let want = acme("https://ca/dir");
        let from_prod = leaf(&["a.example.org"], Some(&prod));
        assert_eq!(check(&from_prod, &want, &known), Ok(()));
        assert_eq!(
            check(&leaf(&["a.example.org"], Some(&staging)), &want, &known),
            Err(acme("https://ca/staging"))
        );
        assert_eq!(
            check(&leaf(&["a.example.org"], Some(&internal)), &want, &known),
            Err(Signer::Internal)
        );
        assert_eq!(
            check(&leaf(&["a.example.org"], None), &want, &known),
            Err(Signer::SelfSigned)
        );
        let snakeoil = ca("snakeoil");
        assert_eq!(
            check(&leaf(&["a.example.org"], Some(&snakeoil)), &want, &known),
            Err(Signer::Unknown {
                issuer: "CN=snakeoil".into()
            })
        );
        assert_eq!(
            check(&leaf(&["a.example.org"], None), &Signer::SelfSigned, &known),
            Ok(())
        );
        assert_eq!(
            check(&from_prod, &Signer::SelfSigned, &known),
            Err(want.clone())
        );
        // An adopted intermediate counts as the configured directory's.
        let certbot = ca("E6");
        let adopted = super::known(
            &[],
            None,
            std::slice::from_ref(&certbot.cert),
            "https://ca/dir",
        );
        assert_eq!(
            check(&leaf(&["a.example.org"], Some(&certbot)), &want, &adopted),
            Ok(())
        );
        assert_eq!(
            format!(
                "{}",
                Signer::Unknown {
                    issuer: "CN=x".into()
                }
            ),
            "unknown issuer CN=x"
        );
        assert_eq!(want.to_string(), "acme (https://ca/dir)");
    }

    #[test]
    fn recorded_signers() {
        assert_eq!(
            Signer::from_record(Some("acme"), Some("https://ca/dir")),
            Some(acme("https://ca/dir"))
        );
        assert_eq!(Signer::from_record(Some("acme"), None), None);
        assert_eq!(
            Signer::from_record(Some("self-signed"), None),
            Some(Signer::SelfSigned)
        );
        assert_eq!(
            Signer::from_record(Some("internal"), None),
            Some(Signer::Internal)
        );
        assert_eq!(Signer::from_record(None, None), None);
    }
}
