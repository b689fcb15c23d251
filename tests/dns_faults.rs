//! DNS failing around a run: the primary that takes certorch's updates down before it publishes,
//! down or frozen after it published, a name server that never catches up, the resolver down.
//! Each run says what happened with the documented kind and hint, no order is left pending,
//! and once the fault clears the next run withdraws whatever was left and issues.

mod common;

use std::path::PathBuf;

use common::{Bed, Run, assert_no_key_on_bastion};
use serde_json::Value;

/// The standard inventory for hosts 1..=n with `dns.propagation_timeout` set to `timeout`.
fn inventory(bed: &Bed, n: usize, timeout: &str) -> PathBuf {
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    assert!(head.contains("propagation_timeout: 60s"));
    let head = head.replace(
        "propagation_timeout: 60s",
        &format!("propagation_timeout: {timeout}"),
    );
    bed.write_inventory("dns-faults.yaml", &(head + &bed.hosts_yaml(n)))
}

fn outcomes(run: &Run) -> Vec<Value> {
    run.json()["outcomes"].as_array().unwrap().clone()
}

/// Every outcome of `run` failed at `stage` with `kind`; returns them.
fn all_failed(run: &Run, stage: &str, kind: &str) -> Vec<Value> {
    let o = outcomes(run);
    assert!(!o.is_empty());
    for x in &o {
        assert_eq!(x["result"], "failed", "{x}\n{}", run.stderr);
        assert_eq!(x["stage"], stage, "{x}");
        assert_eq!(x["kind"], kind, "{x}");
    }
    o
}

/// The fault has cleared: a run issues every certificate, and nothing is left behind — no TXT
/// record in the signing zone, nothing staged on a host, no key byte on the bastion.
fn next_run_is_clean(bed: &Bed, inv: &std::path::Path, n: usize, first: &Run) -> Run {
    let run = bed.certorch(inv, &["-v", "--json", "run"]);
    run.expect_code(0);
    // Every host serves a valid certificate (checked below): issued now, or in the faulty run.
    for o in outcomes(&run) {
        assert!(
            o["result"] == "issued" || o["result"] == "current",
            "{o}\n{}",
            run.stderr
        );
    }
    assert!(
        outcomes(&run).iter().any(|o| o["result"] == "issued"),
        "{}",
        run.stdout
    );
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    let root = bed.pebble_root();
    for i in 1..=n {
        bed.assert_nothing_staged(i);
        bed.assert_www_valid(i, &root, &[&format!("host{i}.example.test")]);
    }
    assert_no_key_on_bastion(bed, n, "/etc/ssl/private/www.key", &[first, &run]);
    run
}

/// The names certorch publishes at for the standard certificates of hosts 1..=n.
fn signing_names(n: usize) -> Vec<String> {
    (1..=n)
        .flat_map(|i| {
            [
                format!("host{i}.example.test.signing.test"),
                format!("www.host{i}.example.test.signing.test"),
            ]
        })
        .collect()
}

/// The TXT records certorch published on the primary, by name.
fn published(bed: &Bed, n: usize) -> Vec<(String, String)> {
    signing_names(n)
        .into_iter()
        .flat_map(|name| {
            bed.txt(&name)
                .into_iter()
                .map(move |v| (name.clone(), v))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Takes the second name server out of the signing zone's NS set (the lag is fixed by
/// removing the server), and waits until the resolver has forgotten it.
fn drop_ns2(bed: &Bed) {
    bed.admin_update("update delete signing.test. NS ns2.signing.test.");
    bed.wait_resolver_forgets("signing.test", "NS", "ns2");
}

/// The primary is down before the run: the probe update before any order is refused, so no
/// certificate is ordered; a certificate that needs no DNS is still made.
#[test]
fn the_primary_down_before_publishing_opens_no_order() {
    let bed = Bed::up(2);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let mut text = head + &bed.hosts_yaml(2);
    text.push_str(
        r#"      selfsigned:
        issuer: self-signed
        names: [host2.example.test]
        key: /etc/ssl/private/self.key
        cert: /etc/ssl/certs/self.crt
"#,
    );
    let inv = bed.write_inventory("primary-down.yaml", &text);
    bed.stop_daemon("named");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    let bind = bed.get("BIND_ADDR");
    let o = outcomes(&run);
    assert_eq!(o.len(), 3, "{doc}");
    for x in o.iter().filter(|x| x["cert"] == "www") {
        assert_eq!(x["result"], "failed", "{x}");
        assert_eq!(x["stage"], "preflight", "{x}");
        assert_eq!(x["kind"], "dns.unreachable", "{x}");
        let error = x["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!(
                "cannot send the update for zone signing.test. (key certorch) to {bind}:53: "
            )) && error.contains("refused"),
            "{error}"
        );
        let hint = x["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!("check that {bind}:53 is reachable")),
            "{hint}"
        );
    }
    let own = o.iter().find(|x| x["cert"] == "selfsigned").unwrap();
    assert_eq!(own["result"], "issued", "{own}");
    for i in 1..=2 {
        bed.assert_nothing_staged(i);
        let left = bed.ssh_ok(i, "ls -a /etc/ssl/private | grep -c www || true");
        assert_eq!(left.trim(), "0", "host{i} got a key for nothing");
    }

    bed.start_daemon("named");
    next_run_is_clean(&bed, &inv, 2, &run);
}

/// The primary goes down after it published and the name servers served the values (held in
/// the propagation wait by a second name server that has not caught up): the CA cannot look the
/// values up, the withdrawal is refused. The records stay, recorded in the state; once the
/// primary is back, the next run withdraws them before anything else, then issues.
#[test]
fn the_primary_down_between_publish_and_withdraw_is_repaired_by_the_next_run() {
    primary_lost_after_publishing(false);
}

/// As above, but the primary is frozen (SIGSTOP) during the propagation wait: queries and the
/// withdrawal time out rather than being refused. Once it runs again, the next run withdraws
/// what was left and issues.
#[test]
fn the_primary_frozen_during_the_wait_is_repaired_by_the_next_run() {
    primary_lost_after_publishing(true);
}

fn primary_lost_after_publishing(freeze: bool) {
    let bed = Bed::up_with(2, &["--second-ns"]);
    let inv = inventory(&bed, 2, "30s");
    let mut live = bed.certorch_live(&inv, &["-v", "--json", "run"]);
    // The first poll: the primary serves every value, the second server (which only the bed's
    // admin key updates) none, so certorch waits for it until the test copies them over.
    live.wait_for_line("propagation: 1/2 name servers serve every value", 60);
    let records = published(&bed, 2);
    assert_eq!(records.len(), 4, "{records:?}");
    let frozen = if freeze {
        Some(bed.freeze("named"))
    } else {
        bed.stop_daemon("named");
        None
    };
    bed.copy_to_ns2(&records);
    let run = live.finish(120);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 2, "{doc}");
    let resolver = bed.get("RESOLVER_ADDR");
    for o in all_failed(&run, "validate", "ca.unauthorized") {
        let error = o["error"].as_str().unwrap();
        assert!(
            error.contains("Error retrieving TXT records for DNS challenge"),
            "{error}"
        );
        let hint = o["hint"].as_str().unwrap();
        assert!(
            hint.starts_with("the CA could not see the TXT record: ")
                && hint.contains(&format!(
                    "the resolver {resolver}:53 cannot look up host{}.example.test.signing.test. now either (",
                    &o["host"].as_str().unwrap()[4..5]
                ))
                && hint.contains("a name server of signing.test. may be down or not answering"),
            "{hint}"
        );
    }
    let bind = bed.get("BIND_ADDR");
    let warnings = doc["warnings"].to_string();
    let why = if freeze {
        "no answer within 5s"
    } else {
        "refused"
    };
    assert!(
        warnings.contains(&format!(
            "could not remove 4 TXT record(s) from signing.test.: cannot send the update for zone signing.test. (key certorch) to {bind}:53: "
        )) && warnings.contains(why)
            && warnings.contains("the next run retries"),
        "{warnings}"
    );
    // The state keeps every record it could not withdraw, for the next run.
    let mut want: Vec<String> = records.iter().map(|(_, v)| v.clone()).collect();
    want.sort();
    let mut kept: Vec<String> = bed
        .state_query("SELECT value FROM txt_records")
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    kept.sort();
    assert_eq!(kept, want);
    match frozen {
        // A frozen server still had the withdrawal queued on its socket: once thawed it may
        // apply it, so the zone is checked only after the next run.
        Some(f) => f.thaw(),
        None => {
            bed.start_daemon("named");
            // Down, it got nothing: the records are still served.
            let mut left = bed.signing_zone_txt();
            left.sort();
            assert_eq!(left, want);
        }
    }
    for i in 1..=2 {
        bed.assert_nothing_staged(i);
    }

    drop_ns2(&bed);
    let next = next_run_is_clean(&bed, &inv, 2, &run);
    assert!(
        next.stderr
            .contains("repair: withdrawing 4 TXT record(s) a previous run left"),
        "{}",
        next.stderr
    );
}

/// A second name server never gets the values: the propagation wait ends at
/// `dns.propagation_timeout` with the server named, the orders are given up, the values
/// withdrawn. With the server out of the NS set, the next run issues.
#[test]
fn a_name_server_that_never_catches_up_fails_the_wait_and_names_it() {
    let bed = Bed::up_with(2, &["--second-ns"]);
    let inv = inventory(&bed, 2, "4s");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 2, "{doc}");
    let ns2 = bed.get("NS2_ADDR");
    for o in all_failed(&run, "wait", "dns.not_propagated") {
        let error = o["error"].as_str().unwrap();
        assert!(
            error.starts_with("records are not on every name server after 4s: ")
                && error.contains(&format!("{ns2}:53 lacks 4 value(s) at 4 name(s): "))
                && !error.contains(bed.get("BIND_ADDR")),
            "{error}"
        );
        let hint = o["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!("{ns2}:53 does not receive the zone's changes")),
            "{hint}"
        );
    }
    assert_eq!(doc["warnings"], serde_json::json!([]), "{doc}");
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    for i in 1..=2 {
        bed.assert_nothing_staged(i);
    }

    drop_ns2(&bed);
    next_run_is_clean(&bed, &inv, 2, &run);
}

/// The resolver certorch asks (`dns.resolver`) is down: the CNAME lookups before any order
/// fail, naming the resolver; nothing is ordered or published.
#[test]
fn the_resolver_down_opens_no_order() {
    let bed = Bed::up(2);
    let inv = inventory(&bed, 2, "30s");
    bed.stop_daemon("unbound");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    let resolver = bed.get("RESOLVER_ADDR");
    for o in all_failed(&run, "preflight", "dns.unreachable") {
        let error = o["error"].as_str().unwrap();
        assert!(
            error.starts_with(&format!(
                "looking up _acme-challenge.host{}",
                &o["host"].as_str().unwrap()[4..5]
            )) && error.contains(&format!("the resolver {resolver}:53")),
            "{error}"
        );
        let hint = o["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!("{resolver}:53")) && hint.contains("dns.resolver"),
            "{hint}"
        );
    }
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    for i in 1..=2 {
        bed.assert_nothing_staged(i);
    }

    bed.start_daemon("unbound");
    next_run_is_clean(&bed, &inv, 2, &run);
}

/// The primary's update-policy refuses one name (www.host2's target): the run's batch is
/// refused as a whole, so each order is published on its own; host2's certificate fails at
/// publish with the server's answer, host1's is issued, nothing is left. Once the policy lets
/// the name in, the next run issues host2's.
#[test]
fn an_update_refused_for_one_name_fails_only_its_certificate() {
    let bed = Bed::up(2);
    let conf = bed.dir.join("bind/named.conf");
    let open = std::fs::read_to_string(&conf).unwrap();
    let grant = "update-policy { grant certorch zonesub TXT;";
    assert!(open.contains(grant), "{open}");
    let closed = open.replace(
        grant,
        "update-policy { deny certorch name www.host2.example.test.signing.test. TXT; grant certorch zonesub TXT;",
    );
    bed.stop_daemon("named");
    std::fs::write(&conf, closed).unwrap();
    bed.start_daemon("named");
    let inv = inventory(&bed, 2, "30s");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(1);
    let doc = run.json();
    assert_eq!(doc["orders"], 2, "{doc}");
    let o = outcomes(&run);
    let one = o
        .iter()
        .find(|x| x["host"] == "host1.example.test")
        .unwrap();
    assert_eq!(one["result"], "issued", "{doc}");
    let two = o
        .iter()
        .find(|x| x["host"] == "host2.example.test")
        .unwrap();
    assert_eq!(two["result"], "failed", "{two}");
    assert_eq!(two["stage"], "publish", "{two}");
    assert_eq!(two["kind"], "dns.update_refused", "{two}");
    let bind = bed.get("BIND_ADDR");
    assert_eq!(
        two["error"],
        format!("update refused by {bind}:53 for zone signing.test. (key certorch): REFUSED"),
        "{two}"
    );
    assert_eq!(
        two["hint"],
        "the server does not let key `certorch` update TXT records in signing.test.: check its update-policy / allow-update for the zone",
        "{two}"
    );
    assert_eq!(doc["warnings"], serde_json::json!([]), "{doc}");
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new(), "TXT left");
    let kept = bed.state_value("SELECT count(*) FROM txt_records");
    assert_eq!(
        kept, "0",
        "the state keeps records that were never published"
    );
    for i in 1..=2 {
        bed.assert_nothing_staged(i);
    }
    bed.assert_www_valid(1, &bed.pebble_root(), &["host1.example.test"]);

    bed.stop_daemon("named");
    std::fs::write(&conf, open).unwrap();
    bed.start_daemon("named");
    next_run_is_clean(&bed, &inv, 2, &run);
}
