//! Several host steps in one remote command. Each SSH session costs the host a fork, a login
//! shell and sshd's session bookkeeping, so steps that always follow one another (stage,
//! commit, read back, check, reload) run as one command: a fixed wrapper script runs each
//! step's own finished command line in turn and frames what each printed and how it exited.
//! Every step is still the same [`Cmd`] it would be alone, and its output is handed back as
//! its own [`Output`], so each step's checks, exit codes ([`super::UNSAFE_PATH`]) and
//! messages are unchanged.

use super::sh::Cmd;
use crate::transport::{self, Output, Transport};

/// `$1` a marker no step prints, `$2` 1 when standard input is to be read (once, for the
/// steps that take it), then per step: 1 to stop after it fails (else go on), 1 to give it
/// the input, and its command line. Around each step it prints `MARK start K` and
/// `\nMARK end K CODE` on stdout and stderr; it stops after a failed step that asks so. The
/// input is held in a variable: certorch sends only PEM text this way, never a key.
const WRAPPER: &str = r#"set -u
mark=$1
if [ "$2" = 1 ]; then input=$(cat; echo x); input=${input%x}; else input=; fi
shift 2
k=0
while [ $# -ge 3 ]; do
  stop=$1 feed=$2 line=$3
  shift 3
  printf '%s start %s\n' "$mark" "$k"
  printf '%s start %s\n' "$mark" "$k" >&2
  if [ "$feed" = 1 ]; then printf '%s' "$input" | (eval "$line"); else (eval "$line") </dev/null; fi
  code=$?
  # Nobody reading any more (certorch gave up on this command): no later step runs.
  printf '\n%s end %s %s\n' "$mark" "$k" "$code" || exit 1
  printf '\n%s end %s %s\n' "$mark" "$k" "$code" >&2 || exit 1
  if [ "$code" != 0 ] && [ "$stop" = 1 ]; then exit 0; fi
  k=$((k + 1))
done
"#;

/// One step of a batch.
pub struct Step {
    pub cmd: Cmd,
    /// The batch's input goes to this step's standard input.
    pub input: bool,
    /// A failure here ends the batch: the later steps depend on this one.
    pub stop_on_failure: bool,
}

impl Step {
    /// A step whose failure ends the batch.
    pub fn new(cmd: Cmd) -> Step {
        Step {
            cmd,
            input: false,
            stop_on_failure: true,
        }
    }

    /// The same step, fed the batch's input.
    pub fn with_input(mut self) -> Step {
        self.input = true;
        self
    }

    /// The same step, after which the batch goes on even when it fails.
    pub fn keep_going(mut self) -> Step {
        self.stop_on_failure = false;
        self
    }
}

/// What one step of a batch produced, or why it could not run (the `become` method refused
/// it).
pub type StepResult = Result<Output, transport::Error>;

/// Runs `steps` in one remote command, `input` (text) given to the steps that ask for it.
/// Returns the output of each step that ran, in order: fewer than `steps` when one failed and
/// stopped the batch. One step runs as itself, without the wrapper. On a host with `become`,
/// the wrapper runs as the login user and each step through sudo or doas on its own.
pub async fn run(
    t: &dyn Transport,
    steps: &[Step],
    input: Option<&[u8]>,
) -> Result<Vec<StepResult>, transport::Error> {
    prepare(steps, t.elevation(), input.is_some())
        .run(t, input)
        .await
}

/// A batch made ready for a host whose commands go through `elevation`: the one command line
/// the login user runs for it is known before it runs, so a connection can run it as it logs
/// in ([`crate::transport::connect`]'s first command).
pub struct Prepared<'s> {
    steps: &'s [Step],
    mark: String,
    feeds: bool,
    /// The command as the login user runs it (None for no steps), or why it cannot be sent.
    login: Option<Result<Cmd, transport::Error>>,
}

/// [`run`]'s first half: the command for `steps` on a host whose steps go through
/// `elevation`; `input_given` when input will be passed to [`Prepared::run`].
pub fn prepare<'s>(steps: &'s [Step], elevation: &[&str], input_given: bool) -> Prepared<'s> {
    let mark = marker();
    let feeds = input_given && steps.iter().any(|s| s.input);
    let login = match steps {
        [] => None,
        // A single step runs as itself: the transport adds the elevation.
        [one] => Some(Ok(one.cmd.prefixed(elevation))),
        _ => Some(wrapped(steps, elevation, &mark, feeds)),
    };
    Prepared {
        steps,
        mark,
        feeds,
        login,
    }
}

/// The wrapper's command line for several steps.
fn wrapped(
    steps: &[Step],
    elevation: &[&str],
    mark: &str,
    feeds: bool,
) -> Result<Cmd, transport::Error> {
    let labels: Vec<&str> = steps.iter().map(|s| s.cmd.label()).collect();
    let mut cmd = Cmd::script(WRAPPER, &labels.join("+"))
        .arg(mark)
        .arg(if feeds { "1" } else { "0" });
    for s in steps {
        let line = s
            .cmd
            .prefixed(elevation)
            .render()
            .map_err(|_| transport::Error::Nul {
                label: s.cmd.label().to_string(),
            })?;
        cmd = cmd
            .arg(if s.stop_on_failure { "1" } else { "0" })
            .arg(if s.input && feeds { "1" } else { "0" })
            .arg(line);
    }
    Ok(cmd)
}

impl Prepared<'_> {
    /// The one command the login user runs on the host for the batch, elevation included.
    pub fn login_cmd(&self) -> Option<&Cmd> {
        self.login.as_ref().and_then(|l| l.as_ref().ok())
    }

    /// Runs the batch over `t` (whose elevation it was prepared for).
    pub async fn run(
        &self,
        t: &dyn Transport,
        input: Option<&[u8]>,
    ) -> Result<Vec<StepResult>, transport::Error> {
        let steps = self.steps;
        let cmd = match (&self.login, steps) {
            (None, _) | (_, []) => return Ok(Vec::new()),
            (Some(_), [one]) => {
                return match t.run(&one.cmd, input.filter(|_| one.input)).await {
                    Ok(out) => Ok(vec![Ok(out)]),
                    Err(e @ transport::Error::Become { .. }) => Ok(vec![Err(e)]),
                    Err(e) => Err(e),
                };
            }
            (Some(Err(e)), _) => return Err(e.clone()),
            (Some(Ok(cmd)), _) => cmd,
        };
        let out = t.run_as_login(cmd, input.filter(|_| self.feeds)).await?;
        Ok(split(&self.mark, out, steps.len())
            .into_iter()
            .zip(steps)
            .map(|(out, s)| t.refused(s.cmd.label(), out))
            .collect())
    }
}

/// A marker no step's output holds by chance.
pub(crate) fn marker() -> String {
    let mut b = [0u8; 12];
    // Without randomness a fixed marker still works; it only has to differ from step output.
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        b = *b"certorchstep";
    }
    format!("certorch-step-{}", crate::x509::hex(&b))
}

/// Cuts the wrapper's output into each step's. Output without any frame (the wrapper could
/// not start: no `sh`, a refusal by sudo) is the first step's, as it would have been alone.
fn split(mark: &str, out: Output, steps: usize) -> Vec<Output> {
    let stderr = out.stderr.as_bytes();
    let mut outs = Vec::new();
    for k in 0..steps {
        let (Some((o, code)), Some((e, _))) = (frame(&out.stdout, mark, k), frame(stderr, mark, k))
        else {
            break;
        };
        outs.push(Output {
            code,
            stdout: o.to_vec(),
            stderr: String::from_utf8_lossy(e).into_owned(),
        });
    }
    if outs.is_empty() {
        outs.push(out);
    }
    outs
}

/// Step `k`'s bytes between its start and end frames, and its exit code (`None` when the
/// frame is incomplete: the step did not finish; a code the shell reports past 128 is a
/// signal).
fn frame<'a>(all: &'a [u8], mark: &str, k: usize) -> Option<(&'a [u8], Option<i32>)> {
    let start = format!("{mark} start {k}\n");
    let end = format!("\n{mark} end {k} ");
    let from = find(all, start.as_bytes())? + start.len();
    let rest = &all[from..];
    let to = find(rest, end.as_bytes())?;
    Some((&rest[..to], exit_code(&rest[to + end.len()..])))
}

/// The exit code a frame prints at the start of `tail` (up to its newline), as the shell's
/// `$?`: `None` past 128, where the shell reports a signal, or when it is not a number.
pub(crate) fn exit_code(tail: &[u8]) -> Option<i32> {
    let text = tail.split(|b| *b == b'\n').next().unwrap_or_default();
    std::str::from_utf8(text)
        .ok()
        .and_then(|c| c.parse::<i32>().ok())
        .filter(|c| *c < 128)
}

/// Where `needle` first occurs in `hay`.
pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// Runs the wrapper here as a host would, and splits its output.
    fn run_here(steps: &[Step], input: Option<&[u8]>) -> Vec<Output> {
        let mark = marker();
        let feeds = input.is_some() && steps.iter().any(|s| s.input);
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(WRAPPER)
            .arg("batch")
            .arg(&mark)
            .arg(if feeds { "1" } else { "0" });
        for s in steps {
            c.arg(if s.stop_on_failure { "1" } else { "0" })
                .arg(if s.input && feeds { "1" } else { "0" })
                .arg(s.cmd.render().unwrap());
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(i) = input {
            stdin.write_all(i).unwrap();
        }
        drop(stdin);
        let o = child.wait_with_output().unwrap();
        split(
            &mark,
            Output {
                code: o.status.code(),
                stdout: o.stdout,
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            },
            steps.len(),
        )
    }

    #[test]
    fn each_step_keeps_its_own_output_code_and_input() {
        let hostile = "a'b; $(touch /nonexistent) `x`\nline";
        let steps = [
            Step::new(Cmd::new("printf").arg("%s").arg(hostile)),
            Step::new(Cmd::script("cat; echo oops >&2; exit 0", "feed")).with_input(),
            Step::new(Cmd::script(
                "printf 'no newline'; echo err >&2; exit 86",
                "bad",
            ))
            .keep_going(),
            Step::new(Cmd::script("echo after; exit 3", "after")),
            Step::new(Cmd::new("echo").arg("never")),
        ];
        let outs = run_here(&steps, Some(b"-----BEGIN X-----\nabc\n\n"));
        assert_eq!(outs.len(), 4, "stops after the failed step that asks so");
        assert_eq!(outs[0].stdout, hostile.as_bytes());
        assert_eq!(outs[0].code, Some(0));
        assert_eq!(outs[1].stdout, b"-----BEGIN X-----\nabc\n\n");
        assert_eq!(outs[1].stderr, "oops\n");
        assert_eq!(outs[2].code, Some(86));
        assert_eq!(outs[2].stdout, b"no newline");
        assert_eq!(outs[2].stderr, "err\n");
        assert_eq!(outs[3].code, Some(3));
        assert_eq!(outs[3].stdout, b"after\n");
    }

    #[test]
    fn output_without_frames_is_the_first_steps() {
        let out = Output {
            code: Some(1),
            stdout: Vec::new(),
            stderr: "sudo: a password is required\n".into(),
        };
        let outs = split("m", out, 3);
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].code, Some(1));
        assert!(outs[0].stderr.contains("password"));
    }

    #[test]
    fn a_step_killed_by_a_signal_has_no_code() {
        let steps = [
            Step::new(Cmd::script("kill -9 $$", "killed")),
            Step::new(Cmd::new("true")),
        ];
        let outs = run_here(&steps, None);
        assert_eq!(outs.len(), 1);
        assert_eq!(outs[0].code, None);
    }
}
