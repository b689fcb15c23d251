//! The one place where remote shell command lines are built.
//!
//! Both transports hand the remote side a single string that the login shell parses. Every
//! argument goes through [`quote`], so a value from the inventory arrives as exactly one argv
//! entry whatever it contains. Scripts certorch runs on hosts are constants compiled into the
//! binary and receive their parameters as positional arguments (`sh -c SCRIPT NAME ARG…`), never
//! by string splicing.

use std::fmt;

/// An argument could not be quoted for a POSIX shell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an argument for the remote shell contains a NUL byte")]
pub struct NulByte;

/// Quotes one argument for a POSIX shell: wrapped in single quotes, each `'` becomes `'\''`.
///
/// Single quotes preserve every byte literally (POSIX.1-2017 XCU §2.2.2), so this is correct
/// for any string except one holding NUL, which no argv entry can carry.
pub fn quote(arg: &str) -> Result<String, NulByte> {
    if arg.contains('\0') {
        return Err(NulByte);
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// A command line for a host: program plus arguments, each quoted when rendered.
#[derive(Clone, PartialEq, Eq)]
pub struct Cmd {
    argv: Vec<String>,
    /// How many leading words are a prefix (`sudo -n --`), not the command itself.
    prefix: usize,
}

impl Cmd {
    /// Starts a command with its program name.
    pub fn new(program: impl Into<String>) -> Self {
        Cmd {
            argv: vec![program.into()],
            prefix: 0,
        }
    }

    /// A constant shell script run as `sh -c SCRIPT NAME ARGS…`; `$1…` are the arguments.
    ///
    /// `name` becomes `$0`, which the shell uses in its own error messages.
    pub fn script(script: &'static str, name: &str) -> Self {
        Cmd::new("sh").arg("-c").arg(script).arg(name)
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.argv.push(arg.into());
        self
    }

    /// Adds several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// The finished command line for a remote shell.
    pub fn render(&self) -> Result<String, NulByte> {
        let quoted: Result<Vec<String>, NulByte> = self.argv.iter().map(|a| quote(a)).collect();
        Ok(quoted?.join(" "))
    }

    /// This command run by `script` (`sh -c SCRIPT NAME ARGS… COMMAND…`), which gets `args`
    /// first and then this command's words; labelled as this command.
    pub fn within(&self, script: &'static str, args: &[&str]) -> Cmd {
        Cmd::script(script, self.label())
            .args(args.iter().copied())
            .args(self.argv.iter().cloned())
    }

    /// The same command run through `words` (`sudo -n --`): each word quoted like the rest.
    pub fn prefixed(&self, words: &[&str]) -> Cmd {
        let mut argv: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        argv.extend(self.argv.iter().cloned());
        Cmd {
            argv,
            prefix: self.prefix + words.len(),
        }
    }

    /// The script's name (`$0`) when built by [`Cmd::script`] (or run through `env VAR=…`,
    /// as a playbook's shell line is), else the program.
    pub fn label(&self) -> &str {
        let mut argv = &self.argv[self.prefix..];
        if argv.len() > 1 && argv[0] == "env" {
            let vars = argv[1..].iter().take_while(|a| a.contains('=')).count();
            if argv.len() > 4 + vars && argv[1 + vars] == "sh" {
                argv = &argv[1 + vars..];
            }
        }
        if argv.len() > 3 && argv[0] == "sh" && argv[1] == "-c" {
            &argv[3]
        } else {
            &argv[0]
        }
    }
}

impl fmt::Debug for Cmd {
    // Scripts are long; show the label and arguments, which are what a reader needs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmd").field("label", &self.label()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Runs `line` through a real `sh -c` that prints each argument NUL-terminated.
    fn argv_through_sh(line: &str) -> Vec<String> {
        let script = format!("printf '%s\\0' {line}");
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(out.status.success(), "sh failed on {script:?}");
        let mut parts: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
            .collect();
        parts.pop(); // after the last NUL
        parts
    }

    const HOSTILE: &[&str] = &[
        "plain",
        "",
        "with space",
        "a;touch /tmp/certorch-pwned",
        "$(touch /tmp/certorch-pwned)",
        "`touch /tmp/certorch-pwned`",
        "line\nbreak",
        "-leading-dash",
        "--",
        "it's",
        "'",
        "''",
        "\"double\"",
        "*",
        "~",
        "~root",
        "$HOME",
        "a\\b",
        "tab\there",
        "&& echo x ||",
        "| cat",
        "> /tmp/certorch-pwned",
        "émoji ✓",
        "!event",
        "{a,b}",
    ];

    #[test]
    fn every_hostile_value_arrives_as_one_argument() {
        for value in HOSTILE {
            let line = quote(value).unwrap();
            assert_eq!(argv_through_sh(&line), vec![value.to_string()], "{value:?}");
        }
        assert!(!std::path::Path::new("/tmp/certorch-pwned").exists());
    }

    #[test]
    fn a_whole_command_keeps_its_argv() {
        let cmd = Cmd::new("x").args(HOSTILE.iter().copied());
        let line = cmd.render().unwrap();
        // Drop the program name: printf receives the rest.
        let rest = line.split_once(' ').unwrap().1;
        assert_eq!(argv_through_sh(rest), HOSTILE);
    }

    #[test]
    fn scripts_get_positional_parameters() {
        let cmd = Cmd::script("printf '%s|' \"$0\" \"$@\"", "certorch-test")
            .arg("a b")
            .arg("$(id)");
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd.render().unwrap())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "certorch-test|a b|$(id)|"
        );
        assert_eq!(cmd.label(), "certorch-test");
        // A playbook's shell line, run through env with its placeholders' variables.
        let line = Cmd::new("env")
            .arg("CERTORCH_LABEL=www")
            .arg("sh")
            .arg("-c")
            .arg("sleep 1000")
            .arg("certorch-reload");
        assert_eq!(line.label(), "certorch-reload");
        assert_eq!(Cmd::new("env").arg("A=1").label(), "env");
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(quote("a\0b"), Err(NulByte));
        assert!(Cmd::new("echo").arg("a\0b").render().is_err());
    }

    #[test]
    fn quoting_is_exact() {
        assert_eq!(quote("it's").unwrap(), r"'it'\''s'");
        assert_eq!(quote("").unwrap(), "''");
    }
}
