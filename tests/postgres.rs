//! The state on PostgreSQL (`state: postgresql://…`): two bastions on one database, the run
//! lock as an advisory lock that dies with its holder, the schema version, and the password
//! kept out of everything certorch prints, TLS to it (sslmode, sslrootcert, client
//! certificates) and libpq's password file. These tests use the bed's PostgreSQL whatever
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
        .env_remove("PGPASSFILE")
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
    bed.add_dead_signing_ns();

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
    bed.remove_dead_signing_ns();

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
    // The binary's own version: whatever its migrations reach, at least the fourth.
    let version = count(&bed, "SELECT version FROM certorch_schema");
    assert!(version >= 4, "{version}");
    bed.psql("UPDATE certorch_schema SET version = 99");
    let runs = count(&bed, "SELECT count(*) FROM runs");
    for args in [&["run"][..], &["status"][..]] {
        let r = run(&bed, &inv, args);
        r.expect_code(1);
        assert!(
            r.stderr.contains(&format!(
                "has schema version 99; this certorch knows up to {version}"
            )),
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

/// The bed's PostgreSQL password.
fn password(bed: &Bed) -> String {
    std::fs::read_to_string(bed.get("PG_PASSWORD_FILE"))
        .unwrap()
        .trim()
        .to_string()
}

/// A URL for the role `certorch_tls` (let in over TLS only) on its own database, with `query`.
fn tls_url(bed: &Bed, query: &str) -> String {
    format!(
        "postgresql://certorch_tls@{}:5432/certorch_tls?password_file={}&{query}",
        bed.get("PG_ADDR"),
        bed.get("PG_PASSWORD_FILE")
    )
}

/// `sql` through psql as the superuser, on database `db`.
fn psql_on(bed: &Bed, db: &str, sql: &str) -> String {
    let out = Command::new(bed.get("PG_PSQL"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(bed.get("PG_SOCKET_DIR"))
        .args(["-p", "5432", "-U", "certorch", "-d", db, "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn assert_no_password(password: &str, r: &Run) {
    assert!(
        !r.stdout.contains(password) && !r.stderr.contains(password),
        "the password in certorch's output:\n{}\n{}",
        r.stdout,
        r.stderr
    );
}

/// Over TLS with the bed's CA (verify-full: the chain and the address in the certificate), a
/// run issues and deploys; the server lets the role in over TLS only, so it was TLS. The same
/// role with sslmode=disable is turned away, with a hint to use TLS; another CA in
/// sslrootcert is refused before any password is sent, under verify-full as under require;
/// sslmode=require without sslrootcert encrypts without checking.
#[test]
fn tls_verify_full_works_and_a_wrong_ca_is_refused() {
    let bed = bed(1);
    let password = password(&bed);
    let ca = bed.get("PG_TLS_CA");
    let addr = bed.get("PG_ADDR");

    let inv = inventory(
        &bed,
        1,
        &tls_url(&bed, &format!("sslmode=verify-full&sslrootcert={ca}")),
        "verify-full",
    );
    let r = run(&bed, &inv, &["--json", "run"]);
    r.expect_code(0);
    assert_eq!(r.json()["outcomes"][0]["result"], "issued", "{}", r.stdout);
    assert_no_password(&password, &r);
    bed.assert_www_valid(
        1,
        &bed.pebble_root(),
        &["host1.example.test", "www.host1.example.test"],
    );
    assert_eq!(
        psql_on(&bed, "certorch_tls", "SELECT count(*) FROM certificates"),
        "1"
    );

    // Without TLS the server turns this role away (pg_hba.conf: hostnossl … reject).
    let plain = inventory(&bed, 1, &tls_url(&bed, "sslmode=disable"), "disable");
    let r = run(&bed, &plain, &["--json", "status"]);
    r.expect_code(1);
    let doc = r.json();
    assert_eq!(doc["kind"], "state.tls_failed", "{}", r.stdout);
    assert!(
        doc["error"].as_str().unwrap().contains("no encryption"),
        "{}",
        r.stdout
    );
    assert!(
        doc["hint"].as_str().unwrap().contains(&format!(
            "PostgreSQL at {addr}:5432 takes this user only over TLS"
        )),
        "{}",
        r.stdout
    );
    assert_no_password(&password, &r);

    // Another CA (the one the bed's Pebble serves with): refused, under verify-full and
    // under require with sslrootcert, as libpq does.
    let other = bed.get("PEBBLE_CA");
    for mode in ["verify-full", "verify-ca", "require"] {
        let wrong = inventory(
            &bed,
            1,
            &tls_url(&bed, &format!("sslmode={mode}&sslrootcert={other}")),
            &format!("wrong-ca-{mode}"),
        );
        let r = run(&bed, &wrong, &["--json", "status"]);
        r.expect_code(1);
        let doc = r.json();
        assert_eq!(doc["kind"], "state.tls_failed", "{mode}: {}", r.stdout);
        let error = doc["error"].as_str().unwrap();
        assert!(
            error.contains(&format!(
                "the TLS certificate of PostgreSQL at {addr} is not issued by a CA in sslrootcert {other}"
            )),
            "{mode}: {error}"
        );
        assert!(
            doc["hint"]
                .as_str()
                .unwrap()
                .contains("with sslrootcert=FILE in the state URL"),
            "{mode}: {}",
            r.stdout
        );
        assert!(
            r.stderr
                .contains("hint: give the CA that issued PostgreSQL's server certificate"),
            "{mode}: {}",
            r.stderr
        );
        assert_no_password(&password, &r);
    }

    // verify-ca with the right CA: the chain is checked, the name is not.
    let ca_only = inventory(
        &bed,
        1,
        &tls_url(&bed, &format!("sslmode=verify-ca&sslrootcert={ca}")),
        "verify-ca",
    );
    let r = run(&bed, &ca_only, &["--json", "status"]);
    r.expect_code(0);

    // require without sslrootcert: encrypted (the role is let in), nothing checked; the
    // certificate is current, so the run has nothing to do.
    let require = inventory(&bed, 1, &tls_url(&bed, "sslmode=require"), "require");
    let r = run(&bed, &require, &["--json", "run"]);
    r.expect_code(0);
    assert_eq!(r.json()["outcomes"][0]["result"], "current", "{}", r.stdout);
    assert_no_password(&password, &r);
    // No sslmode at all is libpq's prefer: TLS when the server offers it, so this role gets in.
    let prefer = inventory(&bed, 1, &tls_url(&bed, "connect_timeout=10"), "prefer");
    run(&bed, &prefer, &["--json", "status"]).expect_code(0);
    // allow: plain first; the server turns this role away without TLS, so with TLS next.
    let allow = inventory(&bed, 1, &tls_url(&bed, "sslmode=allow"), "allow");
    run(&bed, &allow, &["--json", "status"]).expect_code(0);
}

/// A server that answers the TLS request with `N` (no TLS): under sslmode=require certorch
/// stops there, names the server and says what to do. The "server" is a listener of the
/// test's own that speaks only that first byte of the protocol.
#[test]
fn a_server_without_tls_is_refused_under_require() {
    let bed = bed(1);
    let addr = bed.get("PG_ADDR");
    let listener = std::net::TcpListener::bind(format!("{addr}:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut request = [0u8; 8];
        std::io::Read::read_exact(&mut conn, &mut request).unwrap();
        // SSLRequest: length 8, code 80877103.
        assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
        conn.write_all(b"N").unwrap();
    });
    let inv = inventory(
        &bed,
        1,
        &format!(
            "postgresql://certorch@{addr}:{port}/certorch?sslmode=require&password_file={}",
            bed.get("PG_PASSWORD_FILE")
        ),
        "no-tls",
    );
    let r = run(&bed, &inv, &["--json", "status"]);
    r.expect_code(1);
    server.join().unwrap();
    let doc = r.json();
    assert_eq!(doc["kind"], "state.tls_failed", "{}", r.stdout);
    assert!(
        doc["error"].as_str().unwrap().contains(&format!(
            "PostgreSQL at {addr}:{port} does not offer TLS, and sslmode=require requires it"
        )),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr
            .contains("hint: turn TLS on in PostgreSQL (ssl = on"),
        "{}",
        r.stderr
    );
}

/// A client certificate from the bed's CA logs in as `certorch_cert` with no password at all
/// (pg_hba.conf: hostssl … cert); without it the role is turned away.
#[test]
fn a_client_certificate_logs_in_without_a_password() {
    let bed = bed(1);
    let base = format!(
        "postgresql://certorch_cert@{}:5432/certorch_cert?sslmode=verify-full&sslrootcert={}",
        bed.get("PG_ADDR"),
        bed.get("PG_TLS_CA")
    );
    let with_cert = inventory(
        &bed,
        1,
        &format!(
            "{base}&sslcert={}&sslkey={}",
            bed.get("PG_TLS_CLIENT_CERT"),
            bed.get("PG_TLS_CLIENT_KEY")
        ),
        "client-cert",
    );
    run(&bed, &with_cert, &["account", "register"]).expect_code(0);
    assert_eq!(
        psql_on(&bed, "certorch_cert", "SELECT count(*) FROM accounts"),
        "1"
    );
    let without = inventory(&bed, 1, &base, "no-client-cert");
    let r = run(&bed, &without, &["status"]);
    r.expect_code(1);
    assert!(r.stderr.contains("certorch_cert"), "{}", r.stderr);
}

/// Without a password in the URL, a password file or PGPASSWORD, libpq's password file
/// (PGPASSFILE) gives it; one others may read is ignored with a warning, as libpq does.
#[test]
fn the_password_comes_from_pgpassfile() {
    use std::os::unix::fs::PermissionsExt;
    let bed = bed(1);
    let password = password(&bed);
    let addr = bed.get("PG_ADDR");
    let inv = inventory(
        &bed,
        1,
        &format!(
            "postgresql://certorch@{addr}:5432/certorch?sslmode=verify-full&sslrootcert={}",
            bed.get("PG_TLS_CA")
        ),
        "pgpass",
    );
    let file = bed.scratch("pg").join("pgpass");
    std::fs::write(
        &file,
        format!("# the bed\nother.example.org:5432:*:*:not-this\n{addr}:5432:certorch:certorch:{password}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let with = |file: &Path| {
        Run::from(
            certorch(&bed, &inv, &["--json", "status"])
                .env("PGPASSFILE", file)
                .output()
                .unwrap(),
        )
    };
    let r = with(&file);
    r.expect_code(0);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    assert_no_password(&password, &r);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = with(&file);
    r.expect_code(1);
    assert!(
        r.stderr.contains(&format!(
            "warning: password file {} has group or world access: not used",
            file.display()
        )),
        "{}",
        r.stderr
    );
    assert_no_password(&password, &r);
}
