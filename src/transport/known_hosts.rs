//! The operator's OpenSSH known_hosts files, read the way `ssh` reads them (sshd(8), section
//! SSH_KNOWN_HOSTS FILE FORMAT): comma-separated host patterns with `*`/`?` wildcards and `!`
//! negation, `[host]:port` for ports other than 22, hashed names (`|1|salt|hmac`, HMAC-SHA1),
//! and the `@cert-authority` and `@revoked` markers. Used by the russh transport; russh's own
//! helper knows neither markers nor wildcards, and stops at the first key it cannot parse.

use std::path::{Path, PathBuf};

use base64::Engine;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::ssh_key::{Certificate, HashAlg, PublicKey};

/// What a line is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// A host key.
    Key,
    /// `@cert-authority`: a CA whose host certificates are trusted for these hosts.
    CertAuthority,
    /// `@revoked`: never accept this key (nor certificates it signed) for these hosts.
    Revoked,
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    patterns: Vec<String>,
    key: KeyData,
    file: PathBuf,
    line: usize,
}

/// Every entry of the known_hosts files read; files that do not exist count as empty.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What the server presented in the key exchange.
#[derive(Debug, Clone, Copy)]
pub enum Presented<'a> {
    Key(&'a PublicKey),
    Certificate(&'a Certificate),
}

/// The outcome of checking a presented host key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A known_hosts line lists this key for the host.
    Known,
    /// A host certificate signed by a CA trusted for the host, valid now, naming the host.
    CertifiedBy { file: PathBuf, line: usize },
    /// No line lists any key for the host (nor a CA that signed what it presented).
    Unknown,
    /// Lines list other keys for the host: the key changed, or someone is in the middle.
    Changed { file: PathBuf, line: usize },
    /// An `@revoked` line names the key, or the CA that signed the certificate.
    Revoked { file: PathBuf, line: usize },
    /// A certificate from a trusted CA that is not acceptable (time, principals, type).
    BadCertificate(String),
}

impl KnownHosts {
    /// Reads each file in turn; a missing file is skipped, an unreadable one is an error.
    pub fn load(paths: &[PathBuf]) -> std::io::Result<KnownHosts> {
        let mut kh = KnownHosts::default();
        for p in paths {
            match std::fs::read_to_string(p) {
                Ok(text) => kh.add(p, &text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(std::io::Error::new(
                        e.kind(),
                        format!("reading {}: {e}", p.display()),
                    ));
                }
            }
        }
        Ok(kh)
    }

    /// Adds the entries of one file's text. Lines that do not parse are skipped, as ssh does.
    fn add(&mut self, file: &Path, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut fields = line.split_whitespace();
            let Some(mut first) = fields.next() else {
                continue;
            };
            let marker = match first {
                "@cert-authority" => Marker::CertAuthority,
                "@revoked" => Marker::Revoked,
                m if m.starts_with('@') => continue,
                _ => Marker::Key,
            };
            if marker != Marker::Key {
                match fields.next() {
                    Some(f) => first = f,
                    None => continue,
                }
            }
            let (Some(kind), Some(blob)) = (fields.next(), fields.next()) else {
                continue;
            };
            let Ok(key) = PublicKey::from_openssh(&format!("{kind} {blob}")) else {
                continue;
            };
            self.entries.push(Entry {
                marker,
                patterns: first.split(',').map(str::to_string).collect(),
                key: key.key_data().clone(),
                file: file.to_path_buf(),
                line: i + 1,
            });
        }
    }

    fn for_host<'a>(
        &'a self,
        host: &'a str,
        port: u16,
        marker: Marker,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let name = lookup_name(host, port);
        self.entries
            .iter()
            .filter(move |e| e.marker == marker && host_matches(&name, &e.patterns))
    }

    /// Whether a CA is trusted for `host`: then the client asks for host certificates.
    pub fn has_authority_for(&self, host: &str, port: u16) -> bool {
        self.for_host(host, port, Marker::CertAuthority)
            .next()
            .is_some()
    }

    /// The algorithms of the plain keys known for `host`, so the client can ask for those first
    /// (as ssh orders HostKeyAlgorithms by what known_hosts holds).
    pub fn known_algorithms(&self, host: &str, port: u16) -> Vec<russh::keys::Algorithm> {
        let mut algs = Vec::new();
        for e in self.for_host(host, port, Marker::Key) {
            let a = e.key.algorithm();
            if !algs.contains(&a) {
                algs.push(a);
            }
        }
        algs
    }

    /// Checks what `host` (reached on `port`) presented at `now` (Unix seconds).
    /// `principals` are the names a host certificate may carry for this host.
    pub fn check(
        &self,
        host: &str,
        port: u16,
        principals: &[&str],
        presented: Presented<'_>,
        now: u64,
    ) -> Verdict {
        let plain = match presented {
            Presented::Key(k) => k.key_data(),
            Presented::Certificate(c) => c.public_key(),
        };
        for r in self.for_host(host, port, Marker::Revoked) {
            let ca_revoked =
                matches!(presented, Presented::Certificate(c) if c.signature_key() == &r.key);
            if &r.key == plain || ca_revoked {
                return Verdict::Revoked {
                    file: r.file.clone(),
                    line: r.line,
                };
            }
        }
        if let Presented::Certificate(cert) = presented
            && let Some(ca) = self
                .for_host(host, port, Marker::CertAuthority)
                .find(|ca| &ca.key == cert.signature_key())
        {
            return match certificate_problem(cert, &ca.key, principals, now) {
                None => Verdict::CertifiedBy {
                    file: ca.file.clone(),
                    line: ca.line,
                },
                Some(why) => Verdict::BadCertificate(why),
            };
        }
        // A plain key, or a certificate from no CA we trust: ssh then retries with the plain
        // key inside the certificate, and so do we.
        let mut other = None;
        for e in self.for_host(host, port, Marker::Key) {
            if &e.key == plain {
                return Verdict::Known;
            }
            other.get_or_insert(e);
        }
        match other {
            Some(e) => Verdict::Changed {
                file: e.file.clone(),
                line: e.line,
            },
            None => Verdict::Unknown,
        }
    }
}

/// Why a certificate signed by a trusted CA is still not acceptable, if it is not.
fn certificate_problem(
    cert: &Certificate,
    ca: &KeyData,
    principals: &[&str],
    now: u64,
) -> Option<String> {
    if cert.cert_type() != CertType::Host {
        return Some("it presented a user certificate as its host certificate".into());
    }
    if cert
        .validate_at(now, [&ca.fingerprint(HashAlg::Sha256)])
        .is_err()
    {
        return Some(format!(
            "its host certificate (key id `{}`) has a bad signature or is outside its validity period",
            cert.key_id()
        ));
    }
    // No critical options are defined for host certificates; ssh refuses any it does not know.
    if !cert.critical_options().is_empty() {
        return Some(format!(
            "its host certificate (key id `{}`) carries critical options",
            cert.key_id()
        ));
    }
    let named = cert
        .valid_principals()
        .iter()
        .any(|p| principals.iter().any(|h| p.eq_ignore_ascii_case(h)));
    if !named {
        return Some(format!(
            "its host certificate (key id `{}`) is for {} and does not name {}",
            cert.key_id(),
            if cert.valid_principals().is_empty() {
                "no host".to_string()
            } else {
                cert.valid_principals().join(", ")
            },
            principals.join(" or ")
        ));
    }
    None
}

/// The name known_hosts lists a host under: `host`, or `[host]:port` for other ports.
fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// Whether `name` matches a line's patterns: some pattern matches and no negated one does.
fn host_matches(name: &str, patterns: &[String]) -> bool {
    let mut matched = false;
    for p in patterns {
        if let Some(hashed) = p.strip_prefix("|1|") {
            matched |= hashed_matches(name, hashed);
        } else if let Some(neg) = p.strip_prefix('!') {
            if glob(&neg.to_ascii_lowercase(), name) {
                return false;
            }
        } else {
            matched |= glob(&p.to_ascii_lowercase(), name);
        }
    }
    matched
}

/// `salt|hmac`, both base64: HMAC-SHA1 of the name keyed with the salt (ssh-keygen -H).
fn hashed_matches(name: &str, salt_and_hash: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
        return false;
    };
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    aws_lc_rs::hmac::verify(&key, name.as_bytes(), &hash).is_ok()
}

/// ssh's pattern match: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two real ed25519 host keys and a CA key (ssh-keygen -t ed25519).
    const KEY_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbyfxcnFx2roLXYMcBXqaqgniX7hd2qHgV33ni5OAsj";
    const KEY_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFeCZi/msZT8hGJdBtAJTft9E6zVfH0y104TXdCg/1L1";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn kh(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add(Path::new("/kh"), text);
        k
    }

    fn check(k: &KnownHosts, host: &str, port: u16, presented: &str) -> Verdict {
        k.check(host, port, &[host], Presented::Key(&key(presented)), 0)
    }

    #[test]
    fn plain_names_comments_and_several_names_per_line() {
        let k = kh(&format!(
            "# a comment\n\n   \nweb1.example.org,192.0.2.1 {KEY_A} web1\n"
        ));
        assert_eq!(check(&k, "192.0.2.1", 22, KEY_A), Verdict::Known);
        assert_eq!(check(&k, "WEB1.example.org", 22, KEY_A), Verdict::Known);
        assert_eq!(check(&k, "web2.example.org", 22, KEY_A), Verdict::Unknown);
        assert_eq!(
            check(&k, "192.0.2.1", 22, KEY_B),
            Verdict::Changed {
                file: "/kh".into(),
                line: 4
            }
        );
    }

    #[test]
    fn a_non_standard_port_uses_the_bracket_form() {
        let k = kh(&format!("[192.0.2.1]:2222 {KEY_A}\n192.0.2.2 {KEY_B}\n"));
        assert_eq!(check(&k, "192.0.2.1", 2222, KEY_A), Verdict::Known);
        assert_eq!(check(&k, "192.0.2.1", 22, KEY_A), Verdict::Unknown);
        // A plain name does not stand for other ports.
        assert_eq!(check(&k, "192.0.2.2", 2222, KEY_B), Verdict::Unknown);
    }

    #[test]
    fn hashed_names() {
        // `ssh-keygen -H` of "192.0.2.1" and of "[192.0.2.1]:2222".
        let k = kh(&format!(
            "|1|18AAOOes9fmkEe2Lk7xZ/48OZCg=|k1XBBmmhC+8jXoSNn+UwWabdvbg= {KEY_A}\n\
             |1|LVsBFLI3ofpcnZKrEups1mLBMjw=|hXuNEDWguXpsoJCGQHL1vllUiBg= {KEY_B}\n"
        ));
        assert_eq!(check(&k, "192.0.2.1", 22, KEY_A), Verdict::Known);
        assert_eq!(check(&k, "192.0.2.1", 2222, KEY_B), Verdict::Known);
        assert_eq!(check(&k, "192.0.2.9", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn wildcards_and_negation() {
        let k = kh(&format!("*.example.org,!db?.example.org {KEY_A}\n"));
        assert_eq!(check(&k, "web1.example.org", 22, KEY_A), Verdict::Known);
        assert_eq!(check(&k, "db1.example.org", 22, KEY_A), Verdict::Unknown);
        assert_eq!(check(&k, "example.org", 22, KEY_A), Verdict::Unknown);
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*", ""));
    }

    #[test]
    fn revoked_wins_over_a_known_line() {
        let k = kh(&format!("web1 {KEY_A}\n@revoked * {KEY_A}\n"));
        assert_eq!(
            check(&k, "web1", 22, KEY_A),
            Verdict::Revoked {
                file: "/kh".into(),
                line: 2
            }
        );
    }

    #[test]
    fn a_cert_authority_line_is_not_a_host_key() {
        let k = kh(&format!("@cert-authority *.example.org {KEY_A}\n"));
        assert!(k.has_authority_for("web1.example.org", 22));
        assert!(!k.has_authority_for("web1.example.net", 22));
        // The CA's own key presented as a plain host key is not trusted by that line.
        assert_eq!(check(&k, "web1.example.org", 22, KEY_A), Verdict::Unknown);
    }

    #[test]
    fn lines_that_do_not_parse_are_skipped() {
        let k = kh(&format!(
            "web1 ssh-ed25519 notbase64\n@unknown-marker web1 {KEY_B}\nweb1\nweb1 {KEY_A}\n"
        ));
        assert_eq!(check(&k, "web1", 22, KEY_A), Verdict::Known);
        assert_eq!(k.known_algorithms("web1", 22).len(), 1);
    }

    /// A host certificate made by `ssh-keygen -s ca -h -n web1.example.org,192.0.2.1 -V
    /// 20200101:20400101`, checked against its CA line (signature, type, principals, time).
    #[test]
    fn host_certificates_from_a_trusted_ca() {
        let cert = Certificate::from_openssh(CERT).unwrap();
        let ca = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJG3YSVt9D5o0b+O7BmYv9H+ZMWcoq1HGchZsPr5UL6h";
        let k = kh(&format!("@cert-authority *.example.org,192.0.2.1 {ca}\n"));
        let in_2030 = 1_900_000_000;
        let v = |host: &str, now| k.check(host, 22, &[host], Presented::Certificate(&cert), now);
        assert_eq!(
            v("web1.example.org", in_2030),
            Verdict::CertifiedBy {
                file: "/kh".into(),
                line: 1
            }
        );
        assert!(matches!(
            v("web2.example.org", in_2030),
            Verdict::BadCertificate(m) if m.contains("does not name web2.example.org")
        ));
        assert!(matches!(
            v("web1.example.org", 2_300_000_000),
            Verdict::BadCertificate(m) if m.contains("validity period")
        ));
        // A CA trusted for other hosts only: the certificate's plain key is looked up instead.
        assert_eq!(v("web1.example.net", in_2030), Verdict::Unknown);
        let revoked = kh(&format!(
            "@cert-authority * {ca}\n@revoked web1.example.org {ca}\n"
        ));
        assert!(matches!(
            revoked.check(
                "web1.example.org",
                22,
                &["web1.example.org"],
                Presented::Certificate(&cert),
                in_2030
            ),
            Verdict::Revoked { line: 2, .. }
        ));
    }

    const CERT: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIE68xwZ+qAZMJ6cj54bC4qI5OJJ88JSvfy5IjlM5q59uAAAAIHbyfxcnFx2roLXYMcBXqaqgniX7hd2qHgV33ni5OAsjAAAAAAAAAAAAAAACAAAACXdlYjEtaG9zdAAAACEAAAAQd2ViMS5leGFtcGxlLm9yZwAAAAkxOTIuMC4yLjEAAAAAXgvhAAAAAACDqn6AAAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACCRt2ElbfQ+aNG/juwZmL/R/mTFnKKtRxnIWbD6+VC+oQAAAFMAAAALc3NoLWVkMjU1MTkAAABAQGfcG5r84mHOt7vOvjSBC+toeJdtYMLWkk+8Sb9G8/4Ly6Kh01v+6DKEfnoE76VDfOt8Mz2sMVi6JFhBhyA7AA==";
}
