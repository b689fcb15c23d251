//! The operator's side: exit codes, cron silence, `--dry-run`, `--limit`, JSON.

mod common;

use std::fs;

use common::Bed;

/// Under cron (no terminal) a run that succeeds prints nothing at all, and so does a run with
/// nothing due; `-v` prints a line per certificate.
#[test]
fn cron_runs_are_silent_when_all_is_well() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    let first = bed.certorch(&inv, &["run"]);
    first.expect_code(0);
    assert_eq!((first.stdout.as_str(), first.stderr.as_str()), ("", ""));
    let again = bed.certorch(&inv, &["run"]);
    again.expect_code(0);
    assert_eq!((again.stdout.as_str(), again.stderr.as_str()), ("", ""));
    let verbose = bed.certorch(&inv, &["-v", "run"]);
    verbose.expect_code(0);
    assert!(
        verbose.stdout.contains("host1.example.test/www: current "),
        "{}",
        verbose.stdout
    );
    assert!(
        verbose.stdout.contains("host2.example.test/www: current "),
        "{}",
        verbose.stdout
    );
}

/// Exit codes: 0 all good, 1 some failed, 2 inventory or usage error, 3 lock held.
#[test]
fn exit_codes_per_situation() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    bed.certorch(&inv, &["run"]).expect_code(0);

    // 2: usage and inventory errors, before anything is touched.
    let bad = bed.certorch(&inv, &["run", "--no-such-flag"]);
    bad.expect_code(2);
    let missing = bed.certorch(&bed.dir.join("nope.yaml"), &["run"]);
    missing.expect_code(2);
    assert!(
        missing.stderr.starts_with("error: cannot read inventory "),
        "{}",
        missing.stderr
    );
    let unknown = bed.certorch(&inv, &["issue", "db9.example.test"]);
    unknown.expect_code(2);
    assert!(
        unknown
            .stderr
            .contains("no host, group or certificate matches `db9.example.test`"),
        "{}",
        unknown.stderr
    );

    // 3: another run holds the lock.
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(bed.state_dir().join("lock"))
        .unwrap();
    lock.lock().unwrap();
    let locked = bed.certorch(&inv, &["run"]);
    locked.expect_code(3);
    assert!(
        locked
            .stderr
            .starts_with("error: another certorch run holds the lock on "),
        "{}",
        locked.stderr
    );
    drop(lock);

    // 1: a certificate failed (the host is down).
    bed.stop_host(1);
    let failed = bed.certorch(&inv, &["issue", "host1.example.test"]);
    failed.expect_code(1);
    assert!(
        failed
            .stderr
            .starts_with("error: host1.example.test/www: connect failed: "),
        "{}",
        failed.stderr
    );
}

/// A dry run issues from the staging CA into the isolated root on each host: live paths,
/// services and production state are untouched, TXT records come and go as for real.
#[test]
fn a_dry_run_leaves_production_untouched() {
    let bed = Bed::up(1);
    let live = bed.standard_inventory(1);
    let text = fs::read_to_string(&live).unwrap().replacen(
        "  trust_root:",
        &format!("  staging: {}\n  trust_root:", bed.get("PEBBLE_DIRECTORY")),
        1,
    );
    let inv = bed.write_inventory("dry.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run", "--dry-run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["outcomes"][0]["result"], "issued");

    let root = "/var/tmp/certorch-dry-run";
    let full = bed.ssh_ok(1, &format!("cat {root}/etc/ssl/certs/www.pem"));
    assert!(full.contains("BEGIN CERTIFICATE"));
    let cert_pub = bed.ssh_ok(
        1,
        &format!("openssl x509 -in {root}/etc/ssl/certs/www.pem -noout -pubkey"),
    );
    assert_eq!(
        cert_pub,
        bed.ssh_ok(
            1,
            &format!("openssl pkey -in {root}/etc/ssl/private/www.key -pubout")
        )
    );
    for live_path in [
        "/etc/ssl/certs/www.pem",
        "/etc/ssl/certs/www.crt",
        "/etc/ssl/private/www.key",
        "/root/reloaded-www",
    ] {
        assert!(
            !bed.ssh(1, &format!("test -e {live_path}")).status.success(),
            "{live_path} was touched"
        );
    }
    assert!(
        !bed.state_dir().join("state.db").exists(),
        "the dry run wrote production state"
    );
    assert!(bed.state_dir().join("dry-run/state.db").exists());
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());

    // Without a staging CA in a non-Let's-Encrypt inventory, a dry run refuses to start.
    let refused = bed.certorch(&live, &["run", "--dry-run"]);
    refused.expect_code(2);
    assert!(
        refused.stderr.contains("set acme.staging"),
        "{}",
        refused.stderr
    );
}

/// `--limit` selects hosts by name, glob, group and host/cert.
#[test]
fn limit_selects_the_right_hosts() {
    let bed = Bed::up(3);
    let inv = bed.standard_inventory(3);
    let text = fs::read_to_string(&inv).unwrap()
        + "groups:\n  pair: [host1.example.test, host3.example.test]\n";
    let inv = bed.write_inventory("groups.yaml", &text);
    let hosts = |args: &[&str]| -> Vec<String> {
        let r = bed.certorch(&inv, args);
        r.expect_code(0);
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["host"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        hosts(&["--json", "--limit", "host2.example.test", "plan"]),
        ["host2.example.test"]
    );
    assert_eq!(
        hosts(&["--json", "--limit", "pair", "plan"]),
        ["host1.example.test", "host3.example.test"]
    );
    bed.certorch(&inv, &["--limit", "host9*", "plan"])
        .expect_code(2);
    assert_eq!(
        hosts(&[
            "--json",
            "-l",
            "host3*",
            "-l",
            "host1.example.test/www",
            "plan"
        ]),
        ["host1.example.test", "host3.example.test"]
    );
    let run = bed.certorch(&inv, &["--json", "run", "--limit", "pair"]);
    run.expect_code(0);
    let doc = run.json();
    let issued: Vec<&str> = doc["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["host"].as_str().unwrap())
        .collect();
    assert_eq!(issued, ["host1.example.test", "host3.example.test"]);
    assert!(
        !bed.ssh(2, "test -e /etc/ssl/certs/www.pem")
            .status
            .success(),
        "host2 was not selected"
    );
}
