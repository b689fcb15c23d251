//! Connecting to the selected hosts, once each, concurrently.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use futures::StreamExt;

use crate::inventory::{Inventory, Target};
use crate::report::{Event, Reporter, Stage};
use crate::transport::{self, Transport};

/// An open connection to a host, or why there is none.
pub type Connection = Result<Arc<dyn Transport>, transport::Error>;

/// A private directory for the SSH control sockets of this run, removed when dropped.
pub fn control_dir() -> std::io::Result<tempfile::TempDir> {
    // Short prefix: a Unix socket path must fit in 108 bytes, and ssh adds its own suffix.
    tempfile::Builder::new().prefix("certorch-ssh.").tempdir()
}

/// Opens a connection to host `i` of the inventory; every command run over it is added to
/// `sessions`. `first` is the command (only reading, as the login user runs it) the caller
/// runs first: the transport may run it as it logs in ([`transport::connect`]).
pub async fn connect_one(
    inv: &Inventory,
    i: usize,
    control: &Path,
    reporter: &dyn Reporter,
    sessions: &Arc<AtomicUsize>,
    first: Option<&crate::host::sh::Cmd>,
) -> Connection {
    let host = &inv.hosts[i];
    reporter.event(Event::Stage {
        host: &host.name,
        cert: "*",
        stage: Stage::Connect,
    });
    transport::connect(host, &inv.ssh, control, first)
        .await
        .map(|c| {
            Arc::new(transport::counted::Counted::new(c, sessions.clone())) as Arc<dyn Transport>
        })
        .map(|c| match host.become_via {
            Some(how) => Arc::new(transport::elevated::Elevated::new(c, how)) as Arc<dyn Transport>,
            None => c,
        })
}

/// Opens one connection per selected host; results come back in target order.
/// Every command run over them is added to `sessions`.
pub async fn connect_all(
    inv: &Inventory,
    targets: &[Target],
    control: &Path,
    concurrency: usize,
    reporter: &dyn Reporter,
    sessions: &Arc<AtomicUsize>,
) -> Vec<(Target, Connection)> {
    // Several targets can name the same host (two of its certificates): connect once.
    let mut hosts: Vec<usize> = targets.iter().map(|t| t.host).collect();
    hosts.sort_unstable();
    hosts.dedup();
    let conns: std::collections::HashMap<usize, Connection> = futures::stream::iter(hosts)
        .map(|i| async move {
            (
                i,
                connect_one(inv, i, control, reporter, sessions, None).await,
            )
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    targets
        .iter()
        .map(|t| {
            // By host index: a search per target is quadratic in the hosts.
            let r = conns
                .get(&t.host)
                .expect("every target's host was connected");
            (t.clone(), r.clone())
        })
        .collect()
}
