//! `certorch check` finds each seeded mistake and prints its fix, and passes on a clean setup.

mod common;

use std::fs;

use common::Bed;

#[test]
fn check_passes_on_a_clean_setup() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    let run = bed.certorch(&inv, &["--json", "check"]);
    run.expect_code(0);
    let doc = run.json();
    let findings = doc.as_array().unwrap();
    assert!(findings.iter().all(|f| f["ok"] == true), "{doc:#}");
    for area in ["ssh", "host", "dns", "zone", "ca"] {
        assert!(
            findings.iter().any(|f| f["area"] == area),
            "no {area} finding: {doc:#}"
        );
    }
    let whats: Vec<&str> = findings
        .iter()
        .map(|f| f["what"].as_str().unwrap())
        .collect();
    assert!(
        whats.iter().any(|w| w.starts_with("key `")
            && w.contains("may add and remove TXT records in signing.test.")),
        "{whats:?}"
    );
    assert!(
        whats
            .iter()
            .any(|w| w.contains("an account will be registered on the first run")),
        "{whats:?}"
    );
    assert!(
        whats.contains(
            &"_acme-challenge.www.host2.example.test leads to www.host2.example.test.signing.test."
        ),
        "{whats:?}"
    );
    // check orders nothing and writes no state.
    assert!(!bed.state_exists());
    assert!(
        !bed.ssh(1, "test -e /etc/ssl/certs/www.pem")
            .status
            .success()
    );
}

#[test]
fn check_finds_each_seeded_mistake() {
    let bed = Bed::up(2);
    // Host 2's key in known_hosts is another host's: an unknown/changed host key.
    let known = fs::read_to_string(bed.get("KNOWN_HOSTS")).unwrap();
    let h1_key = known
        .lines()
        .next()
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_string();
    let changed: String = known
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{},", bed.host_addr(2))) {
                format!("{},host2.example.test {h1_key}\n", bed.host_addr(2))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(bed.get("KNOWN_HOSTS"), changed).unwrap();

    // A directory even root cannot write to: a read-only bind mount in host1's own mount
    // namespace (gone with it). The inventory refuses /proc, the old fixture, at load.
    bed.ssh_ok(1, "mkdir -p /run/ro && mount -o bind,ro /run/ro /run/ro");
    let mut text = bed.inventory_head(bed.get("WRONG_TSIG_KEY_FILE"));
    text.push_str(&format!(
        r#"hosts:
  host1.example.test:
    address: {a1}
    certs:
      bad:
        names: [nocname.example.test, outside.example.test, app.wild.example.test, loop.example.test, host1.example.test]
        key: /run/ro/certorch/bad.key
        fullchain: /etc/ssl/certs/bad.pem
        reload: no-such-reload-command --now
  host2.example.test:
    address: {a2}
    certs:
"#,
        a1 = bed.host_addr(1),
        a2 = bed.host_addr(2)
    ));
    text.push_str(&bed.www_cert(2));
    let inv = bed.write_inventory("mistakes.yaml", &text);
    let run = bed.certorch(&inv, &["check"]);
    fs::write(bed.get("KNOWN_HOSTS"), &known).unwrap();
    run.expect_code(1);
    let out = &run.stdout;
    let expect = [
        // TSIG rejected
        "FAIL  */* zone: TSIG update refused by ".to_string(),
        "(key certorch): BADSIG".to_string(),
        "fix: the key `certorch` certorch uses does not match the one the server has for signing.test.".to_string(),
        // missing CNAME
        "FAIL  host1.example.test/bad dns: _acme-challenge.nocname.example.test. has no CNAME into the signing zone signing.test.".to_string(),
        "fix: add this record to the zone of nocname.example.test: _acme-challenge.nocname.example.test. IN CNAME nocname.example.test.signing.test.".to_string(),
        // wrong target
        "FAIL  host1.example.test/bad dns: _acme-challenge.outside.example.test. leads to outside.example.test.elsewhere.test., outside the signing zone signing.test.".to_string(),
        "fix: replace it with: _acme-challenge.outside.example.test. IN CNAME outside.example.test.signing.test.".to_string(),
        // wildcard capture
        "FAIL  host1.example.test/bad dns: _acme-challenge.app.wild.example.test. is answered by the wildcard *.wild.example.test. (CNAME to lb.elsewhere.test.)".to_string(),
        "fix: add a record of its own, which takes precedence over the wildcard: _acme-challenge.app.wild.example.test. IN CNAME app.wild.example.test.signing.test.".to_string(),
        // CNAME loop
        "FAIL  host1.example.test/bad dns: looking up _acme-challenge.loop.example.test.: CNAME loop at _acme-challenge.loop.example.test.".to_string(),
        // unwritable directory, missing reload command
        "FAIL  host1.example.test/bad host: /run/ro/certorch/bad.key cannot be written: /run/ro is not writable by the login user".to_string(),
        "FAIL  host1.example.test/bad host: the reload command `no-such-reload-command` is not found on the host".to_string(),
        // changed host key
        format!("FAIL  host2.example.test/* ssh: cannot connect to {}", bed.host_addr(2)),
        format!(
            "fix: the host key of {} is not the one {} lists for it, and certorch does not take a changed key",
            bed.host_addr(2),
            bed.get("KNOWN_HOSTS")
        ),
    ];
    for e in &expect {
        assert!(out.contains(e.as_str()), "missing `{e}` in:\n{out}");
    }
    // What is right is not reported as a problem.
    assert!(
        !out.contains("_acme-challenge.host1.example.test. "),
        "{out}"
    );
    assert!(!out.contains("FAIL  */* ca"), "{out}");
}

/// The records to add are printed once more at the end, each alone on a line, ready to paste.
#[test]
fn check_prints_paste_ready_records() {
    let bed = Bed::up(1);
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n      bad:\n        names: [nocname.example.test, outside.example.test]\n        key: /etc/ssl/private/bad.key\n        fullchain: /etc/ssl/certs/bad.pem\n",
        bed.host_addr(1)
    ));
    let inv = bed.write_inventory("paste.yaml", &text);
    let run = bed.certorch(&inv, &["check"]);
    run.expect_code(1);
    let tail = run
        .stdout
        .split("; records to add (zone-file lines):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", run.stdout));
    assert_eq!(
        tail,
        "_acme-challenge.nocname.example.test. IN CNAME nocname.example.test.signing.test.\n\
         _acme-challenge.outside.example.test. IN CNAME outside.example.test.signing.test.\n"
    );
}
