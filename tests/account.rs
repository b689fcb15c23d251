//! `certorch account rollover` (RFC 8555 §7.3.5) against Pebble: the account keeps its URL,
//! its key changes (compared by the public key's thumbprint, never the secret), the new key
//! is what the state holds, and the next issuance works with it.

mod common;

use common::Bed;

/// The stored account key (base64 PKCS#8) as it stands in the state, to check it is never
/// printed.
fn stored_key(bed: &Bed) -> String {
    let json = bed.state_value("SELECT credentials FROM accounts");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["key_pkcs8"].as_str().unwrap().to_string()
}

#[test]
fn rollover_changes_the_key_keeps_the_account_and_the_next_issue_uses_the_new_key() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);

    // No account yet: nothing to roll over, and the operator is told what to do.
    let none = bed.certorch(&inv, &["account", "rollover"]);
    none.expect_code(2);
    assert!(
        none.stderr.contains("error: there is no account for ")
            && none
                .stderr
                .contains("hint: `certorch account register` creates one"),
        "{}",
        none.stderr
    );

    bed.certorch(&inv, &["run"]).expect_code(0);
    let before = bed.certorch(&inv, &["--json", "account", "show"]).json();
    let url = before["account_url"].as_str().unwrap().to_string();
    let old = before["key_thumbprint"].as_str().unwrap().to_string();
    assert!(!old.is_empty(), "{before}");
    let old_key = stored_key(&bed);

    let rolled = bed.certorch(&inv, &["--json", "account", "rollover"]);
    rolled.expect_code(0);
    let doc = rolled.json();
    assert_eq!(doc["account_url"], url.as_str(), "{doc}");
    assert_eq!(doc["old_thumbprint"], old.as_str(), "{doc}");
    let new = doc["new_thumbprint"].as_str().unwrap().to_string();
    assert_ne!(new, old, "{doc}");
    let new_key = stored_key(&bed);
    assert_ne!(new_key, old_key, "the stored key did not change");
    for secret in [&old_key, &new_key] {
        assert!(
            !rolled.stdout.contains(secret.as_str()) && !rolled.stderr.contains(secret.as_str()),
            "an account key was printed"
        );
    }

    // The state holds the new key for the same account.
    let after = bed.certorch(&inv, &["--json", "account", "show"]).json();
    assert_eq!(after["account_url"], url.as_str(), "{after}");
    assert_eq!(after["key_thumbprint"], new.as_str(), "{after}");
    let audit = bed
        .state_value("SELECT detail FROM audit WHERE action = 'account' ORDER BY id DESC LIMIT 1");
    assert_eq!(
        audit,
        format!("key rolled over for {url}: thumbprint {old} -> {new}")
    );
    assert!(!audit.contains(&new_key));

    // Pebble takes requests signed with the new key for the same account: a new certificate.
    let serial_before = bed.ssh_ok(1, "openssl x509 -in /etc/ssl/certs/www.pem -noout -serial");
    let issued = bed.certorch(&inv, &["--json", "issue", &bed.host_name(1)]);
    issued.expect_code(0);
    assert_eq!(
        issued.json()["outcomes"][0]["result"],
        "issued",
        "{}",
        issued.stdout
    );
    let serial_after = bed.ssh_ok(1, "openssl x509 -in /etc/ssl/certs/www.pem -noout -serial");
    assert_ne!(serial_before, serial_after);
    bed.assert_www_valid(1, &bed.pebble_root(), &["host1.example.test"]);
    let last = bed.certorch(&inv, &["--json", "account", "show"]).json();
    assert_eq!(last["account_url"], url.as_str(), "{last}");
}
