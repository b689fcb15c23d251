//! The host makes its own private key and CSR. The key is created under a temporary name (see
//! [`super::sh_open_tmp`]) with mode 0600 from its first byte (umask 077), then renamed to
//! `<key>.certorch-new`, where it waits until its certificate arrives; the live key is
//! untouched until then. Only the CSR is printed.

use super::sh::Cmd;
use super::{Error, STAGED};
use crate::inventory::{CertSpec, KeyType};
use crate::transport::Transport;
use crate::x509::{self, CheckedCsr};

/// `$1` key path, `$2` algorithm, `$3` pkeyopt, `$4` subject, `$5` subjectAltName value,
/// `$6` key mode, `$7` owner, `$8` group, `$9` staged suffix, `${10}` 1 to keep the live key
/// (`reuse_key`): it is copied to the staged name, so the rest of the path is the same.
/// One `openssl req -newkey` makes the key and its CSR. Exits 127 (the shell's "not found")
/// before anything is written when openssl is missing.
const SCRIPT: &str = concat!(
    "set -eu\ndst=$1 staged=$1$9 mode=$6 owner=$7 group=$8\n",
    "command -v openssl >/dev/null 2>&1 || { echo \"openssl: not found (PATH=$PATH)\" >&2; exit 127; }\n",
    super::sh_open_tmp!(),
    "if [ \"${10}\" = 1 ] && [ -f \"$dst\" ]; then\n",
    "cat -- \"$dst\" > \"$tmp\"\n",
    super::sh_install_tmp!(),
    "openssl req -new -key \"$staged\" -subj \"$4\" -addext \"subjectAltName=$5\" -outform PEM\n",
    "else\n",
    "openssl req -new -newkey \"$2\" -pkeyopt \"$3\" -nodes -keyout \"$tmp\" -subj \"$4\" -addext \"subjectAltName=$5\" -outform PEM\n",
    super::sh_install_tmp!(),
    "fi\n",
);

fn genpkey_args(k: KeyType) -> (&'static str, &'static str) {
    match k {
        KeyType::EcdsaP256 => ("EC", "ec_paramgen_curve:P-256"),
        KeyType::EcdsaP384 => ("EC", "ec_paramgen_curve:P-384"),
        KeyType::Rsa2048 => ("RSA", "rsa_keygen_bits:2048"),
        KeyType::Rsa3072 => ("RSA", "rsa_keygen_bits:3072"),
        KeyType::Rsa4096 => ("RSA", "rsa_keygen_bits:4096"),
    }
}

/// The `-subj` and `subjectAltName` arguments openssl gets for `spec`'s names.
pub fn subject_and_san(spec: &CertSpec) -> (String, String) {
    // The CN is limited to 64 characters (RFC 5280 ub-common-name); CAs take the names from
    // the SAN extension anyway, so an empty subject is fine for longer first names.
    let first = spec.names[0].as_str();
    let subject = if first.len() <= 64 {
        format!("/CN={first}")
    } else {
        "/".to_string()
    };
    let san: Vec<String> = spec.names.iter().map(|n| format!("DNS:{n}")).collect();
    (subject, san.join(","))
}

/// Has the host generate a fresh key for `spec` and return its CSR, checked against the
/// inventory (names, key type, signature); `host` names the host in the hint.
pub async fn make_key_and_csr(
    t: &dyn Transport,
    spec: &CertSpec,
    host: &str,
) -> Result<CheckedCsr, Error> {
    let (alg, opt) = genpkey_args(spec.key_type);
    let (subject, san) = subject_and_san(spec);
    let cmd = Cmd::script(SCRIPT, "certorch-keygen")
        .arg(spec.key.as_str())
        .arg(alg)
        .arg(opt)
        .arg(subject)
        .arg(san)
        .arg(spec.key_mode.octal())
        .arg(spec.owner.as_ref().map_or("", |o| o.as_str()))
        .arg(spec.group.as_ref().map_or("", |g| g.as_str()))
        .arg(STAGED)
        .arg(if spec.reuse_key { "1" } else { "0" });
    let out = t.run(&cmd, None).await?;
    if out.code == Some(127) {
        return Err(Error::Missing {
            step: "generating the key and CSR",
            reason: out.stderr_tail(),
            hint: format!(
                "install openssl on {host} (1.1.1 or later; Debian: apt install openssl, RHEL: dnf install openssl), or put it on the login user's PATH there; nothing was written or ordered for it"
            ),
        });
    }
    if !out.success() {
        return Err(Error::failed(
            "generating the key and CSR",
            &out,
            format!(
                "check that openssl (1.1.1 or later) is installed on the host and {} is writable by the login user",
                spec.key
            ),
        ));
    }
    x509::check_csr(&out.stdout, &spec.names, spec.key_type).map_err(|reason| Error::Rejected {
        step: "checking the host's CSR",
        reason,
        hint: if spec.reuse_key {
            format!("reuse_key keeps the key at {}; if its type is not {}, set reuse_key: false for one run to make a new key", spec.key, spec.key_type.as_str())
        } else {
            "the host's openssl produced an unexpected request; check its version and configuration (openssl version -a) before running again".to_string()
        },
    })
}

/// `$1` the staged key. Prints its public half, or nothing when there is none.
const STAGED_PUBLIC: &str = r#"set -u
if [ -f "$1" ]; then openssl pkey -in "$1" -pubout 2>/dev/null || true; fi
"#;

/// The public key (SPKI DER) of the key staged for `spec`, if one is staged: an interrupted
/// run's key is used again when it still matches the CSR it recorded.
pub async fn staged_public_key(
    t: &dyn Transport,
    spec: &CertSpec,
) -> Result<Option<Vec<u8>>, Error> {
    let cmd = Cmd::script(STAGED_PUBLIC, "certorch-staged-key").arg(super::staged(&spec.key));
    let out = t.run(&cmd, None).await?;
    if !out.success() {
        return Err(Error::failed(
            "reading the staged key's public half",
            &out,
            "check that openssl is installed on the host",
        ));
    }
    Ok(x509::pem_public_key(&out.stdout))
}
