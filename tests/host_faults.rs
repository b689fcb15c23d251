//! Faults of one host among several (issue 13): frozen, dying mid-deploy, a full or read-only
//! destination, a reload that hangs, no openssl, a changed host key. In each the other hosts
//! finish, the faulty one fails with its documented `kind` and hint, its live files are never
//! half-written, and once the fault clears the next run completes with no TXT record, nothing
//! staged and no private key byte on the bastion. docs/faults.md lists each.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Bed, Run, pem_body};

/// The key, certificate and chain files of the standard `www` certificate.
const WWW_FILES: &str = "/etc/ssl/private/www.key /etc/ssl/certs/www.crt /etc/ssl/certs/www.chain.pem /etc/ssl/certs/www.pem";

/// An inventory for hosts 1..=n with the standard `www` certificate and small SSH timeouts
/// (a fault is noticed within seconds); `reload` replaces host i's reload line where it gives
/// one.
fn inventory(bed: &Bed, name: &str, n: usize, reload: impl Fn(usize) -> Option<String>) -> PathBuf {
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    assert!(head.contains("  connect_timeout: 20s\n"));
    let mut text = head.replacen(
        "  connect_timeout: 20s\n",
        "  connect_timeout: 5s\n  command_timeout: 8s\n",
        1,
    ) + "hosts:\n";
    for i in 1..=n {
        text.push_str(&format!(
            "  {}:\n    address: {}\n    certs:\n",
            bed.host_name(i),
            bed.host_addr(i)
        ));
        let cert = bed.www_cert(i);
        match reload(i) {
            Some(line) => text.push_str(&cert.replace(
                "        reload: \"touch /root/reloaded-www\"\n",
                &format!("        reload: {line:?}\n"),
            )),
            None => text.push_str(&cert),
        }
    }
    bed.write_inventory(name, &text)
}

/// The one outcome of host i in a `--json` document.
fn outcome(doc: &serde_json::Value, i: usize) -> serde_json::Value {
    let host = format!("host{i}.example.test");
    let found: Vec<&serde_json::Value> = doc["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .filter(|o| o["host"] == host.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{host}: {doc}");
    found[0].clone()
}

/// Asserts host i failed at `stage` with `kind`; returns its error and hint.
fn failed(doc: &serde_json::Value, i: usize, stage: &str, kind: &str) -> (String, String) {
    let o = outcome(doc, i);
    assert_eq!(o["result"], "failed", "{o}");
    assert_eq!(o["stage"], stage, "{o}");
    assert_eq!(o["kind"], kind, "{o}");
    (
        o["error"].as_str().unwrap_or_default().to_string(),
        o["hint"].as_str().unwrap_or_default().to_string(),
    )
}

/// Asserts every host in `hosts` got its certificate in this run.
fn issued(bed: &Bed, doc: &serde_json::Value, hosts: &[usize]) {
    let root = bed.pebble_root();
    for &i in hosts {
        assert_eq!(outcome(doc, i)["result"], "issued", "host{i}: {doc}");
        let (a, b) = (bed.host_name(i), format!("www.{}", bed.host_name(i)));
        bed.assert_www_valid(i, &root, &[&a, &b]);
    }
}

/// SHA-256 of the standard `www` files on host i, read on the host (a mount in its namespace
/// is not seen from the bastion).
fn live_digests(bed: &Bed, i: usize) -> String {
    bed.ssh_ok(i, &format!("sha256sum {WWW_FILES}"))
}

/// Every certorch leftover on host i (staged files, staging directories) as the host sees it.
fn leftovers_on_host(bed: &Bed, i: usize) -> String {
    bed.ssh_ok(
        i,
        "find /etc/ssl -xdev -name '*.certorch-new*' -o -name '.certorch.*' -o -name '*.certorch-tmp'; \
         find /etc/ssl/certs /etc/ssl/private -name '*.certorch-new*' -o -name '.certorch.*'",
    )
}

/// Waits until only host i's sshd is left in its namespace: commands certorch gave up on are
/// gone, so nothing writes there after this.
fn wait_idle(bed: &Bed, i: usize) {
    let start = Instant::now();
    while bed.host_pids(i).len() > 1 {
        // A guard, not a timing assertion.
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "host{i} still runs {:?}",
            bed.host_pids(i)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `certorch --json run` once the fault has cleared: exit 0, every certificate issued
/// or current and valid, no TXT record left, nothing staged on any host, no private key byte
/// on the bastion.
fn recovers(bed: &Bed, inv: &Path, n: usize) -> Run {
    let run = bed.certorch(inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    let root = bed.pebble_root();
    for i in 1..=n {
        let o = outcome(&doc, i);
        assert!(o["result"] == "issued" || o["result"] == "current", "{o}");
        let (a, b) = (bed.host_name(i), format!("www.{}", bed.host_name(i)));
        bed.assert_www_valid(i, &root, &[&a, &b]);
        bed.assert_nothing_staged(i);
    }
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    no_key_on_bastion(bed, n);
    run
}

/// No byte of any host's private key in certorch's state or temporary directory.
fn no_key_on_bastion(bed: &Bed, n: usize) {
    for i in 1..=n {
        let key = std::fs::read_to_string(bed.host_etc_ssl(i).join("private/www.key"))
            .expect("the host's key");
        let needle = &pem_body(&key)[20..80];
        for f in bed
            .state_files()
            .into_iter()
            .chain(common::files_under(&bed.certorch_tmp()))
        {
            let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
            assert!(!text.contains(needle), "host{i}'s key in {}", f.display());
        }
    }
}

/// Asserts the standard files on host i form one complete set: the key is the certificate's,
/// the full chain is the certificate followed by the chain.
fn one_complete_set(bed: &Bed, i: usize) {
    bed.assert_key_matches(i, "/etc/ssl/certs/www.crt", "/etc/ssl/private/www.key");
    let crt = bed.ssh_ok(i, "cat /etc/ssl/certs/www.crt");
    let chain = bed.ssh_ok(i, "cat /etc/ssl/certs/www.chain.pem");
    let full = bed.ssh_ok(i, "cat /etc/ssl/certs/www.pem");
    assert_eq!(full, format!("{crt}{chain}"), "host{i}: a mixed set");
}

/// Starts `certorch --json <args>` and, once `trigger` holds, does `act`; returns the run.
fn run_with_watcher(
    bed: &Bed,
    inv: &Path,
    args: &[&str],
    trigger: impl Fn() -> bool,
    act: impl FnOnce(),
) -> Run {
    let mut child = common::Killed(
        bed.certorch_command(inv, &[&["--json"], args].concat())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start certorch"),
    );
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).map(|_| s)
        })
    };
    let stdout = read(Box::new(child.0.stdout.take().unwrap()));
    let stderr = read(Box::new(child.0.stderr.take().unwrap()));
    let start = Instant::now();
    let mut act = Some(act);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        if act.is_some() && trigger() {
            (act.take().unwrap())();
        }
        // A guard against a hang, not a timing assertion.
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "certorch did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(act.is_none(), "the run ended before the fault was injected");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap().unwrap(),
        stderr: stderr.join().unwrap().unwrap(),
    }
}

/// A host frozen (SIGSTOP on its sshd and everything it runs) before the run, and another
/// frozen mid-run once its new key is staged: each fails within the SSH timeouts, the third
/// host gets its certificate; thawed, the next run completes.
#[test]
fn a_frozen_host_times_out_alone_and_the_next_run_completes() {
    let bed = Bed::up(3);
    let inv = inventory(&bed, "frozen.yaml", 3, |_| None);
    bed.signal_host(2, "STOP");
    let staged = bed.host_etc_ssl(3).join("private/www.key.certorch-new");
    let run = run_with_watcher(
        &bed,
        &inv,
        &["run"],
        || staged.exists(),
        || bed.signal_host(3, "STOP"),
    );
    let thaw = |i| bed.signal_host(i, "CONT");
    thaw(2);
    thaw(3);
    run.expect_code(1);
    let doc = run.json();
    issued(&bed, &doc, &[1]);
    let a2 = bed.host_addr(2);
    let (error, hint) = failed(&doc, 2, "connect", "ssh.unreachable");
    assert_eq!(
        error,
        format!(
            "cannot connect to {a2}: Connection timed out: no SSH session within 5s (TCP connect, key exchange and login)"
        )
    );
    assert!(
        hint.contains(&format!("{a2} does not finish the SSH login"))
            && hint.contains("raise ssh.connect_timeout"),
        "{hint}"
    );
    let o3 = outcome(&doc, 3);
    assert_eq!(o3["kind"], "ssh.timeout", "{o3}");
    let error = o3["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "did not finish within 8s (ssh.command_timeout) on {}",
            bed.host_addr(3)
        )),
        "{error}"
    );
    assert!(
        o3["hint"]
            .as_str()
            .unwrap()
            .contains("see what it waits for there, or raise ssh.command_timeout"),
        "{o3}"
    );
    wait_idle(&bed, 2);
    wait_idle(&bed, 3);
    recovers(&bed, &inv, 3);
}

/// A host that dies (its sshd and every session killed) while its service reloads with the
/// new files: the live files are one complete set, never a mix; the other host is done; once
/// the host is back the next run finishes the job, reload included.
#[test]
fn a_host_dying_mid_deploy_leaves_one_complete_set_and_the_next_run_finishes() {
    let bed = Bed::up(2);
    let inv = inventory(&bed, "dying.yaml", 2, |_| None);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let hang = inventory(&bed, "dying-reload.yaml", 2, |i| {
        (i == 2).then(|| "touch /root/reloading && sleep 60".to_string())
    });
    let marker = bed.dir.join("hosts/host2/root/reloading");
    let run = run_with_watcher(
        &bed,
        &hang,
        &["issue", "host1.example.test/www", "host2.example.test/www"],
        || marker.exists(),
        || bed.signal_host(2, "KILL"),
    );
    run.expect_code(1);
    let doc = run.json();
    issued(&bed, &doc, &[1]);
    let o2 = outcome(&doc, 2);
    assert_eq!(o2["result"], "failed", "{o2}");
    // The reload runs in one command with the staging and commit (one SSH session): when the
    // host is gone, certorch cannot tell which step it died in, and says so at `deploy`.
    assert_eq!(o2["stage"], "deploy", "{o2}");
    assert_eq!(o2["kind"], "ssh.connection_lost", "{o2}");
    let error = o2["error"].as_str().unwrap();
    assert!(
        error.contains("lost the connection while running certorch-stage+")
            && error.contains("+certorch-reload"),
        "{error}"
    );
    bed.start_host(2);
    one_complete_set(&bed, 2);
    std::fs::remove_file(&marker).unwrap();
    bed.ssh_ok(2, "rm /root/reloaded-www");
    let next = recovers(&bed, &inv, 2).json();
    assert_eq!(
        next["orders"], 0,
        "host2's certificate was ordered again: {next}"
    );
    // Written but never reloaded is not live: the next run reloads.
    bed.ssh_ok(2, "test -f /root/reloaded-www");
}

/// Mounts a 64 KiB tmpfs on host i's /etc/ssl/certs, inside its namespace, holding copies of
/// the live `www` files, and fills it.
fn full_destination(bed: &Bed, i: usize) {
    bed.ssh_ok(
        i,
        "set -e; d=$(mktemp -d); cp -a /etc/ssl/certs/www.* \"$d\"/; \
         mount -t tmpfs -o size=64k,mode=0755 certorch-full /etc/ssl/certs; \
         cp -a \"$d\"/. /etc/ssl/certs/; rm -rf \"$d\"; \
         dd if=/dev/zero of=/etc/ssl/certs/filler bs=4k 2>/dev/null || true; \
         test \"$(df -Pk /etc/ssl/certs | awk 'NR==2 {print $4}')\" = 0",
    );
}

/// A read-only bind mount of host i's /etc/ssl/certs onto itself, inside its namespace.
fn read_only_destination(bed: &Bed, i: usize) {
    bed.ssh_ok(
        i,
        "mount --bind /etc/ssl/certs /etc/ssl/certs && mount -o remount,bind,ro /etc/ssl/certs",
    );
}

/// A destination certorch cannot write (`fault` sets it up on host 2): staging fails, the
/// live files are untouched, nothing staged is left, the error names the path; host 1 is
/// done; once the mount is gone the next run completes.
fn unwritable_destination(fault: fn(&Bed, usize), cause: &str) {
    let bed = Bed::up(2);
    let inv = inventory(&bed, "unwritable.yaml", 2, |_| None);
    bed.certorch(&inv, &["run"]).expect_code(0);
    fault(&bed, 2);
    let before = live_digests(&bed, 2);
    let run = bed.certorch(
        &inv,
        &[
            "--json",
            "issue",
            "host1.example.test/www",
            "host2.example.test/www",
        ],
    );
    run.expect_code(1);
    let doc = run.json();
    issued(&bed, &doc, &[1]);
    let (error, hint) = failed(&doc, 2, "deploy", "host.write_failed");
    assert!(
        error.contains("/etc/ssl/certs/www.crt") && error.contains(cause),
        "{error}"
    );
    assert!(
        hint.contains("make room on that file system, or make it writable")
            && hint.contains("the live files were not touched"),
        "{hint}"
    );
    assert_eq!(live_digests(&bed, 2), before, "host2's live files changed");
    assert_eq!(leftovers_on_host(&bed, 2).trim(), "", "left on host2");
    bed.ssh_ok(2, "umount /etc/ssl/certs");
    recovers(&bed, &inv, 2);
}

#[test]
fn a_full_destination_fails_alone_with_the_live_files_untouched() {
    unwritable_destination(
        full_destination,
        "no space left on the file system of /etc/ssl/certs",
    );
}

#[test]
fn a_read_only_destination_fails_alone_with_the_live_files_untouched() {
    unwritable_destination(
        read_only_destination,
        "the file system of /etc/ssl/certs is read-only",
    );
}

/// A reload that never returns is killed at ssh.command_timeout (nothing of it left on the
/// host), the previous files are put back; the other host is done; the next run completes.
#[test]
fn a_hanging_reload_is_killed_and_rolled_back() {
    let bed = Bed::up(2);
    let inv = inventory(&bed, "reload.yaml", 2, |_| None);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let before = live_digests(&bed, 2);
    let hang = inventory(&bed, "reload-hangs.yaml", 2, |i| {
        (i == 2).then(|| "sleep 1000".to_string())
    });
    let run = bed.certorch(
        &hang,
        &[
            "--json",
            "issue",
            "host1.example.test/www",
            "host2.example.test/www",
        ],
    );
    run.expect_code(1);
    let doc = run.json();
    issued(&bed, &doc, &[1]);
    let (error, hint) = failed(&doc, 2, "reload", "host.reload_failed");
    let a2 = bed.host_addr(2);
    // The reload runs in one command with the staging and commit: the timeout names that
    // command; the new files were live, so the reload takes the failure and they go back.
    assert!(
        error.contains(&format!(
            "+certorch-reload+certorch-forget-prev did not finish within 8s (ssh.command_timeout) on {a2}"
        )) && error.contains("the previous files are back in place"),
        "{error}"
    );
    assert!(hint.contains("raise ssh.command_timeout"), "{hint}");
    assert_eq!(
        live_digests(&bed, 2),
        before,
        "host2's files were not restored"
    );
    // Killed on the host, not only given up on (a guard, not a timing assertion).
    let start = Instant::now();
    while bed.host_pids(2).iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .starts_with("sleep 1000")
        })
    }) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the hanging reload still runs on host2"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    bed.assert_nothing_staged(2);
    recovers(&bed, &inv, 2);
}

/// openssl missing on a host: its key fails with a hint to install it, nothing is ordered for
/// it, the other host gets its certificate; with openssl back the next run completes.
#[test]
fn a_host_without_openssl_fails_at_the_key_and_orders_nothing() {
    let bed = Bed::up(2);
    let inv = inventory(&bed, "openssl.yaml", 2, |_| None);
    let fake = bed.dir.join("hosts/host2/no-openssl");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho \"sh: 1: openssl: not found\" >&2\nexit 127\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let openssl = bed.ssh_ok(2, "command -v openssl");
    bed.ssh_ok(
        2,
        &format!("mount --bind {} {}", fake.display(), openssl.trim()),
    );
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 1, "an order for host2: {doc}");
    issued(&bed, &doc, &[1]);
    let (error, hint) = failed(&doc, 2, "key", "host.command_missing");
    assert!(error.contains("openssl: not found"), "{error}");
    assert!(
        hint.contains("install openssl on host2.example.test"),
        "{hint}"
    );
    assert_eq!(leftovers_on_host(&bed, 2).trim(), "");
    bed.ssh_ok(2, &format!("umount {}", openssl.trim()));
    recovers(&bed, &inv, 2);
}

/// Replaces host i's SSH host key and has its sshd re-read it (SIGHUP); returns the new
/// public key line.
fn new_host_key(bed: &Bed, i: usize) -> String {
    let h = bed.dir.join(format!("hosts/host{i}"));
    let key = h.join("ssh_host_ed25519_key");
    std::fs::remove_file(&key).unwrap();
    std::fs::remove_file(h.join("ssh_host_ed25519_key.pub")).unwrap();
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let pid = std::fs::read_to_string(bed.dir.join(format!("run/host{i}.sshd.pid"))).unwrap();
    let st = std::process::Command::new("kill")
        .args(["-HUP", pid.trim()])
        .status()
        .unwrap();
    assert!(st.success());
    // sshd re-executes itself on SIGHUP: wait until it offers the new key.
    let public = std::fs::read_to_string(h.join("ssh_host_ed25519_key.pub")).unwrap();
    let want = public.split_whitespace().nth(1).unwrap().to_string();
    let start = Instant::now();
    loop {
        let out = std::process::Command::new("ssh-keyscan")
            .args(["-t", "ed25519", &bed.host_addr(i)])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).contains(&want) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "sshd kept the old key"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    public
}

/// A host whose key changed between runs is refused as such, never trusted; the hint says how
/// to accept the new key; the other host is done; once known_hosts has the new key the next
/// run completes.
#[test]
fn a_changed_host_key_is_refused_never_trusted() {
    let bed = Bed::up(2);
    let inv = inventory(&bed, "hostkey.yaml", 2, |_| None);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let before = std::fs::read_to_string(bed.host_etc_ssl(2).join("certs/www.pem")).unwrap();
    let public = new_host_key(&bed, 2);
    let known = std::fs::read_to_string(bed.get("KNOWN_HOSTS")).unwrap();
    let run = bed.certorch(
        &inv,
        &[
            "--json",
            "issue",
            "host1.example.test/www",
            "host2.example.test/www",
        ],
    );
    run.expect_code(1);
    let doc = run.json();
    issued(&bed, &doc, &[1]);
    let a2 = bed.host_addr(2);
    let (error, hint) = failed(&doc, 2, "connect", "ssh.host_key_changed");
    assert!(
        error.starts_with(&format!("cannot connect to {a2}: ")),
        "{error}"
    );
    assert!(error.to_lowercase().contains("host key"), "{error}");
    let known_hosts = bed.get("KNOWN_HOSTS");
    assert!(
        hint.contains(&format!("ssh-keygen -R {a2} -f {known_hosts}"))
            && hint.contains(&format!("`ssh-keyscan {a2} >> {known_hosts}`"))
            && hint.contains("certorch does not take a changed key"),
        "{hint}"
    );
    assert_eq!(
        std::fs::read_to_string(known_hosts).unwrap(),
        known,
        "known_hosts was changed"
    );
    assert_eq!(
        std::fs::read_to_string(bed.host_etc_ssl(2).join("certs/www.pem")).unwrap(),
        before,
        "host2 was touched"
    );
    // The operator accepts the new key, as the hint says.
    let accepted: String = known
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{a2},")) {
                let mut f = public.split_whitespace();
                format!(
                    "{a2},host2.example.test {} {}\n",
                    f.next().unwrap(),
                    f.next().unwrap()
                )
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(known_hosts, accepted).unwrap();
    recovers(&bed, &inv, 2);
}
