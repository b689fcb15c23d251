//! The state on PostgreSQL (`state: postgresql://…`): two bastions on one database, the run
//! lock as an advisory lock that dies with its holder, the schema version, and the password
//! kept out of everything certorch prints. These tests use the bed's PostgreSQL whatever
//! CERTORCH_TEST_STATE says.

mod common;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Bed, Killed, Run};

/// A bed with PostgreSQL and `hosts` hosts.
fn bed(hosts: usize) -> Bed {
    Bed::up_with(hosts, &["--postgres"])
}

/// The standard inventory for hosts 1..=n with its state in the bed's PostgreSQL at `url`.
fn inventory(bed: &Bed, n: usize, url: &str, name: &str) -> PathBuf {
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    // Under CERTORCH_TEST_STATE=postgres the head already names the bed's database.
    let head: String = head
        .lines()
        .filter(|l| !l.starts_with("state:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = format!("{head}state: \"{url}\"\n{}", bed.hosts_yaml(n));
    bed.write_inventory(&format!("{name}.yaml"), &text)
}

/// certorch with no --state: the inventory's `state:` decides, as on a bastion.
fn certorch(bed: &Bed, inv: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_certorch"));
    c.arg("--inventory")
        .arg(inv)
        .args(args)
        .env("TMPDIR", bed.certorch_tmp())
        .env_remove("CERTORCH_INVENTORY")
        .env_remove("CERTORCH_STATE")
        .env_remove("PGPASSWORD")
        .env_remove("SSH_AUTH_SOCK");
    c
}

fn run(bed: &Bed, inv: &Path, args: &[&str]) -> Run {
    Run::from(certorch(bed, inv, args).output().expect("run certorch"))
}

fn count(bed: &Bed, sql: &str) -> i64 {
    bed.psql(sql).trim().parse().unwrap()
}

/// Two bastions with the same cron line start at once: one runs, the other exits 3 at the
/// lock. The one running is killed (SIGKILL) mid-run, with its TXT records published and its
/// key staged on the host; its connection dies with it, and so its lock: the other bastion's
/// next run takes the lock, resumes the work and leaves nothing behind.
#[test]
fn two_bastions_one_runs_and_the_other_finishes_the_work_of_a_dead_one() {
    let bed = bed(1);
    let inv = inventory(&bed, 1, bed.get("PG_URL"), "postgres");
    // A second name server that never answers: the run waits for it after publishing.
    let dead = format!("127.{}.0.9", bed.net);
    bed.admin_update(&format!(
        "update add signing.test 1 NS ns2.signing.test.\nupdate add ns2.signing.test 1 A {dead}"
    ));

    let spawn = || {
        Killed(
            certorch(&bed, &inv, &["run"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        )
    };
    let mut a = spawn();
    let mut b = spawn();
    // One of them stops at the lock.
    let start = Instant::now();
    let (mut running, loser) = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "neither run stopped at the lock"
        );
        if a.0.try_wait().unwrap().is_some() {
            break (b, a);
        }
        if b.0.try_wait().unwrap().is_some() {
            break (a, b);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut loser = loser;
    let code = loser.0.wait().unwrap().code();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut loser.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "error: another certorch run holds the lock on postgresql://certorch@{}:5432/certorch",
            bed.get("PG_ADDR")
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: wait for it to finish"), "{stderr}");

    // The other publishes, then waits for the dead server: killed there.
    while bed.txt("host1.example.test.signing.test").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "certorch never published"
        );
        assert!(
            running.0.try_wait().unwrap().is_none(),
            "certorch ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running.0.kill().unwrap(); // SIGKILL
    running.0.wait().unwrap();
    assert!(
        !bed.signing_zone_txt().is_empty(),
        "the killed run published"
    );
    assert!(count(&bed, "SELECT count(*) FROM txt_records") >= 1);
    assert!(count(&bed, "SELECT count(*) FROM orders WHERE status = 'open'") >= 1);

    // The server ends the dead bastion's session when its socket closes; with it goes the lock.
    let start = Instant::now();
    while count(
        &bed,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
    ) > 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the killed run's advisory lock outlived its connection"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    bed.admin_update(&format!(
        "update delete signing.test NS ns2.signing.test.\nupdate delete ns2.signing.test A {dead}"
    ));
    bed.wait_resolver_forgets("signing.test", "NS", "ns2.signing.test");

    // The other bastion's next cron run.
    let next = run(&bed, &inv, &["--json", "run"]);
    next.expect_code(0);
    assert_eq!(
        next.json()["outcomes"][0]["result"],
        "issued",
        "{}",
        next.stdout
    );
    bed.assert_www_valid(
        1,
        &bed.pebble_root(),
        &["host1.example.test", "www.host1.example.test"],
    );
    // Nothing left behind: no TXT record, nothing staged on the host, nothing in flight.
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
    bed.assert_nothing_staged(1);
    assert_eq!(count(&bed, "SELECT count(*) FROM txt_records"), 0);
    assert_eq!(
        count(&bed, "SELECT count(*) FROM orders WHERE status = 'open'"),
        0
    );
    assert_eq!(
        count(
            &bed,
            "SELECT count(*) FROM lifecycle WHERE phase NOT IN ('done', 'failed', 'abandoned')"
        ),
        0
    );
    // And the lock is free again once it has finished.
    assert_eq!(
        count(
            &bed,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        ),
        0
    );
}

/// A database migrated by a newer certorch is refused, by `run` and by `status`, and nothing
/// is written to it.
#[test]
fn a_newer_schema_is_refused() {
    let bed = bed(1);
    let inv = inventory(&bed, 1, bed.get("PG_URL"), "postgres");
    run(&bed, &inv, &["account", "register"]).expect_code(0);
    assert_eq!(count(&bed, "SELECT version FROM certorch_schema"), 4);
    bed.psql("UPDATE certorch_schema SET version = 99");
    let runs = count(&bed, "SELECT count(*) FROM runs");
    for args in [&["run"][..], &["status"][..]] {
        let r = run(&bed, &inv, args);
        r.expect_code(1);
        assert!(
            r.stderr
                .contains("has schema version 99; this certorch knows up to 4"),
            "{}",
            r.stderr
        );
        assert!(
            r.stderr
                .contains("hint: a newer certorch wrote this state: run that version"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(count(&bed, "SELECT count(*) FROM runs"), runs);
    assert_eq!(count(&bed, "SELECT version FROM certorch_schema"), 99);
}

/// The password is never printed: not with the URL in an error, not in --json, not when the
/// lock is held, not when the server refuses it.
#[test]
fn the_password_never_appears() {
    let bed = bed(1);
    let password = std::fs::read_to_string(bed.get("PG_PASSWORD_FILE"))
        .unwrap()
        .trim()
        .to_string();
    let addr = bed.get("PG_ADDR");
    let in_url = format!("postgresql://certorch:{password}@{addr}:5432/certorch?sslmode=disable");
    let inv = inventory(&bed, 1, &in_url, "password-in-url");
    let mut outputs = Vec::new();

    let ok = run(&bed, &inv, &["--json", "run"]);
    ok.expect_code(0);
    outputs.push(ok);
    outputs.push(run(&bed, &inv, &["--json", "status"]));
    outputs.push(run(&bed, &inv, &["--json", "plan"]));

    // A database that does not exist: the error names the URL, without the password.
    let missing = inventory(
        &bed,
        1,
        &format!("postgresql://certorch:{password}@{addr}:5432/nosuchdb?sslmode=disable"),
        "no-such-db",
    );
    let r = run(&bed, &missing, &["--json", "run"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains(&format!(
            "postgresql://certorch:redacted@{addr}:5432/nosuchdb"
        )) && r.stderr.contains("nosuchdb\" does not exist"),
        "{}",
        r.stderr
    );
    outputs.push(r);

    // A wrong password in the file: refused, and neither password is shown.
    let wrong = bed.scratch("pg").join("wrong.password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let wrong_inv = inventory(
        &bed,
        1,
        &format!(
            "postgresql://certorch@{addr}:5432/certorch?password_file={}&sslmode=disable",
            wrong.display()
        ),
        "wrong-password",
    );
    let r = run(&bed, &wrong_inv, &["status"]);
    r.expect_code(1);
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("not-the-password"), "{}", r.stderr);
    outputs.push(r);

    // The lock held by another session (a psql holding the same advisory lock is another
    // certorch to this one): exit 3, the URL shown without its password.
    let key = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(b"certorch run lock ");
        i64::from_be_bytes(d[..8].try_into().unwrap())
    };
    let mut holder = Killed(
        Command::new(bed.get("PG_PSQL"))
            .args(["-X", "-q", "-A", "-t", "-h", bed.get("PG_SOCKET_DIR")])
            .args(["-U", "certorch", "-d", "certorch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdin = holder.0.stdin.take().unwrap();
    writeln!(stdin, "SELECT pg_advisory_lock({key});\n\\echo locked").unwrap();
    let mut lines = std::io::BufReader::new(holder.0.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.unwrap() == "locked"),
        "psql never took the lock"
    );
    let r = run(&bed, &inv, &["--json", "run"]);
    r.expect_code(3);
    assert!(
        r.stderr.starts_with(&format!(
            "error: another certorch run holds the lock on postgresql://certorch:redacted@{addr}:5432/certorch"
        )),
        "{}",
        r.stderr
    );
    outputs.push(r);
    drop(stdin);

    for o in &outputs {
        assert!(
            !o.stdout.contains(&password) && !o.stderr.contains(&password),
            "the password in certorch's output:\n{}\n{}",
            o.stdout,
            o.stderr
        );
    }
}
