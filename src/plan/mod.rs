//! Whether a certificate is due, and why. Pure: what is deployed and the time in, a decision
//! out, so every rule is unit-tested without a host.

pub mod forecast;
pub mod issuer;
pub mod schedule;
pub mod shared;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::acme::ari::{self, Window};
use crate::host::inspect::Current;
use crate::inventory::{CertSpec, RenewPolicy};
use crate::limits;
use crate::state::Recorded;
use crate::x509::CertInfo;
use issuer::{KnownIssuer, Signer};

/// Why a certificate will be issued.
#[derive(Debug, Clone, PartialEq)]
pub enum Reason {
    /// `certorch issue` asked for it.
    Forced,
    Missing,
    Unreadable,
    NamesChanged {
        added: Vec<String>,
        removed: Vec<String>,
    },
    KeyTypeChanged {
        deployed: String,
        wanted: String,
    },
    /// The live key does not belong to the live certificate.
    KeyMismatch,
    /// Less than the renewal share of its lifetime is left.
    Expiring {
        left: Duration,
    },
    Expired,
    /// The CA's renewal window (RFC 9773) says renew.
    Ari {
        start: OffsetDateTime,
    },
    /// The host serves another certificate than the one certorch deployed.
    Drift {
        deployed: String,
        found: String,
    },
    /// The certificate certorch deployed is gone from the host.
    Removed {
        deployed: String,
    },
    /// The deployed certificate was revoked (`certorch revoke`).
    Revoked {
        serial: String,
    },
    /// Another member of its shared-key label is due; the group renews together.
    Shared {
        host: String,
    },
    /// An interrupted run left it at `phase`; this run takes it up from there.
    Resumed {
        phase: &'static str,
    },
    /// Signed by another issuer than the inventory asks for (`issuer:`, `acme.directory`).
    IssuerChanged {
        from: Signer,
        to: Signer,
    },
    /// The members of its shared-key label serve different certificates: `host` serves serial
    /// `found`, the rest of the group serial `group`.
    SharedDiffers {
        host: String,
        found: String,
        group: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Forced => f.write_str("issued on request"),
            Reason::Missing => f.write_str("no certificate on the host"),
            Reason::Unreadable => f.write_str("the certificate file on the host is unreadable"),
            Reason::NamesChanged { added, removed } => {
                write!(f, "names changed")?;
                if !added.is_empty() {
                    write!(f, " (+{})", added.join(", +"))?;
                }
                if !removed.is_empty() {
                    write!(f, " (-{})", removed.join(", -"))?;
                }
                Ok(())
            }
            Reason::KeyTypeChanged { deployed, wanted } => {
                write!(f, "key type changed from {deployed} to {wanted}")
            }
            Reason::KeyMismatch => f.write_str("the live key does not match the live certificate"),
            Reason::Expiring { left } => write!(f, "{} left", human(*left)),
            Reason::Expired => f.write_str("expired"),
            Reason::Ari { start } => write!(
                f,
                "the CA's renewal window opened at {}",
                crate::state::fmt_time(*start)
            ),
            Reason::Drift { deployed, found } => {
                write!(
                    f,
                    "the host has serial {found}, not serial {deployed} that certorch deployed: reissuing"
                )
            }
            Reason::Revoked { serial } => write!(f, "serial {serial} was revoked"),
            Reason::Removed { deployed } => write!(
                f,
                "serial {deployed} that certorch deployed is gone from the host: reissuing"
            ),
            Reason::Resumed { phase } => {
                write!(f, "an interrupted run left it {phase}: resuming from there")
            }
            Reason::Shared { host } => write!(
                f,
                "its shared-key label is due on {host}: the group gets one new key and certificate"
            ),
            Reason::IssuerChanged { from, to } => write!(f, "issuer changed: {from} → {to}"),
            Reason::SharedDiffers { host, found, group } => write!(
                f,
                "its shared-key group differs: {host} serves serial {found}, the others serial {group}: the group gets one new key and certificate"
            ),
        }
    }
}

/// The decision for one certificate.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Due(Reason),
    /// Nothing to do until `renew_at`.
    Current {
        not_after: OffsetDateTime,
        renew_at: OffsetDateTime,
    },
}

/// What certorch knows besides the host: its record of the deployed certificate, the CA's
/// renewal window for it, and who may have signed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    pub recorded: Option<&'a Recorded>,
    pub ari: Option<Window>,
    /// `None`: the issuer is not checked (the state's issuers could not be read).
    pub issuers: Option<Issuers<'a>>,
}

/// Who the inventory asks to sign the certificate, and the issuers certorch knows.
#[derive(Debug, Clone, Copy)]
pub struct Issuers<'a> {
    pub wanted: &'a Signer,
    pub known: &'a [KnownIssuer],
}

/// Whether the deployed certificate comes from the wanted signer; if not, from whom. The state's
/// record of where certorch deployed it from wins over what the certificate says, so a switch
/// (self-signed to ACME, staging to production) is seen even before any issuer is known.
fn issuer_changed(
    cert: &CertInfo,
    recorded: Option<&Recorded>,
    iss: Issuers<'_>,
) -> Option<Reason> {
    let changed = |from: Signer| Reason::IssuerChanged {
        from,
        to: iss.wanted.clone(),
    };
    let from_record =
        recorded.and_then(|r| Signer::from_record(r.issuer.as_deref(), r.directory.as_deref()));
    match from_record {
        Some(s) if &s == iss.wanted => None,
        Some(s) => Some(changed(s)),
        None => match issuer::check(cert, iss.wanted, iss.known) {
            Ok(()) => None,
            // Recorded before certorch kept the issuer: certorch deployed it, and nothing
            // says it came from elsewhere; it is renewed when due, not all at once.
            Err(Signer::Unknown { .. }) if recorded.is_some() => None,
            Err(found) => Some(changed(found)),
        },
    }
}

/// Decides whether `spec` needs a new certificate given what the host has.
pub fn decide(
    spec: &CertSpec,
    current: &Current,
    known: Known<'_>,
    now: OffsetDateTime,
    force: bool,
) -> Decision {
    if force {
        return Decision::Due(Reason::Forced);
    }
    let d = match current {
        Current::Missing => {
            return Decision::Due(match known.recorded {
                Some(r) => Reason::Removed {
                    deployed: r.serial.clone(),
                },
                None => Reason::Missing,
            });
        }
        Current::Unreadable => return Decision::Due(Reason::Unreadable),
        Current::Present(d) => d,
    };
    if let Some(r) = known.recorded {
        if r.fingerprint != d.cert.fingerprint {
            return Decision::Due(Reason::Drift {
                deployed: r.serial.clone(),
                found: d.cert.serial.clone(),
            });
        }
        if r.last_result == crate::state::LastResult::Revoked {
            return Decision::Due(Reason::Revoked {
                serial: r.serial.clone(),
            });
        }
    }
    let want: BTreeSet<String> = spec.names.iter().map(|n| n.as_str().to_string()).collect();
    if want != d.cert.names {
        return Decision::Due(Reason::NamesChanged {
            added: want.difference(&d.cert.names).cloned().collect(),
            removed: d.cert.names.difference(&want).cloned().collect(),
        });
    }
    if d.cert.key_type != Some(spec.key_type) {
        return Decision::Due(Reason::KeyTypeChanged {
            deployed: d
                .cert
                .key_type
                .map_or("an unsupported key".into(), |k| k.to_string()),
            wanted: spec.key_type.to_string(),
        });
    }
    if !d.key_matches {
        return Decision::Due(Reason::KeyMismatch);
    }
    if let Some(iss) = known.issuers
        && let Some(reason) = issuer_changed(&d.cert, known.recorded, iss)
    {
        return Decision::Due(reason);
    }
    if now >= d.cert.not_after {
        return Decision::Due(Reason::Expired);
    }
    if let Some(w) = known.ari
        && ari::due(w, &d.cert.fingerprint, now)
    {
        return Decision::Due(Reason::Ari { start: w.start });
    }
    let mut renew_at = renew_at(spec.renew, d.cert.not_before, d.cert.not_after);
    if let Some(w) = known.ari {
        renew_at = renew_at.min(ari::renewal_point(w, &d.cert.fingerprint));
    }
    if now >= renew_at {
        let left = (d.cert.not_after - now).unsigned_abs();
        return Decision::Due(Reason::Expiring { left });
    }
    Decision::Current {
        not_after: d.cert.not_after,
        renew_at,
    }
}

/// When a certificate valid from `not_before` to `not_after` becomes due under `policy`.
pub fn renew_at(
    policy: RenewPolicy,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    match policy {
        RenewPolicy::ThirdOfLifetime => {
            let share = if lifetime < limits::SHORT_LIFETIME {
                0.5
            } else {
                1.0 / 3.0
            };
            not_after - lifetime * share
        }
        RenewPolicy::Fraction(f) => not_after - lifetime * f,
        RenewPolicy::Before(d) => not_after - d,
    }
}

/// `3d 4h`, `5h 2m`, `40s`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 86400 => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::inspect::Deployed;
    use crate::inventory::KeyType;
    use time::macros::datetime;

    fn spec(names: &[&str], policy: RenewPolicy) -> CertSpec {
        let text = format!(
            "acme: {{ directory: letsencrypt }}\ndns: {{ signing_zone: s.example.net, rfc2136: {{ server: 192.0.2.1, secret_env: X }} }}\nhosts:\n  h:\n    certs:\n      c:\n        names: [{}]\n        key: /k\n        fullchain: /f\n",
            names.join(", ")
        );
        let mut s = crate::inventory::parse(&text, std::path::Path::new("i.yaml"))
            .unwrap()
            .hosts[0]
            .certs[0]
            .clone();
        s.renew = policy;
        s
    }

    fn present(
        names: &[&str],
        key: KeyType,
        nb: OffsetDateTime,
        na: OffsetDateTime,
        key_matches: bool,
    ) -> Current {
        Current::Present(Box::new(Deployed {
            cert: CertInfo {
                der: vec![],
                names: names.iter().map(|n| n.to_string()).collect(),
                key_type: Some(key),
                spki: vec![],
                serial: "01".into(),
                not_before: nb,
                not_after: na,
                fingerprint: String::new(),
                issuer_dn: "CN=test".into(),
                aki: None,
                self_signed: false,
            },
            key_matches,
            stamp: None,
        }))
    }

    const NB: OffsetDateTime = datetime!(2026-11-01 0:00 UTC);
    const NA: OffsetDateTime = datetime!(2027-01-30 0:00 UTC); // 90 days

    #[test]
    fn decisions() {
        let s = spec(
            &["a.example.org", "b.example.org"],
            RenewPolicy::ThirdOfLifetime,
        );
        let now = datetime!(2026-11-23 0:00 UTC);
        let ok = present(
            &["a.example.org", "b.example.org"],
            KeyType::EcdsaP256,
            NB,
            NA,
            true,
        );
        assert!(matches!(
            decide(&s, &ok, Known::default(), now, false),
            Decision::Current { .. }
        ));
        assert_eq!(
            decide(&s, &ok, Known::default(), now, true),
            Decision::Due(Reason::Forced)
        );
        assert_eq!(
            decide(&s, &Current::Missing, Known::default(), now, false),
            Decision::Due(Reason::Missing)
        );
        assert_eq!(
            decide(&s, &Current::Unreadable, Known::default(), now, false),
            Decision::Due(Reason::Unreadable)
        );
        let fewer = present(
            &["a.example.org", "c.example.org"],
            KeyType::EcdsaP256,
            NB,
            NA,
            true,
        );
        assert_eq!(
            decide(&s, &fewer, Known::default(), now, false),
            Decision::Due(Reason::NamesChanged {
                added: vec!["b.example.org".into()],
                removed: vec!["c.example.org".into()]
            })
        );
        let rsa = present(
            &["a.example.org", "b.example.org"],
            KeyType::Rsa2048,
            NB,
            NA,
            true,
        );
        assert!(matches!(
            decide(&s, &rsa, Known::default(), now, false),
            Decision::Due(Reason::KeyTypeChanged { .. })
        ));
        let mismatch = present(
            &["a.example.org", "b.example.org"],
            KeyType::EcdsaP256,
            NB,
            NA,
            false,
        );
        assert_eq!(
            decide(&s, &mismatch, Known::default(), now, false),
            Decision::Due(Reason::KeyMismatch)
        );
        assert_eq!(
            decide(&s, &ok, Known::default(), NA, false),
            Decision::Due(Reason::Expired)
        );
    }

    #[test]
    fn a_third_of_the_lifetime() {
        let s = spec(
            &["a.example.org", "b.example.org"],
            RenewPolicy::ThirdOfLifetime,
        );
        let ok = present(
            &["a.example.org", "b.example.org"],
            KeyType::EcdsaP256,
            NB,
            NA,
            true,
        );
        // 90 days: due 30 days before expiry.
        assert!(matches!(
            decide(
                &s,
                &ok,
                Known::default(),
                datetime!(2026-12-30 23:59 UTC),
                false
            ),
            Decision::Current { .. }
        ));
        assert!(matches!(
            decide(
                &s,
                &ok,
                Known::default(),
                datetime!(2026-12-31 0:00 UTC),
                false
            ),
            Decision::Due(Reason::Expiring { .. })
        ));
        // 45 days (tlsserver profile): 15 days before.
        let na45 = NB + time::Duration::days(45);
        assert_eq!(
            renew_at(RenewPolicy::ThirdOfLifetime, NB, na45),
            na45 - time::Duration::days(15)
        );
        // 160 hours (shortlived): under ten days, so half.
        let na6 = NB + time::Duration::hours(160);
        assert_eq!(
            renew_at(RenewPolicy::ThirdOfLifetime, NB, na6),
            NB + time::Duration::hours(80)
        );
        assert_eq!(
            renew_at(RenewPolicy::Before(Duration::from_secs(86400)), NB, NA),
            NA - time::Duration::days(1)
        );
        assert_eq!(
            renew_at(RenewPolicy::Fraction(0.5), NB, NA),
            NB + time::Duration::days(45)
        );
    }

    fn record(fingerprint: &str, issuer: Option<&str>, directory: Option<&str>) -> Recorded {
        Recorded {
            host: "h".into(),
            label: "c".into(),
            names: vec![],
            key_type: "ecdsa-p256".into(),
            serial: "01".into(),
            fingerprint: fingerprint.into(),
            not_before: NB,
            not_after: NA,
            ari_start: None,
            ari_end: None,
            deployed_to: vec![],
            last_result: crate::state::LastResult::Issued,
            updated_at: NB,
            issuer: issuer.map(Into::into),
            directory: directory.map(Into::into),
        }
    }

    /// The issue 12 cases: a certificate with the right names and key type, far from expiry,
    /// from another issuer than the inventory asks for, is due and says from whom to whom.
    #[test]
    fn the_issuer_is_part_of_current() {
        use issuer::tests::{ca, leaf};
        let s = spec(&["a.example.org"], RenewPolicy::ThirdOfLifetime);
        let prod = ca("prod");
        let staging = ca("staging");
        let internal = ca("certorch internal CA");
        let received = vec![
            ("https://ca/dir".to_string(), prod.cert.der.clone()),
            ("https://ca/staging".to_string(), staging.cert.der.clone()),
        ];
        let known_issuers = issuer::known(&received, Some(&internal.pem), &[], "https://ca/dir");
        let acme = Signer::Acme {
            directory: "https://ca/dir".into(),
        };
        let on_host = |cert: CertInfo| -> (Current, OffsetDateTime) {
            let now = cert.not_before + time::Duration::days(1);
            let c = Current::Present(Box::new(Deployed {
                cert,
                key_matches: true,
                stamp: None,
            }));
            (c, now)
        };
        let decide_with = |current: &Current, now, wanted: &Signer, rec: Option<&Recorded>| {
            let known = Known {
                recorded: rec,
                ari: None,
                issuers: Some(Issuers {
                    wanted,
                    known: &known_issuers,
                }),
            };
            decide(&s, current, known, now, false)
        };
        let changed = |from: Signer, to: &Signer| {
            Decision::Due(Reason::IssuerChanged {
                from,
                to: to.clone(),
            })
        };

        let (good, now) = on_host(leaf(&["a.example.org"], Some(&prod)));
        assert!(matches!(
            decide_with(&good, now, &acme, None),
            Decision::Current { .. }
        ));
        // Without the issuer check (the state could not tell), as before.
        let (selfs, now) = on_host(leaf(&["a.example.org"], None));
        assert!(matches!(
            decide(&s, &selfs, Known::default(), now, false),
            Decision::Current { .. }
        ));
        assert_eq!(
            decide_with(&selfs, now, &acme, None),
            changed(Signer::SelfSigned, &acme)
        );
        assert!(matches!(
            decide_with(&selfs, now, &Signer::SelfSigned, None),
            Decision::Current { .. }
        ));
        let (from_staging, now) = on_host(leaf(&["a.example.org"], Some(&staging)));
        assert_eq!(
            decide_with(&from_staging, now, &acme, None),
            changed(
                Signer::Acme {
                    directory: "https://ca/staging".into()
                },
                &acme
            )
        );
        let (from_internal, now) = on_host(leaf(&["a.example.org"], Some(&internal)));
        assert_eq!(
            decide_with(&from_internal, now, &acme, None),
            changed(Signer::Internal, &acme)
        );
        let snakeoil = ca("snakeoil");
        let (placeholder, now) = on_host(leaf(&["a.example.org"], Some(&snakeoil)));
        let due = decide_with(&placeholder, now, &acme, None);
        assert_eq!(
            due,
            changed(
                Signer::Unknown {
                    issuer: "CN=snakeoil".into()
                },
                &acme
            )
        );
        let Decision::Due(reason) = due else {
            unreachable!()
        };
        assert_eq!(
            reason.to_string(),
            "issuer changed: unknown issuer CN=snakeoil → acme (https://ca/dir)"
        );

        // The record says where certorch deployed it from, and wins over the certificate.
        let Current::Present(d) = &good else {
            unreachable!()
        };
        let fp = d.cert.fingerprint.clone();
        let rec = record(&fp, Some("acme"), Some("https://ca/staging"));
        assert_eq!(
            decide_with(&good, now, &acme, Some(&rec)),
            changed(
                Signer::Acme {
                    directory: "https://ca/staging".into()
                },
                &acme
            )
        );
        let rec = record(&fp, Some("self-signed"), None);
        let Decision::Due(reason) = decide_with(&good, now, &acme, Some(&rec)) else {
            panic!("a self-signed record is not current under acme")
        };
        assert_eq!(
            reason.to_string(),
            "issuer changed: self-signed → acme (https://ca/dir)"
        );
        let Current::Present(p) = &placeholder else {
            unreachable!()
        };
        let rec = record(&p.cert.fingerprint, Some("acme"), Some("https://ca/dir"));
        assert!(matches!(
            decide_with(&placeholder, now, &acme, Some(&rec)),
            Decision::Current { .. }
        ));
        // A record from before issuers were kept: current unless the certificate shows another
        // known signer.
        let rec = record(&p.cert.fingerprint, None, None);
        assert!(matches!(
            decide_with(&placeholder, now, &acme, Some(&rec)),
            Decision::Current { .. }
        ));
        let Current::Present(si) = &selfs else {
            unreachable!()
        };
        let rec = record(&si.cert.fingerprint, None, None);
        assert_eq!(
            decide_with(&selfs, now, &acme, Some(&rec)),
            changed(Signer::SelfSigned, &acme)
        );
    }

    #[test]
    fn human_durations() {
        assert_eq!(
            human(Duration::from_secs(3 * 86400 + 4 * 3600 + 5)),
            "3d 4h"
        );
        assert_eq!(human(Duration::from_secs(7500)), "2h 5m");
        assert_eq!(human(Duration::from_secs(59)), "59s");
    }
}
