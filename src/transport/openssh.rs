//! The OpenSSH client through the `openssh` crate with native multiplexing: one master
//! connection per host, every command a channel on it. It honours the operator's ssh_config,
//! agent, ProxyJump and known_hosts, and checks host keys strictly.

use openssh::Stdio;
use std::num::NonZeroUsize;
use std::path::Path;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder};
use tokio::io::AsyncWriteExt;

use super::{BoxFuture, Error, Output, Transport};
use crate::host::sh::Cmd;
use crate::inventory::{Host, SshConfig};

/// The master stays up this long when idle, so a crashed run leaves no ssh process behind for
/// long; a run's longest quiet stretch (propagation wait plus validation) is far shorter.
const MASTER_IDLE: usize = 900;

/// An open multiplexed session to one host.
pub struct OpenSsh {
    session: Session,
    address: String,
    command_timeout: std::time::Duration,
}

/// Connects to `host`; `control_dir` is a private (0700) directory for the control sockets.
pub async fn connect(host: &Host, ssh: &SshConfig, control_dir: &Path) -> Result<OpenSsh, Error> {
    let mut b = SessionBuilder::default();
    b.known_hosts_check(KnownHosts::Strict)
        .user(host.user.clone())
        .port(host.port)
        .connect_timeout(ssh.connect_timeout)
        .server_alive_interval(std::time::Duration::from_secs(15))
        .control_directory(control_dir)
        .control_persist(ControlPersist::IdleFor(
            NonZeroUsize::new(MASTER_IDLE).expect("non-zero constant"),
        ));
    if let Some(config) = &ssh.config {
        b.config_file(config);
    }
    if let Some(known) = &ssh.known_hosts {
        b.user_known_hosts_file(known);
    }
    if let Some(key) = &ssh.identity {
        b.keyfile(key);
    }
    match b.connect_mux(&host.address).await {
        Ok(session) => Ok(OpenSsh {
            session,
            address: host.address.clone(),
            command_timeout: ssh.command_timeout,
        }),
        Err(e) => Err(connect_error(&host.address, &e)),
    }
}

/// Turns the ssh master's log into a reason and a next step.
fn connect_error(address: &str, e: &openssh::Error) -> Error {
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    let lower = reason.to_lowercase();
    let hint = if lower.contains("host key verification failed")
        || lower.contains("no matching host key")
        || lower.contains("host key for")
        || lower.contains("remote host identification has changed")
    {
        format!(
            "the host key of {address} is unknown or has changed: verify the key out of band, then add it to known_hosts (ssh-keyscan {address} and compare the fingerprint)"
        )
    } else if lower.contains("permission denied") {
        "the login was refused: check the user, and that certorch's key (agent or ssh.identity) is in the host's authorized_keys".to_string()
    } else if lower.contains("timed out")
        || lower.contains("no route")
        || lower.contains("connection refused")
    {
        format!(
            "{address} does not answer on the SSH port: check that the host is up, sshd runs and the address and port in the inventory are right"
        )
    } else {
        format!("try `ssh -v {address}` by hand with the same ssh_config to see why")
    };
    Error::Connect {
        address: address.to_string(),
        reason: one_line(&reason),
        hint,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl OpenSsh {
    /// Runs one command line on a new channel of the master and collects what it produced.
    async fn exec(&self, line: String, stdin: Option<&[u8]>, label: &str) -> Result<Output, Error> {
        let lost = |e: openssh::Error| Error::Command {
            label: label.to_string(),
            reason: one_line(&e.to_string()),
        };
        // raw_command: the line is already quoted argument by argument by `sh::Cmd`.
        let mut command = self.session.raw_command(line);
        command
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().await.map_err(lost)?;
        let input = child.stdin().take();
        let stdout = child.stdout().take();
        let stderr = child.stderr().take();
        let io = |e: std::io::Error, what: &str| Error::Command {
            label: label.to_string(),
            reason: format!("{what}: {e}"),
        };
        // Writing and reading at once: a command may print before it has read all its input.
        let writing = async {
            if let Some(data) = stdin
                && let Some(mut pipe) = input
            {
                pipe.write_all(data)
                    .await
                    .map_err(|e| io(e, "writing standard input"))?;
                pipe.shutdown().await.ok();
            }
            Ok::<_, Error>(())
        };
        let too_much = || Error::TooMuchOutput {
            label: label.to_string(),
            address: self.address.clone(),
        };
        let mut out = super::Capped::default();
        let mut err = super::Capped::default();
        // Both at once, so a command filling one pipe never waits on us reading the other;
        // past the limit the child is dropped, which closes the channel (SIGPIPE remotely).
        let reading_out = async {
            match stdout {
                Some(p) => match out.read_from(p).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(too_much()),
                    Err(e) => Err(io(e, "reading standard output")),
                },
                None => Ok(()),
            }
        };
        let reading_err = async {
            match stderr {
                Some(p) => match err.read_from(p).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(too_much()),
                    Err(e) => Err(io(e, "reading standard error")),
                },
                None => Ok(()),
            }
        };
        tokio::try_join!(writing, reading_out, reading_err)?;
        let status = child.wait().await.map_err(lost)?;
        Ok(Output {
            code: status.code(),
            stdout: out.into_inner(),
            stderr: String::from_utf8_lossy(&err.into_inner()).into_owned(),
        })
    }
}

impl Transport for OpenSsh {
    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>> {
        Box::pin(super::bounded(
            cmd,
            &self.address,
            self.command_timeout,
            async move |line, label| self.exec(line, stdin, label).await,
        ))
    }
}
