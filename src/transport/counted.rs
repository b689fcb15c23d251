//! Counts the commands run on a host: each is one SSH session (a channel on the host's one
//! connection), which costs the host a fork and a shell. The run reports the total under
//! `--json` as `ssh_sessions`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{BoxFuture, Error, Output, Transport};
use crate::host::sh::Cmd;

/// `inner`, with every command it runs added to `count`.
pub struct Counted {
    inner: Box<dyn Transport>,
    count: Arc<AtomicUsize>,
}

impl Counted {
    pub fn new(inner: Box<dyn Transport>, count: Arc<AtomicUsize>) -> Counted {
        Counted { inner, count }
    }
}

impl Transport for Counted {
    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>> {
        // Counted when asked for: a command that fails to start may still have cost a session.
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.run(cmd, stdin)
    }
}
