//! What is deployed on a host now: the certificate in the configured file and whether the live
//! key belongs to it. Only public material crosses the wire: the host prints the first
//! certificate of the file and the public half of the key.

use super::Error;
use super::sh::Cmd;
use crate::inventory::CertSpec;
use crate::transport::Transport;
use crate::x509::{self, CertInfo};

/// `$1` the certificate file, `$2` the key file. `openssl x509` prints only the first
/// certificate, so a combined key+cert PEM never sends its key; `pkey -pubout` prints only the
/// public key.
const SCRIPT: &str = r#"set -u
if [ ! -e "$1" ]; then echo certorch:nocert; exit 0; fi
openssl x509 -in "$1" 2>/dev/null || echo certorch:badcert
echo certorch:pubkey
if [ ! -e "$2" ]; then echo certorch:nokey; exit 0; fi
openssl pkey -in "$2" -pubout 2>/dev/null || echo certorch:badkey
"#;

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

/// `$1` the certificate file, `$2` the key file, `$3` the certificate that should be live
/// (PEM). Exits 1 and says why unless the first certificate in `$1` is `$3` and the key in `$2`
/// is its key: the read-back after a commit, on the host, so that a batch stops before the
/// service's check and reload when the files are not what was written. Both sides go through
/// `openssl x509`, so the same certificate prints the same text.
const LIVE_IS: &str = r#"set -u
want=$(printf '%s' "$3" | openssl x509 2>/dev/null) || { echo "openssl cannot read the new certificate" >&2; exit 2; }
have=$(openssl x509 -in "$1" 2>/dev/null) || { echo "$1 holds no readable certificate" >&2; exit 1; }
[ "$have" = "$want" ] || { echo "$1 holds another certificate" >&2; exit 1; }
a=$(openssl pkey -in "$2" -pubout 2>/dev/null) || { echo "$2 holds no readable key" >&2; exit 1; }
b=$(openssl x509 -in "$1" -noout -pubkey) || exit 1
[ "$a" = "$b" ] || { echo "the key in $2 does not belong to the certificate in $1" >&2; exit 1; }
"#;

/// The command that checks on the host that `spec`'s live files hold `leaf_pem` and its key.
pub fn live_is_cmd(spec: &CertSpec, leaf_pem: &str) -> Cmd {
    Cmd::script(LIVE_IS, "certorch-readback")
        .arg(spec.inspect_path().as_str())
        .arg(spec.key.as_str())
        .arg(leaf_pem)
}

/// What [`live_is_cmd`]'s `out` means.
pub fn live_is_judge(out: &crate::transport::Output) -> Result<(), Error> {
    super::judge(out, "reading back the new certificate", || {
        "another process may have changed the files at the same time; check the paths and run certorch again".into()
    })
}
