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

/// Where the wait stands: servers that have everything, out of all, and those that did not
/// answer the last question.
#[derive(Debug, Clone)]
pub struct PropagationStatus {
    pub ready: usize,
    pub servers: usize,
    pub elapsed: Duration,
    pub silent: Vec<SocketAddr>,
}

impl fmt::Display for PropagationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} name servers serve every value after {:.1}s",
            self.ready,
            self.servers,
            self.elapsed.as_secs_f32()
        )?;
        if !self.silent.is_empty() {
            write!(f, " (no answer from {})", list(&self.silent))?;
        }
        Ok(())
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
    // A set, not a search of the list per record: a run over 1,000 hosts publishes 2,000
    // names, and the search compared names two million times.
    let mut seen: BTreeSet<(SocketAddr, &Name)> = BTreeSet::new();
    let mut checks: Vec<(SocketAddr, &Name, BTreeSet<&str>)> = Vec::new();
    for r in set.iter() {
        for server in servers_by_zone
            .get(&r.zone)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if seen.insert((*server, &r.name)) {
                checks.push((*server, &r.name, by_name[&r.name].iter().copied().collect()));
            }
        }
    }
    let servers: BTreeSet<SocketAddr> = checks.iter().map(|c| c.0).collect();
    let mut ready_after = BTreeMap::new();
    loop {
        let results: Vec<Checked> =
            futures::future::join_all(checks.iter().map(|(server, name, want)| async move {
                let (have, silent) = match served(*server, name).await {
                    Ok(have) => (have, None),
                    Err(e) => (BTreeSet::new(), Some(e)),
                };
                let missing: Vec<&str> = want
                    .iter()
                    .filter(|v| !have.contains(**v))
                    .copied()
                    .collect();
                Checked {
                    server: *server,
                    name,
                    missing: missing.len(),
                    silent,
                }
            }))
            .await;
        let lagging: BTreeSet<SocketAddr> = results
            .iter()
            .filter(|r| r.missing > 0)
            .map(|r| r.server)
            .collect();
        let silent: BTreeSet<SocketAddr> = results
            .iter()
            .filter(|r| r.silent.is_some())
            .map(|r| r.server)
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
            silent: silent.iter().copied().collect(),
        });
        // `results` is in the order of `checks` (join_all keeps it): keep what still lacks.
        let mut lacking = results.iter().map(|r| r.missing > 0);
        checks.retain(|_| lacking.next().unwrap_or(true));
        if checks.is_empty() {
            return Ok(Evidence { ready_after });
        }
        if start.elapsed() >= timeout {
            return Err(not_propagated(timeout, &results));
        }
        tokio::time::sleep(poll).await;
    }
}

/// One server asked about one name.
struct Checked<'a> {
    server: SocketAddr,
    name: &'a Name,
    /// Values it does not serve there.
    missing: usize,
    /// Why it gave no answer, if it gave none.
    silent: Option<Error>,
}

/// The evidence at the timeout, per server: which did not answer, which answered without
/// (some of) the values and where.
fn not_propagated(timeout: Duration, results: &[Checked<'_>]) -> Error {
    let mut parts = Vec::new();
    let (mut lacking, mut silent) = (Vec::new(), Vec::new());
    let servers: BTreeSet<SocketAddr> = results
        .iter()
        .filter(|r| r.missing > 0)
        .map(|r| r.server)
        .collect();
    for server in servers {
        let of: Vec<&Checked> = results
            .iter()
            .filter(|r| r.server == server && r.missing > 0)
            .collect();
        if let Some(why) = of.iter().find_map(|r| r.silent.as_ref()) {
            parts.push(format!("{server} did not answer ({why})"));
            silent.push(server);
            continue;
        }
        let values: usize = of.iter().map(|r| r.missing).sum();
        let mut names: Vec<String> = of.iter().take(3).map(|r| r.name.to_string()).collect();
        if of.len() > 3 {
            names.push(format!("and {} more", of.len() - 3));
        }
        parts.push(format!(
            "{server} lacks {values} value(s) at {} name(s): {}",
            of.len(),
            names.join(", ")
        ));
        lacking.push(server);
    }
    Error::NotPropagated {
        secs: timeout.as_secs(),
        lagging: parts.join("; "),
        lacking,
        silent,
    }
}

/// `a`, `a and b`, `a, b and c`.
pub(crate) fn list(servers: &[SocketAddr]) -> String {
    let names: Vec<String> = servers.iter().map(|s| s.to_string()).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The TXT values `server` serves at `name`, or why it gave no answer (it is asked again).
async fn served(server: SocketAddr, name: &Name) -> Result<BTreeSet<String>, Error> {
    let m = match lookup::query(server, name, RecordType::TXT, false).await {
        Ok(m) => m,
        Err(e @ (Error::Timeout { .. } | Error::Io { .. })) => return Err(e),
        // An answer, but an error (REFUSED, SERVFAIL: a server that lost the zone): lagging.
        Err(_) => return Ok(BTreeSet::new()),
    };
    // Only an authoritative answer says what this server serves; anything else (a server that
    // lost the zone, a forwarder) counts as lagging.
    if !m.metadata.authoritative {
        return Ok(BTreeSet::new());
    }
    Ok(m.answers
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
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::txt::TxtRecord;

    /// A server that takes the questions and never answers (a frozen daemon) is named as one
    /// that did not answer, not as one lacking the values, and the hint says to check it runs.
    #[tokio::test]
    async fn a_server_that_does_not_answer_is_named_as_such() {
        // Bound, never read: questions arrive and time out, as at a frozen server.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let zone = Name::from_ascii("signing.test.").unwrap();
        let mut set = TxtSet::new(60);
        set.insert(TxtRecord {
            zone: zone.clone(),
            name: Name::from_ascii("a.signing.test.").unwrap(),
            value: "v".into(),
        });
        let mut servers = BTreeMap::new();
        servers.insert(zone, vec![addr]);
        let seen = std::sync::Mutex::new(Vec::new());
        let progress = |s: &PropagationStatus| seen.lock().unwrap().push(s.to_string());
        let err = wait_for(
            &set,
            &servers,
            Duration::from_secs(1),
            Duration::from_millis(100),
            &progress,
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "records are not on every name server after 1s: {addr} did not answer (no answer from {addr} within 4s"
            )),
            "{text}"
        );
        assert_eq!(
            err.hint().unwrap(),
            format!(
                "{addr} did not answer: check that the name server runs and is reachable from this machine on UDP port 53 (the CA asks it too)"
            )
        );
        let seen = seen.lock().unwrap();
        assert!(
            seen[0].ends_with(&format!("(no answer from {addr})")),
            "{seen:?}"
        );
    }

    #[test]
    fn servers_are_listed_in_words() {
        let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:53".parse().unwrap();
        let c: SocketAddr = "192.0.2.3:53".parse().unwrap();
        assert_eq!(list(&[a]), "192.0.2.1:53");
        assert_eq!(list(&[a, b]), "192.0.2.1:53 and 192.0.2.2:53");
        assert_eq!(
            list(&[a, b, c]),
            "192.0.2.1:53, 192.0.2.2:53 and 192.0.2.3:53"
        );
    }
}
