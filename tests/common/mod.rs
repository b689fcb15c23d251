//! The real test bed for integration tests: Pebble, BIND, Unbound and several sshd hosts,
//! started by `testbed/bed` on an address block of its own (127.N.0.x) and stopped on drop.
//! Tests drive the real `certorch` binary against it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the bed script lives.
fn bed_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testbed/bed")
}

/// The SSH transport certorch uses in the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    OpenSsh,
    Russh,
}

/// The transport under test: `CERTORCH_TEST_TRANSPORT=russh` runs the suite over russh,
/// unset or `openssh` over OpenSSH. Anything else is a mistake in the CI script, not a skip.
pub fn transport() -> Transport {
    match std::env::var("CERTORCH_TEST_TRANSPORT").as_deref() {
        Err(_) | Ok("") | Ok("openssh") => Transport::OpenSsh,
        Ok("russh") => Transport::Russh,
        Ok(other) => panic!("CERTORCH_TEST_TRANSPORT={other}: write openssh or russh"),
    }
}

/// Where certorch keeps its state in the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateBackend {
    /// SQLite in the bed's state directory.
    Sqlite,
    /// The bed's own PostgreSQL (`bed up --postgres`).
    Postgres,
}

/// The state backend under test: `CERTORCH_TEST_STATE=postgres` starts PostgreSQL in every bed
/// and writes its `state:` line into every inventory the helpers make; unset or `sqlite`, the
/// state directory. Anything else is a mistake in the CI script, not a skip.
pub fn state_backend() -> StateBackend {
    match std::env::var("CERTORCH_TEST_STATE").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => StateBackend::Sqlite,
        Ok("postgres") => StateBackend::Postgres,
        Ok(other) => panic!("CERTORCH_TEST_STATE={other}: write sqlite or postgres"),
    }
}

/// A running bed; everything it started is stopped when this is dropped.
pub struct Bed {
    pub dir: PathBuf,
    pub net: u8,
    pub env: HashMap<String, String>,
    pub hosts: usize,
    /// Holds the address block for this bed across test processes.
    _net_lock: fs::File,
}

/// Claims a free 127.N.0.0/24 block: each bed holds a lock file for its N, so tests running in
/// parallel (threads or processes) never share addresses.
fn claim_net() -> (u8, fs::File) {
    for net in 30u8..=250 {
        let path = std::env::temp_dir().join(format!("certorch-bed-net-{net}.lock"));
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("lock file");
        if f.try_lock().is_ok() {
            return (net, f);
        }
    }
    panic!("no free test bed address block (127.30-250.0.x all locked)");
}

impl Bed {
    /// Starts a bed with `hosts` sshd hosts. Panics with the bed's own message if a part
    /// cannot start: a test never skips.
    pub fn up(hosts: usize) -> Bed {
        Bed::up_with(hosts, &[])
    }

    /// Starts a bed with extra `bed up` options.
    pub fn up_with(hosts: usize, extra: &[&str]) -> Bed {
        Bed::up_env(hosts, extra, &[])
    }

    /// Starts a bed with extra `bed up` options and environment variables for it, e.g.
    /// `("PEBBLE_AUTHZREUSE", "0")`: the bed passes `PEBBLE_*` through to Pebble. Variables
    /// set here win over the caller's environment.
    pub fn up_env(hosts: usize, extra: &[&str], env: &[(&str, &str)]) -> Bed {
        let (net, lock) = claim_net();
        let dir = std::env::temp_dir().join(format!("certorch-bed-{net}"));
        let postgres = (state_backend() == StateBackend::Postgres
            && !extra.contains(&"--postgres"))
        .then_some("--postgres");
        let out = Command::new("bash")
            .arg(bed_script())
            .args(["up", "--dir"])
            .arg(&dir)
            .args(["--net", &net.to_string(), "--hosts", &hosts.to_string()])
            .args(extra)
            .args(postgres)
            .envs(env.iter().copied())
            .output()
            .expect("run testbed/bed");
        assert!(
            out.status.success(),
            "test bed failed to start:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = parse_env(&fs::read_to_string(dir.join("env")).expect("bed env file"));
        Bed {
            dir,
            net,
            env,
            hosts,
            _net_lock: lock,
        }
    }

    /// A value from the bed's env file.
    pub fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("bed env has no {key}"))
    }

    /// Host i's name (1-based).
    pub fn host_name(&self, i: usize) -> String {
        format!("host{i}.example.test")
    }

    /// Host i's address.
    pub fn host_addr(&self, i: usize) -> String {
        self.get(&format!("HOST{i}_ADDR")).to_string()
    }

    /// A directory of the test's own under the bed dir.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.dir.join("scratch").join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// The common head of an inventory for this bed (acme, dns, ssh), with `tsig_file` as the
    /// TSIG key file. TXT records get a TTL of 2 s: the bed's resolver caches them that long,
    /// and a test that re-presents at a name should not wait out certorch's 60 s default.
    /// Tests about caching replace `  ttl: 2\n` with their own (see [`Bed::with_ttl`]).
    pub fn inventory_head(&self, tsig_file: &str) -> String {
        let head = format!(
            r#"acme:
  directory: {dir}
  contact: [mailto:ops@example.test]
  trust_root: {ca}
dns:
  signing_zone: signing.test
  ttl: 2
  resolver: {resolver}
  propagation_timeout: 60s
  rfc2136:
    server: {bind}:53
    secret_file: {tsig}
{ssh}"#,
            dir = self.get("PEBBLE_DIRECTORY"),
            ca = self.get("PEBBLE_CA"),
            resolver = self.get("RESOLVER_ADDR"),
            bind = self.get("BIND_ADDR"),
            tsig = tsig_file,
            ssh = self.ssh_block(transport()),
        );
        head + &self.state_line()
    }

    /// The inventory's `state:` line for the backend under test: the bed's PostgreSQL, or
    /// nothing (the tests pass the state directory with --state).
    pub fn state_line(&self) -> String {
        match state_backend() {
            StateBackend::Sqlite => String::new(),
            StateBackend::Postgres => format!("state: \"{}\"\n", self.get("PG_URL")),
        }
    }

    /// A query on certorch's state, whichever the backend: each row's columns as text (NULL
    /// as ""). For checks of what was recorded, not for certorch's own reads.
    pub fn state_query(&self, sql: &str) -> Vec<Vec<String>> {
        match state_backend() {
            StateBackend::Sqlite => {
                // Read-write (never created): a run killed inside a write leaves a hot journal
                // that a read-only connection may not roll back (SQLITE_READONLY_ROLLBACK).
                let db = rusqlite::Connection::open_with_flags(
                    self.state_dir().join("state.db"),
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE,
                )
                .unwrap();
                let mut st = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
                let n = st.column_count();
                st.query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => String::new(),
                                rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                                rusqlite::types::ValueRef::Real(f) => f.to_string(),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    String::from_utf8_lossy(t).into_owned()
                                }
                            })
                        })
                        .collect()
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            StateBackend::Postgres => self
                .psql(sql)
                .trim_end_matches('\n')
                .split('\x1e')
                .filter(|r| !r.is_empty())
                .map(|r| r.split('\x1f').map(str::to_string).collect())
                .collect(),
        }
    }

    /// The first column of the first row of [`Bed::state_query`].
    pub fn state_value(&self, sql: &str) -> String {
        self.state_query(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or_else(|| panic!("no row from {sql}"))
    }

    /// Whether certorch has made its state: the state directory, or its schema in the bed's
    /// PostgreSQL.
    pub fn state_exists(&self) -> bool {
        match state_backend() {
            StateBackend::Sqlite => self.state_dir().exists(),
            StateBackend::Postgres => {
                self.psql("SELECT to_regclass('certorch_schema') IS NOT NULL")
                    .trim()
                    == "t"
            }
        }
    }

    /// The files that hold certorch's state, to search them for what must not be there: the
    /// state directory's, or a fresh dump of the bed's PostgreSQL database.
    pub fn state_files(&self) -> Vec<PathBuf> {
        match state_backend() {
            StateBackend::Sqlite => files_under(&self.state_dir()),
            StateBackend::Postgres => {
                static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let dump = self.scratch("pg-dump").join(format!("state-{n}.sql"));
                fs::write(&dump, self.pg_dump(&[])).unwrap();
                vec![dump]
            }
        }
    }

    /// What certorch's state holds now, to compare before and after a command that must not
    /// change it: each state file's name and digest, or the database's data.
    pub fn state_snapshot(&self) -> String {
        match state_backend() {
            StateBackend::Sqlite => format!("{:?}", digest_files(&files_under(&self.state_dir()))),
            // pg_dump brackets its output with \restrict and \unrestrict lines that carry a
            // random key of each dump's own: not data.
            StateBackend::Postgres => self
                .pg_dump(&["--data-only"])
                .lines()
                .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Forgets certorch's state, as if the bastion were new.
    pub fn forget_state(&self) {
        match state_backend() {
            StateBackend::Sqlite => fs::remove_dir_all(self.state_dir()).unwrap(),
            StateBackend::Postgres => {
                self.psql(
                    "DROP SCHEMA public CASCADE; CREATE SCHEMA public; \
                     DROP SCHEMA IF EXISTS certorch_dry_run CASCADE",
                );
            }
        }
    }

    /// Holds certorch's run lock as another run would, until the guard is dropped: the state
    /// directory's lock file, or the advisory lock in a psql session.
    pub fn hold_state_lock(&self) -> StateLock {
        match state_backend() {
            StateBackend::Sqlite => {
                fs::create_dir_all(self.state_dir()).unwrap();
                let f = fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(self.state_dir().join("lock"))
                    .unwrap();
                f.lock().unwrap();
                StateLock::File(f)
            }
            StateBackend::Postgres => {
                use std::io::{BufRead, Write};
                // certorch's key for the default schema (state/postgres.rs: lock_key).
                let key = {
                    use sha2::{Digest, Sha256};
                    let d = Sha256::digest(b"certorch run lock ");
                    i64::from_be_bytes(d[..8].try_into().unwrap())
                };
                let mut child = Command::new(self.get("PG_PSQL"))
                    .args(["-X", "-q", "-A", "-t", "-h", self.get("PG_SOCKET_DIR")])
                    .args(["-U", "certorch", "-d", "certorch"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap();
                let mut stdin = child.stdin.take().unwrap();
                writeln!(stdin, "SELECT pg_advisory_lock({key});\n\\echo locked").unwrap();
                let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
                assert!(
                    lines.any(|l| l.unwrap() == "locked"),
                    "psql never took the lock"
                );
                StateLock::Session(stdin, Killed(child))
            }
        }
    }

    /// pg_dump of the bed's database, with `args`.
    fn pg_dump(&self, args: &[&str]) -> String {
        let out = Command::new(Path::new(self.get("PG_PSQL")).with_file_name("pg_dump"))
            .args(["-h", self.get("PG_SOCKET_DIR"), "-U", "certorch"])
            .args(args)
            .arg("certorch")
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs `sql` with psql on the bed's PostgreSQL (over its socket, as the superuser
    /// `certorch`); unaligned output, fields separated by 0x1f, rows by 0x1e. Panics on an error.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.get("PG_PSQL"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-F",
                "\x1f",
                "-R",
                "\x1e",
                "-h",
            ])
            .arg(self.get("PG_SOCKET_DIR"))
            .args(["-p", "5432", "-U", "certorch", "-d", "certorch", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The inventory's `ssh:` block for `transport`: OpenSSH through the bed's ssh_config;
    /// russh, which reads no ssh_config, with the same known_hosts and key given directly.
    pub fn ssh_block(&self, transport: Transport) -> String {
        match transport {
            Transport::OpenSsh => format!(
                "ssh:\n  config: {}\n  connect_timeout: 20s\n",
                self.get("SSH_CONFIG")
            ),
            Transport::Russh => format!(
                "ssh:\n  transport: russh\n  known_hosts: {}\n  identity: {}\n  connect_timeout: 20s\n",
                self.get("KNOWN_HOSTS"),
                self.get("SSH_IDENTITY")
            ),
        }
    }

    /// The inventory head with `publisher` (YAML lines under `dns:`, indented two spaces) in
    /// place of the rfc2136 block.
    pub fn inventory_head_publishing(&self, publisher: &str) -> String {
        let head = self.inventory_head(self.get("TSIG_KEY_FILE"));
        let start = head.find("  rfc2136:").expect("rfc2136 block");
        let end = head.find("ssh:").expect("ssh block");
        format!("{}{publisher}{}", &head[..start], &head[end..])
    }

    /// The standard certificate block for host i: its own name and www, files under /etc/ssl.
    pub fn www_cert(&self, i: usize) -> String {
        format!(
            r#"      www:
        names: [host{i}.example.test, www.host{i}.example.test]
        key: /etc/ssl/private/www.key
        cert: /etc/ssl/certs/www.crt
        chain: /etc/ssl/certs/www.chain.pem
        fullchain: /etc/ssl/certs/www.pem
        reload: "touch /root/reloaded-www"
"#
        )
    }

    /// An inventory with hosts 1..=n each carrying the standard `www` certificate.
    pub fn standard_inventory(&self, n: usize) -> PathBuf {
        let text = self.inventory_head(self.get("TSIG_KEY_FILE")) + &self.hosts_yaml(n);
        self.write_inventory("inventory.yaml", &text)
    }

    /// The `hosts:` section for hosts 1..=n, each with the standard `www` certificate.
    pub fn hosts_yaml(&self, n: usize) -> String {
        let mut text = String::from("hosts:\n");
        for i in 1..=n {
            text.push_str(&format!(
                "  {}:\n    address: {}\n    certs:\n",
                self.host_name(i),
                self.host_addr(i)
            ));
            text.push_str(&self.www_cert(i));
        }
        text
    }

    /// Asserts that on host i the certificate at `cert` is for the key at `key`.
    pub fn assert_key_matches(&self, i: usize, cert: &str, key: &str) {
        assert_eq!(
            self.ssh_ok(i, &format!("openssl x509 -in {cert} -noout -pubkey")),
            self.ssh_ok(i, &format!("openssl pkey -in {key} -pubout")),
            "host{i}: {cert} is not for {key}"
        );
    }

    /// Writes an inventory file into the bed dir.
    pub fn write_inventory(&self, name: &str, text: &str) -> PathBuf {
        let p = self.scratch("inventories").join(name);
        fs::write(&p, text).unwrap();
        p
    }

    /// The state directory the tests give certorch.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("scratch/state")
    }

    /// The temporary directory certorch runs with, so tests can check what it left there.
    pub fn certorch_tmp(&self) -> PathBuf {
        self.scratch("certorch-tmp")
    }

    /// Runs the real certorch binary with the bed's state directory.
    pub fn certorch(&self, inventory: &Path, args: &[&str]) -> Run {
        Run::from(
            self.certorch_command(inventory, args)
                .output()
                .expect("run certorch"),
        )
    }

    /// Runs a command on host i over the bed's ssh config.
    pub fn ssh(&self, i: usize, command: &str) -> Output {
        Command::new("ssh")
            .arg("-F")
            .arg(self.get("SSH_CONFIG"))
            .arg(format!("root@{}", self.host_addr(i)))
            .arg(command)
            .output()
            .expect("run ssh")
    }

    /// Like [`Bed::ssh`] but asserts success and returns stdout.
    pub fn ssh_ok(&self, i: usize, command: &str) -> String {
        let out = self.ssh(i, command);
        assert!(
            out.status.success(),
            "on host{i}: `{command}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops host i's sshd, as if the host were down.
    pub fn stop_host(&self, i: usize) {
        let st = Command::new("bash")
            .arg(bed_script())
            .args(["stop-host", "--dir"])
            .arg(&self.dir)
            .args(["--host", &i.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "stop-host {i}");
    }

    /// Starts host i again after [`Bed::stop_host`] or [`Bed::signal_host`] with `KILL`: a
    /// fresh namespace over the same files, as after a reboot; returns once it answers SSH.
    pub fn start_host(&self, i: usize) {
        let out = Command::new("bash")
            .arg(bed_script())
            .args(["start-host", "--dir"])
            .arg(&self.dir)
            .args(["--host", &i.to_string()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "start-host {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Every process in host i's mount namespace: its sshd, SSH sessions, what they started.
    pub fn host_pids(&self, i: usize) -> Vec<u32> {
        let pidfile = self.dir.join(format!("run/host{i}.sshd.pid"));
        let sshd =
            fs::read_to_string(&pidfile).unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()));
        let ns = fs::read_link(format!("/proc/{}/ns/mnt", sshd.trim()))
            .unwrap_or_else(|e| panic!("host{i}'s sshd ({}) is gone: {e}", sshd.trim()));
        let mut pids: Vec<u32> = fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/mnt")).is_ok_and(|n| n == ns))
            .collect();
        pids.sort_unstable();
        assert!(!pids.is_empty(), "no process in host{i}'s namespace");
        pids
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`) to every process in host i's namespace: a host
    /// that freezes, thaws, or dies with everything it runs.
    pub fn signal_host(&self, i: usize, signal: &str) {
        let pids: Vec<String> = self.host_pids(i).iter().map(u32::to_string).collect();
        // A process that ended since the list was made is no failure.
        Command::new("kill")
            .arg(format!("-{signal}"))
            .args(&pids)
            .status()
            .unwrap();
    }

    /// Pebble's current issuing root, from its management API.
    pub fn pebble_root(&self) -> String {
        let url = format!("{}/roots/0", self.get("PEBBLE_MGMT"));
        let out = Command::new("curl")
            .args(["-sf", "--cacert", self.get("PEBBLE_CA"), &url])
            .output()
            .expect("curl");
        assert!(out.status.success(), "fetch {url}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Adds a second name server for signing.test (TTL 1 s) at 127.NET.0.9, where nothing
    /// answers: a run then waits for propagation after publishing, until
    /// [`Bed::remove_dead_signing_ns`].
    pub fn add_dead_signing_ns(&self) {
        let dead = format!("127.{}.0.9", self.net);
        self.admin_update(&format!(
            "update add signing.test 1 NS ns2.signing.test.\nupdate add ns2.signing.test 1 A {dead}"
        ));
    }

    /// Removes the name server [`Bed::add_dead_signing_ns`] added, and waits until the bed's
    /// resolver (which caches like a real one) has forgotten it.
    pub fn remove_dead_signing_ns(&self) {
        let dead = format!("127.{}.0.9", self.net);
        self.admin_update(&format!(
            "update delete signing.test NS ns2.signing.test.\nupdate delete ns2.signing.test A {dead}"
        ));
        self.wait_resolver_forgets("signing.test", "NS", "ns2.signing.test");
    }

    /// Starts certorch with `args` (output dropped) and returns it once the signing zone has a
    /// TXT record at `name`; panics if that takes 30 s or certorch ends first.
    pub fn certorch_until_published(
        &self,
        inventory: &Path,
        args: &[&str],
        name: &str,
    ) -> std::process::Child {
        let mut child = self
            .certorch_command(inventory, args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while self.txt(name).is_empty() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "certorch never published {name}"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "certorch ended before it published {name}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        child
    }

    /// The TXT values at `name` on the bed's authoritative server.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let out = Command::new("dig")
            .args([
                "+short",
                "+norecurse",
                &format!("@{}", self.get("BIND_ADDR")),
                "TXT",
                name,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim_matches('"').to_string())
            .collect()
    }

    /// Waits (at most 30 s) until the bed's caching resolver answers `rtype` at `name` without
    /// `absent` in any record: a change made through the admin key is only seen by the resolver
    /// once its cached answer's TTL has passed.
    pub fn wait_resolver_forgets(&self, name: &str, rtype: &str, absent: &str) {
        let start = std::time::Instant::now();
        loop {
            let out = Command::new("dig")
                .args([
                    "+short",
                    &format!("@{}", self.get("RESOLVER_ADDR")),
                    rtype,
                    name,
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && !text.contains(absent) {
                return;
            }
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "the resolver still answers {name} {rtype} with {absent}: {text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Every TXT record in the signing zone, by AXFR-free means: ask for each host's names and
    /// the targets of the shared fixtures (`shared`, `many`, `pool`).
    pub fn signing_zone_txt(&self) -> Vec<String> {
        let mut all = Vec::new();
        for i in 1..=self.hosts {
            for prefix in ["", "www."] {
                all.extend(self.txt(&format!("{prefix}host{i}.example.test.signing.test")));
            }
        }
        for target in [
            "shared.example.test.signing.test",
            "many.signing.test",
            "pool.signing.test",
        ] {
            all.extend(self.txt(target));
        }
        all
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(bed_script())
            .args(["down", "--dir"])
            .arg(&self.dir)
            .status();
    }
}

fn parse_env(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.trim().to_string(),
                v.trim().trim_matches('"').trim_matches('\'').to_string(),
            )
        })
        .collect()
}

/// A finished certorch run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Panics with the whole output unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The `--json` document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", self.stdout, self.stderr))
    }
}

/// Every file under `dir`, recursively (following no links).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            out.extend(files_under(&p));
        } else if ft.is_file() {
            out.push(p);
        }
    }
    out
}

/// Every file and directory under `dir`, recursively (following no links).
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(entries_under(&p));
        }
        out.push(p);
    }
    out
}

/// The base64 body of a PEM block, joined on one line, for searching.
pub fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

impl Bed {
    /// Starts a bed whose CA issues certificates valid for `seconds`.
    pub fn up_short_lived(hosts: usize, seconds: u32) -> Bed {
        Bed::up_with(hosts, &["--cert-validity", &seconds.to_string()])
    }

    /// Sends an RFC 2136 update to the signing zone with the bed's admin key (`nsupdate` lines
    /// between `zone` and `send`).
    pub fn admin_update(&self, lines: &str) {
        use std::io::Write;
        let script = format!(
            "server {} 53\nzone signing.test\n{lines}\nsend\n",
            self.get("BIND_ADDR")
        );
        let mut child = Command::new("nsupdate")
            .args(["-k", self.get("ADMIN_TSIG_KEY_FILE")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nsupdate: {lines}");
    }

    /// Opens certorch's state database for inspection.
    pub fn state_db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.state_dir().join("state.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
    }

    /// A command for the certorch binary with the bed's state directory, not yet run.
    pub fn certorch_command(&self, inventory: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_certorch"));
        c.arg("--inventory").arg(inventory);
        // On PostgreSQL the inventory's `state:` line says where (the helpers write it); an
        // inventory a test wrote by hand without it gets the URL with --state.
        let has_state_line =
            fs::read_to_string(inventory).is_ok_and(|t| t.lines().any(|l| l.starts_with("state:")));
        match state_backend() {
            StateBackend::Sqlite => {
                c.arg("--state").arg(self.state_dir());
            }
            StateBackend::Postgres if !has_state_line => {
                c.arg("--state").arg(self.get("PG_URL"));
            }
            StateBackend::Postgres => {}
        }
        c.args(args)
            .env("TMPDIR", self.certorch_tmp())
            .env_remove("CERTORCH_INVENTORY")
            .env_remove("CERTORCH_STATE")
            // The bed's key comes from the inventory; an agent of the person running the tests
            // would add keys the hosts refuse (OpenSSH ignores them: IdentitiesOnly).
            .env_remove("SSH_AUTH_SOCK");
        c
    }
}

/// SHA-256 of each file, for "nothing changed" checks.
pub fn digest_files(paths: &[PathBuf]) -> Vec<(PathBuf, String)> {
    paths
        .iter()
        .map(|p| {
            let out = Command::new("sha256sum").arg(p).output().unwrap();
            (
                p.clone(),
                String::from_utf8_lossy(&out.stdout)
                    .split(' ')
                    .next()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// `inventory` (text built on [`Bed::inventory_head`]) with `dns.ttl` set to `ttl` seconds.
pub fn set_ttl(inventory: &str, ttl: u32) -> String {
    assert!(
        inventory.contains("\n  ttl: 2\n"),
        "no dns.ttl line to replace"
    );
    inventory.replacen("\n  ttl: 2\n", &format!("\n  ttl: {ttl}\n"), 1)
}

/// Verifies `fullchain` (leaf first) against `root` with openssl, as an operator would.
pub fn verify_chain(bed: &Bed, root: &str, fullchain: &str, tag: &str) {
    let dir = bed.scratch(&format!("verify-{tag}"));
    let blocks: Vec<String> = fullchain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .filter(|b| b.contains("BEGIN CERTIFICATE"))
        .map(str::to_string)
        .collect();
    assert!(
        blocks.len() >= 2,
        "{tag}: the full chain has {} certificate(s)",
        blocks.len()
    );
    fs::write(dir.join("root.pem"), root).unwrap();
    fs::write(dir.join("leaf.pem"), &blocks[0]).unwrap();
    fs::write(dir.join("untrusted.pem"), blocks[1..].concat()).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.join("root.pem"))
        .arg("-untrusted")
        .arg(dir.join("untrusted.pem"))
        .arg(dir.join("leaf.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tag}: chain does not verify against Pebble's root: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Bed {
    /// Host i's own `/etc/ssl`, as the bastion sees it (DIR/hosts/host<i>/etc-ssl).
    pub fn host_etc_ssl(&self, i: usize) -> PathBuf {
        self.dir.join(format!("hosts/host{i}/etc-ssl"))
    }

    /// Asserts that host i serves a valid standard `www` certificate: the full chain verifies
    /// against Pebble's current root, the key matches it, and it has the names `names`.
    pub fn assert_www_valid(&self, i: usize, root: &str, names: &[&str]) {
        let full = self.ssh_ok(i, "cat /etc/ssl/certs/www.pem");
        verify_chain(self, root, &full, &format!("host{i}"));
        self.assert_key_matches(i, "/etc/ssl/certs/www.pem", "/etc/ssl/private/www.key");
        let have = self.cert_names(i, "/etc/ssl/certs/www.pem");
        for n in names {
            assert!(
                have.iter().any(|h| h == n),
                "host{i}: {n} not in the certificate's names {have:?}"
            );
        }
    }

    /// The DNS names of the (first) certificate in `path` on host i.
    pub fn cert_names(&self, i: usize, path: &str) -> Vec<String> {
        let san = self.ssh_ok(
            i,
            &format!("openssl x509 -in {path} -noout -ext subjectAltName"),
        );
        san.lines()
            .skip(1)
            .flat_map(|l| l.split(','))
            .filter_map(|n| n.trim().strip_prefix("DNS:").map(str::to_string))
            .collect()
    }

    /// Asserts that nothing staged or temporary (`*.certorch-new`, `*.certorch-new.<pid>`,
    /// `*.certorch-tmp`, a staging directory `.certorch.XXXXXXXXXX`) is left in host i's
    /// /etc/ssl.
    pub fn assert_nothing_staged(&self, i: usize) {
        let left: Vec<PathBuf> = entries_under(&self.host_etc_ssl(i))
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.contains(".certorch-new")
                    || name.contains(".certorch-tmp")
                    || name.starts_with(".certorch.")
            })
            .collect();
        assert!(left.is_empty(), "host{i}: staged files left: {left:?}");
    }
}

/// The run lock held by the test (see [`Bed::hold_state_lock`]).
pub enum StateLock {
    File(fs::File),
    Session(std::process::ChildStdin, Killed),
}

/// A spawned process killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// nothing running.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Bed {
    fn daemon_command(&self, command: &str, name: &str) {
        let out = Command::new("bash")
            .arg(bed_script())
            .args([command, "--dir"])
            .arg(&self.dir)
            .args(["--daemon", name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "bed {command} {name}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops one of the bed's daemons (`named`, the primary; `named2`; `unbound`; `pebble`...)
    /// by its pid file, as if it had crashed.
    pub fn stop_daemon(&self, name: &str) {
        self.daemon_command("stop-daemon", name);
    }

    /// Starts `named`, `named2` or `unbound` again as the bed started it; returns once it
    /// answers.
    pub fn start_daemon(&self, name: &str) {
        self.daemon_command("start-daemon", name);
    }

    /// The pid of the bed's running daemon `name` (from DIR/run/NAME.pid).
    pub fn daemon_pid(&self, name: &str) -> u32 {
        let path = self.dir.join("run").join(format!("{name}.pid"));
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// Freezes the daemon `name` (SIGSTOP): it keeps its sockets, so queries and updates time
    /// out instead of being refused. It runs again when the guard is thawed or dropped.
    pub fn freeze(&self, name: &str) -> Frozen {
        let pid = self.daemon_pid(name);
        signal(pid, "STOP");
        Frozen { pid, thawed: false }
    }

    /// Runs certorch in the background with its stderr read line by line as it comes, so a
    /// test can act at a point of the run (with `-v`, e.g. a `propagation:` line).
    pub fn certorch_live(&self, inventory: &Path, args: &[&str]) -> LiveRun {
        use std::io::BufRead;
        let mut child = self
            .certorch_command(inventory, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run certorch");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        LiveRun {
            child: Killed(child),
            lines: rx,
            seen: Vec::new(),
            reader: Some(reader),
        }
    }

    /// Adds TXT records (name, value) on the second name server (`--second-ns`) with the bed's
    /// admin key: what a zone transfer would have brought it.
    pub fn copy_to_ns2(&self, records: &[(String, String)]) {
        use std::io::Write;
        let mut script = format!("server {} 53\nzone signing.test\n", self.get("NS2_ADDR"));
        for (n, v) in records {
            script.push_str(&format!("update add {n} 60 TXT \"{v}\"\n"));
        }
        script.push_str("send\n");
        let mut child = Command::new("nsupdate")
            .args(["-t", "10", "-k", self.get("ADMIN_TSIG_KEY_FILE")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "nsupdate at ns2");
    }
}

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill -s {sig} {pid}");
}

/// A daemon frozen by [`Bed::freeze`]; thawed (SIGCONT) by [`Frozen::thaw`] or on drop.
pub struct Frozen {
    pid: u32,
    thawed: bool,
}

impl Frozen {
    pub fn thaw(mut self) {
        signal(self.pid, "CONT");
        self.thawed = true;
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if !self.thawed {
            let _ = Command::new("kill")
                .args(["-s", "CONT", &self.pid.to_string()])
                .status();
        }
    }
}

/// A certorch run in progress (see [`Bed::certorch_live`]).
pub struct LiveRun {
    child: Killed,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl LiveRun {
    /// Waits (at most `secs`) for a line of stderr containing `needle` and returns it; panics
    /// with everything seen so far if none comes.
    pub fn wait_for_line(&mut self, needle: &str, secs: u64) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with `{needle}` from certorch within {secs}s:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits for the run to end (it gets `secs` at most) and returns it.
    pub fn finish(mut self, secs: u64) -> Run {
        use std::io::Read;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        let status = loop {
            if let Some(st) = self.child.0.try_wait().unwrap() {
                break st;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "certorch still runs after {secs}s:\n{}",
                self.seen.join("\n")
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.0.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.seen.extend(self.lines.try_iter());
        Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr: self.seen.join("\n") + "\n",
        }
    }
}

/// Asserts that none of the private keys now on hosts 1..=n is anywhere on the bastion (the
/// state directory, certorch's temporary directory) or in what `runs` printed.
pub fn assert_no_key_on_bastion(bed: &Bed, n: usize, key: &str, runs: &[&Run]) {
    let mut bastion_files = bed.state_files();
    bastion_files.extend(files_under(&bed.certorch_tmp()));
    assert!(
        !bastion_files.is_empty(),
        "the state should hold the account"
    );
    for i in 1..=n {
        let pem = bed.ssh_ok(i, &format!("cat {key}"));
        let body = pem_body(&pem);
        assert!(body.len() > 100, "host{i}: {key} is no key");
        let needle = &body[20..80];
        for f in &bastion_files {
            let data = fs::read(f).unwrap();
            assert!(
                !String::from_utf8_lossy(&data).contains(needle),
                "host{i}'s key material in {}",
                f.display()
            );
        }
        for r in runs {
            assert!(!r.stdout.contains(needle) && !r.stderr.contains(needle));
        }
    }
    for f in &bastion_files {
        let text = String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned();
        assert!(
            !text.contains("PRIVATE KEY"),
            "a private key in {}",
            f.display()
        );
    }
}

/// A tmpfs of `size` (e.g. `16m`) mounted on a directory of the bastion (mode 0700), unmounted
/// on drop: a state directory that fills up or turns read-only.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).expect("create the mount point");
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount a tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }

    /// Remounts it read-only (`ro`) or read-write (`rw`).
    pub fn remount(&self, how: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{how}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(st.success(), "remount {} {how}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Something (a certorch the test failed to stop) still holds a file there.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}
