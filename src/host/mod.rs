//! What certorch does on a host, over a [`Transport`](crate::transport::Transport): look at the
//! deployed certificate, have the host make its key and CSR, put files in place atomically,
//! reload. Private key bytes never come back from any of these.

// Declared after the shell fragments they use.
pub mod files;
pub mod inspect;
pub mod keygen;
pub mod selfsign;
pub mod sh;
pub mod webroot;

use crate::transport::{self, Output};

/// A step on a host failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Transport(#[from] transport::Error),
    #[error("{step} failed on the host (exit {code}): {stderr}")]
    Failed {
        step: &'static str,
        code: String,
        stderr: String,
        hint: String,
    },
    #[error("{step}: {reason}")]
    Rejected {
        step: &'static str,
        reason: String,
        hint: String,
    },
}

impl crate::problem::Problem for Error {
    fn kind(&self) -> crate::problem::Kind {
        use crate::problem::Kind;
        match self {
            Error::Transport(e) => e.kind(),
            Error::Failed { .. } => Kind::HostCommandFailed,
            Error::Rejected { .. } => Kind::HostRejected,
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
            Error::Transport(e) => e.hint(),
            Error::Failed { hint, .. } | Error::Rejected { hint, .. } => Some(hint.clone()),
        }
    }

    pub(crate) fn failed(step: &'static str, out: &Output, hint: impl Into<String>) -> Error {
        Error::Failed {
            step,
            code: out
                .code
                .map_or_else(|| "by signal".to_string(), |c| c.to_string()),
            stderr: out.stderr_tail(),
            hint: hint.into(),
        }
    }
}

/// Shell: creates the directory of `$dst` if needed and a temporary file `$tmp` beside
/// `$staged`, mode 0600 from its first byte (umask 077), removed if the script fails. The
/// script sets `dst` and `staged` first.
macro_rules! sh_open_tmp {
    () => {
        r#"dir=${dst%/*}
[ -n "$dir" ] || dir=/
[ -d "$dir" ] || (umask 022 && mkdir -p -- "$dir")
umask 077
tmp=$staged.$$
trap 'rm -f -- "$tmp"' EXIT
"#
    };
}

/// Shell: gives `$tmp` its owner, group and mode, and renames it to `$staged`. The script sets
/// `owner`, `group` and `mode` first (owner and group may be empty).
macro_rules! sh_install_tmp {
    () => {
        r#"if [ -n "$owner" ] && [ -n "$group" ]; then chown -- "$owner:$group" "$tmp"
elif [ -n "$owner" ]; then chown -- "$owner" "$tmp"
elif [ -n "$group" ]; then chgrp -- "$group" "$tmp"; fi
chmod -- "$mode" "$tmp"
mv -f -- "$tmp" "$staged"
trap - EXIT
"#
    };
}
pub(crate) use {sh_install_tmp, sh_open_tmp};

/// Suffix of a file staged beside its live path, renamed into place on commit.
pub const STAGED: &str = ".certorch-new";
/// Where `path`'s new version waits until it is committed.
pub fn staged(path: &crate::inventory::RemotePath) -> String {
    format!("{}{STAGED}", path.as_str())
}

/// Suffix of the previous live file, kept for rollback.
pub const PREVIOUS: &str = ".certorch-prev";
