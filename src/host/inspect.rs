//! What is deployed on a host now: the certificate in the configured file and whether the live
//! key belongs to it. Only public material crosses the wire: the host prints the first
//! certificate of the file and the public half of the key.

use super::Error;
use super::sh::Cmd;
use crate::inventory::CertSpec;
use crate::state::KeyStamp;
use crate::transport::Transport;
use crate::x509::{self, CertInfo};

/// `$1` the certificate file, `$2` the key file, `$3` what `stat` printed for both when the
/// key was last seen to belong to the certificate (empty: never). The shell prints only the
/// first certificate block of the file (the bastion parses it), so a combined key+cert PEM
/// never sends its key and no program starts for it; `pkey -pubout` prints only the public key.
/// `stat` runs before either file is read, so a change while they are read shows next time;
/// while both files are as they were (device, inode, size, modification and change times),
/// openssl does not start: `certorch:keyseen`. Otherwise the stamp follows the public key, to
/// be recorded when the key belongs to the certificate. A host without GNU or BusyBox `stat`
/// prints no stamp, and its key is checked every time.
const SCRIPT: &str = concat!(
    super::sh_read!(),
    r#"set -u
if [ ! -e "$1" ]; then echo certorch:nocert; exit 0; fi
st=$(stat -L -c '%Z|%d:%i:%s:%y:%z' -- "$1" "$2" 2>/dev/null) || st=
if certorch_first_cert "$1"; then printf '%s\n' "$cs_pem"; else echo certorch:badcert; fi
echo certorch:pubkey
if [ ! -e "$2" ]; then echo certorch:nokey; exit 0; fi
if [ -n "$st" ] && [ "$st" = "$3" ]; then echo certorch:keyseen; exit 0; fi
openssl pkey -in "$2" -pubout 2>/dev/null || echo certorch:badkey
[ -z "$st" ] || printf 'certorch:stamp\n%s\n' "$st"
"#
);

/// The certificate a host serves from the configured path.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub cert: CertInfo,
    /// The live key's public half equals the certificate's.
    pub key_matches: bool,
    /// What `stat` printed for the certificate and key files, with a key checked this time
    /// (not when the host found them as stamped).
    pub stamp: Option<String>,
}

/// What the host has for this certificate.
#[derive(Debug, Clone)]
pub enum Current {
    /// No file at the certificate path.
    Missing,
    /// A file that holds no readable certificate.
    Unreadable,
    /// Boxed: the certificate's facts dwarf the other variants.
    Present(Box<Deployed>),
}

/// Reads what is deployed for `spec`, checking the key with openssl.
pub async fn inspect(t: &dyn Transport, spec: &CertSpec) -> Result<Current, Error> {
    let out = t.run(&inspect_cmd(spec, None), None).await?;
    inspect_judge(&out, None)
}

/// The command of [`inspect`]; `seen`: the files' stamp when the key was last seen to belong
/// to the certificate, so the host need not check it again while they are unchanged.
pub fn inspect_cmd(spec: &CertSpec, seen: Option<&KeyStamp>) -> Cmd {
    Cmd::script(SCRIPT, "certorch-inspect")
        .arg(spec.inspect_path().as_str())
        .arg(spec.key.as_str())
        .arg(seen.map_or("", |s| s.stamp.as_str()))
}

/// What [`inspect`]'s command `out` says is deployed; `seen` as given to [`inspect_cmd`]. A
/// key the host found unchanged belongs to the certificate only if that is the one it
/// belonged to before.
pub fn inspect_judge(
    out: &crate::transport::Output,
    seen: Option<&KeyStamp>,
) -> Result<Current, Error> {
    if !out.success() {
        return Err(Error::failed(
            "reading the deployed certificate",
            out,
            "check that openssl is installed on the host and the login user may read the certificate and key files",
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.starts_with("certorch:nocert") {
        return Ok(Current::Missing);
    }
    let (cert_part, key_part) = text.split_once("certorch:pubkey").unwrap_or((&text, ""));
    let der = match x509::pem_certificates(cert_part.as_bytes()) {
        Ok(certs) if !certs.is_empty() => certs.into_iter().next().expect("non-empty"),
        _ => return Ok(Current::Unreadable),
    };
    let cert = match x509::cert_info(&der) {
        Ok(c) => c,
        Err(_) => return Ok(Current::Unreadable),
    };
    let (key_part, stamp) = match key_part.split_once("certorch:stamp\n") {
        Some((key, stamp)) => (key, Some(stamp.trim_end_matches('\n').to_string())),
        None => (key_part, None),
    };
    let key_matches = if key_part.trim() == "certorch:keyseen" {
        seen.is_some_and(|s| s.fingerprint == cert.fingerprint)
    } else {
        x509::pem_public_key(key_part.as_bytes()).is_some_and(|spki| spki == cert.spki)
    };
    Ok(Current::Present(Box::new(Deployed {
        cert,
        key_matches,
        stamp,
    })))
}

/// Whether a stamp the host printed may stand for its files from now on: every file's change
/// time (`%Z`, the first field of each line) at least a minute before `now` by the bastion's
/// clock. A file changed within the timestamp resolution of the one stamped could otherwise
/// look the same (same size, inode and times) with other content; a host whose clock runs
/// ahead only has its key checked again.
pub fn stamp_settled(stamp: &str, now: time::OffsetDateTime) -> bool {
    let limit = now.unix_timestamp() - 60;
    let mut lines = stamp.lines().peekable();
    lines.peek().is_some()
        && lines.all(|l| {
            l.split_once('|')
                .and_then(|(ctime, _)| ctime.parse::<i64>().ok())
                .is_some_and(|c| c <= limit)
        })
}

/// `$1` the certificate file, `$2` the key file, `$3` what `$1` should hold in full (empty
/// when that is not known: a combined file begins with the key), `$4` the certificate that
/// should be first in it (PEM, without its last newline), `$5` that certificate's public key
/// as `openssl pkey -pubout` prints it. Exits 1 and says why unless `$1` is what certorch wrote
/// and the key in `$2` is the certificate's: the read-back after a commit, on the host, so that
/// a batch stops before the service's check and reload when the files are not what was
/// written. The files are certorch's own PEM, so the shell compares their text with what it
/// wrote; only the key needs openssl.
const LIVE_IS: &str = concat!(
    super::sh_read!(),
    r#"set -u
if [ -n "$3" ]; then
  certorch_read "$1" || { echo "$1 holds no readable certificate" >&2; exit 1; }
  [ "$cs_text" = "$3" ] || { echo "$1 holds another certificate" >&2; exit 1; }
else
  certorch_first_cert "$1" || { echo "$1 holds no readable certificate" >&2; exit 1; }
  [ "$cs_pem" = "$4" ] || { echo "$1 holds another certificate" >&2; exit 1; }
fi
a=$(openssl pkey -in "$2" -pubout 2>/dev/null) || { echo "$2 holds no readable key" >&2; exit 1; }
[ "$a
" = "$5" ] || { echo "the key in $2 does not belong to the certificate in $1" >&2; exit 1; }
"#
);

/// The command that checks on the host that `spec`'s live files hold `chain` (DER, the leaf
/// first) as certorch writes it and the key whose public key is `spki`.
pub fn live_is_cmd(spec: &CertSpec, chain: &[Vec<u8>], spki: &[u8]) -> Cmd {
    let path = spec.inspect_path();
    let whole = if Some(path) == spec.fullchain.as_ref() {
        x509::to_pem(chain)
    } else if Some(path) == spec.cert.as_ref() {
        x509::to_pem(&chain[..1])
    } else {
        String::new()
    };
    let leaf = x509::to_pem(&chain[..1]);
    Cmd::script(LIVE_IS, "certorch-readback")
        .arg(path.as_str())
        .arg(spec.key.as_str())
        .arg(whole)
        .arg(leaf.trim_end_matches('\n'))
        .arg(x509::public_key_pem(spki))
}

/// What [`live_is_cmd`]'s `out` means.
pub fn live_is_judge(out: &crate::transport::Output) -> Result<(), Error> {
    super::judge(out, "reading back the new certificate", || {
        "another process may have changed the files at the same time; check the paths and run certorch again".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// A self-signed certificate and its key, made by openssl: (key path, cert PEM).
    fn cert_and_key(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
        let key = dir.join(format!("{name}.key"));
        let cert = dir.join(format!("{name}.crt"));
        let st = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args([
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=a.example.org",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .unwrap();
        assert!(st.status.success(), "{st:?}");
        (key, std::fs::read_to_string(&cert).unwrap())
    }

    fn run(script: &str, args: &[&str]) -> crate::transport::Output {
        let o = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("certorch-test")
            .args(args)
            .output()
            .unwrap();
        crate::transport::Output {
            code: o.status.code(),
            stdout: o.stdout,
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// What the survey's output `out` says is deployed, which must be a certificate.
    fn present(out: &crate::transport::Output, seen: Option<&KeyStamp>) -> Box<Deployed> {
        match inspect_judge(out, seen).unwrap() {
            Current::Present(d) => d,
            c => panic!("{c:?}"),
        }
    }

    /// The survey prints the first certificate of the file as it is and the key's public half,
    /// never a private key: not from a combined file, not from a file whose certificate block
    /// hides something else.
    #[test]
    fn the_survey_sends_certificates_and_never_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let (key, pem) = cert_and_key(dir.path(), "a");
        let (_, other) = cert_and_key(dir.path(), "b");
        let key_text = std::fs::read_to_string(&key).unwrap();
        let k = key.display().to_string();
        let file = dir.path().join("live.pem");
        let f = file.display().to_string();
        let present = |out: &crate::transport::Output| present(out, None);

        // Combined: the key first, then the certificate and another after it.
        std::fs::write(&file, format!("{key_text}{pem}{other}")).unwrap();
        let out = run(SCRIPT, &[&f, &k, ""]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(text.starts_with(&pem), "{text}");
        assert!(present(&out).key_matches);

        // CRLF line ends are read as openssl reads them.
        std::fs::write(&file, pem.replace('\n', "\r\n")).unwrap();
        assert!(present(&run(SCRIPT, &[&f, &k, ""])).key_matches);
        // Another certificate than the key's.
        std::fs::write(&file, &other).unwrap();
        assert!(!present(&run(SCRIPT, &[&f, &k, ""])).key_matches);

        // A certificate block with a key inside it: nothing of it leaves the host.
        let hidden = pem.replacen(
            "-----END CERTIFICATE-----",
            &format!("{key_text}-----END CERTIFICATE-----"),
            1,
        );
        std::fs::write(&file, hidden).unwrap();
        let out = run(SCRIPT, &[&f, &k, ""]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(
            !text.contains("PRIVATE") && !text.contains("BEGIN CERTIFICATE"),
            "{text}"
        );
        assert!(matches!(
            inspect_judge(&out, None).unwrap(),
            Current::Unreadable
        ));

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            inspect_judge(&run(SCRIPT, &[&f, &k, ""]), None).unwrap(),
            Current::Missing
        ));
    }

    /// The survey prints the files' stamp with a key it checked; given that stamp back while
    /// the files are unchanged it starts no openssl, and the key belongs to the certificate
    /// only if that is the one stamped. Any change to either file (rewritten with the same
    /// content, renamed over, chmod) makes it check the key again.
    #[test]
    fn an_unchanged_key_is_not_checked_again() {
        let dir = tempfile::tempdir().unwrap();
        let (key, pem) = cert_and_key(dir.path(), "a");
        let (other_key, _) = cert_and_key(dir.path(), "b");
        let key_text = std::fs::read(&key).unwrap();
        let file = dir.path().join("live.pem");
        std::fs::write(&file, &pem).unwrap();
        let (f, k) = (file.display().to_string(), key.display().to_string());

        let first = present(&run(SCRIPT, &[&f, &k, ""]), None);
        assert!(first.key_matches);
        let stamp = first.stamp.clone().expect("a stamp with a checked key");
        assert_eq!(stamp.lines().count(), 2, "{stamp}");
        let seen = KeyStamp {
            stamp: stamp.clone(),
            fingerprint: first.cert.fingerprint.clone(),
        };
        let out = run(SCRIPT, &[&f, &k, &stamp]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(
            text.ends_with("certorch:pubkey\ncertorch:keyseen\n"),
            "{text}"
        );
        let again = present(&out, Some(&seen));
        assert!(again.key_matches && again.stamp.is_none());
        // A stamp recorded for another certificate does not vouch for this one.
        let elsewhere = KeyStamp {
            stamp: stamp.clone(),
            fingerprint: "00".into(),
        };
        assert!(!present(&out, Some(&elsewhere)).key_matches);

        // Another key renamed over the key file: checked, and found not to belong.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let staged = dir.path().join("staged.key");
        std::fs::copy(&other_key, &staged).unwrap();
        std::fs::rename(&staged, &key).unwrap();
        let out = run(SCRIPT, &[&f, &k, &stamp]);
        let changed = present(&out, Some(&seen));
        assert!(!changed.key_matches);
        assert!(changed.stamp.is_some_and(|s| s != stamp));
        // The certificate file touched in place (same content): checked again.
        std::fs::write(&staged, &key_text).unwrap();
        std::fs::rename(&staged, &key).unwrap();
        let restamped = present(&run(SCRIPT, &[&f, &k, ""]), None).stamp.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, &pem).unwrap();
        let out = run(SCRIPT, &[&f, &k, &restamped]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(!text.contains("certorch:keyseen"), "{text}");
        assert!(present(&out, Some(&seen)).key_matches);
        // A chmod of the key changes its change time: checked again.
        let restamped = present(&run(SCRIPT, &[&f, &k, ""]), None).stamp.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let out = run(SCRIPT, &[&f, &k, &restamped]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(!text.contains("certorch:keyseen"), "{text}");
    }

    #[test]
    fn a_stamp_settles_a_minute_after_the_files_last_changed() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let line = |ctime: i64| format!("{ctime}|2049:12:227:2027-01-15 08:00:00.1 +0000:x");
        let both = |a: i64, b: i64| format!("{}\n{}", line(a), line(b));
        assert!(stamp_settled(&both(1_799_999_000, 1_799_999_940), now));
        assert!(!stamp_settled(&both(1_799_999_000, 1_799_999_941), now));
        assert!(!stamp_settled(&both(1_800_000_500, 1_799_999_000), now));
        assert!(!stamp_settled("", now));
        assert!(!stamp_settled("garbage", now));
    }

    /// The read-back passes when the file holds exactly what certorch wrote and the key is the
    /// certificate's, and fails, saying why, on any other content or key.
    #[test]
    fn the_readback_compares_what_certorch_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let (key, pem) = cert_and_key(dir.path(), "a");
        let (other_key, other) = cert_and_key(dir.path(), "b");
        let der = x509::pem_certificates(pem.as_bytes()).unwrap().remove(0);
        let spki = x509::cert_info(&der).unwrap().spki;
        let public = x509::public_key_pem(&spki);
        let leaf = x509::to_pem(&[der]);
        let full = format!("{leaf}{other}");
        let file = dir.path().join("live.pem");
        let f = file.display().to_string();
        let k = key.display().to_string();
        let leaf_arg = leaf.trim_end_matches('\n');

        std::fs::write(&file, &full).unwrap();
        let ok = run(LIVE_IS, &[&f, &k, &full, leaf_arg, &public]);
        assert!(live_is_judge(&ok).is_ok(), "{ok:?}");
        // One byte more is another file.
        std::fs::write(&file, format!("{full}\n")).unwrap();
        let out = run(LIVE_IS, &[&f, &k, &full, leaf_arg, &public]);
        assert_eq!(out.code, Some(1));
        assert!(out.stderr.contains("holds another certificate"), "{out:?}");
        // A combined file: its first certificate is compared.
        let key_text = std::fs::read_to_string(&key).unwrap();
        std::fs::write(&file, format!("{key_text}{full}")).unwrap();
        assert!(live_is_judge(&run(LIVE_IS, &[&f, &k, "", leaf_arg, &public])).is_ok());
        std::fs::write(&file, format!("{key_text}{other}")).unwrap();
        assert!(live_is_judge(&run(LIVE_IS, &[&f, &k, "", leaf_arg, &public])).is_err());
        // The right certificate beside another key.
        std::fs::write(&file, &full).unwrap();
        let ok_other = other_key.display().to_string();
        let out = run(LIVE_IS, &[&f, &ok_other, &full, leaf_arg, &public]);
        assert_eq!(out.code, Some(1));
        assert!(out.stderr.contains("does not belong"), "{out:?}");
        // No file.
        std::fs::remove_file(&file).unwrap();
        let out = run(LIVE_IS, &[&f, &k, &full, leaf_arg, &public]);
        assert!(out.stderr.contains("no readable certificate"), "{out:?}");
    }
}
