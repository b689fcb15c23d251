//! The validated inventory every later stage works from: defaults applied, references checked,
//! relative paths resolved against the inventory's directory.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::{Location, Spanned};

use super::Error;
use super::command::HostCommand;
use super::raw::{RawCert, RawCommand, RawInventory, RawPlaybook};
use super::types::{
    AccountName, DnsName, FileMode, KeyType, MAX_NAMES_PER_CERT, Port, RemotePath, RenewPolicy,
};

/// Let's Encrypt's production directory.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory: untrusted root, far higher limits.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// The whole validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Where it was read from.
    pub path: PathBuf,
    pub acme: AcmeConfig,
    pub dns: DnsConfig,
    pub ssh: SshConfig,
    /// How many hosts are worked on at once.
    pub concurrency: usize,
    /// Root on each host under which a dry run writes its files.
    pub dry_run_root: RemotePath,
    /// Where hosts with internal certificates get the internal CA's certificate.
    pub internal_ca_trust_path: Option<RemotePath>,
    pub notify: Option<NotifyConfig>,
    pub hosts: Vec<Host>,
    /// Group name → member host names, in inventory order.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Things to tell the operator that do not stop a run (a secret file others may read).
    pub warnings: Vec<String>,
    /// The operator's playbook directory, if any.
    pub playbooks: Option<PathBuf>,
    /// `state:`, a directory or a PostgreSQL database; --state and CERTORCH_STATE win.
    pub state: Option<crate::state::Location>,
    /// Host name → index in `hosts`: lookups by name in loops over hosts stay linear.
    by_name: std::collections::HashMap<String, usize>,
}

impl Inventory {
    /// The index in `hosts` of the host named `name`.
    pub fn host_index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.host_index(name).map(|i| &self.hosts[i])
    }

    /// Where `host`/`label` stands in the inventory (host index, certificate index), for
    /// putting results in inventory order; what the inventory does not name goes last.
    pub fn position(&self, host: &str, label: &str) -> (usize, usize) {
        match self.host_index(host) {
            Some(hi) => {
                let ci = self.hosts[hi].certs.iter().position(|s| s.label == label);
                (hi, ci.unwrap_or(usize::MAX))
            }
            None => (usize::MAX, usize::MAX),
        }
    }
}

/// How a non-root login becomes root for certorch's steps on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Become {
    Sudo,
    Doas,
}

impl Become {
    /// The words put before every command: non-interactive, so a missing rule fails at once
    /// instead of waiting for a password.
    pub fn prefix(self) -> &'static [&'static str] {
        match self {
            Become::Sudo => &["sudo", "-n", "--"],
            Become::Doas => &["doas", "-n", "--"],
        }
    }
}

/// A STARTTLS dialogue before the TLS handshake of `verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Starttls {
    Smtp,
    Imap,
}

/// How the CA checks control of the names (RFC 8555 §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// TXT records in the signing zone (the default).
    Dns01,
    /// A file under the host's webroot, served on port 80.
    Http01,
}

/// Who signs a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issuer {
    /// The inventory's ACME CA.
    Acme,
    /// The host signs its own key; no DNS, no CA.
    SelfSigned,
    /// The bastion's internal CA signs the host's CSR; no DNS, no rate limits.
    Internal,
}

/// When to notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOn {
    Failure,
    Always,
}

/// Notification channels.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub on: NotifyOn,
    /// An http(s) URL that takes a JSON POST.
    pub webhook: Option<String>,
    /// A command (argv, no shell) that reads the JSON on stdin.
    pub exec: Option<Vec<String>>,
}

/// Where and as whom certorch talks ACME.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    pub directory: String,
    pub contact: Vec<String>,
    /// An extra root certificate for the CA's own TLS (Pebble, an internal CA).
    pub trust_root: Option<PathBuf>,
    /// External account binding for CAs that require it.
    pub eab: Option<Eab>,
    /// The CA for dry runs: `acme.staging`, or Let's Encrypt's staging for Let's Encrypt.
    pub staging: Option<String>,
    /// Intermediates from `acme.adopt_issuers`: certificates they signed count as this CA's
    /// and are kept until due, instead of all reissued at once.
    pub adopt_issuers: Vec<crate::x509::IssuerCert>,
    /// The domains the CA recognizes in CAA `issue` properties (RFC 8659 §4.2), from
    /// `acme.caa_identities`; empty: the directory's `meta.caaIdentities` is used.
    pub caa_identities: Vec<String>,
    /// `acme.preferred_chain`: the issuer common name of the chain to deploy when the CA offers
    /// alternates (RFC 8555 §7.4.2).
    pub preferred_chain: Option<String>,
    /// `acme.limits`, or Let's Encrypt's: the budgets new orders are scheduled within.
    pub limits: crate::limits::CaLimits,
}

/// External account binding: the CA's key id and HMAC key (RFC 8555 §7.3.4).
#[derive(Debug, Clone)]
pub struct Eab {
    pub kid: String,
    pub hmac_key: crate::secret::Secret<Vec<u8>>,
}

/// The signing zone and how to update it.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub signing_zone: DnsName,
    /// The recursive resolver used to follow `_acme-challenge` CNAMEs and find the signing
    /// zone's name servers; `None` means the first one in /etc/resolv.conf.
    pub resolver: Option<SocketAddr>,
    pub ttl: u32,
    /// The largest answer one TXT RRset may make; larger sets are validated in rounds.
    pub max_rrset_bytes: usize,
    pub propagation_timeout: Duration,
    pub publisher: PublisherConfig,
}

/// How TXT records get into the signing zone.
#[derive(Debug, Clone)]
pub enum PublisherConfig {
    /// RFC 2136 dynamic updates signed with TSIG.
    Rfc2136(Rfc2136Config),
    /// An operator's command (argv, no shell) that gets the batch as JSON on stdin.
    Exec { command: Vec<String> },
    /// certorch rewrites the signing zone's file on a DNS host over SSH.
    ZoneFile(ZoneFileConfig),
    /// PowerDNS Authoritative's HTTP API.
    PowerDns(crate::dns::publisher::powerdns::PowerDnsConfig),
    /// A Route 53 hosted zone, through its API.
    Route53(crate::dns::publisher::route53::Config),
}

/// The zone-file publisher's settings.
#[derive(Debug, Clone)]
pub struct ZoneFileConfig {
    /// The DNS host, reached like any host.
    pub host: Host,
    pub path: RemotePath,
    /// The template's text, read at load: SOA with `{serial}`, NS records.
    pub template: String,
    pub reload: String,
    pub server: SocketAddr,
}

/// RFC 2136 dynamic updates signed with TSIG (RFC 8945).
#[derive(Debug, Clone)]
pub struct Rfc2136Config {
    pub server: SocketAddr,
    pub key_name: Option<String>,
    pub algorithm: Option<String>,
    pub secret: SecretSource,
}

/// Where the TSIG secret comes from; never the command line.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// How certorch reaches hosts over SSH.
#[derive(Debug, Clone)]
pub struct SshConfig {
    /// An ssh_config file; OpenSSH transport only.
    pub config: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub identity: Option<PathBuf>,
    /// TCP connect, handshake and authentication together.
    pub connect_timeout: Duration,
    /// One remote command, from the request to its exit status.
    pub command_timeout: Duration,
    /// The transport of hosts that do not choose their own.
    pub transport: TransportKind,
    /// russh: handshakes in flight at once, across the process.
    pub max_handshakes: usize,
    /// russh: the key exchange algorithms to offer, in order (`ssh.kex`); `None` offers
    /// russh's own post-quantum-first list.
    pub kex: Option<Vec<&'static str>>,
}

/// Which SSH client implementation reaches a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportKind {
    /// The system's OpenSSH client, one multiplexed master per host (honours ssh_config).
    #[default]
    OpenSsh,
    /// russh, in-process: no `ssh` process per host.
    Russh,
}

/// One host and the certificates it needs.
#[derive(Debug, Clone)]
pub struct Host {
    /// The inventory name, used in messages and `--limit`.
    pub name: String,
    /// What SSH connects to: the address if given, else the name.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// `sudo`/`doas` for a non-root login.
    pub become_via: Option<Become>,
    /// The SSH client implementation for this host.
    pub transport: TransportKind,
    pub certs: Vec<CertSpec>,
}

/// One certificate on one host.
#[derive(Debug, Clone)]
pub struct CertSpec {
    /// The label under `certs:`.
    pub label: String,
    pub names: Vec<DnsName>,
    pub key_type: KeyType,
    pub key: RemotePath,
    pub cert: Option<RemotePath>,
    pub chain: Option<RemotePath>,
    pub fullchain: Option<RemotePath>,
    /// Key followed by the full chain in one file (HAProxy, some mail servers), assembled on
    /// the host from the host's own key; mode `key_mode`.
    pub combined: Option<RemotePath>,
    pub owner: Option<AccountName>,
    pub group: Option<AccountName>,
    pub mode: FileMode,
    pub key_mode: FileMode,
    /// A PKCS#12 bundle (key + full chain) built on the host.
    pub pkcs12: Option<RemotePath>,
    /// A Java keystore built on the host.
    pub keystore: Option<RemotePath>,
    /// The host's file holding the PKCS#12 / keystore password.
    pub store_password_file: Option<RemotePath>,
    /// Run on the host after the files are in place.
    pub reload: Option<HostCommand>,
    pub renew: RenewPolicy,
    /// The ACME profile to order (`tlsserver`, `shortlived`, …), if any.
    pub profile: Option<String>,
    /// Who signs the certificate.
    pub issuer: Issuer,
    /// Lifetime of certificates certorch signs itself (self-signed, internal).
    pub validity: Duration,
    /// How the CA checks the names.
    pub challenge: ChallengeKind,
    /// With http-01: the directory the host's web server serves for the names.
    pub webroot: Option<RemotePath>,
    /// Checks the service's configuration with the new files in place, before the reload
    /// (`nginx -t`); on failure the previous files come back.
    pub check: Option<HostCommand>,
    /// After the reload, a TLS handshake to this port must present the new certificate.
    pub verify_port: Option<u16>,
    /// The STARTTLS dialogue to speak on `verify_port` first (SMTP, IMAP).
    pub verify_starttls: Option<Starttls>,
    /// Keep the live key across renewals.
    pub reuse_key: bool,
    /// Keep the replaced key (and key-bearing files) as `.certorch-prev` once the new
    /// certificate is live; by default they are removed then.
    pub keep_previous_key: bool,
    /// For a shared label: every member host, in inventory order. The key is made on the
    /// first reachable member and copied to the others host to host.
    pub shared: Option<Vec<String>>,
}

impl CertSpec {
    /// The files that hold the private key: the key itself, the combined PEM, the PKCS#12
    /// bundle and the Java keystore.
    pub fn key_bearing_paths(&self) -> Vec<&RemotePath> {
        std::iter::once(&self.key)
            .chain(self.combined.as_ref())
            .chain(self.pkcs12.as_ref())
            .chain(self.keystore.as_ref())
            .collect()
    }

    /// The file whose certificate tells what is deployed: the full chain, else the leaf,
    /// else the combined file (its first certificate follows the key).
    pub fn inspect_path(&self) -> &RemotePath {
        // Validation guarantees one of them is set.
        self.fullchain
            .as_ref()
            .or(self.cert.as_ref())
            .or(self.combined.as_ref())
            .expect("validated: cert, fullchain or combined")
    }

    /// What this certificate's command placeholders stand for on `host`.
    pub fn command_values<'a>(&'a self, host: &'a str) -> super::command::Values<'a> {
        let mut paths = BTreeMap::new();
        paths.insert("key", self.key.as_str());
        for (k, v) in [
            ("cert", &self.cert),
            ("chain", &self.chain),
            ("fullchain", &self.fullchain),
            ("combined", &self.combined),
        ] {
            if let Some(p) = v {
                paths.insert(k, p.as_str());
            }
        }
        super::command::Values {
            label: &self.label,
            host,
            names: self.names.iter().map(|n| n.as_str()).collect(),
            paths,
        }
    }

    /// Every file this certificate puts on its host, the key first.
    pub fn files(&self) -> Vec<&RemotePath> {
        let mut out = vec![&self.key];
        out.extend(
            [
                &self.cert,
                &self.chain,
                &self.fullchain,
                &self.combined,
                &self.pkcs12,
                &self.keystore,
            ]
            .into_iter()
            .flatten(),
        );
        out
    }
}

const DEFAULT_CONCURRENCY: usize = 20;
/// Hosts worked on at once, at most: each holds an SSH connection (with OpenSSH a master
/// process), so far more exhausts the bastion's processes and file descriptors before any
/// host is done.
const MAX_CONCURRENCY: usize = 1000;
/// The longest TTL certorch gives its TXT records: a reissue within the TTL waits it out.
const MAX_TXT_TTL: u32 = 3600;
/// Lifetime of self-signed and internal certificates unless the inventory says otherwise.
const DEFAULT_LOCAL_VALIDITY: Duration = Duration::from_secs(90 * 86400);
const DEFAULT_PROPAGATION_TIMEOUT: Duration = Duration::from_secs(120);
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Long enough for the slowest thing certorch runs on a host (an RSA-4096 key on a small VM,
/// a service's config test); short enough that a hung host does not hold a cron run forever.
const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(600);
/// Handshakes cost CPU on the bastion (key exchange, signatures); more in flight only queue.
const DEFAULT_MAX_HANDSHAKES: usize = 32;

/// The largest inventory certorch reads: a few kilobytes per host, so 8 MiB is thousands of
/// hosts; a bigger file is the wrong file (a log, a device) and is not read into memory.
pub const INVENTORY_LIMIT: u64 = 8 * 1024 * 1024;

/// Values (scalars, lists, mappings) any inventory may make besides one per byte of its text.
const MAX_NODES_FLOOR: usize = 10_000;

/// Reads and validates the inventory at `path`.
pub fn load(path: &Path) -> Result<Inventory, Error> {
    use std::io::Read;
    let read_err = |e| Error::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(INVENTORY_LIMIT + 1).read_to_end(&mut bytes))
        .map_err(read_err)?;
    if bytes.len() as u64 > INVENTORY_LIMIT {
        return Err(Error::Unplaced {
            path: path.to_path_buf(),
            message: format!(
                "the inventory is larger than {} MiB; certorch reads no further: check that --inventory names the inventory (a few kilobytes per host), not another file",
                INVENTORY_LIMIT >> 20
            ),
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let bad = e.as_bytes()[good.len()];
        // Valid up to here, so this is text; the column counts characters, as an editor does.
        let good = std::str::from_utf8(good).unwrap_or_default();
        let line_start = good.rfind('\n').map_or(0, |i| i + 1);
        Error::Invalid {
            path: path.to_path_buf(),
            line: good.matches('\n').count() as u64 + 1,
            column: good[line_start..].chars().count() as u64 + 1,
            message: format!("byte 0x{bad:02x} is not UTF-8 text: save the inventory as UTF-8 (iconv -f latin1 -t utf-8), or remove the byte"),
        }
    })?;
    parse(&text, path)
}

/// Validates inventory text; `path` is used for messages and to resolve relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Inventory, Error> {
    // An alias that repeats aliases ("billion laughs") expands a few hundred bytes into
    // millions of values; the parser stops at `max_nodes`. Written-out YAML makes well under
    // one value per byte, so that bound leaves any real inventory room and stops an expansion
    // before it costs seconds.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES_FLOOR + text.len(),
        },
    };
    let raw: RawInventory = serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| Error::from_yaml(path, &e))?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Builder { path, base: &base }.build(raw)
}

struct Builder<'a> {
    path: &'a Path,
    base: &'a Path,
}

impl Builder<'_> {
    fn err(&self, at: Location, message: impl Into<String>) -> Error {
        Error::Invalid {
            path: self.path.to_path_buf(),
            line: at.line(),
            column: at.column(),
            message: message.into(),
        }
    }

    fn resolve(&self, p: PathBuf) -> PathBuf {
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// `openssh` or `russh`; russh cannot honour an ssh_config file, so the two never mix.
    fn transport(
        &self,
        t: &Spanned<String>,
        config: Option<&PathBuf>,
    ) -> Result<TransportKind, Error> {
        let kind = match t.value.as_str() {
            "openssh" => TransportKind::OpenSsh,
            "russh" => TransportKind::Russh,
            other => {
                return Err(self.err(
                    t.referenced,
                    format!("unknown SSH transport `{other}`: write openssh or russh"),
                ));
            }
        };
        if kind == TransportKind::Russh
            && let Some(c) = config
        {
            return Err(self.err(t.referenced, format!("the russh transport does not read ssh_config files, and ssh.config is set ({}): remove ssh.config and set ssh.known_hosts, ssh.identity and each host's address, port and user in the inventory, or use transport: openssh", c.display())));
        }
        Ok(kind)
    }

    /// `ssh.kex`: names russh offers, each once; never empty.
    fn kex(&self, list: &Spanned<Vec<Spanned<String>>>) -> Result<Vec<&'static str>, Error> {
        if list.value.is_empty() {
            return Err(self.err(list.referenced, format!("ssh.kex is empty: list the key exchanges to offer, e.g. [curve25519-sha256], or remove ssh.kex for the default ({})", super::kex::RUSSH_KEX[0])));
        }
        let mut names = Vec::new();
        for item in &list.value {
            let name = super::kex::check(&item.value).map_err(|m| self.err(item.referenced, m))?;
            if names.contains(&name) {
                return Err(self.err(
                    item.referenced,
                    format!("`{name}` is listed twice in ssh.kex: remove one"),
                ));
            }
            names.push(name);
        }
        Ok(names)
    }

    /// `letsencrypt`, `letsencrypt-staging` or an https:// URL.
    fn directory_url(&self, d: &Spanned<String>) -> Result<String, Error> {
        match d.value.as_str() {
            "letsencrypt" => Ok(LETSENCRYPT.to_string()),
            "letsencrypt-staging" => Ok(LETSENCRYPT_STAGING.to_string()),
            url => {
                let shown = hide_userinfo(url);
                let parsed = url::Url::parse(url).ok().filter(|u| {
                    u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty())
                });
                match parsed {
                    None => Err(self.err(
                        d.referenced,
                        format!("`{shown}` is not an ACME directory: write letsencrypt, letsencrypt-staging or an https:// URL"),
                    )),
                    Some(u) if !u.username().is_empty() || u.password().is_some() => Err(self.err(
                        d.referenced,
                        format!("`{shown}` carries a user name or password, which ACME never uses and certorch would print with the URL: write the directory URL without them"),
                    )),
                    Some(_) => Ok(url.to_string()),
                }
            }
        }
    }

    /// The CA certificates in one `acme.adopt_issuers` file.
    /// `acme.limits`: each budget at least 1 (0 would never order), the default where unset.
    fn limits(&self, raw: super::raw::RawLimits) -> Result<crate::limits::CaLimits, Error> {
        let d = crate::limits::CaLimits::default();
        let count = |v: Option<Spanned<u64>>, key: &str, default: usize| {
            match v {
            None => Ok(default),
            Some(n) if n.value >= 1 && n.value <= 1_000_000 => Ok(n.value as usize),
            Some(n) => Err(self.err(
                n.referenced,
                format!("acme.limits.{key} must be between 1 and 1000000: it is how many the CA allows, and 0 would never order"),
            )),
        }
        };
        let orders_window = match raw.orders_window {
            None => d.orders_window,
            Some(w) => time::Duration::try_from(w.0).unwrap_or(d.orders_window),
        };
        Ok(crate::limits::CaLimits {
            orders: count(raw.orders_per_window, "orders_per_window", d.orders)?,
            orders_window,
            certs_per_domain: count(
                raw.certs_per_domain_per_week,
                "certs_per_domain_per_week",
                d.certs_per_domain,
            )?,
            duplicates: count(raw.duplicates_per_week, "duplicates_per_week", d.duplicates)?,
        })
    }

    fn adopted_issuers(&self, p: Spanned<PathBuf>) -> Result<Vec<crate::x509::IssuerCert>, Error> {
        let at = p.referenced;
        let path = self.resolve(p.value);
        let pem = crate::small_file::read_bytes(&path).map_err(|e| {
            self.err(
                at,
                format!("cannot read the adopted issuer {}: {e}", path.display()),
            )
        })?;
        let ders = crate::x509::pem_certificates(&pem)
            .ok()
            .filter(|d| !d.is_empty())
            .ok_or_else(|| self.err(at, format!("{} holds no PEM certificate: list files with the intermediate (`-----BEGIN CERTIFICATE-----`) that signed the certificates to keep, e.g. the chain.pem certbot wrote", path.display())))?;
        let mut out = Vec::new();
        for der in ders {
            let cert = crate::x509::issuer_cert(&der)
                .map_err(|e| self.err(at, format!("{}: {e}", path.display())))?;
            if !cert.is_ca {
                return Err(self.err(at, format!("{} holds a certificate that is not a CA ({}): list the intermediate that signed the certificates to keep, not a leaf (certbot's chain.pem, not cert.pem)", path.display(), cert.subject_dn)));
            }
            out.push(cert);
        }
        Ok(out)
    }

    fn rfc2136(&self, rfc: Spanned<super::raw::RawRfc2136>) -> Result<Rfc2136Config, Error> {
        let at = rfc.referenced;
        let rfc = rfc.value;
        let server = socket_addr(&rfc.server.value).ok_or_else(|| {
            self.err(rfc.server.referenced, format!("`{}` is not an address: write an IP address, optionally with :port, like 192.0.2.53:53", rfc.server.value))
        })?;
        if let Some(alg) = &rfc.algorithm
            && !["hmac-sha256", "hmac-sha384", "hmac-sha512"].contains(&alg.value.as_str())
        {
            return Err(self.err(
                alg.referenced,
                format!(
                    "unknown TSIG algorithm `{}`: write hmac-sha256, hmac-sha384 or hmac-sha512",
                    alg.value
                ),
            ));
        }
        let secret = match (rfc.secret_file, rfc.secret_env) {
            (Some(f), None) => SecretSource::File(self.resolve(f)),
            (None, Some(e)) => SecretSource::Env(e),
            _ => {
                return Err(self.err(
                    at,
                    "give the TSIG secret as exactly one of secret_file (a BIND key file or a file with the base64 secret) or secret_env (the name of an environment variable)",
                ));
            }
        };
        Ok(Rfc2136Config {
            server,
            key_name: rfc.key_name,
            algorithm: rfc.algorithm.map(|a| a.value),
            secret,
        })
    }

    fn zonefile(
        &self,
        z: Spanned<super::raw::RawZoneFile>,
        default_user: Option<AccountName>,
        default_transport: TransportKind,
    ) -> Result<ZoneFileConfig, Error> {
        let at = z.referenced;
        let z = z.value;
        let template_path = self.resolve(z.template);
        let template = crate::small_file::read(&template_path).map_err(|e| {
            self.err(
                at,
                format!(
                    "cannot read the zone template {}: {e}",
                    template_path.display()
                ),
            )
        })?;
        if !template.contains("{serial}") {
            return Err(self.err(at, format!("the zone template {} has no {{serial}} in its SOA record: certorch must raise the serial on every rewrite", template_path.display())));
        }
        if !is_host_name(&z.host)
            || z.address
                .as_ref()
                .is_some_and(|a| !is_host_name(a) && a.parse::<IpAddr>().is_err())
        {
            return Err(self.err(
                at,
                "dns.zonefile.host (and address) must be a host name or an IP address",
            ));
        }
        if z.reload.trim().is_empty() || z.reload.contains('\0') {
            return Err(self.err(at, "dns.zonefile.reload must be the command that reloads the zone, like `rndc reload acme.example.net`"));
        }
        let server = socket_addr(&z.server.value).ok_or_else(|| {
            self.err(
                z.server.referenced,
                format!(
                    "`{}` is not an address: write an IP address, optionally with :port",
                    z.server.value
                ),
            )
        })?;
        Ok(ZoneFileConfig {
            host: Host {
                address: z.address.unwrap_or_else(|| z.host.clone()),
                name: z.host,
                port: z.port.map_or(22, Port::get),
                user: z
                    .user
                    .or(default_user)
                    .map_or_else(|| "root".to_string(), |u| u.as_str().to_string()),
                become_via: None,
                transport: default_transport,
                certs: Vec::new(),
            },
            path: z.path,
            template,
            reload: z.reload,
            server,
        })
    }

    fn build(&self, raw: RawInventory) -> Result<Inventory, Error> {
        let mut warnings = Vec::new();
        let directory = self.directory_url(&raw.acme.directory)?;
        let mut contact = Vec::new();
        for c in raw.acme.contact {
            if !c.value.starts_with("mailto:") || c.value.contains(',') {
                return Err(self.err(
                    c.referenced,
                    format!(
                        "`{}` is not a contact: write mailto:ops@example.org",
                        c.value
                    ),
                ));
            }
            contact.push(c.value);
        }
        let eab = match raw.acme.eab {
            None => None,
            Some(e) => {
                let at = e.referenced;
                let path = self.resolve(e.value.hmac_key_file);
                warnings.extend(crate::secret::exposure(&path, "the EAB HMAC key file"));
                let text = crate::small_file::read(&path).map_err(|err| {
                    self.err(
                        at,
                        format!("cannot read the EAB HMAC key {}: {err}", path.display()),
                    )
                })?;
                use base64::Engine;
                let t = text.trim();
                let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(t.trim_end_matches('='))
                    .or_else(|_| base64::engine::general_purpose::STANDARD.decode(t))
                    .map_err(|_| self.err(at, format!("{} does not hold a base64 HMAC key: paste the key your CA gave you, alone", path.display())))?;
                Some(Eab {
                    kid: e.value.kid,
                    hmac_key: crate::secret::Secret::new(key),
                })
            }
        };
        let staging = match raw.acme.staging {
            Some(s) => Some(self.directory_url(&s)?),
            None if directory == LETSENCRYPT => Some(LETSENCRYPT_STAGING.to_string()),
            None => None,
        };
        let mut adopt_issuers = Vec::new();
        for p in raw.acme.adopt_issuers {
            adopt_issuers.extend(self.adopted_issuers(p)?);
        }
        let mut caa_identities = Vec::new();
        for id in raw.acme.caa_identities {
            let name = DnsName::try_from(id.value.clone())
                .ok()
                .filter(|n| !n.as_str().starts_with("*."))
                .ok_or_else(|| {
                    self.err(
                        id.referenced,
                        format!(
                            "`{}` is not a CAA identity: write the domain your CA names for CAA, like letsencrypt.org",
                            id.value
                        ),
                    )
                })?;
            caa_identities.push(name.as_str().to_string());
        }
        let preferred_chain = match raw.acme.preferred_chain {
            None => None,
            Some(p) if p.value.trim().is_empty() || p.value.chars().any(char::is_control) => {
                return Err(self.err(
                    p.referenced,
                    "acme.preferred_chain must be an issuer's common name, like ISRG Root X1",
                ));
            }
            Some(p) => Some(p.value.trim().to_string()),
        };
        let limits = match raw.acme.limits {
            None => crate::limits::CaLimits::default(),
            Some(l) => self.limits(l)?,
        };
        let acme = AcmeConfig {
            limits,
            caa_identities,
            preferred_chain,
            adopt_issuers,
            staging,
            directory,
            contact,
            trust_root: raw.acme.trust_root.map(|p| self.resolve(p)),
            eab,
        };

        let ssh_config = raw.ssh.config.map(|p| self.resolve(p));
        let transport = match &raw.ssh.transport {
            Some(t) => self.transport(t, ssh_config.as_ref())?,
            None => TransportKind::default(),
        };
        let max_handshakes = match raw.ssh.max_handshakes {
            Some(m) if m.value == 0 => {
                return Err(self.err(m.referenced, "ssh.max_handshakes must be at least 1"));
            }
            Some(m) if m.value > MAX_CONCURRENCY => {
                return Err(self.err(m.referenced, format!("ssh.max_handshakes {} is more SSH handshakes at once than the bastion can hold (each is a key exchange and a process or task): write a number from 1 to {MAX_CONCURRENCY}", m.value)));
            }
            Some(m) => m.value,
            None => DEFAULT_MAX_HANDSHAKES,
        };
        let kex = match &raw.ssh.kex {
            None => None,
            Some(list) => Some(self.kex(list)?),
        };
        let ssh = SshConfig {
            config: ssh_config,
            known_hosts: raw.ssh.known_hosts.map(|p| self.resolve(p)),
            identity: raw.ssh.identity.map(|p| self.resolve(p)),
            connect_timeout: raw
                .ssh
                .connect_timeout
                .map_or(DEFAULT_CONNECT_TIMEOUT, |s| s.0),
            command_timeout: raw
                .ssh
                .command_timeout
                .map_or(DEFAULT_COMMAND_TIMEOUT, |s| s.0),
            transport,
            max_handshakes,
            kex,
        };

        let resolver = match raw.dns.resolver {
            None => None,
            Some(r) => Some(socket_addr(&r.value).ok_or_else(|| {
                self.err(
                    r.referenced,
                    format!(
                        "`{}` is not an address: write an IP address, optionally with :port",
                        r.value
                    ),
                )
            })?),
        };
        let default_user = raw.defaults.user.clone();
        const ONE_PUBLISHER: &str = "dns has more than one publisher (rfc2136, exec, zonefile, powerdns, route53): keep one";
        let chosen = [
            raw.dns.rfc2136.as_ref().map(|r| r.referenced),
            raw.dns.exec.as_ref().map(|r| r.referenced),
            raw.dns.zonefile.as_ref().map(|r| r.referenced),
            raw.dns.powerdns.as_ref().map(|r| r.referenced),
            raw.dns.route53.as_ref().map(|r| r.referenced),
        ];
        let mut chosen = chosen.into_iter().flatten();
        if let (Some(first), Some(_)) = (chosen.next(), chosen.next()) {
            return Err(self.err(first, ONE_PUBLISHER));
        }
        let publisher = if let Some(z) = raw.dns.zonefile {
            PublisherConfig::ZoneFile(self.zonefile(z, default_user, ssh.transport)?)
        } else if let Some(rfc) = raw.dns.rfc2136 {
            let rfc = self.rfc2136(rfc)?;
            if let SecretSource::File(path) = &rfc.secret {
                warnings.extend(crate::secret::exposure(path, "the TSIG key file"));
            }
            PublisherConfig::Rfc2136(rfc)
        } else if let Some(e) = raw.dns.exec {
            if e.value.command.is_empty() || e.value.command[0].is_empty() {
                return Err(self.err(e.referenced, "dns.exec.command is a command and its arguments as a list, like [/usr/local/bin/dns-api, --zone, acme.example.net]"));
            }
            PublisherConfig::Exec {
                command: e.value.command,
            }
        } else if let Some(p) = raw.dns.powerdns {
            PublisherConfig::PowerDns(
                crate::dns::publisher::powerdns::config(p, &|f| self.resolve(f))
                    .map_err(|(at, message)| self.err(at, message))?,
            )
        } else if let Some(r) = raw.dns.route53 {
            PublisherConfig::Route53(
                crate::dns::publisher::route53::config(r, |p| self.resolve(p))
                    .map_err(|(at, message)| self.err(at, message))?,
            )
        } else {
            return Err(Error::Unplaced {
                path: self.path.to_path_buf(),
                message: "dns needs a publisher: rfc2136 (TSIG-signed updates), exec (your script gets the records as JSON), zonefile (certorch rewrites the zone file over SSH), powerdns (PowerDNS's HTTP API) or route53 (a Route 53 hosted zone)".into(),
            });
        };
        let max_rrset_bytes = match &raw.dns.max_rrset_bytes {
            None => crate::limits::MAX_RRSET_BYTES,
            Some(b) if (128..=65535).contains(&b.value) => b.value as usize,
            Some(b) => {
                return Err(self.err(
                    b.referenced,
                    "dns.max_rrset_bytes must be between 128 and 65535: 512 fits any resolver over UDP, 1232 any with EDNS",
                ));
            }
        };
        let ttl = match raw.dns.ttl {
            None => crate::limits::TXT_TTL,
            Some(t) if (1..=MAX_TXT_TTL).contains(&t.value) => t.value,
            Some(t) => {
                return Err(self.err(
                    t.referenced,
                    format!("dns.ttl must be between 1 and {MAX_TXT_TTL} seconds: resolvers and the CA cache the TXT values that long, and a new value at a name waits until the old one has expired; 60 is usual"),
                ));
            }
        };
        let dns = DnsConfig {
            signing_zone: raw.dns.signing_zone,
            max_rrset_bytes,
            resolver,
            ttl,
            propagation_timeout: raw
                .dns
                .propagation_timeout
                .map_or(DEFAULT_PROPAGATION_TIMEOUT, |s| s.0),
            publisher,
        };

        let concurrency = match raw.concurrency {
            Some(c) if c.value == 0 => {
                return Err(self.err(c.referenced, "concurrency must be at least 1"));
            }
            Some(c) if c.value > MAX_CONCURRENCY => {
                return Err(self.err(c.referenced, format!("concurrency {} is more hosts at once than the bastion can hold (each is an SSH connection, processes and file descriptors): write a number from 1 to {MAX_CONCURRENCY}", c.value)));
            }
            Some(c) => c.value,
            None => DEFAULT_CONCURRENCY,
        };

        let d = &raw.defaults;
        let playbooks = raw.playbooks.map(|p| self.resolve(p));
        let state = match raw.state {
            None => None,
            Some(s) => match crate::state::Location::parse(&s.value) {
                Ok(crate::state::Location::Dir(d)) => {
                    Some(crate::state::Location::Dir(self.resolve(d)))
                }
                Ok(l) => Some(l),
                Err(e) => return Err(self.err(s.referenced, format!("state: {e}"))),
            },
        };
        let default_become = self.become_of(d.become_via.clone())?;
        let mut hosts = Vec::new();
        for (name, host) in raw.hosts {
            let at = host.referenced;
            let host = host.value;
            if !is_host_name(&name) {
                return Err(self.err(
                    at,
                    format!("`{name}` is not a host name: use letters, digits, '-', '_' and dots"),
                ));
            }
            let address = match host.address {
                Some(a) if is_host_name(&a.value) || a.value.parse::<IpAddr>().is_ok() => a.value,
                Some(a) => {
                    return Err(self.err(
                        a.referenced,
                        format!(
                            "`{}` is not an address: write an IP address or a host name",
                            a.value
                        ),
                    ));
                }
                None => name.clone(),
            };
            let transport = match &host.transport {
                Some(t) => self.transport(t, ssh.config.as_ref())?,
                None => ssh.transport,
            };
            let mut certs = Vec::new();
            for (label, cert) in host.certs {
                certs.push(self.cert(&name, label, cert, d, playbooks.as_deref())?);
            }
            let become_via = match host.become_via {
                Some(b) => self.become_of(Some(b))?,
                None => default_become,
            };
            hosts.push(Host {
                name,
                address,
                become_via,
                port: host.port.or(d.port).map_or(22, Port::get),
                user: host
                    .user
                    .or(d.user.clone())
                    .map_or_else(|| "root".to_string(), |u| u.as_str().to_string()),
                transport,
                certs,
            });
        }
        if let Some(list) = &raw.ssh.kex {
            let zone_host = match &dns.publisher {
                PublisherConfig::ZoneFile(z) => Some(&z.host),
                _ => None,
            };
            if let Some(h) = hosts
                .iter()
                .chain(zone_host)
                .find(|h| h.transport == TransportKind::OpenSsh)
            {
                return Err(self.err(list.referenced, format!("ssh.kex chooses the key exchange of the russh transport, and `{}` uses OpenSSH, which takes its key exchange from ssh_config: remove ssh.kex and write `KexAlgorithms curve25519-sha256` (or your list) under `Host *` in the ssh_config file (ssh.config), or set ssh.transport: russh", h.name)));
            }
        }

        // A shared label becomes a certificate on each member, marked with all the members.
        for (label, shared) in raw.shared {
            let at = shared.referenced;
            let members: Vec<Spanned<String>> = shared.value.hosts;
            if members.len() < 2 {
                return Err(self.err(at, format!("shared label `{label}` lists {} host(s): a shared key needs two or more hosts; for one host, put the certificate under the host", members.len())));
            }
            let mut names = Vec::new();
            for m in &members {
                if !hosts.iter().any(|h| h.name == m.value) {
                    return Err(self.err(m.referenced, format!("shared label `{label}` lists `{}`, which is not under hosts: add the host or remove it", m.value)));
                }
                if names.contains(&m.value) {
                    return Err(self.err(
                        m.referenced,
                        format!("shared label `{label}` lists `{}` twice", m.value),
                    ));
                }
                names.push(m.value.clone());
            }
            for m in &members {
                let host = hosts
                    .iter_mut()
                    .find(|h| h.name == m.value)
                    .expect("checked above");
                if host.certs.iter().any(|c| c.label == label) {
                    return Err(self.err(m.referenced, format!("`{}` has its own certificate `{label}` and is a member of the shared label `{label}`: rename one of them", m.value)));
                }
                let raw_cert = shared.value.cert.clone();
                let mut spec =
                    self.cert(&m.value, label.clone(), raw_cert, d, playbooks.as_deref())?;
                if spec.reuse_key {
                    return Err(self.err(at, format!("shared label `{label}`: reuse_key is not supported for a shared key yet; remove it")));
                }
                spec.shared = Some(names.clone());
                host.certs.push(spec);
            }
        }

        let known: BTreeSet<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        let mut groups = BTreeMap::new();
        for (group, members) in raw.groups {
            if !is_label(&group) {
                return Err(self.err(
                    members.referenced,
                    format!("`{group}` is not a group name: use letters, digits, '-' and '_'"),
                ));
            }
            if known.contains(group.as_str()) {
                return Err(self.err(
                    members.referenced,
                    format!("group `{group}` has the same name as a host: rename one of them"),
                ));
            }
            let mut names = Vec::new();
            for m in members.value {
                if !known.contains(m.value.as_str()) {
                    return Err(self.err(m.referenced, format!("group `{group}` lists `{}`, which is not under hosts: add the host or remove it from the group", m.value)));
                }
                names.push(m.value);
            }
            groups.insert(group, names);
        }

        let notify = match raw.notify {
            None => None,
            Some(n) => {
                let at = n.referenced;
                let n = n.value;
                let on = match n.on.as_ref().map(|o| o.value.as_str()) {
                    None | Some("failure") => NotifyOn::Failure,
                    Some("always") => NotifyOn::Always,
                    Some(other) => {
                        return Err(self.err(
                            n.on.as_ref().map_or(at, |o| o.referenced),
                            format!("notify.on is `{other}`: write failure or always"),
                        ));
                    }
                };
                if let Some(w) = &n.webhook {
                    webhook_url(&w.value).map_err(|e| self.err(w.referenced, e))?;
                }
                if n.exec
                    .as_ref()
                    .is_some_and(|e| e.is_empty() || e[0].is_empty())
                {
                    return Err(self.err(at, "notify.exec is a command and its arguments as a list, like [/usr/local/bin/page-oncall, --team, web]"));
                }
                if n.webhook.is_none() && n.exec.is_none() {
                    return Err(self.err(at, "notify needs a webhook, an exec command, or both"));
                }
                Some(NotifyConfig {
                    on,
                    webhook: n.webhook.map(|w| w.value),
                    exec: n.exec,
                })
            }
        };
        let by_name = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (h.name.clone(), i))
            .collect();
        Ok(Inventory {
            by_name,
            internal_ca_trust_path: raw.internal_ca.trust_path,
            notify,
            dry_run_root: raw.dry_run_root.unwrap_or_else(|| {
                RemotePath::try_from("/var/tmp/certorch-dry-run".to_string())
                    .expect("constant path")
            }),
            path: self.path.to_path_buf(),
            acme,
            dns,
            ssh,
            concurrency,
            hosts,
            groups,
            playbooks,
            warnings,
            state,
        })
    }

    fn cert(
        &self,
        host: &str,
        label: String,
        cert: Spanned<RawCert>,
        d: &super::raw::RawDefaults,
        playbooks: Option<&Path>,
    ) -> Result<CertSpec, Error> {
        let at = cert.referenced;
        let c = cert.value;
        if !is_label(&label) {
            return Err(self.err(
                at,
                format!("`{label}` is not a certificate label: use letters, digits, '-' and '_'"),
            ));
        }
        // The playbook's settings sit between the certificate's own and the defaults.
        let playbook_name = c.playbook.clone().or_else(|| d.playbook.clone());
        let pb = match &playbook_name {
            None => RawPlaybook::default(),
            Some(name) => super::playbook::find(&name.value, playbooks)
                .and_then(|f| super::playbook::parse(&f))
                .map_err(|e| self.err(name.referenced, format!("{host}/{label}: {e}")))?,
        };
        let names_at = c.names.referenced;
        let mut names = c.names.value;
        if c.add_host_name.or(d.add_host_name).unwrap_or(false) {
            let own = DnsName::try_from(host.to_string()).map_err(|e| {
                self.err(
                    names_at,
                    format!("{host}/{label} has add_host_name, but the host's name is not a DNS name: {e}"),
                )
            })?;
            if !names.contains(&own) {
                names.push(own);
            }
        }
        if names.is_empty() {
            return Err(self.err(
                names_at,
                format!("{host}/{label} has no names: list at least one DNS name"),
            ));
        }
        if names.len() > MAX_NAMES_PER_CERT {
            return Err(self.err(names_at, format!("{host}/{label} has {} names; a certificate carries at most {MAX_NAMES_PER_CERT}: split it into several certificates", names.len())));
        }
        let mut seen = BTreeSet::new();
        for n in &names {
            if !seen.insert(n) {
                return Err(self.err(
                    names_at,
                    format!("{host}/{label} lists `{n}` twice: remove one"),
                ));
            }
        }
        // `{label}` and `{host}` in paths (the playbooks' paths use them).
        let path = |p: Option<RemotePath>| -> Result<Option<RemotePath>, Error> {
            match p {
                None => Ok(None),
                Some(p) => {
                    let expanded = p
                        .as_str()
                        .replace("{label}", &label)
                        .replace("{host}", host);
                    RemotePath::try_from(expanded)
                        .map(Some)
                        .map_err(|e| self.err(at, format!("{host}/{label}: {e}")))
                }
            }
        };
        let Some(key) = path(c.key.or(pb.key))? else {
            return Err(self.err(at, format!("{host}/{label} does not say where the key goes: add `key:` with the path, or a `playbook:` that sets it")));
        };
        let cert_path = path(c.cert.or(pb.cert))?;
        let chain = path(c.chain.or(pb.chain))?;
        let fullchain = path(c.fullchain.or(pb.fullchain))?;
        let combined = path(c.combined.or(pb.combined))?;
        let pkcs12 = path(c.pkcs12.or(pb.pkcs12))?;
        let keystore = path(c.keystore.or(pb.keystore))?;
        let store_password_file = path(c.store_password_file.or(pb.store_password_file))?;
        if cert_path.is_none() && fullchain.is_none() && combined.is_none() {
            return Err(self.err(at, format!("{host}/{label} says where the key goes but not the certificate: add `fullchain:` (and/or `cert:`) with the path the service reads")));
        }
        if keystore.is_some() && store_password_file.is_none() {
            return Err(self.err(at, format!("{host}/{label} builds a Java keystore but has no store_password_file: give the path of a file on the host with the keystore password (6 characters or more)")));
        }
        let mut paths = vec![&key];
        paths.extend(
            [
                &cert_path, &chain, &fullchain, &combined, &pkcs12, &keystore,
            ]
            .into_iter()
            .flatten(),
        );
        let unique: BTreeSet<_> = paths.iter().collect();
        if unique.len() != paths.len() {
            return Err(self.err(at, format!("{host}/{label} uses one path for two files: key, cert, chain, fullchain, combined, pkcs12 and keystore need distinct paths")));
        }
        let key_mode = c
            .key_mode
            .or(pb.key_mode)
            .or(d.key_mode)
            .unwrap_or(FileMode::try_from("0600".to_string()).expect("constant mode"));
        if key_mode.bits() & 0o007 != 0 {
            return Err(self.err(at, format!("{host}/{label}: key_mode {} lets every user read or change the private key: use 0600 or 0640", key_mode.octal())));
        }
        let mode = c
            .mode
            .or(pb.mode)
            .or(d.mode)
            .unwrap_or(FileMode::try_from("0644".to_string()).expect("constant mode"));
        if mode.bits() & 0o022 != 0 {
            return Err(self.err(at, format!("{host}/{label}: mode {} lets other users replace the certificate the service presents: use 0644", mode.octal())));
        }
        let command_of =
            |which: &str, v: Option<Spanned<RawCommand>>| -> Result<Option<HostCommand>, Error> {
                match v {
                    None => Ok(None),
                    Some(v) => {
                        let cmd = command(v.value);
                        cmd.validate().map_err(|e| {
                            self.err(v.referenced, format!("{host}/{label}: {which}: {e}"))
                        })?;
                        Ok(Some(cmd))
                    }
                }
            };
        let reload = command_of(
            "reload",
            c.reload.or(pb.reload).or_else(|| d.reload.clone()),
        )?;
        let check = command_of("check", c.check.or(pb.check).or_else(|| d.check.clone()))?;
        let verify_starttls = match c
            .verify_starttls
            .or(pb.verify_starttls)
            .or_else(|| d.verify_starttls.clone())
        {
            None => None,
            Some(v) => Some(match v.value.as_str() {
                "smtp" => Starttls::Smtp,
                "imap" => Starttls::Imap,
                other => {
                    return Err(self.err(
                        v.referenced,
                        format!("unknown verify_starttls `{other}`: write smtp or imap"),
                    ));
                }
            }),
        };
        let verify_port = c
            .verify_port
            .or(pb.verify_port)
            .or(d.verify_port)
            .map(Port::get);
        if verify_starttls.is_some() && verify_port.is_none() {
            return Err(self.err(at, format!("{host}/{label} has verify_starttls but no verify_port: add the port (25, 587, 143)")));
        }
        let profile = match c.profile.or_else(|| d.profile.clone()) {
            Some(p) if !is_label(&p.value) => {
                return Err(self.err(p.referenced, format!("`{}` is not an ACME profile name: use the name your CA lists, like tlsserver or shortlived", p.value)));
            }
            p => p.map(|p| p.value),
        };
        let issuer = match c.issuer.or_else(|| d.issuer.clone()) {
            None => Issuer::Acme,
            Some(i) => match i.value.as_str() {
                "acme" => Issuer::Acme,
                "self-signed" => Issuer::SelfSigned,
                "internal" => Issuer::Internal,
                other => {
                    return Err(self.err(
                        i.referenced,
                        format!("unknown issuer `{other}`: write acme, self-signed or internal"),
                    ));
                }
            },
        };
        let validity = c
            .validity
            .or(d.validity)
            .map_or(DEFAULT_LOCAL_VALIDITY, |s| s.0);
        if validity < Duration::from_secs(3600) {
            return Err(self.err(at, format!("{host}/{label}: validity under an hour would renew on every run: give at least 1h")));
        }
        let challenge = match c.challenge.or_else(|| d.challenge.clone()) {
            None => ChallengeKind::Dns01,
            Some(ch) => match ch.value.as_str() {
                "dns-01" => ChallengeKind::Dns01,
                "http-01" => ChallengeKind::Http01,
                other => {
                    return Err(self.err(
                        ch.referenced,
                        format!("unknown challenge `{other}`: write dns-01 or http-01"),
                    ));
                }
            },
        };
        let webroot = c.webroot.or_else(|| d.webroot.clone());
        if challenge == ChallengeKind::Http01 {
            if webroot.is_none() {
                return Err(self.err(at, format!("{host}/{label} uses http-01 but has no webroot: add `webroot:` with the directory the web server serves for these names")));
            }
            if let Some(w) = names.iter().find(|n| n.as_str().starts_with("*.")) {
                return Err(self.err(names_at, format!("{host}/{label}: `{w}` is a wildcard, which http-01 cannot prove (RFC 8555 §8.3): use dns-01 for this certificate")));
            }
        }
        Ok(CertSpec {
            check,
            verify_port,
            verify_starttls,
            reuse_key: c.reuse_key.or(d.reuse_key).unwrap_or(false),
            keep_previous_key: c.keep_previous_key.or(d.keep_previous_key).unwrap_or(false),
            shared: None,
            challenge,
            webroot,
            issuer,
            validity,
            profile,
            label,
            names,
            key_type: c.key_type.or(d.key_type).unwrap_or_default(),
            key,
            cert: cert_path,
            chain,
            fullchain,
            combined,
            pkcs12,
            keystore,
            store_password_file,
            owner: c.owner.or(pb.owner).or(d.owner.clone()),
            group: c.group.or(pb.group).or(d.group.clone()),
            mode,
            key_mode,
            reload,
            renew: c.renew_before.or(d.renew_before).unwrap_or_default(),
        })
    }

    fn become_of(&self, v: Option<Spanned<String>>) -> Result<Option<Become>, Error> {
        match v {
            None => Ok(None),
            Some(b) => match b.value.as_str() {
                "sudo" => Ok(Some(Become::Sudo)),
                "doas" => Ok(Some(Become::Doas)),
                "none" => Ok(None),
                other => Err(self.err(
                    b.referenced,
                    format!("unknown become `{other}`: write sudo, doas or none"),
                )),
            },
        }
    }
}

/// The validated form of a raw command (validation happens where the span is known).
pub(crate) fn command(raw: RawCommand) -> HostCommand {
    match raw {
        RawCommand::Shell(line) => HostCommand::Shell(line),
        RawCommand::Argv(argv) => HostCommand::Argv(argv),
    }
}

/// `url` with anything between `://` and `@` in its authority replaced by `***`, so an error
/// that shows the URL never shows a password in it.
fn hide_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_string(),
    }
}

/// A webhook URL: https, or http to this machine only (a chat webhook's path is its secret,
/// and plain http would show it to the network); never a user name or password, which
/// certorch would print wherever it names the webhook.
fn webhook_url(url: &str) -> Result<(), String> {
    let shown = hide_userinfo(url);
    let Some(u) = url::Url::parse(url)
        .ok()
        .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()))
    else {
        return Err(format!(
            "notify.webhook `{shown}` is not a URL: write an https:// URL, like https://hooks.example.org/T0/B0/XXXX"
        ));
    };
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!(
            "notify.webhook `{shown}` carries a user name or password, which certorch would print wherever it names the webhook: use a URL whose path holds the token (as Slack, Mattermost and Matrix hooks do), or notify.exec with a command that reads the credential from a file"
        ));
    }
    let loopback = match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "notify.webhook `{shown}` is plain http to another machine, which shows the hook's token to the network: write https://, or http:// only to 127.0.0.1 or localhost"
        )),
        _ => Err(format!(
            "notify.webhook `{shown}` is not an http(s) URL: write an https:// URL"
        )),
    }
}

/// `a.b`, `web-1`, `db_2`: names that can stand in ssh_config and messages without quoting.
fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// `192.0.2.53`, `192.0.2.53:5353`, `[2001:db8::53]:53`, `2001:db8::53` (port 53 by default).
fn socket_addr(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 53)))
}

impl Inventory {
    /// The same inventory for `run --dry-run`: the staging CA, every file under
    /// `dry_run_root` on its host (`/etc/ssl/x.pem` → `<root>/etc/ssl/x.pem`), no reloads.
    pub fn for_dry_run(&self) -> Result<Inventory, String> {
        let staging = self.acme.staging.clone().ok_or_else(|| {
            "a dry run needs a CA that issues test certificates: set acme.staging in the inventory (Let's Encrypt inventories get letsencrypt-staging)".to_string()
        })?;
        let mut inv = self.clone();
        inv.acme.directory = staging;
        // Adopted intermediates vouch for the production CA's certificates, not staging's.
        inv.acme.adopt_issuers.clear();
        let root = self.dry_run_root.as_str().trim_end_matches('/').to_string();
        let move_path = |p: &RemotePath| {
            RemotePath::try_from(format!("{root}{}", p.as_str())).map_err(|e| e.to_string())
        };
        for host in &mut inv.hosts {
            for c in &mut host.certs {
                c.key = move_path(&c.key)?;
                c.cert = c.cert.as_ref().map(move_path).transpose()?;
                c.chain = c.chain.as_ref().map(move_path).transpose()?;
                c.fullchain = c.fullchain.as_ref().map(move_path).transpose()?;
                c.combined = c.combined.as_ref().map(move_path).transpose()?;
                c.pkcs12 = c.pkcs12.as_ref().map(move_path).transpose()?;
                c.keystore = c.keystore.as_ref().map(move_path).transpose()?;
                // Nothing runs against the dry run's files: the services never read them.
                c.reload = None;
                c.check = None;
                c.verify_port = None;
            }
        }
        Ok(inv)
    }
}
