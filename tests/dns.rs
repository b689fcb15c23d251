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
{{
  echo "server {bind} 53"
  echo "zone signing.test"
  printf '%s' "$batch" | grep -o '"name":"[^"]*","value":"[^"]*"' | while IFS= read -r r; do
    name=$(printf '%s' "$r" | sed 's/^"name":"\([^"]*\)".*/\1/')
    value=$(printf '%s' "$r" | sed 's/.*"value":"\([^"]*\)"$/\1/')
    if [ "$action" = add ]; then echo "update add $name 60 TXT \"$value\""; else echo "update delete $name TXT \"$value\""; fi
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
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let start = head.find("  rfc2136:").unwrap();
    let end = head.find("ssh:").unwrap();
    let head = format!(
        "{}  exec:\n    command: [{}]\n{}",
        &head[..start],
        script.display(),
        &head[end..]
    );
    let mut text = head;
    text.push_str("hosts:\n");
    for i in 1..=2 {
        text.push_str(&format!(
            "  {}:\n    address: {}\n    certs:\n",
            bed.host_name(i),
            bed.host_addr(i)
        ));
        text.push_str(&bed.www_cert(i));
    }
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
    assert_eq!(batches[2]["ttl"], 60);
    assert_eq!(batches[2]["records"][0]["zone"], "signing.test.");
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
    for i in 1..=2 {
        assert_eq!(
            bed.ssh_ok(i, "openssl x509 -in /etc/ssl/certs/www.pem -noout -pubkey"),
            bed.ssh_ok(i, "openssl pkey -in /etc/ssl/private/www.key -pubout")
        );
    }
}
