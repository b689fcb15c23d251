//! Putting files in place on a host without ever leaving one half-written. Each file is
//! written under a temporary name, given its owner and mode, and renamed to
//! `<path>.certorch-new` (staged); commit then renames every staged file of a certificate into
//! place, keeping the previous file as `<path>.certorch-prev` for rollback. A rename within one
//! directory is atomic (POSIX rename(2)), so a reader sees the old file or the new one.

use super::sh::Cmd;
use super::{Error, PREVIOUS, STAGED};
use crate::inventory::RemotePath;
use crate::inventory::types::{AccountName, FileMode};
use crate::transport::{Output, Transport};

/// `$1` path, `$2` mode, `$3` owner, `$4` group, `$5` staged suffix, `$6` a file on the host
/// to put before the content (empty for none); content on stdin. With `$6` the combined PEM is
/// assembled from the host's own key, which never travels.
const STAGE: &str = concat!(
    "set -eu\ndst=$1 staged=$1$5 mode=$2 owner=$3 group=$4 shell_writes=1\n",
    super::sh_open_tmp!(),
    "err=$({ { [ -z \"$6\" ] || cat -- \"$6\"; cat; } > \"$tmp\"; } 2>&1) || certorch_write_failed \"$dst\" \"$err\"\n",
    super::sh_install_tmp!(),
);

/// `$1` staged suffix, `$2` previous suffix, `$3` a key and `$4` the public key (PEM, as
/// `openssl pkey -pubout` prints it) of the certificate being committed (both empty: no
/// check), then the live paths. The staged key (the live one when it is not replaced) must
/// have that public key, so no commit ever puts a key beside a certificate it does not match;
/// the certificate's bytes are certorch's own, staged by the same command, so its public key
/// comes from the bastion rather than from a second openssl on the host. Checks every staged
/// file exists before renaming any, so a commit is all or nothing unless the host dies
/// mid-way.
const COMMIT: &str = concat!(
    super::sh_rm_suffixed!(),
    r#"set -eu
new=$1 prev=$2
if [ -n "$3" ]; then
  k=$3$new; [ -f "$k" ] || k=$3
  a=$(openssl pkey -in "$k" -pubout) || exit 3
  [ "$a
" = "$4" ] || { echo "the staged key does not match the staged certificate" >&2; exit 1; }
fi
shift 4
for dst in "$@"; do
  [ -f "$dst$new" ] || { echo "missing staged file $dst$new" >&2; exit 1; }
  # Staging refused links; one made since would have root write through it.
  if [ -L "$dst" ] || [ -L "$dst$new" ]; then echo "refusing $dst: it is a symbolic link; certorch writes files, never through a link" >&2; exit 86; fi
done
certorch_rm_suffixed "$prev" "$@"
for dst in "$@"; do
  if [ -e "$dst" ]; then
    ln -- "$dst" "$dst$prev" 2>/dev/null || cp -p -- "$dst" "$dst$prev"
    printf 'certorch:prev %s\n' "$dst"
  fi
done
for dst in "$@"; do mv -f -- "$dst$new" "$dst"; done
"#
);

/// `$1` previous suffix, then the live paths: each previous file renamed back, or the file
/// removed where there was none before.
const ROLLBACK: &str = r#"prev=$1
shift
for dst in "$@"; do
  if [ -e "$dst$prev" ]; then mv -f -- "$dst$prev" "$dst"; else rm -f -- "$dst"; fi
done
"#;

/// `$1` staged suffix, then the live paths.
const DISCARD: &str = concat!(
    super::sh_rm_suffixed!(),
    r#"certorch_rm_suffixed "$@"
"#
);

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

/// `$1` staged suffix, then per file five arguments: path, mode, owner, group, content.
/// Certificates are text, so their content travels as an argument: one command stages them all.
const STAGE_MANY: &str = concat!(
    "set -eu\nsuffix=$1\nshift\nwhile [ $# -ge 5 ]; do\n",
    "dst=$1 mode=$2 owner=$3 group=$4 content=$5 staged=$1$suffix shell_writes=1\nshift 5\n",
    super::sh_open_tmp!(),
    "err=$({ printf '%s' \"$content\" > \"$tmp\"; } 2>&1) || certorch_write_failed \"$dst\" \"$err\"\n",
    super::sh_install_tmp!(),
    "done\n",
);

/// The command that writes every file to `<path>.certorch-new` on the host. Public content
/// only (certificates, chains): arguments show in the host's process list, so keys and other
/// secrets go through [`stage`] on standard input.
pub fn stage_many_cmd(files: &[FileSpec<'_>]) -> Cmd {
    let mut cmd = Cmd::script(STAGE_MANY, "certorch-stage").arg(STAGED);
    for f in files {
        cmd = cmd
            .arg(f.path.as_str())
            .arg(f.mode.octal())
            .arg(f.owner.map_or("", |o| o.as_str()))
            .arg(f.group.map_or("", |g| g.as_str()))
            .arg(String::from_utf8_lossy(f.content).into_owned());
    }
    cmd
}

/// What [`stage_many_cmd`]'s `out` means.
pub fn stage_many_judge(out: &Output, files: &[FileSpec<'_>]) -> Result<(), Error> {
    super::judge(out, "writing the certificate files", || {
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        format!(
            "check that {} are on a writable file system and the owner/group exist on the host",
            paths.join(", ")
        )
    })
}

/// The command that stages `<path>` as the staged key followed by the full chain (on its
/// standard input), assembled on the host.
pub fn stage_combined_cmd(
    path: &RemotePath,
    key: &RemotePath,
    mode: FileMode,
    owner: Option<&AccountName>,
    group: Option<&AccountName>,
) -> Cmd {
    Cmd::script(STAGE, "certorch-combine")
        .arg(path.as_str())
        .arg(mode.octal())
        .arg(owner.map_or("", |o| o.as_str()))
        .arg(group.map_or("", |g| g.as_str()))
        .arg(STAGED)
        .arg(super::staged(key))
}

/// What [`stage_combined_cmd`]'s `out` means.
pub fn stage_combined_judge(out: &Output, path: &RemotePath) -> Result<(), Error> {
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            "assembling the combined key and chain file",
            out,
            format!("check that {path} is on a writable file system"),
        ))
    }
}

/// Renames every staged file into place, keeping the previous ones; with `pair` (key, the
/// public key (SPKI DER) of the certificate among the files) only when the key has it.
pub async fn commit(
    t: &dyn Transport,
    paths: &[&RemotePath],
    pair: Option<(&RemotePath, &[u8])>,
) -> Result<(), Error> {
    let out = t.run(&commit_cmd(paths, pair), None).await?;
    commit_judge(&out)
}

/// The command of [`commit`]. It prints `certorch:prev PATH` for each live file it kept as
/// the previous one.
pub fn commit_cmd(paths: &[&RemotePath], pair: Option<(&RemotePath, &[u8])>) -> Cmd {
    Cmd::script(COMMIT, "certorch-commit")
        .arg(STAGED)
        .arg(PREVIOUS)
        .arg(pair.map_or("", |(k, _)| k.as_str()))
        .arg(pair.map_or_else(String::new, |(_, spki)| crate::x509::public_key_pem(spki)))
        .args(paths.iter().map(|p| p.as_str()))
}

/// What [`commit`]'s command `out` means.
pub fn commit_judge(out: &Output) -> Result<(), Error> {
    super::judge(out, "putting the new files in place", || {
        "the previous files are still live; check the host's file system and run certorch again"
            .into()
    })
}

/// Whether the commit that printed `out` kept a previous version of any of `paths`.
pub fn kept_previous(out: &Output, paths: &[&RemotePath]) -> bool {
    String::from_utf8_lossy(&out.stdout).lines().any(|l| {
        l.strip_prefix("certorch:prev ")
            .is_some_and(|p| paths.iter().any(|k| k.as_str() == p))
    })
}

/// Removes staged files that will not be committed. A staged file left behind is harmless
/// (it is overwritten next time, never read by a service), so a failure here is a warning for
/// the caller to pass on, not a failed certificate.
pub async fn discard(t: &dyn Transport, paths: &[&RemotePath]) -> Result<(), Error> {
    let cmd = Cmd::script(DISCARD, "certorch-discard")
        .arg(STAGED)
        .args(paths.iter().map(|p| p.as_str()));
    super::run_ok(t, &cmd, "removing staged files", || {
        "remove the *.certorch-new files beside the certificate's paths by hand".into()
    })
    .await
}

/// `$1` previous suffix, then the live paths.
const FORGET: &str = concat!(
    super::sh_rm_suffixed!(),
    r#"set -eu
certorch_rm_suffixed "$@"
"#
);

/// Removes the `.certorch-prev` copies of `paths` (the replaced key and the files that hold
/// it) once the new certificate is live and verified: rollback is over, and an old private
/// key left on disk is one more to leak.
pub async fn forget_previous(t: &dyn Transport, paths: &[&RemotePath]) -> Result<(), Error> {
    let out = t.run(&forget_previous_cmd(paths), None).await?;
    forget_previous_judge(&out, paths)
}

/// The command of [`forget_previous`].
pub fn forget_previous_cmd(paths: &[&RemotePath]) -> Cmd {
    Cmd::script(FORGET, "certorch-forget-prev")
        .arg(PREVIOUS)
        .args(paths.iter().map(|p| p.as_str()))
}

/// What [`forget_previous`]'s command `out` means.
pub fn forget_previous_judge(out: &Output, paths: &[&RemotePath]) -> Result<(), Error> {
    super::judge(out, "removing the previous key", || {
        format!(
            "remove {} by hand; the new certificate is live",
            paths
                .iter()
                .map(|p| format!("{p}{PREVIOUS}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Puts the previous files back after a failed check, reload or verify.
pub async fn rollback(t: &dyn Transport, paths: &[&RemotePath]) -> Result<(), Error> {
    let cmd = Cmd::script(ROLLBACK, "certorch-rollback")
        .arg(PREVIOUS)
        .args(paths.iter().map(|p| p.as_str()));
    super::run_ok(t, &cmd, "restoring the previous files", || {
        "restore them by hand from the .certorch-prev files beside them".into()
    })
    .await
}

/// Runs the service's check (`nginx -t`) with the new files in place; `shown` is the command
/// as the operator wrote it, for messages.
pub async fn check(t: &dyn Transport, cmd: &Cmd, shown: &str) -> Result<(), Error> {
    check_judge(&t.run(cmd, None).await?, shown)
}

/// What the check command's `out` means.
pub fn check_judge(out: &Output, shown: &str) -> Result<(), Error> {
    super::judge(out, "the check command", || {
        format!(
            "`{shown}` refused the new files; fix the service's configuration or the playbook, then run certorch again"
        )
    })
}

/// Runs the service's reload command; `shown` is the command as the operator wrote it.
pub async fn reload(t: &dyn Transport, cmd: &Cmd, shown: &str) -> Result<(), Error> {
    reload_judge(&t.run(cmd, None).await?, shown)
}

/// What the reload command's `out` means.
pub fn reload_judge(out: &Output, shown: &str) -> Result<(), Error> {
    super::judge(out, "the reload command", || {
        format!(
            "`{shown}` failed; fix the service's configuration and reload it by hand, then run certorch again"
        )
    })
}

/// `$1` seconds, then the command. Runs it under timeout(1) where the host has it (GNU and
/// BusyBox do, as do the BSDs), which signals the command's whole process group at the
/// deadline and KILLs it 2 s later: a check or reload that hangs is ended on the host, not
/// left running after certorch gave up waiting for it (closing the SSH channel signals
/// nothing to a command that does not write).
const WATCHDOG: &str = r#"t=$1
shift
if command -v timeout >/dev/null 2>&1; then exec timeout -k 2 "$t" "$@"; fi
exec "$@"
"#;

/// `cmd` (an operator's check or reload) ended on the host a second after `limit`, certorch's
/// own deadline for it: certorch reports the timeout, the host ends what hangs.
pub fn watched(cmd: &Cmd, limit: std::time::Duration) -> Cmd {
    cmd.within(WATCHDOG, &[&(limit.as_secs() + 1).to_string()])
}

/// An operator-written shell line (the zone file's reload), as one quoted `sh -c` argument
/// so nothing around it can change its meaning.
pub fn shell_line(line: &str, name: &str) -> Cmd {
    Cmd::new("sh").arg("-c").arg(line).arg(name)
}

/// What kind of store to build on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Pkcs12,
    JavaKeystore,
}

/// `$1` path, `$2` mode, `$3` owner, `$4` group, `$5` staged suffix, `$6` key file, `$7` kind
/// (pkcs12|jks), `$8` password file on the host (may be empty for pkcs12), `$9` alias; the
/// full chain on stdin. The store is built from the host's own key and staged like any file.
const STORE: &str = concat!(
    "set -eu\ndst=$1 staged=$1$5 mode=$2 owner=$3 group=$4 certorch_need_tmpd=1\n",
    super::sh_open_tmp!(),
    r#"made=
cat > "$tmp.pem"
if [ -n "$8" ]; then pass="file:$8"; else pass="pass:"; fi
case $7 in
pkcs12) openssl pkcs12 -export -inkey "$6" -in "$tmp.pem" -name "$9" -passout "$pass" -out "$tmp" ;;
jks)
  openssl pkcs12 -export -inkey "$6" -in "$tmp.pem" -name "$9" -passout "$pass" -out "$tmp.p12"
  keytool -importkeystore -noprompt -srckeystore "$tmp.p12" -srcstoretype PKCS12 -srcstorepass:file "$8" \
    -destkeystore "$tmp" -deststoretype JKS -deststorepass:file "$8" -destkeypass:file "$8" -alias "$9" >/dev/null ;;
esac
"#,
    super::sh_install_tmp!(),
);

/// A PKCS#12 bundle or Java keystore to build on the host.
pub struct StoreSpec<'a> {
    pub kind: Store,
    pub path: &'a RemotePath,
    pub key: &'a RemotePath,
    pub password_file: Option<&'a RemotePath>,
    pub alias: &'a str,
    pub mode: FileMode,
    pub owner: Option<&'a AccountName>,
    pub group: Option<&'a AccountName>,
}

/// The command that builds a PKCS#12 bundle or Java keystore on the host from the key's staged
/// version (a new key, or the live one copied there when it is kept) and the full chain (on its
/// standard input), staged at `<path>.certorch-new`.
pub fn stage_store_cmd(s: &StoreSpec<'_>) -> Cmd {
    Cmd::script(STORE, "certorch-store")
        .arg(s.path.as_str())
        .arg(s.mode.octal())
        .arg(s.owner.map_or("", |o| o.as_str()))
        .arg(s.group.map_or("", |g| g.as_str()))
        .arg(STAGED)
        .arg(super::staged(s.key))
        .arg(match s.kind {
            Store::Pkcs12 => "pkcs12",
            Store::JavaKeystore => "jks",
        })
        .arg(s.password_file.map_or("", |p| p.as_str()))
        .arg(s.alias)
}

/// What [`stage_store_cmd`]'s `out` means.
pub fn stage_store_judge(out: &Output, s: &StoreSpec<'_>) -> Result<(), Error> {
    let path = s.path;
    if out.success() {
        Ok(())
    } else {
        Err(Error::failed(
            match s.kind {
                Store::Pkcs12 => "building the PKCS#12 bundle",
                Store::JavaKeystore => "building the Java keystore",
            },
            out,
            match s.kind {
                Store::Pkcs12 => format!(
                    "check that openssl works on the host and the password file is readable, and that {path}'s directory is writable"
                ),
                Store::JavaKeystore => format!(
                    "check that keytool (a Java runtime) is installed on the host, the password file is readable and holds 6 or more characters, and that {path}'s directory is writable"
                ),
            },
        ))
    }
}

/// Reads the key staged for `key` (a shared-key label's origin), into memory that is wiped when
/// dropped. The bytes never touch the bastion's disk.
pub async fn read_staged_key(
    t: &dyn Transport,
    key: &RemotePath,
) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    let staged = super::staged(key);
    let read = Cmd::new("cat").arg("--").arg(staged.clone());
    let out = t.run(&read, None).await?;
    // Wiped when dropped, whatever happens next.
    let ok = out.success();
    let stderr = out.stderr_tail();
    let bytes = zeroize::Zeroizing::new(out.stdout);
    if !ok || bytes.is_empty() {
        return Err(Error::Rejected {
            step: "reading the shared key",
            reason: format!("{staged}: {stderr}"),
            hint: format!("check that the host still has {staged}; run certorch again"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// Runs the staging script here, as it runs on a host (as root), for `dst`.
    fn stage_here(dst: &Path) -> std::process::Output {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(STAGE)
            .arg("certorch-stage")
            .arg(dst)
            .args(["0644", "", "", STAGED, ""])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(b"new").unwrap();
        child.wait_with_output().unwrap()
    }

    fn refused(out: &std::process::Output, path: &Path, why: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(super::super::UNSAFE_PATH),
            "{stderr}"
        );
        assert_eq!(
            stderr.trim_end(),
            format!("refusing {}: {why}", path.display())
        );
    }

    fn mode(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    /// Regression (holes #1): a directory others can write to, a destination that is a link,
    /// or a pre-created link on the way (the dry-run root) is refused before anything is
    /// written; a sticky directory and a private one are fine, and temporaries are mktemp's.
    #[test]
    fn staging_refuses_paths_a_local_user_could_steer() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();

        let ok = r.join("ok/etc/ssl/www.pem");
        let out = stage_here(&ok);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            std::fs::read(format!("{}{STAGED}", ok.display())).unwrap(),
            b"new"
        );
        assert_eq!(std::fs::read_dir(r.join("ok/etc/ssl")).unwrap().count(), 1);

        let sticky = r.join("sticky");
        std::fs::create_dir(&sticky).unwrap();
        mode(&sticky, 0o1777);
        assert!(stage_here(&sticky.join("www.pem")).status.success());

        let open = r.join("open");
        std::fs::create_dir(&open).unwrap();
        mode(&open, 0o777);
        let out = stage_here(&open.join("www.pem"));
        refused(
            &out,
            &open,
            "the directory is writable by group or others (drwxrwxrwx) and not sticky",
        );
        assert_eq!(std::fs::read_dir(&open).unwrap().count(), 0);

        let linked = r.join("ok/etc/ssl/linked.pem");
        std::fs::write(r.join("target.pem"), "live").unwrap();
        symlink(r.join("target.pem"), &linked).unwrap();
        refused(
            &stage_here(&linked),
            &linked,
            "it is a symbolic link; certorch writes files, never through a link",
        );
        assert_eq!(std::fs::read(r.join("target.pem")).unwrap(), b"live");

        // A local user's link where the dry-run root would be.
        let elsewhere = r.join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let dry = r.join("certorch-dry-run");
        symlink(&elsewhere, &dry).unwrap();
        std::os::unix::fs::lchown(&dry, Some(4242), Some(4242)).unwrap();
        refused(
            &stage_here(&dry.join("etc/ssl/www.pem")),
            &dry,
            "it is a symbolic link owned by uid 4242, not by root or the login user",
        );
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

        // A directory a local user made there.
        let theirs = r.join("theirs");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::chown(&theirs, Some(4242), None).unwrap();
        refused(
            &stage_here(&theirs.join("www.pem")),
            &theirs,
            "the directory is owned by uid 4242, not by root or the login user",
        );
    }

    /// A directory for tests whose every ancestor is private (the build's own directory), as
    /// `/etc/ssl` is on a host; the system temporary directory is sticky and world-writable.
    /// A directory no other user can write to, nor any of its ancestors: the checkout's
    /// target/ when the checkout is in such a place, else the home directory (a checkout
    /// under /tmp, as CI's, has a world-writable ancestor).
    fn private_dir() -> tempfile::TempDir {
        use std::os::unix::fs::MetadataExt;
        let private = |p: &Path| {
            p.ancestors().all(|a| {
                std::fs::metadata(a)
                    .is_ok_and(|m| m.mode() & 0o022 == 0 && (m.uid() == 0 || m.uid() == own_uid()))
            })
        };
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        std::fs::create_dir_all(&target).unwrap();
        let home = std::env::home_dir().expect("a home directory");
        let base = [target, home]
            .into_iter()
            .find(|b| private(b))
            .expect("neither target/ nor the home directory is private to this user");
        tempfile::tempdir_in(base).unwrap()
    }

    /// This process's user id, from the owner of a file it just made.
    fn own_uid() -> u32 {
        use std::os::unix::fs::MetadataExt;
        let f = tempfile::NamedTempFile::new().unwrap();
        f.as_file().metadata().unwrap().uid()
    }

    /// Runs `script` here with `args`, every program it starts logged to `log` first.
    fn run_logged(script: &str, name: &str, args: &[&str], log: &Path) -> std::process::Output {
        let shims = log.with_extension("shims");
        std::fs::create_dir_all(&shims).unwrap();
        for prog in [
            "ls", "mktemp", "chmod", "chown", "chgrp", "mv", "rm", "ln", "cp", "cat", "id",
            "openssl", "df", "awk", "mkdir",
        ] {
            let shim = shims.join(prog);
            std::fs::write(
                &shim,
                format!(
                    "#!/bin/sh\necho {prog} >> '{}'\nPATH=$CERTORCH_REAL_PATH exec {prog} \"$@\"\n",
                    log.display()
                ),
            )
            .unwrap();
            mode(&shim, 0o755);
        }
        let real = std::env::var("PATH").unwrap();
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(name)
            .args(args)
            .env("PATH", format!("{}:{real}", shims.display()))
            .env("CERTORCH_REAL_PATH", real)
            .output()
            .unwrap()
    }

    fn programs(log: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        std::fs::remove_file(log).ok();
        text.lines().map(String::from).collect()
    }

    /// Staging three certificate files in one private directory checks it with one `ls` and
    /// starts nothing else but the renames (no mktemp, chmod, rm); commits keep the previous files with one
    /// `rm` for all of them; forgetting previous files that are not there starts nothing.
    #[test]
    fn a_private_directory_costs_the_host_few_programs() {
        let root = private_dir();
        let dir = root.path().join("etc/ssl");
        std::fs::create_dir_all(&dir).unwrap();
        let log = root.path().join("log");
        let paths: Vec<String> = ["a.pem", "b.pem", "c.pem"]
            .iter()
            .map(|n| dir.join(n).display().to_string())
            .collect();
        let mut args = vec![STAGED];
        for p in &paths {
            args.extend([p.as_str(), "0644", "", "", "-----BEGIN X-----\nnew\n"]);
        }
        let stage = |log: &Path| {
            let out = run_logged(STAGE_MANY, "certorch-stage", &args, log);
            assert!(out.status.success(), "{out:?}");
        };
        stage(&log);
        assert_eq!(programs(&log), ["ls", "mv", "mv", "mv"]);
        for p in &paths {
            let staged = format!("{p}{STAGED}");
            assert_eq!(std::fs::read(&staged).unwrap(), b"-----BEGIN X-----\nnew\n");
            let m = std::fs::metadata(&staged).unwrap().permissions().mode();
            assert_eq!(m & 0o7777, 0o644);
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);

        let commit_args = |log: &Path| {
            let mut a = vec![STAGED, PREVIOUS, "", ""];
            a.extend(paths.iter().map(String::as_str));
            let out = run_logged(COMMIT, "certorch-commit", &a, log);
            assert!(out.status.success(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        // First time: nothing to keep.
        assert_eq!(commit_args(&log), "");
        assert_eq!(programs(&log), ["mv", "mv", "mv"]);
        // Then each live file is kept; previous ones from before go with one rm.
        for round in 0..2 {
            stage(&log);
            assert_eq!(programs(&log), ["ls", "mv", "mv", "mv"]);
            assert_eq!(commit_args(&log).lines().count(), 3);
            let mut want = vec!["ln", "ln", "ln", "mv", "mv", "mv"];
            if round == 1 {
                want.insert(0, "rm");
            }
            assert_eq!(programs(&log), want);
            for p in &paths {
                assert!(Path::new(&format!("{p}{PREVIOUS}")).exists());
            }
        }
        let mut a = vec![PREVIOUS];
        a.extend(paths.iter().map(String::as_str));
        assert!(
            run_logged(FORGET, "certorch-forget-prev", &a, &log)
                .status
                .success()
        );
        assert_eq!(programs(&log), ["rm"]);
        assert!(
            run_logged(FORGET, "certorch-forget-prev", &a, &log)
                .status
                .success()
        );
        assert_eq!(programs(&log), Vec::<String>::new());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    }

    /// The commit refuses a staged key whose public key is not the certificate's, and renames
    /// nothing then.
    #[test]
    fn commit_refuses_a_key_that_is_not_the_certificates() {
        let root = private_dir();
        let key = root.path().join("k.pem");
        let other = root.path().join("o.pem");
        for k in [&key, &other] {
            let st = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                ])
                .arg(k)
                .status()
                .unwrap();
            assert!(st.success());
        }
        let public = |k: &Path| {
            let out = Command::new("openssl")
                .args(["pkey", "-pubout", "-in"])
                .arg(k)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        };
        let cert = root.path().join("c.pem");
        std::fs::write(format!("{}{STAGED}", cert.display()), "new").unwrap();
        let log = root.path().join("log");
        let k = key.display().to_string();
        let c = cert.display().to_string();
        let wrong = public(&other);
        let out = run_logged(
            COMMIT,
            "certorch-commit",
            &[STAGED, PREVIOUS, &k, &wrong, &c],
            &log,
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("does not match"));
        assert!(!cert.exists());
        let right = public(&key);
        let out = run_logged(
            COMMIT,
            "certorch-commit",
            &[STAGED, PREVIOUS, &k, &right, &c],
            &log,
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&cert).unwrap(), b"new");
        assert_eq!(programs(&log), ["openssl", "openssl", "mv"]);
    }
}
