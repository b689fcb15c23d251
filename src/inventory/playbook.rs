//! Deploy playbooks: small YAML files that say, for one kind of service, which files to write
//! and how to check, reload and verify it. The built-in ones (`playbooks/` in the source tree)
//! are compiled into the binary; a file `NAME.yaml` in the inventory's `playbooks:` directory
//! replaces the built-in of that name or adds a new one.

use std::path::{Path, PathBuf};

use super::raw::RawPlaybook;

/// The built-in playbooks, by name.
pub const BUILTIN: &[(&str, &str)] = &[
    ("nginx", include_str!("../../playbooks/nginx.yaml")),
    ("apache", include_str!("../../playbooks/apache.yaml")),
    ("haproxy", include_str!("../../playbooks/haproxy.yaml")),
    ("postfix", include_str!("../../playbooks/postfix.yaml")),
    ("dovecot", include_str!("../../playbooks/dovecot.yaml")),
    ("pkcs12", include_str!("../../playbooks/pkcs12.yaml")),
    (
        "java-keystore",
        include_str!("../../playbooks/java-keystore.yaml"),
    ),
    (
        "files-only",
        include_str!("../../playbooks/files-only.yaml"),
    ),
];

/// Where a playbook came from, for messages and `certorch playbooks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Builtin,
    File(PathBuf),
}

/// A playbook's text and where it came from.
pub struct Found {
    pub name: String,
    pub text: String,
    pub source: Source,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// Finds playbook `name`: the operator's directory first, then the built-ins.
pub fn find(name: &str, dir: Option<&Path>) -> Result<Found, String> {
    if !valid_name(name) {
        return Err(format!(
            "`{name}` is not a playbook name: use letters, digits, '-' and '_'"
        ));
    }
    if let Some(dir) = dir {
        let path = dir.join(format!("{name}.yaml"));
        match crate::small_file::read(&path) {
            Ok(text) => {
                return Ok(Found {
                    name: name.to_string(),
                    text,
                    source: Source::File(path),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read playbook {}: {e}", path.display())),
        }
    }
    match BUILTIN.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => Ok(Found {
            name: name.to_string(),
            text: text.to_string(),
            source: Source::Builtin,
        }),
        None => Err(format!(
            "there is no playbook `{name}`: the built-in ones are {}{}",
            BUILTIN
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            dir.map_or(String::new(), |d| format!(
                ", and the inventory's own go in {}/NAME.yaml",
                d.display()
            ))
        )),
    }
}

/// Every playbook: the built-ins, replaced or joined by the operator's.
pub fn all(dir: Option<&Path>) -> Result<Vec<Found>, String> {
    let mut names: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
    if let Some(dir) = dir
        && let Ok(entries) = std::fs::read_dir(dir)
    {
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if let Some(n) = file.strip_suffix(".yaml")
                && valid_name(n)
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_string());
            }
        }
    }
    names.sort();
    names.iter().map(|n| find(n, dir)).collect()
}

/// Parses a playbook's YAML; errors say which playbook and where.
pub fn parse(found: &Found) -> Result<RawPlaybook, String> {
    serde_saphyr::from_str::<RawPlaybook>(&found.text).map_err(|e| {
        let at = e
            .location()
            .map_or(String::new(), |l| format!(":{}:{}", l.line(), l.column()));
        let first = e.to_string();
        let first = first.lines().next().unwrap_or("invalid YAML");
        match &found.source {
            Source::Builtin => format!("built-in playbook {}{at}: {first}", found.name),
            Source::File(p) => format!("playbook {}{at}: {first}", p.display()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_playbook_parses_and_says_what_it_is_for() {
        for (name, _) in BUILTIN {
            let found = find(name, None).unwrap();
            let p = parse(&found).unwrap_or_else(|e| panic!("{e}"));
            assert!(!p.description.is_empty(), "{name} has no description");
            assert!(p.key.is_some(), "{name} says nowhere where the key goes");
            for c in [&p.check, &p.reload].into_iter().flatten() {
                super::super::model::command(c.value.clone())
                    .validate()
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }

    #[test]
    fn the_operators_directory_overrides_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("nginx.yaml"),
            "description: our nginx\nkey: /srv/k\nfullchain: /srv/f\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("tomcat.yaml"),
            "description: tomcat\nkey: /srv/t\n",
        )
        .unwrap();
        let nginx = find("nginx", Some(dir.path())).unwrap();
        assert_eq!(parse(&nginx).unwrap().description, "our nginx");
        assert!(matches!(nginx.source, Source::File(_)));
        let names: Vec<String> = all(Some(dir.path()))
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert!(names.contains(&"tomcat".to_string()), "{names:?}");
        assert!(names.contains(&"haproxy".to_string()), "{names:?}");
        let e = find("nope", Some(dir.path())).err().unwrap();
        assert!(e.contains("nginx, apache, haproxy"), "{e}");
        assert!(find("../etc/passwd", None).is_err());
    }
}
