//! What is deployed on a host now: the certificate in the configured file and whether the live
//! key belongs to it. Only public material crosses the wire: the host prints the first
//! certificate of the file and the public half of the key.

use super::Error;
use super::sh::Cmd;
use crate::inventory::CertSpec;
use crate::transport::Transport;
use crate::x509::{self, CertInfo};

/// `$1` the certificate file, `$2` the key file. The shell prints only the first certificate
/// block of the file (the bastion parses it), so a combined key+cert PEM never sends its key
/// and no program starts for it; `pkey -pubout` prints only the public key.
const SCRIPT: &str = concat!(
    super::sh_read!(),
    r#"set -u
if [ ! -e "$1" ]; then echo certorch:nocert; exit 0; fi
if certorch_first_cert "$1"; then printf '%s\n' "$cs_pem"; else echo certorch:badcert; fi
echo certorch:pubkey
if [ ! -e "$2" ]; then echo certorch:nokey; exit 0; fi
openssl pkey -in "$2" -pubout 2>/dev/null || echo certorch:badkey
"#
);

/// The certificate a host serves from the configured path.
#[derive(Debug, Clone)]
pub struct Deployed {
    pub cert: CertInfo,
    /// The live key's public half equals the certificate's.
    pub key_matches: bool,
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

/// Reads what is deployed for `spec`.
pub async fn inspect(t: &dyn Transport, spec: &CertSpec) -> Result<Current, Error> {
    let out = t.run(&inspect_cmd(spec), None).await?;
    inspect_judge(&out)
}

/// The command of [`inspect`].
pub fn inspect_cmd(spec: &CertSpec) -> Cmd {
    Cmd::script(SCRIPT, "certorch-inspect")
        .arg(spec.inspect_path().as_str())
        .arg(spec.key.as_str())
}

/// What [`inspect`]'s command `out` says is deployed.
pub fn inspect_judge(out: &crate::transport::Output) -> Result<Current, Error> {
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
    let key_matches =
        x509::pem_public_key(key_part.as_bytes()).is_some_and(|spki| spki == cert.spki);
    Ok(Current::Present(Box::new(Deployed { cert, key_matches })))
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
        let present = |out: &crate::transport::Output| match inspect_judge(out).unwrap() {
            Current::Present(d) => d,
            c => panic!("{c:?}"),
        };

        // Combined: the key first, then the certificate and another after it.
        std::fs::write(&file, format!("{key_text}{pem}{other}")).unwrap();
        let out = run(SCRIPT, &[&f, &k]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(!text.contains("PRIVATE"), "{text}");
        assert!(text.starts_with(&pem), "{text}");
        assert!(present(&out).key_matches);

        // CRLF line ends are read as openssl reads them.
        std::fs::write(&file, pem.replace('\n', "\r\n")).unwrap();
        assert!(present(&run(SCRIPT, &[&f, &k])).key_matches);
        // Another certificate than the key's.
        std::fs::write(&file, &other).unwrap();
        assert!(!present(&run(SCRIPT, &[&f, &k])).key_matches);

        // A certificate block with a key inside it: nothing of it leaves the host.
        let hidden = pem.replacen(
            "-----END CERTIFICATE-----",
            &format!("{key_text}-----END CERTIFICATE-----"),
            1,
        );
        std::fs::write(&file, hidden).unwrap();
        let out = run(SCRIPT, &[&f, &k]);
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert!(
            !text.contains("PRIVATE") && !text.contains("BEGIN CERTIFICATE"),
            "{text}"
        );
        assert!(matches!(inspect_judge(&out).unwrap(), Current::Unreadable));

        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            inspect_judge(&run(SCRIPT, &[&f, &k])).unwrap(),
            Current::Missing
        ));
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
