//! Putting files in place on a host without ever leaving one half-written. Each file is
//! written under a temporary name, given its owner and mode, and renamed to
//! `<path>.certorch-new` (staged); commit then renames every staged file of a certificate into
//! place, keeping the previous file as `<path>.certorch-prev` for rollback. A rename within one
//! directory is atomic (POSIX rename(2)), so a reader sees the old file or the new one.

use super::sh::Cmd;
use super::{Error, PREVIOUS, STAGED};
use crate::inventory::RemotePath;
use crate::inventory::types::{AccountName, FileMode};
use crate::transport::Transport;

/// `$1` path, `$2` mode, `$3` owner, `$4` group, `$5` staged suffix, `$6` a file on the host
/// to put before the content (empty for none); content on stdin. With `$6` the combined PEM is
/// assembled from the host's own key, which never travels.
const STAGE: &str = concat!(
    "set -eu\ndst=$1 staged=$1$5 mode=$2 owner=$3 group=$4\n",
    super::sh_open_tmp!(),
    "{ [ -z \"$6\" ] || cat -- \"$6\"; cat; } > \"$tmp\"\n",
    super::sh_install_tmp!(),
);

/// `$1` staged suffix, `$2` previous suffix, then the live paths. Checks every staged file
/// exists before renaming any, so a commit is all or nothing unless the host dies mid-way.
const COMMIT: &str = r#"set -eu
new=$1 prev=$2
shift 2
for dst in "$@"; do [ -f "$dst$new" ] || { echo "missing staged file $dst$new" >&2; exit 1; }; done
for dst in "$@"; do
  if [ -e "$dst" ]; then ln -f -- "$dst" "$dst$prev" 2>/dev/null || cp -p -- "$dst" "$dst$prev"; else rm -f -- "$dst$prev"; fi
done
for dst in "$@"; do mv -f -- "$dst$new" "$dst"; done
"#;

/// `$1` previous suffix, then the live paths: each previous file renamed back, or the file
/// removed where there was none before.
const ROLLBACK: &str = r#"prev=$1
shift
for dst in "$@"; do
  if [ -e "$dst$prev" ]; then mv -f -- "$dst$prev" "$dst"; else rm -f -- "$dst"; fi
done
"#;

/// `$1` staged suffix, then the live paths.
const DISCARD: &str = r#"new=$1
shift
for dst in "$@"; do rm -f -- "$dst$new"; done
"#;

/// One file to write.
pub struct FileSpec<'a> {
    pub path: &'a RemotePath,
    pub content: &'a [u8],
    pub mode: FileMode,
    pub owner: Option<&'a AccountName>,
    pub group: Option<&'a AccountName>,
}

/// Writes `file` to `<path>.certorch-new` on the host.
pub async fn stage(t: &dyn Transport, file: &FileSpec<'_>) -> Result<(), Error> {
    let cmd = Cmd::script(STAGE, "certorch-stage")
        .arg(file.path.as_str())
        .arg(file.mode.octal())
        .arg(file.owner.map_or("", |o| o.as_str()))
        .arg(file.group.map_or("", |g| g.as_str()))
        .arg(STAGED)
        .arg("");
    let out = t.run(&cmd, Some(file.content)).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "writing a file",
            &out,
            format!(
                "check that {} is on a writable file system and the owner/group exist on the host",
                file.path
            ),
        ))
    }
}

/// Stages `<path>` as the staged key followed by `fullchain`, assembled on the host.
pub async fn stage_combined(
    t: &dyn Transport,
    path: &RemotePath,
    key: &RemotePath,
    fullchain: &[u8],
    mode: FileMode,
    owner: Option<&AccountName>,
    group: Option<&AccountName>,
) -> Result<(), Error> {
    let cmd = Cmd::script(STAGE, "certorch-combine")
        .arg(path.as_str())
        .arg(mode.octal())
        .arg(owner.map_or("", |o| o.as_str()))
        .arg(group.map_or("", |g| g.as_str()))
        .arg(STAGED)
        .arg(format!("{}{STAGED}", key.as_str()));
    let out = t.run(&cmd, Some(fullchain)).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "assembling the combined key and chain file",
            &out,
            format!("check that {path} is on a writable file system"),
        ))
    }
}

/// Renames every staged file into place, keeping the previous ones.
pub async fn commit(t: &dyn Transport, paths: &[&RemotePath]) -> Result<(), Error> {
    let cmd = Cmd::script(COMMIT, "certorch-commit")
        .arg(STAGED)
        .arg(PREVIOUS)
        .args(paths.iter().map(|p| p.as_str()));
    let out = t.run(&cmd, None).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "putting the new files in place",
            &out,
            "the previous files are still live; check the host's file system and run certorch again",
        ))
    }
}

/// Removes staged files that will not be committed. Best effort: a staged file left behind is
/// harmless (it is overwritten next time) and never read by a service.
pub async fn discard(t: &dyn Transport, paths: &[&RemotePath]) {
    let cmd = Cmd::script(DISCARD, "certorch-discard")
        .arg(STAGED)
        .args(paths.iter().map(|p| p.as_str()));
    let _ = t.run(&cmd, None).await;
}

/// Puts the previous files back after a failed check, reload or verify.
pub async fn rollback(t: &dyn Transport, paths: &[&RemotePath]) -> Result<(), Error> {
    let cmd = Cmd::script(ROLLBACK, "certorch-rollback")
        .arg(PREVIOUS)
        .args(paths.iter().map(|p| p.as_str()));
    let out = t.run(&cmd, None).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "restoring the previous files",
            &out,
            "restore them by hand from the .certorch-prev files beside them",
        ))
    }
}

/// Runs the operator's check command on the host through `sh -c`.
pub async fn check(t: &dyn Transport, command: &str) -> Result<(), Error> {
    let cmd = Cmd::new("sh").arg("-c").arg(command).arg("certorch-check");
    let out = t.run(&cmd, None).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "the check command",
            &out,
            format!("`{command}` refused the new files; the previous ones are back in place"),
        ))
    }
}

/// Runs the operator's reload command on the host through `sh -c`.
pub async fn reload(t: &dyn Transport, command: &str) -> Result<(), Error> {
    // The reload line is operator-written shell by design; it is still passed as one quoted
    // argument so nothing around it can change its meaning.
    let cmd = Cmd::new("sh").arg("-c").arg(command).arg("certorch-reload");
    let out = t.run(&cmd, None).await?;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "the reload command",
            &out,
            format!(
                "the new files are in place but `{command}` failed; fix the service's configuration and reload it by hand"
            ),
        ))
    }
}
