//! What every error that can fail a certificate tells the operator and the machines reading
//! `--json`: a stable [`Kind`] and the next step (the hint). Each module's error type
//! implements [`Problem`], so the kind and the hint come from the type, never from searching the
//! message text.

use serde::Serialize;

/// The stable, machine-readable kind of a failure (`--json`'s `kind`, notifications). Listed in
/// docs/json.md; a kind is only ever added, never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Kind {
    #[serde(rename = "ssh.unreachable")]
    SshUnreachable,
    #[serde(rename = "ssh.host_key_changed")]
    SshHostKeyChanged,
    #[serde(rename = "ssh.auth_refused")]
    SshAuthRefused,
    #[serde(rename = "ssh.connect_failed")]
    SshConnectFailed,
    #[serde(rename = "ssh.connection_lost")]
    SshConnectionLost,
    #[serde(rename = "ssh.timeout")]
    SshTimeout,
    #[serde(rename = "ssh.become_refused")]
    SshBecomeRefused,
    #[serde(rename = "host.command_failed")]
    HostCommandFailed,
    #[serde(rename = "host.rejected")]
    HostRejected,
    #[serde(rename = "host.check_failed")]
    HostCheckFailed,
    #[serde(rename = "host.reload_failed")]
    HostReloadFailed,
    #[serde(rename = "host.verify_failed")]
    HostVerifyFailed,
    #[serde(rename = "host.readback_failed")]
    HostReadbackFailed,
    #[serde(rename = "host.write_failed")]
    HostWriteFailed,
    #[serde(rename = "host.command_missing")]
    HostCommandMissing,
    #[serde(rename = "dns.cname_missing")]
    DnsCnameMissing,
    #[serde(rename = "dns.cname_outside")]
    DnsCnameOutside,
    #[serde(rename = "dns.cname_wildcard")]
    DnsCnameWildcard,
    #[serde(rename = "dns.cname_loop")]
    DnsCnameLoop,
    #[serde(rename = "dns.tsig_refused")]
    DnsTsigRefused,
    #[serde(rename = "dns.update_refused")]
    DnsUpdateRefused,
    #[serde(rename = "dns.unreachable")]
    DnsUnreachable,
    #[serde(rename = "dns.lookup_failed")]
    DnsLookupFailed,
    #[serde(rename = "dns.not_propagated")]
    DnsNotPropagated,
    #[serde(rename = "dns.publish_failed")]
    DnsPublishFailed,
    #[serde(rename = "dns.api_refused")]
    DnsApiRefused,
    #[serde(rename = "dns.config")]
    DnsConfig,
    #[serde(rename = "dns.caa_forbids")]
    DnsCaaForbids,
    #[serde(rename = "ca.rate_limited")]
    CaRateLimited,
    #[serde(rename = "ca.unauthorized")]
    CaUnauthorized,
    #[serde(rename = "ca.refused")]
    CaRefused,
    #[serde(rename = "ca.unreachable")]
    CaUnreachable,
    #[serde(rename = "ca.bad_chain")]
    CaBadChain,
    #[serde(rename = "ca.account")]
    CaAccount,
    #[serde(rename = "ca.unavailable")]
    CaUnavailable,
    #[serde(rename = "issuer.failed")]
    IssuerFailed,
    #[serde(rename = "group.origin_failed")]
    GroupOriginFailed,
    #[serde(rename = "state.write_failed")]
    StateWriteFailed,
    #[serde(rename = "state.read_failed")]
    StateReadFailed,
    #[serde(rename = "state.corrupt")]
    StateCorrupt,
    #[serde(rename = "state.tls_failed")]
    StateTlsFailed,
    #[serde(rename = "run.setup_failed")]
    RunSetupFailed,
}

impl Kind {
    /// The host went away in the middle of a command (the connection broke, or the command
    /// outlived `ssh.command_timeout`): how far the command got on the host is not known, and
    /// it may still be running there.
    pub fn host_went_away(self) -> bool {
        matches!(self, Kind::SshConnectionLost | Kind::SshTimeout)
    }

    /// Every kind, for docs/json.md's list and its test.
    #[cfg(test)]
    pub const ALL: &'static [Kind] = &[
        Kind::SshUnreachable,
        Kind::SshHostKeyChanged,
        Kind::SshAuthRefused,
        Kind::SshConnectFailed,
        Kind::SshConnectionLost,
        Kind::SshTimeout,
        Kind::SshBecomeRefused,
        Kind::HostCommandFailed,
        Kind::HostRejected,
        Kind::HostCheckFailed,
        Kind::HostReloadFailed,
        Kind::HostVerifyFailed,
        Kind::HostReadbackFailed,
        Kind::HostWriteFailed,
        Kind::HostCommandMissing,
        Kind::DnsCnameMissing,
        Kind::DnsCnameOutside,
        Kind::DnsCnameWildcard,
        Kind::DnsCnameLoop,
        Kind::DnsTsigRefused,
        Kind::DnsUpdateRefused,
        Kind::DnsUnreachable,
        Kind::DnsLookupFailed,
        Kind::DnsNotPropagated,
        Kind::DnsPublishFailed,
        Kind::DnsApiRefused,
        Kind::DnsConfig,
        Kind::DnsCaaForbids,
        Kind::CaRateLimited,
        Kind::CaUnauthorized,
        Kind::CaRefused,
        Kind::CaUnreachable,
        Kind::CaBadChain,
        Kind::CaAccount,
        Kind::CaUnavailable,
        Kind::IssuerFailed,
        Kind::GroupOriginFailed,
        Kind::StateWriteFailed,
        Kind::StateReadFailed,
        Kind::StateCorrupt,
        Kind::StateTlsFailed,
        Kind::RunSetupFailed,
    ];
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => f.write_str("unknown"),
        }
    }
}

/// An error that can fail a certificate: its message (Display), its kind and the next step.
pub trait Problem: std::fmt::Display {
    fn kind(&self) -> Kind;
    fn hint(&self) -> Option<String>;
}

/// A failure described where it happens, for errors that have no type of their own (a
/// certificate the host did not take back, a group whose origin failed).
#[derive(Debug, Clone)]
pub struct Plain {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

impl Plain {
    pub fn new(kind: Kind, message: impl Into<String>, hint: impl Into<String>) -> Plain {
        Plain {
            kind,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }
}

impl std::fmt::Display for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Problem for Plain {
    fn kind(&self) -> Kind {
        self.kind
    }
    fn hint(&self) -> Option<String> {
        self.hint.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_dotted_name_listed_in_docs() {
        let docs = include_str!("../docs/json.md");
        let mut seen = std::collections::BTreeSet::new();
        for k in Kind::ALL {
            let name = k.to_string();
            assert!(name.contains('.'), "{name}");
            assert!(seen.insert(name.clone()), "{name} twice");
            assert!(
                docs.contains(&format!("`{name}`")),
                "docs/json.md lacks `{name}`"
            );
        }
    }
}
