//! The russh transport against real sshd hosts, whatever CERTORCH_TEST_TRANSPORT says: host
//! keys from hashed known_hosts lines, host certificates from a trusted CA, unknown, changed and
//! revoked keys refused, a port other than 22, logins through ssh-agent, encrypted key files,
//! the key exchanges of `ssh.kex` offered as listed.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::{Bed, Run};

/// An inventory for hosts 1..=n over russh with `known_hosts`; `identity` unless `None`, and
/// `port` on each host unless 22.
fn inventory(bed: &Bed, known_hosts: &Path, identity: Option<&Path>, n: usize) -> PathBuf {
    let mut ssh = format!(
        "ssh:\n  transport: russh\n  known_hosts: {}\n  connect_timeout: 20s\n",
        known_hosts.display()
    );
    if let Some(id) = identity {
        ssh.push_str(&format!("  identity: {}\n", id.display()));
    }
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let head = &head[..head.find("ssh:").expect("ssh block")];
    let port = bed.get("SSH_PORT");
    let mut text = format!("{head}{ssh}hosts:\n");
    for i in 1..=n {
        text.push_str(&format!(
            "  {}:\n    address: {}\n    port: {port}\n    certs:\n{}",
            bed.host_name(i),
            bed.host_addr(i),
            bed.www_cert(i)
        ));
    }
    bed.write_inventory("russh.yaml", &text)
}

fn identity(bed: &Bed) -> PathBuf {
    PathBuf::from(bed.get("SSH_IDENTITY"))
}

/// `certorch plan`: connects to every host and reads what is deployed, changes nothing.
fn plan(bed: &Bed, inv: &Path) -> Run {
    bed.certorch(inv, &["plan"])
}

fn assert_connected(run: &Run, hosts: usize) {
    run.expect_code(0);
    assert_eq!(
        run.stdout.matches(": would issue (").count(),
        hosts,
        "{}\n{}",
        run.stdout,
        run.stderr
    );
}

fn write(path: PathBuf, text: &str) -> PathBuf {
    fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_hashed_known_hosts_entry_is_accepted() {
    let bed = Bed::up(2);
    let dir = bed.scratch("hashed");
    let kh = dir.join("known_hosts");
    fs::copy(bed.get("KNOWN_HOSTS"), &kh).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-H", "-f"])
        .arg(&kh)
        .output()
        .unwrap();
    assert!(st.status.success());
    let text = fs::read_to_string(&kh).unwrap();
    assert!(
        text.lines().all(|l| l.starts_with("|1|")) && !text.contains(&bed.host_addr(1)),
        "{text}"
    );
    let run = plan(&bed, &inventory(&bed, &kh, Some(&identity(&bed)), 2));
    assert_connected(&run, 2);
}

#[test]
fn unknown_and_changed_host_keys_are_refused() {
    let bed = Bed::up(2);
    let (a1, a2) = (bed.host_addr(1), bed.host_addr(2));
    let known = fs::read_to_string(bed.get("KNOWN_HOSTS")).unwrap();
    let h1 = known
        .lines()
        .find(|l| l.starts_with(&format!("{a1},")))
        .unwrap();
    let h1_key = h1.split_once(' ').unwrap().1;
    // Host 1 is not listed at all; host 2 is listed with host 1's key.
    let kh = write(
        bed.scratch("keys").join("known_hosts"),
        &format!("# only host 2, with the wrong key\n{a2},host2.example.test {h1_key}\n"),
    );
    let run = plan(&bed, &inventory(&bed, &kh, Some(&identity(&bed)), 2));
    run.expect_code(1);
    let out = &run.stdout;
    assert!(
        out.contains(&format!(
            "host1.example.test/www: cannot tell: cannot connect to {a1}: Host key verification failed: {a1} presented an ED25519 key SHA256:"
        )) && out.contains(&format!("that no known_hosts file lists for it ({}", kh.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "host2.example.test/www: cannot tell: cannot connect to {a2}: Host key verification failed: {a2} presented an ED25519 key SHA256:"
        )) && out.contains(&format!("but {}:2 lists another key for it", kh.display())),
        "{out}"
    );

    // The same through `run`, for the hint an operator acts on.
    let run = bed.certorch(&inventory(&bed, &kh, Some(&identity(&bed)), 2), &["run"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!("hint: the host key of {a1} is unknown or has changed: verify the key out of band, then add it to known_hosts (ssh-keyscan {a1} and compare the fingerprint)")),
        "{}",
        run.stderr
    );
    // A changed key: how to check it and replace the entry (issue 13, host faults).
    let kh_path = kh.display();
    assert!(
        run.stderr.contains(&format!("hint: the host key of {a2} is not the one {kh_path} lists for it, and certorch does not take a changed key"))
            && run.stderr.contains(&format!("`ssh-keygen -R {a2} -f {kh_path}`")),
        "{}",
        run.stderr
    );
    // Nothing was written on either host.
    for i in [1, 2] {
        let left = bed.ssh_ok(
            i,
            "ls -a /etc/ssl/private /etc/ssl/certs | grep -E 'www|certorch' || true",
        );
        assert_eq!(left.trim(), "", "host{i}: {left}");
    }
}

#[test]
fn a_port_other_than_22() {
    let bed = Bed::up_with(1, &["--ssh-port", "2222"]);
    let known = fs::read_to_string(bed.get("KNOWN_HOSTS")).unwrap();
    assert!(
        known.starts_with(&format!("[{}]:2222,", bed.host_addr(1))),
        "{known}"
    );
    let kh = PathBuf::from(bed.get("KNOWN_HOSTS"));
    let run = plan(&bed, &inventory(&bed, &kh, Some(&identity(&bed)), 1));
    assert_connected(&run, 1);
}

/// A known_hosts with only `@cert-authority` lines: the host presents a certificate signed by
/// that CA for its address; a CA for other names, or a revoked CA, is not enough.
#[test]
fn a_host_certificate_from_a_trusted_ca() {
    let bed = Bed::up_with(2, &["--host-cert"]);
    let ca = fs::read_to_string(bed.get("HOST_CA_PUB")).unwrap();
    let ca = ca.trim();
    let dir = bed.scratch("ca");
    let net = bed.net;

    let kh = write(
        dir.join("trusted"),
        &format!("@cert-authority 127.{net}.0.* {ca}\n"),
    );
    assert_connected(
        &plan(&bed, &inventory(&bed, &kh, Some(&identity(&bed)), 2)),
        2,
    );

    let kh = write(
        dir.join("elsewhere"),
        &format!("@cert-authority *.example.org {ca}\n"),
    );
    let run = plan(&bed, &inventory(&bed, &kh, Some(&identity(&bed)), 1));
    run.expect_code(1);
    assert!(
        run.stdout.contains("that no known_hosts file lists for it"),
        "{}",
        run.stdout
    );

    let kh = write(
        dir.join("revoked"),
        &format!("@cert-authority 127.{net}.0.* {ca}\n@revoked * {ca}\n"),
    );
    let run = plan(&bed, &inventory(&bed, &kh, Some(&identity(&bed)), 1));
    run.expect_code(1);
    assert!(
        run.stdout
            .contains("presented an ED25519 host certificate for key SHA256:")
            && run
                .stdout
                .contains(&format!("which {}:2 marks @revoked", kh.display())),
        "{}",
        run.stdout
    );
}

/// Kills the ssh-agent a test started, by its pid.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With no key file, the key comes from ssh-agent; an encrypted key file without an agent is
/// refused with the reason.
#[test]
fn logins_through_ssh_agent_and_encrypted_keys() {
    let bed = Bed::up(1);
    let dir = bed.scratch("agent");
    let sock = dir.join("agent.sock");
    let agent = Agent(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start ssh-agent"),
    );
    for _ in 0..100 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let st = Command::new("ssh-add")
        .arg("-q")
        .arg(identity(&bed))
        .env("SSH_AUTH_SOCK", &sock)
        .status()
        .unwrap();
    assert!(st.success(), "ssh-add");
    let kh = PathBuf::from(bed.get("KNOWN_HOSTS"));
    // An empty HOME: no ~/.ssh/id_* to fall back on.
    let home = bed.scratch("agent-home");
    let inv = inventory(&bed, &kh, None, 1);
    let run = Run::from(
        bed.certorch_command(&inv, &["plan"])
            .env("HOME", &home)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap(),
    );
    assert_connected(&run, 1);
    drop(agent);

    // The same key, encrypted, and no agent.
    let enc = dir.join("id_encrypted");
    fs::copy(identity(&bed), &enc).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "a passphrase", "-f"])
        .arg(&enc)
        .output()
        .unwrap();
    assert!(st.status.success(), "ssh-keygen -p");
    let inv = inventory(&bed, &kh, Some(&enc), 1);
    let run = Run::from(
        bed.certorch_command(&inv, &["run"])
            .env("HOME", &home)
            .output()
            .unwrap(),
    );
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!(
            "cannot connect to {}: Permission denied: certorch had no usable key to offer root@{} (no ssh-agent (SSH_AUTH_SOCK is not set))",
            bed.host_addr(1),
            bed.host_addr(1)
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(&format!(
            "{} is encrypted: certorch reads encrypted keys only through ssh-agent (ssh-add it)",
            enc.display()
        )),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("PRIVATE KEY"), "{}", run.stderr);
}

/// `ssh.kex` is what russh offers, in order, with strict kex still announced. Host 1's sshd
/// accepts curve25519-sha256 only and logs at DEBUG1 (its `kex: algorithm:` line): a run
/// offering curve25519-sha256 works and the host logs that exchange; a run offering only
/// diffie-hellman-group14-sha256 (which russh's default list also holds, after curve25519) is
/// refused, and sshd logs the client's exact offer.
#[test]
fn kex_from_the_inventory_is_what_russh_offers() {
    let bed = Bed::up(1);
    let config = bed.dir.join("hosts/host1/sshd_config");
    let text = fs::read_to_string(&config).unwrap();
    assert!(text.contains("LogLevel VERBOSE\n"), "{text}");
    let text = text.replace(
        "LogLevel VERBOSE\n",
        "LogLevel DEBUG1\nKexAlgorithms curve25519-sha256\n",
    );
    fs::write(&config, text).unwrap();
    bed.stop_host(1);
    bed.start_host(1);

    let log = bed.dir.join("log/host1.log");
    let inv = |kex: &str| {
        let text = fs::read_to_string(inventory(
            &bed,
            Path::new(bed.get("KNOWN_HOSTS")),
            Some(&identity(&bed)),
            1,
        ))
        .unwrap();
        let text = text.replacen(
            "  transport: russh\n",
            &format!("  transport: russh\n  kex: {kex}\n"),
            1,
        );
        bed.write_inventory("russh-kex.yaml", &text)
    };
    // What host 1's sshd logged during `f`.
    let logged_during = |f: &dyn Fn() -> Run| {
        let before = fs::read(&log).unwrap().len();
        let run = f();
        let after = fs::read(&log).unwrap();
        (run, String::from_utf8_lossy(&after[before..]).into_owned())
    };

    let (run, logged) = logged_during(&|| plan(&bed, &inv("[curve25519-sha256]")));
    assert_connected(&run, 1);
    assert!(
        logged.contains("kex: algorithm: curve25519-sha256 [preauth]"),
        "{logged}"
    );

    let (run, logged) = logged_during(&|| plan(&bed, &inv("[diffie-hellman-group14-sha256]")));
    run.expect_code(1);
    assert!(
        logged.contains("no matching key exchange method found. Their offer: diffie-hellman-group14-sha256,ext-info-c,kex-strict-c-v00@openssh.com"),
        "{logged}"
    );
    let a1 = bed.host_addr(1);
    assert!(
        run.stdout.contains(&format!(
            "host1.example.test/www: cannot tell: cannot connect to {a1}: No common Kex algorithm"
        )),
        "{}",
        run.stdout
    );
    // What the operator is told to do about it.
    let run = bed.certorch(&inv("[diffie-hellman-group14-sha256]"), &["run"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains(&format!("hint: {a1} accepts none of the key exchanges certorch offers: list one it accepts in ssh.kex")),
        "{}",
        run.stderr
    );
}
