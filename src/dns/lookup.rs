//! Questions to a recursive resolver: where `_acme-challenge` CNAMEs lead, and which servers
//! are authoritative for the signing zone.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

use super::Error;
use super::wire::{self, Via};

const TIMEOUT: Duration = Duration::from_secs(4);

/// The first nameserver in /etc/resolv.conf, port 53.
pub fn system_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .next()
}

/// Asks `server` one question; `recurse` sets RD.
pub async fn query(
    server: SocketAddr,
    name: &Name,
    rtype: RecordType,
    recurse: bool,
) -> Result<Message, Error> {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = recurse;
    msg.add_query(Query::query(name.clone(), rtype));
    let answer = wire::exchange(
        server,
        msg,
        None,
        Via::Udp,
        TIMEOUT,
        &format!("{name} {rtype}"),
    )
    .await?;
    let m = answer.message;
    match m.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(m),
        rc => Err(Error::QueryFailed {
            server,
            name: name.to_string(),
            rtype: rtype.to_string(),
            rcode: rc.to_string(),
        }),
    }
}

/// The CNAME directly at `name`, if any.
pub async fn cname_target(resolver: SocketAddr, name: &Name) -> Result<Option<Name>, Error> {
    let m = query(resolver, name, RecordType::CNAME, true).await?;
    Ok(m.answers.iter().find_map(|r| match &r.data {
        RData::CNAME(c) if r.name == *name => Some(c.0.clone()),
        _ => None,
    }))
}

/// The CNAME chain from `name`: empty if `name` has no CNAME, else each target in order. The
/// chain ends at the first target for which `stop` holds, without asking about it: a question
/// about a name in the signing zone before its record exists would leave a negative answer in
/// a resolver the CA may share, cached for the zone's negative TTL (RFC 2308).
pub async fn follow_cnames(
    resolver: SocketAddr,
    name: &Name,
    max_hops: usize,
    stop: &(dyn Fn(&Name) -> bool + Sync),
) -> Result<Vec<Name>, Error> {
    let mut chain: Vec<Name> = Vec::new();
    let mut at = name.clone();
    while let Some(next) = cname_target(resolver, &at).await? {
        if next == *name || chain.contains(&next) || chain.len() >= max_hops {
            return Err(Error::CnameLoop(name.to_string()));
        }
        chain.push(next.clone());
        if stop(&next) {
            break;
        }
        at = next;
    }
    Ok(chain)
}

/// Addresses of every name server of `zone` (port 53), resolved through `resolver`.
pub async fn authoritative_servers(
    resolver: SocketAddr,
    zone: &Name,
) -> Result<Vec<SocketAddr>, Error> {
    let m = query(resolver, zone, RecordType::NS, true).await?;
    let ns: Vec<Name> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::NS(n) => Some(n.0.clone()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for n in &ns {
        for rtype in [RecordType::A, RecordType::AAAA] {
            let m = query(resolver, n, rtype, true).await?;
            for r in &m.answers {
                let ip = match &r.data {
                    RData::A(a) => IpAddr::V4(a.0),
                    RData::AAAA(a) => IpAddr::V6(a.0),
                    _ => continue,
                };
                let sa = SocketAddr::new(ip, 53);
                if !out.contains(&sa) {
                    out.push(sa);
                }
            }
        }
    }
    if out.is_empty() {
        return Err(Error::NoServers {
            zone: zone.to_string(),
        });
    }
    Ok(out)
}
