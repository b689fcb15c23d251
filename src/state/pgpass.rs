//! libpq's password file (`PGPASSFILE`, else `~/.pgpass`): one
//! `host:port:database:username:password` a line, `*` matching anything in the first four
//! fields, `\:` and `\\` for a colon or backslash inside a field, `#` starting a comment.
//! The first line that matches wins. A file others may read is ignored, with a warning, as
//! libpq does.

use std::path::{Path, PathBuf};

/// What the connection is to, as libpq compares it with each line.
pub struct Target<'a> {
    pub host: &'a str,
    pub port: &'a str,
    pub database: &'a str,
    pub user: &'a str,
}

/// The password file to read: `PGPASSFILE`, else `~/.pgpass`.
pub fn path(pgpassfile: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    pgpassfile
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| home.map(|h| h.join(".pgpass")))
}

/// The password for `target` from the file at `path`: `Ok(None)` when the file is missing or
/// no line matches; `Err(warning)` when the file is there but not used.
pub fn read(path: &Path, target: &Target<'_>) -> Result<Option<String>, String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("password file {} is not used: {e}", path.display())),
    };
    if !meta.is_file() {
        return Err(format!(
            "password file {} is not a plain file: not used",
            path.display()
        ));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "password file {} has group or world access: not used; permissions should be u=rw (0600) or less",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("password file {} is not used: {e}", path.display()))?;
    Ok(lookup(&text, target))
}

/// The password of the first line of `text` that matches `target`.
pub fn lookup(text: &str, target: &Target<'_>) -> Option<String> {
    let want = [target.host, target.port, target.database, target.user];
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .find_map(|line| {
            let fields = split(line);
            if fields.len() < 5 {
                return None;
            }
            let matches = fields
                .iter()
                .zip(want)
                .all(|((raw, value), want)| raw == "*" || value == want);
            (matches && !fields[4].1.is_empty()).then(|| fields[4].1.clone())
        })
}

/// The fields of a line, each as written (for `*`) and with its escapes undone.
fn split(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let (mut raw, mut value) = (String::new(), String::new());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                raw.push(c);
                if let Some(n) = chars.next() {
                    raw.push(n);
                    value.push(n);
                }
            }
            ':' => fields.push((std::mem::take(&mut raw), std::mem::take(&mut value))),
            c => {
                raw.push(c);
                value.push(c);
            }
        }
    }
    fields.push((raw, value));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Target<'static> = Target {
        host: "db.example.org",
        port: "5432",
        database: "certorch",
        user: "certorch",
    };

    #[test]
    fn the_first_matching_line_wins() {
        let text = "# a comment:with:colons:in:it\n\
                    other.example.org:5432:certorch:certorch:not-this\n\
                    db.example.org:5433:*:*:nor-this\n\
                    \n\
                    db.example.org:5432:*:certorch:this\n\
                    *:*:*:*:fallback\n";
        assert_eq!(lookup(text, &T).as_deref(), Some("this"));
        let other = Target {
            host: "x.example.org",
            ..T
        };
        assert_eq!(lookup(text, &other).as_deref(), Some("fallback"));
        assert_eq!(lookup("db.example.org:5432:certorch:certorch\n", &T), None);
        assert_eq!(lookup("", &T), None);
    }

    #[test]
    fn escapes_and_windows_line_ends() {
        let text = "db.example.org:5432:certorch:certorch:pa\\:ss\\\\word:ignored\r\n";
        assert_eq!(lookup(text, &T).as_deref(), Some("pa:ss\\word"));
        // An escaped colon is part of the field: `a\:b` is the host `a:b`.
        let v6 = Target { host: "::1", ..T };
        assert_eq!(
            lookup("\\:\\:1:5432:*:*:six\n", &v6).as_deref(),
            Some("six")
        );
        // An escaped star is a star, not a wildcard.
        assert_eq!(lookup("\\*:5432:*:*:star\n", &T), None);
        let star = Target { host: "*", ..T };
        assert_eq!(
            lookup("\\*:5432:*:*:star\n", &star).as_deref(),
            Some("star")
        );
    }

    #[test]
    fn a_file_others_can_read_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pgpass");
        std::fs::write(&f, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(&f, &T).unwrap().as_deref(), Some("secret"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let w = read(&f, &T).unwrap_err();
        assert!(w.contains("group or world access"), "{w}");
        assert!(!w.contains("secret"), "{w}");
        assert_eq!(read(&dir.path().join("missing"), &T), Ok(None));
        assert!(read(dir.path(), &T).is_err());
    }

    #[test]
    fn pgpassfile_before_home() {
        assert_eq!(
            path(Some("/etc/pg.pass".into()), Some("/root".into())),
            Some(PathBuf::from("/etc/pg.pass"))
        );
        assert_eq!(
            path(Some("".into()), Some("/root".into())),
            Some(PathBuf::from("/root/.pgpass"))
        );
        assert_eq!(path(None, None), None);
    }
}
