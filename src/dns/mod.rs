//! DNS for dns-01: RFC 2136 updates signed with TSIG (RFC 8945) into the signing zone, lookups
//! through a recursive resolver (CNAMEs, name servers), and the propagation check that asks
//! every authoritative server directly.

pub mod caa;
pub mod lookup;
pub mod preflight;
pub mod propagation;
pub mod publisher;
pub mod rounds;
pub mod signing;
pub mod tsig;
pub mod txt;
pub mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;

/// A DNS operation failed; every variant names what an operator needs to find the cause.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("TSIG update refused by {server} for zone {zone} (key {key}): {tsig_error}")]
    TsigRejected {
        server: SocketAddr,
        zone: String,
        key: String,
        tsig_error: String,
    },
    #[error("update refused by {server} for zone {zone} (key {key}): {rcode}")]
    UpdateRefused {
        server: SocketAddr,
        zone: String,
        key: String,
        rcode: String,
    },
    #[error("cannot send the update for zone {zone} (key {key}) to {server}: {detail}")]
    UpdateUnreachable {
        server: SocketAddr,
        zone: String,
        key: String,
        detail: String,
    },
    #[error("{server} answered {name} {rtype} with {rcode}")]
    QueryFailed {
        server: SocketAddr,
        name: String,
        rtype: String,
        rcode: String,
    },
    #[error("no answer from {server} within {secs}s ({what})")]
    Timeout {
        server: SocketAddr,
        secs: u64,
        what: String,
    },
    #[error("talking to {server}: {detail}")]
    Io { server: SocketAddr, detail: String },
    #[error("the response from {server} failed TSIG verification: {detail}")]
    BadResponse { server: SocketAddr, detail: String },
    #[error("TSIG key file {}: {detail}", path.display())]
    KeyFile { path: PathBuf, detail: String },
    #[error("TSIG key: {0}")]
    Key(String),
    #[error("the publish command `{command}`: {detail}")]
    Exec { command: String, detail: String },
    #[error("zone file {path} on {host}: {detail}")]
    ZoneFile {
        host: String,
        path: String,
        detail: String,
    },
    #[error("CNAME loop at {0}")]
    CnameLoop(String),
    #[error("{zone} has no name servers that resolve to an address")]
    NoServers { zone: String },
    #[error("records are not on every name server after {secs}s: {lagging}")]
    NotPropagated { secs: u64, lagging: String },
}

impl crate::problem::Problem for Error {
    fn kind(&self) -> crate::problem::Kind {
        use crate::problem::Kind;
        match self {
            Error::TsigRejected { .. } | Error::BadResponse { .. } => Kind::DnsTsigRefused,
            Error::UpdateRefused { .. } => Kind::DnsUpdateRefused,
            Error::UpdateUnreachable { .. } | Error::Timeout { .. } | Error::Io { .. } => {
                Kind::DnsUnreachable
            }
            Error::QueryFailed { .. } | Error::NoServers { .. } => Kind::DnsLookupFailed,
            Error::KeyFile { .. } | Error::Key(_) => Kind::DnsConfig,
            Error::Exec { .. } | Error::ZoneFile { .. } => Kind::DnsPublishFailed,
            Error::CnameLoop(_) => Kind::DnsCnameLoop,
            Error::NotPropagated { .. } => Kind::DnsNotPropagated,
        }
    }
    fn hint(&self) -> Option<String> {
        Error::hint(self)
    }
}

impl Error {
    /// What the operator should do next.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            Error::TsigRejected { key, tsig_error, .. } if tsig_error == "BADTIME" => {
                format!("the clocks of this machine and the DNS server differ by more than the TSIG fudge: check NTP on both (key {key})")
            }
            Error::TsigRejected { key, zone, .. } => {
                format!("the key `{key}` certorch uses does not match the one the server has for {zone}: compare the secret and algorithm with the server's key statement")
            }
            Error::UpdateRefused { key, zone, .. } => {
                format!("the server does not let key `{key}` update TXT records in {zone}: check its update-policy / allow-update for the zone")
            }
            Error::Timeout { server, .. } | Error::Io { server, .. } | Error::UpdateUnreachable { server, .. } => {
                format!("check that {server} is reachable from this machine and answers on UDP and TCP port {}", server.port())
            }
            Error::QueryFailed { .. } => "check the zone on that server".to_string(),
            Error::BadResponse { .. } => "someone may be tampering with DNS traffic, or the server signs with another key: check the key".to_string(),
            Error::KeyFile { .. } | Error::Key(_) => {
                "give a BIND key file (tsig-keygen output) or a file with just the base64 secret plus key_name and algorithm in the inventory".to_string()
            }
            Error::Exec { command, .. } => {
                format!("run `{command}` by hand with the JSON batch on stdin (see certorch-inventory(5)) to see why it fails")
            }
            Error::ZoneFile { host, .. } => {
                format!("check SSH to {host}, that the zone file is writable there and the reload command works by hand")
            }
            Error::CnameLoop(_) => "fix the CNAME records so the chain ends in the signing zone".to_string(),
            Error::NoServers { zone } => format!("check the NS records of {zone} and that their addresses resolve"),
            Error::NotPropagated { .. } => {
                "the lagging server does not receive the zone's changes: check NOTIFY and zone transfers from the primary, or raise dns.propagation_timeout".to_string()
            }
        })
    }
}
