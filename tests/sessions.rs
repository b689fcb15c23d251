//! How many SSH sessions certorch costs each host, counted on the hosts: each bed sshd logs
//! (LogLevel VERBOSE) one `Starting session:` line per session it opens, whatever client and
//! transport asked for it. Each session is a fork and a shell on the host, so a first issue
//! takes at most 3 per certificate and a run with nothing to do takes 1 per host.

mod common;

use std::fs;

use common::Bed;

/// Sessions each host's sshd has logged so far, hosts 1..=n.
fn sessions(bed: &Bed, n: usize) -> Vec<usize> {
    (1..=n)
        .map(|i| {
            let log = fs::read_to_string(bed.dir.join(format!("log/host{i}.log")))
                .unwrap_or_else(|e| panic!("host{i}'s sshd log: {e}"));
            log.lines()
                .filter(|l| l.contains("Starting session:"))
                .count()
        })
        .collect()
}

/// What each host's sshd logged while `f` ran.
fn counted(bed: &Bed, n: usize, f: impl FnOnce()) -> Vec<usize> {
    let before = sessions(bed, n);
    f();
    after(bed, n, before)
}

/// Sessions each host's sshd logged since `before`.
fn after(bed: &Bed, n: usize, before: Vec<usize>) -> Vec<usize> {
    // sshd writes its log line when it opens the session, before the command runs: by the
    // time certorch has exited every line is there.
    sessions(bed, n)
        .iter()
        .zip(before)
        .map(|(after, before)| after - before)
        .collect()
}

#[test]
fn first_issue_renewal_and_noop_stay_within_their_ssh_sessions() {
    let bed = Bed::up(3);
    let inv = bed.standard_inventory(3);
    let root = bed.pebble_root();

    // The counter counts: a session opened by hand shows up on its host only.
    let probe = counted(&bed, 3, || {
        bed.ssh_ok(2, "true");
    });
    assert_eq!(probe, vec![0, 1, 0]);

    let before = sessions(&bed, 3);
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    for o in doc["outcomes"].as_array().unwrap() {
        assert_eq!(o["result"], "issued", "{o}");
    }
    let first = after(&bed, 3, before);
    // certorch's own count (`--json` ssh_sessions) is what the hosts saw.
    assert_eq!(
        doc["ssh_sessions"].as_u64(),
        Some(first.iter().sum::<usize>() as u64),
        "hosts logged {first:?}"
    );
    for (i, n) in first.iter().enumerate() {
        // Survey, key and CSR, then files + read-back + reload in one command.
        assert!(
            (1..=3).contains(n),
            "host{}: a first issue of one certificate took {n} SSH sessions: {first:?}",
            i + 1
        );
    }
    for i in 1..=3 {
        bed.assert_www_valid(i, &root, &[]);
        assert_eq!(
            bed.ssh_ok(i, "ls /root/reloaded-www").trim(),
            "/root/reloaded-www"
        );
        bed.assert_nothing_staged(i);
    }

    let noop = counted(&bed, 3, || {
        let run = bed.certorch(&inv, &["--json", "run"]);
        run.expect_code(0);
        let doc = run.json();
        for o in doc["outcomes"].as_array().unwrap() {
            assert_eq!(o["result"], "current", "{o}");
        }
        assert_eq!(doc["ssh_sessions"], 3, "{doc}");
    });
    assert_eq!(noop, vec![1, 1, 1], "a run with nothing to do");

    // A renewal: the previous key is kept for rollback until the reload, then removed in the
    // same command.
    let renewal = counted(&bed, 3, || {
        let run = bed.certorch(&inv, &["--json", "issue", "all"]);
        run.expect_code(0);
        for o in run.json()["outcomes"].as_array().unwrap() {
            assert_eq!(o["result"], "issued", "{o}");
        }
    });
    for (i, n) in renewal.iter().enumerate() {
        assert!(
            (1..=3).contains(n),
            "host{}: a renewal took {n} SSH sessions: {renewal:?}",
            i + 1
        );
    }
    for i in 1..=3 {
        bed.assert_www_valid(i, &root, &[]);
        bed.assert_nothing_staged(i);
        let prev = bed.ssh(i, "ls /etc/ssl/private/www.key.certorch-prev");
        assert!(
            !prev.status.success(),
            "host{i}: the previous key is still there"
        );
    }
}

/// Two certificates on one host, sharing a reload command: a run with nothing to do still
/// reads both in one session, and a first issue stays within 3 sessions per certificate.
#[test]
fn two_certificates_on_one_host_are_surveyed_in_one_session() {
    let bed = Bed::up(1);
    let mut text = bed.inventory_head(bed.get("TSIG_KEY_FILE")) + &bed.hosts_yaml(1);
    text.push_str(
        r#"      api:
        names: [host1.example.test]
        key: /etc/ssl/private/api.key
        fullchain: /etc/ssl/certs/api.pem
        reload: "touch /root/reloaded-www"
"#,
    );
    let inv = bed.write_inventory("two.yaml", &text);

    let first = counted(&bed, 1, || {
        let run = bed.certorch(&inv, &["--json", "run"]);
        run.expect_code(0);
        let doc = run.json();
        let outcomes = doc["outcomes"].as_array().unwrap();
        assert_eq!(outcomes.len(), 2, "{doc}");
        for o in outcomes {
            assert_eq!(o["result"], "issued", "{o}");
        }
    });
    // One survey, then key and deployment per certificate.
    assert!(
        first[0] <= 2 * 3,
        "two certificates took {first:?} SSH sessions"
    );
    bed.assert_key_matches(1, "/etc/ssl/certs/api.pem", "/etc/ssl/private/api.key");
    bed.assert_key_matches(1, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");

    let noop = counted(&bed, 1, || {
        let run = bed.certorch(&inv, &["--json", "run"]);
        run.expect_code(0);
        let doc = run.json();
        for o in doc["outcomes"].as_array().unwrap() {
            assert_eq!(o["result"], "current", "{o}");
        }
        assert_eq!(doc["ssh_sessions"], 1, "{doc}");
    });
    assert_eq!(
        noop,
        vec![1],
        "a run with nothing to do, two certificates on the host"
    );
}
