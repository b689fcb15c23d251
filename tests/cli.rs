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
        verbose
            .stdout
            .contains("host1.example.test/www: current, expires "),
        "{}",
        verbose.stdout
    );
    assert!(
        verbose
            .stdout
            .contains("host2.example.test/www: current, expires "),
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
    let lock = bed.hold_state_lock();
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
    match common::state_backend() {
        common::StateBackend::Sqlite => {
            assert!(
                !bed.state_dir().join("state.db").exists(),
                "the dry run wrote production state"
            );
            assert!(bed.state_dir().join("dry-run/state.db").exists())
        }
        // A dry run's state is a schema of its own in the same database.
        common::StateBackend::Postgres => {
            assert!(!bed.state_exists(), "the dry run wrote production state");
            assert_eq!(
                bed.psql("SELECT to_regclass('certorch_dry_run.certorch_schema') IS NOT NULL")
                    .trim(),
                "t"
            )
        }
    }
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

/// Reads one HTTP request from `listener`, answers 200, returns the body.
fn receive_one(listener: std::net::TcpListener) -> String {
    use std::io::{BufRead, BufReader, Read, Write};
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut len = 0usize;
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    assert!(
        request_line.starts_with("POST /hook/s3cret "),
        "{request_line}"
    );
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).unwrap();
    let mut s = stream;
    s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        .unwrap();
    String::from_utf8(body).unwrap()
}

/// A failed certificate is reported to the webhook (JSON POST with a chat-ready `text`) and to
/// the exec command (same JSON on stdin), with host, certificate, phase and error.
#[test]
fn failures_are_notified() {
    let bed = Bed::up(2);
    let listener = std::net::TcpListener::bind(format!("127.{}.0.20:0", bed.net)).unwrap();
    let url = format!("http://{}/hook/s3cret", listener.local_addr().unwrap());
    let got = std::thread::spawn(move || receive_one(listener));
    let exec_out = bed.scratch("notify").join("exec.json");
    let inv = bed.standard_inventory(2);
    let text = fs::read_to_string(&inv).unwrap().replacen(
        "hosts:\n",
        &format!(
            "notify:\n  webhook: {url}\n  exec: [sh, -c, 'cat > {}']\nhosts:\n",
            exec_out.display()
        ),
        1,
    );
    let inv = bed.write_inventory("notify.yaml", &text);
    bed.stop_host(2);
    let run = bed.certorch(&inv, &["run"]);
    run.expect_code(1);
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);

    let body = got.join().unwrap();
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events = doc["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "only the failure: {doc}");
    assert_eq!(events[0]["event"], "failed");
    assert_eq!(events[0]["host"], "host2.example.test");
    assert_eq!(events[0]["cert"], "www");
    assert_eq!(events[0]["phase"], "connect");
    assert!(
        events[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("cannot connect to ")
    );
    assert!(
        doc["text"]
            .as_str()
            .unwrap()
            .starts_with("certorch: host2.example.test/www failed at connect: cannot connect to ")
    );
    let via_exec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&exec_out).unwrap()).unwrap();
    assert_eq!(via_exec, doc);
}

/// `init` writes a starter inventory that loads, once; `account` shows, registers and
/// deactivates; `revoke` revokes at the CA and the next run replaces the certificate.
#[test]
fn init_account_and_revoke() {
    let bed = Bed::up(1);
    let starter = bed.scratch("init").join("etc/certorch/inventory.yaml");
    let init = bed.certorch(&starter, &["init"]);
    init.expect_code(0);
    assert!(
        fs::read_to_string(&starter)
            .unwrap()
            .contains("signing_zone:")
    );
    bed.certorch(&starter, &["--json", "status"]).expect_code(0);
    let again = bed.certorch(&starter, &["init"]);
    again.expect_code(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);

    let inv = bed.standard_inventory(1);
    let show = bed.certorch(&inv, &["--json", "account", "show"]);
    show.expect_code(0);
    assert_eq!(show.json()["registered"], false);
    let reg = bed.certorch(&inv, &["account", "register"]);
    reg.expect_code(0);
    let url = reg.stdout.trim().to_string();
    assert!(
        url.starts_with("https://") && url.contains("/my-account/"),
        "{url}"
    );
    let show = bed.certorch(&inv, &["--json", "account", "show"]).json();
    assert_eq!(show["account_url"], url.as_str());

    bed.certorch(&inv, &["run"]).expect_code(0);
    let serial = bed.certorch(&inv, &["--json", "status"]).json()[0]["serial"]
        .as_str()
        .unwrap()
        .to_string();
    let status_url = format!("{}/cert-status-by-serial/{serial}", bed.get("PEBBLE_MGMT"));
    let pebble_status = || {
        let out = std::process::Command::new("curl")
            .args(["-sf", "--cacert", bed.get("PEBBLE_CA"), &status_url])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["Status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(pebble_status(), "Valid");
    let rev = bed.certorch(
        &inv,
        &["revoke", "host1.example.test/www", "--reason", "superseded"],
    );
    rev.expect_code(0);
    assert_eq!(pebble_status(), "Revoked");
    let plan = bed.certorch(&inv, &["plan"]);
    assert!(
        plan.stdout.contains(&format!(
            "host1.example.test/www: would issue (serial {serial} was revoked)"
        )),
        "{}",
        plan.stdout
    );
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let o = &run.json()["outcomes"][0];
    assert_eq!(o["result"], "issued");
    assert_ne!(o["serial"].as_str().unwrap(), serial);
    bed.certorch(&inv, &["revoke", "host1.example.test/nope"])
        .expect_code(2);

    bed.certorch(&inv, &["account", "deactivate"])
        .expect_code(2);
    bed.certorch(&inv, &["account", "deactivate", "--yes"])
        .expect_code(0);
    assert_eq!(
        bed.certorch(&inv, &["--json", "account", "show"]).json()["registered"],
        false
    );
}

fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn sorted(k: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// Every `--json` document has exactly the fields docs/json.md lists.
#[test]
fn json_documents_match_the_documented_schema() {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/json.md")).unwrap();
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    bed.stop_host(2);
    let run = bed.certorch(&inv, &["--json", "run"]).json();
    assert_eq!(
        keys(&run),
        sorted(&[
            "outcomes",
            "orders",
            "warnings",
            "dry_run",
            "record_failed",
            "timings",
            "ssh_sessions"
        ])
    );
    assert_eq!(
        keys(&run["timings"]),
        sorted(&[
            "setup_ms",
            "connect_ms",
            "inspect_ms",
            "preflight_ms",
            "key_ms",
            "account_ms",
            "order_ms",
            "publish_ms",
            "wait_ms",
            "validate_ms",
            "withdraw_ms",
            "local_ms",
            "deploy_ms",
            "record_ms",
            "total_ms"
        ])
    );
    assert!(run["timings"]["total_ms"].is_u64());
    let issued = &run["outcomes"][0];
    assert_eq!(issued["result"], "issued");
    assert_eq!(
        keys(issued),
        sorted(&[
            "result",
            "host",
            "cert",
            "reason",
            "names",
            "serial",
            "fingerprint",
            "not_after"
        ])
    );
    let failed = &run["outcomes"][1];
    assert_eq!(failed["result"], "failed");
    assert_eq!(
        keys(failed),
        sorted(&["result", "host", "cert", "stage", "kind", "error", "hint"])
    );
    // The down host's failure has its stable kind, listed in docs/json.md.
    assert_eq!(failed["kind"], "ssh.unreachable", "{failed}");
    assert!(doc.contains("`ssh.unreachable`"));
    let again = bed
        .certorch(&inv, &["--json", "--limit", "host1.example.test", "run"])
        .json();
    assert_eq!(
        keys(&again["outcomes"][0]),
        sorted(&["result", "host", "cert", "not_after", "renew_at"])
    );

    let plan = bed.certorch(&inv, &["--json", "plan"]).json();
    assert_eq!(
        keys(&plan),
        sorted(&["items", "schedule", "limits", "warnings"])
    );
    assert_eq!(
        keys(&plan["items"][0]),
        sorted(&[
            "host",
            "cert",
            "action",
            "reason",
            "names",
            "not_after",
            "renew_at",
            "error",
            "kind",
            "hint",
            "next_slot",
            "limit"
        ])
    );
    let status = bed.certorch(&inv, &["--json", "status"]).json();
    assert_eq!(
        keys(&status[0]),
        sorted(&[
            "host",
            "cert",
            "names",
            "deployed",
            "serial",
            "not_after",
            "days_left",
            "last_result",
            "next_slot"
        ])
    );
    let check = bed.certorch(&inv, &["--json", "check"]).json();
    assert_eq!(
        keys(&check[0]),
        sorted(&["host", "cert", "area", "ok", "what", "fix"])
    );
    let account = bed.certorch(&inv, &["--json", "account", "show"]).json();
    assert_eq!(
        keys(&account),
        sorted(&[
            "directory",
            "registered",
            "key_thumbprint",
            "account_url",
            "contact",
            "created_at"
        ])
    );
    // The document names every field the tests hold the output to.
    for field in [
        "fingerprint",
        "renew_at",
        "days_left",
        "last_result",
        "account_url",
        "dry_run",
        "limits",
        "area",
        "next_slot",
        "schedule",
    ] {
        assert!(
            doc.contains(&format!("`{field}`")) || doc.contains(&format!("\"{field}\"")),
            "docs/json.md lacks {field}"
        );
    }
}

/// Certificates without a public CA: `internal` (the bastion's CA signs the host's CSR and its
/// certificate is pushed to the host's trust path) and `self-signed` (the host signs its own
/// key). Neither needs DNS or an ACME order: the update server here does not even exist.
#[test]
fn self_signed_and_internal_certificates() {
    let bed = Bed::up(2);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE")).replace(
        &format!("server: {}:53", bed.get("BIND_ADDR")),
        &format!("server: 127.{}.0.9:53", bed.net),
    );
    let text = format!(
        r#"{head}internal_ca:
  trust_path: /usr/local/share/ca-certificates/certorch-internal.crt
hosts:
  host1.example.test:
    address: {a1}
    certs:
      www:
        issuer: internal
        names: [host1.example.test, internal.example.test]
        key: /etc/ssl/private/www.key
        cert: /etc/ssl/certs/www.crt
        fullchain: /etc/ssl/certs/www.pem
        reload: "touch /root/reloaded-www"
  host2.example.test:
    address: {a2}
    certs:
      www:
        issuer: self-signed
        validity: 10d
        key_type: rsa-2048
        names: [host2.example.test]
        key: /etc/ssl/private/www.key
        cert: /etc/ssl/certs/www.crt
"#,
        a1 = bed.host_addr(1),
        a2 = bed.host_addr(2)
    );
    let inv = bed.write_inventory("local.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 0);
    assert!(
        doc["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "issued"),
        "{doc}"
    );

    // host1: verifies against the internal CA the host now trusts; the key matches.
    let verify = bed.ssh_ok(1, "openssl verify -CAfile /usr/local/share/ca-certificates/certorch-internal.crt /etc/ssl/certs/www.crt");
    assert!(verify.trim().ends_with(": OK"), "{verify}");
    assert!(
        bed.ssh_ok(
            1,
            "openssl x509 -in /etc/ssl/certs/www.crt -noout -ext subjectAltName"
        )
        .contains("DNS:internal.example.test")
    );
    assert_eq!(
        bed.ssh_ok(1, "openssl x509 -in /etc/ssl/certs/www.crt -noout -pubkey"),
        bed.ssh_ok(1, "openssl pkey -in /etc/ssl/private/www.key -pubout")
    );
    bed.ssh_ok(1, "test -f /root/reloaded-www");
    // host2: self-signed, its own RSA key, ten days.
    let subj = bed.ssh_ok(
        2,
        "openssl x509 -in /etc/ssl/certs/www.crt -noout -subject -issuer",
    );
    let lines: Vec<&str> = subj.lines().collect();
    assert_eq!(
        lines[0].trim_start_matches("subject="),
        lines[1].trim_start_matches("issuer=")
    );
    assert!(
        bed.ssh(
            2,
            "openssl x509 -in /etc/ssl/certs/www.crt -noout -checkend 950400"
        )
        .status
        .code()
            == Some(1),
        "valid beyond 11 days"
    );
    assert!(
        bed.ssh(
            2,
            "openssl x509 -in /etc/ssl/certs/www.crt -noout -checkend 777600"
        )
        .status
        .success(),
        "not valid for 9 days"
    );
    assert_eq!(
        bed.ssh_ok(2, "openssl x509 -in /etc/ssl/certs/www.crt -noout -pubkey"),
        bed.ssh_ok(2, "openssl pkey -in /etc/ssl/private/www.key -pubout")
    );

    // A second run has nothing to do; the internal CA is the same one.
    let ca_before = bed.ssh_ok(
        1,
        "cat /usr/local/share/ca-certificates/certorch-internal.crt",
    );
    let again = bed.certorch(&inv, &["--json", "issue", "host1.example.test"]);
    again.expect_code(0);
    assert_eq!(
        ca_before,
        bed.ssh_ok(
            1,
            "cat /usr/local/share/ca-certificates/certorch-internal.crt"
        )
    );
    let current = bed.certorch(&inv, &["--json", "run"]).json();
    assert!(
        current["outcomes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["result"] == "current"),
        "{current}"
    );
}

/// On a terminal (a pty from `script`): progress and a summary table; with `-q` nothing but
/// problems.
#[test]
fn a_terminal_gets_a_table_and_quiet_silences_it() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    let on_tty = |extra: &str| -> (i32, String) {
        let cmd = format!(
            "{} --inventory {} --state {} {extra} run",
            env!("CARGO_BIN_EXE_certorch"),
            inv.display(),
            bed.state_dir().display()
        );
        let out = std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("TERM", "xterm")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, screen) = on_tty("");
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("CERTIFICATE") && screen.contains("RESULT") && screen.contains("EXPIRES"),
        "{screen}"
    );
    assert!(
        screen.contains("host1.example.test/www") && screen.contains("issued"),
        "{screen}"
    );
    let (code, screen) = on_tty("-q");
    assert_eq!(code, 0, "{screen}");
    assert_eq!(screen.trim(), "", "quiet printed: {screen}");
}

/// `certorch playbooks`: the built-in playbooks, the operator's directory replacing and adding,
/// one playbook printed to copy; no inventory needed.
#[test]
fn playbooks_are_listed_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join("nginx.yaml"),
        "description: our nginx\nkey: /srv/tls/{label}.key\nfullchain: /srv/tls/{label}.pem\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_certorch");
    let out = std::process::Command::new(bin)
        .args([
            "--inventory",
            "/nonexistent/inventory.yaml",
            "--json",
            "playbooks",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = list.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|p| p["name"].as_str().unwrap()).collect();
    for n in [
        "apache",
        "dovecot",
        "files-only",
        "haproxy",
        "java-keystore",
        "nginx",
        "pkcs12",
        "postfix",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let nginx = list.iter().find(|p| p["name"] == "nginx").unwrap();
    assert_eq!(nginx["description"], "our nginx");
    assert!(nginx["source"].as_str().unwrap().ends_with("nginx.yaml"));
    let haproxy = list.iter().find(|p| p["name"] == "haproxy").unwrap();
    assert_eq!(haproxy["source"], "built-in");
    assert_eq!(keys(haproxy), sorted(&["name", "source", "description"]));

    let out = std::process::Command::new(bin)
        .args([
            "--inventory",
            "/nonexistent/inventory.yaml",
            "playbooks",
            "haproxy",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("combined: /etc/haproxy/certs/{label}.pem"),
        "{text}"
    );
    let out = std::process::Command::new(bin)
        .args([
            "--inventory",
            "/nonexistent/inventory.yaml",
            "playbooks",
            "ngnix",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no playbook `ngnix`"));
}

/// Regression (holes #3): an inventory past 8 MiB is refused with exit 2, naming the file,
/// and nothing is created.
#[test]
fn an_oversized_inventory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.yaml");
    fs::write(&inv, "#".repeat(10_000_000)).unwrap();
    let state = dir.path().join("state");
    let run: common::Run = std::process::Command::new(env!("CARGO_BIN_EXE_certorch"))
        .arg("--inventory")
        .arg(&inv)
        .arg("--state")
        .arg(&state)
        .arg("run")
        .output()
        .unwrap()
        .into();
    run.expect_code(2);
    assert_eq!(
        run.stderr,
        format!(
            "error: {}: the inventory is larger than 8 MiB; certorch reads no further: check that --inventory names the inventory (a few kilobytes per host), not another file\n",
            inv.display()
        )
    );
    assert!(!state.exists());
}

/// Regression (holes #6): a state.db left with a wider mode is made 0600 again at open, with
/// a warning; a TSIG or EAB key file others may read is warned about, without its content.
#[test]
fn secrets_at_rest_are_made_private_or_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let tsig = dir.path().join("tsig.key");
    fs::write(&tsig, "c2VjcmV0LXNlY3JldA==\n").unwrap();
    fs::set_permissions(&tsig, fs::Permissions::from_mode(0o640)).unwrap();
    let eab = dir.path().join("eab.key");
    fs::write(&eab, "ZWFiLXNlY3JldA\n").unwrap();
    fs::set_permissions(&eab, fs::Permissions::from_mode(0o604)).unwrap();
    let inv = dir.path().join("inventory.yaml");
    fs::write(
        &inv,
        format!(
            r#"acme:
  directory: https://127.0.0.1:1/dir
  eab: {{ kid: k1, hmac_key_file: {eab} }}
dns:
  signing_zone: acme.example.net
  rfc2136: {{ server: 192.0.2.53, key_name: certorch, secret_file: {tsig} }}
hosts:
  web1.example.org:
    certs:
      www:
        names: [www.example.org]
        key: /etc/ssl/private/www.key
        fullchain: /etc/ssl/certs/www.pem
"#,
            eab = eab.display(),
            tsig = tsig.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let db = state.join("state.db");
    drop(rusqlite::Connection::open(&db).unwrap());
    fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();

    // `account register` opens the state, then fails to reach the CA (nothing listens).
    let run: common::Run = std::process::Command::new(env!("CARGO_BIN_EXE_certorch"))
        .arg("--inventory")
        .arg(&inv)
        .arg("--state")
        .arg(&state)
        .args(["account", "register"])
        .output()
        .unwrap()
        .into();
    assert_eq!(
        fs::metadata(&db).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let err = &run.stderr;
    for want in [
        format!(
            "warning: the EAB HMAC key file {0} is accessible by group or others (mode 0604): chmod 600 {0}, and replace the secret if someone else may have read it\n",
            eab.display()
        ),
        format!(
            "warning: the TSIG key file {0} is accessible by group or others (mode 0640): chmod 600 {0}, and replace the secret if someone else may have read it\n",
            tsig.display()
        ),
        format!(
            "warning: {} had mode 0644; set it to 0600, as it holds the ACME account keys\n",
            db.display()
        ),
    ] {
        assert!(err.contains(&want), "{want}\nin:\n{err}");
    }
    assert!(
        !err.contains("c2VjcmV0") && !err.contains("ZWFiLXNlY3JldA"),
        "{err}"
    );
}
