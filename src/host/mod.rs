//! What certorch does on a host, over a [`Transport`](crate::transport::Transport): look at the
//! deployed certificate, have the host make its key and CSR, put files in place atomically,
//! reload. Private key bytes never come back from any of these.

// Declared after the shell fragments they use.
pub mod batch;
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
    /// The file system at a destination is full or read-only (exit [`UNWRITABLE`]).
    #[error("{step} failed on the host: {reason}")]
    Unwritable { step: &'static str, reason: String },
    /// A program the step needs is not installed on the host (exit 127, as the shell's).
    #[error("{step} failed on the host: {reason}")]
    Missing {
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
            Error::Unwritable { .. } => Kind::HostWriteFailed,
            Error::Missing { .. } => Kind::HostCommandMissing,
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
            Error::Failed { hint, .. }
            | Error::Rejected { hint, .. }
            | Error::Missing { hint, .. } => Some(hint.clone()),
            Error::Unwritable { .. } => Some(
                "make room on that file system, or make it writable, on the host (`df -h` and `mount` there show which it is), then run certorch again; the live files were not touched".into(),
            ),
        }
    }

    pub(crate) fn failed(step: &'static str, out: &Output, hint: impl Into<String>) -> Error {
        if out.code == Some(UNSAFE_PATH) {
            return Error::Rejected {
                step,
                reason: out.stderr_tail(),
                hint: "a local user could steer root's writes there: make each directory on the way owned by root (or the login user) and not writable by group or others (chmod go-w), remove a link or file someone else put there, or point the inventory at another path; the live files were not touched".into(),
            };
        }
        if out.code == Some(UNWRITABLE) {
            return Error::Unwritable {
                step,
                reason: out.stderr_tail(),
            };
        }
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

/// Runs `cmd` on the host: a non-zero exit is `step` failing with the hint `hint` makes. The
/// one frame of every host script whose output certorch does not read.
pub(crate) async fn run_ok(
    t: &dyn crate::transport::Transport,
    cmd: &sh::Cmd,
    step: &'static str,
    hint: impl FnOnce() -> String,
) -> Result<(), Error> {
    judge(&t.run(cmd, None).await?, step, hint)
}

/// What a host script's `out` means when only its exit matters: a non-zero exit is `step`
/// failing with the hint `hint` makes. [`run_ok`] alone, or one step of a [`batch`].
pub(crate) fn judge(
    out: &Output,
    step: &'static str,
    hint: impl FnOnce() -> String,
) -> Result<(), Error> {
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(step, out, hint()))
    }
}

/// Exit status of a host script that refused a path a local user could steer (see
/// [`sh_safe_dir`]); its stderr names the path and why.
pub const UNSAFE_PATH: i32 = 86;

/// Exit status of a host script that could not write a file because its file system is full
/// or read-only (see [`sh_open_tmp`]'s `certorch_write_failed`); its stderr names the file.
pub const UNWRITABLE: i32 = 87;

/// Shell: `certorch_safe_dir DIR` exits [`UNSAFE_PATH`] unless every existing component of
/// DIR, from `/` down, is safe for root to write through: owned by root or the login user
/// (`SUDO_UID`, `DOAS_USER` under `become`), not writable by group or others unless sticky,
/// and, where it is a symbolic link, the link itself owned by root or the login user. Else a
/// user who can create files there could point root's writes anywhere (a pre-created
/// `/var/tmp/certorch-dry-run` link, a world-writable directory). `ls -n` is POSIX, unlike
/// `stat -c`.
macro_rules! sh_safe_dir {
    () => {
        r#"certorch_unsafe() { echo "refusing $1: $2" >&2; exit 86; }
certorch_trusted() {
  [ "$1" = 0 ] || [ "$1" = "$(id -u)" ] || [ "$1" = "${SUDO_UID:-}" ] && return 0
  [ -n "${DOAS_USER:-}" ] && [ "$1" = "$(id -u -- "$DOAS_USER" 2>/dev/null)" ]
}
certorch_safe_one() {
  if [ -L "$1" ]; then
    set -f; set -- "$1" $(ls -ldn -- "$1"); set +f
    certorch_trusted "$4" || certorch_unsafe "$1" "it is a symbolic link owned by uid $4, not by root or the login user"
    [ -d "$1" ] || certorch_unsafe "$1" "it is a symbolic link that does not lead to a directory"
  fi
  set -f; set -- "$1" $(ls -ldnL -- "$1"); set +f
  certorch_trusted "$4" || certorch_unsafe "$1" "the directory is owned by uid $4, not by root or the login user"
  case $2 in
  ?????w*|????????w*)
    case $2 in ?????????[tT]*) ;; *) certorch_unsafe "$1" "the directory is writable by group or others ($2) and not sticky" ;; esac ;;
  esac
}
certorch_safe_dir() {
  certorch_safe_one /
  rest=${1#/} p=
  while [ -n "$rest" ]; do
    c=${rest%%/*}
    case $rest in */*) rest=${rest#*/} ;; *) rest= ;; esac
    [ -n "$c" ] || continue
    p=$p/$c
    [ -e "$p" ] || [ -L "$p" ] || return 0
    certorch_safe_one "$p"
  done
}
"#
    };
}

/// Shell: checks the directory of `$dst` (see [`sh_safe_dir`]), before and after creating it
/// if needed, refuses a `$dst` that is a symbolic link or not a regular file, and makes a
/// private temporary directory `$tmpd` (mktemp, 0700) beside it with `$tmp` its file, mode
/// 0600 from its first byte (umask 077); both removed if the script fails. Names in `$tmpd`
/// cannot be guessed or pre-created by anyone else. The script sets `dst` and `staged` first.
macro_rules! sh_open_tmp {
    () => {
        concat!(
            $crate::host::sh_safe_dir!(),
            r#"dir=${dst%/*}
[ -n "$dir" ] || dir=/
certorch_safe_dir "$dir"
[ -d "$dir" ] || (umask 022 && mkdir -p -- "$dir")
certorch_safe_dir "$dir"
certorch_safe_dir "$(cd -P -- "$dir" && pwd -P)"
if [ -L "$dst" ]; then certorch_unsafe "$dst" "it is a symbolic link; certorch writes files, never through a link"; fi
if [ -e "$dst" ] && [ ! -f "$dst" ]; then certorch_unsafe "$dst" "it is not a regular file"; fi
# mv onto a link to a directory would move into it: a stale link at the staged name goes.
if [ -L "$staged" ]; then rm -f -- "$staged"
elif [ -e "$staged" ] && [ ! -f "$staged" ]; then certorch_unsafe "$staged" "it is not a regular file"; fi
# `certorch_write_failed FILE MESSAGE`: why FILE could not be written. A full or read-only
# file system exits 87, so the bastion can say so whatever the tool's wording; else 1.
certorch_write_failed() {
  d=${1%/*}; [ -n "$d" ] || d=/
  case $2 in *[Rr]ead-only*) echo "cannot write $1: the file system of $d is read-only" >&2; exit 87 ;; esac
  free=$(df -Pk -- "$d" 2>/dev/null | awk 'NR == 2 { print $4 }') || free=
  if [ "$free" = 0 ]; then echo "cannot write $1: no space left on the file system of $d" >&2; exit 87; fi
  echo "cannot write $1: $2" >&2
  exit 1
}
umask 077
tmpd=$(mktemp -d "$dir/.certorch.XXXXXXXXXX" 2>&1) || certorch_write_failed "$dst" "$tmpd"
tmp=$tmpd/new
trap 'rm -rf -- "$tmpd"' EXIT
"#
        )
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
rm -rf -- "$tmpd"
trap - EXIT
"#
    };
}
pub(crate) use {sh_install_tmp, sh_open_tmp, sh_safe_dir};

/// Suffix of a file staged beside its live path, renamed into place on commit.
pub const STAGED: &str = ".certorch-new";
/// Where `path`'s new version waits until it is committed.
pub fn staged(path: &crate::inventory::RemotePath) -> String {
    format!("{}{STAGED}", path.as_str())
}

/// Suffix of the previous live file, kept for rollback.
pub const PREVIOUS: &str = ".certorch-prev";
