//! Faults on the bastion itself (issue 13, docs/faults.md "The bastion"): a read-only state
//! directory, a damaged state database, a notification endpoint that is down, slow or
//! failing, and a bastion clock behind the CA's. Each runs the real binary against the bed.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Bed, Run, Tmpfs};

/// The serial of host i's deployed `www` certificate, or "" if it has none.
fn serial(bed: &Bed, i: usize) -> String {
    let out = bed.ssh(
        i,
        "test -f /etc/ssl/certs/www.pem && openssl x509 -noout -serial -in /etc/ssl/certs/www.pem || true",
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `--json` document of a command that stopped before it started: exactly the three
/// fields, on stdout, and the same error and hint on stderr.
fn stopped(run: &Run, kind: &str) -> (String, String) {
    let doc = run.json();
    assert_eq!(doc["kind"], kind, "{doc}");
    let obj = doc.as_object().expect("an object");
    assert_eq!(obj.len(), 3, "error, kind, hint: {doc}");
    let error = doc["error"].as_str().expect("error").to_string();
    let hint = doc["hint"].as_str().expect("hint").to_string();
    assert!(
        run.stderr
            .contains(&format!("error: {error}\n  hint: {hint}")),
        "{}",
        run.stderr
    );
    (error, hint)
}

/// What the test asserts "nothing happened" against: no TXT left, no staged file on a host.
fn nothing_left(bed: &Bed, hosts: usize) {
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
    for i in 1..=hosts {
        bed.assert_nothing_staged(i);
    }
}

/// The state directory's file system is read-only (remounted `ro`): `run` and `issue` stop
/// before anything is ordered, exit 1, naming the directory, state.db and what to do;
/// `status` and `plan` still read the state; state.db is byte-identical; once it is writable
/// again the next run does what the refused one would have.
#[test]
fn a_read_only_state_directory_stops_before_anything_is_ordered() {
    if common::state_backend() == common::StateBackend::Postgres {
        // A read-only state directory is SQLite's: on PostgreSQL the server owns its files (an unreachable or
        // refusing server is tests/postgres.rs's).
        eprintln!("skipped: the state is on PostgreSQL, not in a directory");
        return;
    }
    let bed = Bed::up(2);
    let tmpfs = Tmpfs::mount(&bed.state_dir(), "16m");
    let inv = bed.standard_inventory(2);
    bed.certorch(&inv, &["--limit", "host1.example.test", "run"])
        .expect_code(0);
    let db = bed.state_dir().join("state.db");
    let before = std::fs::read(&db).unwrap();
    let serial1 = serial(&bed, 1);
    assert!(serial1.starts_with("serial="), "{serial1}");

    tmpfs.remount("ro");
    for args in [&["--json", "run"][..], &["--json", "issue", "all"][..]] {
        let run = bed.certorch(&inv, args);
        run.expect_code(1);
        let (error, hint) = stopped(&run, "state.write_failed");
        let dir = bed.state_dir().display().to_string();
        assert_eq!(
            error,
            format!(
                "cannot write to the state directory {dir}: Read-only file system (os error 30)"
            )
        );
        assert_eq!(
            hint,
            format!(
                "the file system is read-only: certorch records each step in {dir}/state.db before it acts, so it ordered nothing; remount it read-write (or pass --state with a writable directory) and run again; {dir}/state.db was not changed"
            )
        );
    }
    // Reading needs no write.
    let status = bed.certorch(&inv, &["--json", "status"]);
    status.expect_code(0);
    let lines = status.json();
    assert_eq!(lines[0]["deployed"], true, "{lines}");
    assert_eq!(lines[1]["deployed"], false, "{lines}");
    let plan = bed.certorch(&inv, &["--json", "plan"]);
    plan.expect_code(0);
    assert_eq!(plan.json()["items"][1]["action"], "issue");

    assert!(std::fs::read(&db).unwrap() == before, "state.db changed");
    assert_eq!(serial(&bed, 1), serial1, "host1's certificate changed");
    assert_eq!(
        serial(&bed, 2),
        "",
        "host2 got a certificate nothing recorded"
    );
    nothing_left(&bed, 2);

    tmpfs.remount("rw");
    let after = bed.certorch(&inv, &["--json", "run"]);
    after.expect_code(0);
    let doc = after.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    assert_eq!(doc["outcomes"][0]["result"], "current", "{doc}");
    assert_eq!(doc["outcomes"][1]["result"], "issued", "{doc}");
    nothing_left(&bed, 2);
}

/// state.db is damaged three ways (garbage where the database was, the database cut short, an
/// empty file): `run`, `issue`, `status` and `plan` each refuse it with `state.corrupt`,
/// naming the file and what to do (restore a backup, or move it aside to start afresh),
/// exit 1; the file is byte-identical afterwards (never repaired or recreated) and nothing is
/// ordered. Moving it aside, as the hint says, lets the next run start afresh.
#[test]
fn a_damaged_state_database_is_refused_and_left_as_it_is() {
    if common::state_backend() == common::StateBackend::Postgres {
        // A damaged state.db file is SQLite's: on PostgreSQL the server owns its files (an unreachable or
        // refusing server is tests/postgres.rs's).
        eprintln!("skipped: the state is on PostgreSQL, not in a directory");
        return;
    }
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    bed.certorch(&inv, &["run"]).expect_code(0);
    let db = bed.state_dir().join("state.db");
    let good = std::fs::read(&db).unwrap();
    assert!(good.len() > 8192, "a real database: {} bytes", good.len());
    let serial1 = serial(&bed, 1);

    let garbage: Vec<u8> = b"this is not a database, it is a log file someone copied here\n"
        .iter()
        .copied()
        .cycle()
        .take(good.len())
        .collect();
    // Page 1 (the header and the schema) intact, the pages after it gone.
    let truncated = good[..4096].to_vec();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("garbage", garbage, "file is not a database"),
        ("truncated", truncated, "database disk image is malformed"),
        (
            "empty",
            Vec::new(),
            "the file is empty (0 bytes), as a failed copy or restore leaves it",
        ),
    ];
    let path = db.display().to_string();
    for (what, bytes, detail) in cases {
        std::fs::write(&db, &bytes).unwrap();
        for args in [
            &["--json", "run"][..],
            &["--json", "issue", "all"][..],
            &["--json", "status"][..],
            &["--json", "plan"][..],
        ] {
            let run = bed.certorch(&inv, args);
            assert_eq!(run.code, 1, "{what} {args:?}: {}", run.stderr);
            let (error, hint) = stopped(&run, "state.corrupt");
            assert!(
                error.starts_with(&format!(
                    "the state database {path} is damaged or not a database: "
                )) && error.contains(detail),
                "{what} {args:?}: {error}"
            );
            assert_eq!(
                hint,
                format!(
                    "certorch left {path} as it is and did nothing: restore it from a backup (it holds the ACME account keys, the orders and TXT records in flight, the audit log); to start afresh instead, move it aside (mv {path} {path}.damaged): the next run registers a new account and orders every certificate again"
                ),
                "{what} {args:?}"
            );
            assert!(
                std::fs::read(&db).unwrap() == bytes,
                "{what}: {args:?} changed state.db"
            );
        }
        let leftovers: Vec<_> = std::fs::read_dir(bed.state_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "lock" && n != "state.db")
            .collect();
        assert_eq!(leftovers, Vec::<String>::new(), "{what}");
        assert_eq!(serial(&bed, 1), serial1, "{what}: the host was touched");
        nothing_left(&bed, 1);
    }

    // The hint's way out: moved aside, the next run starts afresh; knowing no issuer, it
    // orders the certificate again.
    std::fs::rename(&db, bed.state_dir().join("state.db.damaged")).unwrap();
    // A fresh state does not know when the CA last looked at these names: the bed's resolver
    // may still hold the first run's TXT answers (TTL 2 s), and a new value would meet them.
    // The first run can be under 2 s ago on a fast machine; wait it out, as an operator
    // starting afresh after a run minutes ago need not.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let fresh = bed.certorch(&inv, &["--json", "run"]);
    fresh.expect_code(0);
    let doc = fresh.json();
    assert_eq!(doc["outcomes"][0]["result"], "issued", "{doc}");
    assert_eq!(doc["orders"], 1, "{doc}");
    bed.assert_www_valid(1, &bed.pebble_root(), &["host1.example.test"]);
    nothing_left(&bed, 1);
}

/// What a notification endpoint does with the requests it gets.
#[derive(Clone, Copy)]
enum Endpoint {
    /// Answers `500 Internal Server Error`.
    Fails,
    /// Reads the request and never answers (holds the connection open).
    Hangs,
}

/// Serves `how` on a fresh port of the bed's block; returns its URL and how many requests came.
fn endpoint(bed: &Bed, how: Endpoint) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(format!("127.{}.0.21:0", bed.net)).unwrap();
    let url = format!("http://{}/hook/s3cret", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            count.fetch_add(1, Ordering::SeqCst);
            match how {
                Endpoint::Fails => {
                    let mut s = stream;
                    let _ = s.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
                Endpoint::Hangs => held.push(stream),
            }
        }
    });
    (url, seen)
}

/// The standard inventory for hosts 1..=2 with `notify: { webhook: URL, on: always }`.
fn notifying(bed: &Bed, url: &str) -> PathBuf {
    let inv = bed.standard_inventory(2);
    let text = std::fs::read_to_string(&inv).unwrap().replacen(
        "hosts:\n",
        &format!("notify:\n  webhook: {url}\n  on: always\nhosts:\n"),
        1,
    );
    bed.write_inventory("notify.yaml", &text)
}

/// The run's result is the same whatever the webhook does: host1 issued, host2 (stopped)
/// failed at connect, exit 1, and one warning naming the webhook (never its secret path).
fn assert_result_unaffected(bed: &Bed, run: &Run, why: &str) {
    run.expect_code(1);
    let doc = run.json();
    let outcomes = doc["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes[0]["result"], "issued", "{doc}");
    assert_eq!(outcomes[1]["result"], "failed", "{doc}");
    assert_eq!(outcomes[1]["kind"], "ssh.unreachable", "{doc}");
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .filter(|w| w.contains("webhook"))
        .collect();
    let host = format!("127.{}.0.21", bed.net);
    assert_eq!(warnings.len(), 1, "{doc}");
    assert!(
        warnings[0].starts_with(&format!("the webhook http://{host}:"))
            && warnings[0].contains("/… did not take the notification: ")
            && warnings[0].contains(why),
        "{}",
        warnings[0]
    );
    assert!(!run.stdout.contains("s3cret") && !run.stderr.contains("s3cret"));
    assert!(serial(bed, 1).starts_with("serial="));
    nothing_left(bed, 1);
}

/// A webhook that refuses connections (nothing listens), answers 500, or never answers: the
/// run's outcomes and exit code are what they would be without it, with a warning naming the
/// webhook; a webhook that never answers holds the run no longer than the notify timeout
/// (10 s: certorch exits while the endpoint still holds the connection).
#[test]
fn a_webhook_down_failing_or_silent_changes_nothing_but_a_warning() {
    let bed = Bed::up(2);
    bed.stop_host(2);

    // Down: a port nobody listens on.
    let closed = TcpListener::bind(format!("127.{}.0.21:0", bed.net)).unwrap();
    let url = format!("http://{}/hook/s3cret", closed.local_addr().unwrap());
    drop(closed);
    let inv = notifying(&bed, &url);
    let run = bed.certorch(&inv, &["--json", "run"]);
    assert_result_unaffected(&bed, &run, "Connection refused");

    // Failing: 500.
    let (url, seen) = endpoint(&bed, Endpoint::Fails);
    let inv = notifying(&bed, &url);
    let run = bed.certorch(
        &inv,
        &[
            "--json",
            "issue",
            "host1.example.test",
            "host2.example.test",
        ],
    );
    assert_result_unaffected(&bed, &run, "HTTP 500 Internal Server Error");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "one POST, no retry loop");

    // Silent: takes the request, never answers.
    let (url, seen) = endpoint(&bed, Endpoint::Hangs);
    let inv = notifying(&bed, &url);
    let run = bed.certorch(
        &inv,
        &[
            "--json",
            "issue",
            "host1.example.test",
            "host2.example.test",
        ],
    );
    assert_result_unaffected(&bed, &run, "no answer within 10s");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}

/// The bastion's clock 3 minutes behind the CA's (libfaketime; within TSIG's 5-minute fudge,
/// which a larger skew breaks first): the certificate's notBefore is in the future as
/// certorch sees it. certorch deploys it (the clients that check it use their own clocks, and
/// the CA's is the one to trust), warns about the skew with the numbers, and the next run,
/// still skewed, finds it current: no reissue loop.
#[test]
fn a_certificate_from_a_ca_ahead_of_the_bastion_is_deployed_with_a_warning() {
    let bed = Bed::up(1);
    let inv = bed.standard_inventory(1);
    let skewed = |args: &[&str]| -> Run {
        let mut c = bed.certorch_command(&inv, args);
        c.env("LD_PRELOAD", faketime_lib())
            .env("FAKETIME", "-3m")
            .env("FAKETIME_DONT_RESET", "1")
            .env("FAKETIME_NO_CACHE", "1");
        Run::from(c.output().expect("run certorch under faketime"))
    };
    let run = skewed(&["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["outcomes"][0]["result"], "issued", "{doc}");
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(warnings.len(), 1, "{doc}");
    let w = warnings[0];
    assert!(
        w.starts_with("host1.example.test/www: the certificate is valid from ")
            && w.contains(" ahead of this bastion's clock")
            && w.contains("it was deployed all the same, but check the bastion's time synchronisation (chronyc tracking, timedatectl)"),
        "{w}"
    );
    bed.assert_www_valid(
        1,
        &bed.pebble_root(),
        &["host1.example.test", "www.host1.example.test"],
    );
    nothing_left(&bed, 1);

    let again = skewed(&["--json", "run"]);
    again.expect_code(0);
    let doc = again.json();
    assert_eq!(doc["outcomes"][0]["result"], "current", "{doc}");
    assert_eq!(doc["orders"], 0, "{doc}");
}

/// libfaketime's preload library (Debian's `faketime` package, in .ci/packages).
fn faketime_lib() -> &'static str {
    const LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(
        Path::new(LIB).exists(),
        "{LIB} is missing: install the faketime package (.ci/packages)"
    );
    LIB
}
