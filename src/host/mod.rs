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
/// `stat -c`. It sets `certorch_open=1` when a component is writable by group or others (and
/// sticky, else it is refused), leaves it alone otherwise.
///
/// Each process costs the host a fork and an exec, so all components go to one `ls -ldnL`
/// (`certorch_all_safe`); when that one listing does not show plainly that every component is
/// safe (a symbolic link on the way, a line that is not a directory, any other count of lines
/// than components, an owner or mode to refuse), each component is looked at on its own
/// (`certorch_safe_one`), which says which one is refused and why.
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
    case $2 in ?????????[tT]*) certorch_open=1 ;; *) certorch_unsafe "$1" "the directory is writable by group or others ($2) and not sticky" ;; esac ;;
  esac
}
# `certorch_all_safe DIR…`: whether one listing shows every DIR a directory that is safe.
# ls orders its lines its own way; it prints one line per operand it can read, and names
# carry no newline (checked), so as many lines as operands, each one safe, cover them all.
certorch_all_safe() {
  cs_nl='
'
  for cs_p in "$@"; do
    [ ! -L "$cs_p" ] || return 1
    case $cs_p in *"$cs_nl"*) return 1 ;; esac
  done
  cs_n=$#
  cs_out=$(ls -ldnL -- "$@" 2>/dev/null) || return 1
  cs_open=
  set -f
  cs_ifs=$IFS IFS=$cs_nl
  set -- $cs_out
  IFS=$cs_ifs
  [ $# = "$cs_n" ] || { set +f; return 1; }
  for cs_line in "$@"; do
    set -- $cs_line
    case $1 in d*) ;; *) set +f; return 1 ;; esac
    certorch_trusted "$3" || { set +f; return 1; }
    case $1 in
    ?????w*|????????w*)
      case $1 in ?????????[tT]*) cs_open=1 ;; *) set +f; return 1 ;; esac ;;
    esac
  done
  set +f
  [ -z "$cs_open" ] || certorch_open=1
}
certorch_safe_dir() {
  cs_rest=${1#/} cs_p=
  set -- /
  while [ -n "$cs_rest" ]; do
    cs_c=${cs_rest%%/*}
    case $cs_rest in */*) cs_rest=${cs_rest#*/} ;; *) cs_rest= ;; esac
    [ -n "$cs_c" ] || continue
    cs_p=$cs_p/$cs_c
    [ -e "$cs_p" ] || [ -L "$cs_p" ] || break
    set -- "$@" "$cs_p"
  done
  certorch_all_safe "$@" && return 0
  for cs_p in "$@"; do certorch_safe_one "$cs_p"; done
}
"#
    };
}

/// Shell: checks the directory of `$dst` (see [`sh_safe_dir`]), before and after creating it
/// if needed, refuses a `$dst` that is a symbolic link or not a regular file, and sets `$tmp`,
/// the name to write the new file under, removed again if the script fails; it is renamed to
/// `$staged` once complete (rename(2), atomic), so the staged name only ever holds a whole file.
///
/// Where every directory on the way is private (owned by root or the login user, writable by
/// nobody else; checked just above), `$tmp` is `.certorch-tmp.PID.NAME` beside the
/// destination, with no mktemp: only root and the login user can create names there, so once
/// a file some dead script left at that name is removed, nobody can have put a file or link
/// at it. The shell's own PID keeps it apart from the name any other script still running
/// uses (a stalled one from a run that gave up on it), so no script ever writes or removes
/// another's file. Where a directory on the way is writable by others (sticky, as `/tmp`),
/// `$tmp` is a file in a private temporary directory `$tmpd` (mktemp, 0700) beside the
/// destination, whose name nobody else can guess or pre-create; a script that needs a private
/// directory for more files (`certorch_need_tmpd=1`) always gets one.
///
/// Files are made with umask 077 (0600 from their first byte); a script that writes the file
/// with the shell (`shell_writes=1`, setting `mode`, `owner` and `group` first) and wants no
/// other owner or group gets the umask that makes `$mode` from the start instead, and `$made`
/// says which mode the file was made with, so [`sh_install_tmp`] runs chmod only when it must.
/// A directory checked once is not checked again in the same script (`certorch_private`).
macro_rules! sh_open_tmp {
    () => {
        concat!(
            $crate::host::sh_safe_dir!(),
            r#"dir=${dst%/*}
[ -n "$dir" ] || dir=/
cs_nl='
'
: "${certorch_private:=$cs_nl}"
case $certorch_private in
*"$cs_nl$dir$cs_nl"*) private=1 ;;
*)
  certorch_open=
  certorch_safe_dir "$dir"
  if [ ! -d "$dir" ]; then
    umask 022
    mkdir -p -- "$dir"
    certorch_safe_dir "$dir"
  fi
  # The directory as the kernel reaches it, when links on the way make it another path.
  cd -P -- "$dir"
  cs_real=$PWD
  cd /
  [ "$cs_real" = "$dir" ] || certorch_safe_dir "$cs_real"
  if [ -z "$certorch_open" ]; then
    private=1
    case $dir in *"$cs_nl"*) ;; *) certorch_private=$certorch_private$dir$cs_nl ;; esac
  else
    private=
  fi ;;
esac
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
if [ -n "$private" ] && [ -z "${certorch_need_tmpd:-}" ]; then
  tmpd= tmp=$dir/.certorch-tmp.$$.${dst##*/}
  if [ -e "$tmp" ] || [ -L "$tmp" ]; then rm -f -- "$tmp"; fi
  trap 'rm -f -- "$tmp"' EXIT
else
  tmpd=$(mktemp -d "$dir/.certorch.XXXXXXXXXX" 2>&1) || certorch_write_failed "$dst" "$tmpd"
  tmp=$tmpd/new
  trap 'rm -rf -- "$tmpd"' EXIT
fi
made=0600
if [ "${shell_writes:-}" = 1 ] && [ -z "$owner$group" ]; then
  case $mode in
  0[0246][0246][0246])
    cs_m=${mode#0} cs_g=${mode#??}
    umask "$((7 - ${cs_m%??}))$((7 - ${cs_g%?}))$((7 - ${mode#???}))"
    made=$mode ;;
  esac
fi
"#
        )
    };
}

/// Shell: gives `$tmp` its owner, group and mode (chmod only when it was not made with it),
/// and renames it to `$staged`. The script sets `owner`,
/// `group`, `mode` and `made` first (owner and group may be empty).
macro_rules! sh_install_tmp {
    () => {
        r#"if [ -n "$owner" ] && [ -n "$group" ]; then chown -- "$owner:$group" "$tmp"
elif [ -n "$owner" ]; then chown -- "$owner" "$tmp"
elif [ -n "$group" ]; then chgrp -- "$group" "$tmp"; fi
if [ -n "$owner$group" ] || [ "$made" != "$mode" ]; then chmod -- "$mode" "$tmp"; fi
mv -f -- "$tmp" "$staged"
if [ -n "$tmpd" ]; then rm -rf -- "$tmpd"; fi
trap - EXIT
"#
    };
}
/// Shell: `certorch_rm_suffixed SUFFIX PATH…` removes each PATH+SUFFIX that exists (or is a
/// link), all with one `rm`, and none when there is none: the usual case costs no process.
macro_rules! sh_rm_suffixed {
    () => {
        r#"certorch_rm_suffixed() {
  cs_s=$1
  shift
  for cs_d in "$@"; do
    shift
    if [ -e "$cs_d$cs_s" ] || [ -L "$cs_d$cs_s" ]; then set -- "$@" "$cs_d$cs_s"; fi
  done
  [ $# = 0 ] || rm -f -- "$@"
}
"#
    };
}

/// Shell, built-ins only: `certorch_first_cert FILE` sets `cs_pem` to the first `CERTIFICATE`
/// block of FILE (its lines, a CR at their end dropped, without the last newline), or fails.
/// Only the BEGIN and END lines and the base64 lines between them are kept, so nothing else in
/// the file (the private key of a combined file) is ever printed or compared. `certorch_read
/// FILE` sets `cs_text` to FILE's text. Both read with `read`, so a host compares a file
/// with what certorch wrote without starting a program.
macro_rules! sh_read {
    () => {
        concat!(
            "cs_nl='\n' cs_cr='\r'\n",
            r#"certorch_first_cert() {
  cs_pem= cs_in=
  [ -f "$1" ] && [ -r "$1" ] || return 1
  while IFS= read -r cs_l || [ -n "$cs_l" ]; do
    cs_l=${cs_l%"$cs_cr"}
    if [ -z "$cs_in" ]; then
      [ "$cs_l" != "-----BEGIN CERTIFICATE-----" ] || { cs_in=1; cs_pem=$cs_l; }
      continue
    fi
    case $cs_l in
    -----END\ CERTIFICATE-----) cs_pem=$cs_pem$cs_nl$cs_l; return 0 ;;
    ''|*[!A-Za-z0-9+/=]*) cs_pem=; return 1 ;;
    esac
    cs_pem=$cs_pem$cs_nl$cs_l
  done < "$1"
  cs_pem=
  return 1
}
certorch_read() {
  cs_text=
  [ -f "$1" ] && [ -r "$1" ] || return 1
  while IFS= read -r cs_l; do cs_text=$cs_text$cs_l$cs_nl; done < "$1"
  cs_text=$cs_text$cs_l
}
"#
        )
    };
}
pub(crate) use {sh_install_tmp, sh_open_tmp, sh_read, sh_rm_suffixed, sh_safe_dir};

/// Suffix of a file staged beside its live path, renamed into place on commit.
pub const STAGED: &str = ".certorch-new";
/// Where `path`'s new version waits until it is committed.
pub fn staged(path: &crate::inventory::RemotePath) -> String {
    format!("{}{STAGED}", path.as_str())
}

/// Suffix of the previous live file, kept for rollback.
pub const PREVIOUS: &str = ".certorch-prev";
