//! Issue 13, hostile inputs: one table of inventories an attacker, a typo or a wrong file could
//! produce. Each is refused by the real binary with exit 2 and an error at the file, line and
//! column where the inventory is at fault, before any host, DNS server or CA is contacted; a
//! few positive controls prove the validator is not refusing everything. One bed serves the
//! whole table, and after it the host's files, the signing zone and the state are as before.

mod common;

use std::path::Path;

use common::{Bed, Run, digest_files, files_under};

/// Where the error must point.
enum At {
    /// The line and column of the first occurrence of this text in the inventory.
    Text(&'static [u8]),
    /// Just after the first occurrence of this text (`port: ` points at the port).
    After(&'static [u8]),
    /// The line of the first occurrence of this text (the parser stops somewhere inside it).
    LineOf(&'static [u8]),
    /// No position: the file as a whole (too big).
    File,
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    /// `run` for the refusals; `plan` for the positive controls (it reads hosts, never writes).
    command: &'static str,
    code: i32,
    at: Option<At>,
    /// Fragments of the error (after the position), or of the plan for a positive control.
    want: Vec<&'static str>,
    /// Text that must not appear anywhere in the output (a password).
    never: &'static [&'static str],
    /// Options before the command (`--concurrency 0`).
    args: &'static [&'static str],
}

/// 1-based line and column (in characters, as editors count) of the first `needle`.
fn position(text: &[u8], needle: &[u8]) -> (usize, usize) {
    let at = text
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| {
            panic!(
                "{:?} is not in the inventory",
                String::from_utf8_lossy(needle)
            )
        });
    let before = &text[..at];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, col)
}

/// The standard inventory with `from` replaced by `to` (which must be there once or more).
fn edit(base: &str, from: &str, to: &str) -> Vec<u8> {
    assert!(base.contains(from), "the base inventory has no {from:?}");
    base.replacen(from, to, 1).into_bytes()
}

const NAMES: &str = "[host1.example.test, www.host1.example.test]";
const KEY_LINE: &str = "        key: /etc/ssl/private/www.key\n";
const FULLCHAIN: &str = "/etc/ssl/certs/www.pem";

#[test]
fn hostile_inventories_are_refused_before_anything_is_touched() {
    let bed = Bed::up(1);
    let base_path = bed.standard_inventory(1);
    let base = std::fs::read_to_string(&base_path).unwrap();

    // Builders for the common shapes of a case.
    let names = |list: &str| edit(&base, NAMES, list);
    let in_cert = |line: &str| edit(&base, KEY_LINE, &format!("        {line}\n{KEY_LINE}"));
    let in_host = |line: &str| edit(&base, "    certs:\n", &format!("    {line}\n    certs:\n"));
    let top = |block: &str| edit(&base, "hosts:\n", &format!("{block}\nhosts:\n"));
    let fullchain = |p: &str| edit(&base, FULLCHAIN, p);
    let directory = |url: &str| {
        let dir = bed.get("PEBBLE_DIRECTORY");
        edit(
            &base,
            &format!("directory: {dir}"),
            &format!("directory: {url}"),
        )
    };

    let refuse = |name, input, at, want: Vec<&'static str>| Case {
        name,
        input,
        command: "run",
        code: 2,
        at: Some(at),
        want,
        never: &[],
        args: &[],
    };
    let accept = |name, input, want: Vec<&'static str>| Case {
        name,
        input,
        command: "plan",
        code: 0,
        at: None,
        want,
        never: &[],
        args: &[],
    };
    // An option clap refuses: its own message (several lines), exit 2.
    let flag = |name, args, want: Vec<&'static str>| Case {
        name,
        input: base.clone().into_bytes(),
        command: "run",
        code: 2,
        at: None,
        want,
        never: &[],
        args,
    };
    // Files the inventory names that are far larger than they should be: 2 MiB of comment
    // lines (read whole before the cap), and /dev/zero (endless).
    let dir = bed.scratch("hostile-inputs");
    let big = dir.join("big.txt");
    std::fs::write(
        &big,
        "# a log or a disk image named by mistake\n".repeat(50_000),
    )
    .unwrap();
    let big: &'static str = Box::leak(big.display().to_string().into_boxed_str());
    let playbooks = dir.join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    std::fs::copy(big, playbooks.join("big.yaml")).unwrap();
    let playbooks = playbooks.display().to_string();
    let too_big = "the file is larger than 1 MiB, far more than it should hold; certorch reads no further: check that the inventory names the right file";
    let zonefile = |template: &str| {
        let rfc = format!(
            "  rfc2136:\n    server: {}:53\n    secret_file: {}\n",
            bed.get("BIND_ADDR"),
            bed.get("TSIG_KEY_FILE")
        );
        edit(
            &base,
            &rfc,
            &format!(
                "  zonefile:\n    host: ns1.example.test\n    address: 127.0.0.1\n    path: /etc/bind/signing.zone\n    template: {template}\n    reload: rndc reload signing.test\n    server: 127.0.0.1:53\n"
            ),
        )
    };
    let in_acme = |line: &str| {
        edit(
            &base,
            "  contact: [mailto:ops@example.test]\n",
            &format!("  contact: [mailto:ops@example.test]\n  {line}\n"),
        )
    };
    use At::{After, File, LineOf, Text};

    // A billion laughs through a merge key: nine mappings, each nine of the one before.
    let keys = "abcdefghi";
    let mut laughs =
        String::from("{m0: &a {k0: x, k1: x, k2: x, k3: x, k4: x, k5: x, k6: x, k7: x, k8: x}");
    for i in 1..keys.len() {
        let prev = &keys[i - 1..i];
        let refs: Vec<String> = (0..9).map(|k| format!("k{k}: *{prev}")).collect();
        laughs.push_str(&format!(
            ", m{i}: &{} {{{}}}",
            &keys[i..=i],
            refs.join(", ")
        ));
    }
    laughs.push('}');
    let mut huge = base.clone();
    while huge.len() < 10 * 1024 * 1024 {
        huge.push_str("# padding: a log or a device named as the inventory, ten megabytes of it\n");
    }
    let mut bom = vec![0xef, 0xbb, 0xbf];
    bom.extend_from_slice(base.as_bytes());
    let latin1 = {
        let mut b = base.clone().into_bytes();
        let i = b
            .windows(22)
            .position(|w| w == b"www.host1.example.test")
            .unwrap();
        b[i + 1] = 0xfc; // `w\xfcw`: Latin-1 ü
        b
    };
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let many: Vec<String> = (0..101)
        .map(|i| format!("n{i}.host1.example.test"))
        .collect();
    // 60 + 60 + 60 + 58 octets of labels, 3 dots, `.example.test`: 254 octets.
    let long_name = format!(
        "{}.{}.example.test",
        vec!["a".repeat(60); 3].join("."),
        "a".repeat(58)
    );
    assert_eq!(long_name.len(), 254);
    let long_label = format!("{}.example.test", "a".repeat(64));
    let long_path = format!("/etc/ssl/{}.pem", "p".repeat(1020));

    let cases = vec![
        // YAML itself.
        refuse(
            "alias bomb through a merge key",
            in_host(&format!("<<: {laughs}")),
            LineOf(b"<<: {m0"),
            vec![
                "the YAML expands to more values than an inventory makes (aliases that repeat aliases, as in a \"billion laughs\"?)",
            ],
        ),
        refuse(
            "a 10 MB file",
            huge.into_bytes(),
            File,
            vec!["the inventory is larger than 8 MiB; certorch reads no further"],
        ),
        refuse(
            "duplicate key",
            edit(&base, "  ttl: 2\n", "  ttl: 2\n  ttl: 3600\n"),
            Text(b"ttl: 3600"),
            vec!["`ttl` is given twice in one mapping: keep one"],
        ),
        refuse(
            "duplicate host",
            format!("{base}  host1.example.test: # again\n    certs: {{}}\n").into_bytes(),
            Text(b"host1.example.test: # again"),
            vec!["is given twice in one mapping"],
        ),
        refuse(
            "unknown top-level key",
            top("hostz: {}"),
            Text(b"hostz"),
            vec!["unknown field `hostz`, expected one of acme"],
        ),
        refuse(
            "unknown certificate key (typo)",
            in_cert("fulchain: /etc/ssl/x.pem"),
            Text(b"fulchain"),
            vec!["unknown field `fulchain`"],
        ),
        refuse(
            "merge key with a scalar",
            in_host("<<: 5"),
            After(b"<<: "),
            vec!["YAML merge value must be mapping or sequence of mappings"],
        ),
        refuse(
            "merge key smuggling an unknown key",
            in_host("<<: {adress: 192.0.2.1}"),
            Text(b"adress"),
            vec!["unknown field `adress`"],
        ),
        refuse(
            "merge key with an undefined alias",
            in_host("<<: *nowhere"),
            Text(b"*nowhere"),
            vec!["alias references unknown anchor"],
        ),
        refuse(
            "tab in indentation",
            edit(&base, "  ttl: 2\n", "\tttl: 2\n"),
            LineOf(b"signing_zone"),
            vec!["found a tab: YAML indents with spaces only; replace the tab with spaces"],
        ),
        refuse(
            "byte order mark inside the document",
            edit(&base, "  ttl: 2\n", "  \u{feff}ttl: 2\n"),
            Text("\u{feff}".as_bytes()),
            vec!["a BOM must not appear inside a document"],
        ),
        refuse(
            "invalid UTF-8 (Latin-1 ü)",
            latin1,
            Text(b"\xfc"),
            vec!["byte 0xfc is not UTF-8 text: save the inventory as UTF-8"],
        ),
        refuse(
            "two documents in one file",
            format!("{base}---\nacme: {{}}\n").into_bytes(),
            Text(b"acme: {}"),
            vec!["a second YAML document starts here (`---`): an inventory is one document"],
        ),
        refuse(
            "nesting 5000 deep",
            names(&deep),
            LineOf(b"names: [[["),
            vec!["the YAML nests deeper than an inventory does"],
        ),
        refuse(
            "names as a string, not a list",
            names("host1.example.test"),
            Text(b"host1.example.test\n"),
            vec!["expected a list here: write `[a, b]` or one `- item` line per item"],
        ),
        refuse(
            "a path as a list",
            edit(&base, FULLCHAIN, "[/a, /b]"),
            Text(b"[/a, /b]"),
            vec!["expected string"],
        ),
        // DNS names.
        refuse(
            "U-label",
            names("[bücher.example.test]"),
            Text("bücher".as_bytes()),
            vec![
                "`bücher.example.test` is an internationalized name (U-label): write its A-label `xn--bcher-kva.example.test`",
            ],
        ),
        refuse(
            "254 octets",
            names(&format!("[{long_name}]")),
            Text(b"aaaa"),
            vec!["DNS name is longer than 253 characters"],
        ),
        refuse(
            "a 64-octet label",
            names(&format!("[{long_label}]")),
            Text(b"aaaa"),
            vec!["has a label of 64 characters; a label has at most 63"],
        ),
        refuse(
            "empty label a..b",
            names("[a..b.example.test]"),
            Text(b"a..b"),
            vec!["`a..b.example.test` has an empty label"],
        ),
        refuse(
            "leading dot",
            names("[.host1.example.test]"),
            Text(b".host1.example.test]"),
            vec!["has an empty label"],
        ),
        refuse(
            "underscore",
            names("[_dmarc.example.test]"),
            Text(b"_dmarc"),
            vec!["`_dmarc.example.test` is not a valid DNS name"],
        ),
        refuse(
            "IPv4 address",
            names("[192.0.2.7]"),
            Text(b"192.0.2.7"),
            vec!["`192.0.2.7` is an IP address, not a DNS name"],
        ),
        refuse(
            "IPv6 address",
            names("[\"2001:db8::7\"]"),
            Text(b"\"2001:db8::7\""),
            vec!["`2001:db8::7` is an IP address, not a DNS name"],
        ),
        refuse(
            "all-digit top-level label",
            names("[host1.example.123]"),
            Text(b"host1.example.123"),
            vec!["ends in a label of digits only"],
        ),
        refuse(
            "`*.` alone",
            names("[\"*.\"]"),
            Text(b"\"*.\""),
            vec!["`*.` is not a valid DNS name"],
        ),
        refuse(
            "`*` alone",
            names("[\"*\"]"),
            Text(b"\"*\""),
            vec!["`*` is not a valid DNS name"],
        ),
        refuse(
            "wildcard under .com",
            names("[\"*.com\"]"),
            Text(b"\"*.com\""),
            vec![
                "`*.com` is a wildcard directly under the public suffix `com`, which no CA issues",
            ],
        ),
        refuse(
            "wildcard under .co.uk",
            names("[\"*.co.uk\"]"),
            Text(b"\"*.co.uk\""),
            vec!["`*.co.uk` is a wildcard directly under the public suffix `co.uk`"],
        ),
        refuse(
            "a public suffix itself",
            names("[co.uk]"),
            Text(b"co.uk"),
            vec!["`co.uk` is a public suffix (a registry's, not a domain of yours)"],
        ),
        refuse(
            "a top-level domain alone",
            names("[com]"),
            Text(b"com]"),
            vec!["`com` is a public suffix"],
        ),
        refuse(
            "single label",
            names("[localhost]"),
            Text(b"localhost"),
            vec!["`localhost` has a single label"],
        ),
        refuse(
            "wildcard not first",
            names("[\"a.*.example.test\"]"),
            Text(b"\"a.*"),
            vec!["is not a valid DNS name"],
        ),
        refuse(
            "leading hyphen",
            names("[-a.example.test]"),
            Text(b"-a.example.test"),
            vec!["`-a.example.test` is not a valid DNS name"],
        ),
        refuse(
            "shell in a name",
            names("[\"a.example.test;touch /tmp/x\"]"),
            Text(b"\"a.example.test;"),
            vec!["`a.example.test;touch /tmp/x` is not a valid DNS name"],
        ),
        refuse(
            "terminal escape in a name",
            names("[\"\\e]0;pwned\\a.example.test\"]"),
            Text(b"\"\\e]0"),
            vec!["`\\u{1b}]0;pwned\\u{7}.example.test` is not a valid DNS name"],
        ),
        refuse(
            "a name twice",
            names("[host1.example.test, host1.example.test]"),
            After(b"        names: "),
            vec!["host1.example.test/www lists `host1.example.test` twice: remove one"],
        ),
        refuse(
            "a name twice, differing in case and dot",
            names("[host1.example.test, HOST1.Example.Test.]"),
            After(b"        names: "),
            vec!["lists `host1.example.test` twice"],
        ),
        refuse(
            "101 names",
            names(&format!("[{}]", many.join(", "))),
            After(b"        names: "),
            vec!["host1.example.test/www has 101 names; a certificate carries at most 100"],
        ),
        refuse(
            "no names",
            names("[]"),
            After(b"        names: "),
            vec!["host1.example.test/www has no names: list at least one DNS name"],
        ),
        refuse(
            "wildcard with http-01",
            edit(
                &base.replacen(NAMES, "[\"*.host1.example.test\"]", 1),
                KEY_LINE,
                &format!("        challenge: http-01\n        webroot: /var/www\n{KEY_LINE}"),
            ),
            After(b"        names: "),
            vec!["`*.host1.example.test` is a wildcard, which http-01 cannot prove"],
        ),
        // Paths on the host.
        refuse(
            "relative path",
            fullchain("etc/ssl/certs/www.pem"),
            Text(b"etc/ssl/certs/www.pem\n"),
            vec!["`etc/ssl/certs/www.pem` is not an absolute path"],
        ),
        refuse(
            "home-relative path",
            fullchain("~/www.pem"),
            Text(b"~/www.pem"),
            vec!["`~/www.pem` is not an absolute path"],
        ),
        refuse(
            "`..` in a path",
            fullchain("/etc/ssl/../shadow"),
            Text(b"/etc/ssl/../shadow"),
            vec!["`/etc/ssl/../shadow` contains `..`"],
        ),
        refuse(
            "NUL in a path",
            fullchain("\"/etc/ssl/certs/www\\0.pem\""),
            Text(b"\"/etc/ssl/certs/www\\0"),
            vec!["a path contains a control character (NUL, newline, tab, …)"],
        ),
        refuse(
            "newline in a path",
            fullchain("\"/etc/ssl/certs/www\\n.pem\""),
            Text(b"\"/etc/ssl/certs/www\\n"),
            vec!["a path contains a control character"],
        ),
        refuse(
            "trailing slash",
            fullchain("/etc/ssl/certs/"),
            Text(b"/etc/ssl/certs/\n"),
            vec!["`/etc/ssl/certs/` names a directory: give the file's path"],
        ),
        refuse(
            "a directory spelt with `.`",
            fullchain("/etc/ssl/certs/."),
            Text(b"/etc/ssl/certs/.\n"),
            vec!["`/etc/ssl/certs/.` contains `.` as a component"],
        ),
        refuse(
            "/proc",
            fullchain("/proc/sys/kernel/core_pattern"),
            Text(b"/proc/sys"),
            vec![
                "`/proc/sys/kernel/core_pattern` is under /proc, which the kernel provides, not a disk",
            ],
        ),
        refuse(
            "/sys",
            fullchain("/sys/kernel/uevent_helper"),
            Text(b"/sys/kernel"),
            vec!["is under /sys"],
        ),
        refuse(
            "/dev",
            fullchain("/dev/sda"),
            Text(b"/dev/sda"),
            vec!["`/dev/sda` is under /dev"],
        ),
        refuse(
            "a path of 1030 characters",
            fullchain(&long_path),
            Text(b"/etc/ssl/ppp"),
            vec!["a path is longer than 1024 characters"],
        ),
        refuse(
            "one path for two files",
            fullchain("/etc/ssl/private/www.key"),
            Text(NAMES_AT),
            vec!["uses one path for two files"],
        ),
        // Users, groups and modes.
        refuse(
            "shell in an owner",
            in_cert("owner: \"root;id\""),
            Text(b"\"root;id\""),
            vec!["`root;id` is not a valid user or group name"],
        ),
        refuse(
            "command substitution in a group",
            in_cert("group: \"$(id)\""),
            Text(b"\"$(id)\""),
            vec!["`$(id)` is not a valid user or group name"],
        ),
        refuse(
            "an owner that is an option",
            in_cert("owner: -rf"),
            Text(b"-rf"),
            vec!["`-rf` is not a valid user or group name"],
        ),
        refuse(
            "an owner of 33 characters",
            in_cert(&format!("owner: {}", "u".repeat(33))),
            Text(b"uuuu"),
            vec!["is not a valid user or group name"],
        ),
        refuse(
            "key readable by everyone (0644)",
            in_cert("key_mode: \"0644\""),
            Text(NAMES_AT),
            vec!["key_mode 0644 lets every user read or change the private key"],
        ),
        refuse(
            "key mode 0777",
            in_cert("key_mode: \"0777\""),
            Text(NAMES_AT),
            vec!["key_mode 0777 lets every user read or change the private key"],
        ),
        refuse(
            "mode 0000",
            in_cert("key_mode: \"0000\""),
            Text(b"\"0000\""),
            vec!["`0000` lets not even the file's owner read it"],
        ),
        refuse(
            "certificate writable by others",
            in_cert("mode: \"0666\""),
            Text(NAMES_AT),
            vec!["mode 0666 lets other users replace the certificate"],
        ),
        refuse(
            "non-octal mode",
            in_cert("mode: \"999\""),
            Text(b"\"999\""),
            vec!["`999` is not a file mode: write it in octal and quoted"],
        ),
        refuse(
            "setuid mode",
            in_cert("mode: \"4755\""),
            Text(b"\"4755\""),
            vec!["`4755` is not a file mode"],
        ),
        // Durations and numbers.
        refuse(
            "renew_before 0",
            in_cert("renew_before: 0"),
            After(b"renew_before: "),
            vec!["`0` must be between 0 and 1"],
        ),
        refuse(
            "negative renew_before",
            in_cert("renew_before: -30d"),
            Text(b"-30d"),
            vec!["`-30d` is not a renewal policy"],
        ),
        refuse(
            "renew_before overflowing",
            in_cert("renew_before: 300000000000000d"),
            Text(b"300000000000000d"),
            vec!["`300000000000000d` is longer than ten years"],
        ),
        refuse(
            "zero propagation timeout",
            edit(&base, "propagation_timeout: 60s", "propagation_timeout: 0s"),
            Text(b"0s\n"),
            vec!["`0s` is no time at all"],
        ),
        refuse(
            "negative timeout",
            edit(&base, "connect_timeout: 20s", "connect_timeout: -5s"),
            Text(b"-5s"),
            vec!["`-5s` is not a duration"],
        ),
        refuse(
            "validity under an hour",
            in_cert("validity: 30m"),
            Text(NAMES_AT),
            vec!["validity under an hour would renew on every run"],
        ),
        refuse(
            "concurrency 0",
            top("concurrency: 0"),
            Text(b"0\nhosts"),
            vec!["concurrency must be at least 1"],
        ),
        refuse(
            "concurrency 100000",
            top("concurrency: 100000"),
            Text(b"100000"),
            vec![
                "concurrency 100000 is more hosts at once than the bastion can hold",
                "write a number from 1 to 1000",
            ],
        ),
        refuse(
            "negative concurrency",
            top("concurrency: -4"),
            Text(b"-4"),
            vec!["expected a whole number from 0 to"],
        ),
        refuse(
            "concurrency past 64 bits",
            top("concurrency: 99999999999999999999999"),
            Text(b"9999"),
            vec!["expected a whole number from 0 to"],
        ),
        refuse(
            "max_handshakes 0",
            edit(
                &base,
                "  connect_timeout: 20s\n",
                "  connect_timeout: 20s\n  max_handshakes: 0\n",
            ),
            After(b"max_handshakes: "),
            vec!["ssh.max_handshakes must be at least 1"],
        ),
        refuse(
            "max_handshakes 100000",
            edit(
                &base,
                "  connect_timeout: 20s\n",
                "  connect_timeout: 20s\n  max_handshakes: 100000\n",
            ),
            After(b"max_handshakes: "),
            vec![
                "ssh.max_handshakes 100000 is more SSH handshakes at once than the bastion can hold",
                "write a number from 1 to 1000",
            ],
        ),
        flag(
            "--concurrency 0",
            &["--concurrency", "0"],
            vec![
                "error: invalid value '0' for '--concurrency <CONCURRENCY>': 0 is not in 1..=1000",
            ],
        ),
        flag(
            "--concurrency 100000",
            &["--concurrency", "100000"],
            vec![
                "error: invalid value '100000' for '--concurrency <CONCURRENCY>': 100000 is not in 1..=1000",
            ],
        ),
        flag(
            "--concurrency -1",
            &["--concurrency=-1"],
            vec!["error: invalid value '-1' for '--concurrency <CONCURRENCY>'"],
        ),
        refuse(
            "port 0",
            in_host("port: 0"),
            After(b"    port: "),
            vec!["`0` is not a TCP port: write a number from 1 to 65535"],
        ),
        refuse(
            "port 70000",
            in_host("port: 70000"),
            Text(b"70000"),
            vec!["`70000` is not a TCP port"],
        ),
        refuse(
            "negative port",
            in_host("port: -22"),
            Text(b"-22"),
            vec!["`-22` is not a TCP port"],
        ),
        refuse(
            "verify_port 0",
            in_cert("verify_port: 0"),
            After(b"verify_port: "),
            vec!["`0` is not a TCP port"],
        ),
        refuse(
            "negative TTL",
            edit(&base, "  ttl: 2\n", "  ttl: -1\n"),
            Text(b"-1"),
            vec!["expected a whole number from 0 to 4294967295"],
        ),
        refuse(
            "TTL 0",
            edit(&base, "  ttl: 2\n", "  ttl: 0\n"),
            After(b"  ttl: "),
            vec!["dns.ttl must be between 1 and 3600 seconds"],
        ),
        refuse(
            "TTL of a day: `ttl: 86400`",
            edit(&base, "  ttl: 2\n", "  ttl: 86400\n"),
            After(b"  ttl: "),
            vec![
                "dns.ttl must be between 1 and 3600 seconds: resolvers and the CA cache the TXT values that long",
            ],
        ),
        refuse(
            "max_rrset_bytes 10",
            edit(&base, "  ttl: 2\n", "  ttl: 2\n  max_rrset_bytes: 10\n"),
            After(b"max_rrset_bytes: "),
            vec!["dns.max_rrset_bytes must be between 128 and 65535"],
        ),
        // Files the inventory names, far too big.
        refuse(
            "a zone template of 2 MiB",
            zonefile(big),
            Text(b"host: ns1"),
            vec!["cannot read the zone template", too_big],
        ),
        refuse(
            "the zone template is /dev/zero",
            zonefile("/dev/zero"),
            Text(b"host: ns1"),
            vec!["cannot read the zone template /dev/zero: the file is larger than 1 MiB"],
        ),
        refuse(
            "an EAB key file of 2 MiB",
            in_acme(&format!("eab: {{kid: kid-1, hmac_key_file: {big}}}")),
            Text(b"{kid"),
            vec!["cannot read the EAB HMAC key", too_big],
        ),
        refuse(
            "an adopted issuer file of 2 MiB",
            in_acme(&format!("adopt_issuers: [{big}]")),
            After(b"adopt_issuers: ["),
            vec!["cannot read the adopted issuer", too_big],
        ),
        refuse(
            "a playbook of 2 MiB",
            edit(
                &String::from_utf8(top(&format!("playbooks: {playbooks}"))).unwrap(),
                KEY_LINE,
                &format!("        playbook: big\n{KEY_LINE}"),
            ),
            After(b"playbook: "),
            vec!["host1.example.test/www: cannot read playbook", too_big],
        ),
        // URLs.
        refuse(
            "plain http ACME directory",
            directory("http://acme.example.org/directory"),
            Text(b"http://acme"),
            vec![
                "`http://acme.example.org/directory` is not an ACME directory: write letsencrypt, letsencrypt-staging or an https:// URL",
            ],
        ),
        refuse(
            "plain http ACME directory on loopback",
            directory("http://127.0.0.1:14000/dir"),
            Text(b"http://127"),
            vec!["`http://127.0.0.1:14000/dir` is not an ACME directory"],
        ),
        Case {
            never: &["hunter2"],
            ..refuse(
                "credentials in the ACME directory",
                directory("https://user:hunter2@acme.example.org/dir"),
                Text(b"https://user"),
                vec!["`https://***@acme.example.org/dir` carries a user name or password"],
            )
        },
        Case {
            never: &["hunter2"],
            ..refuse(
                "credentials in a plain http directory",
                directory("http://user:hunter2@acme.example.org/dir"),
                Text(b"http://user"),
                vec!["`http://***@acme.example.org/dir` is not an ACME directory"],
            )
        },
        refuse(
            "a directory URL without a host",
            directory("\"https://\""),
            Text(b"\"https://\""),
            vec!["`https://` is not an ACME directory"],
        ),
        Case {
            never: &["hunter2"],
            ..refuse(
                "credentials in a webhook",
                top("notify: { webhook: \"https://user:hunter2@hooks.example/\" }"),
                Text(b"\"https://user"),
                vec!["notify.webhook `https://***@hooks.example/` carries a user name or password"],
            )
        },
        refuse(
            "plain http webhook to another machine",
            top("notify: { webhook: \"http://hooks.example/T0/secret\" }"),
            Text(b"\"http://hooks"),
            vec!["is plain http to another machine"],
        ),
        refuse(
            "a webhook that is not http",
            top("notify: { webhook: \"javascript:alert(1)\" }"),
            Text(b"\"javascript"),
            vec!["notify.webhook `javascript:alert(1)` is not a URL"],
        ),
        refuse(
            "a contact that is not mailto",
            edit(&base, "mailto:ops@example.test", "https://example.test"),
            Text(b"https://example.test"),
            vec!["`https://example.test` is not a contact: write mailto:ops@example.org"],
        ),
        refuse(
            "a DNS server that is a name",
            edit(
                &base,
                &format!("server: {}:53", bed.get("BIND_ADDR")),
                "server: ns1.example.test",
            ),
            Text(b"ns1.example.test"),
            vec!["`ns1.example.test` is not an address"],
        ),
        // Words from a fixed set.
        refuse(
            "unknown challenge type",
            in_cert("challenge: dns-02"),
            Text(b"dns-02"),
            vec!["unknown challenge `dns-02`: write dns-01 or http-01"],
        ),
        refuse(
            "unknown issuer",
            in_cert("issuer: letsencrypt"),
            Text(b"letsencrypt\n"),
            vec!["unknown issuer `letsencrypt`: write acme, self-signed or internal"],
        ),
        refuse(
            "unknown playbook",
            in_cert("playbook: ngnix"),
            Text(b"ngnix"),
            vec!["no playbook `ngnix`"],
        ),
        refuse(
            "transport typo",
            in_host("transport: opensh"),
            Text(b"opensh\n"),
            vec!["unknown SSH transport `opensh`: write openssh or russh"],
        ),
        refuse(
            "unknown key type",
            in_cert("key_type: rsa-1024"),
            Text(b"rsa-1024"),
            vec!["unknown key type `rsa-1024`: write one of ecdsa-p256"],
        ),
        refuse(
            "unknown become",
            in_host("become: su"),
            Text(b"su\n"),
            vec!["unknown become `su`: write sudo, doas or none"],
        ),
        refuse(
            "unknown STARTTLS",
            in_cert("verify_starttls: pop3"),
            Text(b"pop3"),
            vec!["unknown verify_starttls `pop3`: write smtp or imap"],
        ),
        refuse(
            "unknown TSIG algorithm",
            edit(
                &base,
                "    secret_file:",
                "    algorithm: hmac-md5\n    secret_file:",
            ),
            Text(b"hmac-md5"),
            vec!["unknown TSIG algorithm `hmac-md5`"],
        ),
        refuse(
            "http-01 without a webroot",
            in_cert("challenge: http-01"),
            Text(NAMES_AT),
            vec!["uses http-01 but has no webroot"],
        ),
        refuse(
            "a host name with shell in it",
            edit(&base, "  host1.example.test:\n", "  \"host1;id\":\n"),
            LineOf(b"    address:"),
            vec!["`host1;id` is not a host name"],
        ),
        refuse(
            "an address with shell in it",
            edit(
                &base,
                &format!("address: {}", bed.host_addr(1)),
                "address: \"$(reboot)\"",
            ),
            Text(b"\"$(reboot)\""),
            vec!["`$(reboot)` is not an address"],
        ),
        refuse(
            "a group of unknown hosts",
            top("groups: { web: [host9.example.test] }"),
            Text(b"host9"),
            vec!["group `web` lists `host9.example.test`, which is not under hosts"],
        ),
        // Positive controls: odd but valid, so the table proves more than "everything is refused".
        accept(
            "byte order mark at the start",
            bom,
            vec!["host1.example.test/www"],
        ),
        accept(
            "upper case and a trailing dot, lowered",
            names("[HOST1.Example.Test., www.host1.example.test]"),
            vec!["host1.example.test/www"],
        ),
        accept(
            "a path with spaces",
            fullchain("\"/etc/ssl/certs/my site.pem\""),
            vec!["host1.example.test/www"],
        ),
        accept(
            "modes as 0o640 and unquoted 0644",
            in_cert("key_mode: \"0o640\"\n        mode: 0644"),
            vec!["host1.example.test/www"],
        ),
        accept(
            "a merge key",
            edit(&base, "    certs:\n", "    <<: {port: 22}\n    certs:\n"),
            vec!["host1.example.test/www"],
        ),
        accept(
            "a wildcard under a registrable domain",
            names("[host1.example.test, \"*.host1.example.test\"]"),
            vec!["host1.example.test/www"],
        ),
        accept(
            "plain http webhook on loopback",
            top("notify: { webhook: \"http://127.0.0.1:9/hook\" }"),
            vec!["host1.example.test/www"],
        ),
    ];
    let refusals = cases.iter().filter(|c| c.code == 2).count();
    assert!(
        refusals >= 80,
        "only {refusals} hostile inputs in the table"
    );

    let etc_ssl = bed.host_etc_ssl(1);
    let before = digest_files(&files_under(&etc_ssl));
    let state = bed.state_dir();
    assert!(!bed.state_exists(), "the state exists before the table");
    let mut failed = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let path = dir.join(format!("{i:02}.yaml"));
        std::fs::write(&path, &case.input).unwrap();
        let mut args = case.args.to_vec();
        args.push(case.command);
        let run = bed.certorch(&path, &args);
        if let Err(e) = std::panic::catch_unwind(|| check(case, &path, &run)) {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "(no message)".to_string());
            failed.push(format!("{i:02}.yaml: {msg}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n\n")
    );

    // Nothing touched: the host's files, the signing zone, the state (no account, so no order).
    assert_eq!(
        digest_files(&files_under(&etc_ssl)),
        before,
        "host1's /etc/ssl changed during the table"
    );
    assert!(
        bed.signing_zone_txt().is_empty(),
        "TXT records were published: {:?}",
        bed.signing_zone_txt()
    );
    assert!(
        !bed.state_exists(),
        "the state directory was created, so some case got as far as the run: {:?}",
        files_under(&state)
    );

    // A secret file others may read is a warning, not an error; the secret is never shown.
    let secret = std::fs::read_to_string(bed.get("TSIG_KEY_FILE")).unwrap();
    let open = dir.join("tsig-open.key");
    std::fs::write(&open, &secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = base.replacen(bed.get("TSIG_KEY_FILE"), open.to_str().unwrap(), 1);
    let inv = dir.join("open-secret.yaml");
    std::fs::write(&inv, text).unwrap();
    let run = bed.certorch(&inv, &["plan"]);
    run.expect_code(0);
    assert!(
        run.stderr.contains(&format!(
            "warning: the TSIG key file {} is accessible by group or others (mode 0644): chmod 600",
            open.display()
        )),
        "{}",
        run.stderr
    );
    let secret_value = secret
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret "))
        .map(|s| s.trim_matches(|c| c == '"' || c == ';'))
        .expect("a BIND key file with a secret line");
    assert!(
        !run.stderr.contains(secret_value) && !run.stdout.contains(secret_value),
        "the TSIG secret was printed"
    );
}

/// The first key of the standard certificate: errors about the certificate as a whole point
/// at its mapping, which starts there.
const NAMES_AT: &[u8] = b"names: [";

fn check(case: &Case, path: &Path, run: &Run) {
    let name = case.name;
    let all = format!("{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.code, case.code,
        "case `{name}`: exit code {} (want {})\n--- stdout\n{}\n--- stderr\n{}",
        run.code, case.code, run.stdout, run.stderr
    );
    for never in case.never {
        assert!(
            !all.contains(never),
            "case `{name}`: printed `{never}`:\n{all}"
        );
    }
    assert!(
        !all.contains('\u{1b}'),
        "case `{name}`: a raw escape character reached the terminal:\n{all:?}"
    );
    let shown = path.display().to_string();
    let prefix = match &case.at {
        None => {
            for w in &case.want {
                assert!(all.contains(w), "case `{name}`: no `{w}` in:\n{all}");
            }
            return;
        }
        Some(At::File) => format!("error: {shown}: "),
        Some(At::Text(needle)) => {
            let (line, col) = position(&case.input, needle);
            format!("error: {shown}:{line}:{col}: ")
        }
        Some(At::After(needle)) => {
            let (line, col) = position(&case.input, needle);
            let col = col + String::from_utf8_lossy(needle).chars().count();
            format!("error: {shown}:{line}:{col}: ")
        }
        Some(At::LineOf(needle)) => {
            let (line, _) = position(&case.input, needle);
            format!("error: {shown}:{line}:")
        }
    };
    assert!(
        run.stderr.starts_with(&prefix),
        "case `{name}`: the error does not start with `{prefix}`:\n{}",
        run.stderr
    );
    for w in &case.want {
        assert!(
            run.stderr.contains(w),
            "case `{name}`: no `{w}` in:\n{}",
            run.stderr
        );
    }
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "case `{name}`: one error line, nothing else:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "case `{name}`: stdout: {}",
        run.stdout
    );
}
