//! Before any order: where each name's `_acme-challenge` record leads. It must end inside the
//! signing zone, where certorch publishes; anything else is reported with the record to add.

use hickory_proto::rr::Name;

use super::signing::SigningZone;
use super::{Error, lookup};
use crate::inventory::DnsName;
use crate::limits;
use crate::problem::{Kind, Problem};

/// Why a name's challenge record does not lead into the signing zone.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{challenge} has no CNAME into the signing zone {zone}")]
    Missing {
        challenge: String,
        zone: String,
        parent: String,
        record: String,
    },
    #[error(
        "{challenge} is answered by the wildcard *.{wildcard} (CNAME to {end}), outside the signing zone {zone}"
    )]
    Wildcard {
        challenge: String,
        zone: String,
        wildcard: String,
        end: String,
        record: String,
    },
    #[error("{challenge} leads to {end}, outside the signing zone {zone}")]
    Outside {
        challenge: String,
        zone: String,
        end: String,
        record: String,
    },
    #[error("looking up {challenge}{}: {source}", through(.resolver, .source))]
    Lookup {
        challenge: String,
        /// The recursive resolver asked (`dns.resolver`, else the system's).
        resolver: std::net::SocketAddr,
        source: Error,
    },
}

/// Names the resolver where it is at fault (no answer, an error), not for a CNAME loop.
fn through(resolver: &std::net::SocketAddr, source: &Error) -> String {
    match source {
        Error::CnameLoop(_) | Error::Key(_) => String::new(),
        _ => format!(" through the resolver {resolver}"),
    }
}

impl Problem for RouteError {
    fn kind(&self) -> Kind {
        match self {
            RouteError::Missing { .. } => Kind::DnsCnameMissing,
            RouteError::Wildcard { .. } => Kind::DnsCnameWildcard,
            RouteError::Outside { .. } => Kind::DnsCnameOutside,
            RouteError::Lookup {
                source: Error::CnameLoop(_),
                ..
            } => Kind::DnsCnameLoop,
            // The resolver itself does not answer: not a fault of the name's records.
            RouteError::Lookup { source, .. } if source.kind() == Kind::DnsUnreachable => {
                Kind::DnsUnreachable
            }
            RouteError::Lookup { .. } => Kind::DnsLookupFailed,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            RouteError::Missing { parent, record, .. } => {
                format!("add this record to the zone of {parent}: {record}")
            }
            RouteError::Wildcard { record, .. } => {
                format!(
                    "add a record of its own, which takes precedence over the wildcard: {record}"
                )
            }
            RouteError::Outside { record, .. } => format!("replace it with: {record}"),
            RouteError::Lookup {
                resolver, source, ..
            } if source.kind() == Kind::DnsUnreachable => format!(
                "the resolver {resolver} that certorch asks (dns.resolver, else the first nameserver in /etc/resolv.conf) does not answer: check that it runs and is reachable from this machine on UDP and TCP port {}, or set dns.resolver to one that is",
                resolver.port()
            ),
            RouteError::Lookup { source, .. } => source.hint().unwrap_or_default(),
        })
    }
}

impl SigningZone {
    /// Where `_acme-challenge.<name>` leads, if that is inside the signing zone.
    pub async fn route(&self, name: &DnsName) -> Result<Name, RouteError> {
        let challenge = Name::from_ascii(format!("{}.", name.challenge_name())).map_err(|e| {
            RouteError::Lookup {
                challenge: name.challenge_name(),
                resolver: self.resolver,
                source: Error::Key(e.to_string()),
            }
        })?;
        let base = name.as_str().trim_start_matches("*.");
        let suggested = format!("{base}.{}.", self.zone.to_ascii().trim_end_matches('.'));
        let record = format!("{challenge} IN CNAME {suggested}");
        let zone = self.zone.clone();
        let inside = move |n: &Name| zone.zone_of(n);
        let chain =
            lookup::follow_cnames(self.resolver, &challenge, limits::MAX_CNAME_HOPS, &inside)
                .await
                .map_err(|source| RouteError::Lookup {
                    challenge: challenge.to_string(),
                    resolver: self.resolver,
                    source,
                })?;
        let Some(end) = chain.last() else {
            return Err(RouteError::Missing {
                challenge: challenge.to_string(),
                zone: self.zone.to_string(),
                parent: base.to_string(),
                record,
            });
        };
        if self.zone.zone_of(end) {
            return Ok(end.clone());
        }
        // A wildcard one level up answers for every name below it that has no record of its
        // own, the classic silent capture of _acme-challenge (RFC 4592 §2.2). The wildcard's
        // owner is the highest ancestor under which an invented name still gets the same CNAME.
        let mut owner = None;
        let mut parent = challenge.base_name();
        while parent.num_labels() > 1 {
            let Ok(probe) = Name::from_ascii(format!("_certorch-wildcard-probe.{parent}")) else {
                break;
            };
            if lookup::cname_target(self.resolver, &probe)
                .await
                .ok()
                .flatten()
                .as_ref()
                != chain.first()
            {
                break;
            }
            owner = Some(parent.clone());
            parent = parent.base_name();
        }
        Err(match owner {
            Some(wildcard) => RouteError::Wildcard {
                challenge: challenge.to_string(),
                zone: self.zone.to_string(),
                wildcard: wildcard.to_string(),
                end: end.to_string(),
                record,
            },
            None => RouteError::Outside {
                challenge: challenge.to_string(),
                zone: self.zone.to_string(),
                end: end.to_string(),
                record,
            },
        })
    }
}
