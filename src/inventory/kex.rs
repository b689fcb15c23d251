//! `ssh.kex`: the key exchange algorithms the russh transport offers, in order. OpenSSH takes
//! its KexAlgorithms from ssh_config, so the setting is for russh only.

/// Key exchanges the russh transport can offer, by their OpenSSH names, in russh's own default
/// order (post-quantum first), then the ECDH ones russh implements but does not offer unless
/// asked.
pub const RUSSH_KEX: &[&str] = &[
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group17-sha512",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group15-sha512",
    "diffie-hellman-group14-sha256",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
];

/// Why a name that SSH knows cannot stand in `ssh.kex`, or `None` for an unknown name.
fn refused(name: &str) -> Option<String> {
    let why = match name {
        "sntrup761x25519-sha512" | "sntrup761x25519-sha512@openssh.com" => format!(
            "`{name}` is post-quantum, but russh does not implement it: write mlkem768x25519-sha256 (also post-quantum), or use transport: openssh and set KexAlgorithms in its ssh_config"
        ),
        "diffie-hellman-group1-sha1"
        | "diffie-hellman-group14-sha1"
        | "diffie-hellman-group-exchange-sha1" => format!(
            "`{name}` hashes with SHA-1 and certorch does not offer it: write curve25519-sha256 or, for a host that knows nothing newer, diffie-hellman-group14-sha256"
        ),
        "none" => "`none` is no key exchange at all".to_string(),
        "ext-info-c"
        | "ext-info-s"
        | "kex-strict-c-v00@openssh.com"
        | "kex-strict-s-v00@openssh.com" => format!(
            "`{name}` is a protocol marker, not a key exchange: certorch always offers ext-info-c and kex-strict-c-v00@openssh.com (strict key exchange, the Terrapin fix) after your list; remove it"
        ),
        _ => return None,
    };
    Some(why)
}

/// Checks one `ssh.kex` entry: the name as russh knows it, or why not.
pub fn check(name: &str) -> Result<&'static str, String> {
    if let Some(known) = RUSSH_KEX.iter().find(|k| **k == name) {
        return Ok(known);
    }
    Err(refused(name).unwrap_or_else(|| {
        format!(
            "unknown key exchange `{name}` in ssh.kex: write one or more of {}",
            RUSSH_KEX.join(", ")
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_pass_and_others_say_what_to_write() {
        assert_eq!(check("curve25519-sha256"), Ok("curve25519-sha256"));
        assert_eq!(check("mlkem768x25519-sha256"), Ok("mlkem768x25519-sha256"));
        let e = check("sntrup761x25519-sha512").unwrap_err();
        assert!(
            e.contains("transport: openssh") && e.contains("mlkem768x25519-sha256"),
            "{e}"
        );
        let e = check("diffie-hellman-group14-sha1").unwrap_err();
        assert!(e.contains("SHA-1"), "{e}");
        let e = check("kex-strict-c-v00@openssh.com").unwrap_err();
        assert!(e.contains("always offers"), "{e}");
        let e = check("Curve25519-sha256").unwrap_err();
        assert!(
            e.starts_with("unknown key exchange `Curve25519-sha256`"),
            "{e}"
        );
        assert!(
            e.contains("curve25519-sha256, curve25519-sha256@libssh.org"),
            "{e}"
        );
    }
}
