//! `acme.preferred_chain` against Pebble offering one alternate chain
//! (`PEBBLE_ALTERNATE_ROOTS=1`): the deployed chain leads to the root named, and a name no
//! chain leads to deploys the default chain with a warning.

mod common;

use std::process::Command;

use common::{Bed, pem_body, verify_chain};

/// A PEM from Pebble's management API.
fn mgmt(bed: &Bed, path: &str) -> String {
    let url = format!("{}{path}", bed.get("PEBBLE_MGMT"));
    let out = Command::new("curl")
        .args(["-sf", "--cacert", bed.get("PEBBLE_CA"), &url])
        .output()
        .expect("curl");
    assert!(out.status.success(), "fetch {url}");
    String::from_utf8(out.stdout).unwrap()
}

/// The subject common name of a PEM certificate, by openssl.
fn subject_cn(bed: &Bed, pem: &str) -> String {
    let p = bed.scratch("chain").join("subject.pem");
    std::fs::write(&p, pem).unwrap();
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-nameopt", "multiline", "-in"])
        .arg(&p)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("commonName"))
        .map(|v| v.trim().trim_start_matches('=').trim().to_string())
        .unwrap_or_else(|| panic!("no CN in {text}"))
}

/// The certificates of a PEM bundle, in order.
fn blocks(pem: &str) -> Vec<String> {
    pem.split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .map(pem_body)
        .collect()
}

#[test]
fn the_preferred_chain_is_deployed_and_an_unknown_one_falls_back_with_a_warning() {
    let bed = Bed::up_env(1, &[], &[("PEBBLE_ALTERNATE_ROOTS", "1")]);
    let (root0, root1) = (mgmt(&bed, "/roots/0"), mgmt(&bed, "/roots/1"));
    let (inter0, inter1) = (
        mgmt(&bed, "/intermediates/0"),
        mgmt(&bed, "/intermediates/1"),
    );
    let cn1 = subject_cn(&bed, &root1);
    assert_ne!(cn1, subject_cn(&bed, &root0));

    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let with = |preferred: &str| {
        let head = head.replacen(
            "  contact: [mailto:ops@example.test]\n",
            &format!("  contact: [mailto:ops@example.test]\n  preferred_chain: \"{preferred}\"\n"),
            1,
        );
        assert!(head.contains("preferred_chain"));
        head + &bed.hosts_yaml(1)
    };
    let inv = bed.write_inventory("preferred.yaml", &with(&cn1));
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    assert_eq!(
        run.json()["outcomes"][0]["result"],
        "issued",
        "{}",
        run.stdout
    );
    let full = bed.ssh_ok(1, "cat /etc/ssl/certs/www.pem");
    assert_eq!(
        blocks(&full)[1..],
        blocks(&inter1),
        "not the alternate chain"
    );
    verify_chain(&bed, &root1, &full, "alternate");

    // A root no chain leads to: the default chain, and a warning that says why.
    let inv = bed.write_inventory("unknown.yaml", &with("No Such Root"));
    let run = bed.certorch(&inv, &["--json", "issue", &bed.host_name(1)]);
    run.expect_code(0);
    let doc = run.json();
    let warned = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|w| {
            w.as_str().unwrap().starts_with(
                "host1.example.test/www: no chain the CA offers leads to `No Such Root` (acme.preferred_chain); the default chain is deployed",
            )
        });
    assert!(warned, "{doc:#}");
    let full = bed.ssh_ok(1, "cat /etc/ssl/certs/www.pem");
    assert_eq!(blocks(&full)[1..], blocks(&inter0), "not the default chain");
    verify_chain(&bed, &root0, &full, "default");
}
