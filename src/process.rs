//! Running an operator's command on the bastion (the notify `exec`, the DNS `exec` publisher)
//! so that it can never hold certorch: it runs in a process group of its own, its standard
//! input is written and its stderr read under one deadline, and at the deadline the whole group
//! (the command and whatever it started) is killed and the command reaped.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How much of a command's stderr is kept for messages; the rest is read and dropped, so a
/// chatty command cannot fill the bastion's memory nor block on a full pipe.
const STDERR_KEPT: usize = 64 * 1024;

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// The first [`STDERR_KEPT`] bytes of its stderr.
    pub stderr: String,
}

/// Why a command did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot start: {0}")]
    Start(std::io::Error),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("did not finish within {}s and was killed with everything it started", .0.as_secs())]
    Timeout(Duration),
}

/// Runs `argv` (no shell) with `stdin` on its standard input, stdout discarded, and waits at
/// most `timeout` for it to exit and close its stderr.
pub async fn run(argv: &[String], stdin: &[u8], timeout: Duration) -> Result<Finished, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Start(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        )));
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(Error::Start)?;
    // The group's id is the child's pid (process_group(0)); it is known until it is reaped.
    let group = child.id();
    let input = child.stdin.take();
    let errors = child.stderr.take();
    let work = async {
        let write = async {
            if let Some(mut pipe) = input {
                match pipe.write_all(stdin).await {
                    // A command that exits without reading its input: its status is the answer.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
            }
            Ok::<_, std::io::Error>(())
        };
        let read = async {
            let mut kept = Vec::new();
            if let Some(mut pipe) = errors {
                let mut buf = [0u8; 8192];
                loop {
                    let n = pipe.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    let room = STDERR_KEPT.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            Ok::<_, std::io::Error>(kept)
        };
        let (written, stderr) = tokio::join!(write, read);
        written?;
        let stderr = stderr?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>(Finished {
            status,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(r) => r.map_err(Error::Io),
        Err(_) => {
            if let Some(pid) = group.and_then(|p| i32::try_from(p).ok()) {
                // SAFETY: kill(2) takes plain integers; the child is not reaped yet, so its
                // pid still names its group and no other.
                unsafe {
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            // Reaped, so no zombie is left; an error here means it is gone already.
            if let Err(e) = child.wait().await {
                tracing::debug!("reaping a killed command: {e}");
            }
            Err(Error::Timeout(timeout))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), line.into()]
    }

    /// True while `pid` runs (a zombie waiting for its reaper does not).
    fn running(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    }

    /// Regression (holes #2): a command that never exits, and a child it started that holds
    /// its stderr, are both killed at the timeout; certorch gets an error, not a hang.
    #[tokio::test]
    async fn a_command_that_never_exits_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let line = format!(
            "sleep 1000 & echo $! > {}; cat > /dev/null; sleep 1000",
            pidfile.display()
        );
        let started = std::time::Instant::now();
        let err = run(&argv(&line), b"{}", Duration::from_secs(1))
            .await
            .unwrap_err();
        // A guard against a hang, not a timing assertion.
        assert!(started.elapsed() < Duration::from_secs(3), "{err}");
        assert_eq!(
            err.to_string(),
            "did not finish within 1s and was killed with everything it started"
        );
        let child = std::fs::read_to_string(&pidfile).unwrap();
        let child = child.trim();
        for _ in 0..50 {
            if !running(child) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the command's child {child} still runs");
    }

    /// Input larger than a pipe's buffer, to a command that never reads it, is also bounded.
    #[tokio::test]
    async fn input_nobody_reads_is_bounded_by_the_timeout() {
        let big = vec![b'x'; 1 << 20];
        let err = run(&argv("sleep 1000"), &big, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout(_)), "{err}");
    }

    #[tokio::test]
    async fn status_and_stderr_come_back() {
        let done = run(
            &argv("cat >/dev/null; echo no >&2; exit 3"),
            b"{}",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.stderr, "no\n");
        let done = run(
            &argv("exit 0"),
            &vec![b'x'; 1 << 20],
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert!(done.status.success());
    }
}
