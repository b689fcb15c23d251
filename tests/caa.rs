//! CAA (RFC 8659) in preflight: a name whose relevant CAA set leaves the CA out is reported by
//! `check` with the record to add and refused by `run` before any key or order; a set that
//! names the CA issues. The bed's `caa-no` lets `other-ca.example` issue only, `caa-yes` names
//! `pebble.test`, the identity the inventories give Pebble (its 2.4 directory advertises none;
//! Pebble itself does not check CAA, so nothing but certorch's preflight refuses `caa-no`).

mod common;

use common::Bed;

/// A certificate block `label` for `names` on host 1, files under /etc/ssl.
fn cert(label: &str, names: &[&str]) -> String {
    format!(
        "      {label}:\n        names: [{}]\n        key: /etc/ssl/private/{label}.key\n        fullchain: /etc/ssl/certs/{label}.pem\n",
        names.join(", ")
    )
}

/// An inventory with host 1 carrying `certs`; `identities` as `acme.caa_identities`.
fn inventory(bed: &Bed, identities: Option<&str>, certs: &[String]) -> std::path::PathBuf {
    let mut head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    if let Some(ids) = identities {
        head = head.replacen(
            "  contact: [mailto:ops@example.test]\n",
            &format!("  contact: [mailto:ops@example.test]\n  caa_identities: [{ids}]\n"),
            1,
        );
        assert!(head.contains("caa_identities"));
    }
    let text = format!(
        "{head}hosts:\n  {}:\n    address: {}\n    certs:\n{}",
        bed.host_name(1),
        bed.host_addr(1),
        certs.concat()
    );
    bed.write_inventory(&format!("caa-{}.yaml", identities.is_some()), &text)
}

#[test]
fn check_reports_a_caa_set_that_leaves_the_ca_out_with_the_record_to_add() {
    let bed = Bed::up(1);
    let certs = [
        cert(
            "forbidden",
            &["caa-no.example.test", "sub.caa-no.example.test"],
        ),
        cert("allowed", &["caa-yes.example.test"]),
    ];
    let inv = inventory(&bed, Some("pebble.test"), &certs);
    let run = bed.certorch(&inv, &["check"]);
    run.expect_code(1);
    let out = &run.stdout;
    assert!(
        out.contains(
            "FAIL  host1.example.test/forbidden dns: CAA at caa-no.example.test. forbids the CA (pebble.test) to issue for caa-no.example.test: its issue properties allow \"other-ca.example\"\n      fix: add this record to the zone of caa-no.example.test: caa-no.example.test. IN CAA 0 issue \"pebble.test\" (or drop the name from the certificate)\n"
        ),
        "{out}"
    );
    // The child has no CAA of its own: the parent's set is the relevant one (tree climbing).
    assert!(
        out.contains(
            "FAIL  host1.example.test/forbidden dns: CAA at caa-no.example.test. forbids the CA (pebble.test) to issue for sub.caa-no.example.test"
        ),
        "{out}"
    );
    assert!(
        out.contains("fix: add this record to the zone of sub.caa-no.example.test: sub.caa-no.example.test. IN CAA 0 issue \"pebble.test\""),
        "{out}"
    );
    assert!(!out.contains("allowed dns: CAA"), "{out}");
    let doc = bed.certorch(&inv, &["--json", "check"]).json();
    let allowed: Vec<&serde_json::Value> = doc
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["cert"] == "allowed" && f["area"] == "dns")
        .collect();
    assert!(
        allowed.iter().all(|f| f["ok"] == true)
            && allowed
                .iter()
                .any(|f| f["what"] == "CAA lets the CA issue for caa-yes.example.test"),
        "{doc:#}"
    );

    // Without acme.caa_identities (Pebble's directory names none) no set can name the CA:
    // the operator is told what to set.
    let inv = inventory(&bed, None, &certs[1..]);
    let run = bed.certorch(&inv, &["check"]);
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "forbids the CA (no CAA identity known: set acme.caa_identities) to issue for caa-yes.example.test"
        ),
        "{}",
        run.stdout
    );
}

#[test]
fn run_refuses_a_caa_forbidden_certificate_before_its_order_and_issues_an_allowed_one() {
    let bed = Bed::up_env(1, &[], &[("PEBBLE_WFE_NONCEREJECT", "0")]);
    let certs = [
        cert("forbidden", &["caa-no.example.test"]),
        cert("allowed", &["caa-yes.example.test"]),
    ];
    let inv = inventory(&bed, Some("pebble.test"), &certs);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    // One order: the allowed certificate's.
    assert_eq!(doc["orders"], 1, "{doc:#}");
    let outcome = |label: &str| {
        doc["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["cert"] == label)
            .unwrap_or_else(|| panic!("no outcome for {label}: {doc:#}"))
            .clone()
    };
    let forbidden = outcome("forbidden");
    assert_eq!(forbidden["result"], "failed", "{forbidden}");
    assert_eq!(forbidden["stage"], "preflight", "{forbidden}");
    assert_eq!(forbidden["kind"], "dns.caa_forbids", "{forbidden}");
    assert_eq!(
        forbidden["hint"],
        "add this record to the zone of caa-no.example.test: caa-no.example.test. IN CAA 0 issue \"pebble.test\" (or drop the name from the certificate)"
    );
    assert_eq!(outcome("allowed")["result"], "issued", "{doc:#}");
    let root = bed.pebble_root();
    let full = bed.ssh_ok(1, "cat /etc/ssl/certs/allowed.pem");
    common::verify_chain(&bed, &root, &full, "allowed");
    assert_eq!(
        bed.cert_names(1, "/etc/ssl/certs/allowed.pem"),
        ["caa-yes.example.test"]
    );
    // No key was made for the refused certificate, and nothing is left staged.
    assert!(
        !bed.ssh(1, "test -e /etc/ssl/private/forbidden.key")
            .status
            .success()
    );
    bed.assert_nothing_staged(1);

    // Again: the allowed certificate is current, the forbidden one is refused again, and no
    // order is opened at all.
    let again = bed.certorch(&inv, &["--json", "run"]);
    again.expect_code(1);
    let doc = again.json();
    assert_eq!(doc["orders"], 0, "{doc:#}");
    assert!(
        doc["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["cert"] == "forbidden" && o["kind"] == "dns.caa_forbids"),
        "{doc:#}"
    );
}
