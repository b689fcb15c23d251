//! Rate-limit-aware scheduling against the real bed. Pebble enforces no rate limits: the
//! budget here is certorch's own (`acme.limits`), counted from its state. The orders window
//! is 20 s instead of 3 h so that "after the window" comes within the test.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Bed;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const WINDOW: Duration = Duration::from_secs(20);

/// Hosts 1..=6, each with two certificates (`a`: host<i>, `b`: www.host<i>): 12 in all, with a
/// budget of 5 new orders per 20 s.
fn inventory(bed: &Bed) -> PathBuf {
    two_per_host(
        bed,
        6,
        "orders_per_window: 5, orders_window: 20s",
        "schedule.yaml",
    )
}

fn time_of(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(
        v.as_str().unwrap_or_else(|| panic!("not a time: {v}")),
        &Rfc3339,
    )
    .unwrap()
}

/// `host/cert` → outcome, for the outcomes whose result is `result`.
fn with_result(doc: &Value, result: &str) -> BTreeMap<String, Value> {
    doc["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["result"] == result)
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["host"].as_str().unwrap(),
                    o["cert"].as_str().unwrap()
                ),
                o.clone(),
            )
        })
        .collect()
}

/// The `host/cert` of the outcomes whose result is `result`, in order.
fn keys_with(doc: &Value, result: &str) -> Vec<String> {
    with_result(doc, result).into_keys().collect()
}

fn ids(list: &[(usize, &str)]) -> Vec<String> {
    let mut v: Vec<String> = list
        .iter()
        .map(|(i, c)| format!("host{i}.example.test/{c}"))
        .collect();
    v.sort();
    v
}

/// Twelve certificates due and a budget of five orders: five are issued, the expired one
/// first, seven are deferred with their slot (exit 0); `plan` and `status` show the schedule;
/// the next run after the window issues the next five.
#[test]
fn a_budget_of_five_orders_issues_five_and_defers_the_rest_to_their_slot() {
    let bed = Bed::up(6);
    let inv = inventory(&bed);
    // The last certificate in the inventory has expired on its host: it jumps the queue.
    bed.ssh_ok(
        6,
        "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=www.host6.example.test \
         -addext subjectAltName=DNS:www.host6.example.test -keyout /etc/ssl/private/b.key -out /tmp/b.csr 2>/dev/null \
         && openssl x509 -req -in /tmp/b.csr -signkey /etc/ssl/private/b.key -copy_extensions copy -days -1 \
         -out /etc/ssl/certs/b.pem 2>/dev/null && rm /tmp/b.csr",
    );

    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("schedule: 5 now, 5 at ") && plan.stdout.contains(", 2 at "),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("host6.example.test/b: would issue (")
            && plan
                .stdout
                .contains("host6.example.test/a: would defer to "),
        "{}",
        plan.stdout
    );
    let plan = bed.certorch(&inv, &["--json", "plan"]).json();
    let batches: Vec<u64> = plan["schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["certificates"].as_u64().unwrap())
        .collect();
    assert_eq!(batches, [5, 5, 2], "{}", plan["schedule"]);
    assert!(plan["schedule"][0]["at"].is_null());

    let run = bed.certorch(&inv, &["--json", "run"]);
    let ran = Instant::now();
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 5, "{doc}");
    let issued = with_result(&doc, "issued");
    let deferred = with_result(&doc, "deferred");
    assert_eq!(
        issued.keys().cloned().collect::<Vec<_>>(),
        ids(&[(1, "a"), (1, "b"), (2, "a"), (2, "b"), (6, "b")]),
        "the expired one and then the first new ones in inventory order: {doc}"
    );
    assert_eq!(deferred.len(), 7, "{doc}");
    // The next five go one window after this run's orders, the last two a window later.
    let mut slots: BTreeMap<OffsetDateTime, usize> = BTreeMap::new();
    for o in deferred.values() {
        assert_eq!(o["limit"], "new orders per account", "{o}");
        *slots.entry(time_of(&o["next_slot"])).or_default() += 1;
    }
    let slots: Vec<(OffsetDateTime, usize)> = slots.into_iter().collect();
    assert_eq!(slots.len(), 2, "{slots:?}");
    assert_eq!((slots[0].1, slots[1].1), (5, 2), "{slots:?}");
    assert_eq!(
        slots[1].0 - slots[0].0,
        time::Duration::try_from(WINDOW).unwrap()
    );
    // Deferred certificates were not touched: no key made, nothing staged or written.
    for i in 3..=5 {
        for c in ["a", "b"] {
            let out = bed.ssh(i, &format!("test -e /etc/ssl/private/{c}.key"));
            assert!(!out.status.success(), "host{i}/{c}: a key was made");
        }
        bed.assert_nothing_staged(i);
    }
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());

    // status shows when each deferred certificate may be ordered.
    let status = bed.certorch(&inv, &["--json", "status"]).json();
    let mut shown = 0;
    for l in status.as_array().unwrap() {
        let id = format!(
            "{}/{}",
            l["host"].as_str().unwrap(),
            l["cert"].as_str().unwrap()
        );
        match deferred.get(&id) {
            Some(o) => {
                shown += 1;
                assert_eq!(time_of(&l["next_slot"]), time_of(&o["next_slot"]), "{l}");
                assert!(
                    l["last_result"]
                        .as_str()
                        .unwrap()
                        .starts_with("deferred until "),
                    "{l}"
                );
            }
            None => assert!(l["next_slot"].is_null(), "{l}"),
        }
    }
    assert_eq!(shown, 7);
    let text = bed.certorch(&inv, &["status"]);
    assert!(
        text.stdout
            .contains("host3.example.test/a  host3.example.test  deferred until "),
        "{}",
        text.stdout
    );

    // After the window (counted from the end of the run, which opened the orders): the next five.
    std::thread::sleep((WINDOW + Duration::from_secs(1)).saturating_sub(ran.elapsed()));
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 5, "{doc}");
    assert_eq!(
        keys_with(&doc, "issued"),
        ids(&[(3, "a"), (3, "b"), (4, "a"), (4, "b"), (5, "a")]),
        "{doc}"
    );
    assert_eq!(
        keys_with(&doc, "deferred"),
        ids(&[(5, "b"), (6, "a")]),
        "{doc}"
    );
    assert_eq!(with_result(&doc, "current").len(), 5, "{doc}");
    assert!(with_result(&doc, "failed").is_empty(), "{doc}");
    bed.assert_key_matches(6, "/etc/ssl/certs/b.pem", "/etc/ssl/private/b.key");
}

/// A budget of one order: the run orders host1 and defers host2, and is killed while it waits
/// for DNS. The next run takes host1's order up although the budget is spent (a resumed order
/// costs nothing new and is never deferred), and host2 stays deferred.
#[test]
fn a_resumed_order_is_not_deferred() {
    let bed = Bed::up(2);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let text = with_limits(head, "orders_per_window: 1, orders_window: 1h") + &bed.hosts_yaml(2);
    let inv = bed.write_inventory("one.yaml", &text);
    // A name server that never answers holds the run in its wait for propagation.
    bed.add_dead_signing_ns();
    let mut child = bed.certorch_until_published(&inv, &["run"], "host1.example.test.signing.test");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let orders = bed.state_value("SELECT count(*) FROM orders");
    assert_eq!(orders, "1", "only host1 was ordered");

    bed.remove_dead_signing_ns();
    let next = bed.certorch(&inv, &["--json", "run"]);
    next.expect_code(0);
    let doc = next.json();
    assert_eq!(
        doc["orders"], 0,
        "the killed run's order was taken up: {doc}"
    );
    let issued = with_result(&doc, "issued");
    assert_eq!(
        issued.keys().cloned().collect::<Vec<_>>(),
        ids(&[(1, "www")]),
        "{doc}"
    );
    assert!(
        issued["host1.example.test/www"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("an interrupted run left it "),
        "{doc}"
    );
    assert_eq!(keys_with(&doc, "deferred"), ids(&[(2, "www")]), "{doc}");
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
}

/// The inventory head `head` with `limits` (the inventory's `acme.limits` flow map) under `acme`.
fn with_limits(head: String, limits: &str) -> String {
    let contact = "  contact: [mailto:ops@example.test]\n";
    assert!(
        head.contains(contact),
        "the bed's inventory head changed: {head}"
    );
    head.replacen(contact, &format!("{contact}  limits: {{{limits}}}\n"), 1)
}

/// Hosts 1..=n, each with certificates `a` (host<i>) and `b` (www.host<i>), all under the
/// registered domain example.test, within `limits` (the inventory's `acme.limits` flow map).
fn two_per_host(bed: &Bed, n: usize, limits: &str, file: &str) -> PathBuf {
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let head = with_limits(head, limits);
    let mut text = head + "hosts:\n";
    for i in 1..=n {
        text.push_str(&format!(
            "  {}:\n    address: {}\n    certs:\n",
            bed.host_name(i),
            bed.host_addr(i)
        ));
        for (label, name) in [
            ("a", format!("host{i}.example.test")),
            ("b", format!("www.host{i}.example.test")),
        ] {
            text.push_str(&format!(
                "      {label}:\n        names: [{name}]\n        key: /etc/ssl/private/{label}.key\n        fullchain: /etc/ssl/certs/{label}.pem\n        reload: \"true\"\n"
            ));
        }
    }
    bed.write_inventory(file, &text)
}

const WEEK: time::Duration = time::Duration::days(7);

/// Whole seconds, as certorch records and schedules times.
fn whole(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap()
}

/// A budget of three certificates per registered domain per week and four new certificates
/// under example.test: three are issued in inventory order, the fourth is deferred a week
/// (exit 0), and `status` shows it. A second run counts the three from the state and keeps it
/// deferred a week after their issuance, ordering nothing.
#[test]
fn a_registered_domain_budget_defers_the_rest_for_a_week() {
    let bed = Bed::up(2);
    let inv = two_per_host(&bed, 2, "certs_per_domain_per_week: 3", "per-domain.yaml");

    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout.contains("schedule: 3 now, 1 at ")
            && plan
                .stdout
                .contains("host2.example.test/b: would defer to ")
            && plan
                .stdout
                .contains("certificates per registered domain per 7 days"),
        "{}",
        plan.stdout
    );

    let before = whole(OffsetDateTime::now_utc());
    let run = bed.certorch(&inv, &["--json", "run"]);
    let after = OffsetDateTime::now_utc();
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 3, "{doc}");
    assert_eq!(
        keys_with(&doc, "issued"),
        ids(&[(1, "a"), (1, "b"), (2, "a")]),
        "{doc}"
    );
    let deferred = with_result(&doc, "deferred");
    assert_eq!(
        deferred.keys().cloned().collect::<Vec<_>>(),
        ids(&[(2, "b")]),
        "{doc}"
    );
    let o = &deferred["host2.example.test/b"];
    assert_eq!(
        o["limit"], "certificates per registered domain per 7 days",
        "{o}"
    );
    let slot = time_of(&o["next_slot"]);
    assert!(
        slot >= before + WEEK && slot <= after + WEEK + time::Duration::seconds(1),
        "a week after this run's issuance: {slot} ({before} .. {after})"
    );
    // Nothing made for it on the host.
    let out = bed.ssh(2, "test -e /etc/ssl/private/b.key");
    assert!(!out.status.success(), "host2/b: a key was made");
    bed.assert_nothing_staged(2);

    let status = bed.certorch(&inv, &["--json", "status"]).json();
    let line = status
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["host"] == "host2.example.test" && l["cert"] == "b")
        .unwrap_or_else(|| panic!("{status}"))
        .clone();
    assert_eq!(time_of(&line["next_slot"]), slot, "{line}");
    let text = bed.certorch(&inv, &["status"]);
    assert!(
        text.stdout.contains(&format!(
            "host2.example.test/b  www.host2.example.test  deferred until {}",
            o["next_slot"].as_str().unwrap()
        )),
        "{}",
        text.stdout
    );

    // The next run reads the three issuances from the state: still no room, nothing ordered.
    let again = bed.certorch(&inv, &["--json", "run"]);
    again.expect_code(0);
    let doc = again.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    assert_eq!(with_result(&doc, "current").len(), 3, "{doc}");
    let o = &with_result(&doc, "deferred")["host2.example.test/b"];
    assert_eq!(
        o["limit"], "certificates per registered domain per 7 days",
        "{o}"
    );
    // The first run's slot counted from when it decided, rounded up to the second; this one
    // from when the certificates were recorded as issued, a little later in that run but kept
    // to the whole second below: the two may differ by that rounding either way.
    let again_slot = time_of(&o["next_slot"]);
    assert!(
        again_slot + time::Duration::seconds(1) >= slot
            && again_slot <= after + WEEK + time::Duration::seconds(1),
        "{again_slot} vs {slot} ({after})"
    );
}

/// A budget of one certificate per name set per week: the first run issues host1's `www`;
/// `certorch issue host1` asks for the same names again and is deferred a week by the
/// duplicate-certificate limit, exit 0, with a note naming the limit, the time and the command
/// to repeat then. The certificate and key on the host are left as they were.
#[test]
fn a_duplicate_budget_defers_a_forced_reissue() {
    let bed = Bed::up(1);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let text = with_limits(head, "duplicates_per_week: 1") + &bed.hosts_yaml(1);
    let inv = bed.write_inventory("duplicates.yaml", &text);

    let before = whole(OffsetDateTime::now_utc());
    let first = bed.certorch(&inv, &["--json", "run"]);
    let after = OffsetDateTime::now_utc();
    first.expect_code(0);
    assert_eq!(first.json()["orders"], 1, "{}", first.stdout);
    let cert = bed.ssh_ok(
        1,
        "openssl x509 -in /etc/ssl/certs/www.pem -noout -fingerprint -sha256",
    );
    let key = bed.ssh_ok(1, "openssl pkey -in /etc/ssl/private/www.key -pubout");

    let plan = bed.certorch(&inv, &["plan"]);
    plan.expect_code(0);
    assert!(
        plan.stdout
            .contains("host1.example.test/www: nothing to do until "),
        "not due, so not scheduled: {}",
        plan.stdout
    );

    // Without a terminal and without -v the table is not printed, but the note is: the
    // operator asked for something that did not happen.
    let issue = bed.certorch(&inv, &["issue", "host1.example.test"]);
    issue.expect_code(0);
    assert!(
        issue.stderr.contains(
            "note: host1.example.test/www: the reissue is deferred by the CA's rate limit \
             (duplicate certificates (same names) per 7 days) until "
        ) && issue
            .stderr
            .contains("run `certorch issue host1.example.test/www` again then"),
        "the note says which limit, until when, and how to ask again: {}",
        issue.stderr
    );
    let verbose = bed.certorch(&inv, &["-v", "issue", "host1.example.test/www"]);
    verbose.expect_code(0);
    assert!(
        verbose
            .stdout
            .contains("host1.example.test/www: deferred (issued on request; next slot ")
            && verbose
                .stdout
                .contains("(duplicate certificates (same names) per 7 days)"),
        "{}",
        verbose.stdout
    );
    let json = bed.certorch(&inv, &["--json", "issue", "host1.example.test"]);
    json.expect_code(0);
    let doc = json.json();
    assert_eq!(doc["orders"], 0, "{doc}");
    let o = &with_result(&doc, "deferred")["host1.example.test/www"];
    assert_eq!(
        o["limit"], "duplicate certificates (same names) per 7 days",
        "{o}"
    );
    assert_eq!(o["reason"], "issued on request", "{o}");
    let slot = time_of(&o["next_slot"]);
    assert!(
        slot >= before + WEEK && slot <= after + WEEK + time::Duration::seconds(1),
        "a week after the first issuance: {slot} ({before} .. {after})"
    );
    // Nothing changed on the host, nothing left staged.
    assert_eq!(
        bed.ssh_ok(
            1,
            "openssl x509 -in /etc/ssl/certs/www.pem -noout -fingerprint -sha256"
        ),
        cert
    );
    assert_eq!(
        bed.ssh_ok(1, "openssl pkey -in /etc/ssl/private/www.key -pubout"),
        key
    );
    bed.assert_nothing_staged(1);
    assert_eq!(bed.state_value("SELECT count(*) FROM orders"), "1");
}

/// Writes the fault proxy's control file (atomically: it re-reads the file when it changes).
fn proxy_control(bed: &Bed, doc: &Value) {
    let path = PathBuf::from(bed.get("PROXY_CONTROL"));
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// The `replaces` of each new order that reached the proxy, in order (null: none).
fn new_orders_replacing(bed: &Bed) -> Vec<Value> {
    std::fs::read_to_string(bed.get("PROXY_LOG"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["step"] == "new-order" && v["method"] == "POST")
        .map(|v| v["replaces"].clone())
        .collect()
}

/// A CA with renewal information (the fault proxy adds ARI to Pebble) and a budget of one order
/// per 30 s. The first run issues host1 and defers host2. The CA then asks for host1's renewal:
/// the second run renews it at once with an order naming what it replaces (the budget is spent,
/// but the renewal is exempt), and host2 stays deferred. Once the first order has left the
/// window, the third run issues host2 although the renewal's order is still in it: a past ARI
/// renewal uses no budget.
#[test]
fn a_past_ari_renewal_uses_no_budget() {
    let bed = Bed::up_env(2, &["--faultproxy"], &[("PEBBLE_WFE_NONCEREJECT", "0")]);
    let window = time::Duration::seconds(30);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let head = head.replacen(bed.get("PEBBLE_DIRECTORY"), bed.get("PROXY_DIRECTORY"), 1);
    let head = with_limits(head, "orders_per_window: 1, orders_window: 30s");
    let inv = bed.write_inventory("ari.yaml", &(head + &bed.hosts_yaml(2)));

    let first = bed.certorch(&inv, &["--json", "run"]);
    first.expect_code(0);
    let doc = first.json();
    assert_eq!(keys_with(&doc, "issued"), ids(&[(1, "www")]), "{doc}");
    assert_eq!(keys_with(&doc, "deferred"), ids(&[(2, "www")]), "{doc}");

    // The CA's window for every certificate has passed: renew now. A few seconds on, so the
    // renewal's order is clearly younger than the first.
    std::thread::sleep(Duration::from_secs(10));
    proxy_control(
        &bed,
        &serde_json::json!({"rules": [], "ari": {"start": -120, "end": -60}}),
    );
    let second = bed.certorch(&inv, &["--json", "run"]);
    second.expect_code(0);
    let doc = second.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    let issued = with_result(&doc, "issued");
    assert_eq!(
        issued.keys().cloned().collect::<Vec<_>>(),
        ids(&[(1, "www")]),
        "the renewal goes although the budget is spent: {doc}"
    );
    assert!(
        issued["host1.example.test/www"]["reason"]
            .as_str()
            .unwrap()
            .contains("renewal window"),
        "{doc}"
    );
    let deferred = with_result(&doc, "deferred");
    assert_eq!(
        deferred["host2.example.test/www"]["limit"], "new orders per account",
        "{doc}"
    );
    let replacing = new_orders_replacing(&bed);
    assert_eq!(replacing.len(), 2, "{replacing:?}");
    assert!(replacing[0].is_null(), "{replacing:?}");
    let id = replacing[1]
        .as_str()
        .expect("the renewal names what it replaces");
    // The state recorded it with the order.
    let rows = bed.state_query("SELECT created_at, replaces FROM orders ORDER BY created_at");
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[0][1].as_str(), rows[1][1].as_str()),
        ("", id),
        "{rows:?}"
    );
    let (t1, t2) = (
        OffsetDateTime::parse(&rows[0][0], &Rfc3339).unwrap(),
        OffsetDateTime::parse(&rows[1][0], &Rfc3339).unwrap(),
    );

    // host1's new certificate is not due again; the first order leaves the window.
    proxy_control(
        &bed,
        &serde_json::json!({"rules": [], "ari": {"start": 86400, "end": 172800}}),
    );
    let wait = (t1 + window + time::Duration::seconds(1)) - OffsetDateTime::now_utc();
    if wait.is_positive() {
        std::thread::sleep(wait.unsigned_abs());
    }
    let start = OffsetDateTime::now_utc();
    let third = bed.certorch(&inv, &["--json", "run"]);
    third.expect_code(0);
    assert!(
        start < t2 + window,
        "the renewal's order must still be in the window for this test to tell (the bed was too slow)"
    );
    let doc = third.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    assert_eq!(
        keys_with(&doc, "issued"),
        ids(&[(2, "www")]),
        "the renewal's order, still in the window, did not count: {doc}"
    );
    assert_eq!(keys_with(&doc, "current"), ids(&[(1, "www")]), "{doc}");
    assert_eq!(bed.signing_zone_txt(), Vec::<String>::new());
}

/// A CA that offers renewal information but drops the `replaces` of the orders it creates
/// (RFC 9773 §5 asks it to reflect it; instant-acme refuses such an order). A renewal is then
/// ordered again as a plain new order, once, and not retried as a broken exchange (each retry
/// created another order); the run says so, and records the renewal as the plain order it is,
/// so the rate-limit budget counts it.
#[test]
fn a_ca_that_drops_replaces_costs_one_plain_order_more() {
    let bed = Bed::up_env(2, &["--faultproxy"], &[("PEBBLE_WFE_NONCEREJECT", "0")]);
    let head = bed.inventory_head(bed.get("TSIG_KEY_FILE"));
    let head = head.replacen(bed.get("PEBBLE_DIRECTORY"), bed.get("PROXY_DIRECTORY"), 1);
    let inv = bed.write_inventory("ari.yaml", &(head + &bed.hosts_yaml(2)));
    proxy_control(
        &bed,
        &serde_json::json!({"rules": [], "ari": {"start": 86400, "end": 172800, "reflect": false}}),
    );
    let first = bed.certorch(&inv, &["--json", "run"]);
    first.expect_code(0);
    assert_eq!(
        keys_with(&first.json(), "issued"),
        ids(&[(1, "www"), (2, "www")])
    );
    assert_eq!(new_orders_replacing(&bed).len(), 2);

    proxy_control(
        &bed,
        &serde_json::json!({"rules": [], "ari": {"start": -120, "end": -60, "reflect": false}}),
    );
    let second = bed.certorch(&inv, &["--json", "run"]);
    second.expect_code(0);
    let doc = second.json();
    assert_eq!(
        keys_with(&doc, "issued"),
        ids(&[(1, "www"), (2, "www")]),
        "{doc}"
    );
    let asked: Vec<Value> = new_orders_replacing(&bed).split_off(2);
    let named = asked.iter().filter(|r| r.is_string()).count();
    let plain = asked.iter().filter(|r| r.is_null()).count();
    // The first renewal to be ordered names what it replaces and costs an order more; a
    // renewal ordered after that names nothing. Both may be in flight at once.
    assert!((1..=2).contains(&named), "{asked:?}");
    assert_eq!(plain, 2, "one plain order per renewal: {asked:?}");
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("did not reflect its `replaces`"))
            .count(),
        named,
        "{warnings:?}"
    );
    assert!(
        warnings.iter().all(|w| !w.contains("cannot reach")),
        "{warnings:?}"
    );
    // Recorded as the plain orders they are: the budget counts them.
    let rows = bed.state_query("SELECT url, replaces FROM orders");
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r[1].is_empty()), "{rows:?}");
}
