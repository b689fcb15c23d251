//! Validated value types of the inventory. Each parses from the YAML string and refuses
//! anything that is not what its name says, so later stages never see raw inventory text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// The most names a certificate may carry (Let's Encrypt's limit; see DOMAIN.md).
pub const MAX_NAMES_PER_CERT: usize = 100;

/// A DNS name for a certificate: lower-case LDH labels, optionally a leading `*.` wildcard.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct DnsName(String);

impl DnsName {
    /// The name as text, lower-case, without a trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name the dns-01 TXT record is asked for: `_acme-challenge.<name>` with a wildcard's
    /// `*.` removed (RFC 8555 §8.4).
    pub fn challenge_name(&self) -> String {
        format!("_acme-challenge.{}", self.0.trim_start_matches("*."))
    }
}

impl TryFrom<String> for DnsName {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let name = s.strip_suffix('.').unwrap_or(&s).to_ascii_lowercase();
        let hint = "write a DNS name like www.example.org (letters, digits, '-' and dots; '*.' only as the first label)";
        if name.is_empty() {
            return Err(format!("empty DNS name: {hint}"));
        }
        if name.len() > 253 {
            return Err(format!("DNS name is longer than 253 characters: {hint}"));
        }
        let body = name.strip_prefix("*.").unwrap_or(&name);
        if body.parse::<std::net::IpAddr>().is_ok() {
            return Err(format!(
                "`{s}` is an IP address, not a DNS name: certorch orders certificates for DNS names only (dns-01 proves a name, not an address); write the host's DNS name"
            ));
        }
        if !name.is_ascii() {
            // IDNA (RFC 5891): what the CA and DNS see is the A-label; a certificate carries
            // that form, so the inventory does too and the operator sees what is ordered.
            return Err(match idna::domain_to_ascii_strict(&name) {
                Ok(a) => {
                    format!("`{s}` is an internationalized name (U-label): write its A-label `{a}`")
                }
                Err(_) => format!(
                    "`{s}` has characters a DNS name cannot carry, even as an internationalized name: {hint}"
                ),
            });
        }
        let labels: Vec<&str> = body.split('.').collect();
        for label in &labels {
            if label.is_empty() {
                return Err(format!(
                    "`{s}` has an empty label (two dots in a row, or a leading dot): {hint}"
                ));
            }
            if label.len() > 63 {
                return Err(format!(
                    "`{s}` has a label of {} characters; a label has at most 63: {hint}",
                    label.len()
                ));
            }
            let ok = label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-');
            if !ok {
                return Err(format!("`{s}` is not a valid DNS name: {hint}"));
            }
        }
        // RFC 3696 §2: a top-level domain is never all digits; such a name is an address typo.
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!(
                "`{s}` ends in a label of digits only, which no top-level domain is: {hint}"
            ));
        }
        // A registry's suffix (ICANN section of the Public Suffix List) is no one's domain:
        // CAs refuse it and a wildcard directly under it (Baseline Requirements 3.2.2.6).
        if let Some(suffix) = psl::suffix(body.as_bytes())
            && suffix.typ() == Some(psl::Type::Icann)
            && suffix.as_bytes() == body.as_bytes()
        {
            return Err(if body.len() == name.len() {
                format!(
                    "`{s}` is a public suffix (a registry's, not a domain of yours), which no CA issues for: name a domain under it, like example.{body}"
                )
            } else {
                format!(
                    "`{s}` is a wildcard directly under the public suffix `{body}`, which no CA issues: name a domain under it, like *.example.{body}"
                )
            });
        }
        if labels.len() < 2 {
            return Err(format!("`{s}` has a single label; {hint}"));
        }
        Ok(DnsName(name))
    }
}

impl FromStr for DnsName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        DnsName::try_from(s.to_string())
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// An absolute path on a host, free of anything a shell or `mv` could misread.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct RemotePath(String);

impl RemotePath {
    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RemotePath {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        if !s.starts_with('/') {
            return Err(format!(
                "`{s}` is not an absolute path: write it from the root, like /etc/ssl/certs/www.pem"
            ));
        }
        if s.ends_with('/') {
            return Err(format!("`{s}` names a directory: give the file's path"));
        }
        // Quoting already makes any byte safe for the shell; these limits keep paths readable
        // in logs and out of reach of the classic traps (`..` escaping a directory, control
        // characters hiding in output).
        if s.split('/').any(|c| c == "..") {
            return Err(format!("`{s}` contains `..`: give the path without it"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(
                "a path contains a control character (NUL, newline, tab, …): write the path without it"
                    .to_string(),
            );
        }
        // `/etc/ssl/certs/.` is the directory itself: a file written there would replace it.
        if s.split('/').any(|c| c == ".") {
            return Err(format!(
                "`{s}` contains `.` as a component: give the file's path without it"
            ));
        }
        // The kernel's own file systems: writing a key or certificate there changes a device
        // or a kernel setting as root, never a file a service reads.
        if let Some(fs) = ["/proc", "/sys", "/dev"]
            .into_iter()
            .find(|fs| s == *fs || s.starts_with(&format!("{fs}/")))
        {
            return Err(format!(
                "`{s}` is under {fs}, which the kernel provides, not a disk: write the file's path on the host's disk, like /etc/ssl/certs/www.pem"
            ));
        }
        if s.len() > 1024 {
            return Err("a path is longer than 1024 characters".to_string());
        }
        Ok(RemotePath(s))
    }
}

impl fmt::Display for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RemotePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A user or group name on a host (POSIX portable name characters).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AccountName(String);

impl AccountName {
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if ok {
            Ok(AccountName(s))
        } else {
            Err(format!(
                "`{s}` is not a valid user or group name: use letters, digits, '.', '_' and '-'"
            ))
        }
    }
}

/// A file mode written in octal, like "0644".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct FileMode(u32);

impl FileMode {
    /// The mode bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// The mode as four octal digits, as `chmod` takes it.
    pub fn octal(self) -> String {
        format!("{:04o}", self.0)
    }
}

impl TryFrom<String> for FileMode {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits = s.strip_prefix("0o").unwrap_or(&s);
        match u32::from_str_radix(digits, 8) {
            Ok(bits) if bits <= 0o777 && !digits.is_empty() && bits & 0o400 == 0 => Err(format!(
                "`{s}` lets not even the file's owner read it: give the owner read, like \"0644\" for certificates or \"0600\" for keys"
            )),
            Ok(bits) if bits <= 0o777 && !digits.is_empty() => Ok(FileMode(bits)),
            _ => Err(format!(
                "`{s}` is not a file mode: write it in octal and quoted, like \"0644\""
            )),
        }
    }
}

/// A TCP port, 1 to 65535: port 0 is "any port" to the kernel, never one to connect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "i64")]
pub struct Port(u16);

impl Port {
    /// The port number.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl TryFrom<i64> for Port {
    type Error = String;
    fn try_from(n: i64) -> Result<Self, String> {
        match u16::try_from(n) {
            Ok(p) if p != 0 => Ok(Port(p)),
            _ => Err(format!(
                "`{n}` is not a TCP port: write a number from 1 to 65535, like 22 or 443"
            )),
        }
    }
}

/// The kind of private key a host generates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum KeyType {
    /// ECDSA on NIST P-256 (the default: small, fast, accepted everywhere).
    #[default]
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// RSA, 2048 bits.
    Rsa2048,
    /// RSA, 3072 bits.
    Rsa3072,
    /// RSA, 4096 bits.
    Rsa4096,
}

impl KeyType {
    /// The inventory spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Rsa3072 => "rsa-3072",
            KeyType::Rsa4096 => "rsa-4096",
        }
    }

    /// All key types, for help texts.
    pub const ALL: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];
}

impl TryFrom<String> for KeyType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = KeyType::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown key type `{s}`: write one of {}", all.join(", "))
            })
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When a certificate is due for renewal.
#[derive(Clone, Copy, Debug, PartialEq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum RenewPolicy {
    /// Renew when less than this share of the lifetime is left; lifetimes under ten days renew
    /// at half (DOMAIN.md: a 6-day certificate must renew about 3 days before expiry).
    #[default]
    ThirdOfLifetime,
    /// Renew when less than this fraction of the lifetime is left.
    Fraction(f64),
    /// Renew when less than this much time is left.
    Before(Duration),
}

impl TryFrom<String> for RenewPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let hint = "write a share of the lifetime like 1/3 or 0.33, or a time like 30d";
        if let Some((a, b)) = s.split_once('/') {
            let (a, b): (f64, f64) = match (a.trim().parse(), b.trim().parse()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => return Err(format!("`{s}` is not a fraction: {hint}")),
            };
            return fraction(a / b, &s, hint);
        }
        if let Ok(f) = s.trim().parse::<f64>() {
            return fraction(f, &s, hint);
        }
        // Digits and a unit: a time, whose own error (too long, unknown unit) says more.
        let digits = s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let a_time = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        parse_duration(&s).map(RenewPolicy::Before).map_err(|e| {
            if a_time {
                e
            } else {
                format!("`{s}` is not a renewal policy: {hint}")
            }
        })
    }
}

fn fraction(f: f64, s: &str, hint: &str) -> Result<RenewPolicy, String> {
    if f > 0.0 && f < 1.0 {
        Ok(RenewPolicy::Fraction(f))
    } else {
        Err(format!("`{s}` must be between 0 and 1: {hint}"))
    }
}

/// A duration written like `30s`, `5m`, `2h`, `30d` (a bare number is seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Span(pub Duration);

impl TryFrom<String> for Span {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        parse_duration(&s).map(Span)
    }
}

/// A timeout written like a [`Span`]; zero would fail everything at once, so it is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Timeout(pub Duration);

impl TryFrom<String> for Timeout {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let d = parse_duration(&s)?;
        if d.is_zero() {
            return Err(format!(
                "`{}` is no time at all: a timeout of zero fails every attempt; write at least 1s, like 30s or 5m",
                s.trim()
            ));
        }
        Ok(Timeout(d))
    }
}

/// The longest duration certorch takes: longer is a typo, and would overflow date arithmetic.
const LONGEST: u64 = 3650 * 86400;

/// Parses `30s`, `5m`, `2h`, `30d`, or a bare number of seconds, up to ten years.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: write it like 30s, 5m, 2h or 30d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("`{s}` has an unknown unit: use s, m, h or d")),
    };
    match n.checked_mul(unit) {
        Some(secs) if secs <= LONGEST => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "`{s}` is longer than ten years: write a duration like 30s, 5m, 2h or 30d, at most 3650d"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        let ok = [
            "www.example.org",
            "WWW.Example.org.",
            "*.example.org",
            "a-b.c1.example",
        ];
        for n in ok {
            assert!(DnsName::from_str(n).is_ok(), "{n}");
        }
        assert_eq!(
            DnsName::from_str("WWW.Example.org.").unwrap().as_str(),
            "www.example.org"
        );
        let bad = [
            "a.example.org;touch /tmp/x",
            "$(id).example.org",
            "localhost",
            "a..b",
            "-a.example.org",
            "a-.example.org",
            "a.*.example.org",
            "**.example.org",
            "a b.example.org",
            "a.example.org\n",
            "",
        ];
        for n in bad {
            assert!(DnsName::from_str(n).is_err(), "{n:?}");
        }
        let long = format!("{}.org", "a".repeat(64));
        assert!(DnsName::from_str(&long).is_err());
    }

    /// Issue 13: names a CA refuses, or that are not names, are refused at load with the
    /// reason and the fix.
    #[test]
    fn issue_13_names_no_ca_issues_for() {
        let cases = [
            (
                "bücher.example",
                "write its A-label `xn--bcher-kva.example`",
            ),
            ("192.0.2.1", "is an IP address, not a DNS name"),
            ("2001:db8::1", "is an IP address, not a DNS name"),
            ("host.example.123", "ends in a label of digits only"),
            ("co.uk", "`co.uk` is a public suffix"),
            ("com", "`com` is a public suffix"),
            ("*.com", "wildcard directly under the public suffix `com`"),
            (
                "*.co.uk",
                "wildcard directly under the public suffix `co.uk`",
            ),
            ("a..b.example", "has an empty label"),
        ];
        for (name, want) in cases {
            let err = DnsName::from_str(name).unwrap_err();
            assert!(err.contains(want), "{name}: {err}");
        }
        let long = format!("{}.example.org", "a".repeat(64));
        assert!(
            DnsName::from_str(&long)
                .unwrap_err()
                .contains("a label of 64 characters; a label has at most 63")
        );
        // Registrable domains under a suffix, private-section suffixes, and test TLDs stay.
        for ok in [
            "example.co.uk",
            "*.example.co.uk",
            "*.example.com",
            "foo.github.io",
            "host1.example.test",
            "xn--bcher-kva.example",
        ] {
            DnsName::from_str(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    /// Issue 13: paths a root write must never go to, and ports and modes that cannot work.
    #[test]
    fn issue_13_paths_ports_modes() {
        for (bad, want) in [
            ("/proc/sys/kernel/core_pattern", "is under /proc"),
            ("/sys/kernel/uevent_helper", "is under /sys"),
            ("/dev/sda", "is under /dev"),
            ("/dev", "is under /dev"),
            ("/etc/ssl/certs/.", "contains `.` as a component"),
            ("/etc/./ssl/x.pem", "contains `.` as a component"),
            ("/etc/ssl/x\0.pem", "control character (NUL"),
        ] {
            let bad = bad.replace("\\0", "\0");
            let err = RemotePath::try_from(bad.clone()).unwrap_err();
            assert!(err.contains(want), "{bad:?}: {err}");
        }
        for ok in ["/devices/x.pem", "/etc/ssl/my site.pem", "/run/certs/x.pem"] {
            RemotePath::try_from(ok.to_string()).unwrap();
        }
        assert!(
            FileMode::try_from("0000".to_string())
                .unwrap_err()
                .contains("lets not even the file's owner read it")
        );
        assert!(FileMode::try_from("0200".to_string()).is_err());
        assert_eq!(
            FileMode::try_from("0o640".to_string()).unwrap().bits(),
            0o640
        );
        for bad in [0, -1, 65536, 70000] {
            assert_eq!(
                Port::try_from(bad).unwrap_err(),
                format!(
                    "`{bad}` is not a TCP port: write a number from 1 to 65535, like 22 or 443"
                )
            );
        }
        assert_eq!(Port::try_from(65535).unwrap().get(), 65535);
    }

    #[test]
    fn challenge_names() {
        let w = DnsName::from_str("*.example.org").unwrap();
        assert_eq!(w.challenge_name(), "_acme-challenge.example.org");
        let n = DnsName::from_str("www.example.org").unwrap();
        assert_eq!(n.challenge_name(), "_acme-challenge.www.example.org");
    }

    #[test]
    fn remote_paths() {
        assert!(RemotePath::try_from("/etc/ssl/x.pem".to_string()).is_ok());
        assert!(RemotePath::try_from("/etc/ssl/it's here.pem".to_string()).is_ok());
        for bad in ["etc/ssl/x", "/etc/ssl/", "/etc/../x", "/etc/x\ny", ""] {
            assert!(RemotePath::try_from(bad.to_string()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn modes_keys_policies() {
        assert_eq!(
            FileMode::try_from("0640".to_string()).unwrap().bits(),
            0o640
        );
        assert!(FileMode::try_from("0999".to_string()).is_err());
        assert!(FileMode::try_from("7777".to_string()).is_err());
        assert_eq!(
            KeyType::try_from("rsa-3072".to_string()),
            Ok(KeyType::Rsa3072)
        );
        assert!(
            KeyType::try_from("dsa".to_string())
                .unwrap_err()
                .contains("ecdsa-p256")
        );
        assert_eq!(
            RenewPolicy::try_from("1/3".to_string()),
            Ok(RenewPolicy::Fraction(1.0 / 3.0))
        );
        assert_eq!(
            RenewPolicy::try_from("30d".to_string()),
            Ok(RenewPolicy::Before(Duration::from_secs(30 * 86400)))
        );
        assert!(RenewPolicy::try_from("3/2".to_string()).is_err());
        assert!(RenewPolicy::try_from("soon".to_string()).is_err());
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5y").is_err());
        assert!(AccountName::try_from("www-data".to_string()).is_ok());
        assert!(AccountName::try_from("root;id".to_string()).is_err());
    }
}
