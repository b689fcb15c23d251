//! Who signed a deployed certificate is part of whether it is current (issue 12): a certificate
//! with the right names from another issuer than the inventory asks for is replaced on the next
//! run, and `plan` says why; adopted intermediates keep another tool's certificates until due.
//! Shared-key groups whose members serve different certificates are brought back together.

mod common;

use common::Bed;

const CERT: &str = "/etc/ssl/certs/www.pem";

/// SHA-256 fingerprint (lower-case hex) of the certificate in `path` on host i.
fn fingerprint(bed: &Bed, i: usize, path: &str) -> String {
    bed.ssh_ok(
        i,
        &format!("openssl x509 -in {path} -noout -fingerprint -sha256"),
    )
    .trim()
    .rsplit('=')
    .next()
    .unwrap()
    .replace(':', "")
    .to_lowercase()
}

fn issuer_of(bed: &Bed, i: usize, path: &str) -> String {
    bed.ssh_ok(i, &format!("openssl x509 -in {path} -noout -issuer"))
        .trim()
        .to_string()
}

/// The plan item for host i's `www`, from `plan --json`.
fn plan_item(doc: &serde_json::Value, bed: &Bed, i: usize) -> serde_json::Value {
    doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|it| it["host"] == bed.host_name(i).as_str() && it["cert"] == "www")
        .unwrap_or_else(|| panic!("no item for host{i}: {doc}"))
        .clone()
}

/// Certificates first made with `issuer: self-signed` (host1) and `issuer: internal` (host2),
/// then the inventory switched to the ACME CA: `plan` names the change, `run` replaces both
/// with the CA's, and after that they are current.
#[test]
fn self_signed_and_internal_certificates_are_replaced_when_the_inventory_moves_to_acme() {
    let bed = Bed::up(2);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let yaml = bed.hosts_yaml(2);
    let parts: Vec<&str> = yaml.split("      www:\n").collect();
    assert_eq!(parts.len(), 3, "{yaml}");
    let local = format!(
        "{head}{}      www:\n        issuer: self-signed\n{}      www:\n        issuer: internal\n{}",
        parts[0], parts[1], parts[2]
    );
    let local = bed.write_inventory("local.yaml", &local);
    bed.certorch(&local, &["run"]).expect_code(0);
    let before = [fingerprint(&bed, 1, CERT), fingerprint(&bed, 2, CERT)];
    assert!(issuer_of(&bed, 2, CERT).contains("certorch internal CA"));

    let inv = bed.standard_inventory(2);
    let dir = bed.get("PEBBLE_DIRECTORY").to_string();
    let want1 = format!("issuer changed: self-signed → acme ({dir})");
    let want2 = format!("issuer changed: internal → acme ({dir})");
    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    for (i, want) in [(1, &want1), (2, &want2)] {
        let line = format!("{}/www: would issue ({want})", bed.host_name(i));
        assert!(plan.stdout.contains(&line), "{line}\n{}", plan.stdout);
    }
    let doc = bed.certorch(&inv, &["--json", "plan"]).json();
    for (i, want) in [(1, &want1), (2, &want2)] {
        let item = plan_item(&doc, &bed, i);
        assert_eq!(item["action"], "issue", "{doc}");
        assert_eq!(item["reason"], want.as_str(), "{doc}");
    }

    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 2, "{doc}");
    for (i, want) in [(1, &want1), (2, &want2)] {
        let o = doc["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["host"] == bed.host_name(i).as_str())
            .unwrap();
        assert_eq!(o["result"], "issued", "{doc}");
        assert_eq!(o["reason"], want.as_str(), "{doc}");
        assert_ne!(fingerprint(&bed, i, CERT), before[i - 1]);
        assert!(
            issuer_of(&bed, i, CERT).contains("Pebble Intermediate"),
            "host{i}: {}",
            issuer_of(&bed, i, CERT)
        );
    }
    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert_eq!(
        plan.stdout.matches(": nothing to do until ").count(),
        2,
        "{}",
        plan.stdout
    );
}

/// A placeholder certificate that happens to carry the right names and key type, signed by a
/// CA certorch has never seen: on a first run it is replaced, with the issuer named.
#[test]
fn a_placeholder_certificate_with_the_right_names_is_replaced() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    bed.ssh_ok(
        1,
        "set -e; cd /root; \
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
           -subj '/CN=snakeoil CA' -keyout ca.key -out ca.pem 2>/dev/null; \
         openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=host1.example.test \
           -keyout /etc/ssl/private/www.key -out www.csr 2>/dev/null; \
         printf 'subjectAltName=DNS:host1.example.test,DNS:www.host1.example.test\\n' > ext; \
         openssl x509 -req -in www.csr -CA ca.pem -CAkey ca.key -days 365 -extfile ext \
           -out /etc/ssl/certs/www.pem 2>/dev/null; \
         cp /etc/ssl/certs/www.pem /etc/ssl/certs/www.crt",
    );
    let placeholder = fingerprint(&bed, 1, CERT);
    let want = format!(
        "issuer changed: unknown issuer CN=snakeoil CA → acme ({})",
        bed.get("PEBBLE_DIRECTORY")
    );
    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert_eq!(
        plan.stdout.trim(),
        format!("host1.example.test/www: would issue ({want})"),
    );
    let doc = bed.certorch(&inv, &["--json", "plan"]).json();
    assert_eq!(plan_item(&doc, &bed, 1)["reason"], want.as_str(), "{doc}");

    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["outcomes"][0]["result"], "issued", "{doc}");
    assert_eq!(doc["outcomes"][0]["reason"], want.as_str(), "{doc}");
    assert_ne!(fingerprint(&bed, 1, CERT), placeholder);
    assert!(issuer_of(&bed, 1, CERT).contains("Pebble Intermediate"));
}

/// Moving to certorch from another ACME client: a certificate from the same CA but not in
/// certorch's state (here: the state is deleted) is due as from an unknown issuer, unless
/// `acme.adopt_issuers` lists the intermediate that signed it; then it is kept until due.
#[test]
fn certificates_signed_by_an_adopted_intermediate_are_kept_until_due() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let issued = fingerprint(&bed, 1, CERT);
    bed.forget_state();

    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    let prefix = "host1.example.test/www: would issue (issuer changed: unknown issuer CN=Pebble Intermediate";
    assert!(plan.stdout.starts_with(prefix), "{}", plan.stdout);
    assert!(
        plan.stdout
            .trim_end()
            .ends_with(&format!("→ acme ({}))", bed.get("PEBBLE_DIRECTORY"))),
        "{}",
        plan.stdout
    );

    let url = format!("{}/intermediates/0", bed.get("PEBBLE_MGMT"));
    let out = std::process::Command::new("curl")
        .args(["-sf", "--cacert", bed.get("PEBBLE_CA"), &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "fetch {url}");
    let chain = bed.scratch("adopt").join("chain.pem");
    std::fs::write(&chain, &out.stdout).unwrap();
    let text = std::fs::read_to_string(&inv).unwrap().replacen(
        "  contact: [mailto:ops@example.test]\n",
        &format!(
            "  contact: [mailto:ops@example.test]\n  adopt_issuers: [{}]\n",
            chain.display()
        ),
        1,
    );
    let adopted = bed.write_inventory("adopted.yaml", &text);
    let plan = bed.certorch(&adopted, &["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout
            .starts_with("host1.example.test/www: nothing to do until "),
        "{}",
        plan.stdout
    );
    let run = bed.certorch(&adopted, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    assert_eq!(doc["outcomes"][0]["result"], "current", "{doc}");
    assert_eq!(fingerprint(&bed, 1, CERT), issued);
}

/// Issue 12, item 6: one member of a shared-key label keeps the old certificate because its
/// deploy failed (its reload refused, so its files went back). `plan` shows the group due and
/// names that member; `run` brings all three back to one certificate. The same when another
/// certificate is copied over a member (that member's drift takes the group along).
#[test]
fn a_shared_group_whose_members_differ_is_due_and_made_one_again() {
    let bed = Bed::up(3);
    let mut hosts = String::from("hosts:\n");
    for i in 1..=3 {
        hosts.push_str(&format!(
            "  {}:\n    address: {}\n",
            bed.host_name(i),
            bed.host_addr(i)
        ));
    }
    let text = format!(
        "{head}{hosts}shared:\n  www:\n    hosts: [host1.example.test, host2.example.test, host3.example.test]\n    cert:\n      names: [shared.example.test]\n      key: /etc/ssl/private/www.key\n      fullchain: {CERT}\n      reload: \"test ! -e /root/refuse-reload\"\n",
        head = bed.inventory_head(bed.get("TSIG_KEY_FILE")),
    );
    let inv = bed.write_inventory("shared.yaml", &text);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let first = fingerprint(&bed, 3, CERT);
    for i in 1..=2 {
        assert_eq!(fingerprint(&bed, i, CERT), first);
    }

    // A new certificate for the group; host3's reload refuses it, so host3 keeps the first.
    bed.ssh_ok(3, "touch /root/refuse-reload");
    bed.certorch(&inv, &["issue", "host1.example.test/www"])
        .expect_code(1);
    bed.ssh_ok(3, "rm /root/refuse-reload");
    let second = fingerprint(&bed, 1, CERT);
    assert_ne!(second, first);
    assert_eq!(fingerprint(&bed, 2, CERT), second);
    assert_eq!(fingerprint(&bed, 3, CERT), first);
    bed.assert_key_matches(3, CERT, "/etc/ssl/private/www.key");

    let serial = |i: usize| {
        bed.ssh_ok(i, &format!("openssl x509 -in {CERT} -noout -serial"))
            .trim()
            .trim_start_matches("serial=")
            .to_lowercase()
    };
    let want = format!(
        "its shared-key group differs: host3.example.test serves serial {}, the others serial {}: the group gets one new key and certificate",
        serial(3),
        serial(1)
    );
    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    for i in 1..=3 {
        let line = format!("{}/www: would issue ({want})", bed.host_name(i));
        assert!(plan.stdout.contains(&line), "{line}\n{}", plan.stdout);
    }

    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    let third = fingerprint(&bed, 1, CERT);
    assert_ne!(third, second);
    for i in 1..=3 {
        assert_eq!(fingerprint(&bed, i, CERT), third, "host{i}");
        bed.assert_key_matches(i, CERT, "/etc/ssl/private/www.key");
    }

    // Another certificate and its key copied over one member: drift there, and the group
    // follows it.
    bed.ssh_ok(
        2,
        &format!(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
             -subj /CN=shared.example.test -addext subjectAltName=DNS:shared.example.test \
             -keyout /etc/ssl/private/www.key -out {CERT} 2>/dev/null"
        ),
    );
    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout
            .contains("host2.example.test/www: would issue (the host has serial "),
        "{}",
        plan.stdout
    );
    for i in [1, 3] {
        let line = format!(
            "{}/www: would issue (its shared-key label is due on host2.example.test: ",
            bed.host_name(i)
        );
        assert!(plan.stdout.contains(&line), "{line}\n{}", plan.stdout);
    }
    bed.certorch(&inv, &["run"]).expect_code(0);
    let fourth = fingerprint(&bed, 1, CERT);
    assert_ne!(fourth, third);
    for i in 1..=3 {
        assert_eq!(fingerprint(&bed, i, CERT), fourth, "host{i}");
        bed.assert_key_matches(i, CERT, "/etc/ssl/private/www.key");
    }
    let plan = bed.certorch(&inv, &["plan"]);
    assert_eq!(
        plan.stdout.matches(": nothing to do until ").count(),
        3,
        "{}",
        plan.stdout
    );
}
