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
        "{head}hosts:\n  host1.example.test:\n    address: {addr}\n    certs:\n      lb:\n        names: [host1.example.test]\n        key: /etc/ssl/private/lb.key\n        fullchain: /etc/ssl/certs/lb.pem\n        combined: /etc/ssl/private/lb-combined.pem\n",
        head = bed.inventory_head(bed.get("TSIG_KEY_FILE")),
        addr = bed.host_addr(1),
    );
    let inv = bed.write_inventory("combined.yaml", &text);
    let run = bed.certorch(&inv, &["run"]);
    run.expect_code(0);
    let key = bed.ssh_ok(1, "cat /etc/ssl/private/lb.key");
    let full = bed.ssh_ok(1, "cat /etc/ssl/certs/lb.pem");
    let combined = bed.ssh_ok(1, "cat /etc/ssl/private/lb-combined.pem");
    assert_eq!(combined, format!("{key}{full}"));
    assert_eq!(
        bed.ssh_ok(1, "stat -c %a /etc/ssl/private/lb-combined.pem")
            .trim(),
        "600"
    );
    bed.assert_key_matches(
        1,
        "/etc/ssl/private/lb-combined.pem",
        "/etc/ssl/private/lb-combined.pem",
    );
    // The key never reached the bastion.
    let needle = &common::pem_body(&key)[20..80];
    for f in bed
        .state_files()
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
        bed.ssh_ok(1, "cat /etc/ssl/private/lb-combined.pem")
            .starts_with(&key2)
    );
    bed.assert_key_matches(
        1,
        "/etc/ssl/private/lb-combined.pem",
        "/etc/ssl/private/lb-combined.pem",
    );
}

/// SHA-256 fingerprint of what `addr:port` presents for `sni`, or "" when the handshake fails.
/// openssl completes a handshake only when the server proves it holds the certificate's key.
fn handshake_on(addr: &str, port: u16, sni: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo | openssl s_client -connect {addr}:{port} -servername {sni} 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
        .unwrap();
    fingerprint(&String::from_utf8_lossy(&out.stdout))
}

/// Writes `name`: the standard head, host 1 alone with `host_lines` (indented four spaces,
/// may be empty) and `certs` (from [`cert_block`]).
fn one_host(bed: &Bed, name: &str, host_lines: &str, certs: &str) -> std::path::PathBuf {
    let text = format!(
        "{head}hosts:\n  host1.example.test:\n    address: {addr}\n{host_lines}    certs:\n{certs}",
        head = bed.inventory_head(bed.get("TSIG_KEY_FILE")),
        addr = bed.host_addr(1),
    );
    bed.write_inventory(name, &text)
}

/// The fingerprint a run's `--json` reports for certificate `cert`.
fn fingerprint_of(run: &common::Run, cert: &str) -> String {
    run.json()["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["cert"] == cert)
        .unwrap_or_else(|| panic!("no outcome for {cert}"))["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("{cert} was not issued: {}", run.json()))
        .to_string()
}

/// One certificate entry under `certs:`, `body` one setting per line.
fn cert_block(label: &str, body: &str) -> String {
    let mut s = format!("      {label}:\n");
    for line in body.lines() {
        s.push_str(&format!("        {line}\n"));
    }
    s
}

/// The built-in nginx playbook (its own check, reload and verify) deploys; handshakes made
/// all through a renewal each complete (the server holds the key of what it presents) and show
/// the old or the new certificate, never anything else; `reuse_key` keeps the key.
#[test]
fn the_nginx_playbook_renews_without_a_mismatch_and_reuse_key_keeps_the_key() {
    let bed = Bed::up_with(1, &["--tls"]);
    let addr = bed.host_addr(1);
    let placeholder = served(&addr, "host1.example.test");
    let write = |name: &str, extra: &str| {
        let body = format!(
            "names: [host1.example.test]\nplaybook: nginx\nfullchain: /etc/ssl/certs/www.pem\n{extra}"
        );
        one_host(&bed, name, "", &cert_block("www", &body))
    };
    let inv = write("nginx.yaml", "");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let first = fingerprint_of(&run, "www");
    assert_ne!(first, placeholder);
    assert_eq!(served(&addr, "host1.example.test"), first);
    bed.assert_key_matches(1, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");

    // A renewal with a new key while a client keeps connecting.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        let addr = addr.clone();
        std::thread::spawn(move || {
            // Until the run is over and at least 20 handshakes are made: a fast renewal
            // leaves few inside it, so the window is checked below to span the swap.
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || seen.len() < 20 {
                seen.push(handshake_on(&addr, 443, "host1.example.test"));
            }
            seen
        })
    };
    let key_before = bed.ssh_ok(1, "cat /etc/ssl/private/www.key");
    let run = bed.certorch(&inv, &["--json", "issue", "host1.example.test"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = prober.join().unwrap();
    run.expect_code(0);
    let second = fingerprint_of(&run, "www");
    // The probes span the swap: the old certificate first, the new one last.
    assert_eq!(seen.first(), Some(&first), "{seen:?}");
    assert_eq!(seen.last(), Some(&second), "{seen:?}");
    for f in &seen {
        assert!(
            f == &first || f == &second,
            "a handshake during the renewal failed or showed something else: `{f}` (old {first}, new {second})"
        );
    }
    assert_eq!(served(&addr, "host1.example.test"), second);
    assert_ne!(bed.ssh_ok(1, "cat /etc/ssl/private/www.key"), key_before);
    bed.assert_key_matches(1, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");

    // reuse_key: the same key under the next certificate.
    let pinned = write("pinned.yaml", "reuse_key: true\n");
    let key_pinned = bed.ssh_ok(1, "cat /etc/ssl/private/www.key");
    let run = bed.certorch(&pinned, &["--json", "issue", "host1.example.test"]);
    run.expect_code(0);
    let third = fingerprint_of(&run, "www");
    assert_ne!(third, second);
    assert_eq!(bed.ssh_ok(1, "cat /etc/ssl/private/www.key"), key_pinned);
    assert_eq!(served(&addr, "host1.example.test"), third);
}

/// The built-in HAProxy playbook: the combined PEM is assembled on the host, `haproxy -c`
/// checks it, SIGUSR2 reloads the master-worker, and the handshake on 8443 shows the new
/// certificate. A playbook check that fails leaves HAProxy serving the old one.
#[test]
fn the_haproxy_playbook_serves_the_combined_pem() {
    let bed = Bed::up_with(1, &["--haproxy"]);
    let addr = bed.host_addr(1);
    let before = handshake_on(&addr, 8443, "host1.example.test");
    assert!(!before.is_empty(), "HAProxy serves nothing before the run");
    let write = |name: &str, extra: &str| {
        let body =
            format!("names: [host1.example.test]\nplaybook: haproxy\nverify_port: 8443\n{extra}");
        one_host(&bed, name, "", &cert_block("www", &body))
    };
    let inv = write("haproxy.yaml", "");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let issued = fingerprint_of(&run, "www");
    assert_ne!(issued, before);
    assert_eq!(handshake_on(&addr, 8443, "host1.example.test"), issued);
    let key = bed.ssh_ok(1, "cat /etc/ssl/private/www.key");
    let full = bed.ssh_ok(1, "cat /etc/ssl/certs/www.fullchain.pem");
    assert_eq!(
        bed.ssh_ok(1, "cat /etc/haproxy/certs/www.pem"),
        format!("{key}{full}")
    );

    // The operator's check (placeholders as data) refuses: old files back, HAProxy serves them.
    let refusing = write(
        "refusing.yaml",
        "check: [sh, -c, 'haproxy -c -q -f /etc/haproxy/haproxy.cfg && echo \"$0 refused by policy\" >&2 && false', \"{label}\"]\n",
    );
    let run = bed.certorch(&refusing, &["--json", "issue", "host1.example.test"]);
    run.expect_code(1);
    let o = &run.json()["outcomes"][0];
    assert_eq!(o["stage"], "check", "{o}");
    assert!(
        o["error"]
            .as_str()
            .unwrap()
            .contains("www refused by policy"),
        "{o}"
    );
    assert_eq!(handshake_on(&addr, 8443, "host1.example.test"), issued);
    assert_eq!(
        bed.ssh_ok(1, "cat /etc/haproxy/certs/www.pem"),
        format!("{key}{full}")
    );
    bed.ssh_ok(1, "kill -0 \"$(cat /run/haproxy.pid)\"");
}

/// One shared label on three hosts: one order, one key made on the first host and copied host
/// to host, the same certificate served by every member; the key never on the bastion's disk.
#[test]
fn a_shared_key_label_ends_with_one_certificate_on_every_member() {
    let bed = Bed::up_with(3, &["--tls"]);
    let mut hosts = String::from("hosts:\n");
    for i in 1..=3 {
        hosts.push_str(&format!(
            "  {}:\n    address: {}\n",
            bed.host_name(i),
            bed.host_addr(i)
        ));
    }
    let text = format!(
        "{head}{hosts}shared:\n  www:\n    hosts: [host1.example.test, host2.example.test, host3.example.test]\n    cert:\n      names: [shared.example.test]\n      playbook: nginx\n      fullchain: /etc/ssl/certs/www.pem\n",
        head = bed.inventory_head(bed.get("TSIG_KEY_FILE")),
    );
    let inv = bed.write_inventory("shared.yaml", &text);
    // Selecting one member selects the label on all of them.
    let run = bed.certorch(&inv, &["--json", "run", "--limit", "host2.example.test"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    let outcomes = doc["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3, "{doc}");
    let fp = outcomes[0]["fingerprint"].as_str().unwrap().to_string();
    let key = bed.ssh_ok(1, "cat /etc/ssl/private/www.key");
    for i in 1..=3 {
        assert_eq!(outcomes[i - 1]["fingerprint"], fp.as_str(), "{doc}");
        assert_eq!(served(&bed.host_addr(i), "shared.example.test"), fp);
        assert_eq!(bed.ssh_ok(i, "cat /etc/ssl/private/www.key"), key);
        assert_eq!(
            bed.ssh_ok(i, "stat -c %a /etc/ssl/private/www.key").trim(),
            "600"
        );
        bed.assert_key_matches(i, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");
    }
    let needle = &common::pem_body(&key)[20..80];
    for f in bed
        .state_files()
        .into_iter()
        .chain(common::files_under(&bed.certorch_tmp()))
    {
        assert!(
            !String::from_utf8_lossy(&std::fs::read(&f).unwrap()).contains(needle),
            "key material in {}",
            f.display()
        );
    }
    // A member whose certificate is removed renews the whole group, together.
    bed.ssh_ok(3, "rm /etc/ssl/certs/www.pem");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let doc = run.json();
    assert_eq!(doc["orders"], 1, "{doc}");
    let fp2 = doc["outcomes"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(fp2, fp);
    let key2 = bed.ssh_ok(1, "cat /etc/ssl/private/www.key");
    for i in 1..=3 {
        assert_eq!(served(&bed.host_addr(i), "shared.example.test"), fp2);
        assert_eq!(bed.ssh_ok(i, "cat /etc/ssl/private/www.key"), key2);
    }
}

/// A non-root login (`maint`) with `become: sudo`: files written as root, nginx checked and
/// reloaded through sudo; without the sudo rule the error says what to allow.
#[test]
fn a_non_root_login_with_sudo_deploys() {
    let bed = Bed::up_with(1, &["--tls"]);
    let addr = bed.host_addr(1);
    let write = |name: &str, how: &str, reload: &str| {
        let body = format!(
            "names: [host1.example.test]\nplaybook: nginx\nfullchain: /etc/ssl/certs/www.pem\n{reload}"
        );
        let host = format!("    user: maint\n    become: {how}\n");
        one_host(&bed, name, &host, &cert_block("www", &body))
    };
    let inv = write("sudo.yaml", "sudo", "");
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let issued = fingerprint_of(&run, "www");
    assert_eq!(served(&addr, "host1.example.test"), issued);
    assert_eq!(
        bed.ssh_ok(1, "stat -c '%U %a' /etc/ssl/private/www.key")
            .trim(),
        "root 600"
    );
    // A reload the sudo rule does not allow: refused, the old files stay live.
    let inv = write("denied.yaml", "sudo", "reload: [haproxy, -v]\n");
    let run = bed.certorch(&inv, &["--json", "issue", "host1.example.test"]);
    run.expect_code(1);
    let o = &run.json()["outcomes"][0];
    assert_eq!(o["stage"], "reload", "{o}");
    assert!(o["error"].as_str().unwrap().contains("sudo refused"), "{o}");
    assert!(o["hint"].as_str().unwrap().contains("NOPASSWD"), "{o}");
    assert_eq!(served(&addr, "host1.example.test"), issued);
    // Without become, the maintenance user cannot write the key: said with the path.
    let inv = write("nobecome.yaml", "none", "");
    let run = bed.certorch(&inv, &["--json", "issue", "host1.example.test"]);
    run.expect_code(1);
    let o = &run.json()["outcomes"][0];
    assert_eq!(o["stage"], "key", "{o}");
    assert!(
        o["hint"]
            .as_str()
            .unwrap()
            .contains("/etc/ssl/private/www.key"),
        "{o}"
    );
}

/// PKCS#12 and Java keystore playbooks: built on the host from the host's key, with the
/// password read on the host; both hold the issued certificate.
#[test]
fn pkcs12_and_java_keystores_are_built_on_the_host() {
    let bed = Bed::up(1);
    bed.ssh_ok(
        1,
        "umask 077; echo 'changeit-123' > /etc/ssl/private/store.pass",
    );
    let p12 = cert_block(
        "app",
        "names: [host1.example.test]\nplaybook: pkcs12\nstore_password_file: /etc/ssl/private/store.pass\n",
    );
    let jks = cert_block(
        "jvm",
        "names: [www.host1.example.test]\nplaybook: java-keystore\nstore_password_file: /etc/ssl/private/store.pass\n",
    );
    let inv = one_host(&bed, "stores.yaml", "", &(p12 + &jks));
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let (fp_app, fp_jvm) = (fingerprint_of(&run, "app"), fingerprint_of(&run, "jvm"));
    let from_p12 = bed.ssh_ok(
        1,
        "openssl pkcs12 -in /etc/ssl/private/app.p12 -passin file:/etc/ssl/private/store.pass -clcerts -nokeys | openssl x509 -noout -fingerprint -sha256",
    );
    assert_eq!(fingerprint(&from_p12), fp_app);
    // The bundle's key is the host's key.
    assert_eq!(
        bed.ssh_ok(1, "openssl pkcs12 -in /etc/ssl/private/app.p12 -passin file:/etc/ssl/private/store.pass -nocerts -nodes | openssl pkey -pubout"),
        bed.ssh_ok(1, "openssl pkey -in /etc/ssl/private/app.key -pubout"),
    );
    assert_eq!(
        bed.ssh_ok(1, "stat -c %a /etc/ssl/private/app.p12").trim(),
        "600"
    );
    let listing = bed.ssh_ok(
        1,
        "keytool -list -v -keystore /etc/ssl/private/jvm.jks -storepass:file /etc/ssl/private/store.pass",
    );
    assert!(listing.contains("Alias name: jvm"), "{listing}");
    assert!(
        listing.contains("Keystore type: JKS") || listing.contains("Keystore type: jks"),
        "{listing}"
    );
    let colon_fp: String = fp_jvm
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_string())
        .collect::<Vec<_>>()
        .join(":");
    assert!(
        listing.contains(&colon_fp),
        "the keystore does not hold {colon_fp}: {listing}"
    );
}

/// What `addr:port` presents after the protocol's STARTTLS, per openssl's own client.
fn starttls_fingerprint(addr: &str, port: u16, proto: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("echo | openssl s_client -connect {addr}:{port} -starttls {proto} -servername host1.example.test 2>/dev/null | openssl x509 -noout -fingerprint -sha256"))
        .output()
        .unwrap();
    fingerprint(&String::from_utf8_lossy(&out.stdout))
}

/// The built-in Postfix and Dovecot playbooks against the real daemons: `postfix check` and
/// `postfix reload` with the combined PEM of smtpd_tls_chain_files, `doveconf -n` and
/// `doveadm reload` with key and full chain; certorch's verify speaks SMTP and IMAP STARTTLS
/// before its handshakes, and openssl's own STARTTLS client then sees the new certificates.
#[test]
fn the_postfix_and_dovecot_playbooks_verify_through_starttls() {
    let bed = Bed::up_with(1, &["--postfix", "--dovecot"]);
    let addr = bed.host_addr(1);
    let smtp_before = starttls_fingerprint(&addr, 25, "smtp");
    let imap_before = starttls_fingerprint(&addr, 143, "imap");
    assert!(!smtp_before.is_empty() && !imap_before.is_empty());
    let smtp = cert_block(
        "smtp",
        "names: [host1.example.test]\nplaybook: postfix\ncombined: /etc/postfix/tls/mail.pem\n",
    );
    let imap = cert_block(
        "mail",
        "names: [host1.example.test]\nplaybook: dovecot\nfullchain: /etc/ssl/certs/mail.pem\n",
    );
    let inv = one_host(&bed, "mail.yaml", "", &(smtp + &imap));
    let run = bed.certorch(&inv, &["--json", "run"]);
    run.expect_code(0);
    let (smtp, imap) = (fingerprint_of(&run, "smtp"), fingerprint_of(&run, "mail"));
    assert_ne!(smtp, smtp_before);
    assert_ne!(imap, imap_before);
    assert_eq!(starttls_fingerprint(&addr, 25, "smtp"), smtp);
    assert_eq!(starttls_fingerprint(&addr, 143, "imap"), imap);
    bed.assert_key_matches(1, "/etc/postfix/tls/mail.pem", "/etc/postfix/tls/mail.pem");
    bed.assert_key_matches(1, "/etc/ssl/certs/mail.pem", "/etc/ssl/private/mail.key");
}
