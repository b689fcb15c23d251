//! Renewal that runs itself: short-lived certificates renewed when due, drift repaired, a run
//! killed mid-way repaired by the next, concurrent runs that never both issue, `plan` that
//! changes nothing, `status` for tools.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::Bed;

fn serial(bed: &Bed, i: usize) -> String {
    bed.ssh_ok(i, "openssl x509 -in /etc/ssl/certs/www.pem -noout -serial")
        .trim()
        .to_string()
}

fn key_matches(bed: &Bed, i: usize) -> bool {
    bed.ssh_ok(i, "openssl x509 -in /etc/ssl/certs/www.pem -noout -pubkey")
        == bed.ssh_ok(i, "openssl pkey -in /etc/ssl/private/www.key -pubout")
}

/// Certificates that live 20 seconds are due after 10 (half the lifetime under ten days); the
/// next run renews them and the fresh one is live with its key.
#[test]
fn a_short_lived_certificate_is_renewed_when_due() {
    let bed = Bed::up_short_lived(2, 20);
    let inv = bed.standard_inventory(2);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let before = serial(&bed, 1);

    let now = bed.certorch(&inv, &["--json", "run"]);
    now.expect_code(0);
    let doc = now.json();
    assert_eq!(doc["orders"], 0, "not due yet: {doc}");
    let renew_at = doc["outcomes"][0]["renew_at"].as_str().unwrap().to_string();

    std::thread::sleep(Duration::from_secs(11));
    let later = bed.certorch(&inv, &["--json", "run"]);
    later.expect_code(0);
    let doc = later.json();
    assert_eq!(doc["orders"], 2, "renew_at was {renew_at}: {doc}");
    for o in doc["outcomes"].as_array().unwrap() {
        assert_eq!(o["result"], "issued");
        assert!(o["reason"].as_str().unwrap().ends_with(" left"), "{o}");
    }
    assert_ne!(serial(&bed, 1), before);
    assert!(key_matches(&bed, 1) && key_matches(&bed, 2));
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
}

/// Someone replaces the certificate on a host, and on another deletes it: `plan` says so,
/// `run` reissues and records the new one.
#[test]
fn drift_on_a_host_is_detected_and_repaired() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let deployed = serial(&bed, 1).trim_start_matches("serial=").to_lowercase();
    bed.ssh_ok(
        1,
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=host1.example.test \
         -addext subjectAltName=DNS:host1.example.test,DNS:www.host1.example.test \
         -keyout /etc/ssl/private/www.key -out /etc/ssl/certs/www.pem 2>/dev/null",
    );
    let found = serial(&bed, 1).trim_start_matches("serial=").to_lowercase();
    bed.ssh_ok(2, "rm /etc/ssl/certs/www.pem");

    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    let want1 = format!(
        "host1.example.test/www: would issue (the host has serial {found}, not serial {deployed} that certorch deployed: reissuing)"
    );
    assert!(plan.stdout.contains(&want1), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("host2.example.test/www: would issue (serial "),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("that certorch deployed is gone from the host: reissuing)"),
        "{}",
        plan.stdout
    );

    bed.certorch(&inv, &["run"]).expect_code(0);
    for i in 1..=2 {
        assert!(key_matches(&bed, i));
        let live = bed.ssh_ok(
            i,
            "openssl x509 -in /etc/ssl/certs/www.pem -noout -fingerprint -sha256",
        );
        let live = live
            .trim()
            .rsplit('=')
            .next()
            .unwrap()
            .replace(':', "")
            .to_lowercase();
        let recorded = bed.state_value(&format!(
            "SELECT fingerprint FROM certificates WHERE host = '{}'",
            bed.host_name(i)
        ));
        assert_eq!(live, recorded, "host{i}");
    }
    bed.certorch(&inv, &["--json", "run"]).expect_code(0);
}

/// `plan` opens no order, writes no state and touches no host file, even with work to do.
#[test]
fn plan_changes_nothing() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    // Nothing exists yet: plan must not even create the state directory.
    let fresh = bed.certorch(&inv, &["--json", "plan"]);
    fresh.expect_code(0);
    assert!(!bed.state_exists(), "plan created the state");
    let doc = fresh.json();
    assert_eq!(doc["items"].as_array().unwrap().len(), 2);
    assert!(
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["action"] == "issue"),
        "{doc}"
    );

    bed.certorch(&inv, &["run"]).expect_code(0);
    bed.ssh_ok(2, "rm /etc/ssl/certs/www.pem");
    let before_state = bed.state_snapshot();
    let host_files = "sha256sum /etc/ssl/private/www.key /etc/ssl/certs/www.crt /etc/ssl/certs/www.chain.pem; ls -la --time-style=full-iso /etc/ssl/private /etc/ssl/certs";
    let before_hosts: Vec<String> = (1..=2).map(|i| bed.ssh_ok(i, host_files)).collect();

    let plan = bed.certorch(&inv, &["--json", "plan"]);
    plan.expect_code(0);
    let doc = plan.json();
    let items = doc["items"].as_array().unwrap();
    assert_eq!(items[0]["action"], "none");
    assert_eq!(items[1]["action"], "issue");

    assert_eq!(bed.state_snapshot(), before_state, "plan changed the state");
    let after_hosts: Vec<String> = (1..=2).map(|i| bed.ssh_ok(i, host_files)).collect();
    assert_eq!(after_hosts, before_hosts, "plan changed a host");
}

/// Six certificates with the same names would hit Let's Encrypt's duplicate limit: plan
/// schedules five now and the sixth a week later, when the first five leave the window.
#[test]
fn plan_schedules_around_a_rate_limit() {
    let bed = Bed::up(1);
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n",
        bed.host_addr(1)
    ));
    for n in 0..6 {
        text.push_str(&format!(
            "      c{n}:\n        names: [shared.example.test]\n        key: /etc/ssl/private/c{n}.key\n        fullchain: /etc/ssl/certs/c{n}.pem\n"
        ));
    }
    let inv = bed.write_inventory("dup.yaml", &text);
    let plan = bed.certorch(&inv, &["--json", "plan"]);
    plan.expect_code(0);
    let doc = plan.json();
    assert_eq!(doc["limits"], serde_json::json!([]), "{doc}");
    let schedule = doc["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 2, "{doc}");
    assert!(schedule[0]["at"].is_null());
    assert_eq!(schedule[0]["certificates"], 5);
    assert_eq!(schedule[1]["certificates"], 1);
    let items = doc["items"].as_array().unwrap();
    let last = &items[5];
    assert_eq!(last["cert"], "c5", "{doc}");
    assert_eq!(last["action"], "defer", "{doc}");
    assert_eq!(
        last["limit"],
        "duplicate certificates (same names) per 7 days"
    );
    assert_eq!(last["next_slot"], schedule[1]["at"]);
    assert!(items[..5].iter().all(|i| i["action"] == "issue"), "{doc}");
    let text_plan = bed.certorch(&inv, &["plan"]);
    assert!(
        text_plan
            .stdout
            .contains("host1.example.test/c5: would defer to ")
            && text_plan.stdout.contains("schedule: 5 now, 1 at "),
        "{}",
        text_plan.stdout
    );
}

/// A run killed with SIGKILL after publishing its TXT records (while waiting for a lagging
/// name server) is repaired by the next: records withdrawn, the order abandoned with its
/// authorizations deactivated, and a valid certificate in the end.
#[test]
fn a_killed_run_is_repaired_by_the_next() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    bed.add_dead_signing_ns();

    let mut child = bed.certorch_until_published(&inv, &["run"], "host1.example.test.signing.test");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        !bed.signing_zone_txt().is_empty(),
        "the killed run's records are still there"
    );
    let open: i64 = bed
        .state_value("SELECT count(*) FROM orders WHERE status = 'open'")
        .parse()
        .unwrap();
    assert!(open >= 1, "the killed run's order is recorded as open");
    let killed_order = bed.state_value("SELECT url FROM orders WHERE status = 'open'");

    bed.remove_dead_signing_ns();
    let next = bed.certorch(&inv, &["--json", "run"]);
    next.expect_code(0);
    assert_eq!(next.json()["outcomes"][0]["result"], "issued");
    assert_eq!(
        bed.signing_zone_txt(),
        Vec::<String>::new(),
        "TXT records left behind"
    );
    assert!(key_matches(&bed, 1));
    let count = |sql: &str| -> i64 { bed.state_value(sql).parse().unwrap() };
    assert_eq!(
        count("SELECT count(*) FROM orders WHERE status = 'open'"),
        0
    );
    assert_eq!(count("SELECT count(*) FROM txt_records"), 0);
    let repairs: Vec<String> = bed
        .state_query("SELECT detail FROM audit WHERE action = 'repair' ORDER BY id")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    // Resumed, not abandoned: the CA still held the killed run's order, so no new one was
    // opened, and that order is the one that issued.
    assert_eq!(next.json()["orders"], 0, "{}", next.stdout);
    let status = bed.state_value(&format!(
        "SELECT status FROM orders WHERE url = '{killed_order}'"
    ));
    assert_eq!(status, "issued");
    assert!(
        repairs
            .iter()
            .any(|d| d.starts_with("withdrew ") && d.ends_with("leftover TXT record(s)")),
        "{repairs:?}"
    );
    // Nothing staged is left on the host.
    assert_eq!(
        bed.ssh_ok(
            1,
            "ls -a /etc/ssl/private /etc/ssl/certs | grep -c certorch-new || true"
        )
        .trim(),
        "0"
    );
}

/// Two runs started together: one works, the other stops at the lock with exit code 3.
#[test]
fn two_concurrent_runs_never_both_issue() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    let a = bed
        .certorch_command(&inv, &["--json", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let b = bed
        .certorch_command(&inv, &["--json", "run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    assert_eq!(
        codes,
        [0, 3],
        "a: {}\nb: {}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let (winner, loser) = if a.status.code() == Some(0) {
        (a, b)
    } else {
        (b, a)
    };
    let doc: serde_json::Value = serde_json::from_slice(&winner.stdout).unwrap();
    assert_eq!(doc["orders"], 2);
    assert!(
        String::from_utf8_lossy(&loser.stderr)
            .starts_with("error: another certorch run holds the lock on ")
    );
    let orders: i64 = bed
        .state_value("SELECT count(*) FROM orders")
        .parse()
        .unwrap();
    assert_eq!(orders, 2, "exactly one run ordered");
}

/// `status --json` lists every configured certificate, deployed or not, with what an alert
/// needs; `--prometheus` writes the textfile.
#[test]
fn status_reports_every_certificate() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    bed.certorch(&inv, &["--limit", "host1.example.test", "run"])
        .expect_code(0);
    let prom = bed.scratch("prom").join("certorch.prom");
    let st = bed.certorch(
        &inv,
        &["--json", "status", "--prometheus", prom.to_str().unwrap()],
    );
    st.expect_code(0);
    let doc = st.json();
    let lines = doc.as_array().unwrap();
    assert_eq!(lines.len(), 2);
    let h1 = &lines[0];
    assert_eq!(h1["host"], "host1.example.test");
    assert_eq!(h1["cert"], "www");
    assert_eq!(h1["deployed"], true);
    assert_eq!(h1["last_result"], "issued");
    assert!(h1["days_left"].as_i64().unwrap() > 300);
    assert!(h1["serial"].as_str().unwrap().len() > 8);
    assert_eq!(
        h1["names"],
        serde_json::json!(["host1.example.test", "www.host1.example.test"])
    );
    let h2 = &lines[1];
    assert_eq!(
        (h2["deployed"].clone(), h2["last_result"].clone()),
        (serde_json::json!(false), serde_json::json!("never issued"))
    );
    assert!(h2["not_after"].is_null());
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("certorch_certificate_expiry_timestamp_seconds{host=\"host1.example.test\",cert=\"www\"} 1"), "{text}");
    assert!(text.contains("certorch_certificate_expiry_timestamp_seconds{host=\"host2.example.test\",cert=\"www\"} 0\n"), "{text}");
    assert!(
        text.contains(
            "certorch_certificate_last_run_ok{host=\"host2.example.test\",cert=\"www\"} 0\n"
        ),
        "{text}"
    );
}

/// A CA that requires external account binding: without it registration is refused with the
/// CA's reason; with the kid and HMAC key in the inventory the account is made and used.
#[test]
fn external_account_binding() {
    let bed = Bed::up_with(1, &["--eab"]);
    let inv = bed.standard_inventory(1);
    let refused = bed.certorch(&inv, &["--json", "run"]);
    refused.expect_code(1);
    let o = &refused.json()["outcomes"][0];
    assert_eq!(o["stage"], "order", "{o}");
    assert!(
        o["error"]
            .as_str()
            .unwrap()
            .contains("refused registering an account"),
        "{o}"
    );
    let text = std::fs::read_to_string(&inv).unwrap().replacen(
        "  trust_root:",
        &format!(
            "  eab: {{ kid: {}, hmac_key_file: {} }}\n  trust_root:",
            bed.get("EAB_KID"),
            bed.get("EAB_KEY_FILE")
        ),
        1,
    );
    let inv = bed.write_inventory("eab.yaml", &text);
    let ok = bed.certorch(&inv, &["--json", "run"]);
    ok.expect_code(0);
    assert_eq!(ok.json()["outcomes"][0]["result"], "issued");
    let key = std::fs::read_to_string(bed.get("EAB_KEY_FILE")).unwrap();
    assert!(!ok.stdout.contains(key.trim()) && !ok.stderr.contains(key.trim()));
}

/// A key the survey has checked is not checked again (no openssl on the host) while its
/// certificate and key files are unchanged; another key renamed over the key file is found
/// out by the next run and the certificate reissued. Files count as unchanged only a minute
/// after they last changed, so the run that deployed them stamps nothing.
#[test]
fn a_key_is_checked_again_only_when_its_files_change() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let stamps = || bed.state_query("SELECT stamp, fingerprint, checked_at FROM key_stamps");
    bed.certorch(&inv, &["run"]).expect_code(0);
    assert_eq!(stamps(), Vec::<Vec<String>>::new(), "files just written");

    std::thread::sleep(Duration::from_secs(61));
    bed.certorch(&inv, &["run"]).expect_code(0);
    let first = stamps();
    assert_eq!(first.len(), 1, "{first:?}");
    let recorded = bed.state_value("SELECT fingerprint FROM certificates");
    assert_eq!(first[0][1], recorded);
    assert_eq!(
        first[0][0].lines().count(),
        2,
        "certificate and key: {first:?}"
    );
    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert_eq!(stamps(), first, "plan writes nothing");

    // Unchanged: not checked again, so nothing new to record.
    let again = bed.certorch(&inv, &["--json", "run"]);
    again.expect_code(0);
    assert_eq!(again.json()["outcomes"][0]["result"], "current");
    assert_eq!(stamps(), first, "the key was checked again");

    // Another key of the same type renamed over the key file.
    bed.ssh_ok(
        1,
        "cd /etc/ssl/private && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
         -out www.key.new 2>/dev/null && mv www.key.new www.key",
    );
    assert!(!key_matches(&bed, 1));
    let found = bed.certorch(&inv, &["--json", "run"]);
    found.expect_code(0);
    let doc = found.json();
    assert_eq!(doc["outcomes"][0]["result"], "issued", "{doc}");
    assert_eq!(
        doc["outcomes"][0]["reason"], "the live key does not match the live certificate",
        "{doc}"
    );
    assert!(key_matches(&bed, 1));
}
