//! An in-process SSH client on the `russh` crate: one connection per host, each command a
//! session channel on it, no `ssh` process anywhere. Host keys are checked against the
//! operator's known_hosts files ([`super::known_hosts`]); logins use ssh-agent, then key files.
//! It reads no ssh_config (the inventory refuses `ssh.config` with this transport): address,
//! port and user come from the inventory, known_hosts and key from `ssh.known_hosts` and
//! `ssh.identity`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use russh::client::{self, AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Algorithm, HashAlg, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, kex};
use tokio::sync::Semaphore;

use super::known_hosts::{KnownHosts, Presented, Verdict};
use super::{BoxFuture, ConnectCause, Error, Output, Transport};
use crate::host::sh::Cmd;
use crate::inventory::{Host, SshConfig};

/// As the OpenSSH transport's ServerAliveInterval: a dead peer is noticed within a minute.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;
/// Read after the user's known_hosts, as ssh's GlobalKnownHostsFile.
const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";
/// Tried in this order when `ssh.identity` is not set, as ssh does.
const DEFAULT_IDENTITIES: [&str; 3] = ["id_ed25519", "id_ecdsa", "id_rsa"];

/// Handshakes in flight across the process. A global because every caller that connects (the
/// run's hosts, the zone-file publisher's DNS host) shares the bastion's CPU; sized by the
/// first connection's `ssh.max_handshakes`, and a process loads one inventory.
static HANDSHAKES: OnceLock<Semaphore> = OnceLock::new();

/// An open connection to one host; dropping it closes the connection.
pub struct Russh {
    handle: Handle<HostKeyCheck>,
    address: String,
    command_timeout: Duration,
}

/// Decides on the host key during the key exchange and remembers why, for the error.
struct HostKeyCheck {
    known: Arc<KnownHosts>,
    address: String,
    port: u16,
    /// Names a host certificate may carry: the address certorch connects to, and the
    /// inventory name.
    principals: Vec<String>,
    verdict: Arc<Mutex<Option<(Verdict, String)>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let presented = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => Presented::Key(key),
            PublicKeyOrCertificate::Certificate(c) => Presented::Certificate(c),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let principals: Vec<&str> = self.principals.iter().map(String::as_str).collect();
        let verdict = self
            .known
            .check(&self.address, self.port, &principals, presented, now);
        let ok = matches!(verdict, Verdict::Known | Verdict::CertifiedBy { .. });
        let described = describe(&key.public_key(), key.certificate().is_some());
        // A poisoned lock only means another check panicked; the verdict slot is still usable.
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some((verdict, described));
        Ok(ok)
    }
}

/// `ED25519 key SHA256:…` or `ED25519 host certificate for key SHA256:…`: public facts only.
fn describe(key: &russh::keys::PublicKey, certificate: bool) -> String {
    let kind = match key.algorithm() {
        Algorithm::Ed25519 => "ED25519".to_string(),
        Algorithm::Ecdsa { .. } => "ECDSA".to_string(),
        Algorithm::Rsa { .. } => "RSA".to_string(),
        other => other.as_str().to_string(),
    };
    format!(
        "{kind} {} {}",
        if certificate {
            "host certificate for key"
        } else {
            "key"
        },
        key.fingerprint(HashAlg::Sha256)
    )
}

/// The known_hosts files consulted: `ssh.known_hosts` or ~/.ssh/known_hosts, then the global one.
fn known_hosts_files(ssh: &SshConfig) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match &ssh.known_hosts {
        Some(p) => files.push(p.clone()),
        None => {
            if let Some(home) = std::env::home_dir() {
                files.push(home.join(".ssh/known_hosts"));
            }
        }
    }
    files.push(PathBuf::from(GLOBAL_KNOWN_HOSTS));
    files
}

/// The known_hosts files, read once per process and shared by every connection. Each
/// connection keeps its host-key check for as long as it lives, so a copy each would cost a
/// run of N hosts N parsed copies of a known_hosts file that lists N hosts. A failed read is
/// not kept: the next connection reads again.
fn shared_known_hosts(files: &[PathBuf]) -> std::io::Result<Arc<KnownHosts>> {
    static READ: Mutex<Vec<(Vec<PathBuf>, Arc<KnownHosts>)>> = Mutex::new(Vec::new());
    let mut read = READ.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, k)) = read.iter().find(|(f, _)| f.as_slice() == files) {
        return Ok(k.clone());
    }
    let k = Arc::new(KnownHosts::load(files)?);
    read.push((files.to_vec(), k.clone()));
    Ok(k)
}

/// Connects to `host` and logs in, all within `ssh.connect_timeout`.
pub async fn connect(host: &Host, ssh: &SshConfig) -> Result<Russh, Error> {
    let address = host.address.as_str();
    let fail = |reason: String, hint: String, cause: ConnectCause| Error::Connect {
        address: address.to_string(),
        reason,
        hint,
        cause,
    };
    let files = known_hosts_files(ssh);
    let known = shared_known_hosts(&files).map_err(|e| {
        fail(
            format!("cannot read known_hosts: {e}"),
            "make the known_hosts file readable by the user certorch runs as, or set ssh.known_hosts"
                .into(),
            ConnectCause::Other,
        )
    })?;
    let config = client::Config {
        keepalive_interval: Some(KEEPALIVE_INTERVAL),
        keepalive_max: KEEPALIVE_MAX,
        nodelay: true,
        preferred: preferred(&known, host, ssh.kex.as_deref()),
        ..Default::default()
    };
    let verdict = Arc::new(Mutex::new(None));
    let check = HostKeyCheck {
        known,
        address: address.to_string(),
        port: host.port,
        principals: vec![address.to_string(), host.name.clone()],
        verdict: verdict.clone(),
    };

    let handshakes = HANDSHAKES.get_or_init(|| Semaphore::new(ssh.max_handshakes));
    // The semaphore is never closed, so acquiring cannot fail.
    let _permit = handshakes.acquire().await.expect("semaphore never closed");
    let attempt = async {
        let mut handle = client::connect(Arc::new(config), (address, host.port), check)
            .await
            .map_err(|e| {
                let verdict = verdict.lock().unwrap_or_else(|p| p.into_inner()).take();
                handshake_error(host, &files, &e, verdict)
            })?;
        login(&mut handle, host, ssh).await?;
        Ok::<_, Error>(handle)
    };
    match tokio::time::timeout(ssh.connect_timeout, attempt).await {
        Ok(Ok(handle)) => Ok(Russh {
            handle,
            address: address.to_string(),
            command_timeout: ssh.command_timeout,
        }),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(fail(
            format!(
                "Connection timed out: no SSH session within {}s (TCP connect, key exchange and login)",
                ssh.connect_timeout.as_secs()
            ),
            super::login_timeout_hint(address),
            ConnectCause::Unreachable,
        )),
    }
}

/// Asks for the host key types known_hosts holds for this host first (as ssh orders its
/// HostKeyAlgorithms), and for host certificates when a CA is trusted for it; offers the key
/// exchanges of `ssh.kex` when set, else russh's own post-quantum-first list.
fn preferred(known: &KnownHosts, host: &Host, kex: Option<&[&'static str]>) -> russh::Preferred {
    let mut p = russh::Preferred::default();
    if let Some(names) = kex {
        p.kex = kex_list(names).into();
    }
    let family = |a: &Algorithm| {
        if matches!(a, Algorithm::Rsa { .. }) {
            Algorithm::Rsa { hash: None }
        } else {
            a.clone()
        }
    };
    let known_families: Vec<Algorithm> = known
        .known_algorithms(&host.address, host.port)
        .iter()
        .map(family)
        .collect();
    let (mut first, rest): (Vec<Algorithm>, Vec<Algorithm>) = p
        .key
        .iter()
        .cloned()
        .partition(|a| known_families.contains(&family(a)));
    first.extend(rest);
    if known.has_authority_for(&host.address, host.port) {
        p.host_key_certificates = first.clone().into();
    }
    p.key = first.into();
    p
}

/// The operator's key exchanges, then the markers russh's default list ends with: ext-info-c
/// (server-sig-algs, for RSA SHA-2 logins) and kex-strict-c (strict key exchange, the Terrapin
/// fix), which russh turns on only when they are in the list it is given.
fn kex_list(names: &[&'static str]) -> Vec<kex::Name> {
    names
        .iter()
        .map(|n| {
            // The inventory admits only names from inventory::kex::RUSSH_KEX, each of which
            // russh knows (a unit test below checks every one).
            kex::Name::try_from(*n).expect("ssh.kex holds names russh implements")
        })
        .chain([
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ])
        .collect()
}

fn unreachable_hint(host: &Host) -> String {
    format!(
        "{} does not answer on the SSH port: check that the host is up, sshd runs and the address and port in the inventory are right",
        host.address
    )
}

/// Why the TCP connection or the key exchange failed, and what to do.
fn handshake_error(
    host: &Host,
    files: &[PathBuf],
    e: &russh::Error,
    verdict: Option<(Verdict, String)>,
) -> Error {
    let address = &host.address;
    let listed = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let keyscan = if host.port == 22 {
        format!("ssh-keyscan {address}")
    } else {
        format!("ssh-keyscan -p {} {address}", host.port)
    };
    let changed_hint = format!(
        "the host key of {address} is unknown or has changed: verify the key out of band, then add it to known_hosts ({keyscan} and compare the fingerprint)"
    );
    let (reason, hint, cause) = match verdict {
        Some((Verdict::Unknown, what)) => (
            format!(
                "Host key verification failed: {address} presented an {what} that no known_hosts file lists for it ({listed})"
            ),
            changed_hint,
            ConnectCause::HostKey,
        ),
        Some((Verdict::Changed { file, line }, what)) => (
            format!(
                "Host key verification failed: {address} presented an {what}, but {}:{line} lists another key for it",
                file.display()
            ),
            super::changed_key_hint(address, host.port, &file.display().to_string()),
            ConnectCause::HostKey,
        ),
        Some((Verdict::Revoked { file, line }, what)) => (
            format!(
                "Host key verification failed: {address} presented an {what}, which {}:{line} marks @revoked",
                file.display()
            ),
            format!(
                "the host key of {address} is revoked: the host needs a new key; verify it out of band, then add it to known_hosts"
            ),
            ConnectCause::HostKey,
        ),
        Some((Verdict::BadCertificate(why), _)) => (
            format!("Host key verification failed: {address}: {why}"),
            format!(
                "the host certificate of {address} is not acceptable: re-sign the host key with `ssh-keygen -s CA -h -n {address}` and a current validity period, or add the plain host key to known_hosts"
            ),
            ConnectCause::HostKey,
        ),
        _ => {
            let reason = match e {
                russh::Error::IO(io) => io.to_string(),
                other => other.to_string(),
            };
            match e {
                russh::Error::IO(_)
                | russh::Error::ConnectionTimeout
                | russh::Error::KeepaliveTimeout
                | russh::Error::Disconnect => {
                    (reason, unreachable_hint(host), ConnectCause::Unreachable)
                }
                russh::Error::NoCommonAlgo {
                    kind: russh::AlgorithmKind::Kex,
                    ..
                } => (
                    reason,
                    format!(
                        "{address} accepts none of the key exchanges certorch offers: list one it accepts in ssh.kex (sshd -T | grep kexalgorithms on the host shows them), or remove ssh.kex for the default list"
                    ),
                    ConnectCause::Other,
                ),
                _ => (
                    reason,
                    format!(
                        "the SSH handshake with {address} failed: check that it runs an SSH server that offers current algorithms (ssh -v {address} shows what it offers)"
                    ),
                    ConnectCause::Other,
                ),
            }
        }
    };
    Error::Connect {
        address: address.clone(),
        reason,
        hint,
        cause,
    }
}

/// Logs in as the host's user: every key the agent holds, then the key files.
async fn login(
    handle: &mut Handle<HostKeyCheck>,
    host: &Host,
    ssh: &SshConfig,
) -> Result<(), Error> {
    let user = host.user.as_str();
    let mut notes: Vec<String> = Vec::new();
    let mut tried = 0usize;
    // Asked only when an RSA key comes up: the server's answer can take a second to arrive.
    let mut rsa_hash: Option<Option<HashAlg>> = None;
    let lost = |e: russh::Error| Error::Connect {
        address: host.address.clone(),
        reason: format!("the connection broke during login: {e}"),
        hint: unreachable_hint(host),
        cause: ConnectCause::Unreachable,
    };

    match std::env::var_os("SSH_AUTH_SOCK") {
        None => notes.push("no ssh-agent (SSH_AUTH_SOCK is not set)".into()),
        Some(sock) => match AgentClient::connect_uds(&sock).await {
            Err(e) => notes.push(format!(
                "ssh-agent at {} did not answer: {e}",
                Path::new(&sock).display()
            )),
            Ok(mut agent) => match agent.request_identities().await {
                Err(e) => notes.push(format!("ssh-agent did not list its keys: {e}")),
                Ok(ids) => {
                    for id in ids {
                        let AgentIdentity::PublicKey { key, .. } = id else {
                            continue;
                        };
                        tried += 1;
                        let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
                            *rsa_hash.get_or_insert(rsa_signature_hash(handle).await)
                        } else {
                            None
                        };
                        match handle
                            .authenticate_publickey_with(user, key, hash, &mut agent)
                            .await
                        {
                            Ok(AuthResult::Success) => return Ok(()),
                            Ok(AuthResult::Failure { .. }) => {}
                            Err(e) => notes.push(format!("ssh-agent would not sign: {e}")),
                        }
                    }
                }
            },
        },
    }

    let files: Vec<PathBuf> = match &ssh.identity {
        Some(p) => vec![p.clone()],
        None => std::env::home_dir()
            .map(|h| {
                DEFAULT_IDENTITIES
                    .iter()
                    .map(|n| h.join(".ssh").join(n))
                    .filter(|p| p.exists())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut encrypted = Vec::new();
    for path in &files {
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(k) => k,
            Err(russh::keys::Error::KeyIsEncrypted) => {
                encrypted.push(path.display().to_string());
                continue;
            }
            Err(e) => {
                notes.push(format!("cannot use {}: {e}", path.display()));
                continue;
            }
        };
        tried += 1;
        let hash = if matches!(key.algorithm(), Algorithm::Rsa { .. }) {
            *rsa_hash.get_or_insert(rsa_signature_hash(handle).await)
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        match handle.authenticate_publickey(user, key).await {
            Ok(AuthResult::Success) => return Ok(()),
            Ok(AuthResult::Failure { .. }) => {}
            Err(e) => return Err(lost(e)),
        }
    }
    if files.is_empty() {
        notes.push(match &ssh.identity {
            Some(_) => "ssh.identity is not set".into(),
            None => format!("no key file in ~/.ssh ({})", DEFAULT_IDENTITIES.join(", ")),
        });
    }

    let mut hint = if tried == 0 {
        "certorch had no key to log in with: load one into ssh-agent or set ssh.identity"
            .to_string()
    } else {
        "the login was refused: check the user, and that certorch's key (agent or ssh.identity) is in the host's authorized_keys".to_string()
    };
    if !encrypted.is_empty() {
        hint.push_str(&format!(
            "; {} is encrypted: certorch reads encrypted keys only through ssh-agent (ssh-add it)",
            encrypted.join(", ")
        ));
    }
    let mut reason = if tried == 0 {
        format!(
            "Permission denied: certorch had no usable key to offer {user}@{}",
            host.address
        )
    } else {
        format!(
            "Permission denied: {user}@{} accepted none of the {tried} keys offered",
            host.address
        )
    };
    if !notes.is_empty() {
        reason.push_str(&format!(" ({})", notes.join("; ")));
    }
    Err(Error::Connect {
        address: host.address.clone(),
        reason,
        hint,
        cause: ConnectCause::Auth,
    })
}

/// rsa-sha2-512 or -256 as the server's server-sig-algs allow (RFC 8332); SHA-256 when the
/// server does not say, since every server this century takes it and SHA-1 is refused by many.
async fn rsa_signature_hash(handle: &Handle<HostKeyCheck>) -> Option<HashAlg> {
    match handle.best_supported_rsa_hash().await {
        Ok(Some(h)) => h,
        _ => Some(HashAlg::Sha256),
    }
}

impl Russh {
    /// Runs one command line on a new session channel and collects what it produced.
    async fn exec(&self, line: &str, stdin: Option<&[u8]>, label: &str) -> Result<Output, Error> {
        let lost = |e: russh::Error| Error::Command {
            label: label.to_string(),
            reason: e.to_string(),
        };
        let channel = self.handle.channel_open_session().await.map_err(lost)?;
        channel.exec(true, line.as_bytes()).await.map_err(lost)?;
        let (mut read, write) = channel.split();
        // Writing and reading at once: a command may print before it has read all its input.
        let writing = async {
            if let Some(data) = stdin {
                write.data(data).await?;
            }
            write.eof().await
        };
        let reading = async {
            let mut out = Output {
                code: None,
                stdout: Vec::new(),
                stderr: String::new(),
            };
            let mut stdout = super::Capped::default();
            let mut stderr = super::Capped::default();
            let mut refused = false;
            let mut within = true;
            // RFC 4254 §6.10: a server that ran the command sends its exit status or signal.
            let mut ended = false;
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => within = stdout.push(&data),
                    // RFC 4254 §5.2: data type 1 is stderr.
                    ChannelMsg::ExtendedData { data, ext: 1 } => within = stderr.push(&data),
                    ChannelMsg::ExitStatus { exit_status } => {
                        out.code = i32::try_from(exit_status).ok();
                        ended = true;
                    }
                    ChannelMsg::ExitSignal { .. } => ended = true,
                    ChannelMsg::Failure => refused = true,
                    ChannelMsg::Close => break,
                    _ => {}
                }
                if !within {
                    break;
                }
            }
            out.stdout = stdout.into_inner();
            out.stderr = String::from_utf8_lossy(&stderr.into_inner()).into_owned();
            (out, refused, within, ended)
        };
        // Once the channel closes the answer is complete; a writer still waiting for window
        // space (a command that exited without reading its input) is dropped then.
        let (out, refused, within, ended, written) = {
            tokio::pin!(writing, reading);
            let mut written = None;
            let (out, refused, within, ended) = loop {
                tokio::select! {
                    w = &mut writing, if written.is_none() => written = Some(w),
                    r = &mut reading => break r,
                }
            };
            (out, refused, within, ended, written)
        };
        if !within {
            // Closed now, not when dropped: a command that goes on printing gets SIGPIPE, and
            // a batch stops there instead of running its later steps (a reload).
            if let Err(e) = write.close().await {
                tracing::debug!("closing the channel of {label} on {}: {e}", self.address);
            }
            return Err(Error::TooMuchOutput {
                label: label.to_string(),
                address: self.address.clone(),
            });
        }
        if refused {
            return Err(Error::Command {
                label: label.to_string(),
                reason: "the host refused to run the command on a session channel".into(),
            });
        }
        // A command that exits before reading all its input closes the channel under the
        // writer; its exit status is the answer then.
        if let Some(Err(e)) = written
            && out.code.is_none()
        {
            return Err(Error::Command {
                label: label.to_string(),
                reason: format!("writing standard input: {e}"),
            });
        }
        // Neither an exit status nor a signal: the connection went (a host that died), not
        // the command; as OpenSSH reports it.
        if !ended {
            return Err(Error::Command {
                label: label.to_string(),
                reason: "the connection closed before the command's exit status arrived".into(),
            });
        }
        Ok(out)
    }
}

impl Transport for Russh {
    fn run<'a>(
        &'a self,
        cmd: &'a Cmd,
        stdin: Option<&'a [u8]>,
    ) -> BoxFuture<'a, Result<Output, Error>> {
        Box::pin(super::bounded(
            cmd,
            &self.address,
            self.command_timeout,
            async move |line, label| self.exec(&line, stdin, label).await,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(port: u16) -> Host {
        Host {
            name: "web1.example.org".into(),
            address: "192.0.2.1".into(),
            port,
            user: "root".into(),
            transport: crate::inventory::TransportKind::Russh,
            become_via: None,
            certs: Vec::new(),
        }
    }

    fn known(text: &str) -> KnownHosts {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("known_hosts");
        std::fs::write(&p, text).unwrap();
        KnownHosts::load(&[p, dir.path().join("absent")]).unwrap()
    }

    const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGI/5/RW3p+IBCWBNdH8a7O+hGE0MRBjG01Qo+wNbNYKoKVd24mPba68Bj71oGSs7QB2hioFdwbw57RpwduXIDA=";
    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbyfxcnFx2roLXYMcBXqaqgniX7hd2qHgV33ni5OAsj";

    /// The key type known_hosts holds is asked for first, so a host with several keys presents
    /// the one the operator recorded; certificates are asked for only under a trusted CA.
    #[test]
    fn host_key_algorithms_follow_known_hosts() {
        let p = preferred(&known(&format!("192.0.2.1 {ECDSA}\n")), &host(22), None);
        assert!(matches!(p.key[0], Algorithm::Ecdsa { .. }), "{:?}", p.key);
        assert!(p.key.contains(&Algorithm::Ed25519));
        assert!(p.host_key_certificates.is_empty());

        let p = preferred(
            &known(&format!("@cert-authority 192.0.2.* {ED25519}\n")),
            &host(22),
            None,
        );
        assert!(!p.host_key_certificates.is_empty());

        // Another port: the bare-name line does not apply.
        let p = preferred(&known(&format!("192.0.2.1 {ECDSA}\n")), &host(2222), None);
        assert_eq!(p.key, russh::Preferred::default().key);
    }

    /// Without ssh.kex russh's own post-quantum-first list; with it, the operator's names in
    /// their order, and strict kex (the Terrapin fix) and ext-info still announced.
    #[test]
    fn kex_offers_the_operators_names_and_keeps_strict_kex() {
        let k = known("");
        let default = preferred(&k, &host(22), None);
        assert_eq!(default.kex, russh::Preferred::default().kex);
        assert_eq!(default.kex[0], kex::MLKEM768X25519_SHA256);

        let p = preferred(&k, &host(22), Some(&["curve25519-sha256"]));
        assert_eq!(
            p.kex.as_ref(),
            [
                kex::CURVE25519,
                kex::EXTENSION_SUPPORT_AS_CLIENT,
                kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
            ]
        );
        // The markers are in russh's default list too: ours must not lose what it asks for.
        for marker in [
            kex::EXTENSION_SUPPORT_AS_CLIENT,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_CLIENT,
        ] {
            assert!(default.kex.contains(&marker));
        }
    }

    /// Every name the inventory admits is one russh implements (kex_list would panic otherwise).
    #[test]
    fn every_admitted_kex_name_is_known_to_russh() {
        let all = kex_list(crate::inventory::kex::RUSSH_KEX);
        assert_eq!(all.len(), crate::inventory::kex::RUSSH_KEX.len() + 2);
        for (name, n) in crate::inventory::kex::RUSSH_KEX.iter().zip(&all) {
            assert_eq!(n.as_ref(), *name);
        }
    }
}
