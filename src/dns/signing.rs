//! The signing zone of a run: where names are looked up, how TXT records are published there,
//! and what a resolver serves. Built once per run from the inventory.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, RecordType};

use super::publisher::Publisher;
use super::txt::{TxtRecord, TxtSet};
use super::{Error, lookup};
use crate::inventory::Inventory;
use crate::problem::{Kind, Plain};

/// The DNS side of a run: where to look names up and how to publish.
pub struct SigningZone {
    pub(super) resolver: SocketAddr,
    /// What publishes, for the state's record of TXT rows (a server address, or the command).
    pub describe: String,
    /// The TSIG key's name, when updates are signed.
    key_name: Option<String>,
    pub(super) zone: Name,
    publisher: Box<dyn Publisher>,
    /// The TTL of the records certorch publishes.
    pub ttl: u32,
    pub propagation_timeout: Duration,
}

impl SigningZone {
    /// Builds the publisher the inventory chose and picks the resolver.
    pub async fn new(inv: &Inventory) -> Result<SigningZone, Plain> {
        let cfg = &inv.dns;
        let zone = Name::from_ascii(format!("{}.", cfg.signing_zone))
            .map_err(|e| Plain::new(Kind::DnsConfig, e.to_string(), "check dns.signing_zone"))?;
        let built = super::publisher::build(inv, &zone)?;
        let resolver = cfg
            .resolver
            .or_else(lookup::system_resolver)
            .ok_or_else(|| {
                Plain::new(
                    Kind::DnsConfig,
                    "no resolver: dns.resolver is not set and /etc/resolv.conf names no nameserver",
                    "set dns.resolver in the inventory to a recursive resolver's address",
                )
            })?;
        Ok(SigningZone {
            resolver,
            zone,
            describe: built.describe,
            key_name: built.key_name,
            publisher: built.publisher,
            ttl: cfg.ttl,
            propagation_timeout: cfg.propagation_timeout,
        })
    }

    /// Adds and removes a probe TXT record with the configured key, so a refused key or a dead
    /// server stops the run before any order is opened at the CA.
    pub async fn probe(&self) -> Result<(), Error> {
        let name = Name::from_ascii(format!("_certorch-probe.{}", self.zone))
            .map_err(|e| Error::Key(e.to_string()))?;
        let mut set = TxtSet::new(self.ttl);
        set.insert(TxtRecord {
            zone: self.zone.clone(),
            name,
            value: format!("certorch probe {}", std::process::id()),
        });
        self.publisher.publish(&set).await?;
        self.publisher.withdraw(&set).await
    }

    /// Publishes `set`.
    pub async fn publish(&self, set: &TxtSet) -> Result<(), Error> {
        self.publisher.publish(set).await
    }

    /// Withdraws `set`.
    pub async fn withdraw(&self, set: &TxtSet) -> Result<(), Error> {
        self.publisher.withdraw(set).await
    }

    /// The signing zone.
    pub fn zone(&self) -> &Name {
        &self.zone
    }

    /// The TSIG key's name, when updates are signed.
    pub fn key_name(&self) -> Option<&str> {
        self.key_name.as_deref()
    }

    /// The resolver used for lookups.
    pub fn resolver(&self) -> SocketAddr {
        self.resolver
    }

    /// The TXT values the resolver serves at `name` now and for how much longer (the TTL it
    /// answers with counts down while it caches them): for a hint when the CA saw a wrong value.
    pub async fn served(&self, name: &Name) -> Result<(Vec<String>, u32), Error> {
        let m = lookup::query(self.resolver, name, RecordType::TXT, true).await?;
        let mut values = Vec::new();
        let mut ttl = 0;
        for r in &m.answers {
            if let RData::TXT(t) = &r.data {
                values.push(
                    t.txt_data
                        .iter()
                        .map(|d| String::from_utf8_lossy(d).into_owned())
                        .collect::<String>(),
                );
                ttl = ttl.max(r.ttl);
            }
        }
        Ok((values, ttl))
    }
}
