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

/// With OpenSSH each host costs the bastion one `ssh` process, its master, which also runs the
/// survey as its own session: a run with nothing to do starts no second `ssh` per host, and
/// the later steps of a first issue are multiplexed on the master. russh starts none.
#[test]
fn each_host_costs_the_bastion_one_ssh_process_at_most() {
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    // An `ssh` first on certorch's PATH that notes each start, then runs the real one.
    let shim = bed.scratch("ssh-shim");
    let starts = shim.join("starts");
    let script = shim.join("ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"ssh $1 $2\" >>'{}'\nexec /usr/bin/ssh \"$@\"\n",
            starts.display()
        ),
    )
    .unwrap();
    let mut perms = fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    fs::set_permissions(&script, perms).unwrap();
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap());
    let run = |expect: &str| -> Vec<String> {
        if starts.exists() {
            fs::remove_file(&starts).unwrap();
        }
        let out = bed
            .certorch_command(&inv, &["--json", "run"])
            .env("PATH", &path)
            .output()
            .expect("run certorch");
        let run = common::Run::from(out);
        run.expect_code(0);
        for o in run.json()["outcomes"].as_array().unwrap() {
            assert_eq!(o["result"], expect, "{o}");
        }
        fs::read_to_string(&starts)
            .map_or_else(|_| Vec::new(), |t| t.lines().map(str::to_string).collect())
    };
    let per_host = match common::transport() {
        common::Transport::OpenSsh => 1,
        common::Transport::Russh => 0,
    };
    let first = run("issued");
    assert_eq!(
        first.len(),
        2 * per_host,
        "ssh for a first issue: {first:#?}"
    );
    let noop = run("current");
    assert_eq!(noop.len(), 2 * per_host, "ssh for a no-op run: {noop:#?}");
}

/// The `ssh` processes whose command line names `dir` (certorch's TMPDIR, where the control
/// sockets live): the masters of a certorch run.
fn masters_under(dir: &std::path::Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmd) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.starts_with("ssh ") && cmd.contains(&needle) {
            found.push(format!("{}: {cmd}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// A run killed with SIGKILL mid-run (waiting for a lagging name server, every host's
/// connection open) leaves no `ssh` process behind: each master's own session waits on the
/// pipe certorch held, so it ends when certorch does.
#[test]
fn a_killed_run_leaves_no_ssh_master_behind() {
    use std::time::{Duration, Instant};
    let bed = Bed::up(2);
    let inv = bed.standard_inventory(2);
    bed.add_dead_signing_ns();
    let mut child = bed.certorch_until_published(&inv, &["run"], "host2.example.test.signing.test");
    let tmp = bed.certorch_tmp();
    let open = masters_under(&tmp);
    if common::transport() == common::Transport::OpenSsh {
        // The check can fail: the hosts' masters are there while certorch runs.
        assert_eq!(open.len(), 2, "masters while certorch runs: {open:#?}");
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    let start = Instant::now();
    loop {
        let left = masters_under(&tmp);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ssh masters outlive the killed certorch: {left:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A host with nothing due is let go as soon as it is read and decided, not after the whole
/// survey: while a frozen host (its sshd stopped: TCP connects, SSH never answers) holds the
/// survey up, the masters of the hosts that are current have ended already.
#[test]
fn a_current_host_is_let_go_while_the_survey_waits_for_another() {
    use std::time::{Duration, Instant};
    let bed = Bed::up(3);
    let inv = bed.standard_inventory(3);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let frozen = bed.freeze("host3.sshd");
    let tmp = bed.certorch_tmp();
    let mut child = bed
        .certorch_command(&inv, &["--json", "run"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    if common::transport() == common::Transport::OpenSsh {
        let host3 = format!(" {} ", bed.host_addr(3));
        let start = Instant::now();
        let mut seen = Vec::new();
        loop {
            let open = masters_under(&tmp);
            if open.len() == 1 && open[0].contains(&host3) {
                break;
            }
            seen.push(open);
            assert!(
                start.elapsed() < Duration::from_secs(15) && child.try_wait().unwrap().is_none(),
                "the current hosts' masters stayed while host3 held the survey: {:#?}",
                &seen[seen.len().saturating_sub(3)..]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        std::thread::sleep(Duration::from_secs(2));
    }
    frozen.thaw();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results: Vec<&str> = doc["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["current"; 3], "{doc}");
}
