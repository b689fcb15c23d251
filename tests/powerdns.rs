//! The PowerDNS publisher against a real `pdns_server` (the bed's `--pdns`): its HTTP API takes
//! the run's TXT records, one read and one PATCH per zone per batch, and leaves values others
//! put at the same names alone.

mod common;

use std::process::Command;

use common::Bed;

/// The zone's TXT rrsets as the API returns them: (name, [content]).
fn api_txt(bed: &Bed) -> Vec<(String, Vec<String>)> {
    let out = curl(bed, "GET", "");
    let zone: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let mut txt: Vec<(String, Vec<String>)> = zone["rrsets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "TXT")
        .map(|r| {
            let mut contents: Vec<String> = r["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["content"].as_str().unwrap().to_string())
                .collect();
            contents.sort();
            (r["name"].as_str().unwrap().to_string(), contents)
        })
        .collect();
    txt.sort();
    txt
}

/// One request to the zone's API URL with the bed's key; returns the body, asserts 2xx.
fn curl(bed: &Bed, method: &str, body: &str) -> String {
    let key = std::fs::read_to_string(bed.get("PDNS_API_KEY_FILE")).unwrap();
    let url = format!(
        "{}/api/v1/servers/localhost/zones/pdns-signing.test.",
        bed.get("PDNS_API")
    );
    let mut c = Command::new("curl");
    c.args(["-sSf", "-X", method, "-H"])
        .arg(format!("X-API-Key: {}", key.trim()));
    if !body.is_empty() {
        c.args(["-H", "content-type: application/json", "--data", body]);
    }
    let out = c.arg(&url).output().unwrap();
    assert!(
        out.status.success(),
        "curl {} {url}: {}",
        method,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Requests PowerDNS logged so far, once at least `expected` are there: its webserver writes
/// one line per request, a moment after answering it, so a count read right after a request
/// may miss it (polls for up to 10 s, then returns what is there).
fn logged_at_least(bed: &Bed, method: &str, expected: usize) -> usize {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let n = logged(bed, method);
        if n >= expected || std::time::Instant::now() > deadline {
            // Anything logged late beyond `expected` shows up here too.
            std::thread::sleep(std::time::Duration::from_millis(300));
            return logged(bed, method);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Requests PowerDNS logged so far (its webserver logs one line per request).
fn logged(bed: &Bed, method: &str) -> usize {
    let log = std::fs::read_to_string(bed.get("PDNS_LOG")).unwrap();
    let needle = format!("\"{method} /api/v1/servers/localhost/zones/pdns-signing.test. ");
    log.lines().filter(|l| l.contains(&needle)).count()
}

/// The inventory head publishing into pdns-signing.test through the bed's PowerDNS.
fn head(bed: &Bed, key: &str) -> String {
    bed.inventory_head_publishing(&format!(
        "  powerdns:\n    api: {}\n    server_id: localhost\n{key}",
        bed.get("PDNS_API")
    ))
    .replace(
        "signing_zone: signing.test\n",
        "signing_zone: pdns-signing.test\n",
    )
}

fn cert(label: &str, names: &[&str]) -> String {
    format!(
        "      {label}:\n        names: [{}]\n        key: /etc/ssl/private/{label}.key\n        fullchain: /etc/ssl/certs/{label}.pem\n",
        names.join(", ")
    )
}

/// Three certificates on two hosts; four names share one target (pool.pdns-signing.test) where
/// someone else already keeps a value. One publish and one withdraw for the run (plus the
/// preflight probe's pair), every certificate issued, the other value still there and
/// nothing of certorch's left in the zone.
#[test]
fn the_powerdns_publisher_issues_in_batches_and_keeps_others_values() {
    let bed = Bed::up_with(2, &["--pdns"]);
    curl(
        &bed,
        "PATCH",
        r#"{"rrsets":[{"name":"pool.pdns-signing.test.","type":"TXT","ttl":60,"changetype":"REPLACE","records":[{"content":"\"someone else\"","disabled":false}]}]}"#,
    );
    let theirs = vec![(
        "pool.pdns-signing.test.".to_string(),
        vec!["\"someone else\"".to_string()],
    )];
    assert_eq!(api_txt(&bed), theirs);

    let mut text = head(
        &bed,
        &format!("    api_key_file: {}\n", bed.get("PDNS_API_KEY_FILE")),
    );
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n{}{}  host2.example.test:\n    address: {}\n    certs:\n{}",
        bed.host_addr(1),
        cert("a", &["pdns1.example.test", "k1.pdns-pool.example.test"]),
        cert("c", &["k3.pdns-pool.example.test", "k4.pdns-pool.example.test"]),
        bed.host_addr(2),
        cert("b", &["pdns2.example.test", "k2.pdns-pool.example.test"]),
    ));
    let inv = bed.write_inventory("powerdns.yaml", &text);
    // The test's own PATCH and GET above, once they are in the log.
    let (patches, gets) = (
        logged_at_least(&bed, "PATCH", 1),
        logged_at_least(&bed, "GET", 1),
    );

    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    let outcomes = doc["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3, "{doc}");
    assert!(outcomes.iter().all(|o| o["result"] == "issued"), "{doc}");

    // The probe's add and remove, then the run's: one read and one PATCH each.
    assert_eq!(
        logged_at_least(&bed, "PATCH", patches + 4) - patches,
        4,
        "{}",
        bed.get("PDNS_LOG")
    );
    assert_eq!(logged_at_least(&bed, "GET", gets + 4) - gets, 4);
    assert_eq!(api_txt(&bed), theirs, "the zone after the run");
    let served = Command::new("dig")
        .args([
            "+short",
            "+norecurse",
            &format!("@{}", bed.get("PDNS_ADDR")),
        ])
        .args(["TXT", "pool.pdns-signing.test"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&served.stdout).trim(),
        "\"someone else\""
    );

    let root = bed.pebble_root();
    for (i, label) in [(1, "a"), (1, "c"), (2, "b")] {
        let full = bed.ssh_ok(i, &format!("cat /etc/ssl/certs/{label}.pem"));
        common::verify_chain(&bed, &root, &full, &format!("host{i}-{label}"));
        bed.assert_key_matches(
            i,
            &format!("/etc/ssl/certs/{label}.pem"),
            &format!("/etc/ssl/private/{label}.key"),
        );
    }
}

/// A key the API refuses stops the run before any order: the error names the API and its
/// answer, the kind says so, and the key itself is printed nowhere.
#[test]
fn a_refused_powerdns_key_opens_no_order() {
    let bed = Bed::up_with(1, &["--pdns"]);
    let wrong = std::fs::read_to_string(bed.get("WRONG_PDNS_API_KEY_FILE")).unwrap();
    let wrong = wrong.trim();
    let mut text = head(&bed, "    api_key_env: CERTORCH_TEST_PDNS_KEY\n");
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n{}",
        bed.host_addr(1),
        cert("a", &["pdns1.example.test"]),
    ));
    let inv = bed.write_inventory("powerdns-wrong-key.yaml", &text);
    let run = bed
        .certorch_command(&inv, &["--json", "run"])
        .env("CERTORCH_TEST_PDNS_KEY", wrong)
        .output()
        .unwrap();
    let run = common::Run::from(run);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    let o = &doc["outcomes"][0];
    assert_eq!(o["stage"], "preflight", "{o}");
    assert_eq!(o["kind"], "dns.api_refused", "{o}");
    let error = o["error"].as_str().unwrap();
    assert!(
        error.contains(bed.get("PDNS_API"))
            && error.contains("pdns-signing.test")
            && error.contains("HTTP 401 Unauthorized"),
        "{error}"
    );
    assert!(
        o["hint"]
            .as_str()
            .unwrap()
            .contains("$CERTORCH_TEST_PDNS_KEY is not the api-key of pdns.conf"),
        "{o}"
    );
    assert!(
        !run.stdout.contains(wrong) && !run.stderr.contains(wrong),
        "the API key was printed"
    );
    assert_eq!(api_txt(&bed), Vec::new());
    assert_eq!(
        bed.ssh_ok(1, "ls -a /etc/ssl/private | grep -c '^a.key' || true")
            .trim(),
        "0"
    );
}
