//! Serde structs that mirror the inventory YAML one to one. Values that have a meaning (names,
//! paths, modes) are parsed into their validated types here, so a bad value is reported with
//! the line and column where it stands. Defaults are applied in `model.rs`, not here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::types::{
    AccountName, DnsName, FileMode, KeyType, Port, RemotePath, RenewPolicy, Span, Timeout,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    pub acme: RawAcme,
    #[serde(default)]
    pub internal_ca: RawInternalCa,
    pub notify: Option<Spanned<RawNotify>>,
    /// Where `run --dry-run` writes on hosts instead of the live paths.
    pub dry_run_root: Option<RemotePath>,
    pub dns: RawDns,
    #[serde(default)]
    pub ssh: RawSsh,
    #[serde(default)]
    pub concurrency: Option<Spanned<usize>>,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub hosts: BTreeMap<String, Spanned<RawHost>>,
    #[serde(default)]
    pub groups: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    /// Certificate labels served by several hosts with one key (generated on the first).
    #[serde(default)]
    pub shared: BTreeMap<String, Spanned<RawShared>>,
    /// A directory of the operator's playbooks (`NAME.yaml`), overriding the built-in ones.
    pub playbooks: Option<PathBuf>,
    /// Where the state lives: a directory, or a `postgresql://` URL (--state wins).
    pub state: Option<Spanned<String>>,
}

/// One key and certificate for several hosts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShared {
    /// The members; the key is made on the first one that is reachable.
    pub hosts: Vec<Spanned<String>>,
    pub cert: Spanned<RawCert>,
}

/// A command as one shell line or as a list (program, arguments).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawCommand {
    Shell(String),
    Argv(Vec<String>),
}

/// A deploy playbook: what a kind of service reads and how to check, reload and verify it.
/// Every field is a default a certificate's own setting overrides.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlaybook {
    pub description: String,
    pub key: Option<RemotePath>,
    pub cert: Option<RemotePath>,
    pub chain: Option<RemotePath>,
    pub fullchain: Option<RemotePath>,
    pub combined: Option<RemotePath>,
    pub pkcs12: Option<RemotePath>,
    pub keystore: Option<RemotePath>,
    pub store_password_file: Option<RemotePath>,
    pub owner: Option<AccountName>,
    pub group: Option<AccountName>,
    pub mode: Option<FileMode>,
    pub key_mode: Option<FileMode>,
    pub check: Option<Spanned<RawCommand>>,
    pub reload: Option<Spanned<RawCommand>>,
    pub verify_port: Option<Port>,
    pub verify_starttls: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    pub directory: Spanned<String>,
    #[serde(default)]
    pub contact: Vec<Spanned<String>>,
    pub trust_root: Option<PathBuf>,
    pub eab: Option<Spanned<RawEab>>,
    /// The CA `run --dry-run` uses.
    pub staging: Option<Spanned<String>>,
    /// PEM files of intermediates whose certificates count as this CA's (migration from
    /// certbot or acme.sh).
    #[serde(default)]
    pub adopt_issuers: Vec<Spanned<PathBuf>>,
    /// The CA's CAA identities (RFC 8659), when its directory advertises none.
    #[serde(default)]
    pub caa_identities: Vec<Spanned<String>>,
    /// The issuer common name of the chain to prefer among the CA's alternates.
    pub preferred_chain: Option<Spanned<String>>,
    /// The CA's rate limits, when not Let's Encrypt's (or a share of an account's budget).
    pub limits: Option<RawLimits>,
}

/// `acme.limits`: the budgets new orders are scheduled within.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub orders_per_window: Option<Spanned<u64>>,
    pub orders_window: Option<Timeout>,
    pub certs_per_domain_per_week: Option<Spanned<u64>>,
    pub duplicates_per_week: Option<Spanned<u64>>,
}

/// External account binding (RFC 8555 §7.3.4), for CAs that require it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEab {
    pub kid: String,
    pub hmac_key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    pub signing_zone: DnsName,
    pub resolver: Option<Spanned<String>>,
    pub ttl: Option<Spanned<u32>>,
    pub max_rrset_bytes: Option<Spanned<u64>>,
    pub propagation_timeout: Option<Timeout>,
    pub rfc2136: Option<Spanned<RawRfc2136>>,
    pub exec: Option<Spanned<RawExecPublisher>>,
    pub zonefile: Option<Spanned<RawZoneFile>>,
    pub powerdns: Option<Spanned<crate::dns::publisher::powerdns::RawPowerDns>>,
    pub route53: Option<Spanned<RawRoute53>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRfc2136 {
    pub server: Spanned<String>,
    pub key_name: Option<String>,
    pub algorithm: Option<Spanned<String>>,
    pub secret_file: Option<PathBuf>,
    pub secret_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub config: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    pub connect_timeout: Option<Timeout>,
    /// `openssh` (the default) or `russh`.
    pub transport: Option<Spanned<String>>,
    /// How long one remote command may take.
    pub command_timeout: Option<Timeout>,
    /// russh: SSH handshakes in flight at once, across the process.
    pub max_handshakes: Option<Spanned<usize>>,
    /// russh: the key exchange algorithms to offer, in order.
    pub kex: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Settings every host and certificate inherits unless it sets its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub user: Option<AccountName>,
    pub port: Option<Port>,
    pub key_type: Option<KeyType>,
    pub renew_before: Option<RenewPolicy>,
    pub owner: Option<AccountName>,
    pub group: Option<AccountName>,
    pub mode: Option<FileMode>,
    pub key_mode: Option<FileMode>,
    pub reload: Option<Spanned<RawCommand>>,
    pub profile: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub validity: Option<Span>,
    pub challenge: Option<Spanned<String>>,
    pub webroot: Option<RemotePath>,
    pub check: Option<Spanned<RawCommand>>,
    pub verify_port: Option<Port>,
    pub verify_starttls: Option<Spanned<String>>,
    pub playbook: Option<Spanned<String>>,
    pub reuse_key: Option<bool>,
    pub keep_previous_key: Option<bool>,
    pub add_host_name: Option<bool>,
    #[serde(rename = "become")]
    pub become_via: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    pub address: Option<Spanned<String>>,
    pub port: Option<Port>,
    pub user: Option<AccountName>,
    /// `sudo` or `doas`: run certorch's steps as root from a non-root login.
    #[serde(rename = "become")]
    pub become_via: Option<Spanned<String>>,
    /// Overrides `ssh.transport` for this host.
    pub transport: Option<Spanned<String>>,
    #[serde(default)]
    pub certs: BTreeMap<String, Spanned<RawCert>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCert {
    pub names: Spanned<Vec<DnsName>>,
    pub key_type: Option<KeyType>,
    pub playbook: Option<Spanned<String>>,
    pub key: Option<RemotePath>,
    pub cert: Option<RemotePath>,
    pub chain: Option<RemotePath>,
    pub fullchain: Option<RemotePath>,
    pub combined: Option<RemotePath>,
    /// A PKCS#12 bundle (key + full chain) built on the host.
    pub pkcs12: Option<RemotePath>,
    /// A Java keystore (JKS) built on the host.
    pub keystore: Option<RemotePath>,
    /// A file on the host with the PKCS#12 / keystore password.
    pub store_password_file: Option<RemotePath>,
    pub owner: Option<AccountName>,
    pub group: Option<AccountName>,
    pub mode: Option<FileMode>,
    pub key_mode: Option<FileMode>,
    pub reload: Option<Spanned<RawCommand>>,
    pub renew_before: Option<RenewPolicy>,
    pub profile: Option<Spanned<String>>,
    pub issuer: Option<Spanned<String>>,
    pub validity: Option<Span>,
    pub challenge: Option<Spanned<String>>,
    pub webroot: Option<RemotePath>,
    pub check: Option<Spanned<RawCommand>>,
    pub verify_port: Option<Port>,
    pub verify_starttls: Option<Spanned<String>>,
    /// Keep the live key across renewals (for pinned keys).
    pub reuse_key: Option<bool>,
    /// Keep the replaced key as `<key>.certorch-prev` after the new certificate is verified.
    pub keep_previous_key: Option<bool>,
    /// Add the host's own name to the certificate's names (load-balanced names on several
    /// hosts, each with its own key, stay distinct name sets).
    pub add_host_name: Option<bool>,
}

/// Who to tell about failures (and issuances).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub on: Option<Spanned<String>>,
    pub webhook: Option<Spanned<String>>,
    pub exec: Option<Vec<String>>,
}

/// The bastion's own small CA for `issuer: internal`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInternalCa {
    /// Where hosts with internal certificates get the CA certificate (their trust store).
    pub trust_path: Option<RemotePath>,
}

/// An operator's script that publishes the whole batch (JSON on stdin).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExecPublisher {
    pub command: Vec<String>,
}

/// certorch owns the signing zone's file on a DNS host reached over SSH.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZoneFile {
    /// The DNS host's name (for messages, and the SSH destination unless `address` is set).
    pub host: String,
    pub address: Option<String>,
    pub port: Option<Port>,
    pub user: Option<AccountName>,
    /// The zone file on that host.
    pub path: RemotePath,
    /// A file on the bastion: the zone's fixed part (SOA with `{serial}`, NS records).
    pub template: PathBuf,
    /// Run on the DNS host after each rewrite, e.g. `rndc reload acme.example.net`.
    pub reload: String,
    /// Where the new serial must be served before certorch goes on (ip[:port]).
    pub server: Spanned<String>,
}

/// A Route 53 hosted zone, updated through its API (validated in
/// `dns::publisher::route53::config`, which owns the defaults).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute53 {
    pub hosted_zone_id: Spanned<String>,
    /// Default `https://route53.amazonaws.com`; a test server's URL (moto).
    pub endpoint: Option<Spanned<String>>,
    /// Default `us-east-1`, where Route 53 requests are signed.
    pub region: Option<Spanned<String>>,
    /// The variable holding the access key id; without the three, `AWS_*` variables.
    pub access_key_id_env: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    pub secret_access_key_env: Option<String>,
}
