//! Whether a certificate is due, and why. Pure: what is deployed and the time in, a decision
//! out, so every rule is unit-tested without a host.

pub mod forecast;

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use time::OffsetDateTime;

use crate::acme::ari::{self, Window};
use crate::host::inspect::Current;
use crate::inventory::{CertSpec, RenewPolicy};
use crate::limits;
use crate::state::Recorded;

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

/// What certorch knows besides the host: its record of the deployed certificate and the CA's
/// renewal window for it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    pub recorded: Option<&'a Recorded>,
    pub ari: Option<Window>,
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
    use crate::x509::CertInfo;
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
        Current::Present(Deployed {
            cert: CertInfo {
                der: vec![],
                names: names.iter().map(|n| n.to_string()).collect(),
                key_type: Some(key),
                spki: vec![],
                serial: "01".into(),
                not_before: nb,
                not_after: na,
                fingerprint: String::new(),
            },
            key_matches,
        })
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
