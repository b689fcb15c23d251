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
    #[error("the PowerDNS API {api} refused {what}: {answer}")]
    ApiRefused {
        api: String,
        what: String,
        answer: String,
        /// Where the key came from (`the file …`, `$VAR`), never the key.
        key_source: String,
    },
    #[error("the PowerDNS API {api} failed {what}: {answer}")]
    ApiFailed {
        api: String,
        what: String,
        /// The HTTP status, 0 when no answer was involved.
        status: u16,
        answer: String,
    },
    #[error("cannot reach the PowerDNS API {api} ({what}): {detail}")]
    ApiUnreachable {
        api: String,
        what: String,
        detail: String,
    },
    /// A Route 53 API call failed; `detail` carries the HTTP status and AWS's error code and
    /// message when it answered.
    #[error("route53 {action} in hosted zone {zone_id}: {detail}")]
    Route53 {
        zone_id: String,
        action: String,
        failure: publisher::route53::Failure,
        detail: String,
    },
    #[error("CNAME loop at {0}")]
    CnameLoop(String),
    #[error("{zone} has no name servers that resolve to an address")]
    NoServers { zone: String },
    #[error("records are not on every name server after {secs}s: {lagging}")]
    NotPropagated {
        secs: u64,
        lagging: String,
        /// Servers that answered without every value.
        lacking: Vec<SocketAddr>,
        /// Servers that did not answer at all.
        silent: Vec<SocketAddr>,
    },
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
            Error::Exec { .. } | Error::ZoneFile { .. } | Error::ApiFailed { .. } => {
                Kind::DnsPublishFailed
            }
            Error::ApiRefused { .. } => Kind::DnsApiRefused,
            Error::ApiUnreachable { .. } => Kind::DnsUnreachable,
            Error::Route53 { failure, .. } => {
                use publisher::route53::Failure;
                match failure {
                    Failure::NoAnswer => Kind::DnsUnreachable,
                    Failure::Api { code: Some(c), .. } if c == "NoSuchHostedZone" => {
                        Kind::DnsConfig
                    }
                    Failure::Api { code: Some(c), .. } if route53_auth_code(c) => {
                        Kind::DnsUpdateRefused
                    }
                    Failure::Api {
                        status: 401 | 403, ..
                    } => Kind::DnsUpdateRefused,
                    _ => Kind::DnsPublishFailed,
                }
            }
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
            Error::ApiRefused { key_source, .. } => {
                format!("the API key from {key_source} is not the api-key of pdns.conf, or webserver-allow-from does not include this machine: compare them")
            }
            Error::ApiFailed { status: 404, .. } => {
                "the zone is not on that server: create it (pdnsutil create-zone) or check dns.signing_zone and dns.powerdns.server_id".to_string()
            }
            Error::ApiFailed { status: 422, .. } => {
                "PowerDNS refused the change as written: check that every name is inside the zone, and the server's log".to_string()
            }
            Error::ApiFailed { .. } => "check the PowerDNS server's log for the request".to_string(),
            Error::ApiUnreachable { api, .. } => {
                format!("check that {api} is reachable from this machine: api=yes and webserver=yes in pdns.conf, webserver-address and webserver-port")
            }
            Error::Route53 { zone_id, action, failure, .. } => {
                use publisher::route53::Failure;
                let code = match failure {
                    Failure::Api { code, .. } => code.as_deref(),
                    _ => None,
                };
                match (failure, code) {
                    (_, Some("NoSuchHostedZone")) => format!("dns.route53.hosted_zone_id {zone_id} names no hosted zone these credentials can see: `aws route53 list-hosted-zones-by-name --dns-name <signing zone>` shows the id"),
                    (_, Some("SignatureDoesNotMatch")) => "the secret access key does not belong to the access key id, or this machine's clock is off by minutes: check both".to_string(),
                    (_, Some(c)) if route53_auth_code(c) => "AWS refused the credentials: check the access key pair certorch reads (dns.route53, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) and that it is active".to_string(),
                    (Failure::Api { status: 401 | 403, .. }, _) => format!("the credentials may not do {action} here: give their IAM policy route53:ListResourceRecordSets and route53:ChangeResourceRecordSets on arn:aws:route53:::hostedzone/{zone_id} and route53:GetChange on arn:aws:route53:::change/*"),
                    (_, Some("InvalidChangeBatch")) => format!("hosted zone {zone_id} must be the signing zone itself (dns.signing_zone), and nothing else may be rewriting the same names at this moment: check both and run again"),
                    (_, Some("Throttling" | "ThrottlingException" | "PriorRequestNotComplete")) => "Route 53 throttles this account (5 requests a second): run again in a minute, or spread runs that share the account".to_string(),
                    (Failure::NoAnswer, _) => "check that the Route 53 endpoint (dns.route53.endpoint) is reachable from this machine: proxy, firewall, DNS".to_string(),
                    (Failure::NotInSync, _) => "Route 53 applies the change anyway; run again later (records left behind are withdrawn by the next run)".to_string(),
                    _ => format!("see what AWS answered; `aws route53 {}` with the same credentials shows the same answer", kebab(action)),
                }
            }
            Error::CnameLoop(_) => "fix the CNAME records so the chain ends in the signing zone".to_string(),
            Error::NoServers { zone } => format!("check the NS records of {zone} and that their addresses resolve"),
            Error::NotPropagated { lacking, silent, .. } => {
                let mut parts = Vec::new();
                if !lacking.is_empty() {
                    let (does, it, lags) = if lacking.len() == 1 {
                        ("does", "it", "it only lags")
                    } else {
                        ("do", "them", "they only lag")
                    };
                    parts.push(format!("{} {does} not receive the zone's changes: check NOTIFY and zone transfers from the primary to {it}, or raise dns.propagation_timeout if {lags}", propagation::list(lacking)));
                }
                if !silent.is_empty() {
                    parts.push(format!("{} did not answer: check that the name server runs and is reachable from this machine on UDP port 53 (the CA asks it too)", propagation::list(silent)));
                }
                parts.join("; ")
            }
        })
    }
}

/// AWS error codes that mean the credentials themselves were refused.
fn route53_auth_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidClientTokenId"
            | "UnrecognizedClientException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "ExpiredToken"
            | "AccessDenied"
            | "AccessDeniedException"
    )
}

/// `ChangeResourceRecordSets` as the AWS CLI spells it: `change-resource-record-sets`.
fn kebab(action: &str) -> String {
    let mut out = String::new();
    for (i, c) in action.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}
