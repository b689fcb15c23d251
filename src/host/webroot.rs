//! http-01 tokens in a host's webroot (RFC 8555 §8.3): each file
//! `<webroot>/.well-known/acme-challenge/<token>` holds the key authorization, readable by the
//! web server, and is removed after validation.

use super::Error;
use super::sh::Cmd;
use crate::inventory::RemotePath;
use crate::transport::Transport;

/// `$1` webroot, then token/content pairs.
const PLACE: &str = r#"set -eu
dir=$1/.well-known/acme-challenge
shift
(umask 022 && mkdir -p -- "$dir")
tmp=
trap '[ -z "$tmp" ] || rm -f -- "$tmp"' EXIT
while [ $# -ge 2 ]; do
  # mktemp: a name nobody can guess or pre-create as a link for root to write through.
  tmp=$(mktemp "$dir/.certorch.XXXXXXXXXX")
  printf '%s' "$2" > "$tmp"
  chmod 0644 -- "$tmp"
  mv -f -- "$tmp" "$dir/$1"
  shift 2
done
"#;

/// `$1` webroot, then tokens.
const REMOVE: &str = r#"dir=$1/.well-known/acme-challenge
shift
for t in "$@"; do rm -f -- "$dir/$t"; done
"#;

/// A token is base64url (RFC 8555 §8.1); anything else from the CA is refused before it
/// becomes a file name.
fn valid_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Writes each (token, key authorization) into the webroot.
pub async fn place(
    t: &dyn Transport,
    webroot: &RemotePath,
    tokens: &[(String, String)],
) -> Result<(), Error> {
    if let Some((bad, _)) = tokens
        .iter()
        .find(|(tok, auth)| !valid_token(tok) || !auth.starts_with(tok.as_str()))
    {
        return Err(Error::Rejected {
            step: "placing http-01 tokens",
            reason: format!("the CA sent a token that is not base64url: {bad:?}"),
            hint: "report this to the CA; certorch writes no such file".into(),
        });
    }
    let mut cmd = Cmd::script(PLACE, "certorch-http01").arg(webroot.as_str());
    for (tok, auth) in tokens {
        cmd = cmd.arg(tok.clone()).arg(auth.clone());
    }
    super::run_ok(t, &cmd, "placing http-01 tokens", || format!(
                "check that {webroot} exists and is writable by the login user, and that the web server serves it on port 80"
            )).await
}

/// Removes the tokens again. A token left behind is public and harmless, so a failure is a
/// warning for the caller to pass on.
pub async fn remove(
    t: &dyn Transport,
    webroot: &RemotePath,
    tokens: &[String],
) -> Result<(), Error> {
    let cmd = Cmd::script(REMOVE, "certorch-http01-clean")
        .arg(webroot.as_str())
        .args(tokens.iter().filter(|t| valid_token(t)).cloned());
    super::run_ok(t, &cmd, "removing the http-01 tokens", || {
        "remove them from the webroot's .well-known/acme-challenge by hand".into()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::valid_token;

    #[test]
    fn tokens_are_base64url_only() {
        assert!(valid_token("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"));
        for bad in ["", "../etc/passwd", "a/b", "a b", "$(id)", "a.b"] {
            assert!(!valid_token(bad), "{bad}");
        }
    }
}
