//! The OpenSSH client through the `openssh` crate with native multiplexing: one master
//! connection per host, every command a channel on it. It honours the operator's ssh_config,
//! agent, ProxyJump and known_hosts, and checks host keys strictly.

use openssh::Stdio;
use std::ffi::OsString;
use std::path::Path;

use openssh::Session;
use tokio::io::AsyncWriteExt;

use super::{BoxFuture, ConnectCause, Error, OUTPUT_LIMIT, Output, Transport};
use crate::host::batch::find;
use crate::host::sh::Cmd;
use crate::inventory::{Host, SshConfig};

/// An open multiplexed session to one host; dropping it stops the master.
pub struct OpenSsh {
    session: Session,
    address: String,
    command_timeout: std::time::Duration,
    /// The first command's result when the master ran it as it logged in, until the `run`
    /// that asks for the same command line takes it.
    first: std::sync::Mutex<Option<Prefetched>>,
    /// The master, in the foreground as certorch's child: its own session waits on the
    /// standard input certorch holds, and ends when that closes. Taken on drop.
    master: Option<tokio::process::Child>,
    /// Holds the control socket and the master's log; removed on drop, after the master.
    _dir: tempfile::TempDir,
}

/// A command the master ran as its own session, and what it produced.
struct Prefetched {
    line: String,
    result: Result<Output, Error>,
}

/// How long a foreground master may take to end after its standard input closes before it
/// is killed.
const MASTER_GOODBYE: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for OpenSsh {
    fn drop(&mut self) {
        // Closing its standard input ends the master's own session, and with it the master
        // (ControlPersist=no, and no other session is open once certorch lets the host go).
        // It is reaped in the background, and killed if it has not ended in time: asking it
        // over the control socket instead blocked a worker thread for a round trip with the
        // master per host, one after the other when a survey let its hosts go together.
        let Some(mut child) = self.master.take() else {
            return;
        };
        drop(child.stdin.take());
        let address = std::mem::take(&mut self.address);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if tokio::time::timeout(MASTER_GOODBYE, child.wait())
                        .await
                        .is_err()
                    {
                        tracing::debug!("the ssh master for {address} did not end: killing it");
                        if let Err(e) = child.kill().await {
                            tracing::debug!("killing the ssh master for {address}: {e}");
                        }
                    }
                });
            }
            // No runtime left to wait in: kill_on_drop ends it.
            Err(_) => drop(child),
        }
    }
}

/// Run by the master as its own session when it is given a first command: `$1` a marker, `$2`
/// the command line. Prints the marker once logged in, runs the line with no input, frames
/// its end and exit code on stdout and stderr, then holds the session (and so the master)
/// open until certorch closes the master's standard input.
const FIRST: &str = r#"printf '%s\n' "$1"
(eval "$2") </dev/null
c=$?
printf '\n%s %s\n' "$1" "$c"
printf '\n%s %s\n' "$1" "$c" >&2
read -r c
"#;

/// Connects to `host`; `control_dir` is a private (0700) directory for the control sockets.
/// TCP connect, key exchange and login together take at most `ssh.connect_timeout`: ssh's
/// own ConnectTimeout covers only the first, so a host that accepts and then stalls would
/// hold the run. The master is started here rather than by `openssh`'s builder so that it can
/// be killed at the deadline.
///
/// The master stays in the foreground, as certorch's child, its own session waiting on the
/// standard input certorch holds: it ends when certorch lets the host go, and with certorch
/// even when certorch is killed. With `first` (a command that only reads), that session runs
/// it right after the login, so the first command costs no session set up through the
/// control socket; its result is kept for the `run` of the same command. Without it the
/// session runs only `:` before it waits.
pub async fn connect(
    host: &Host,
    ssh: &SshConfig,
    control_dir: &Path,
    first: Option<&Cmd>,
) -> Result<OpenSsh, Error> {
    let address = host.address.as_str();
    let dir = tempfile::Builder::new()
        .prefix(".ssh-connection")
        .tempdir_in(control_dir)
        .map_err(|e| Error::Connect {
            address: address.to_string(),
            reason: format!(
                "cannot make a control directory in {}: {e}",
                control_dir.display()
            ),
            hint: "check that the bastion's temporary directory is writable".into(),
            cause: ConnectCause::Other,
        })?;
    let log = dir.path().join("log");
    let ctl = dir.path().join("master");
    // Without a first command the session only holds the master: `:` and its (empty)
    // result are not kept.
    let (label, line, keep) = match first.and_then(|c| Some((c.label(), c.render().ok()?))) {
        Some((label, line)) => (label.to_string(), line, true),
        None => ("certorch-connect".to_string(), ":".to_string(), false),
    };
    let mut master = master_command(host, ssh, &log, &ctl);
    let mark = crate::host::batch::marker();
    let remote = Cmd::script(FIRST, &label)
        .arg(mark.clone())
        .arg(line.clone())
        .render()
        .expect("the line was rendered, so it holds no NUL byte");
    master
        .stdin(std::process::Stdio::piped())
        .args(["-T", "-o", "ControlPersist=no", "-o", "RemoteCommand=none"])
        .arg(address)
        .arg(remote);
    let mut child = master.spawn().map_err(|e| cannot_run(address, e))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let mut reader = Framed::new(&mark, stdout, stderr);
    match tokio::time::timeout(ssh.connect_timeout, reader.logged_in()).await {
        Ok(Ok(true)) => {}
        Ok(Ok(false) | Err(_)) => {
            // ssh ended (or its pipe broke) before the login: its log says why.
            if let Err(e) = child.wait().await {
                tracing::debug!("waiting for ssh to {address}: {e}");
            }
            return Err(refused(host, &log));
        }
        Err(_) => return Err(login_timed_out(address, ssh)),
    }
    let result = match tokio::time::timeout(ssh.command_timeout, reader.output()).await {
        Ok(Ok(Some(out))) => Ok(out),
        Ok(Ok(None)) => Err(Error::TooMuchOutput {
            label: label.clone(),
            address: address.to_string(),
        }),
        Ok(Err(reason)) => Err(Error::Command {
            label: label.clone(),
            reason: match super::last_lines(&read_log(&log)) {
                Some(tail) => format!("{reason} ({tail})"),
                None => reason,
            },
        }),
        Err(_) => Err(Error::Timeout {
            label: label.clone(),
            address: address.to_string(),
            after: ssh.command_timeout,
        }),
    };
    let first = keep.then_some(Prefetched { line, result });
    Ok(OpenSsh {
        session: Session::resume_mux(ctl.into_boxed_path(), Some(log.into_boxed_path())),
        address: address.to_string(),
        command_timeout: ssh.command_timeout,
        first: std::sync::Mutex::new(first),
        master: Some(child),
        _dir: dir,
    })
}

/// The ssh master's command line up to its session's options, address and command.
fn master_command(host: &Host, ssh: &SshConfig, log: &Path, ctl: &Path) -> tokio::process::Command {
    let mut master = tokio::process::Command::new("ssh");
    master
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .arg("-E")
        .arg(log)
        .arg("-S")
        .arg(ctl)
        .arg("-M")
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
    master
}

/// The master's log (ssh's own messages, `-E`); empty when it wrote none.
fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// The master ended before the login finished: why, from its log.
fn refused(host: &Host, log: &Path) -> Error {
    let text = read_log(log);
    let reason =
        super::last_lines(&text).unwrap_or_else(|| "ssh exited without saying why".to_string());
    connect_error(host.address.as_str(), host.port, &text, reason)
}

fn cannot_run(address: &str, e: std::io::Error) -> Error {
    Error::Connect {
        address: address.to_string(),
        reason: format!("cannot run ssh: {e}"),
        hint: "install the OpenSSH client on the bastion, or set ssh.transport: russh".into(),
        cause: ConnectCause::Other,
    }
}

fn login_timed_out(address: &str, ssh: &SshConfig) -> Error {
    Error::Connect {
        address: address.to_string(),
        reason: format!(
            "Connection timed out: no SSH session within {}s (TCP connect, key exchange and login)",
            ssh.connect_timeout.as_secs()
        ),
        hint: super::login_timeout_hint(address),
        cause: ConnectCause::Unreachable,
    }
}

/// Reads what a foreground master's first command (the [`FIRST`] frame) prints.
struct Framed<O, E> {
    mark: String,
    stdout: O,
    stderr: E,
    out: Vec<u8>,
    err: Vec<u8>,
}

impl<O, E> Framed<O, E>
where
    O: tokio::io::AsyncRead + Unpin,
    E: tokio::io::AsyncRead + Unpin,
{
    fn new(mark: &str, stdout: O, stderr: E) -> Self {
        Framed {
            mark: mark.to_string(),
            stdout,
            stderr,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    /// Reads up to the marker the host prints once logged in: true when it came, false
    /// when ssh ended first. What the login printed before it is dropped.
    async fn logged_in(&mut self) -> std::io::Result<bool> {
        let line = format!("{}\n", self.mark);
        loop {
            if let Some(at) = find(&self.out, line.as_bytes()) {
                self.out.drain(..at + line.len());
                return Ok(true);
            }
            if self.out.len() > OUTPUT_LIMIT || !fill(&mut self.stdout, &mut self.out).await? {
                return Ok(false);
            }
        }
    }

    /// The command's output once both streams carry its end frame; `Ok(None)` when it
    /// printed more than [`OUTPUT_LIMIT`]; `Err` (why) when the connection ended first.
    async fn output(&mut self) -> Result<Option<Output>, String> {
        let end = format!("\n{} ", self.mark);
        let (out, err) = tokio::join!(
            until_end(&mut self.stdout, &mut self.out, &end),
            until_end(&mut self.stderr, &mut self.err, &end)
        );
        let (Some((out_at, code)), Some((err_at, _))) = (
            out.map_err(|e| format!("reading standard output: {e}"))?,
            err.map_err(|e| format!("reading standard error: {e}"))?,
        ) else {
            if self.out.len() > OUTPUT_LIMIT || self.err.len() > OUTPUT_LIMIT {
                return Ok(None);
            }
            return Err("the connection closed before the command finished".into());
        };
        self.out.truncate(out_at);
        self.err.truncate(err_at);
        Ok(Some(Output {
            code,
            stdout: std::mem::take(&mut self.out),
            stderr: String::from_utf8_lossy(&self.err).into_owned(),
        }))
    }
}

/// Reads `r` into `buf` until `end` (`\nMARK `) and a code line follow: where the frame starts
/// and the exit code (`None` past 128: a signal). `None` at the end of the stream or past
/// [`OUTPUT_LIMIT`].
async fn until_end(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
    end: &str,
) -> std::io::Result<Option<(usize, Option<i32>)>> {
    loop {
        if let Some(at) = find(buf, end.as_bytes()) {
            let tail = &buf[at + end.len()..];
            if tail.contains(&b'\n') {
                return Ok(Some((at, crate::host::batch::exit_code(tail))));
            }
        }
        if buf.len() > OUTPUT_LIMIT + end.len() + 16 || !fill(r, buf).await? {
            return Ok(None);
        }
    }
}

/// Appends what `r` has to `buf`; false at the end of the stream.
async fn fill(
    r: &mut (impl tokio::io::AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<bool> {
    use tokio::io::AsyncReadExt;
    let mut chunk = [0u8; 16 * 1024];
    let n = r.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
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
    /// What the master's first command produced, if `cmd` is that command and nobody took it.
    fn take_first(&self, cmd: &Cmd) -> Option<Result<Output, Error>> {
        let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
        let line = cmd.render().ok()?;
        if first.as_ref().is_some_and(|p| p.line == line) {
            return first.take().map(|p| p.result);
        }
        None
    }

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
        Box::pin(async move {
            if stdin.is_none()
                && let Some(result) = self.take_first(cmd)
            {
                return result;
            }
            super::bounded(
                cmd,
                &self.address,
                self.command_timeout,
                async move |line, label| self.exec(line, stdin, label).await,
            )
            .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Stdio as StdStdio;

    /// Runs FIRST here as the host's login shell would, with `line` as the first command.
    fn start(line: &Cmd, mark: &str) -> tokio::process::Child {
        tokio::process::Command::new("sh")
            .arg("-c")
            .arg(
                Cmd::script(FIRST, "t")
                    .arg(mark)
                    .arg(line.render().unwrap())
                    .render()
                    .unwrap(),
            )
            .stdin(StdStdio::piped())
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// A reader of `child`'s output.
    fn framed(
        child: &mut tokio::process::Child,
        mark: &str,
    ) -> Framed<tokio::process::ChildStdout, tokio::process::ChildStderr> {
        Framed::new(
            mark,
            child.stdout.take().unwrap(),
            child.stderr.take().unwrap(),
        )
    }

    #[tokio::test]
    async fn the_first_command_is_framed_and_the_session_held_open() {
        let mark = crate::host::batch::marker();
        // What a login prints before the command is not the command's.
        let line = Cmd::script(
            r#"printf 'out %s\n' "$1"; printf 'err\n' >&2; printf 'no newline'; exit 3"#,
            "t",
        )
        .arg("a b");
        let mut child = start(&line, &mark);
        let mut r = framed(&mut child, &mark);
        assert!(r.logged_in().await.unwrap());
        let out = r.output().await.unwrap().unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, b"out a b\nno newline");
        assert_eq!(out.stderr, "err\n");
        // The session waits for certorch: the master lives while its input is open.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            child.try_wait().unwrap().is_none(),
            "the session ended on its own"
        );
        drop(child.stdin.take());
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
            .await
            .expect("the session ends when its input closes")
            .unwrap();
        // `read` at the end of its input: the session ends by itself, not by a signal.
        assert_eq!(status.code(), Some(1));
    }

    #[tokio::test]
    async fn the_first_command_reads_no_input_and_a_lost_connection_is_an_error() {
        let mark = crate::host::batch::marker();
        // A command that reads its input gets none: certorch's pipe keeps the session.
        let line = Cmd::script("cat; echo done", "t");
        let mut child = start(&line, &mark);
        let mut r = framed(&mut child, &mark);
        assert!(r.logged_in().await.unwrap());
        let out = r.output().await.unwrap().unwrap();
        assert_eq!((out.code, out.stdout.as_slice()), (Some(0), &b"done\n"[..]));

        // The connection ends before the end frame: not an output, an error.
        let line = Cmd::script("echo partial; sleep 30", "t");
        let mut child = start(&line, &mark);
        let mut r = framed(&mut child, &mark);
        assert!(r.logged_in().await.unwrap());
        let group = child.id().unwrap() as i32;
        // SAFETY: a signal to the test's own process group of shells.
        assert_eq!(unsafe { libc::kill(-group, libc::SIGKILL) }, 0);
        let lost = tokio::time::timeout(std::time::Duration::from_secs(10), r.output())
            .await
            .expect("the end of the streams is seen");
        assert!(lost.is_err(), "{lost:?}");

        // ssh that ends before the login prints no marker.
        let mut child = tokio::process::Command::new("true")
            .stdout(StdStdio::piped())
            .stderr(StdStdio::piped())
            .spawn()
            .unwrap();
        let mut r = framed(&mut child, &mark);
        assert!(!r.logged_in().await.unwrap());
    }
}
