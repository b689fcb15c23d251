//! `certorch check`: a preflight that touches no CA order and no live file. Every problem that
//! would make a run fail is reported with its fix: SSH (reachable, host key, login), the host
//! (openssl, writable directories, the reload command), DNS (every `_acme-challenge` CNAME into
//! the signing zone, wildcard capture, loops; CAA records that leave the CA out), the signing zone (every name server answers, our
//! key may update it, by adding and removing a probe record) and the CA (directory, account).

use futures::StreamExt;
use serde::Serialize;

use super::hosts;
use crate::acme;
use crate::dns::lookup;
use crate::dns::signing::SigningZone;
use crate::host::sh::Cmd;
use crate::inventory::{Inventory, Target};
use crate::problem::Problem;
use crate::report::Reporter;
use crate::state::State;

/// One checked fact.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub host: String,
    pub cert: String,
    /// `ssh`, `host`, `dns`, `zone` or `ca`.
    pub area: &'static str,
    pub ok: bool,
    pub what: String,
    pub fix: Option<String>,
}

fn finding(
    host: &str,
    cert: &str,
    area: &'static str,
    r: Result<String, (String, String)>,
) -> Finding {
    match r {
        Ok(what) => Finding {
            host: host.into(),
            cert: cert.into(),
            area,
            ok: true,
            what,
            fix: None,
        },
        Err((what, fix)) => Finding {
            host: host.into(),
            cert: cert.into(),
            area,
            ok: false,
            what,
            fix: Some(fix),
        },
    }
}

/// `$1` the reload command's program, then paths; prints `openssl\t…`, `reload\t…`,
/// `path\tok|nowrite\tPATH\tDIR`.
const HOST_SCRIPT: &str = r#"if command -v openssl >/dev/null 2>&1; then printf 'openssl\t%s\n' "$(openssl version)"; else printf 'openssl\tmissing\n'; fi
if [ -n "$1" ]; then if command -v -- "$1" >/dev/null 2>&1; then printf 'reload\tok\n'; else printf 'reload\tmissing\n'; fi; fi
shift
for p in "$@"; do
  d=${p%/*}; [ -n "$d" ] || d=/
  while [ ! -d "$d" ]; do d=${d%/*}; [ -n "$d" ] || d=/; done
  if [ -w "$d" ]; then printf 'path\tok\t%s\t%s\n' "$p" "$d"; else printf 'path\tnowrite\t%s\t%s\n' "$p" "$d"; fi
done
"#;

/// What `check` prints: the findings (`--json`: the list), as text with passed checks shown
/// when `show_ok`.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Report {
    pub findings: Vec<Finding>,
    #[serde(skip)]
    pub show_ok: bool,
}

impl crate::report::Render for Report {
    fn text(
        &self,
        out: &mut dyn std::io::Write,
        _err: &mut dyn std::io::Write,
    ) -> std::io::Result<()> {
        for f in &self.findings {
            if f.ok {
                if self.show_ok {
                    writeln!(out, "ok    {}/{} {}: {}", f.host, f.cert, f.area, f.what)?;
                }
            } else {
                writeln!(out, "FAIL  {}/{} {}: {}", f.host, f.cert, f.area, f.what)?;
                if let Some(fix) = &f.fix {
                    writeln!(out, "      fix: {fix}")?;
                }
            }
        }
        // Every missing or wrong _acme-challenge record once more, ready to paste into the zones.
        let records: Vec<&str> = self
            .findings
            .iter()
            .filter(|f| !f.ok && f.area == "dns")
            .filter_map(|f| f.fix.as_deref())
            .filter_map(|fix| fix.find("_acme-challenge.").map(|i| &fix[i..]))
            .filter(|r| r.contains(" IN CNAME "))
            .collect();
        if !records.is_empty() {
            writeln!(out, "\n; records to add (zone-file lines):")?;
            for r in records {
                writeln!(out, "{r}")?;
            }
        }
        Ok(())
    }
}

/// Runs every check for the targets.
pub async fn check(
    inv: &Inventory,
    targets: &[Target],
    state: &State,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Vec<Finding> {
    let mut out = Vec::new();
    // The signing zone and the CA, once.
    let dns = match SigningZone::new(inv).await {
        Ok(d) => Some(d),
        Err(e) => {
            out.push(finding(
                "*",
                "*",
                "zone",
                Err((e.to_string(), e.hint().unwrap_or_default())),
            ));
            None
        }
    };
    if let Some(dns) = &dns {
        let zone = dns.zone().clone();
        match lookup::authoritative_servers(dns.resolver(), &zone).await {
            Ok(servers) => {
                for s in servers {
                    let r = match lookup::query(s, &zone, hickory_proto::rr::RecordType::SOA, false)
                        .await
                    {
                        Ok(m) if m.metadata.authoritative => {
                            Ok(format!("name server {s} answers for {zone}"))
                        }
                        Ok(_) => Err((
                            format!(
                                "name server {s} is listed for {zone} but does not answer authoritatively"
                            ),
                            format!("load {zone} on {s} or remove its NS record"),
                        )),
                        Err(e) => Err((
                            format!("name server {s} of {zone}: {e}"),
                            e.hint().unwrap_or_default(),
                        )),
                    };
                    out.push(finding("*", "*", "zone", r));
                }
            }
            Err(e) => out.push(finding(
                "*",
                "*",
                "zone",
                Err((
                    format!("finding the name servers of {zone}: {e}"),
                    e.hint().unwrap_or_default(),
                )),
            )),
        }
        let probe = dns.probe().await.map(|()| match dns.key_name() {
            Some(k) => format!("key `{k}` may add and remove TXT records in {zone}"),
            None => format!("the publisher can add and remove TXT records in {zone}"),
        });
        out.push(finding(
            "*",
            "*",
            "zone",
            probe.map_err(|e| (e.to_string(), e.hint().unwrap_or_default())),
        ));
    }
    out.push(finding("*", "*", "ca", ca(inv, state).await));

    // Each host, once; each certificate's names.
    let control = match hosts::control_dir() {
        Ok(d) => d,
        Err(e) => {
            out.push(finding(
                "*",
                "*",
                "ssh",
                Err((
                    format!("cannot create a directory for SSH control sockets: {e}"),
                    "check that $TMPDIR is writable".into(),
                )),
            ));
            return out;
        }
    };
    let connected = hosts::connect_all(
        inv,
        targets,
        control.path(),
        concurrency,
        reporter,
        &Default::default(),
    )
    .await;
    let resolver = inv.dns.resolver.or_else(lookup::system_resolver);
    let identities = super::preflight::Identities::new(inv);
    let identities = &identities;
    let per_target: Vec<Vec<Finding>> = futures::stream::iter(connected)
        .map(|(target, conn)| {
            let dns = dns.as_ref();
            async move {
                let host = &inv.hosts[target.host];
                let mut f = Vec::new();
                let specs: Vec<_> = host
                    .certs
                    .iter()
                    .filter(|s| target.cert.as_ref().is_none_or(|c| c == &s.label))
                    .collect();
                match &conn {
                    Ok(_) => f.push(finding(
                        &host.name,
                        "*",
                        "ssh",
                        Ok(format!(
                            "{}@{} accepts the login with a known host key",
                            host.user, host.address
                        )),
                    )),
                    Err(e) => f.push(finding(
                        &host.name,
                        "*",
                        "ssh",
                        Err((e.to_string(), e.hint().unwrap_or_default())),
                    )),
                }
                for spec in specs {
                    if let Ok(conn) = &conn {
                        f.extend(host_checks(conn.as_ref(), &host.name, spec).await);
                    }
                    if let Some(dns) = dns {
                        for name in &spec.names {
                            let r = dns
                                .route(name)
                                .await
                                .map(|t| {
                                    format!(
                                        "_acme-challenge.{} leads to {t}",
                                        name.as_str().trim_start_matches("*.")
                                    )
                                })
                                .map_err(|e| (e.to_string(), e.hint().unwrap_or_default()));
                            f.push(finding(&host.name, &spec.label, "dns", r));
                        }
                    }
                    if let (Some(resolver), crate::inventory::Issuer::Acme) =
                        (resolver, &spec.issuer)
                    {
                        for name in &spec.names {
                            let problems = super::preflight::caa_problems(
                                resolver,
                                identities,
                                std::slice::from_ref(name),
                            )
                            .await;
                            let r = match problems.first() {
                                None => Ok(format!("CAA lets the CA issue for {name}")),
                                Some(p) => {
                                    Err((p.message.clone(), p.hint.clone().unwrap_or_default()))
                                }
                            };
                            f.push(finding(&host.name, &spec.label, "dns", r));
                        }
                    }
                }
                f
            }
        })
        .buffered(concurrency)
        .collect()
        .await;
    out.extend(per_target.into_iter().flatten());
    out
}

async fn host_checks(
    t: &dyn crate::transport::Transport,
    host: &str,
    spec: &crate::inventory::CertSpec,
) -> Vec<Finding> {
    let program = spec
        .reload
        .as_ref()
        .and_then(|r| r.program())
        .unwrap_or("")
        .to_string();
    let paths: Vec<String> = spec.files().iter().map(|p| p.to_string()).collect();
    let cmd = Cmd::script(HOST_SCRIPT, "certorch-check")
        .arg(program.clone())
        .args(paths);
    let out = match t.run(&cmd, None).await {
        Ok(o) => o,
        Err(e) => {
            return vec![finding(
                host,
                &spec.label,
                "host",
                Err((e.to_string(), e.hint().unwrap_or_default())),
            )];
        }
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut f = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        match parts.as_slice() {
            ["openssl", "missing"] => f.push(finding(host, &spec.label, "host", Err(("openssl is not installed".into(), "install openssl (1.1.1 or later) on the host".into())))),
            ["openssl", v] => f.push(finding(host, &spec.label, "host", Ok(format!("{v} is installed")))),
            ["reload", "ok"] => f.push(finding(host, &spec.label, "host", Ok(format!("the reload command `{program}` exists")))),
            ["reload", _] => f.push(finding(
                host,
                &spec.label,
                "host",
                Err((format!("the reload command `{program}` is not found on the host"), "install it or fix `reload` in the inventory".into())),
            )),
            ["path", "ok", p, _] => f.push(finding(host, &spec.label, "host", Ok(format!("{p} can be written")))),
            ["path", _, p, d] => f.push(finding(
                host,
                &spec.label,
                "host",
                Err((format!("{p} cannot be written: {d} is not writable by the login user"), format!("make {d} writable for the login user, or log in as a user who may write there"))),
            )),
            _ => {}
        }
    }
    f
}

/// The CA's directory answers, and whether the account exists.
async fn ca(inv: &Inventory, state: &State) -> Result<String, (String, String)> {
    let directory = &inv.acme.directory;
    match acme::account::load(inv, state).await {
        Ok(Some(a)) => Ok(format!("{directory} answers; account {}", a.id())),
        Ok(None) => acme::account::reachable(inv)
            .await
            .map(|()| {
                format!("{directory} answers; an account will be registered on the first run")
            })
            .map_err(|e| (e.to_string(), e.hint().unwrap_or_default())),
        Err(e) => Err((e.to_string(), e.hint().unwrap_or_default())),
    }
}
