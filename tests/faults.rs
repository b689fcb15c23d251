//! Faults an operator meets: hosts that cannot be reached, names whose DNS is not set up,
//! a signing zone that refuses our updates. Each fails what it must and nothing more.

mod common;

use std::fs;

use common::Bed;

/// Host 2 is down, host 3's host key changed, host 4 refuses the login: each fails with its
/// reason, host 1 still gets its certificate, the exit code says some failed.
#[test]
fn one_bad_host_does_not_stop_the_others() {
    let bed = Bed::up(4);
    bed.stop_host(2);
    // Host 3 presents a key that is not the one in known_hosts.
    let known = fs::read_to_string(bed.get("KNOWN_HOSTS")).unwrap();
    let other_key = known
        .lines()
        .find(|l| l.starts_with(&format!("{},", bed.host_addr(1))))
        .unwrap()
        .split_once(' ')
        .unwrap()
        .1
        .to_string();
    let changed: Vec<String> = known
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{},", bed.host_addr(3))) {
                format!("{},host3.example.test {other_key}", bed.host_addr(3))
            } else {
                l.to_string()
            }
        })
        .collect();
    fs::write(bed.get("KNOWN_HOSTS"), changed.join("\n") + "\n").unwrap();

    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    text.push_str("hosts:\n");
    for i in 1..=4 {
        text.push_str(&format!(
            "  {}:\n    address: {}\n",
            bed.host_name(i),
            bed.host_addr(i)
        ));
        if i == 4 {
            text.push_str("    user: nosuchuser\n");
        }
        text.push_str("    certs:\n");
        text.push_str(&bed.www_cert(i));
    }
    let inv = bed.write_inventory("faults.yaml", &text);
    let run = bed.certorch(&inv, &["run"]);
    fs::write(bed.get("KNOWN_HOSTS"), &known).unwrap();
    run.expect_code(1);

    // Not a terminal (cron): nothing on stdout, a compact report of each failure on stderr.
    assert_eq!(run.stdout, "");
    let err = &run.stderr;
    let a2 = bed.host_addr(2);
    let a3 = bed.host_addr(3);
    assert!(
        err.contains(&format!(
            "error: host2.example.test/www: connect failed: cannot connect to {a2}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{a2} does not answer on the SSH port")),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "error: host3.example.test/www: connect failed: cannot connect to {a3}"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "the host key of {a3} is not the one {} lists for it",
            bed.get("KNOWN_HOSTS")
        )),
        "{err}"
    );
    assert!(
        err.contains("error: host4.example.test/www: connect failed: cannot connect to"),
        "{err}"
    );
    assert!(err.contains("the login was refused"), "{err}");

    // Host 1 is complete; hosts 3 and 4 (up, but not ours to touch) have nothing written.
    let pubkey = bed.ssh_ok(1, "openssl x509 -in /etc/ssl/certs/www.pem -noout -pubkey");
    assert_eq!(
        pubkey,
        bed.ssh_ok(1, "openssl pkey -in /etc/ssl/private/www.key -pubout")
    );
    for i in [3, 4] {
        let left = bed.ssh_ok(
            i,
            "ls -a /etc/ssl/private /etc/ssl/certs | grep -E 'www|certorch' || true",
        );
        assert_eq!(left.trim(), "", "host{i} has files: {left}");
    }
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
}

/// A name without the CNAME and one whose CNAME leaves the signing zone are refused before any
/// order, with the record to add; the host's other certificate is issued.
#[test]
fn names_without_the_cname_are_refused_before_ordering() {
    let bed = Bed::up(1);
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n",
        bed.host_addr(1)
    ));
    text.push_str(&bed.www_cert(1));
    text.push_str(
        r#"      bad:
        names: [nocname.example.test, outside.example.test]
        key: /etc/ssl/private/bad.key
        fullchain: /etc/ssl/certs/bad.pem
"#,
    );
    let inv = bed.write_inventory("cname.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(
        doc["orders"], 1,
        "only the good certificate is ordered: {doc}"
    );
    let bad = doc["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["cert"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad["result"], "failed");
    assert_eq!(bad["stage"], "preflight");
    let error = bad["error"].as_str().unwrap();
    let hint = bad["hint"].as_str().unwrap();
    assert!(
        error.contains(
            "_acme-challenge.nocname.example.test. has no CNAME into the signing zone signing.test."
        ),
        "{error}"
    );
    assert!(error.contains("_acme-challenge.outside.example.test. leads to outside.example.test.elsewhere.test., outside the signing zone"), "{error}");
    assert!(
        hint.contains(
            "_acme-challenge.nocname.example.test. IN CNAME nocname.example.test.signing.test."
        ),
        "{hint}"
    );
    assert!(hint.contains("replace it with: _acme-challenge.outside.example.test. IN CNAME outside.example.test.signing.test."), "{hint}");
    // Nothing was made on the host for the refused certificate.
    let left = bed.ssh_ok(1, "ls -a /etc/ssl/private | grep bad || true");
    assert_eq!(left.trim(), "");
    bed.ssh_ok(1, "test -f /etc/ssl/certs/www.pem");
}

/// The signing zone refuses our TSIG key: the error names server, zone and key, no order is
/// opened and nothing is left on the host.
#[test]
fn a_rejected_tsig_key_opens_no_order() {
    let bed = Bed::up(1);
    let mut text = bed.inventory_head(bed.get("WRONG_TSIG_KEY_FILE"));
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n",
        bed.host_addr(1)
    ));
    text.push_str(&bed.www_cert(1));
    let inv = bed.write_inventory("badkey.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    let o = &doc["outcomes"][0];
    assert_eq!(o["stage"], "preflight", "{o}");
    let error = o["error"].as_str().unwrap();
    let bind = bed.get("BIND_ADDR");
    assert!(
        error.contains(&format!("{bind}:53"))
            && error.contains("signing.test")
            && error.contains("certorch")
            && error.contains("BADSIG"),
        "{error}"
    );
    let secret = fs::read_to_string(bed.get("WRONG_TSIG_KEY_FILE")).unwrap();
    let secret = secret.split('"').nth(3).unwrap();
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "the TSIG secret was printed"
    );
    assert!(
        o["hint"].as_str().unwrap().contains("does not match"),
        "{o}"
    );
    assert_eq!(
        bed.ssh_ok(1, "ls -a /etc/ssl/private | grep -c www || true")
            .trim(),
        "0"
    );
}

/// The DNS server does not answer: a clear error naming it, no order opened.
#[test]
fn an_unreachable_dns_server_opens_no_order() {
    let bed = Bed::up(1);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let dead = format!("127.{}.0.9", bed.net);
    let head = head.replace(
        &format!("server: {}:53", bed.get("BIND_ADDR")),
        &format!("server: {dead}:53"),
    );
    let mut text = head;
    text.push_str(&format!(
        "hosts:\n  host1.example.test:\n    address: {}\n    certs:\n",
        bed.host_addr(1)
    ));
    text.push_str(&bed.www_cert(1));
    let inv = bed.write_inventory("deaddns.yaml", &text);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    let error = doc["outcomes"][0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!(
            "cannot send the update for zone signing.test. (key certorch) to {dead}:53"
        )),
        "{error}"
    );
    let hint = doc["outcomes"][0]["hint"].as_str().unwrap();
    assert!(
        hint.contains(&format!("check that {dead}:53 is reachable")),
        "{hint}"
    );
}

/// A command that hangs on the host is given up after `ssh.command_timeout`, on either
/// transport, with the host and the setting named; the previous state is kept.
#[test]
fn a_hanging_command_times_out() {
    let bed = Bed::up(1);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE")).replace(
        "  connect_timeout: 20s\n",
        "  connect_timeout: 20s\n  command_timeout: 5s\n",
    );
    let text = format!(
        "{head}hosts:\n  host1.example.test:\n    address: {}\n    certs:\n      www:\n        issuer: self-signed\n        names: [host1.example.test]\n        key: /etc/ssl/private/www.key\n        fullchain: /etc/ssl/certs/www.pem\n        check: \"sleep 600\"\n",
        bed.host_addr(1)
    );
    let inv = bed.write_inventory("hang.yaml", &text);
    let run = bed.certorch(&inv, &["run"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "did not finish within 5s (ssh.command_timeout) on {}",
            bed.host_addr(1)
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("hangs on the host or needs longer: see what it waits for there, or raise ssh.command_timeout"),
        "{}",
        run.stderr
    );
    let left = bed.ssh_ok(1, "ls /etc/ssl/certs | grep -E '^www' || true");
    assert_eq!(left.trim(), "", "{left}");
}

/// Regression (holes #3): a command on a host that prints past 16 MiB fails that host with
/// a clear error instead of filling the bastion's memory; the other host is done.
#[test]
fn a_host_printing_without_end_fails_alone() {
    let bed = Bed::up(2);
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE")) + &bed.hosts_yaml(2);
    text = text.replacen(
        "        reload: \"touch /root/reloaded-www\"\n",
        "        check: \"head -c 20000000 /dev/zero\"\n        reload: \"touch /root/reloaded-www\"\n",
        1,
    );
    let inv = bed.write_inventory("chatty.yaml", &text);
    let run = bed.certorch(&inv, &["run"]);
    run.expect_code(1);
    let a1 = bed.host_addr(1);
    assert!(
        run.stderr.contains("error: host1.example.test/www: ")
            && run.stderr.contains(&format!(
                "printed more than 16 MiB on {a1}; certorch stopped reading it"
            )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("host2.example.test"), "{}", run.stderr);
    bed.ssh_ok(2, "openssl x509 -in /etc/ssl/certs/www.pem -noout");
    assert!(!bed.ssh(1, "test -e /root/reloaded-www").status.success());
}

/// Regression (holes #8): a host that accepts the TCP connection and sends an SSH banner but
/// never goes on fails on its own with a connect timeout naming it, within
/// `ssh.connect_timeout` for TCP, key exchange and login together; no ssh process is left for
/// it, and the other hosts get their certificates.
#[test]
fn a_host_that_accepts_but_never_logs_in_times_out_alone() {
    let bed = Bed::up(3);
    let stall = format!("127.{}.0.99", bed.net);
    let listener = std::net::TcpListener::bind((stall.as_str(), 2200)).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in listener.incoming().flatten() {
            use std::io::Write;
            // A banner, then silence: ssh's ConnectTimeout is over, the key exchange waits.
            let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2p1\r\n");
            held.push(s);
        }
    });
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE")) + &bed.hosts_yaml(2);
    text = text.replacen("connect_timeout: 20s", "connect_timeout: 4s", 1);
    text.push_str(&format!(
        "  stall.example.test:\n    address: {stall}\n    port: 2200\n    certs:\n{}",
        bed.www_cert(3)
    ));
    let inv = bed.write_inventory("stall.yaml", &text);
    let mut child = bed
        .certorch_command(&inv, &["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A guard against a hang, not a timing assertion.
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(180) {
            child.kill().unwrap();
            panic!("certorch hangs on a host that never logs in");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let run: common::Run = child.wait_with_output().unwrap().into();
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "error: stall.example.test/www: connect failed: cannot connect to {stall}: Connection timed out: no SSH session within 4s (TCP connect, key exchange and login)\n"
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("host1.example.test"), "{}", run.stderr);
    assert!(!run.stderr.contains("host2.example.test"), "{}", run.stderr);
    for i in 1..=2 {
        bed.ssh_ok(i, "openssl x509 -in /etc/ssl/certs/www.pem -noout");
    }
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            assert!(
                !(cmd.starts_with("ssh ") && cmd.contains(&stall)),
                "left running: {cmd}"
            );
        }
    }
}
