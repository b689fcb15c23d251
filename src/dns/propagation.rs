//! Waiting until every authoritative server of the signing zone serves every value: asked
//! directly (RD=0), not through a cache, so a negative answer cached by a resolver the CA uses
//! is never provoked before the records are there.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, RData, RecordType};

use super::Error;
use super::lookup;
use super::txt::TxtSet;

/// Where the wait stands: servers that have everything, out of all.
#[derive(Debug, Clone)]
pub struct PropagationStatus {
    pub ready: usize,
    pub servers: usize,
    pub elapsed: Duration,
}

impl fmt::Display for PropagationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} name servers serve every value after {:.1}s",
            self.ready,
            self.servers,
            self.elapsed.as_secs_f32()
        )
    }
}

/// When each server first served everything.
#[derive(Debug, Clone)]
pub struct Evidence {
    pub ready_after: BTreeMap<SocketAddr, Duration>,
}

/// Polls every server in `servers_by_zone` until each serves every value of `set` at each
/// name in its zone, or `timeout` passes.
pub async fn wait_for(
    set: &TxtSet,
    servers_by_zone: &BTreeMap<Name, Vec<SocketAddr>>,
    timeout: Duration,
    poll: Duration,
    progress: &dyn Fn(&PropagationStatus),
) -> Result<Evidence, Error> {
    let start = Instant::now();
    let by_name = set.by_name();
    // (server, owner name, expected values)
    let mut checks: Vec<(SocketAddr, &Name, BTreeSet<&str>)> = Vec::new();
    for r in set.iter() {
        for server in servers_by_zone
            .get(&r.zone)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if !checks.iter().any(|(s, n, _)| s == server && *n == &r.name) {
                checks.push((*server, &r.name, by_name[&r.name].iter().copied().collect()));
            }
        }
    }
    let servers: BTreeSet<SocketAddr> = checks.iter().map(|c| c.0).collect();
    let mut ready_after = BTreeMap::new();
    loop {
        let results =
            futures::future::join_all(checks.iter().map(|(server, name, want)| async move {
                let have = served(*server, name).await;
                let missing: Vec<&str> = want
                    .iter()
                    .filter(|v| !have.contains(**v))
                    .copied()
                    .collect();
                (*server, *name, missing)
            }))
            .await;
        let lagging: BTreeSet<SocketAddr> = results
            .iter()
            .filter(|r| !r.2.is_empty())
            .map(|r| r.0)
            .collect();
        for s in &servers {
            if !lagging.contains(s) {
                ready_after.entry(*s).or_insert_with(|| start.elapsed());
            }
        }
        progress(&PropagationStatus {
            ready: servers.len() - lagging.len(),
            servers: servers.len(),
            elapsed: start.elapsed(),
        });
        checks.retain(|(s, n, _)| {
            results
                .iter()
                .any(|r| r.0 == *s && r.1 == *n && !r.2.is_empty())
        });
        if checks.is_empty() {
            return Ok(Evidence { ready_after });
        }
        if start.elapsed() >= timeout {
            let lag: Vec<String> = results
                .iter()
                .filter(|r| !r.2.is_empty())
                .take(5)
                .map(|(s, n, missing)| format!("{s} lacks {} value(s) at {n}", missing.len()))
                .collect();
            return Err(Error::NotPropagated {
                secs: timeout.as_secs(),
                lagging: lag.join("; "),
            });
        }
        tokio::time::sleep(poll).await;
    }
}

/// The TXT values `server` serves at `name` (empty on any failure: it is asked again).
async fn served(server: SocketAddr, name: &Name) -> BTreeSet<String> {
    let Ok(m) = lookup::query(server, name, RecordType::TXT, false).await else {
        return BTreeSet::new();
    };
    // Only an authoritative answer says what this server serves; anything else (a server that
    // lost the zone, a forwarder) counts as lagging.
    if !m.metadata.authoritative {
        return BTreeSet::new();
    }
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) if r.name == *name => Some(
                t.txt_data
                    .iter()
                    .map(|s| String::from_utf8_lossy(s))
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect()
}
