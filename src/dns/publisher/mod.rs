//! Publishers put the run's TXT records where the CA will look and take them away again. Each
//! takes the whole run's batch at once: a publisher that talks to an API makes one call per
//! zone, not one per record.

pub mod exec;
pub mod powerdns;
pub mod rfc2136;
pub mod route53;
pub mod zonefile;

use std::future::Future;
use std::pin::Pin;

use super::Error;
use super::txt::TxtSet;

/// A boxed future, so publishers can be chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Adds and removes exact TXT values; values others put at the same names are left alone.
pub trait Publisher: Send + Sync {
    /// Adds every record of `set`.
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>>;
    /// Removes every record of `set`; removing one that is not there is not an error.
    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>>;
}

/// A publisher built from the inventory, with what describes it in the state and in messages.
pub struct Built {
    pub publisher: Box<dyn Publisher>,
    /// A server address, `zonefile:host:path`, `exec:command`, `powerdns:URL` or `route53:zone-id`.
    pub describe: String,
    /// The TSIG key's name, when updates are signed.
    pub key_name: Option<String>,
}

/// How long one DNS exchange with the update server may take.
const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Builds the publisher `dns:` names in the inventory.
pub fn build(
    inv: &crate::inventory::Inventory,
    zone: &hickory_proto::rr::Name,
) -> Result<Built, crate::problem::Plain> {
    use crate::inventory::model::PublisherConfig;
    use crate::problem::Problem;
    let config = |e: &dyn Problem| crate::problem::Plain {
        kind: crate::problem::Kind::DnsConfig,
        message: e.to_string(),
        hint: e.hint(),
    };
    Ok(match &inv.dns.publisher {
        PublisherConfig::Rfc2136(rfc) => {
            let key = rfc2136::tsig_key(rfc)?;
            let name = key.name.clone();
            Built {
                publisher: Box::new(rfc2136::Rfc2136::new(rfc.server, key, DNS_TIMEOUT)),
                describe: rfc.server.to_string(),
                key_name: Some(name),
            }
        }
        PublisherConfig::ZoneFile(z) => {
            let describe = format!("zonefile:{}:{}", z.host.name, z.path);
            let p = zonefile::ZoneFile::new(z.clone(), inv.ssh.clone(), zone.clone())
                .map_err(|e| config(&e))?;
            Built {
                publisher: Box::new(p),
                describe,
                key_name: None,
            }
        }
        PublisherConfig::PowerDns(p) => Built {
            publisher: Box::new(powerdns::build(p)?),
            describe: format!("powerdns:{}", p.api),
            key_name: None,
        },
        PublisherConfig::Exec { command } => Built {
            publisher: Box::new(exec::Exec::new(command.clone())),
            describe: format!("exec:{}", command[0]),
            key_name: None,
        },
        PublisherConfig::Route53(cfg) => {
            let p = route53::Route53::new(cfg.clone())?;
            Built {
                describe: p.describe(),
                publisher: Box::new(p),
                key_name: None,
            }
        }
    })
}
