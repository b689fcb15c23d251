//! The `exec` publisher: an operator's command (argv, no shell) gets the whole batch as JSON on
//! stdin, once per publish and once per withdraw, for any DNS provider's API:
//!
//! ```json
//! {"action": "add", "ttl": 60, "records": [{"zone": "acme.example.net.", "name": "www.example.org.acme.example.net.", "value": "…"}]}
//! ```
//!
//! Exit status 0 means done; anything else fails the batch with the command's stderr.

use std::process::Stdio;
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::{BoxFuture, Publisher};
use crate::dns::Error;
use crate::dns::txt::TxtSet;

/// How long the command may take for one batch.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs an operator's command for each batch.
pub struct Exec {
    command: Vec<String>,
}

#[derive(Serialize)]
struct Batch<'a> {
    action: &'static str,
    ttl: u32,
    records: Vec<Record<'a>>,
}

#[derive(Serialize)]
struct Record<'a> {
    zone: String,
    name: String,
    value: &'a str,
}

impl Exec {
    pub fn new(command: Vec<String>) -> Self {
        Exec { command }
    }

    async fn send(&self, set: &TxtSet, action: &'static str) -> Result<(), Error> {
        let batch = Batch {
            action,
            ttl: set.ttl,
            records: set
                .iter()
                .map(|r| Record {
                    zone: r.zone.to_string(),
                    name: r.name.to_string(),
                    value: &r.value,
                })
                .collect(),
        };
        let body = serde_json::to_vec(&batch).map_err(|e| self.err(e.to_string()))?;
        let mut child = tokio::process::Command::new(&self.command[0])
            .args(&self.command[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| self.err(format!("cannot start: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&body)
                .await
                .map_err(|e| self.err(format!("writing the batch: {e}")))?;
        }
        let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| self.err(format!("did not finish within {}s", TIMEOUT.as_secs())))?
            .map_err(|e| self.err(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
            Err(self.err(format!(
                "{action} failed ({}): {}",
                out.status,
                tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
            )))
        }
    }

    fn err(&self, detail: String) -> Error {
        Error::Exec {
            command: self.command[0].clone(),
            detail,
        }
    }
}

impl Publisher for Exec {
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.send(set, "add"))
    }

    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.send(set, "remove"))
    }
}
