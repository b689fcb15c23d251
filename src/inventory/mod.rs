//! The host inventory: YAML in, a validated [`Inventory`] out. Errors name file, line and
//! column and say what to write instead.

pub mod command;
pub mod kex;
pub mod model;
pub mod playbook;
pub(crate) mod raw;
pub mod types;

use std::path::PathBuf;

#[allow(unused_imports)]
pub use model::Eab;
#[cfg(test)]
pub use model::parse;
pub use model::{Become, ChallengeKind, Issuer, Starttls};
pub use model::{CertSpec, Host, Inventory, SecretSource, SshConfig, TransportKind, load};
pub use types::{DnsName, KeyType, RemotePath, RenewPolicy};

/// Why an inventory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read inventory {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {}", path.display(), printable(message))]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        message: String,
    },
    #[error("{}: {}", path.display(), printable(message))]
    Unplaced { path: PathBuf, message: String },
    #[error("no host, group or certificate matches `{pattern}`: {hint}")]
    NoMatch { pattern: String, hint: String },
}

impl Error {
    fn from_yaml(path: &std::path::Path, e: &serde_saphyr::Error) -> Error {
        let message = yaml_message(e);
        match e.location() {
            Some(at) => Error::Invalid {
                path: path.to_path_buf(),
                line: at.line(),
                column: at.column(),
                message,
            },
            None => Error::Unplaced {
                path: path.to_path_buf(),
                message,
            },
        }
    }
}

/// An inventory value echoed in a message is the inventory's data: control characters (an
/// escape sequence that would repaint the terminal, a NUL, a newline faking another line) and
/// bidirectional overrides are shown escaped, and a huge value is cut in the middle so the
/// message and its fix still fit a screen.
fn printable(message: &str) -> String {
    const MAX: usize = 1000;
    let mut out = String::with_capacity(message.len().min(MAX + 64));
    for c in message.chars() {
        if c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    let chars = out.chars().count();
    if chars <= MAX {
        return out;
    }
    let head: String = out.chars().take(MAX / 2).collect();
    let tail: String = out.chars().skip(chars - MAX / 2).collect();
    format!("{head} …({} characters left out)… {tail}", chars - MAX)
}

/// serde-saphyr renders a snippet with the location; we print the location ourselves, in the
/// `file:line:col:` form editors jump to, so keep only the first line of its message.
fn yaml_message(e: &serde_saphyr::Error) -> String {
    let full = e.to_string();
    let mut first = full.lines().next().unwrap_or("invalid YAML").trim();
    first = first.strip_prefix("error: ").unwrap_or(first);
    // "line 15 column 34: message"
    if let Some(rest) = first.strip_prefix("line ")
        && let Some((_, msg)) = rest.split_once(": ")
    {
        first = msg;
    }
    // Drop a trailing " at line X, column Y" that would repeat our prefix.
    let msg = match first.find(" at line ") {
        Some(i) => &first[..i],
        None => first,
    };
    explain(msg.trim_end_matches(':'))
}

/// serde-saphyr's wording names its own API where the operator needs the fix in the file.
fn explain(msg: &str) -> String {
    if let Some(key) = msg.strip_prefix("duplicate mapping key: ") {
        let key = key.split(", set DuplicateKeyPolicy").next().unwrap_or(key);
        return format!(
            "`{key}` is given twice in one mapping: keep one (YAML takes no duplicate keys, so certorch does not guess which one you meant)"
        );
    }
    if msg.starts_with("multiple YAML documents detected") {
        return "a second YAML document starts here (`---`): an inventory is one document; remove the `---` line and merge the two, or split them into two inventories".to_string();
    }
    if msg.starts_with("budget breached") {
        return "the YAML expands to more values than an inventory makes (aliases that repeat aliases, as in a \"billion laughs\"?): write the values out, or use fewer nested aliases".to_string();
    }
    if msg.contains("found a tab") || msg.contains("tabs") && msg.contains("indent") {
        return format!("{msg}: YAML indents with spaces only; replace the tab with spaces");
    }
    if msg == "recursion limit exceeded" {
        return "the YAML nests deeper than an inventory does (lists in lists in lists …): write the values flat".to_string();
    }
    if let Some(ty) = msg.strip_prefix("invalid ")
        && let Some(range) = match ty {
            "u16" => Some("0 to 65535"),
            "u32" => Some("0 to 4294967295"),
            "u64" | "usize" => Some("0 to 18446744073709551615"),
            "i64" => Some("-9223372036854775808 to 9223372036854775807"),
            _ => None,
        }
    {
        return format!("expected a whole number from {range} here");
    }
    if msg == "expected sequence start" {
        return "expected a list here: write `[a, b]` or one `- item` line per item".to_string();
    }
    msg.to_string()
}

/// What a command works on: whole hosts, or single certificates of a host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Index into `Inventory::hosts`.
    pub host: usize,
    /// `None`: every certificate of the host.
    pub cert: Option<String>,
}

impl Inventory {
    /// Resolves patterns: a host name, a group name, `host/cert`, or `all`; glob `*` allowed in
    /// host names (`web*`). No patterns selects every host.
    pub fn select(&self, patterns: &[String]) -> Result<Vec<Target>, Error> {
        if patterns.is_empty() {
            return Ok((0..self.hosts.len())
                .map(|host| Target { host, cert: None })
                .collect());
        }
        let mut out: Vec<Target> = Vec::new();
        // What is in `out` already, for a pattern that repeats another's hosts (a set: `all`
        // over 10,000 hosts would otherwise compare each with every one before it).
        let mut chosen: std::collections::HashSet<Target> = std::collections::HashSet::new();
        let mut push = |t: Target| {
            if chosen.insert(t.clone()) {
                out.push(t);
            }
        };
        for pattern in patterns {
            let (who, cert) = match pattern.split_once('/') {
                Some((h, c)) => (h, Some(c.to_string())),
                None => (pattern.as_str(), None),
            };
            let mut hosts: Vec<usize> = Vec::new();
            if who == "all" {
                hosts.extend(0..self.hosts.len());
            } else if let Some(members) = self.groups.get(who) {
                hosts.extend(members.iter().filter_map(|m| self.host_index(m)));
            } else {
                hosts.extend(
                    self.hosts
                        .iter()
                        .enumerate()
                        .filter(|(_, h)| glob(who, &h.name))
                        .map(|(i, _)| i),
                );
            }
            if let Some(c) = &cert {
                hosts.retain(|&i| self.hosts[i].certs.iter().any(|s| &s.label == c));
            }
            if hosts.is_empty() {
                let mut known: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
                known.extend(self.groups.keys().map(String::as_str));
                known.truncate(10);
                return Err(Error::NoMatch {
                    pattern: pattern.clone(),
                    hint: format!(
                        "name a host, a group or host/cert from {} (known: {})",
                        self.path.display(),
                        known.join(", ")
                    ),
                });
            }
            for host in hosts {
                push(Target {
                    host,
                    cert: cert.clone(),
                });
            }
        }
        // A shared label's members get one key and certificate together: selecting one
        // member selects the label on all of them.
        let mut more = Vec::new();
        for t in &out {
            for spec in &self.hosts[t.host].certs {
                let Some(members) = &spec.shared else {
                    continue;
                };
                if t.cert.as_ref().is_some_and(|c| c != &spec.label) {
                    continue;
                }
                for m in members {
                    let Some(i) = self.host_index(m) else {
                        continue;
                    };
                    let covered = out.iter().chain(more.iter()).any(|o: &Target| {
                        o.host == i && o.cert.as_ref().is_none_or(|c| c == &spec.label)
                    });
                    if !covered {
                        more.push(Target {
                            host: i,
                            cert: Some(spec.label.clone()),
                        });
                    }
                }
            }
        }
        out.extend(more);
        Ok(out)
    }
}

/// Shell-style `*` matching, nothing else.
fn glob(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((head, tail)) => {
            name.starts_with(head)
                && (0..=name.len() - head.len()).any(|i| {
                    name.is_char_boundary(head.len() + i) && glob(tail, &name[head.len() + i..])
                })
        }
    }
}

#[cfg(test)]
mod tests;
