//! Putting issued certificates into service: stage every file of a certificate beside its live
//! path, commit them together with the staged key, read them back, run the service's check,
//! reload once per host and command, verify what the service serves; whatever fails puts the
//! previous files back and reloads with them.

use std::collections::BTreeMap;

use futures::StreamExt;

use super::{Ctx, Issued};
use crate::host::Error as HostError;
use crate::host::batch::{self, Step};
use crate::host::files::{self, FileSpec};
use crate::host::inspect::{self, Current};
use crate::host::sh::Cmd;
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

pub(crate) async fn deploy_host(ctx: &Ctx<'_>, certs: Vec<Issued<'_>>) -> Vec<Outcome> {
    let state = ctx.state;
    let reporter = ctx.reporter;
    let mut outcomes = Vec::new();
    // Each SSH command costs the host a session: a certificate's files, its check, the reload
    // and the removal of the previous key run as one command where their order allows. The
    // reload goes with the last certificate that names it, after every earlier one is checked.
    let reloads: Vec<Option<String>> = certs
        .iter()
        .map(|c| reload_cmd(ctx, c).map(|(cmd, _)| cmd.render().unwrap_or_default()))
        .collect();
    let last_with: BTreeMap<&String, usize> = reloads
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|r| (r, i)))
        .collect();
    let mut reloaded: BTreeMap<String, Result<(), (String, String, Kind)>> = BTreeMap::new();
    // 1. Files in place, then the service's own check of them; a refused set goes back.
    let mut live: Vec<(Issued, Written)> = Vec::new();
    for (i, c) in certs.into_iter().enumerate() {
        let item = c.item();
        item.stage(reporter, Stage::Deploy);
        let reload_here = reloads[i]
            .as_ref()
            .is_some_and(|r| last_with.get(r) == Some(&i));
        let tail = Tail {
            check: item.spec.check.as_ref().map(|check| {
                (
                    watched(
                        ctx,
                        &c,
                        check,
                        check.to_cmd(&item.spec.command_values(&item.host.name), "certorch-check"),
                    ),
                    check.to_string(),
                )
            }),
            reload: if reload_here {
                reload_cmd(ctx, &c)
            } else {
                None
            },
            // Without a serve check the certificate is done once reloaded: the previous key
            // can go in the same command.
            forget: !item.spec.keep_previous_key
                && item.spec.verify_port.is_none()
                && (reloads[i].is_none() || reload_here),
        };
        let mut written = match write(ctx, &c, &tail).await {
            Ok(w) => w,
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
        if let Some((cmd, shown)) = &tail.check {
            item.stage(reporter, Stage::Check);
            let checked = match written.check.take() {
                Some(r) => r,
                None => files::check(item.conn.as_ref(), cmd, shown).await,
            };
            if let Err(e) = checked {
                let (restored, back) = restore(&c, &written.paths).await;
                outcomes.push(item.fail_with(
                    Stage::Check,
                    after_restore(Kind::HostCheckFailed, back, e.kind()),
                    format!("{e}{restored}"),
                    e.hint().unwrap_or_default(),
                ));
                continue;
            }
        }
        if let (Some(r), Some(key)) = (written.reload.take(), &reloads[i]) {
            item.stage(reporter, Stage::Reload);
            reloaded.insert(
                key.clone(),
                r.map_err(|e| (e.to_string(), e.hint().unwrap_or_default(), e.kind())),
            );
        }
        live.push((c, written));
    }
    // 2. One reload per distinct command: two certificates of one nginx need one reload. A
    //    failed reload takes its certificates' files back and reloads again with the old ones.
    //    Commands are told apart by what runs: `systemctl reload nginx` is one command for
    //    every certificate, one naming `{label}` is one per certificate.
    for (c, _) in &live {
        let item = c.item();
        if let Some((cmd, shown)) = reload_cmd(ctx, c)
            && let key = cmd.render().unwrap_or_default()
            && !reloaded.contains_key(&key)
        {
            item.stage(reporter, Stage::Reload);
            let r = files::reload(item.conn.as_ref(), &cmd, &shown)
                .await
                .map_err(|e| (e.to_string(), e.hint().unwrap_or_default(), e.kind()));
            reloaded.insert(key, r);
        }
    }
    let mut verified = Vec::new();
    for (c, written) in live {
        let paths = &written.paths;
        let item = c.item();
        if let Some(Err((e, hint, kind))) =
            reload_cmd(ctx, &c).and_then(|(cmd, _)| reloaded.get(&cmd.render().unwrap_or_default()))
        {
            let (restored, back) = restore(&c, paths).await;
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
        verified.push((c, written));
    }
    // 3. What the service serves must be the new certificate.
    for (c, written) in verified {
        let paths = &written.paths;
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
                let (restored, back) = restore(&c, paths).await;
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
        // The durable point: the certificate is live, and served where that is checked. The
        // previous key went with the reload where nothing was left to verify; on a first
        // issue there is none.
        let forgotten = match written.forget {
            Some(r) => r,
            None if !item.spec.keep_previous_key && written.kept_previous => {
                files::forget_previous(item.conn.as_ref(), &item.spec.key_bearing_paths()).await
            }
            None => Ok(()),
        };
        if let Err(e) = forgotten {
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
    if !back && cause.host_went_away() {
        cause
    } else {
        step
    }
}

/// An operator's check or reload (`written`, built as `cmd`) run under the host's timeout(1)
/// ([`files::watched`]), so it is killed there when it hangs. Not a list-form command under
/// `become`: the sudo or doas rule names its program, and a wrapper would run it through `sh`.
fn watched(
    ctx: &Ctx<'_>,
    c: &Issued<'_>,
    written: &crate::inventory::command::HostCommand,
    cmd: Cmd,
) -> Cmd {
    let listed = matches!(written, crate::inventory::command::HostCommand::Argv(_));
    if listed && c.item().host.become_via.is_some() {
        cmd
    } else {
        files::watched(&cmd, ctx.inv.ssh.command_timeout)
    }
}

/// The certificate's reload command for its host (watched as [`watched`] says), and how the
/// operator wrote it.
fn reload_cmd(ctx: &Ctx<'_>, c: &Issued<'_>) -> Option<(Cmd, String)> {
    let item = c.item();
    item.spec.reload.as_ref().map(|r| {
        let cmd = r.to_cmd(
            &item.spec.command_values(&item.host.name),
            "certorch-reload",
        );
        (watched(ctx, c, r, cmd), r.to_string())
    })
}

/// Reloads the service with the restored files.
async fn reload_old(ctx: &Ctx<'_>, c: &Issued<'_>) -> String {
    let item = c.item();
    match reload_cmd(ctx, c) {
        Some((cmd, shown)) => match files::reload(item.conn.as_ref(), &cmd, &shown).await {
            Ok(()) => " and the service reloaded with them".to_string(),
            Err(e) => format!(", but reloading with them failed: {e}"),
        },
        None => String::new(),
    }
}

/// What a certificate's deployment runs on its host after the files are in place, in the
/// same command where it can.
struct Tail {
    check: Option<(Cmd, String)>,
    reload: Option<(Cmd, String)>,
    /// Remove the previous key-bearing files after the reload.
    forget: bool,
}

/// What [`write`] did on the host.
struct Written {
    paths: Vec<RemotePath>,
    /// A previous version of a key-bearing file was kept beside the new one (a renewal).
    kept_previous: bool,
    /// How the tail's steps went, where they ran with the files; `None`: not run yet.
    check: Option<Result<(), HostError>>,
    reload: Option<Result<(), HostError>>,
    forget: Option<Result<(), HostError>>,
}

/// One step of the deployment command, and how to read its output.
enum Role<'s> {
    Stage(&'s [FileSpec<'s>]),
    Combined(&'s RemotePath),
    Store(files::StoreSpec<'s>),
    Commit,
    Readback,
    Check(&'s str),
    Reload(&'s str),
    Forget,
}

/// Stages the certificate files, commits them with the staged key, and checks on the host that
/// they are live, then runs `tail`: one command on the host. A certificate an interrupted run
/// already put in place (the host serves it with its key) is not written again; leftovers
/// staged beside it are removed, and the tail is left to the caller.
async fn write(ctx: &Ctx<'_>, c: &Issued<'_>, tail: &Tail) -> Result<Written, Plain> {
    let item = c.item();
    let spec = item.spec;
    let t = item.conn.as_ref();
    if c.keyed.key_resumed
        && let Ok(Current::Present(d)) = inspect::inspect(t, spec).await
        && d.cert.fingerprint == c.leaf.fingerprint
        && d.key_matches
    {
        let live = spec.files();
        item.discard(ctx, &live).await;
        return Ok(Written {
            paths: live.into_iter().cloned().collect(),
            kept_previous: true,
            check: None,
            reload: None,
            forget: None,
        });
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
    // Every file staged beside its live path, then all renamed together; on any failure the
    // staged files (the new key among them) are removed and the live ones stay untouched.
    let mut paths: Vec<&RemotePath> = vec![&spec.key];
    paths.extend(wanted.iter().map(|(p, _)| *p));
    let mut steps: Vec<(Step, Role)> = Vec::new();
    if !files.is_empty() {
        steps.push((
            Step::new(files::stage_many_cmd(&files)),
            Role::Stage(&files),
        ));
    }
    if let Some(combined) = &spec.combined {
        let cmd = files::stage_combined_cmd(
            combined,
            &spec.key,
            spec.key_mode,
            spec.owner.as_ref(),
            spec.group.as_ref(),
        );
        steps.push((Step::new(cmd).with_input(), Role::Combined(combined)));
        paths.push(combined);
    }
    // Stores for JVM and PKCS#12 consumers, built on the host from the staged key.
    for (kind, path) in [
        (files::Store::Pkcs12, &spec.pkcs12),
        (files::Store::JavaKeystore, &spec.keystore),
    ] {
        let Some(path) = path else { continue };
        let store = files::StoreSpec {
            kind,
            path,
            key: &spec.key,
            password_file: spec.store_password_file.as_ref(),
            alias: &spec.label,
            mode: spec.key_mode,
            owner: spec.owner.as_ref(),
            group: spec.group.as_ref(),
        };
        steps.push((
            Step::new(files::stage_store_cmd(&store)).with_input(),
            Role::Store(store),
        ));
        paths.push(path);
    }
    // Never a key beside a certificate it does not match, not even for a moment.
    let commit = files::commit_cmd(&paths, Some((&spec.key, &c.leaf.spki)));
    steps.push((Step::new(commit), Role::Commit));
    // Read back what is live now, on the host: the certificate we issued, with its key. The
    // check and reload below run only when it is.
    steps.push((
        Step::new(inspect::live_is_cmd(spec, &c.chain, &c.leaf.spki)),
        Role::Readback,
    ));
    if let Some((cmd, shown)) = &tail.check {
        steps.push((Step::new(cmd.clone()), Role::Check(shown)));
    }
    if let Some((cmd, shown)) = &tail.reload {
        steps.push((Step::new(cmd.clone()), Role::Reload(shown)));
    }
    let key_bearing = spec.key_bearing_paths();
    if tail.forget {
        steps.push((
            Step::new(files::forget_previous_cmd(&key_bearing)),
            Role::Forget,
        ));
    }
    let (batch, roles): (Vec<Step>, Vec<Role>) = steps.into_iter().unzip();
    let fail = |e: HostError| Plain {
        kind: e.kind(),
        message: e.to_string(),
        hint: e.hint(),
    };
    let outs = match batch::run(t, &batch, Some(full.as_bytes())).await {
        Ok(o) => o,
        Err(e) => {
            // Cut off (a timeout, a lost connection): how far the host got is not known. When
            // the new certificate is live the commit ran, and the first step of the tail takes
            // the failure, so the caller puts the previous files back (and reloads with them)
            // as it would have had that step failed alone; else the staged files go.
            let committed = matches!(
                inspect::inspect(t, spec).await,
                Ok(Current::Present(d)) if d.cert.fingerprint == c.leaf.fingerprint
            );
            if committed && (tail.check.is_some() || tail.reload.is_some()) {
                let failed = || Some(Err(HostError::from(e.clone())));
                return Ok(Written {
                    paths: paths.iter().map(|p| (*p).clone()).collect(),
                    kept_previous: true,
                    check: tail.check.as_ref().and_then(|_| failed()),
                    reload: if tail.check.is_none() { failed() } else { None },
                    forget: None,
                });
            }
            // A command cut off by a timeout or a lost connection may still be running on the
            // host (or run on once a frozen host thaws): removing the staged files now would
            // race it, and the certificate stays in flight for the next run, which deploys it
            // with these very files (`record::keeps_in_flight`). Only a command that ended for
            // another reason leaves staged files nobody will use.
            let e = HostError::from(e);
            if !committed && !e.kind().host_went_away() {
                item.discard(ctx, &paths).await;
            }
            return Err(fail(e));
        }
    };
    let mut written = Written {
        paths: paths.iter().map(|p| (*p).clone()).collect(),
        kept_previous: false,
        check: None,
        reload: None,
        forget: None,
    };
    for (i, role) in roles.iter().enumerate() {
        // A step the host never reached after one that succeeded: the command was cut short.
        let cut = crate::transport::Output {
            code: None,
            stdout: Vec::new(),
            stderr: "the host's command ended before this step".into(),
        };
        let out = match outs.get(i) {
            Some(Ok(o)) => Ok(o),
            Some(Err(e)) => Err(HostError::from(e.clone())),
            None if matches!(outs.last(), Some(Ok(o)) if o.success()) => Ok(&cut),
            None => break,
        };
        let r = match (role, out) {
            (Role::Check(shown), out) => {
                written.check = Some(out.and_then(|o| files::check_judge(o, shown)));
                continue;
            }
            (Role::Reload(shown), out) => {
                written.reload = Some(out.and_then(|o| files::reload_judge(o, shown)));
                continue;
            }
            (Role::Forget, out) => {
                written.forget =
                    Some(out.and_then(|o| files::forget_previous_judge(o, &key_bearing)));
                continue;
            }
            (Role::Readback, out) => {
                if let Err(e) = out.and_then(inspect::live_is_judge) {
                    return Err(Plain::new(
                        Kind::HostReadbackFailed,
                        format!(
                            "after writing, the host does not show the new certificate with its key: {e}"
                        ),
                        e.hint().unwrap_or_default(),
                    ));
                }
                continue;
            }
            (_, Err(e)) => Err(e),
            (Role::Stage(files), Ok(o)) => files::stage_many_judge(o, files),
            (Role::Combined(p), Ok(o)) => files::stage_combined_judge(o, p),
            (Role::Store(s), Ok(o)) => files::stage_store_judge(o, s),
            (Role::Commit, Ok(o)) => {
                written.kept_previous = files::kept_previous(o, &key_bearing);
                files::commit_judge(o)
            }
        };
        if let Err(e) = r {
            item.discard(ctx, &paths).await;
            return Err(fail(e));
        }
    }
    Ok(written)
}
