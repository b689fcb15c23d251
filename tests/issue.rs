//! End to end against the real bed: keys made on the hosts, dns-01 through the CNAME'd signing
//! zone, chains pushed back; then a second run that has nothing to do.

mod common;

use std::fs;

use common::{Bed, StateBackend, files_under, pem_body, state_backend, verify_chain};

#[test]
fn three_hosts_get_certificates_and_a_second_run_orders_nothing() {
    let bed = Bed::up(3);
    let inv = bed.standard_inventory(3);

    let first = bed.certorch(&inv, &["--json", "run"]);
    first.expect_code(0);
    let doc = first.json();
    assert_eq!(doc["orders"], 3, "{doc}");
    let outcomes = doc["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    for o in outcomes {
        assert_eq!(o["result"], "issued", "{o}");
        assert_eq!(o["reason"], "no certificate on the host", "{o}");
    }

    let root = bed.pebble_root();
    let mut host_keys = Vec::new();
    for i in 1..=3 {
        let full = bed.ssh_ok(i, "cat /etc/ssl/certs/www.pem");
        verify_chain(&bed, &root, &full, &format!("host{i}"));
        // Leaf + chain files agree with the full chain.
        let leaf = bed.ssh_ok(i, "cat /etc/ssl/certs/www.crt");
        let chain = bed.ssh_ok(i, "cat /etc/ssl/certs/www.chain.pem");
        assert_eq!(
            format!("{leaf}{chain}"),
            full,
            "host{i}: cert + chain != fullchain"
        );
        // The names asked for, on this host's own certificate.
        let text = bed.ssh_ok(
            i,
            "openssl x509 -in /etc/ssl/certs/www.crt -noout -ext subjectAltName",
        );
        assert!(
            text.contains(&format!("DNS:host{i}.example.test"))
                && text.contains(&format!("DNS:www.host{i}.example.test")),
            "{text}"
        );
        // The key on the host matches the certificate and is 0600, owned by root.
        let cert_pub = bed.ssh_ok(i, "openssl x509 -in /etc/ssl/certs/www.crt -noout -pubkey");
        let key_pub = bed.ssh_ok(i, "openssl pkey -in /etc/ssl/private/www.key -pubout");
        assert_eq!(cert_pub, key_pub, "host{i}: key does not match certificate");
        assert_eq!(
            bed.ssh_ok(i, "stat -c '%a %U' /etc/ssl/private/www.key")
                .trim(),
            "600 root"
        );
        assert_eq!(
            bed.ssh_ok(i, "stat -c '%a' /etc/ssl/certs/www.pem").trim(),
            "644"
        );
        assert!(
            bed.ssh_ok(
                i,
                "openssl pkey -in /etc/ssl/private/www.key -noout -text | head -1"
            )
            .contains("256 bit")
        );
        // Reloaded, and nothing staged left behind.
        bed.ssh_ok(i, "test -f /root/reloaded-www");
        assert_eq!(
            bed.ssh_ok(
                i,
                "ls -a /etc/ssl/private /etc/ssl/certs | grep -c certorch || true"
            )
            .trim(),
            "0"
        );
        host_keys.push(bed.ssh_ok(i, "cat /etc/ssl/private/www.key"));
    }

    // No TXT record is left in the signing zone.
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());

    // No private key material on the bastion: not in the state dir, certorch's temp dir, or
    // anything it printed.
    let mut bastion_files = Vec::new();
    if state_backend() == StateBackend::Sqlite {
        bastion_files = files_under(&bed.state_dir());
        assert!(
            !bastion_files.is_empty(),
            "the state dir should hold the ACME account"
        );
    } else {
        // The whole PostgreSQL state, as a dump in the bed's scratch space.
        let dump = bed.scratch("pg-dump").join("state.sql");
        let out = std::process::Command::new(
            std::path::Path::new(bed.get("PG_PSQL")).with_file_name("pg_dump"),
        )
        .args(["-h", bed.get("PG_SOCKET_DIR"), "-U", "certorch", "-f"])
        .arg(&dump)
        .arg("certorch")
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bastion_files.push(dump);
    }
    bastion_files.extend(files_under(&bed.certorch_tmp()));
    for key in &host_keys {
        let body = pem_body(key);
        assert!(body.len() > 100);
        let needle = &body[20..80];
        for f in &bastion_files {
            let data = fs::read(f).unwrap();
            assert!(
                !String::from_utf8_lossy(&data).contains(needle),
                "host key material in {}",
                f.display()
            );
        }
        assert!(!first.stdout.contains(needle) && !first.stderr.contains(needle));
    }
    for f in &bastion_files {
        let text = String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned();
        assert!(
            !text.contains("PRIVATE KEY"),
            "a PEM private key in {}",
            f.display()
        );
    }
    assert!(
        files_under(&bed.certorch_tmp()).is_empty(),
        "certorch left files in TMPDIR"
    );
    // The account key lives only in state.db, which is 0600 in a 0700 directory: no other file
    // in the state directory holds it or any other private key (regression, holes #7: this
    // once looped over `state/accounts`, gone since accounts moved into state.db).
    // (SQLite only: on PostgreSQL there is no state directory, and the database's own
    // access control guards the account key.)
    if state_backend() == StateBackend::Sqlite {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let state = bed.state_dir();
        assert_eq!(mode(&state), 0o700, "{}", state.display());
        let credentials: Vec<String> = {
            let db = bed.state_db();
            let mut q = db.prepare("SELECT credentials FROM accounts").unwrap();
            q.query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(credentials.len(), 1, "one account for the one CA");
        let doc: serde_json::Value = serde_json::from_str(&credentials[0]).unwrap();
        let key = doc["key_pkcs8"]
            .as_str()
            .expect("the account key in state.db");
        assert!(key.len() > 60, "{key}");
        let needle = &key[20..60];
        let mut in_db = false;
        for f in files_under(&state) {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            let text = String::from_utf8_lossy(&fs::read(&f).unwrap()).into_owned();
            if name == "state.db" || name.starts_with("state.db-") {
                // SQLite's own journal files hold pages of the database: as private.
                assert_eq!(mode(&f), 0o600, "{}", f.display());
                in_db |= text.contains(needle);
            } else {
                assert!(!text.contains(needle), "the account key in {}", f.display());
                assert!(
                    !text.contains("PRIVATE KEY"),
                    "a private key in {}",
                    f.display()
                );
            }
        }
        assert!(in_db, "the account key is not in state.db's files");
    }

    // A second run right after: everything current, no order opened, nothing reloaded.
    for i in 1..=3 {
        bed.ssh_ok(i, "rm /root/reloaded-www");
    }
    let second = bed.certorch(&inv, &["--json", "run"]);
    second.expect_code(0);
    let doc = second.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    for o in doc["outcomes"].as_array().unwrap() {
        assert_eq!(o["result"], "current", "{o}");
    }
    for i in 1..=3 {
        assert!(
            !bed.ssh(i, "test -f /root/reloaded-www").status.success(),
            "host{i} reloaded on a no-op run"
        );
    }
}

#[test]
fn issue_forces_one_certificate_and_replaces_the_key() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let before1 = bed.ssh_ok(
        1,
        "openssl x509 -in /etc/ssl/certs/www.crt -noout -serial -pubkey",
    );
    let before2 = bed.ssh_ok(2, "openssl x509 -in /etc/ssl/certs/www.crt -noout -serial");

    let again = bed.certorch(&inv, &["--json", "issue", "host1.example.test/www"]);
    again.expect_code(0);
    let doc = again.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    assert_eq!(doc["outcomes"][0]["reason"], "issued on request");

    let after1 = bed.ssh_ok(
        1,
        "openssl x509 -in /etc/ssl/certs/www.crt -noout -serial -pubkey",
    );
    assert_ne!(before1, after1, "host1 got no new certificate and key");
    assert_eq!(
        before2,
        bed.ssh_ok(2, "openssl x509 -in /etc/ssl/certs/www.crt -noout -serial"),
        "host2 was touched"
    );
    // The previous certificate files are kept; the previous key is removed once the new
    // certificate is verified (regression, holes: old keys stayed on hosts forever).
    bed.ssh_ok(1, "test -f /etc/ssl/certs/www.pem.certorch-prev");
    assert!(
        !bed.ssh(1, "test -e /etc/ssl/private/www.key.certorch-prev")
            .status
            .success(),
        "the replaced key is still on host1"
    );
    let cert_pub = bed.ssh_ok(1, "openssl x509 -in /etc/ssl/certs/www.crt -noout -pubkey");
    assert_eq!(
        cert_pub,
        bed.ssh_ok(1, "openssl pkey -in /etc/ssl/private/www.key -pubout")
    );
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());

    // Asked to keep it, the inventory gets the replaced key as .certorch-prev.
    let text = fs::read_to_string(&inv).unwrap().replacen(
        "        reload: \"touch /root/reloaded-www\"\n",
        "        reload: \"touch /root/reloaded-www\"\n        keep_previous_key: true\n",
        1,
    );
    let keep = bed.write_inventory("keep.yaml", &text);
    let live = bed.ssh_ok(1, "cat /etc/ssl/private/www.key");
    bed.certorch(&keep, &["issue", "host1.example.test/www"])
        .expect_code(0);
    assert_eq!(
        bed.ssh_ok(1, "cat /etc/ssl/private/www.key.certorch-prev"),
        live
    );
}
