//! Inventory values are data, never shell: bad names are refused at load with their line and
//! column, and odd but valid paths arrive on the host byte for byte.

mod common;

use std::process::Command;

use common::Bed;

fn certorch(args: &[&str]) -> common::Run {
    Command::new(env!("CARGO_BIN_EXE_certorch"))
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_name_with_shell_in_it_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inv.yaml");
    std::fs::write(
        &inv,
        r#"acme: { directory: letsencrypt-staging }
dns:
  signing_zone: acme.example.net
  rfc2136: { server: 192.0.2.53, secret_env: TSIG }
hosts:
  web1.example.org:
    certs:
      www:
        names: ["a.example.org;touch /tmp/certorch-hostile"]
        key: /etc/ssl/private/www.key
        fullchain: /etc/ssl/certs/www.pem
"#,
    )
    .unwrap();
    let state = dir.path().join("state");
    let run = certorch(&[
        "--inventory",
        inv.to_str().unwrap(),
        "--state",
        state.to_str().unwrap(),
        "run",
    ]);
    run.expect_code(2);
    let want = format!(
        "error: {}:9:17: `a.example.org;touch /tmp/certorch-hostile` is not a valid DNS name: write a DNS name like www.example.org (letters, digits, '-' and dots; '*.' only as the first label)\n",
        inv.display()
    );
    assert_eq!(run.stderr, want);
    assert!(!std::path::Path::new("/tmp/certorch-hostile").exists());
    assert!(
        !state.exists(),
        "nothing is touched when the inventory is wrong"
    );
}

#[test]
fn paths_with_quotes_spaces_and_dollars_arrive_intact() {
    let bed = Bed::up(1);
    let dir = "/etc/ssl/it's a $(touch /tmp/pwned) `dir`";
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    text.push_str(&format!(
        r#"hosts:
  host1.example.test:
    address: {addr}
    certs:
      odd:
        names: [host1.example.test]
        key: "{dir}/key; rm -rf x.pem"
        fullchain: "{dir}/-full chain\"*.pem"
        reload: "touch /root/reloaded-odd"
"#,
        addr = bed.host_addr(1)
    ));
    let inv = bed.write_inventory("odd.yaml", &text);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let listing = bed.ssh_ok(1, &format!("ls -A {}", shell_quote(dir)));
    let mut names: Vec<&str> = listing.lines().collect();
    names.sort();
    assert_eq!(names, vec!["-full chain\"*.pem", "key; rm -rf x.pem"]);
    assert!(
        !bed.ssh(1, "test -e /tmp/pwned").status.success(),
        "a path was run as shell"
    );
    let key = format!("{dir}/key; rm -rf x.pem");
    let full = format!("{dir}/-full chain\"*.pem");
    let a = bed.ssh_ok(
        1,
        &format!("openssl pkey -pubout -in {}", shell_quote(&key)),
    );
    let b = bed.ssh_ok(
        1,
        &format!("openssl x509 -noout -pubkey -in {}", shell_quote(&full)),
    );
    assert_eq!(a, b);
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Regression (holes #1): where a local user on the host could steer root's writes (a
/// destination that is a link, a key directory anyone may write to, a link pre-created where
/// the dry-run root goes) certorch refuses that host with the path, the reason and what to do;
/// the files the link points to stay as they were, and the other hosts are done.
#[test]
fn destinations_a_local_user_could_steer_are_refused() {
    let bed = Bed::up(3);
    bed.ssh_ok(
        1,
        "echo live > /etc/ssl/other.pem && rm -f /etc/ssl/certs/www.pem && ln -s /etc/ssl/other.pem /etc/ssl/certs/www.pem",
    );
    bed.ssh_ok(2, "chmod 0777 /etc/ssl/private");
    let inv = bed.standard_inventory(3);
    let run = bed.certorch(&inv, &["run"]);
    run.expect_code(1);
    let err = &run.stderr;
    assert!(
        err.contains("error: host1.example.test/www: deploy failed: writing the certificate files: refusing /etc/ssl/certs/www.pem: it is a symbolic link; certorch writes files, never through a link\n"),
        "{err}"
    );
    assert!(
        err.contains("error: host2.example.test/www: key failed: generating the key and CSR: refusing /etc/ssl/private: the directory is writable by group or others (drwxrwxrwx) and not sticky\n"),
        "{err}"
    );
    assert!(
        err.contains("  hint: a local user could steer root's writes there: make each directory on the way owned by root (or the login user) and not writable by group or others (chmod go-w)"),
        "{err}"
    );
    assert!(!err.contains("host3.example.test"), "{err}");
    assert_eq!(bed.ssh_ok(1, "cat /etc/ssl/other.pem"), "live\n");
    assert_eq!(
        bed.ssh_ok(1, "readlink /etc/ssl/certs/www.pem"),
        "/etc/ssl/other.pem\n"
    );
    assert!(
        !bed.ssh(2, "test -e /etc/ssl/private/www.key.certorch-new")
            .status
            .success()
    );
    bed.ssh_ok(3, "openssl x509 -in /etc/ssl/certs/www.pem -noout");

    // The dry-run root pre-created by a local user as a link into /etc.
    bed.ssh_ok(
        3,
        "mkdir /root/target && ln -s /root/target /var/tmp/certorch-dry-run && chown -h nobody /var/tmp/certorch-dry-run",
    );
    let text = std::fs::read_to_string(&inv).unwrap().replacen(
        "  trust_root:",
        &format!("  staging: {}\n  trust_root:", bed.get("PEBBLE_DIRECTORY")),
        1,
    );
    let dry = bed.write_inventory("dry.yaml", &text);
    let run = bed.certorch(&dry, &["--limit", "host3.example.test", "run", "--dry-run"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("error: host3.example.test/www: key failed: generating the key and CSR: refusing /var/tmp/certorch-dry-run: it is a symbolic link owned by uid 65534, not by root or the login user\n"),
        "{}",
        run.stderr
    );
    assert_eq!(bed.ssh_ok(3, "ls -A /root/target"), "");
}
