//! `issuer: self-signed`: the host signs its own staged key; only the certificate comes back.

use super::Error;
use super::sh::Cmd;
use crate::inventory::CertSpec;
use crate::transport::Transport;
use crate::x509::{self, CertInfo};

/// `$1` staged key, `$2` subject, `$3` subjectAltName value, `$4` days. Prints the certificate.
const SELF_SIGN: &str = r#"set -eu
openssl req -x509 -new -key "$1" -subj "$2" -addext "subjectAltName=$3" -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=serverAuth" -days "$4" -outform PEM
"#;

const HINT: &str = "check that openssl 1.1.1 or later is installed on the host";

/// Has the host sign its staged key for `spec`; checks the certificate is for `spki`.
pub async fn self_sign(
    t: &dyn Transport,
    spec: &CertSpec,
    spki: &[u8],
) -> Result<(CertInfo, Vec<Vec<u8>>), Error> {
    let (subject, san) = super::keygen::subject_and_san(spec);
    let days = spec.validity.as_secs().div_ceil(86400).max(1);
    let cmd = Cmd::script(SELF_SIGN, "certorch-self-sign")
        .arg(super::staged(&spec.key))
        .arg(subject)
        .arg(san)
        .arg(days.to_string());
    let out = t.run(&cmd, None).await?;
    if !out.success() {
        return Err(Error::failed("self-signing", &out, HINT));
    }
    let rejected = |reason: String| Error::Rejected {
        step: "reading the self-signed certificate",
        reason,
        hint: HINT.into(),
    };
    let der = x509::pem_certificates(&out.stdout)
        .map_err(rejected)?
        .into_iter()
        .next()
        .ok_or_else(|| rejected("the host printed no certificate".into()))?;
    let leaf = x509::cert_info(&der).map_err(rejected)?;
    if leaf.spki != spki {
        return Err(rejected(
            "the self-signed certificate is not for the staged key".into(),
        ));
    }
    Ok((leaf, vec![der]))
}
