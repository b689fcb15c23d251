//! The operator's commands on a host (`check`, `reload`) and their placeholders.
//!
//! A command is either a list (program and arguments) or one line of shell:
//!
//! - In a list, `{label}`, `{host}`, `{cn}`, `{names}`, `{key}`, `{cert}`, `{chain}`,
//!   `{fullchain}`, `{combined}` are replaced inside each argument; an argument that is exactly
//!   `{names}` becomes one argument per name (lematt's DOMAINS_ALL). Each argument is then quoted
//!   on its own by [`Cmd`], so a value can never become shell syntax.
//! - A shell line is run as `sh -c LINE` with the same values in environment variables
//!   (`$CERTORCH_LABEL`, `$CERTORCH_NAMES`, …), which the shell expands as data. `{label}` in a
//!   shell line is refused at load time: splicing a value into shell text is exactly what this
//!   design avoids.

use std::collections::BTreeMap;

use crate::host::sh::Cmd;

/// The placeholders, in the order their variables are documented.
pub const PLACEHOLDERS: &[&str] = &[
    "label",
    "host",
    "cn",
    "names",
    "key",
    "cert",
    "chain",
    "fullchain",
    "combined",
];

/// A command the operator (or a playbook) wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCommand {
    /// One line for `sh -c`.
    Shell(String),
    /// A program and its arguments, with placeholders.
    Argv(Vec<String>),
}

/// The values a command's placeholders stand for, for one certificate on one host.
pub struct Values<'a> {
    pub label: &'a str,
    pub host: &'a str,
    pub names: Vec<&'a str>,
    /// Paths by placeholder name (`key`, `fullchain`, …); unset files are absent.
    pub paths: BTreeMap<&'static str, &'a str>,
}

impl Values<'_> {
    fn get(&self, name: &str) -> String {
        match name {
            "label" => self.label.to_string(),
            "host" => self.host.to_string(),
            "cn" => self.names.first().copied().unwrap_or("").to_string(),
            "names" => self.names.join(" "),
            other => self.paths.get(other).copied().unwrap_or("").to_string(),
        }
    }
}

/// Finds `{word}` placeholders in `s`: (start, end, word).
fn placeholders(s: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut rest = 0;
    while let Some(open) = s[rest..].find('{') {
        let open = rest + open;
        let Some(close) = s[open..].find('}') else {
            break;
        };
        let close = open + close;
        let word = &s[open + 1..close];
        if !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            out.push((open, close + 1, word));
        }
        rest = open + 1;
    }
    out
}

impl HostCommand {
    /// Checks the command: not empty, no NUL, known placeholders only, and none in shell text.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            HostCommand::Shell(line) => {
                if line.trim().is_empty() || line.contains('\0') {
                    return Err("the command is empty or holds a NUL byte".into());
                }
                if let Some((_, _, w)) = placeholders(line)
                    .into_iter()
                    .find(|(_, _, w)| PLACEHOLDERS.contains(w))
                {
                    return Err(format!(
                        "`{{{w}}}` in a shell line would splice a value into shell text: use \"$CERTORCH_{}\" in the line, or write the command as a list like [systemctl, reload, \"nginx@{{label}}\"]",
                        w.to_uppercase()
                    ));
                }
                Ok(())
            }
            HostCommand::Argv(argv) => {
                if argv.is_empty() || argv[0].trim().is_empty() {
                    return Err(
                        "the command list is empty: write the program first, then its arguments"
                            .into(),
                    );
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err("an argument holds a NUL byte".into());
                }
                for a in argv {
                    if let Some((_, _, w)) = placeholders(a)
                        .into_iter()
                        .find(|(_, _, w)| !PLACEHOLDERS.contains(w))
                    {
                        return Err(format!(
                            "unknown placeholder `{{{w}}}`: the placeholders are {}",
                            PLACEHOLDERS
                                .iter()
                                .map(|p| format!("{{{p}}}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
                Ok(())
            }
        }
    }

    /// The program the command starts, when that can be told without running a shell: the
    /// list's first word, or a shell line's first word unless it is shell syntax (`if`, `{`).
    pub fn program(&self) -> Option<&str> {
        match self {
            HostCommand::Argv(argv) => argv.first().map(String::as_str),
            HostCommand::Shell(line) => line.split_whitespace().next().filter(|w| {
                ![
                    "if", "{", "(", "case", "for", "while", "until", "!", "[", "test",
                ]
                .contains(w)
                    && !w.contains('=')
            }),
        }
    }

    /// The command for one certificate; `name` becomes `$0` of a shell line.
    pub fn to_cmd(&self, values: &Values<'_>, name: &str) -> Cmd {
        match self {
            HostCommand::Argv(argv) => {
                let mut words = Vec::new();
                for a in argv {
                    if a == "{names}" {
                        words.extend(values.names.iter().map(|n| n.to_string()));
                        continue;
                    }
                    let mut out = String::new();
                    let mut last = 0;
                    for (start, end, w) in placeholders(a) {
                        if PLACEHOLDERS.contains(&w) {
                            out.push_str(&a[last..start]);
                            out.push_str(&values.get(w));
                            last = end;
                        }
                    }
                    out.push_str(&a[last..]);
                    words.push(out);
                }
                let mut it = words.into_iter();
                let program = it.next().unwrap_or_default();
                Cmd::new(program).args(it)
            }
            HostCommand::Shell(line) => {
                // Only the variables the line names: two certificates whose reload is the same
                // `systemctl reload nginx` then share one reload.
                let mut cmd = Cmd::new("env");
                for p in PLACEHOLDERS {
                    let var = format!("CERTORCH_{}", p.to_uppercase());
                    if line.contains(&var) {
                        cmd = cmd.arg(format!("{var}={}", values.get(p)));
                    }
                }
                cmd.arg("sh").arg("-c").arg(line.clone()).arg(name)
            }
        }
    }
}

impl std::fmt::Display for HostCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostCommand::Shell(line) => f.write_str(line),
            HostCommand::Argv(argv) => f.write_str(&argv.join(" ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values<'static> {
        let mut paths = BTreeMap::new();
        paths.insert("key", "/etc/ssl/private/w w.key");
        paths.insert("fullchain", "/etc/ssl/certs/www.pem");
        Values {
            label: "www",
            host: "web1.example.org",
            names: vec!["example.org", "www.example.org"],
            paths,
        }
    }

    /// Runs a rendered command through a real shell that prints each argument on a line.
    fn argv(cmd: &Cmd) -> Vec<String> {
        let line = cmd.render().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {line}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn list_placeholders_become_arguments_not_shell() {
        let c = HostCommand::Argv(vec![
            "deploy-hook".into(),
            "--label={label}".into(),
            "{names}".into(),
            "{key}".into(),
            "{cn};touch /tmp/x".into(),
        ]);
        c.validate().unwrap();
        let got = argv(&c.to_cmd(&values(), "x"));
        assert_eq!(
            got,
            [
                "deploy-hook",
                "--label=www",
                "example.org",
                "www.example.org",
                "/etc/ssl/private/w w.key",
                "example.org;touch /tmp/x",
            ]
        );
    }

    #[test]
    fn shell_lines_get_only_the_variables_they_name() {
        let c = HostCommand::Shell("systemctl reload \"nginx@$CERTORCH_LABEL\"".into());
        c.validate().unwrap();
        let rendered = c.to_cmd(&values(), "certorch-reload");
        assert_eq!(
            argv(&rendered),
            [
                "env",
                "CERTORCH_LABEL=www",
                "sh",
                "-c",
                "systemctl reload \"nginx@$CERTORCH_LABEL\"",
                "certorch-reload"
            ]
        );
        let plain = HostCommand::Shell("systemctl reload nginx".into());
        let mut other = values();
        other.label = "api";
        assert_eq!(
            plain.to_cmd(&values(), "r"),
            plain.to_cmd(&other, "r"),
            "a line naming no variable is the same command for every certificate"
        );
    }

    #[test]
    fn shell_variables_arrive_as_data() {
        let mut v = values();
        v.names = vec!["a.example.org", "$(touch /tmp/certorch-pwned)"];
        let c = HostCommand::Shell("printf '%s\\n' $CERTORCH_NAMES".into());
        let line = c.to_cmd(&v, "t").render().unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "a.example.org\n$(touch\n/tmp/certorch-pwned)\n"
        );
        assert!(!std::path::Path::new("/tmp/certorch-pwned").exists());
    }

    #[test]
    fn refused_commands_say_what_to_write() {
        let e = HostCommand::Shell("systemctl reload nginx@{label}".into())
            .validate()
            .unwrap_err();
        assert!(e.contains("$CERTORCH_LABEL"), "{e}");
        let e = HostCommand::Argv(vec!["x".into(), "{domain}".into()])
            .validate()
            .unwrap_err();
        assert!(e.contains("unknown placeholder `{domain}`"), "{e}");
        assert!(HostCommand::Argv(vec![]).validate().is_err());
        assert!(HostCommand::Shell("  ".into()).validate().is_err());
        // Shell's own braces are not placeholders.
        HostCommand::Shell("{ nginx -t && nginx -s reload; } 2>&1 ${X:-y}".into())
            .validate()
            .unwrap();
    }
}
