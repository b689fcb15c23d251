//! Publishers other than RFC 2136, and propagation across more than one name server.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::Bed;

/// The exec publisher: an operator's script gets each batch as JSON on stdin (here it applies
/// it with nsupdate and logs it). A run is one call to publish and one to withdraw, however
/// many records.
#[test]
fn the_exec_publisher_issues_certificates_in_batches() {
    let bed = Bed::up(2);
    let dir = bed.scratch("exec");
    let log = dir.join("batches.log");
    let script = dir.join("publish.sh");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
set -eu
batch=$(cat)
printf '%s\n' "$batch" >> '{log}'
action=$(printf '%s' "$batch" | sed -n 's/.*"action":"\([a-z]*\)".*/\1/p')
ttl=$(printf '%s' "$batch" | sed -n 's/.*"ttl":\([0-9]*\).*/\1/p')
{{
  echo "server {bind} 53"
  echo "zone signing.test"
  printf '%s' "$batch" | grep -o '"name":"[^"]*","value":"[^"]*"' | while IFS= read -r r; do
    name=$(printf '%s' "$r" | sed 's/^"name":"\([^"]*\)".*/\1/')
    value=$(printf '%s' "$r" | sed 's/.*"value":"\([^"]*\)"$/\1/')
    if [ "$action" = add ]; then echo "update add $name $ttl TXT \"$value\""; else echo "update delete $name TXT \"$value\""; fi
  done
  echo send
}} | nsupdate -k '{key}'
"#,
            log = log.display(),
            bind = bed.get("BIND_ADDR"),
            key = bed.get("TSIG_KEY_FILE"),
        ),
    )
    .unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let head = bed.inventory_head_publishing(&format!(
        "  exec:
    command: [{}]
",
        script.display()
    ));
    let text = head + &bed.hosts_yaml(2);
    let inv = bed.write_inventory("exec.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    assert!(
        run.json()["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "issued")
    );
    let batches: Vec<serde_json::Value> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = batches
        .iter()
        .map(|b| b["action"].as_str().unwrap())
        .collect();
    // The probe (add, remove), then the run's batch (add, remove).
    assert_eq!(actions, ["add", "remove", "add", "remove"]);
    assert_eq!(
        batches[2]["records"].as_array().unwrap().len(),
        4,
        "{}",
        batches[2]
    );
    assert_eq!(batches[2]["records"], batches[3]["records"]);
    // The inventory head's dns.ttl.
    assert_eq!(batches[2]["ttl"], 2);
    assert_eq!(batches[2]["records"][0]["zone"], "signing.test.");
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
    for i in 1..=2 {
        bed.assert_key_matches(i, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");
    }
}

/// Every authoritative server must serve the values before the CA is asked to validate: with
/// a second name server that gets them three seconds late, the run waits for it, says which
/// server it waited for, and only then validates.
#[test]
fn a_run_waits_for_a_lagging_name_server() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let bed = Bed::up_with(1, &["--second-ns"]);
    let inv = bed.standard_inventory(1);
    let (primary, ns2, admin) = (
        bed.get("BIND_ADDR").to_string(),
        bed.get("NS2_ADDR").to_string(),
        bed.get("ADMIN_TSIG_KEY_FILE").to_string(),
    );
    let names = [
        "host1.example.test.signing.test",
        "www.host1.example.test.signing.test",
    ];
    let copier = std::thread::spawn(move || {
        let txt = |server: &str, name: &str| -> Vec<String> {
            let out = Command::new("dig")
                .args(["+short", "+norecurse", &format!("@{server}"), "TXT", name])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim_matches('"').to_string())
                .collect()
        };
        let start = Instant::now();
        let mut values = Vec::new();
        // Wait for the run's records (not the probe's) on the primary.
        while values.len() < names.len() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "certorch never published"
            );
            values = names
                .iter()
                .filter_map(|n| {
                    txt(&primary, n)
                        .into_iter()
                        .next()
                        .map(|v| (n.to_string(), v))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_secs(3));
        let mut script = format!("server {ns2} 53\nzone signing.test\n");
        for (n, v) in &values {
            script.push_str(&format!("update add {n} 60 TXT \"{v}\"\n"));
        }
        script.push_str("send\n");
        let mut child = Command::new("nsupdate")
            .args(["-k", &admin])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    });
    let run = bed.certorch(&inv, &["-v", "--json", "run"]);
    copier.join().unwrap();
    run.expect_code(0);
    assert_eq!(run.json()["outcomes"][0]["result"], "issued");

    let log = &run.stderr;
    let ns2 = bed.get("NS2_ADDR");
    let line = log
        .lines()
        .find(|l| l.contains(&format!("propagation: {ns2}:53 served every value after ")))
        .unwrap_or_else(|| panic!("no evidence for {ns2}: {log}"));
    let secs: f32 = line
        .rsplit("after ")
        .next()
        .unwrap()
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        secs >= 2.5,
        "the run did not wait for the lagging server: {line}"
    );
    assert!(
        log.contains("propagation: 1/2 name servers serve every value"),
        "{log}"
    );
    let waited_at = log.find(line).unwrap();
    let validated_at = log.find("stage=\"validate\"").expect("a validate stage");
    assert!(
        validated_at > waited_at,
        "validation started before every server had the values"
    );
}

/// The zone-file publisher: certorch rewrites the signing zone's file on a DNS host over SSH
/// (here host1, which sees the bed's BIND files), reloads it with rndc, and waits for the new
/// serial; afterwards the file holds no TXT record and a higher serial.
#[test]
fn the_zonefile_publisher_issues_certificates() {
    let bed = Bed::up_with(2, &["--zonefile"]);
    let template = bed.scratch("zonefile").join("signing.test.tmpl");
    fs::write(
        &template,
        format!("$TTL 1\n@ 1 IN SOA ns1 hostmaster {{serial}} 3600 600 86400 1\n@ IN NS ns1\nns1 IN A {}\n", bed.get("BIND_ADDR")),
    )
    .unwrap();
    let head = bed.inventory_head_publishing(&format!(
        "  zonefile:
    host: host1.example.test
    address: {}
    path: {}
    template: {}
    reload: {}
    server: {}
",
        bed.host_addr(1),
        bed.get("ZONE_FILE"),
        template.display(),
        bed.get("RNDC_RELOAD"),
        bed.get("BIND_ADDR"),
    ));
    let text = head + &bed.hosts_yaml(2);
    let inv = bed.write_inventory("zonefile.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    assert!(
        run.json()["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "issued"),
        "{}",
        run.stdout
    );
    let zone = fs::read_to_string(bed.get("ZONE_FILE")).unwrap();
    assert!(
        !zone.contains(" IN TXT "),
        "records left in the zone file:\n{zone}"
    );
    assert!(
        zone.contains("; TXT records published by certorch"),
        "{zone}"
    );
    let serial: u64 = zone
        .lines()
        .find(|l| l.contains(" SOA "))
        .unwrap()
        .split_whitespace()
        .nth(6)
        .unwrap()
        .parse()
        .unwrap();
    assert!(serial > 1_700_000_000, "serial {serial}");
    let served = std::process::Command::new("dig")
        .args([
            "+short",
            &format!("@{}", bed.get("BIND_ADDR")),
            "SOA",
            "signing.test",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&served.stdout).contains(&serial.to_string()));
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
    for i in 1..=2 {
        bed.assert_key_matches(i, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");
    }
}

/// http-01: the token goes into the host's webroot, Pebble fetches it from the host's own web
/// server (nginx), the token is removed afterwards. No TXT record is published: the update
/// server here does not even exist.
#[test]
fn http01_issues_a_certificate_through_the_hosts_web_server() {
    let bed = Bed::up_with(1, &["--http"]);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE")).replace(
        &format!("server: {}:53", bed.get("BIND_ADDR")),
        &format!("server: 127.{}.0.9:53", bed.net),
    );
    let text = format!(
        "{head}hosts:\n  host1.example.test:\n    address: {}\n    certs:\n      web:\n        challenge: http-01\n        webroot: /root/www\n        names: [host1.example.test, www.host1.example.test]\n        key: /etc/ssl/private/web.key\n        fullchain: /etc/ssl/certs/web.pem\n",
        bed.host_addr(1)
    );
    let inv = bed.write_inventory("http01.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["outcomes"][0]["result"],
        "issued",
        "{}",
        run.stdout
    );
    bed.assert_key_matches(1, "/etc/ssl/certs/web.pem", "/etc/ssl/private/web.key");
    let left = bed.ssh_ok(1, "ls -A /root/www/.well-known/acme-challenge");
    assert_eq!(left.trim(), "", "tokens left in the webroot");

    // A wildcard cannot be proved by http-01: refused at load, with the line.
    let wild = text.replace(
        "names: [host1.example.test, www.host1.example.test]",
        "names: [\"*.host1.example.test\"]",
    );
    let inv = bed.write_inventory("http01-wild.yaml", &wild);
    let refused = bed.certorch(&inv, &["run"]);
    refused.expect_code(2);
    assert!(refused.stderr.contains("is a wildcard, which http-01 cannot prove (RFC 8555 §8.3): use dns-01 for this certificate"), "{}", refused.stderr);
}
