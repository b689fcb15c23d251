//! The CA misbehaving at each ACME step: the bed's fault proxy (`testbed/faultproxy.py`) stands
//! between certorch and the real Pebble and answers chosen requests with a 5xx, a 429, a
//! `badNonce`, a connection cut mid-answer or no answer at all. certorch retries what is
//! transient, honours a short `Retry-After`, fails a certificate with the CA's time on a long
//! one, never asks again at once after a 429, and leaves nothing behind (TXT records, staged
//! files) once a follow-up run succeeds.

mod common;

use std::fs;
use std::path::PathBuf;

use common::{Bed, Run};
use serde_json::{Value, json};

/// A bed with the fault proxy, and an inventory whose CA is the proxy.
fn bed(hosts: usize) -> (Bed, PathBuf) {
    // Pebble rejects no nonce at random here: the tests count requests exactly.
    let bed = Bed::up_env(hosts, &["--faultproxy"], &[("PEBBLE_WFE_NONCEREJECT", "0")]);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let head = head.replacen(bed.get("PEBBLE_DIRECTORY"), bed.get("PROXY_DIRECTORY"), 1);
    assert!(head.contains(bed.get("PROXY_DIRECTORY")));
    let inv = bed.write_inventory("ca-faults.yaml", &(head + &bed.hosts_yaml(hosts)));
    (bed, inv)
}

/// Replaces the proxy's rules (atomically: the proxy re-reads the file when it changes).
fn rules(bed: &Bed, rules: Value) {
    let path = PathBuf::from(bed.get("PROXY_CONTROL"));
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, json!({ "rules": rules }).to_string()).unwrap();
    fs::rename(&tmp, &path).unwrap();
}

/// Every request the proxy saw so far: (step, fault).
fn requests(bed: &Bed) -> Vec<(String, Option<String>)> {
    fs::read_to_string(bed.get("PROXY_LOG"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_str().unwrap().to_string(),
                v["fault"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// How many requests for `step` the proxy saw, and how many of them got a fault.
fn count(bed: &Bed, step: &str) -> (usize, usize) {
    let r = requests(bed);
    let all = r.iter().filter(|(s, _)| s == step).count();
    let faulted = r.iter().filter(|(s, f)| s == step && f.is_some()).count();
    (all, faulted)
}

fn run(bed: &Bed, inv: &std::path::Path) -> Run {
    bed.certorch(inv, &["--json", "run"])
}

fn outcomes(run: &Run) -> Vec<Value> {
    run.json()["outcomes"].as_array().unwrap().clone()
}

/// What every test ends with: no TXT record left, nothing staged on any host.
fn assert_clean(bed: &Bed) {
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    for i in 1..=bed.hosts {
        bed.assert_nothing_staged(i);
    }
}

/// Runs with one fault at `step` (a 500 the first time), expects the run to succeed and the
/// fault to have been met and retried.
fn retried_once(step: &str, fault: &str) {
    let (bed, inv) = bed(1);
    rules(&bed, json!([{ "step": step, "fault": fault, "times": 1 }]));
    let run = run(&bed, &inv);
    run.expect_code(0);
    let o = outcomes(&run);
    assert_eq!(o[0]["result"], "issued", "{o:?}\n{}", run.stderr);
    let (all, faulted) = count(&bed, step);
    assert_eq!(
        faulted,
        1,
        "the fault at {step} was not met: {:?}",
        requests(&bed)
    );
    assert!(all >= 2, "{step} was not asked again after the fault");
    assert_eq!(
        run.json()["orders"],
        1,
        "a retried step opened another order"
    );
    bed.assert_www_valid(1, &bed.pebble_root(), &["host1.example.test"]);
    assert_clean(&bed);
}

#[test]
fn a_500_on_new_order_is_retried() {
    retried_once("new-order", "500");
}

#[test]
fn a_500_on_an_authorization_fetch_is_retried() {
    retried_once("authz", "500");
}

#[test]
fn a_500_on_answering_a_challenge_is_retried() {
    retried_once("challenge", "500");
}

#[test]
fn a_500_on_finalize_is_retried() {
    retried_once("finalize", "500");
}

#[test]
fn a_500_on_the_certificate_download_is_retried() {
    retried_once("cert", "500");
}

#[test]
fn a_connection_closed_mid_answer_is_retried() {
    retried_once("order", "close");
}

/// A 503 asking for 2 s: certorch waits and asks again, the run succeeds.
#[test]
fn a_503_with_a_short_retry_after_is_waited_out() {
    let (bed, inv) = bed(1);
    rules(
        &bed,
        json!([{ "step": "new-order", "fault": "503", "times": 1, "retry_after": 2 }]),
    );
    let run = run(&bed, &inv);
    run.expect_code(0);
    assert_eq!(outcomes(&run)[0]["result"], "issued", "{}", run.stderr);
    assert_eq!(count(&bed, "new-order"), (2, 1));
    assert_clean(&bed);
}

/// A 429 asking for an hour on one certificate's new order: that certificate fails at once
/// with `ca.rate_limited` and the CA's time in its hint, without asking again; the other
/// certificate is ordered and issued. A follow-up run (the limit gone) issues the first.
#[test]
fn a_429_with_a_long_retry_after_fails_that_certificate_without_asking_again() {
    let (bed, inv) = bed(2);
    rules(
        &bed,
        json!([{ "step": "new-order", "fault": "429", "times": 1, "retry_after": 3600 }]),
    );
    let run = run(&bed, &inv);
    run.expect_code(1);
    let o = outcomes(&run);
    let failed: Vec<&Value> = o.iter().filter(|o| o["result"] == "failed").collect();
    let issued: Vec<&Value> = o.iter().filter(|o| o["result"] == "issued").collect();
    assert_eq!((failed.len(), issued.len()), (1, 1), "{o:?}");
    let f = failed[0];
    assert_eq!(f["kind"], "ca.rate_limited", "{f}");
    assert_eq!(f["stage"], "order", "{f}");
    let error = f["error"].as_str().unwrap();
    let hint = f["hint"].as_str().unwrap();
    assert!(
        error.contains("refused a new order and asks certorch to come back after 20"),
        "{error}"
    );
    assert!(
        hint.starts_with("the CA's rate limit was hit: it takes requests again after 20"),
        "{hint}"
    );
    // Two certificates, two new-order requests: the limited one was not asked again.
    assert_eq!(count(&bed, "new-order"), (2, 1));
    // The limit lifted, the next run issues the one that failed, and only that one.
    rules(&bed, json!([]));
    let again = bed.certorch(&inv, &["--json", "run"]);
    again.expect_code(0);
    assert_eq!(again.json()["orders"], 1);
    assert_clean(&bed);
}

/// Ten `badNonce` answers in a row on new-order: instant-acme retries three times per
/// request, certorch's steps four times: the run gets through.
#[test]
fn a_bad_nonce_storm_is_ridden_out() {
    let (bed, inv) = bed(1);
    rules(
        &bed,
        json!([{ "step": "new-order", "fault": "badnonce", "times": 10 }]),
    );
    let run = run(&bed, &inv);
    run.expect_code(0);
    assert_eq!(outcomes(&run)[0]["result"], "issued", "{}", run.stderr);
    assert_eq!(count(&bed, "new-order"), (11, 10));
    assert_clean(&bed);
}

/// A 503 asking for an hour (an outage): the certificate fails with `ca.unavailable` and the
/// time; the next run issues it.
#[test]
fn a_503_with_a_long_retry_after_fails_with_the_time() {
    let (bed, inv) = bed(1);
    rules(
        &bed,
        json!([{ "step": "new-order", "fault": "503", "times": -1, "retry_after": 3600 }]),
    );
    let run = run(&bed, &inv);
    run.expect_code(1);
    let f = &outcomes(&run)[0];
    assert_eq!(f["kind"], "ca.unavailable", "{f}");
    assert!(
        f["hint"]
            .as_str()
            .unwrap()
            .starts_with("the CA is unavailable and asks to be left alone until 20"),
        "{f}"
    );
    assert_eq!(count(&bed, "new-order"), (1, 1));
    rules(&bed, json!([]));
    bed.certorch(&inv, &["--json", "run"]).expect_code(0);
    assert_clean(&bed);
}

/// Finalize gets no answer for longer than certorch's 30 s request timeout: the certificate
/// fails with `ca.unreachable`, its key stays staged and its order recorded; the next run
/// takes the same order up (no new order) and finishes it.
#[test]
fn a_hang_on_finalize_fails_and_the_next_run_resumes_the_order() {
    let (bed, inv) = bed(1);
    rules(
        &bed,
        json!([{ "step": "finalize", "fault": "hang", "times": 1, "hang": 40 }]),
    );
    let run = run(&bed, &inv);
    run.expect_code(1);
    let f = &outcomes(&run)[0];
    assert_eq!(f["kind"], "ca.unreachable", "{f}");
    assert_eq!(f["stage"], "finalize", "{f}");
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("did not answer POST https://"),
        "{f}"
    );
    assert_eq!(count(&bed, "finalize"), (1, 1));
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    let before = count(&bed, "new-order").0;
    assert_eq!(before, 1);

    let again = bed.certorch(&inv, &["--json", "run"]);
    again.expect_code(0);
    let doc = again.json();
    assert_eq!(doc["orders"], 0, "the order was not taken up: {doc}");
    assert_eq!(doc["outcomes"][0]["result"], "issued", "{doc}");
    assert_eq!(count(&bed, "new-order").0, before, "a new order was opened");
    bed.assert_www_valid(1, &bed.pebble_root(), &["host1.example.test"]);
    assert_clean(&bed);
}

/// A host goes into service as soon as its own order is finalized, not after the slowest
/// order of the run: the second finalize the CA gets hangs unanswered, and the other host's
/// certificate is live on its host before certorch could have given up on the hung request
/// (its 30 s request timeout; deploying after every order, as a barrier would, puts the files
/// there no earlier than that). The hung certificate fails alone and the next run finishes it
/// with the same order.
#[test]
fn a_host_is_deployed_while_another_hosts_finalize_hangs() {
    let (bed, inv) = bed(2);
    rules(
        &bed,
        json!([{ "step": "finalize", "fault": "hang", "skip": 1, "times": 1, "hang": 40 }]),
    );
    let run = run(&bed, &inv);
    run.expect_code(1);
    let doc = run.json();
    let outs = outcomes(&run);
    let good = outs
        .iter()
        .find(|o| o["result"] == "issued")
        .unwrap_or_else(|| panic!("no host was issued: {doc}"));
    let hung = outs
        .iter()
        .find(|o| o["result"] == "failed")
        .unwrap_or_else(|| panic!("no host failed: {doc}"));
    assert_eq!(hung["kind"], "ca.unreachable", "{hung}");
    assert_eq!(hung["stage"], "finalize", "{hung}");
    // When the hung request reached the CA, and when the other host's files went live.
    let log = fs::read_to_string(bed.get("PROXY_LOG")).unwrap();
    let hung_at = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["step"] == "finalize" && v["fault"] == "hang")
        .and_then(|v| v["time"].as_f64())
        .expect("the proxy logged the hung finalize");
    let i = if good["host"] == "host1.example.test" {
        1
    } else {
        2
    };
    let live = fs::metadata(bed.host_etc_ssl(i).join("certs/www.pem"))
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        live < hung_at + 25.0,
        "host{i}'s certificate went live {:.1} s after the other host's finalize hung: it waited for it",
        live - hung_at
    );
    bed.assert_www_valid(i, &bed.pebble_root(), &[&format!("host{i}.example.test")]);

    let again = bed.certorch(&inv, &["--json", "run"]);
    again.expect_code(0);
    assert_eq!(again.json()["orders"], 0, "the hung order was not taken up");
    assert_eq!(count(&bed, "new-order").0, 2);
    assert_clean(&bed);
}

/// The CA failing the fetch of an interrupted order (a 500 every time) is no proof the order
/// is gone: the certificate fails as `ca.unavailable` for this run, and the order is not
/// replaced; once the CA answers, the next run takes it up.
#[test]
fn a_server_error_on_a_resumed_order_does_not_count_as_gone() {
    let (bed, inv) = bed(1);
    // Leave a validated order behind: finalize never answers.
    rules(
        &bed,
        json!([{ "step": "finalize", "fault": "hang", "times": 1, "hang": 40 }]),
    );
    run(&bed, &inv).expect_code(1);
    rules(
        &bed,
        json!([{ "step": "order", "fault": "500", "times": -1 }]),
    );
    let second = run(&bed, &inv);
    second.expect_code(1);
    let doc = second.json();
    assert_eq!(doc["orders"], 0, "the order was replaced: {doc}");
    assert_eq!(doc["outcomes"][0]["kind"], "ca.unavailable", "{doc}");
    assert_eq!(count(&bed, "new-order").0, 1);
    rules(&bed, json!([]));
    let third = run(&bed, &inv);
    third.expect_code(0);
    assert_eq!(third.json()["orders"], 0);
    assert_eq!(count(&bed, "new-order").0, 1);
    assert_clean(&bed);
}
