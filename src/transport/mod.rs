//! How certorch reaches a host: run a prepared command, optionally feeding it standard input.
//! Everything certorch does on a host goes through [`Transport`], so each transport is a small
//! implementation and every feature works on each.

pub mod counted;
pub mod elevated;
pub mod known_hosts;
pub mod openssh;
pub mod russh;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use crate::host::sh::Cmd;
use crate::inventory::{Host, SshConfig, TransportKind};

/// What a remote command produced.
#[derive(Debug)]
pub struct Output {
    /// The exit code; `None` when the command was killed by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// True when the command exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// The last lines of stderr, for error messages.
    pub fn stderr_tail(&self) -> String {
        last_lines(&self.stderr).unwrap_or_else(|| "no error output".to_string())
    }
}

/// The last three non-blank lines of `text` on one line, joined with " / "; None when it has
/// none.
pub(crate) fn last_lines(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" / ");
    (!tail.is_empty()).then_some(tail)
}

/// Most a command on a host may print on stdout, and on stderr: certorch's own commands print
/// a CSR or a certificate; more means something on the host is wrong, and reading it all would
/// let one host fill the bastion's memory.
pub const OUTPUT_LIMIT: usize = 16 * 1024 * 1024;

/// A command's stdout or stderr as it arrives, refusing more than [`OUTPUT_LIMIT`].
#[derive(Default)]
pub(crate) struct Capped(Vec<u8>);

impl Capped {
    /// Appends `data`; false (and nothing kept) once the whole would pass the limit.
    pub(crate) fn push(&mut self, data: &[u8]) -> bool {
        if self.0.len() + data.len() > OUTPUT_LIMIT {
            return false;
        }
        self.0.extend_from_slice(data);
        true
    }

    /// Reads `r` to its end; false when it printed more than the limit (reading stops there).
    pub(crate) async fn read_from(
        &mut self,
        mut r: impl tokio::io::AsyncRead + Unpin,
    ) -> std::io::Result<bool> {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = r.read(&mut buf).await?;
            if n == 0 {
                return Ok(true);
            }
            if !self.push(&buf[..n]) {
                return Ok(false);
            }
        }
    }

    pub(crate) fn into_inner(self) -> Vec<u8> {
        self.0
    }
}

/// Why a host could not be reached or a command not run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        address: String,
        reason: String,
        hint: String,
        cause: ConnectCause,
    },
    #[error("lost the connection while running {label}: {reason}")]
    Command { label: String, reason: String },
    #[error("{label} did not finish within {}s (ssh.command_timeout) on {address}", after.as_secs())]
    Timeout {
        label: String,
        address: String,
        after: std::time::Duration,
    },
    #[error("{label} printed more than {} MiB on {address}; certorch stopped reading it", OUTPUT_LIMIT >> 20)]
    TooMuchOutput { label: String, address: String },
    #[error("an argument for {label} contains a NUL byte")]
    Nul { label: String },
    #[error("{how} refused to run {label} as root: {reason}")]
    Become {
        how: &'static str,
        label: String,
        reason: String,
    },
}

/// Why a connection failed, for the failure's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCause {
    /// Nothing answers, or the connection broke before the login.
    Unreachable,
    /// The host key is unknown, changed or revoked.
    HostKey,
    /// The login was refused.
    Auth,
    Other,
}

impl crate::problem::Problem for Error {
    fn kind(&self) -> crate::problem::Kind {
        use crate::problem::Kind;
        match self {
            Error::Connect { cause, .. } => match cause {
                ConnectCause::Unreachable => Kind::SshUnreachable,
                ConnectCause::HostKey => Kind::SshHostKeyChanged,
                ConnectCause::Auth => Kind::SshAuthRefused,
                ConnectCause::Other => Kind::SshConnectFailed,
            },
            Error::Command { .. } => Kind::SshConnectionLost,
            Error::Timeout { .. } => Kind::SshTimeout,
            Error::Nul { .. } => Kind::HostRejected,
            Error::Become { .. } => Kind::SshBecomeRefused,
            Error::TooMuchOutput { .. } => Kind::HostCommandFailed,
        }
    }
    fn hint(&self) -> Option<String> {
        Error::hint(self)
    }
}

impl Error {
    /// What the operator should do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Connect { hint, .. } => Some(hint.clone()),
            Error::Command { .. } => Some(
                "check that the host is up and sshd is running, then run certorch again".into(),
            ),
            Error::Timeout { label, .. } => Some(format!(
                "{label} hangs on the host or needs longer: see what it waits for there, or raise ssh.command_timeout"
            )),
            Error::TooMuchOutput { label, address } => Some(format!(
                "see what makes {label} print so much on {address} (a playbook's check or reload command writing to stdout?) and send that output to a file or /dev/null"
            )),
            Error::Nul { .. } => None,
            Error::Become { .. } => Some(
                "allow the login user to run certorch's commands as root without a password (sudoers: `USER ALL=(root) NOPASSWD: /usr/bin/sh, /bin/sh, /usr/bin/env, /usr/bin/cat, /bin/cat` plus the program of each list-form check and reload; doas.conf: `permit nopass USER as root`), or log in as root"
                    .to_string(),
            ),
        }
    }
}

/// What to do about a host that did not finish the SSH login within `ssh.connect_timeout`
/// (down, frozen, or too slow), on either transport.
pub(crate) fn login_timeout_hint(address: &str) -> String {
    format!(
        "{address} does not finish the SSH login: check that the host is up, sshd runs and the address and port in the inventory are right, or raise ssh.connect_timeout"
    )
}

/// What to do about a host key that differs from the one `file` lists for the host: never
/// take it silently; check it out of band, then replace the old entry. Both transports give
/// this hint, so the operator meets one procedure.
pub(crate) fn changed_key_hint(address: &str, port: u16, file: &str) -> String {
    let (name, keyscan) = if port == 22 {
        (address.to_string(), format!("ssh-keyscan {address}"))
    } else {
        (
            format!("[{address}]:{port}"),
            format!("ssh-keyscan -p {port} {address}"),
        )
    };
    format!(
        "the host key of {address} is not the one {file} lists for it, and certorch does not take a changed key: if the host was reinstalled or its key replaced, compare `{keyscan} | ssh-keygen -lf -` with the fingerprint the host itself shows (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on its console), then replace the old entry: `ssh-keygen -R {name} -f {file}` and `{keyscan} >> {file}`; if nobody changed the key, someone may be intercepting the connection"
    )
}

/// The frame every transport's `run` shares: render `cmd` (a NUL byte cannot be sent), run
/// the line with `exec`, and give up after `timeout` with [`Error::Timeout`] naming `address`.
pub(crate) async fn bounded(
    cmd: &Cmd,
    address: &str,
    timeout: std::time::Duration,
    exec: impl AsyncFnOnce(String, &str) -> Result<Output, Error>,
) -> Result<Output, Error> {
    let label = cmd.label().to_string();
    let line = cmd.render().map_err(|_| Error::Nul {
        label: label.clone(),
    })?;
    match tokio::time::timeout(timeout, exec(line, &label)).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout {
            label,
            address: address.to_string(),
            after: timeout,
        }),
    }
}

/// A boxed future, so transports can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An open connection to one host; dropping it closes the connection.
pub trait Transport: Send + Sync {
    /// Runs `cmd` on the host; `stdin` is written to its standard input, then closed.
    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>>;

    /// The words (`sudo -n --`) every command on this host goes through. A command that carries
    /// others (a [batch](crate::host::batch)) puts them before each of its steps, so each step
    /// is allowed or refused by the sudo rule for it, as it would be alone.
    fn elevation(&self) -> &'static [&'static str] {
        &[]
    }

    /// Runs `cmd` as the login user, past [`Transport::elevation`]: only for a command whose
    /// steps carry the elevation themselves.
    fn run_as_login<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>> {
        self.run(cmd, stdin)
    }

    /// `out` of a step run through [`Transport::elevation`], or the elevation's refusal to run
    /// the step `label`.
    fn refused(&self, _label: &str, out: Output) -> Result<Output, Error> {
        Ok(out)
    }
}

/// Connects to `host` with the transport the inventory chose for it; `control_dir` is a
/// private (0700) directory for OpenSSH's control sockets. `first`, a command that only
/// reads, as the login user runs it (elevation included), is the first the caller will
/// `run`: a transport may run it as part of the login and keep its result for that `run`.
pub async fn connect(
    host: &Host,
    ssh: &SshConfig,
    control_dir: &Path,
    first: Option<&Cmd>,
) -> Result<Box<dyn Transport>, Error> {
    Ok(match host.transport {
        TransportKind::OpenSsh => Box::new(openssh::connect(host, ssh, control_dir, first).await?),
        TransportKind::Russh => Box::new(self::russh::connect(host, ssh).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (holes #3): a host that prints past the limit is cut off, not buffered.
    #[tokio::test]
    async fn output_past_the_limit_is_refused() {
        let mut c = Capped::default();
        assert!(c.read_from(&vec![b'x'; OUTPUT_LIMIT][..]).await.unwrap());
        assert!(!c.push(b"y"));
        let mut c = Capped::default();
        let endless = tokio::io::repeat(b'x');
        assert!(!c.read_from(endless).await.unwrap());
        assert!(c.into_inner().len() <= OUTPUT_LIMIT);
        let e = Error::TooMuchOutput {
            label: "certorch-check".into(),
            address: "192.0.2.1".into(),
        };
        assert_eq!(
            e.to_string(),
            "certorch-check printed more than 16 MiB on 192.0.2.1; certorch stopped reading it"
        );
    }
}
