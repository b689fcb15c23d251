//! The OpenSSH client through the `openssh` crate with native multiplexing: one master
//! connection per host, every command a channel on it. It honours the operator's ssh_config,
//! agent, ProxyJump and known_hosts, and checks host keys strictly.

use openssh::Stdio;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use openssh::Session;
use tokio::io::AsyncWriteExt;

use super::{BoxFuture, ConnectCause, Error, Output, Transport};
use crate::host::sh::Cmd;
use crate::inventory::{Host, SshConfig};

/// The master stays up this long when idle, so a crashed run leaves no ssh process behind for
/// long; a run's longest quiet stretch (propagation wait plus validation) is far shorter.
const MASTER_IDLE: usize = 900;

/// An open multiplexed session to one host; dropping it stops the master.
pub struct OpenSsh {
    session: Session,
    address: String,
    command_timeout: std::time::Duration,
    /// The master's control socket, in `_dir`.
    ctl: PathBuf,
    /// Holds the control socket and the master's log; removed on drop, after the master.
    _dir: tempfile::TempDir,
}

impl Drop for OpenSsh {
    fn drop(&mut self) {
        // A master that is gone already (idle timeout, host down) has nothing to stop.
        if let Err(e) = openssh_mux_client::shutdown_mux_master(&self.ctl) {
            tracing::debug!("stopping the ssh master for {}: {e}", self.address);
        }
    }
}

/// Connects to `host`; `control_dir` is a private (0700) directory for the control sockets.
/// TCP connect, key exchange and login together take at most `ssh.connect_timeout`: ssh's
/// own ConnectTimeout covers only the first, so a host that accepts and then stalls would
/// hold the run. The master is started here rather than by `openssh`'s builder so that it can
/// be killed at the deadline (it forks into the background only after the login).
pub async fn connect(host: &Host, ssh: &SshConfig, control_dir: &Path) -> Result<OpenSsh, Error> {
    let address = host.address.as_str();
    let fail = |reason: String, hint: String, cause: ConnectCause| Error::Connect {
        address: address.to_string(),
        reason,
        hint,
        cause,
    };
    let dir = tempfile::Builder::new()
        .prefix(".ssh-connection")
        .tempdir_in(control_dir)
        .map_err(|e| {
            fail(
                format!(
                    "cannot make a control directory in {}: {e}",
                    control_dir.display()
                ),
                "check that the bastion's temporary directory is writable".into(),
                ConnectCause::Other,
            )
        })?;
    let log = dir.path().join("log");
    let ctl = dir.path().join("master");
    let mut master = tokio::process::Command::new("ssh");
    master
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .arg("-E")
        .arg(&log)
        .arg("-S")
        .arg(&ctl)
        .args(["-M", "-f", "-N"])
        .arg("-o")
        .arg(format!("ControlPersist={MASTER_IDLE}s"))
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!(
            "ConnectTimeout={}",
            ssh.connect_timeout.as_secs().max(1)
        ))
        .args(["-o", "ServerAliveInterval=15"])
        .arg("-p")
        .arg(host.port.to_string())
        .arg("-l")
        .arg(&host.user);
    if let Some(key) = &ssh.identity {
        master.args(["-o", "IdentitiesOnly=yes", "-i"]).arg(key);
    }
    if let Some(config) = &ssh.config {
        master.arg("-F").arg(config);
    }
    if let Some(known) = &ssh.known_hosts {
        let mut o = OsString::from("UserKnownHostsFile=");
        o.push(known);
        master.arg("-o").arg(o);
    }
    master.arg(address);
    // Dropping the status future at the deadline kills ssh (kill_on_drop): nothing is left.
    match tokio::time::timeout(ssh.connect_timeout, master.status()).await {
        Ok(Ok(status)) if status.success() => Ok(OpenSsh {
            session: Session::resume_mux(
                ctl.clone().into_boxed_path(),
                Some(log.into_boxed_path()),
            ),
            address: address.to_string(),
            command_timeout: ssh.command_timeout,
            ctl,
            _dir: dir,
        }),
        Ok(Ok(_)) => {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let reason = lines[lines.len().saturating_sub(3)..].join(" / ");
            Err(connect_error(
                address,
                host.port,
                &text,
                if reason.is_empty() {
                    "ssh exited without saying why".to_string()
                } else {
                    reason
                },
            ))
        }
        Ok(Err(e)) => Err(fail(
            format!("cannot run ssh: {e}"),
            "install the OpenSSH client on the bastion, or set ssh.transport: russh".into(),
            ConnectCause::Other,
        )),
        Err(_) => Err(fail(
            format!(
                "Connection timed out: no SSH session within {}s (TCP connect, key exchange and login)",
                ssh.connect_timeout.as_secs()
            ),
            super::login_timeout_hint(address),
            ConnectCause::Unreachable,
        )),
    }
}

/// Turns the ssh master's log (`log`, its last lines `reason`) into a reason and a next step.
fn connect_error(address: &str, port: u16, log: &str, reason: String) -> Error {
    // ssh(1) tells why only in its log text: this is the one place that reads it.
    let lower = reason.to_lowercase();
    // A changed key: ssh names the known_hosts line that lists the old one
    // ("Offending ED25519 key in FILE:LINE").
    let offending = log.lines().find_map(|l| {
        let (_, rest) = l.split_once("Offending ")?;
        let (_, at) = rest.split_once(" key in ")?;
        let (file, _line) = at.trim().rsplit_once(':')?;
        Some(file.to_string())
    });
    let (cause, hint) = if let Some(file) = offending {
        (
            ConnectCause::HostKey,
            super::changed_key_hint(address, port, &file),
        )
    } else if lower.contains("host key verification failed")
        || lower.contains("no matching host key")
        || lower.contains("host key for")
        || lower.contains("remote host identification has changed")
    {
        (
            ConnectCause::HostKey,
            format!(
                "the host key of {address} is unknown or has changed: verify the key out of band, then add it to known_hosts (ssh-keyscan {address} and compare the fingerprint)"
            ),
        )
    } else if lower.contains("permission denied") {
        (ConnectCause::Auth, "the login was refused: check the user, and that certorch's key (agent or ssh.identity) is in the host's authorized_keys".to_string())
    } else if lower.contains("timed out")
        || lower.contains("no route")
        || lower.contains("connection refused")
    {
        (
            ConnectCause::Unreachable,
            format!(
                "{address} does not answer on the SSH port: check that the host is up, sshd runs and the address and port in the inventory are right"
            ),
        )
    } else {
        (
            ConnectCause::Other,
            format!("try `ssh -v {address}` by hand with the same ssh_config to see why"),
        )
    };
    Error::Connect {
        address: address.to_string(),
        reason: one_line(&reason),
        hint,
        cause,
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
        let code = match child.wait().await {
            Ok(status) => status.code(),
            // openssh turns exit 127 (the shell's "not found") into an error of its own; it is
            // the command's exit status, as russh reports it.
            Err(openssh::Error::Remote(e)) if e.kind() == std::io::ErrorKind::NotFound => Some(127),
            Err(e) => return Err(lost(e)),
        };
        Ok(Output {
            code,
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
