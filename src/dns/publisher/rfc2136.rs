//! RFC 2136 dynamic updates signed with TSIG: one UPDATE per zone for the whole run, adding or
//! deleting exact values (never replacing an RRset, so other runs' values survive).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::{BoxFuture, Publisher};
use crate::dns::Error;
use crate::dns::tsig::TsigKey;
use crate::dns::txt::{TxtRecord, TxtSet};
use crate::dns::wire::{self, Via};
use crate::inventory::{SecretSource, model::Rfc2136Config};
use crate::problem::{Kind, Plain};

/// Loads the TSIG key from a file or the environment; never from the command line.
pub fn tsig_key(rfc: &Rfc2136Config) -> Result<TsigKey, Plain> {
    let config = |e: Error| Plain {
        kind: Kind::DnsConfig,
        message: e.to_string(),
        hint: e.hint(),
    };
    let alg = match rfc.algorithm.as_deref() {
        None => None,
        Some(a) => Some(a.parse::<crate::dns::tsig::TsigAlgorithm>().map_err(|e| {
            Plain::new(
                Kind::DnsConfig,
                e.to_string(),
                "use one of the algorithms certorch-inventory(5) lists",
            )
        })?),
    };
    let key = match &rfc.secret {
        SecretSource::File(path) => TsigKey::load(path, rfc.key_name.as_deref(), alg),
        SecretSource::Env(var) => match std::env::var(var) {
            Ok(b64) => TsigKey::from_base64(
                rfc.key_name.as_deref().unwrap_or("certorch"),
                alg.unwrap_or_default(),
                b64.trim(),
            ),
            Err(_) => {
                return Err(Plain::new(
                    Kind::DnsConfig,
                    format!("the TSIG secret variable {var} is not set"),
                    format!(
                        "export {var} with the base64 secret before running certorch (cron: set it in the crontab or a wrapper)"
                    ),
                ));
            }
        },
    };
    key.map_err(config)
}

/// Records per UPDATE message: ~100 bytes each keeps a message far below the 64 KiB TCP limit.
const RECORDS_PER_MESSAGE: usize = 400;

/// Updates one primary server.
pub struct Rfc2136 {
    server: SocketAddr,
    key: TsigKey,
    timeout: Duration,
}

impl Rfc2136 {
    pub fn new(server: SocketAddr, key: TsigKey, timeout: Duration) -> Self {
        Rfc2136 {
            server,
            key,
            timeout,
        }
    }

    async fn update(&self, set: &TxtSet, add: bool) -> Result<(), Error> {
        for (zone, records) in set.by_zone() {
            for chunk in records.chunks(RECORDS_PER_MESSAGE) {
                let msg = update_message(zone, chunk, set.ttl, add);
                let what = format!("update of {zone}");
                let zone_s = zone.to_string();
                let answer = wire::exchange(
                    self.server,
                    msg,
                    Some(&self.key),
                    Via::Tcp,
                    self.timeout,
                    &what,
                )
                .await
                .map_err(|e| match e {
                    Error::Io { detail, .. } => Error::UpdateUnreachable {
                        server: self.server,
                        zone: zone_s.clone(),
                        key: self.key.name.clone(),
                        detail,
                    },
                    Error::Timeout { secs, .. } => Error::UpdateUnreachable {
                        server: self.server,
                        zone: zone_s.clone(),
                        key: self.key.name.clone(),
                        detail: format!("no answer within {secs}s"),
                    },
                    other => other,
                })?;
                if let Some(tsig_error) = answer.tsig_error {
                    return Err(Error::TsigRejected {
                        server: self.server,
                        zone: zone_s,
                        key: self.key.name.clone(),
                        tsig_error,
                    });
                }
                if answer.message.response_code != ResponseCode::NoError {
                    return Err(Error::UpdateRefused {
                        server: self.server,
                        zone: zone_s,
                        key: self.key.name.clone(),
                        rcode: mnemonic(answer.message.response_code),
                    });
                }
            }
        }
        Ok(())
    }
}

/// The RFC mnemonic of an answer's code (RFC 2136 §2.2, RFC 1035 §4.1.1), as servers log it.
fn mnemonic(rc: ResponseCode) -> String {
    match rc {
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::YXDomain => "YXDOMAIN".into(),
        ResponseCode::YXRRSet => "YXRRSET".into(),
        ResponseCode::NXRRSet => "NXRRSET".into(),
        ResponseCode::NotAuth => "NOTAUTH".into(),
        ResponseCode::NotZone => "NOTZONE".into(),
        other => other.to_string().to_uppercase(),
    }
}

/// An UPDATE for `zone` adding (RFC 2136 §2.5.1) or deleting (§2.5.4, class NONE, TTL 0)
/// each exact TXT value; no prerequisites.
pub fn update_message(zone: &Name, records: &[&TxtRecord], ttl: u32, add: bool) -> Message {
    let mut msg = Message::query();
    msg.metadata.op_code = OpCode::Update;
    msg.metadata.recursion_desired = false;
    let mut zq = Query::new();
    zq.set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    msg.add_zone(zq);
    for r in records {
        let mut rec = Record::from_rdata(
            r.name.clone(),
            ttl,
            RData::TXT(TXT::new(vec![r.value.clone()])),
        );
        if !add {
            rec.dns_class = DNSClass::NONE;
            rec.ttl = 0;
        }
        msg.add_update(rec);
    }
    msg
}

impl Publisher for Rfc2136 {
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.update(set, true))
    }

    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.update(set, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_add_and_delete_exact_values() {
        let zone = Name::from_ascii("signing.test.").unwrap();
        let r = |n: &str, v: &str| TxtRecord {
            zone: zone.clone(),
            name: Name::from_ascii(n).unwrap(),
            value: v.into(),
        };
        let (a, b) = (r("a.signing.test.", "v1"), r("a.signing.test.", "v2"));
        let add = update_message(&zone, &[&a, &b], 60, true);
        assert_eq!(add.metadata.op_code, OpCode::Update);
        assert_eq!(add.zones()[0].name(), &zone);
        assert_eq!(add.zones()[0].query_type(), RecordType::SOA);
        assert!(add.prerequisites().is_empty());
        let ups = add.updates();
        assert_eq!(ups.len(), 2);
        assert!(ups.iter().all(|u| u.dns_class == DNSClass::IN
            && u.ttl == 60
            && u.record_type() == RecordType::TXT));
        let del = update_message(&zone, &[&a], 60, false);
        let u = &del.updates()[0];
        assert_eq!((u.dns_class, u.ttl), (DNSClass::NONE, 0));
        match &u.data {
            RData::TXT(t) => assert_eq!(&*t.txt_data[0], b"v1"),
            other => panic!("{other:?}"),
        }
    }
}
