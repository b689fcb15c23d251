//! The route53 publisher through the real binary: `certorch check` adds and removes its probe
//! record in a hosted zone of moto, a Route 53 API server (moto serves no DNS, so Pebble cannot
//! validate through it; the bed's BIND still answers for signing.test, so check's other findings
//! hold). moto records every request it gets, which shows how certorch batched them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Bed, Killed};

const SECRET: &str = "r53-test-secret/DO-NOT-PRINT";

/// `moto_server`: from the virtualenv `.ci/run` makes, else from PATH; missing fails the test.
fn moto_server() -> PathBuf {
    let venv = Path::new("/opt/certorch-ci/venv/bin/moto_server");
    if venv.exists() {
        return venv.to_path_buf();
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("moto_server"))
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("moto_server not found: run `INSTALL_ONLY=1 bash .ci/run`, which installs moto[server]")
        })
}

/// moto on the bed's address block (127.N.0.6, which the bed leaves free), killed on drop.
struct Moto {
    _child: Killed,
    endpoint: String,
    recording: PathBuf,
}

impl Moto {
    fn start(bed: &Bed) -> Moto {
        let dir = bed.scratch("moto");
        let addr = format!("127.{}.0.6", bed.net);
        let recording = dir.join("recording.jsonl");
        let log = std::fs::File::create(dir.join("moto.log")).unwrap();
        let child = Command::new(moto_server())
            .args(["-H", &addr, "-p", "5000"])
            .env("MOTO_ENABLE_RECORDING", "1")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start moto_server");
        let child = Killed(child);
        let start = Instant::now();
        while std::net::TcpStream::connect((addr.as_str(), 5000)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto_server did not listen on {addr}:5000 within 60s: {}",
                std::fs::read_to_string(dir.join("moto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            _child: child,
            endpoint: format!("http://{addr}:5000"),
            recording,
        }
    }

    /// A signed Route 53 API call with curl; the answer's body.
    fn api(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let mut c = Command::new("curl");
        c.args(["-sS", "--fail-with-body", "-X", method])
            .args(["--aws-sigv4", "aws:amz:us-east-1:route53"])
            .args(["--user", "AKIDSETUP:setup-secret"])
            .arg(format!("{}{path}", self.endpoint));
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/xml", "--data-binary", b]);
        }
        let out = c.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{method} {path}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }

    fn create_zone(&self, name: &str) -> String {
        let xml = self.api(
            "POST",
            "/2013-04-01/hostedzone",
            Some(&format!(
                r#"<CreateHostedZoneRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><Name>{name}</Name><CallerReference>certorch-{name}</CallerReference></CreateHostedZoneRequest>"#
            )),
        );
        let start = xml.find("<Id>/hostedzone/").expect("zone id") + "<Id>/hostedzone/".len();
        xml[start..start + xml[start..].find('<').unwrap()].to_string()
    }

    /// (method, path, body) of each request recorded so far.
    fn requests(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.recording)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let body = match (v["body"].as_str(), v["body_encoded"] == true) {
                    (Some(b), true) => {
                        let out = Command::new("base64")
                            .arg("-d")
                            .stdin(Stdio::piped())
                            .stdout(Stdio::piped())
                            .spawn()
                            .and_then(|mut c| {
                                use std::io::Write;
                                c.stdin.take().unwrap().write_all(b.as_bytes())?;
                                c.wait_with_output()
                            })
                            .unwrap();
                        String::from_utf8_lossy(&out.stdout).into_owned()
                    }
                    (Some(b), false) => b.to_string(),
                    (None, _) => String::new(),
                };
                let url = v["url"].as_str().unwrap();
                let path = url.splitn(4, '/').nth(3).unwrap_or("");
                (
                    v["method"].as_str().unwrap().to_string(),
                    format!("/{path}"),
                    body,
                )
            })
            .collect()
    }
}

/// The inventory for `bed` publishing into hosted zone `zone_id` of `moto`.
fn inventory(bed: &Bed, moto: &Moto, zone_id: &str, name: &str) -> PathBuf {
    let secret = bed.scratch("moto").join("r53.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let publisher = format!(
        "  route53:\n    hosted_zone_id: {zone_id}\n    endpoint: {}\n    access_key_id_env: CERTORCH_TEST_R53_ID\n    secret_access_key_file: {}\n",
        moto.endpoint,
        secret.display()
    );
    let text = bed.inventory_head_publishing(&publisher) + &bed.hosts_yaml(1);
    bed.write_inventory(name, &text)
}

fn check(bed: &Bed, inv: &Path, json: bool) -> common::Run {
    let mut args = vec!["check"];
    if json {
        args.insert(0, "--json");
    }
    common::Run::from(
        bed.certorch_command(inv, &args)
            .env("CERTORCH_TEST_R53_ID", "AKIDCERTORCHTEST")
            .output()
            .expect("run certorch"),
    )
}

#[test]
fn check_probes_a_route53_zone_and_leaves_others_values() {
    let bed = Bed::up(1);
    let moto = Moto::start(&bed);
    let zone_id = moto.create_zone("signing.test.");
    let rrset = format!("/2013-04-01/hostedzone/{zone_id}/rrset");
    // Another tool's value at the name certorch probes with.
    moto.api(
        "POST",
        &rrset,
        Some(
            r#"<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeBatch><Changes><Change><Action>CREATE</Action><ResourceRecordSet><Name>_certorch-probe.signing.test</Name><Type>TXT</Type><TTL>300</TTL><ResourceRecords><ResourceRecord><Value>"theirs"</Value></ResourceRecord></ResourceRecords></ResourceRecordSet></Change></Changes></ChangeBatch></ChangeResourceRecordSetsRequest>"#,
        ),
    );
    let before = moto.requests().len();

    let inv = inventory(&bed, &moto, &zone_id, "route53.yaml");
    let run = check(&bed, &inv, true);
    run.expect_code(0);
    let doc = run.json();
    let findings = doc.as_array().unwrap();
    assert!(findings.iter().all(|f| f["ok"] == true), "{doc:#}");
    assert!(
        findings
            .iter()
            .any(|f| f["what"] == "the publisher can add and remove TXT records in signing.test."),
        "{doc:#}"
    );

    // One ChangeBatch to publish the probe, one to withdraw it, each followed by GetChange.
    let requests = moto.requests()[before..].to_vec();
    let posts: Vec<usize> = (0..requests.len())
        .filter(|&i| requests[i].0 == "POST")
        .collect();
    assert_eq!(posts.len(), 2, "{requests:#?}");
    for &i in &posts {
        assert_eq!(requests[i].1, rrset);
        assert!(
            requests[i + 1..]
                .iter()
                .any(|r| r.0 == "GET" && r.1.starts_with("/2013-04-01/change/")),
            "no GetChange after change {i}: {requests:#?}"
        );
    }
    let (publish, withdraw) = (&requests[posts[0]].2, &requests[posts[1]].2);
    assert!(
        publish.contains("<Action>CREATE</Action>")
            && publish.contains("\"certorch probe ")
            && publish.contains("\"theirs\""),
        "{publish}"
    );
    assert!(withdraw.contains("\"certorch probe "), "{withdraw}");
    // What stays is the other tool's value alone.
    let listed = moto.api(
        "GET",
        &format!("{rrset}?name=_certorch-probe.signing.test&type=TXT&maxitems=1"),
        None,
    );
    assert!(
        listed.contains("&#34;theirs&#34;") || listed.contains("\"theirs\""),
        "{listed}"
    );
    assert!(!listed.contains("certorch probe"), "{listed}");
    // The secret access key is in no output.
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));

    // A zone id the account does not have: check names AWS's answer and what to do.
    let wrong = inventory(&bed, &moto, "ZNOSUCHZONE", "route53-wrong.yaml");
    let run = check(&bed, &wrong, false);
    run.expect_code(1);
    assert!(
        run.stdout.contains(
            "FAIL  */* zone: route53 ListResourceRecordSets in hosted zone ZNOSUCHZONE: HTTP 4"
        ) && run
            .stdout
            .contains("NoSuchHostedZone: No hosted zone found with ID: ZNOSUCHZONE"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("fix: dns.route53.hosted_zone_id ZNOSUCHZONE names no hosted zone"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
}
