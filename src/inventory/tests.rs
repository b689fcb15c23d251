use std::path::Path;

use super::*;

const GOOD: &str = r#"
acme:
  directory: letsencrypt-staging
  contact: [mailto:ops@example.org]
dns:
  signing_zone: acme.example.net
  resolver: 192.0.2.1
  rfc2136: { server: "192.0.2.53:53", key_name: certorch, secret_file: tsig.key }
defaults: { user: deploy, key_type: ecdsa-p384, renew_before: 30d }
hosts:
  web1.example.org:
    address: 192.0.2.10
    certs:
      www:
        names: [www.example.org, Example.org]
        key: /etc/ssl/private/www.key
        fullchain: /etc/ssl/certs/www.pem
        reload: systemctl reload nginx
  web2.example.org:
    user: root
    port: 2222
    certs:
      www:
        names: [www2.example.org]
        key_type: rsa-2048
        key: /etc/ssl/private/www.key
        cert: /etc/ssl/certs/www.crt
groups:
  web: [web1.example.org, web2.example.org]
"#;

fn parse_at(text: &str) -> Result<Inventory, Error> {
    parse(text, Path::new("/etc/certorch/inventory.yaml"))
}

#[test]
fn a_good_inventory_applies_defaults() {
    let inv = parse_at(GOOD).unwrap();
    assert_eq!(inv.acme.directory, super::model::LETSENCRYPT_STAGING);
    assert_eq!(inv.hosts.len(), 2);
    let w1 = &inv.hosts[0];
    assert_eq!(
        (w1.address.as_str(), w1.port, w1.user.as_str()),
        ("192.0.2.10", 22, "deploy")
    );
    let c = &w1.certs[0];
    assert_eq!(c.names[1].as_str(), "example.org");
    assert_eq!(c.key_type, KeyType::EcdsaP384);
    assert_eq!(c.key_mode.octal(), "0600");
    assert_eq!(c.mode.octal(), "0644");
    let super::model::PublisherConfig::Rfc2136(rfc) = &inv.dns.publisher else {
        panic!("{:?}", inv.dns.publisher)
    };
    assert_eq!(rfc.server.to_string(), "192.0.2.53:53");
    match &rfc.secret {
        SecretSource::File(p) => assert_eq!(p, Path::new("/etc/certorch/tsig.key")),
        other => panic!("{other:?}"),
    }
    let w2 = &inv.hosts[1];
    assert_eq!(
        (w2.address.as_str(), w2.port, w2.user.as_str()),
        ("web2.example.org", 2222, "root")
    );
    assert_eq!(w2.certs[0].key_type, KeyType::Rsa2048);
    assert_eq!(inv.groups["web"].len(), 2);
}

/// Each bad value is reported at its own line and column with what to write instead.
#[test]
fn errors_name_line_column_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "names: [www.example.org, Example.org]",
            "names: [www.example.org, \"a.example.org;touch /tmp/x\"]",
            "15:34: `a.example.org;touch",
        ),
        (
            "key: /etc/ssl/private/www.key\n        fullchain",
            "key: etc/ssl/private/www.key\n        fullchain",
            "16:",
        ),
        ("key_type: rsa-2048", "key_type: dsa-1024", "25:"),
        (
            "web: [web1.example.org, web2.example.org]",
            "web: [web1.example.org, web9.example.org]",
            "29:",
        ),
        ("defaults: { user: deploy", "defaults: { usr: deploy", "9:"),
    ];
    for (from, to, at) in cases {
        assert!(GOOD.contains(from), "{from}");
        let text = GOOD.replacen(from, to, 1);
        let err = parse_at(&text).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("/etc/certorch/inventory.yaml:{at}")),
            "{to}: {err}"
        );
    }
}

#[test]
fn error_texts() {
    let text = GOOD.replacen(
        "names: [www.example.org, Example.org]",
        "names: [\"a.example.org;touch /tmp/x\"]",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("is not a valid DNS name"), "{err}");
    assert!(err.contains("write a DNS name like"), "{err}");

    let text = GOOD.replacen("        fullchain: /etc/ssl/certs/www.pem\n", "", 1);
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("add `fullchain:`"), "{err}");

    let text = GOOD.replacen("web2.example.org]", "web9.example.org]", 1);
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.ends_with("group `web` lists `web9.example.org`, which is not under hosts: add the host or remove it from the group"), "{err}");

    let text = GOOD.replacen(
        "secret_file: tsig.key",
        "secret_file: tsig.key, secret_env: X",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("exactly one of secret_file"), "{err}");

    let text = GOOD.replacen(
        "key: /etc/ssl/private/www.key\n        cert:",
        "key: /etc/ssl/certs/www.crt\n        cert:",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("distinct paths"), "{err}");
}

#[test]
fn hundred_names_at_most() {
    let names: Vec<String> = (0..101).map(|i| format!("n{i}.example.org")).collect();
    let text = GOOD.replacen(
        "[www.example.org, Example.org]",
        &format!("[{}]", names.join(", ")),
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("at most 100"), "{err}");
}

#[test]
fn selection() {
    let inv = parse_at(GOOD).unwrap();
    let all = inv.select(&[]).unwrap();
    assert_eq!(all.len(), 2);
    let g = inv.select(&["web".into()]).unwrap();
    assert_eq!(g.len(), 2);
    let one = inv.select(&["web2.example.org/www".into()]).unwrap();
    assert_eq!(
        one,
        vec![Target {
            host: 1,
            cert: Some("www".into())
        }]
    );
    let glob = inv.select(&["web1*".into()]).unwrap();
    assert_eq!(
        glob,
        vec![Target {
            host: 0,
            cert: None
        }]
    );
    assert!(
        inv.select(&["db1".into()])
            .unwrap_err()
            .to_string()
            .contains("no host, group or certificate matches `db1`")
    );
    assert!(inv.select(&["web1.example.org/nope".into()]).is_err());
    // Patterns that name a host again select it once, in the order first named.
    let again = inv
        .select(&["web2*".into(), "all".into(), "web".into()])
        .unwrap();
    let hosts: Vec<usize> = again.iter().map(|t| t.host).collect();
    assert_eq!(hosts, [1, 0]);
    // Lookups by name.
    assert_eq!(inv.host_index("web2.example.org"), Some(1));
    assert_eq!(
        inv.host("web1.example.org").unwrap().name,
        "web1.example.org"
    );
    assert_eq!(inv.host_index("db1.example.org"), None);
    assert_eq!(inv.position("web2.example.org", "www"), (1, 0));
    assert_eq!(inv.position("web2.example.org", "nope"), (1, usize::MAX));
    assert_eq!(inv.position("db1", "www"), (usize::MAX, usize::MAX));
}

/// The inventories shipped under inventory/ load as they are.
#[test]
fn shipped_examples_load() {
    for name in ["example.yaml", "sandbox.yaml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("inventory")
            .join(name);
        let inv = load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!inv.hosts.is_empty(), "{name}");
    }
    let sandbox =
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("inventory/sandbox.yaml")).unwrap();
    // The merge key carries the paths; the override changes only what it names.
    let h3 = &sandbox.hosts[2].certs[0];
    assert_eq!(h3.key.as_str(), "/etc/ssl/private/www.key");
    assert_eq!(h3.key_type, KeyType::Rsa2048);
    assert_eq!(h3.names[0].as_str(), "host3.example.test");
}

#[test]
fn exactly_one_publisher() {
    let both = GOOD.replacen(
        "  rfc2136:",
        "  exec: { command: [/bin/true] }\n  rfc2136:",
        1,
    );
    let err = parse_at(&both).unwrap_err().to_string();
    assert!(
        err.ends_with(
            "dns has more than one publisher (rfc2136, exec, zonefile, powerdns, route53): keep one"
        ),
        "{err}"
    );
    let start = GOOD.find("  rfc2136:").unwrap();
    let end = GOOD.find("defaults:").unwrap();
    let none = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let err = parse_at(&none).unwrap_err().to_string();
    assert!(err.contains("dns needs a publisher: rfc2136"), "{err}");
    let exec = format!(
        "{}  exec: {{ command: [/usr/local/bin/dns-api, --zone, x] }}\n{}",
        &GOOD[..start],
        &GOOD[end..]
    );
    let inv = parse_at(&exec).unwrap();
    assert!(
        matches!(&inv.dns.publisher, super::model::PublisherConfig::Exec { command } if command.len() == 3)
    );
    let pdns = format!(
        "{}  powerdns: {{ api: 'http://127.0.0.1:8081', api_key_file: pdns.key }}\n{}",
        &GOOD[..start],
        &GOOD[end..]
    );
    let inv = parse_at(&pdns).unwrap();
    let super::model::PublisherConfig::PowerDns(p) = &inv.dns.publisher else {
        panic!("{:?}", inv.dns.publisher)
    };
    assert_eq!(
        (p.api.as_str(), p.server_id.as_str()),
        ("http://127.0.0.1:8081", "localhost")
    );
    assert!(matches!(&p.key, SecretSource::File(f) if f == Path::new("/etc/certorch/pdns.key")));
    let bad = pdns.replace("'http://127.0.0.1:8081'", "'127.0.0.1:8081'");
    let err = parse_at(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:8:20: `127.0.0.1:8081` is not the PowerDNS webserver's URL: write http://"),
        "{err}"
    );
    let two = pdns.replacen(
        "  powerdns:",
        "  exec: { command: [/bin/true] }\n  powerdns:",
        1,
    );
    let err = parse_at(&two).unwrap_err().to_string();
    assert!(err.ends_with("keep one"), "{err}");
}

/// GOOD's head (acme, dns) with `rest` after it.
fn with_head(rest: &str) -> String {
    let head = &GOOD[..GOOD.find("defaults:").unwrap()];
    format!("{head}{rest}")
}

#[test]
fn a_playbook_fills_what_the_certificate_leaves_out() {
    let inv = parse_at(&with_head(
        r#"defaults: { reload: "systemctl reload other" }
hosts:
  lb1.example.org:
    become: sudo
    certs:
      edge:
        names: [edge.example.org]
        playbook: haproxy
        verify_port: 8443
"#,
    ))
    .unwrap();
    let h = &inv.hosts[0];
    assert_eq!(h.become_via, Some(Become::Sudo));
    let c = &h.certs[0];
    assert_eq!(c.key.as_str(), "/etc/ssl/private/edge.key");
    assert_eq!(
        c.combined.as_ref().unwrap().as_str(),
        "/etc/haproxy/certs/edge.pem"
    );
    assert_eq!(
        c.verify_port,
        Some(8443),
        "the certificate's own setting wins"
    );
    // The playbook's reload wins over the defaults'.
    assert!(c.reload.as_ref().unwrap().to_string().contains("USR2"));
    assert_eq!(
        c.check.as_ref().unwrap().to_string(),
        "haproxy -c -q -f /etc/haproxy/haproxy.cfg"
    );
}

#[test]
fn playbook_and_command_mistakes_are_reported_where_they_stand() {
    let e = parse_at(&with_head(
        "hosts:\n  a.example.org:\n    certs:\n      w:\n        names: [a.example.org]\n        playbook: ngnix\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("inventory.yaml:14:")
            && e.contains("no playbook `ngnix`")
            && e.contains("nginx"),
        "{e}"
    );
    let e = parse_at(&with_head(
        "hosts:\n  a.example.org:\n    certs:\n      w:\n        names: [a.example.org]\n        playbook: nginx\n        reload: systemctl reload nginx@{label}\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("inventory.yaml:15:") && e.contains("$CERTORCH_LABEL"),
        "{e}"
    );
    let e = parse_at(&with_head(
        "hosts:\n  a.example.org:\n    become: su\n    certs: {}\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("write sudo, doas or none"), "{e}");
}

#[test]
fn add_host_name_keeps_load_balanced_name_sets_distinct() {
    let inv = parse_at(&with_head(
        r#"defaults: { add_host_name: true }
hosts:
  web1.example.org:
    certs:
      www: { names: [www.example.org], playbook: nginx }
  web2.example.org:
    certs:
      www: { names: [www.example.org], playbook: nginx }
"#,
    ))
    .unwrap();
    let names = |i: usize| -> Vec<&str> {
        inv.hosts[i].certs[0]
            .names
            .iter()
            .map(|n| n.as_str())
            .collect()
    };
    assert_eq!(names(0), ["www.example.org", "web1.example.org"]);
    assert_eq!(names(1), ["www.example.org", "web2.example.org"]);
}

#[test]
fn a_shared_label_is_one_certificate_on_each_member_selected_together() {
    let text = with_head(
        r#"hosts:
  lb1.example.org: {}
  lb2.example.org: {}
  db.example.org: {}
shared:
  edge:
    hosts: [lb1.example.org, lb2.example.org]
    cert: { names: [edge.example.org], playbook: nginx }
"#,
    );
    let inv = parse_at(&text).unwrap();
    let host = |n: &str| inv.hosts.iter().find(|h| h.name == n).unwrap();
    for n in ["lb1.example.org", "lb2.example.org"] {
        let c = &host(n).certs[0];
        assert_eq!(c.label, "edge");
        assert_eq!(
            c.shared.as_deref().unwrap(),
            ["lb1.example.org".to_string(), "lb2.example.org".to_string()]
        );
    }
    assert!(host("db.example.org").certs.is_empty());
    let t = inv.select(&["lb2.example.org".to_string()]).unwrap();
    let hosts: Vec<&str> = t.iter().map(|t| inv.hosts[t.host].name.as_str()).collect();
    assert_eq!(hosts, ["lb2.example.org", "lb1.example.org"]);
    let e = parse_at(&text.replace(
        "[lb1.example.org, lb2.example.org]",
        "[lb1.example.org, lb9.example.org]",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("lists `lb9.example.org`, which is not under hosts"),
        "{e}"
    );
}

/// `ssh.transport` sets every host's transport, a host's own `transport` overrides it, and
/// each value is checked where it stands.
#[test]
fn transport_selection() {
    let inv = parse_at(GOOD).unwrap();
    assert_eq!(inv.ssh.transport, TransportKind::OpenSsh);
    assert!(
        inv.hosts
            .iter()
            .all(|h| h.transport == TransportKind::OpenSsh)
    );
    assert_eq!(inv.ssh.command_timeout, std::time::Duration::from_secs(600));
    assert_eq!(inv.ssh.max_handshakes, 32);

    let text = GOOD.replacen(
        "defaults:",
        "ssh: { transport: russh, command_timeout: 2m, max_handshakes: 4 }\ndefaults:",
        1,
    );
    let inv = parse_at(&text).unwrap();
    assert_eq!(inv.ssh.transport, TransportKind::Russh);
    assert_eq!(inv.ssh.command_timeout, std::time::Duration::from_secs(120));
    assert_eq!(inv.ssh.max_handshakes, 4);
    assert!(
        inv.hosts
            .iter()
            .all(|h| h.transport == TransportKind::Russh)
    );

    let text = GOOD.replacen(
        "    user: root\n",
        "    user: root\n    transport: russh\n",
        1,
    );
    let inv = parse_at(&text).unwrap();
    assert_eq!(inv.hosts[0].transport, TransportKind::OpenSsh);
    assert_eq!(inv.hosts[1].transport, TransportKind::Russh);

    let text = GOOD.replacen(
        "    user: root\n",
        "    user: root\n    transport: putty\n",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert_eq!(
        err,
        "/etc/certorch/inventory.yaml:21:16: unknown SSH transport `putty`: write openssh or russh"
    );

    // russh reads no ssh_config: the combination is refused rather than half honoured.
    let text = GOOD.replacen(
        "defaults:",
        "ssh: { config: ssh_config, transport: russh }\ndefaults:",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:9:39: the russh transport does not read ssh_config files, and ssh.config is set (/etc/certorch/ssh_config): remove ssh.config"),
        "{err}"
    );

    let text = GOOD.replacen("defaults:", "ssh: { max_handshakes: 0 }\ndefaults:", 1);
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.contains("inventory.yaml:9:24: ssh.max_handshakes must be at least 1"),
        "{err}"
    );
}

/// `ssh.kex`: russh offers the listed key exchanges in order; absent means russh's own list;
/// unknown, unsupported, repeated or no names are refused where they stand; OpenSSH hosts take
/// theirs from ssh_config, so the setting is refused while any host uses OpenSSH.
#[test]
fn kex_selection() {
    let russh = |kex: &str| {
        GOOD.replacen(
            "defaults:",
            &format!("ssh:\n  transport: russh\n  kex: {kex}\ndefaults:"),
            1,
        )
    };
    assert_eq!(parse_at(GOOD).unwrap().ssh.kex, None);
    let inv = parse_at(&russh("[curve25519-sha256, mlkem768x25519-sha256]")).unwrap();
    assert_eq!(
        inv.ssh.kex,
        Some(vec!["curve25519-sha256", "mlkem768x25519-sha256"])
    );

    let err = parse_at(&russh("[curve25519-sha256, x25519]"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:11:28: unknown key exchange `x25519` in ssh.kex: write one or more of mlkem768x25519-sha256, curve25519-sha256,"),
        "{err}"
    );
    let err = parse_at(&russh("[sntrup761x25519-sha512]"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:11:9: `sntrup761x25519-sha512` is post-quantum, but russh does not implement it"),
        "{err}"
    );
    let err = parse_at(&russh("[curve25519-sha256, curve25519-sha256]"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:11:28: `curve25519-sha256` is listed twice"),
        "{err}"
    );
    let err = parse_at(&russh("[]")).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:11:8: ssh.kex is empty"),
        "{err}"
    );

    // web2 keeps OpenSSH: its key exchange belongs in ssh_config.
    let text = russh("[curve25519-sha256]").replacen(
        "    user: root\n",
        "    user: root\n    transport: openssh\n",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:11:8: ssh.kex chooses the key exchange of the russh transport, and `web2.example.org` uses OpenSSH"),
        "{err}"
    );
    assert!(err.contains("KexAlgorithms curve25519-sha256"), "{err}");
    let text = GOOD.replacen(
        "defaults:",
        "ssh: { kex: [curve25519-sha256] }\ndefaults:",
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("`web1.example.org` uses OpenSSH"), "{err}");
}

#[test]
fn adopted_issuers_are_read_at_load_and_mistakes_named_where_they_stand() {
    use crate::plan::issuer::tests::{ca, leaf};
    let dir = tempfile::tempdir().unwrap();
    let inter = ca("E6");
    std::fs::write(dir.path().join("chain.pem"), &inter.pem).unwrap();
    let l = leaf(&["a.example.org"], Some(&inter));
    std::fs::write(
        dir.path().join("cert.pem"),
        crate::x509::to_pem(std::slice::from_ref(&l.der)),
    )
    .unwrap();
    std::fs::write(dir.path().join("empty.pem"), "nothing here\n").unwrap();
    let inv_path = dir.path().join("inventory.yaml");
    let with = |files: &str| {
        GOOD.replacen(
            "  contact: [mailto:ops@example.org]\n",
            &format!("  contact: [mailto:ops@example.org]\n  adopt_issuers: [{files}]\n"),
            1,
        )
    };
    let inv = parse(&with("chain.pem"), &inv_path).unwrap();
    assert_eq!(inv.acme.adopt_issuers, vec![inter.cert.clone()]);
    assert!(
        parse(GOOD, &inv_path)
            .unwrap()
            .acme
            .adopt_issuers
            .is_empty()
    );

    let err = parse(&with("chain.pem, cert.pem"), &inv_path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("inventory.yaml:5:30: "), "{err}");
    assert!(
        err.ends_with("holds a certificate that is not a CA (CN=a.example.org): list the intermediate that signed the certificates to keep, not a leaf (certbot's chain.pem, not cert.pem)"),
        "{err}"
    );
    let err = parse(&with("empty.pem"), &inv_path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("empty.pem holds no PEM certificate"), "{err}");
    let err = parse(&with("missing.pem"), &inv_path)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "cannot read the adopted issuer {}",
            dir.path().join("missing.pem").display()
        )),
        "{err}"
    );
}
/// Regression (holes #3): a file past the size limit is refused without being read whole.
#[test]
fn an_inventory_past_the_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    let mut text = String::from(GOOD);
    while text.len() < 10_000_000 {
        text.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    std::fs::write(&path, &text).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: the inventory is larger than 8 MiB; certorch reads no further: check that --inventory names the inventory (a few kilobytes per host), not another file",
            path.display()
        )
    );
}

/// Regression (holes #4): a duration whose seconds would overflow, and a timeout of zero, are
/// refused where they stand, like every other inventory error.
#[test]
fn durations_that_overflow_and_zero_timeouts_are_refused() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "renew_before: 30d",
            "renew_before: 300000000000000d",
            "9:63: `300000000000000d` is longer than ten years: write a duration like 30s, 5m, 2h or 30d, at most 3650d",
        ),
        (
            "renew_before: 30d",
            "renew_before: 3651d",
            "9:63: `3651d` is longer than ten years: write a duration like 30s, 5m, 2h or 30d, at most 3650d",
        ),
        (
            "  resolver: 192.0.2.1\n",
            "  resolver: 192.0.2.1\n  propagation_timeout: 0s\n",
            "8:24: `0s` is no time at all: a timeout of zero fails every attempt; write at least 1s, like 30s or 5m",
        ),
        (
            "defaults:",
            "ssh: { connect_timeout: 0 }\ndefaults:",
            "9:25: `0` is no time at all: a timeout of zero fails every attempt; write at least 1s, like 30s or 5m",
        ),
        (
            "defaults:",
            "ssh: { command_timeout: 99999999999999999h }\ndefaults:",
            "9:25: `99999999999999999h` is longer than ten years: write a duration like 30s, 5m, 2h or 30d, at most 3650d",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let err = parse_at(&GOOD.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("/etc/certorch/inventory.yaml:{want}"), "{to}");
    }
    // Ten years is still a duration, and a zero renew_before is not a timeout.
    parse_at(&GOOD.replacen("renew_before: 30d", "renew_before: 3650d", 1)).unwrap();
}

#[test]
fn caa_identities_and_preferred_chain_are_validated_where_they_stand() {
    let head = "  contact: [mailto:ops@example.org]\n";
    let text = GOOD.replacen(
        head,
        &format!("{head}  caa_identities: [Pebble.Test., letsencrypt.org]\n  preferred_chain: \" ISRG Root X1 \"\n"),
        1,
    );
    let inv = parse_at(&text).unwrap();
    assert_eq!(inv.acme.caa_identities, ["pebble.test", "letsencrypt.org"]);
    assert_eq!(inv.acme.preferred_chain.as_deref(), Some("ISRG Root X1"));

    let text = GOOD.replacen(
        head,
        &format!("{head}  caa_identities: [letsencrypt.org, \"bad ca;x\"]\n"),
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:5:37: `bad ca;x` is not a CAA identity"),
        "{err}"
    );
    let text = GOOD.replacen(
        head,
        &format!("{head}  caa_identities: [\"*.example.org\"]\n"),
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.contains("is not a CAA identity"), "{err}");
    let text = GOOD.replacen(head, &format!("{head}  preferred_chain: \"\"\n"), 1);
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(err.starts_with("/etc/certorch/inventory.yaml:5:"), "{err}");
}

/// Issue 13: URLs with credentials are refused without echoing the password; plain http goes
/// only to this machine; absurd concurrency, writable certificates and control characters.
#[test]
fn issue_13_urls_numbers_and_echoed_values() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "directory: letsencrypt-staging",
            "directory: \"https://u:hunter2@ca.example/dir\"",
            "3:14: `https://***@ca.example/dir` carries a user name or password",
        ),
        (
            "directory: letsencrypt-staging",
            "directory: \"http://u:hunter2@ca.example/dir\"",
            "3:14: `http://***@ca.example/dir` is not an ACME directory",
        ),
        (
            "directory: letsencrypt-staging",
            "directory: \"https://\"",
            "3:14: `https://` is not an ACME directory",
        ),
        (
            "defaults:",
            "notify: { webhook: \"https://u:hunter2@hooks.example/x\" }\ndefaults:",
            "9:20: notify.webhook `https://***@hooks.example/x` carries a user name or password",
        ),
        (
            "defaults:",
            "notify: { webhook: \"http://hooks.example/T/B/secret\" }\ndefaults:",
            "9:20: notify.webhook `http://hooks.example/T/B/secret` is plain http to another machine",
        ),
        (
            "defaults:",
            "concurrency: 1001\ndefaults:",
            "9:14: concurrency 1001 is more hosts at once than the bastion can hold",
        ),
        (
            "        reload: systemctl reload nginx\n",
            "        reload: systemctl reload nginx\n        mode: \"0664\"\n",
            "15:9: web1.example.org/www: mode 0664 lets other users replace the certificate",
        ),
        (
            "    port: 2222",
            "    port: 0",
            "21:11: `0` is not a TCP port",
        ),
        (
            "names: [www.example.org, Example.org]",
            "names: [\"\\e[2J\\u202e.example.org\"]",
            "15:17: `\\u{1b}[2J",
        ),
    ];
    for (from, to, want) in cases {
        assert!(GOOD.contains(from), "{from}");
        let err = parse_at(&GOOD.replacen(from, to, 1))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("/etc/certorch/inventory.yaml:{want}")),
            "{to}: {err}"
        );
        assert!(
            !err.contains("hunter2") && !err.contains(['\u{1b}', '\u{202e}']),
            "{err}"
        );
    }
    // Loopback http and https webhooks, and the most hosts at once, still load.
    for ok in [
        "notify: { webhook: \"http://127.0.0.1:8080/hook\" }\nconcurrency: 1000\ndefaults:",
        "notify: { webhook: \"https://hooks.example/T/B/x\" }\ndefaults:",
    ] {
        parse_at(&GOOD.replacen("defaults:", ok, 1)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

/// Issue 13: parser errors say what to do in the file, not which serde-saphyr option to set;
/// an alias bomb stops early; bad UTF-8 is placed.
#[test]
fn issue_13_yaml_errors_in_the_files_terms() {
    let err = parse_at(&GOOD.replacen(
        "  resolver: 192.0.2.1\n",
        "  resolver: 192.0.2.1\n  resolver: 192.0.2.2\n",
        1,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(
            "/etc/certorch/inventory.yaml:8:3: `resolver` is given twice in one mapping: keep one"
        ),
        "{err}"
    );
    let err = parse_at(&format!("{GOOD}---\nacme: {{}}\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a second YAML document starts here (`---`)"),
        "{err}"
    );
    assert!(!err.contains("from_str_multiple"), "{err}");

    let keys = "abcdefgh";
    let mut laughs =
        String::from("{m0: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}");
    for i in 1..keys.len() {
        let prev = &keys[i - 1..i];
        let refs: Vec<String> = (0..9).map(|k| format!("k{k}: *{prev}")).collect();
        laughs.push_str(&format!(
            ", m{i}: &{} {{{}}}",
            &keys[i..=i],
            refs.join(", ")
        ));
    }
    laughs.push('}');
    let err = parse_at(&GOOD.replacen(
        "    user: root\n",
        &format!("    user: root\n    <<: {laughs}\n"),
        1,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("the YAML expands to more values than an inventory makes"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inventory.yaml");
    let bytes = GOOD
        .replacen("Example.org", "Ex\u{fc}mple.org", 1)
        .into_bytes();
    let bytes: Vec<u8> = String::from_utf8(bytes)
        .unwrap()
        .replace('\u{fc}', "\u{1}")
        .into_bytes()
        .into_iter()
        .map(|b| if b == 1 { 0xfc } else { b })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}:15:36: byte 0xfc is not UTF-8 text: save the inventory as UTF-8 (iconv -f latin1 -t utf-8), or remove the byte",
            path.display()
        )
    );
}

/// `acme.limits`: Let's Encrypt's budgets by default, each overridable; a budget of 0, a
/// window of no time or an unknown key is refused where it stands.
#[test]
fn rate_limits_are_overridable_and_validated_where_they_stand() {
    let head = "  contact: [mailto:ops@example.org]\n";
    let inv = parse_at(GOOD).unwrap();
    assert_eq!(inv.acme.limits, crate::limits::CaLimits::default());
    assert_eq!(inv.acme.limits.orders, 300);

    let text = GOOD.replacen(
        head,
        &format!(
            "{head}  limits: {{orders_per_window: 5, orders_window: 20s, duplicates_per_week: 2}}\n"
        ),
        1,
    );
    let l = parse_at(&text).unwrap().acme.limits;
    assert_eq!(l.orders, 5);
    assert_eq!(l.orders_window, time::Duration::seconds(20));
    assert_eq!(l.duplicates, 2);
    assert_eq!(l.certs_per_domain, 50);

    let text = GOOD.replacen(
        head,
        &format!("{head}  limits: {{orders_per_window: 0}}\n"),
        1,
    );
    let err = parse_at(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("/etc/certorch/inventory.yaml:5:31: acme.limits.orders_per_window must be between 1 and 1000000"),
        "{err}"
    );
    for (bad, what) in [
        ("{orders_window: 0s}", "no time at all"),
        ("{orders_per_3h: 5}", "orders_per_3h"),
        ("{duplicates_per_week: -1}", ""),
    ] {
        let text = GOOD.replacen(head, &format!("{head}  limits: {bad}\n"), 1);
        let err = parse_at(&text).unwrap_err().to_string();
        assert!(
            err.starts_with("/etc/certorch/inventory.yaml:5:"),
            "{bad}: {err}"
        );
        assert!(err.contains(what), "{bad}: {err}");
    }
}
