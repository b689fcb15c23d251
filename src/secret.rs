//! `Secret<T>`: a value that must never reach a log, an error, `--json` output or a file other
//! than its own. Its Debug and Display print `[redacted]`, and it has no Serialize.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// A warning when the file holding `what` (a TSIG key, an EAB key) is open to group or
/// others, as ssh warns of an unprotected key file; it names the file and its mode, never
/// the content. None when it is private or cannot be looked at (reading it reports that).
pub fn exposure(path: &Path, what: &str) -> Option<String> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "{what} {} is accessible by group or others (mode {mode:04o}): chmod 600 {}, and replace the secret if someone else may have read it",
            path.display(),
            path.display()
        )
    })
}

/// A secret value; read it only through [`Secret::expose`].
#[derive(Clone)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret itself, for the one place that must use it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(
            format!("{s} {s:?} {:?}", Some(&s)),
            "[redacted] [redacted] Some([redacted])"
        );
        assert_eq!(s.expose(), "hunter2");
    }
}

#[cfg(test)]
mod exposure_tests {
    use super::*;

    /// Regression (holes #6): a secret file others may read is named with its mode; the
    /// warning holds nothing of the secret.
    #[test]
    fn a_secret_file_open_to_others_is_named_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tsig.key");
        std::fs::write(&p, "c2VjcmV0LXNlY3JldA==").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let w = exposure(&p, "the TSIG key file").unwrap();
        assert_eq!(
            w,
            format!(
                "the TSIG key file {0} is accessible by group or others (mode 0644): chmod 600 {0}, and replace the secret if someone else may have read it",
                p.display()
            )
        );
        assert!(!w.contains("c2VjcmV0"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(exposure(&p, "the TSIG key file"), None);
    }
}
