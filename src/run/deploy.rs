//! Putting issued certificates into service: stage every file of a certificate beside its live
//! path, commit them together with the staged key, reload once per host and command, and check
//! on the host that the live key and certificate now belong together.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::{Issued, Keyed};
use crate::host::files::{self, FileSpec};
use crate::host::inspect::{self, Current};
use crate::inventory::RemotePath;
use crate::report::{Outcome, Reporter, Stage};
use crate::state::State;
use crate::x509;

/// Removes a staged key whose certificate will not come in this run.
pub(crate) async fn discard_key(k: &Keyed<'_>) {
    let item = &k.routed.due.item;
    files::discard(item.conn.as_ref(), &[&item.spec.key]).await;
}

/// Deploys every issued certificate; hosts in parallel, each host's certificates in order.
pub(crate) async fn deploy_all(
    issued: Vec<Issued<'_>>,
    state: &State,
    reporter: &dyn Reporter,
    concurrency: usize,
) -> Vec<Outcome> {
    let mut by_host: BTreeMap<String, Vec<Issued>> = BTreeMap::new();
    for i in issued {
        by_host
            .entry(i.keyed.routed.due.item.host.name.clone())
            .or_default()
            .push(i);
    }
    let per_host: Vec<Vec<Outcome>> = futures::stream::iter(by_host.into_values())
        .map(|certs| deploy_host(certs, state, reporter))
        .buffer_unordered(concurrency)
        .collect()
        .await;
    per_host.into_iter().flatten().collect()
}

async fn deploy_host(
    certs: Vec<Issued<'_>>,
    state: &State,
    reporter: &dyn Reporter,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let mut committed = Vec::new();
    for c in certs {
        let item = &c.keyed.routed.due.item;
        item.stage(reporter, Stage::Deploy);
        match write(&c).await {
            Ok(paths) => {
                // The durable point: the certificate is live on the host.
                let names: Vec<String> = item.spec.names.iter().map(|n| n.to_string()).collect();
                let _ = state.record_issued(
                    &item.host.name,
                    &item.spec.label,
                    &names,
                    item.spec.key_type.as_str(),
                    &c.leaf,
                    &c.order_url,
                    &x509::to_pem(&c.chain),
                    &paths,
                );
                let _ = state.set_order_status(&c.order_url, "issued");
                committed.push(c)
            }
            Err((e, hint)) => {
                outcomes.push(item.fail(Stage::Deploy, e, Some(hint)));
            }
        }
    }
    // One reload per distinct command: two certificates of one nginx need one reload.
    let mut reloaded: BTreeMap<String, Result<(), (String, String)>> = BTreeMap::new();
    for c in &committed {
        let item = &c.keyed.routed.due.item;
        if let Some(cmd) = &item.spec.reload
            && !reloaded.contains_key(cmd)
        {
            item.stage(reporter, Stage::Reload);
            let r = files::reload(item.conn.as_ref(), cmd)
                .await
                .map_err(|e| (e.to_string(), e.hint().unwrap_or_default()));
            reloaded.insert(cmd.clone(), r);
        }
    }
    for c in committed {
        let item = &c.keyed.routed.due.item;
        let reload = item.spec.reload.as_ref().and_then(|cmd| reloaded.get(cmd));
        if let Some(Err((e, hint))) = reload {
            outcomes.push(item.fail(Stage::Reload, e, Some(hint.clone())));
            continue;
        }
        outcomes.push(Outcome::Issued {
            host: item.host.name.clone(),
            cert: item.spec.label.clone(),
            reason: c.keyed.routed.due.reason.to_string(),
            names: item.spec.names.iter().map(|n| n.to_string()).collect(),
            serial: c.leaf.serial.clone(),
            fingerprint: c.leaf.fingerprint.clone(),
            not_after: c.leaf.not_after,
        });
    }
    outcomes
}

/// Stages the certificate files, commits them with the staged key, and verifies on the host.
async fn write(c: &Issued<'_>) -> Result<Vec<String>, (String, String)> {
    let item = &c.keyed.routed.due.item;
    let spec = item.spec;
    let t = item.conn.as_ref();
    let leaf = x509::to_pem(&c.chain[..1]);
    let chain = x509::to_pem(&c.chain[1..]);
    let full = x509::to_pem(&c.chain);
    let mut wanted: Vec<(&RemotePath, &str)> = Vec::new();
    if let Some(p) = &spec.cert {
        wanted.push((p, &leaf));
    }
    if let Some(p) = &spec.chain {
        wanted.push((p, &chain));
    }
    if let Some(p) = &spec.fullchain {
        wanted.push((p, &full));
    }
    for (p, content) in &c.extra {
        wanted.push((p, content));
    }
    let mut paths: Vec<&RemotePath> = vec![&spec.key];
    for (path, content) in &wanted {
        let file = FileSpec {
            path,
            content: content.as_bytes(),
            mode: spec.mode,
            owner: spec.owner.as_ref(),
            group: spec.group.as_ref(),
        };
        if let Err(e) = files::stage(t, &file).await {
            files::discard(t, &paths).await;
            return Err((e.to_string(), e.hint().unwrap_or_default()));
        }
        paths.push(path);
    }
    if let Err(e) = files::commit(t, &paths).await {
        files::discard(t, &paths).await;
        return Err((e.to_string(), e.hint().unwrap_or_default()));
    }
    // Read back what is live now: the certificate we issued, with its key.
    match inspect::inspect(t, spec).await {
        Ok(Current::Present(d)) if d.cert.fingerprint == c.leaf.fingerprint && d.key_matches => {
            Ok(paths.iter().map(|p| p.to_string()).collect())
        }
        Ok(_) => Err((
            "after writing, the host does not show the new certificate with its key".into(),
            "another process may have changed the files at the same time; check the paths and run certorch again".into(),
        )),
        Err(e) => Err((e.to_string(), e.hint().unwrap_or_default())),
    }
}
