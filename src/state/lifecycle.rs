//! A certificate's place in its lifecycle, persisted at every transition (in the spirit of
//! acme-chief's one status per certificate): a run killed anywhere is resumed by the next from
//! what was recorded, and nothing already obtained at the CA is ordered again.

use time::OffsetDateTime;

use super::db::{Row, vals};
use super::{Error, State, now, parse_time};

/// Where a certificate is in its issuance. Recorded before the step it names is taken remotely
/// (`Ordering` before the new order is sent), so a killed run leaves a row that says what may
/// exist at the CA or on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A key is staged on the host; `csr` holds its CSR.
    Keyed,
    /// A new order is being sent.
    Ordering,
    /// The CA holds the order at `order_url`.
    Ordered,
    /// Its TXT values are published.
    Published,
    /// Every authorization is valid.
    Validated,
    /// The CA issued the chain in `chain_pem`; not yet live on the host.
    Finalized,
    /// The files are live on the host; check, reload and verify may still be owed.
    Deployed,
    /// Live and verified: nothing in flight.
    Done,
    /// The last attempt failed (`kind` says how); nothing in flight.
    Failed,
    /// Given up: its order's authorizations were deactivated.
    Abandoned,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Keyed => "keyed",
            Phase::Ordering => "ordering",
            Phase::Ordered => "ordered",
            Phase::Published => "published",
            Phase::Validated => "validated",
            Phase::Finalized => "finalized",
            Phase::Deployed => "deployed",
            Phase::Done => "done",
            Phase::Failed => "failed",
            Phase::Abandoned => "abandoned",
        }
    }

    fn parse(s: &str) -> Phase {
        match s {
            "keyed" => Phase::Keyed,
            "ordering" => Phase::Ordering,
            "ordered" => Phase::Ordered,
            "published" => Phase::Published,
            "validated" => Phase::Validated,
            "finalized" => Phase::Finalized,
            "deployed" => Phase::Deployed,
            "done" => Phase::Done,
            "abandoned" => Phase::Abandoned,
            // A phase this version does not know is treated as finished with a failure: the
            // certificate is decided afresh from what the host serves.
            _ => Phase::Failed,
        }
    }

    /// Whether something may be in flight at the CA or on the host.
    pub fn in_flight(self) -> bool {
        !matches!(self, Phase::Done | Phase::Failed | Phase::Abandoned)
    }
}

/// One certificate's lifecycle row.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub host: String,
    pub label: String,
    pub phase: Phase,
    pub directory: String,
    pub names: Vec<String>,
    pub csr: Option<Vec<u8>>,
    pub order_url: Option<String>,
    pub chain_pem: Option<String>,
}

/// What the CA may have cached at one signing-zone name: the values published there when it
/// was last asked to look, and for how long a resolver keeps them.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation {
    pub name: String,
    pub values: Vec<String>,
    pub ttl: u32,
    pub asked_at: OffsetDateTime,
}

impl State {
    /// A key is staged on the host for `host/label`, with this CSR: a new attempt begins.
    pub fn keyed(
        &self,
        host: &str,
        label: &str,
        directory: &str,
        names: &[String],
        csr: &[u8],
    ) -> Result<(), Error> {
        let run = self.run_id();
        let names = serde_json::to_string(names).unwrap_or_default();
        self.exec(
            "INSERT INTO lifecycle (host, label, phase, run_id, directory, names, csr, order_url,
                fingerprint, chain_pem, kind, updated_at)
             VALUES (?1, ?2, 'keyed', ?3, ?4, ?5, ?6, NULL, NULL, NULL, NULL, ?7)
             ON CONFLICT (host, label) DO UPDATE SET phase = excluded.phase, run_id = excluded.run_id,
                directory = excluded.directory, names = excluded.names, csr = excluded.csr,
                order_url = NULL, fingerprint = NULL, chain_pem = NULL, kind = NULL,
                updated_at = excluded.updated_at",
            vals![host, label, run, directory, names, csr, now()],
        )
        .map(|_| ())
    }

    /// Moves `host/label` to `phase`, keeping what earlier phases recorded.
    pub fn set_phase(&self, host: &str, label: &str, phase: Phase) -> Result<(), Error> {
        self.exec(
            "UPDATE lifecycle SET phase = ?1, updated_at = ?2 WHERE host = ?3 AND label = ?4",
            vals![phase.as_str(), now(), host, label],
        )
        .map(|_| ())
    }

    /// The CA accepted the order at `url` for `host/label` (recorded in the order log too, with
    /// the ARI identifier of the certificate it `replaces`, if it named one).
    pub fn ordered(
        &self,
        host: &str,
        label: &str,
        url: &str,
        replaces: Option<&str>,
    ) -> Result<(), Error> {
        let row = self.lifecycle(host, label)?;
        let (directory, names) = row.map(|r| (r.directory, r.names)).unwrap_or_default();
        self.record_order(url, &directory, host, label, &names, replaces)?;
        self.exec(
            "UPDATE lifecycle SET phase = 'ordered', order_url = ?1, updated_at = ?2 WHERE host = ?3 AND label = ?4",
            vals![url, now(), host, label],
        )
        .map(|_| ())
    }

    /// The CA issued `chain_pem` (leaf `fingerprint`) for `host/label`; its intermediates are
    /// recorded as issuers of the certificate's directory at once, deployed or not.
    pub fn finalized(
        &self,
        host: &str,
        label: &str,
        fingerprint: &str,
        chain_pem: &str,
    ) -> Result<(), Error> {
        let intermediates: Vec<crate::x509::IssuerCert> =
            crate::x509::pem_certificates(chain_pem.as_bytes())
                .unwrap_or_default()
                .iter()
                .skip(1)
                .filter_map(|der| crate::x509::issuer_cert(der).ok())
                .filter(|i| i.is_ca)
                .collect();
        let t = now();
        self.exec(
            "UPDATE lifecycle SET phase = 'finalized', fingerprint = ?1, chain_pem = ?2, updated_at = ?3
             WHERE host = ?4 AND label = ?5",
            vals![fingerprint, chain_pem, t.as_str(), host, label],
        )?;
        let directory: Option<String> = self
            .db
            .query_opt(
                "SELECT directory FROM lifecycle WHERE host = ?1 AND label = ?2",
                vals![host, label],
            )
            .and_then(|r| r.map(|r| r.text(0)).transpose())
            .map_err(|e| self.write_err(e))?;
        if let Some(d) = directory {
            for i in &intermediates {
                super::insert_issuer(&self.db, &d, i, &t).map_err(|e| self.write_err(e))?;
            }
        }
        Ok(())
    }

    /// The attempt for `host/label` failed with `kind`; nothing of it is in flight any more.
    pub fn failed(&self, host: &str, label: &str, kind: &str) -> Result<(), Error> {
        self.exec(
            "UPDATE lifecycle SET phase = 'failed', kind = ?1, updated_at = ?2 WHERE host = ?3 AND label = ?4",
            vals![kind, now(), host, label],
        )
        .map(|_| ())
    }

    /// The lifecycle row of `host/label`.
    pub fn lifecycle(&self, host: &str, label: &str) -> Result<Option<Lifecycle>, Error> {
        self.row(
            "SELECT host, label, phase, directory, names, csr, order_url, fingerprint, chain_pem, kind, updated_at
             FROM lifecycle WHERE host = ?1 AND label = ?2",
            vals![host, label],
            row,
        )
    }

    /// Every certificate with something in flight (a killed run's work).
    pub fn in_flight(&self) -> Result<Vec<Lifecycle>, Error> {
        if self.version < super::LIFECYCLE_VERSION {
            return Ok(Vec::new());
        }
        self.rows(
            "SELECT host, label, phase, directory, names, csr, order_url, fingerprint, chain_pem, kind, updated_at
             FROM lifecycle WHERE phase NOT IN ('done', 'failed', 'abandoned') ORDER BY host, label",
            &[],
            row,
        )
    }

    /// Records that the CA is asked to look at `name` while `values` are published there.
    pub fn presented(&self, name: &str, values: &[String], ttl: u32) -> Result<(), Error> {
        let vals = serde_json::to_string(values).unwrap_or_default();
        // To the millisecond: the wait before new values is counted from here.
        let at = OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| now());
        self.exec(
            "INSERT INTO presentations (name, vals, ttl, asked_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO UPDATE SET vals = excluded.vals, ttl = excluded.ttl,
                asked_at = excluded.asked_at",
            vals![name, vals, ttl, at],
        )
        .map(|_| ())
    }

    /// The last time the CA was asked to look at `name`, with what was published there; the
    /// caller decides whether a resolver may still cache it.
    pub fn presentation(&self, name: &str) -> Result<Option<Presentation>, Error> {
        self.row(
            "SELECT name, vals, ttl, asked_at FROM presentations WHERE name = ?1",
            vals![name],
            |r| {
                Ok(Presentation {
                    name: r.text(0)?,
                    values: serde_json::from_str(&r.text(1)?).unwrap_or_default(),
                    ttl: u32::try_from(r.int(2)?).map_err(|e| e.to_string())?,
                    asked_at: parse_time(&r.text(3)?),
                })
            },
        )
    }
}

fn row(r: &Row) -> Result<Lifecycle, String> {
    Ok(Lifecycle {
        host: r.text(0)?,
        label: r.text(1)?,
        phase: Phase::parse(&r.text(2)?),
        directory: r.text(3)?,
        names: serde_json::from_str(&r.text(4)?).unwrap_or_default(),
        csr: r.opt_blob(5)?,
        order_url: r.opt_text(6)?,
        chain_pem: r.opt_text(8)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lifecycle_resumes_from_its_row() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        s.begin_run("run").unwrap();
        s.keyed(
            "h",
            "c",
            "https://ca/dir",
            &["a.example.org".into()],
            b"csr",
        )
        .unwrap();
        s.set_phase("h", "c", Phase::Ordering).unwrap();
        assert_eq!(s.in_flight().unwrap()[0].phase, Phase::Ordering);
        s.ordered("h", "c", "https://ca/o/1", None).unwrap();
        s.set_phase("h", "c", Phase::Published).unwrap();
        s.finalized("h", "c", "ff", "PEM").unwrap();
        let r = s.lifecycle("h", "c").unwrap().unwrap();
        assert_eq!(r.phase, Phase::Finalized);
        assert_eq!(r.order_url.as_deref(), Some("https://ca/o/1"));
        assert_eq!(r.csr.as_deref(), Some(&b"csr"[..]));
        assert_eq!(r.names, vec!["a.example.org".to_string()]);
        assert_eq!(s.open_orders().unwrap().len(), 1);
        s.set_phase("h", "c", Phase::Done).unwrap();
        assert!(s.in_flight().unwrap().is_empty());
    }

    #[test]
    fn presentations_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let s = State::open(dir.path()).unwrap();
        s.presented("x.signing.test.", &["v1".into(), "v2".into()], 60)
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let p = s.presentation("x.signing.test.").unwrap().unwrap();
        assert_eq!(p.values, vec!["v1".to_string(), "v2".to_string()]);
        assert_eq!(p.ttl, 60);
        assert!((now - p.asked_at).whole_seconds() < 5);
        assert!(s.presentation("y.signing.test.").unwrap().is_none());
    }
}
