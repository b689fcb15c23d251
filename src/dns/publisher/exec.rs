//! The `exec` publisher: an operator's command (argv, no shell) gets the whole batch as JSON on
//! stdin, once per publish and once per withdraw, for any DNS provider's API:
//!
//! ```json
//! {"action": "add", "ttl": 60, "records": [{"zone": "acme.example.net.", "name": "www.example.org.acme.example.net.", "value": "…"}]}
//! ```
//!
//! Exit status 0 means done; anything else fails the batch with the command's stderr.

use std::time::Duration;

use serde::Serialize;

use super::{BoxFuture, Publisher};
use crate::dns::Error;
use crate::dns::txt::TxtSet;

/// How long the command may take for one batch.
const TIMEOUT: Duration = Duration::from_secs(120);

/// Runs an operator's command for each batch.
pub struct Exec {
    command: Vec<String>,
    timeout: Duration,
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
        Exec {
            command,
            timeout: TIMEOUT,
        }
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
        // Writing the batch is inside the timeout too: a command that never reads its
        // input must not hold the run.
        let out = crate::process::run(&self.command, &body, self.timeout)
            .await
            .map_err(|e| self.err(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = &out.stderr;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (holes #2): a publish command that never reads its batch nor exits is
    /// bounded by the timeout as a whole, the write of the batch included.
    #[tokio::test]
    async fn a_publish_command_that_hangs_is_killed_at_the_timeout() {
        let exec = Exec {
            command: ["sh", "-c", "sleep 1000 & sleep 1000"]
                .map(String::from)
                .into(),
            timeout: Duration::from_secs(1),
        };
        let err = exec.publish(&TxtSet::new(60)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the publish command `sh`: did not finish within 1s and was killed with everything it started"
        );
    }
}
