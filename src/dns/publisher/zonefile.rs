//! The zone-file publisher, the OpenDev way: certorch owns the signing zone's file on a DNS
//! host reached over SSH. Each publish or withdraw rewrites the whole file from the operator's
//! template (SOA, NS; `{serial}` replaced by a new serial) plus every TXT record currently
//! published, atomically (temporary file + rename), runs the reload command (`rndc reload
//! <zone>`, `knotc zone-reload`, `nsd-control reload`, …), and waits until the server serves
//! the new serial. A crashed run's records vanish with the next rewrite.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::{Name, RData, RecordType};

use super::{BoxFuture, Publisher};
use crate::dns::txt::TxtSet;
use crate::dns::{Error, lookup};
use crate::host::files::{self, FileSpec};
use crate::inventory::SshConfig;
use crate::inventory::model::ZoneFileConfig;
use crate::inventory::types::FileMode;
use crate::transport::{self, Transport};

/// How long the server may take to serve the new serial after the reload.
const SERVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Rewrites the signing zone's file on its DNS host.
pub struct ZoneFile {
    cfg: ZoneFileConfig,
    ssh: SshConfig,
    zone: Name,
    control: tempfile::TempDir,
    conn: tokio::sync::Mutex<Option<Box<dyn Transport>>>,
    /// (owner name, value) of every record published and not withdrawn, and the last serial.
    current: tokio::sync::Mutex<(BTreeSet<(String, String)>, u32)>,
}

impl ZoneFile {
    pub fn new(cfg: ZoneFileConfig, ssh: SshConfig, zone: Name) -> Result<Self, Error> {
        let control = tempfile::Builder::new()
            .prefix("certorch-ssh.")
            .tempdir()
            .map_err(|e| Error::ZoneFile {
                host: cfg.host.name.clone(),
                path: cfg.path.to_string(),
                detail: format!("cannot create a directory for SSH control sockets: {e}"),
            })?;
        Ok(ZoneFile {
            cfg,
            ssh,
            zone,
            control,
            conn: tokio::sync::Mutex::new(None),
            current: tokio::sync::Mutex::new((BTreeSet::new(), 0)),
        })
    }

    fn err(&self, detail: impl Into<String>) -> Error {
        Error::ZoneFile {
            host: self.cfg.host.name.clone(),
            path: self.cfg.path.to_string(),
            detail: detail.into(),
        }
    }

    /// Renders the zone: the template with its serial, then every current record.
    pub fn render(
        template: &str,
        serial: u32,
        ttl: u32,
        records: &BTreeSet<(String, String)>,
    ) -> String {
        let mut out = template.replace("{serial}", &serial.to_string());
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(
            "; TXT records published by certorch; this file is rewritten on every change\n",
        );
        for (name, value) in records {
            // Values are base64url digests or certorch's probe text: no quotes or backslashes.
            out.push_str(&format!("{name} {ttl} IN TXT \"{value}\"\n"));
        }
        out
    }

    async fn apply(&self, set: &TxtSet, add: bool) -> Result<(), Error> {
        let mut current = self.current.lock().await;
        for r in set.iter() {
            let key = (r.name.to_string(), r.value.clone());
            if add {
                current.0.insert(key);
            } else {
                current.0.remove(&key);
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(0);
        let serial = now.max(current.1.wrapping_add(1));
        current.1 = serial;
        let text = Self::render(&self.cfg.template, serial, set.ttl, &current.0);
        drop(current);

        let mut conn = self.conn.lock().await;
        if conn.is_none() {
            let c = transport::connect(&self.cfg.host, &self.ssh, self.control.path(), None)
                .await
                .map_err(|e| self.err(e.to_string()))?;
            *conn = Some(c);
        }
        let t = conn.as_deref().expect("connected above");
        let mode = FileMode::try_from("0644".to_string()).expect("constant mode");
        let file = FileSpec {
            path: &self.cfg.path,
            content: text.as_bytes(),
            mode,
            owner: None,
            group: None,
        };
        files::stage(t, &file)
            .await
            .map_err(|e| self.err(e.to_string()))?;
        files::commit(t, &[&self.cfg.path], None)
            .await
            .map_err(|e| self.err(e.to_string()))?;
        files::reload(
            t,
            &files::shell_line(&self.cfg.reload, "certorch-reload"),
            &self.cfg.reload,
        )
        .await
        .map_err(|e| self.err(e.to_string()))?;
        drop(conn);
        self.wait_for_serial(serial).await
    }

    /// Polls the server until it serves `serial` (or newer) for the zone.
    async fn wait_for_serial(&self, serial: u32) -> Result<(), Error> {
        let start = Instant::now();
        let mut seen = None;
        while start.elapsed() < SERVE_TIMEOUT {
            if let Ok(m) = lookup::query(self.cfg.server, &self.zone, RecordType::SOA, false).await
            {
                seen = m.answers.iter().find_map(|r| match &r.data {
                    RData::SOA(soa) => Some(soa.serial),
                    _ => None,
                });
                // Serial arithmetic (RFC 1982) is not needed: certorch's serials only grow.
                if seen.is_some_and(|s| s >= serial) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(self.err(format!(
            "{} still serves serial {} after {}s, not {serial}: the reload command `{}` did not take",
            self.cfg.server,
            seen.map_or("nothing".to_string(), |s| s.to_string()),
            SERVE_TIMEOUT.as_secs(),
            self.cfg.reload
        )))
    }
}

impl Publisher for ZoneFile {
    fn publish<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(set, true))
    }

    fn withdraw<'a>(&'a self, set: &'a TxtSet) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(self.apply(set, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_template_serial_and_records() {
        let mut recs = BTreeSet::new();
        recs.insert(("b.acme.example.net.".to_string(), "v2".to_string()));
        recs.insert(("a.acme.example.net.".to_string(), "v1".to_string()));
        let z = ZoneFile::render(
            "$TTL 60\n@ IN SOA ns1 hostmaster {serial} 3600 600 86400 60\n@ IN NS ns1",
            1795420000,
            60,
            &recs,
        );
        assert_eq!(
            z,
            "$TTL 60\n@ IN SOA ns1 hostmaster 1795420000 3600 600 86400 60\n@ IN NS ns1\n\
             ; TXT records published by certorch; this file is rewritten on every change\n\
             a.acme.example.net. 60 IN TXT \"v1\"\nb.acme.example.net. 60 IN TXT \"v2\"\n"
        );
    }
}
