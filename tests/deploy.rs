//! Putting certificates into service without breaking it: nginx checks the new files, reloads,
//! and serves them (verified by a TLS handshake); a check that fails, or a reload that does not
//! take, leaves the old certificate in place and served.

mod common;

use std::process::Command;

use common::Bed;

/// What `addr:443` serves for `sni` once a reload has settled: the same fingerprint on three
/// handshakes in a row (old nginx workers may answer for a moment after a reload).
fn served(addr: &str, sni: &str) -> String {
    let start = std::time::Instant::now();
    let mut last = Vec::new();
    loop {
        last.push(handshake(addr, sni));
        let n = last.len();
        if n >= 3 && last[n - 1] == last[n - 2] && last[n - 2] == last[n - 3]
            || start.elapsed().as_secs() > 20
        {
            return last.pop().unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// SHA-256 fingerprint (lower-case hex) of what `addr:443` presents for `sni` on one handshake.
fn handshake(addr: &str, sni: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo | openssl s_client -connect {addr}:443 -servername {sni} 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
        .unwrap();
    fingerprint(&String::from_utf8_lossy(&out.stdout))
}

fn fingerprint(openssl_out: &str) -> String {
    openssl_out
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or("")
        .replace(':', "")
        .to_lowercase()
}

fn on_disk(bed: &Bed) -> String {
    fingerprint(&bed.ssh_ok(
        1,
        "openssl x509 -in /etc/ssl/certs/www.pem -noout -fingerprint -sha256",
    ))
}

fn inventory(bed: &Bed, name: &str, check: &str, reload: &str) -> std::path::PathBuf {
    let conf = bed.get("HOST1_NGINX_CONF");
    let text = format!(
        "{head}hosts:\n  host1.example.test:\n    address: {addr}\n    certs:\n      www:\n        names: [host1.example.test]\n        key: /etc/ssl/private/www.key\n        fullchain: /etc/ssl/certs/www.pem\n        check: \"{check}\"\n        reload: \"{reload}\"\n        verify_port: 443\n",
        head = bed.inventory_head(bed.get("TSIG_KEY_FILE")),
        addr = bed.host_addr(1),
        check = check.replace("CONF", conf),
        reload = reload.replace("CONF", conf),
    );
    bed.write_inventory(name, &text)
}

#[test]
fn nginx_serves_the_new_certificate_and_failures_keep_the_old_one() {
    let bed = Bed::up_with(1, &["--tls"]);
    let addr = bed.host_addr(1);
    let placeholder = served(&addr, "host1.example.test");
    assert_eq!(placeholder, on_disk(&bed));

    // A good run: checked, reloaded, verified by a handshake.
    let good = inventory(
        &bed,
        "good.yaml",
        "nginx -t -q -c CONF",
        "nginx -c CONF -s reload",
    );
    let run = bed.certorch(&good, &["--json", "run"]);
    run.expect_code(0);
    let issued = run.json()["outcomes"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(issued, placeholder);
    assert_eq!(
        served(&addr, "host1.example.test"),
        issued,
        "nginx does not serve the new certificate"
    );
    assert_eq!(on_disk(&bed), issued);

    // A check that refuses the new files: they go back, nginx keeps serving the old ones.
    let refusing = inventory(
        &bed,
        "refusing.yaml",
        "nginx -t -q -c CONF && echo 'config test failed' >&2 && false",
        "nginx -c CONF -s reload",
    );
    let run = bed.certorch(&refusing, &["--json", "issue", "host1.example.test"]);
    run.expect_code(1);
    let o = &run.json()["outcomes"][0];
    assert_eq!(o["stage"], "check", "{o}");
    let error = o["error"].as_str().unwrap();
    assert!(
        error.contains("config test failed")
            && error.ends_with("the previous files are back in place"),
        "{error}"
    );
    assert_eq!(on_disk(&bed), issued, "the refused files stayed");
    assert_eq!(served(&addr, "host1.example.test"), issued);
    bed.assert_key_matches(1, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");

    // A reload that does not take: the handshake shows the old certificate, so the new files
    // go back and the service is reloaded with them; the key still matches what is on disk.
    let inert = inventory(&bed, "inert.yaml", "nginx -t -q -c CONF", "true");
    let run = bed.certorch(&inert, &["--json", "issue", "host1.example.test"]);
    run.expect_code(1);
    let o = &run.json()["outcomes"][0];
    assert_eq!(o["stage"], "verify", "{o}");
    let error = o["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "{addr}:443 (SNI host1.example.test) serves certificate {issued}, not the new "
        )),
        "{error}"
    );
    assert!(
        error.ends_with("the previous files are back in place and the service reloaded with them"),
        "{error}"
    );
    assert_eq!(on_disk(&bed), issued);
    assert_eq!(served(&addr, "host1.example.test"), issued);
    bed.assert_key_matches(1, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");
    // nginx is still running and answering.
    bed.ssh_ok(
        1,
        &format!("nginx -t -q -c {}", bed.get("HOST1_NGINX_CONF")),
    );
}

/// HAProxy's combined PEM (key, then the full chain) is assembled on the host from the host's
/// own key: the file is exactly key + full chain, 0600, and its key matches its certificate.
#[test]
fn a_combined_pem_is_assembled_on_the_host() {
    let bed = Bed::up(1);
    let text = format!(
        "{head}hosts:\n  host1.example.test:\n    address: {addr}\n    certs:\n      lb:\n        names: [host1.example.test]\n        key: /etc/ssl/private/lb.key\n        fullchain: /etc/ssl/certs/lb.pem\n        combined: /etc/haproxy/certs/lb.pem\n",
        head = bed.inventory_head(bed.get("TSIG_KEY_FILE")),
        addr = bed.host_addr(1),
    );
    let inv = bed.write_inventory("combined.yaml", &text);
    let run = bed.certorch(&inv, &["run"]);
    run.expect_code(0);
    let key = bed.ssh_ok(1, "cat /etc/ssl/private/lb.key");
    let full = bed.ssh_ok(1, "cat /etc/ssl/certs/lb.pem");
    let combined = bed.ssh_ok(1, "cat /etc/haproxy/certs/lb.pem");
    assert_eq!(combined, format!("{key}{full}"));
    assert_eq!(
        bed.ssh_ok(1, "stat -c %a /etc/haproxy/certs/lb.pem").trim(),
        "600"
    );
    bed.assert_key_matches(1, "/etc/haproxy/certs/lb.pem", "/etc/haproxy/certs/lb.pem");
    // The key never reached the bastion.
    let needle = &common::pem_body(&key)[20..80];
    for f in common::files_under(&bed.state_dir())
        .into_iter()
        .chain(common::files_under(&bed.certorch_tmp()))
    {
        assert!(
            !String::from_utf8_lossy(&std::fs::read(&f).unwrap()).contains(needle),
            "key material in {}",
            f.display()
        );
    }
    // A renewal replaces it together with the key.
    bed.certorch(&inv, &["issue", "host1.example.test"])
        .expect_code(0);
    let key2 = bed.ssh_ok(1, "cat /etc/ssl/private/lb.key");
    assert_ne!(key, key2);
    assert!(
        bed.ssh_ok(1, "cat /etc/haproxy/certs/lb.pem")
            .starts_with(&key2)
    );
    bed.assert_key_matches(1, "/etc/haproxy/certs/lb.pem", "/etc/haproxy/certs/lb.pem");
}
