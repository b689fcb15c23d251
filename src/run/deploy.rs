//! Putting issued certificates into service: stage every file of a certificate beside its live
//! path, commit them together with the staged key, read them back, run the service's check,
//! reload once per host and command, verify what the service serves; whatever fails puts the
//! previous files back and reloads with them.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::{Ctx, Issued};
use crate::host::files::{self, FileSpec};
use crate::host::inspect::{self, Current};
use crate::inventory::RemotePath;
use crate::problem::{Kind, Plain, Problem};
use crate::report::{Outcome, Stage};
use crate::state::Phase;
use crate::x509;

/// Deploys every issued certificate; hosts in parallel, each host's certificates in order.
pub(crate) async fn deploy_all(ctx: &Ctx<'_>, issued: Vec<Issued<'_>>) -> Vec<Outcome> {
    let mut by_host: BTreeMap<String, Vec<Issued>> = BTreeMap::new();
    for i in issued {
        by_host
            .entry(i.item().host.name.clone())
            .or_default()
            .push(i);
    }
    let per_host: Vec<Vec<Outcome>> = futures::stream::iter(by_host.into_values())
        .map(|certs| deploy_host(ctx, certs))
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    per_host.into_iter().flatten().collect()
}

async fn deploy_host(ctx: &Ctx<'_>, certs: Vec<Issued<'_>>) -> Vec<Outcome> {
    let state = ctx.state;
    let reporter = ctx.reporter;
    let mut outcomes = Vec::new();
    // 1. Files in place, then the service's own check of them; a refused set goes back.
    let mut live: Vec<(Issued, Vec<RemotePath>)> = Vec::new();
    for c in certs {
        let item = c.item();
        item.stage(reporter, Stage::Deploy);
        let paths = match write(ctx, &c).await {
            Ok(p) => p,
            Err(e) => {
                outcomes.push(item.fail(Stage::Deploy, &e));
                continue;
            }
        };
        // Live now: a run killed from here on finishes check, reload and verify next time.
        if let Err(e) = item.phase(state, Phase::Deployed) {
            outcomes.push(item.fail(Stage::Deploy, &e));
            continue;
        }
        if let Some(check) = &item.spec.check {
            item.stage(reporter, Stage::Check);
            let cmd = watched(
                ctx,
                &c,
                check,
                check.to_cmd(&item.spec.command_values(&item.host.name), "certorch-check"),
            );
            if let Err(e) = files::check(item.conn.as_ref(), &cmd, &check.to_string()).await {
                let (restored, back) = restore(&c, &paths).await;
                outcomes.push(item.fail_with(
                    Stage::Check,
                    after_restore(Kind::HostCheckFailed, back, e.kind()),
                    format!("{e}{restored}"),
                    e.hint().unwrap_or_default(),
                ));
                continue;
            }
        }
        live.push((c, paths));
    }
    // 2. One reload per distinct command: two certificates of one nginx need one reload. A
    //    failed reload takes its certificates' files back and reloads again with the old ones.
    //    Commands are told apart by what runs: `systemctl reload nginx` is one command for
    //    every certificate, one naming `{label}` is one per certificate.
    let mut reloaded: BTreeMap<String, Result<(), (String, String, Kind)>> = BTreeMap::new();
    for (c, _) in &live {
        let item = c.item();
        if let Some((cmd, shown)) = reload_cmd(c)
            && let key = cmd.render().unwrap_or_default()
            && !reloaded.contains_key(&key)
        {
            item.stage(reporter, Stage::Reload);
            let cmd = reload_watched(ctx, c, cmd);
            let r = files::reload(item.conn.as_ref(), &cmd, &shown)
                .await
                .map_err(|e| (e.to_string(), e.hint().unwrap_or_default(), e.kind()));
            reloaded.insert(key, r);
        }
    }
    let mut verified = Vec::new();
    for (c, paths) in live {
        let item = c.item();
        if let Some(Err((e, hint, kind))) =
            reload_cmd(&c).and_then(|(cmd, _)| reloaded.get(&cmd.render().unwrap_or_default()))
        {
            let (restored, back) = restore(&c, &paths).await;
            let again = if back {
                reload_old(ctx, &c).await
            } else {
                String::new()
            };
            outcomes.push(item.fail_with(
                Stage::Reload,
                after_restore(Kind::HostReloadFailed, back, *kind),
                format!("{e}{restored}{again}"),
                hint.clone(),
            ));
            continue;
        }
        verified.push((c, paths));
    }
    // 3. What the service serves must be the new certificate.
    for (c, paths) in verified {
        let item = c.item();
        if let Some(port) = item.spec.verify_port {
            item.stage(reporter, Stage::Verify);
            let sni = item
                .spec
                .names
                .iter()
                .find(|n| !n.as_str().starts_with("*."))
                .map_or_else(|| item.host.name.clone(), |n| n.to_string());
            let served = crate::deploy::verify::wait_for_fingerprint(
                &item.host.address,
                port,
                item.spec.verify_starttls,
                &sni,
                &c.leaf.fingerprint,
            )
            .await;
            if served.as_deref() != Ok(c.leaf.fingerprint.as_str()) {
                let what = match served {
                    Ok(f) => format!(
                        "{}:{port} (SNI {sni}) serves certificate {f}, not the new {}",
                        item.host.address, c.leaf.fingerprint
                    ),
                    Err(e) => e,
                };
                let (restored, back) = restore(&c, &paths).await;
                let again = if back {
                    reload_old(ctx, &c).await
                } else {
                    String::new()
                };
                outcomes.push(item.fail_with(
                    Stage::Verify,
                    after_restore(Kind::HostVerifyFailed, back, Kind::HostVerifyFailed),
                    format!("{what}{restored}{again}"),
                    "check that the service reads these paths and that its reload command makes it load them",
                ));
                continue;
            }
        }
        // The durable point: the certificate is live, and served where that is checked.
        if !item.spec.keep_previous_key
            && let Err(e) =
                files::forget_previous(item.conn.as_ref(), &item.spec.key_bearing_paths()).await
        {
            ctx.warn(format!(
                "{}/{}: {e}; hint: {}",
                item.host.name,
                item.spec.label,
                e.hint().unwrap_or_default()
            ));
        }
        let names: Vec<String> = item.spec.names.iter().map(|n| n.to_string()).collect();
        let deployed: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        let recorded = state.batch(|| {
            state.record_issued(
                &item.host.name,
                &item.spec.label,
                &names,
                item.spec.key_type.as_str(),
                &c.leaf,
                &c.order_url,
                &x509::to_pem(&c.chain),
                &deployed,
            )?;
            state.set_order_status(&c.order_url, "issued")?;
            state.set_phase(&item.host.name, &item.spec.label, Phase::Done)
        });
        if let Err(e) = recorded {
            // Live and served, but unrecorded: the next run finds it in its lifecycle and
            // records it, instead of taking it for drift and ordering again.
            outcomes.push(item.fail(Stage::Verify, &e));
            continue;
        }
        outcomes.push(Outcome::Issued {
            host: item.host.name.clone(),
            cert: item.spec.label.clone(),
            reason: c.keyed.due.reason.to_string(),
            names,
            serial: c.leaf.serial.clone(),
            fingerprint: c.leaf.fingerprint.clone(),
            not_after: c.leaf.not_after,
        });
    }
    outcomes
}

/// Puts the previous files back; says so (or why not) for the failure message, and whether
/// they are back.
async fn restore(c: &Issued<'_>, paths: &[RemotePath]) -> (String, bool) {
    let t = c.item().conn.as_ref();
    let refs: Vec<&RemotePath> = paths.iter().collect();
    match files::rollback(t, &refs).await {
        Ok(()) => ("; the previous files are back in place".to_string(), true),
        Err(e) => (
            format!("; restoring the previous files failed too: {e}"),
            false,
        ),
    }
}

/// The kind of a failure after the new files went live: `step`'s own when the previous files
/// are back; when they could not be put back because the host went away (`cause`: the
/// connection broke or a command hung), that kind, so the lifecycle stays at `deployed` and
/// the next run finishes the check, reload and verify of the files that are live
/// ([`super::record::keeps_in_flight`]).
fn after_restore(step: Kind, back: bool, cause: Kind) -> Kind {
    if !back && matches!(cause, Kind::SshConnectionLost | Kind::SshTimeout) {
        cause
    } else {
        step
    }
}

/// The certificate's reload command for its host, and how the operator wrote it.
fn reload_cmd(c: &Issued<'_>) -> Option<(crate::host::sh::Cmd, String)> {
    let item = c.item();
    item.spec.reload.as_ref().map(|r| {
        (
            r.to_cmd(
                &item.spec.command_values(&item.host.name),
                "certorch-reload",
            ),
            r.to_string(),
        )
    })
}

/// An operator's check or reload (`written`, built as `cmd`) run under the host's timeout(1)
/// ([`files::watched`]), so it is killed there when it hangs. Not a list-form command under
/// `become`: the sudo or doas rule names its program, and a wrapper would run it through `sh`.
fn watched(
    ctx: &Ctx<'_>,
    c: &Issued<'_>,
    written: &crate::inventory::command::HostCommand,
    cmd: crate::host::sh::Cmd,
) -> crate::host::sh::Cmd {
    let listed = matches!(written, crate::inventory::command::HostCommand::Argv(_));
    if listed && c.item().host.become_via.is_some() {
        cmd
    } else {
        files::watched(&cmd, ctx.inv.ssh.command_timeout)
    }
}

/// The certificate's reload command `cmd`, watched as [`watched`] says.
fn reload_watched(
    ctx: &Ctx<'_>,
    c: &Issued<'_>,
    cmd: crate::host::sh::Cmd,
) -> crate::host::sh::Cmd {
    match &c.item().spec.reload {
        Some(written) => watched(ctx, c, written, cmd),
        None => cmd,
    }
}

/// Reloads the service with the restored files.
async fn reload_old(ctx: &Ctx<'_>, c: &Issued<'_>) -> String {
    let item = c.item();
    match reload_cmd(c) {
        Some((cmd, shown)) => {
            match files::reload(item.conn.as_ref(), &reload_watched(ctx, c, cmd), &shown).await {
                Ok(()) => " and the service reloaded with them".to_string(),
                Err(e) => format!(", but reloading with them failed: {e}"),
            }
        }
        None => String::new(),
    }
}

/// Stages the certificate files, commits them with the staged key, and verifies on the host.
/// A certificate an interrupted run already put in place (the host serves it with its key) is
/// not written again; leftovers staged beside it are removed.
async fn write(ctx: &Ctx<'_>, c: &Issued<'_>) -> Result<Vec<RemotePath>, Plain> {
    let item = c.item();
    let spec = item.spec;
    let t = item.conn.as_ref();
    let readback = |e: &dyn Problem| Plain {
        kind: Kind::HostReadbackFailed,
        message: e.to_string(),
        hint: e.hint(),
    };
    if c.keyed.key_resumed
        && let Ok(Current::Present(d)) = inspect::inspect(t, spec).await
        && d.cert.fingerprint == c.leaf.fingerprint
        && d.key_matches
    {
        let live = spec.files();
        item.discard(ctx, &live).await;
        return Ok(live.into_iter().cloned().collect());
    }
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
    // Every file staged beside its live path, then all renamed together; on any failure the
    // staged files (the new key among them) are removed and the live ones stay untouched.
    let staged: Result<(), crate::host::Error> = async {
        let files: Vec<FileSpec> = wanted
            .iter()
            .map(|(path, content)| FileSpec {
                path,
                content: content.as_bytes(),
                mode: spec.mode,
                owner: spec.owner.as_ref(),
                group: spec.group.as_ref(),
            })
            .collect();
        // Listed first, so a failure half-way discards what was staged.
        paths.extend(wanted.iter().map(|(p, _)| *p));
        if !files.is_empty() {
            files::stage_many(t, &files).await?;
        }
        if let Some(combined) = &spec.combined {
            files::stage_combined(
                t,
                combined,
                &spec.key,
                full.as_bytes(),
                spec.key_mode,
                spec.owner.as_ref(),
                spec.group.as_ref(),
            )
            .await?;
            paths.push(combined);
        }
        // Stores for JVM and PKCS#12 consumers, built on the host from the staged key.
        for (kind, path) in [
            (files::Store::Pkcs12, &spec.pkcs12),
            (files::Store::JavaKeystore, &spec.keystore),
        ] {
            let Some(path) = path else { continue };
            files::stage_store(
                t,
                kind,
                path,
                &spec.key,
                full.as_bytes(),
                spec.store_password_file.as_ref(),
                &spec.label,
                spec.key_mode,
                spec.owner.as_ref(),
                spec.group.as_ref(),
            )
            .await?;
            paths.push(path);
        }
        // Never a key beside a certificate it does not match, not even for a moment.
        files::commit(t, &paths, Some((&spec.key, spec.inspect_path()))).await
    }
    .await;
    if let Err(e) = staged {
        item.discard(ctx, &paths).await;
        return Err(Plain {
            kind: e.kind(),
            message: e.to_string(),
            hint: e.hint(),
        });
    }
    // Read back what is live now: the certificate we issued, with its key.
    match inspect::inspect(t, spec).await {
        Ok(Current::Present(d)) if d.cert.fingerprint == c.leaf.fingerprint && d.key_matches => {
            Ok(paths.into_iter().cloned().collect())
        }
        Ok(_) => Err(Plain::new(
            Kind::HostReadbackFailed,
            "after writing, the host does not show the new certificate with its key",
            "another process may have changed the files at the same time; check the paths and run certorch again",
        )),
        Err(e) => Err(readback(&e)),
    }
}
