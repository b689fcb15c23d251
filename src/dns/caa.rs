//! CAA (RFC 8659): whether the CA may issue for a name. The relevant RRset is found by climbing
//! from the name toward the root through the resolver (§3); the CA may issue when that set is
//! empty or one of its `issue` (`issuewild` for a wildcard) properties names one of the CA's
//! identities (§4). Checked before any key or order: a CA that finds a forbidding set refuses
//! only after the order is opened and the challenges answered.

use std::net::SocketAddr;

use hickory_proto::rr::{Name, RData, RecordType};

use super::{Error, lookup};
use crate::inventory::DnsName;
use crate::problem::{Kind, Problem};

/// One CAA property as served: flags, tag and value (RFC 8659 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaaRecord {
    /// The issuer critical flag (bit 0 of the flags octet, 128).
    pub critical: bool,
    pub tag: String,
    pub value: String,
}

impl std::fmt::Display for CaaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CAA {} {} \"{}\"",
            if self.critical { 128 } else { 0 },
            self.tag,
            self.value
        )
    }
}

/// The tags this implementation understands; a critical property with any other tag forbids
/// issuance (RFC 8659 §4.5). `iodef` asks for reports only; `contactemail` and `contactphone`
/// (RFC 8657's neighbours in the registry) carry contacts and restrict nothing.
const KNOWN_TAGS: &[&str] = &[
    "issue",
    "issuewild",
    "iodef",
    "contactemail",
    "contactphone",
];

/// Why the relevant CAA RRset lets this CA not issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A critical property this implementation does not understand (§4.5).
    UnknownCritical(String),
    /// The `issue`/`issuewild` properties name other CAs only, or none (`;`).
    NotListed { tag: &'static str },
}

/// The domain of an `issue`/`issuewild` value: the text before the first `;`, trimmed, lower
/// case, without a trailing dot. Empty when the value authorizes no CA (`;` or `""`).
pub fn issuer_domain(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether the relevant RRset `set` lets a CA known by `identities` issue for a name
/// (`wildcard`: a `*.` name). An empty set restricts nothing (§3).
pub fn permits(set: &[CaaRecord], identities: &[String], wildcard: bool) -> Result<(), Refusal> {
    if let Some(r) = set
        .iter()
        .find(|r| r.critical && !KNOWN_TAGS.contains(&r.tag.to_ascii_lowercase().as_str()))
    {
        return Err(Refusal::UnknownCritical(r.to_string()));
    }
    let with = |tag: &str| -> Vec<&CaaRecord> {
        set.iter()
            .filter(|r| r.tag.eq_ignore_ascii_case(tag))
            .collect()
    };
    // A wildcard is governed by issuewild when the set has any, else by issue (§4.3).
    let (tag, props) = match (wildcard, with("issuewild")) {
        (true, wild) if !wild.is_empty() => ("issuewild", wild),
        _ => ("issue", with("issue")),
    };
    // A set without issue properties (only iodef, say) restricts nothing (§4.2).
    if props.is_empty() {
        return Ok(());
    }
    let listed = props.iter().any(|r| {
        let domain = issuer_domain(&r.value);
        !domain.is_empty()
            && identities
                .iter()
                .any(|id| id.trim_end_matches('.').eq_ignore_ascii_case(&domain))
    });
    if listed {
        Ok(())
    } else {
        Err(Refusal::NotListed { tag })
    }
}

/// The relevant CAA RRset of `name` (RFC 8659 §3): the first non-empty CAA answer asking at the
/// name, then each parent up to (not including) the root; a CNAME at a name is followed by the
/// resolver. Returns the set and the name it stands at; `None` when no name up the tree has one.
pub async fn relevant(
    resolver: SocketAddr,
    name: &Name,
) -> Result<Option<(Name, Vec<CaaRecord>)>, Error> {
    let mut at = name.clone();
    while !at.is_root() {
        let m = lookup::query(resolver, &at, RecordType::CAA, true).await?;
        let set: Vec<CaaRecord> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::CAA(c) => Some(CaaRecord {
                    critical: c.issuer_critical,
                    tag: c.tag.clone(),
                    value: String::from_utf8_lossy(&c.value).into_owned(),
                }),
                _ => None,
            })
            .collect();
        if !set.is_empty() {
            return Ok(Some((at, set)));
        }
        at = at.base_name();
    }
    Ok(None)
}

/// A name the CA may not issue for, or a CAA lookup that failed.
#[derive(Debug, thiserror::Error)]
pub enum CaaError {
    #[error("CAA at {owner} forbids the CA ({identities}) to issue for {name}: {why}")]
    Forbidden {
        name: String,
        owner: String,
        identities: String,
        why: String,
        /// The record that would allow it, as a zone-file line.
        record: String,
    },
    #[error("looking up CAA for {name}: {source}")]
    Lookup { name: String, source: Box<Error> },
}

impl Problem for CaaError {
    fn kind(&self) -> Kind {
        match self {
            CaaError::Forbidden { .. } => Kind::DnsCaaForbids,
            CaaError::Lookup { .. } => Kind::DnsLookupFailed,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            CaaError::Forbidden { record, name, .. } => Some(format!(
                "add this record to the zone of {}: {record} (or drop the name from the certificate)",
                name.trim_start_matches("*.")
            )),
            CaaError::Lookup { source, .. } => source.hint(),
        }
    }
}

/// The relevant CAA RRset of a certificate name: a wildcard's is looked up at its base name
/// (RFC 8659 §3). `None` when no name up the tree has one.
pub async fn lookup_for(
    resolver: SocketAddr,
    name: &DnsName,
) -> Result<Option<(Name, Vec<CaaRecord>)>, CaaError> {
    let lookup_err = |source| CaaError::Lookup {
        name: name.to_string(),
        source: Box::new(source),
    };
    let base = name.as_str().trim_start_matches("*.");
    let fqdn =
        Name::from_ascii(format!("{base}.")).map_err(|e| lookup_err(Error::Key(e.to_string())))?;
    relevant(resolver, &fqdn).await.map_err(lookup_err)
}

/// Whether the CA known by `identities` may issue for `name`, given the relevant RRset `set`
/// found at `owner`.
pub fn verdict(
    name: &DnsName,
    owner: &Name,
    set: &[CaaRecord],
    identities: &[String],
) -> Result<(), CaaError> {
    let wildcard = name.as_str().starts_with("*.");
    permits(set, identities, wildcard).map_err(|refusal| {
        let tag = match &refusal {
            Refusal::NotListed { tag } => tag,
            Refusal::UnknownCritical(_) if wildcard => "issuewild",
            Refusal::UnknownCritical(_) => "issue",
        };
        let why = match refusal {
            Refusal::UnknownCritical(r) => {
                format!("the critical property `{r}` is not understood (RFC 8659 §4.5)")
            }
            Refusal::NotListed { .. } => format!(
                "its {tag} properties allow {}",
                set.iter()
                    .filter(|r| r.tag.eq_ignore_ascii_case(tag))
                    .map(|r| format!("\"{}\"", r.value))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let (identities, identity) = match identities.first() {
            Some(first) => (identities.join(", "), first.clone()),
            // Neither the directory nor the inventory says how the CA appears in CAA.
            None => (
                "no CAA identity known: set acme.caa_identities".to_string(),
                "<your CA's CAA domain>".to_string(),
            ),
        };
        CaaError::Forbidden {
            name: name.to_string(),
            owner: owner.to_string(),
            identities,
            why,
            // At the name itself: the closest set wins, so this allows the name and nothing else.
            record: format!(
                "{}. IN CAA 0 {tag} \"{identity}\"",
                name.as_str().trim_start_matches("*.")
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(critical: bool, tag: &str, value: &str) -> CaaRecord {
        CaaRecord {
            critical,
            tag: tag.into(),
            value: value.into(),
        }
    }

    fn ids() -> Vec<String> {
        vec!["letsencrypt.org".into(), "pebble.test".into()]
    }

    #[test]
    fn caa_matching() {
        let not = |tag| Err(Refusal::NotListed { tag });
        type Case = (&'static str, Vec<CaaRecord>, bool, Result<(), Refusal>);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("no set", vec![], false, Ok(())),
            ("issue names the CA", vec![rec(false, "issue", "letsencrypt.org")], false, Ok(())),
            ("second identity", vec![rec(false, "issue", "pebble.test")], false, Ok(())),
            ("case and trailing dot", vec![rec(false, "ISSUE", "LetsEncrypt.org.")], false, Ok(())),
            ("parameters after ;", vec![rec(false, "issue", "letsencrypt.org; accounturi=https://x/acct/1; validationmethods=dns-01")], false, Ok(())),
            ("spaces around the domain", vec![rec(false, "issue", "  letsencrypt.org ;")], false, Ok(())),
            ("other CA only", vec![rec(false, "issue", "other-ca.example")], false, not("issue")),
            ("one of several", vec![rec(false, "issue", "other-ca.example"), rec(false, "issue", "pebble.test")], false, Ok(())),
            ("empty issue forbids all", vec![rec(false, "issue", ";")], false, not("issue")),
            ("empty value forbids all", vec![rec(false, "issue", "")], false, not("issue")),
            ("a subdomain is not the identity", vec![rec(false, "issue", "ca.letsencrypt.org")], false, not("issue")),
            ("iodef only restricts nothing", vec![rec(false, "iodef", "mailto:x@example.org")], false, Ok(())),
            ("unknown non-critical tag ignored", vec![rec(false, "future", "x"), rec(false, "issue", "pebble.test")], false, Ok(())),
            ("unknown critical tag forbids", vec![rec(true, "future", "x"), rec(false, "issue", "pebble.test")], false, Err(Refusal::UnknownCritical("CAA 128 future \"x\"".into()))),
            ("critical known tag is fine", vec![rec(true, "issue", "pebble.test")], false, Ok(())),
            ("issuewild does not govern plain names", vec![rec(false, "issuewild", "pebble.test"), rec(false, "issue", "other-ca.example")], false, not("issue")),
            ("issuewild governs wildcards", vec![rec(false, "issuewild", "pebble.test"), rec(false, "issue", "other-ca.example")], true, Ok(())),
            ("issuewild forbids wildcards", vec![rec(false, "issuewild", ";"), rec(false, "issue", "pebble.test")], true, not("issuewild")),
            ("wildcard falls back to issue", vec![rec(false, "issue", "pebble.test")], true, Ok(())),
            ("wildcard falls back to issue, forbidden", vec![rec(false, "issue", "other-ca.example")], true, not("issue")),
            ("issuewild only, plain name unrestricted", vec![rec(false, "issuewild", "other-ca.example")], false, Ok(())),
        ];
        for (what, set, wildcard, want) in cases {
            assert_eq!(permits(&set, &ids(), wildcard), want, "{what}");
        }
    }

    #[test]
    fn issuer_domain_of_values() {
        assert_eq!(issuer_domain("Pebble.Test.; a=b"), "pebble.test");
        assert_eq!(issuer_domain(";"), "");
        assert_eq!(issuer_domain(""), "");
    }
}
