//! `certorch init`, `account` and `revoke`: the commands an operator runs now and then.

use std::io::Write;

use instant_acme::{RevocationReason, RevocationRequest};
use rustls_pki_types::CertificateDer;

use super::{AccountAction, Cli, Command, RevokeReason, exit};
use crate::acme;
use crate::report::{Printer, Render};
use crate::state::LastResult;

/// The starter inventory `init` writes: the commented production example.
const STARTER: &str = include_str!("../../inventory/example.yaml");

/// `certorch init`: writes a commented starter inventory, never over an existing file.
/// `certorch playbooks [NAME]`: the table of playbooks, or one playbook's YAML.
pub fn playbooks(cli: &Cli) -> u8 {
    use crate::inventory::playbook::{self, Source};
    let Command::Playbooks { name, dir } = &cli.command else {
        return exit::USAGE;
    };
    // The inventory's directory when there is a readable inventory; built-ins otherwise.
    let dir = dir.clone().or_else(|| {
        crate::inventory::load(&cli.inventory)
            .ok()
            .and_then(|inv| inv.playbooks)
    });
    let found = match name {
        Some(n) => playbook::find(n, dir.as_deref()).map(|f| vec![f]),
        None => playbook::all(dir.as_deref()),
    };
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::USAGE;
        }
    };
    if name.is_some() {
        print!("{}", found[0].text);
        return exit::OK;
    }
    let mut rows = Vec::new();
    for f in &found {
        let description = match playbook::parse(f) {
            Ok(p) => p.description,
            Err(e) => format!("(invalid: {e})"),
        };
        let source = match &f.source {
            Source::Builtin => "built-in".to_string(),
            Source::File(p) => p.display().to_string(),
        };
        rows.push(PlaybookRow {
            name: f.name.clone(),
            source,
            description,
        });
    }
    match (Printer { json: cli.json }).print(&Playbooks(rows)) {
        Ok(()) => exit::OK,
        Err(e) => crate::report::printer::output_failed(&e),
    }
}

/// One playbook in `certorch playbooks`.
#[derive(serde::Serialize)]
struct PlaybookRow {
    name: String,
    source: String,
    description: String,
}

/// The list `certorch playbooks` prints.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct Playbooks(Vec<PlaybookRow>);

impl Render for Playbooks {
    fn text(&self, out: &mut dyn Write, _err: &mut dyn Write) -> std::io::Result<()> {
        let w = self.0.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for r in &self.0 {
            writeln!(out, "{:w$}  {}  [{}]", r.name, r.description, r.source)?;
        }
        Ok(())
    }
}

/// What `certorch account show` prints.
#[derive(serde::Serialize)]
struct AccountShow {
    directory: String,
    registered: bool,
    account_url: Option<String>,
    /// The RFC 7638 thumbprint of the account's public key.
    key_thumbprint: Option<String>,
    contact: Vec<String>,
    created_at: Option<String>,
}

impl Render for AccountShow {
    fn text(&self, out: &mut dyn Write, _err: &mut dyn Write) -> std::io::Result<()> {
        match &self.account_url {
            Some(url) => writeln!(
                out,
                "{}\n  account {url}\n  key thumbprint {}\n  contact {}\n  registered {}",
                self.directory,
                self.key_thumbprint.as_deref().unwrap_or_default(),
                self.contact.join(", "),
                self.created_at.as_deref().unwrap_or_default()
            ),
            None => writeln!(
                out,
                "{}\n  no account yet: `certorch account register` (or the first run) creates one",
                self.directory
            ),
        }
    }
}

/// What `certorch account rollover` prints: the account and its keys' thumbprints.
#[derive(serde::Serialize)]
#[serde(transparent)]
struct RolledOver(acme::account::Rollover);

impl Render for RolledOver {
    fn text(&self, out: &mut dyn Write, _err: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "rolled over the key of {}\n  old key thumbprint {}\n  new key thumbprint {}",
            self.0.account_url, self.0.old_thumbprint, self.0.new_thumbprint
        )
    }
}

pub fn init(cli: &Cli) -> u8 {
    let path = &cli.inventory;
    if path.exists() {
        eprintln!("error: {} already exists", path.display());
        eprintln!("  hint: edit it, or pass --inventory with a new path");
        return exit::USAGE;
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return exit::USAGE;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(STARTER.as_bytes()))
    {
        Ok(()) => {
            println!(
                "wrote {}: set acme, dns and hosts, then run `certorch plan`",
                path.display()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            exit::USAGE
        }
    }
}

/// `certorch account show|register|deactivate`.
pub async fn account(cli: &Cli) -> u8 {
    let Command::Account { action } = &cli.command else {
        unreachable!("dispatched on Account")
    };
    let Ok(inv) = super::load_inventory(cli) else {
        return exit::USAGE;
    };
    let state_dir = match super::state_location(cli, &inv) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let directory = inv.acme.directory.clone();
    match action {
        AccountAction::Show => {
            let state = match super::open_state_read_only(cli, &state_dir) {
                Ok(s) => s,
                Err(code) => return code,
            };
            let created = state.account_created(&directory).ok().flatten();
            let account = match acme::account::load(&inv, &state).await {
                Ok(a) => a,
                Err(e) => return acme_error(&e),
            };
            let doc = AccountShow {
                directory,
                registered: account.is_some(),
                account_url: account.as_ref().map(|a| a.id().to_string()),
                key_thumbprint: account.as_ref().map(|a| a.key_thumbprint().to_string()),
                contact: inv.acme.contact.clone(),
                created_at: created,
            };
            match (Printer { json: cli.json }).print(&doc) {
                Ok(()) => exit::OK,
                Err(e) => crate::report::printer::output_failed(&e),
            }
        }
        AccountAction::Register => {
            let (_lock, state) = match super::open_state_locked(cli, &state_dir) {
                Ok(x) => x,
                Err(code) => return code,
            };
            match acme::load_or_create(&inv, &state).await {
                Ok(a) => {
                    println!("{}", a.id());
                    exit::OK
                }
                Err(e) => acme_error(&e),
            }
        }
        AccountAction::Rollover => {
            let (_lock, state) = match super::open_state_locked(cli, &state_dir) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let done = match acme::account::rollover(&inv, &state).await {
                Ok(Some(r)) => r,
                Ok(None) => {
                    eprintln!(
                        "error: there is no account for {directory} in {}",
                        state_dir
                    );
                    eprintln!("  hint: `certorch account register` creates one");
                    return exit::USAGE;
                }
                Err(e) => return acme_error(&e),
            };
            let audited = state.audit(
                "*",
                "*",
                "account",
                "ok",
                &format!(
                    "key rolled over for {}: thumbprint {} -> {}",
                    done.account_url, done.old_thumbprint, done.new_thumbprint
                ),
            );
            if let Err(e) = (Printer { json: cli.json }).print(&RolledOver(done)) {
                return crate::report::printer::output_failed(&e);
            }
            if let Err(e) = audited {
                eprintln!(
                    "error: the new key is stored, but the audit log could not record it: {e}"
                );
                eprintln!("  hint: {}", e.hint());
                return exit::SOME_FAILED;
            }
            exit::OK
        }
        AccountAction::Deactivate { yes } => {
            if !yes {
                eprintln!(
                    "error: deactivating an account is final: the CA will refuse it from then on"
                );
                eprintln!("  hint: run again with --yes if that is what you want");
                return exit::USAGE;
            }
            let (_lock, state) = match super::open_state_locked(cli, &state_dir) {
                Ok(x) => x,
                Err(code) => return code,
            };
            let account = match acme::account::load(&inv, &state).await {
                Ok(Some(a)) => a,
                Ok(None) => {
                    eprintln!(
                        "error: there is no account for {directory} in {}",
                        state_dir
                    );
                    return exit::USAGE;
                }
                Err(e) => return acme_error(&e),
            };
            let id = account.id().to_string();
            if let Err(e) = account.deactivate().await {
                return acme_error(&acme::Error::from_acme(
                    &directory,
                    "deactivating the account",
                    e,
                ));
            }
            let recorded = state.delete_account(&directory).and_then(|()| {
                state.audit("*", "*", "account", "ok", &format!("deactivated {id}"))
            });
            println!("deactivated {id}");
            if let Err(e) = recorded {
                eprintln!("error: the account is deactivated at the CA, but {e}");
                eprintln!(
                    "  hint: {}; until then a run uses the deactivated account and fails",
                    e.hint()
                );
                return exit::SOME_FAILED;
            }
            exit::OK
        }
    }
}

/// `certorch revoke host/cert`: revokes the certificate certorch deployed there; the next run
/// replaces it.
pub async fn revoke(cli: &Cli) -> u8 {
    let Command::Revoke { target, reason } = &cli.command else {
        unreachable!("dispatched on Revoke")
    };
    let Ok(inv) = super::load_inventory(cli) else {
        return exit::USAGE;
    };
    let Some((host, label)) = target.split_once('/') else {
        eprintln!("error: `{target}` is not host/cert");
        eprintln!("  hint: name one certificate, like web1.example.org/www");
        return exit::USAGE;
    };
    if let Err(e) = inv.select(std::slice::from_ref(target)) {
        eprintln!("error: {e}");
        return exit::USAGE;
    }
    let state_dir = match super::state_location(cli, &inv) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let (_lock, state) = match super::open_state_locked(cli, &state_dir) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let recorded = match state.certificates() {
        Ok(r) => r,
        Err(e) => return super::state_error(cli, &e),
    };
    let Some(rec) = recorded.iter().find(|r| r.host == host && r.label == label) else {
        eprintln!("error: {target}: certorch has no record of deploying a certificate there");
        eprintln!("  hint: `certorch status` lists what certorch deployed");
        return exit::USAGE;
    };
    let pem = match state.archived_chain(&rec.fingerprint) {
        Ok(Some(p)) => p,
        _ => {
            eprintln!(
                "error: {target}: the archive holds no chain for serial {}",
                rec.serial
            );
            return exit::USAGE;
        }
    };
    let Some(leaf) = crate::x509::pem_certificates(pem.as_bytes())
        .ok()
        .and_then(|c| c.into_iter().next())
    else {
        eprintln!("error: {target}: the archived chain is unreadable");
        return exit::USAGE;
    };
    let account = match acme::account::load(&inv, &state).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            eprintln!(
                "error: no account for {} in {}",
                inv.acme.directory, state_dir
            );
            return exit::USAGE;
        }
        Err(e) => return acme_error(&e),
    };
    let der = CertificateDer::from(leaf);
    let req = RevocationRequest {
        certificate: &der,
        reason: Some(reason.acme()),
    };
    if let Err(e) = account.revoke(&req).await {
        return acme_error(&acme::Error::from_acme(
            &inv.acme.directory,
            "revoking the certificate",
            e,
        ));
    }
    let recorded = state
        .set_result(host, label, &LastResult::Revoked)
        .and_then(|()| {
            state.audit(
                host,
                label,
                "revoke",
                "ok",
                &format!("serial {} revoked ({reason:?})", rec.serial),
            )
        });
    println!("{target}: serial {} revoked", rec.serial);
    match recorded {
        Ok(()) => {
            println!("the next `certorch run` replaces it");
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {target}: the certificate is revoked at the CA, but {e}");
            eprintln!(
                "  hint: {}; then replace it with `certorch issue {target}`",
                e.hint()
            );
            exit::SOME_FAILED
        }
    }
}

fn acme_error(e: &acme::Error) -> u8 {
    eprintln!("error: {e}");
    if let Some(h) = e.hint() {
        eprintln!("  hint: {h}");
    }
    exit::SOME_FAILED
}

impl RevokeReason {
    fn acme(self) -> RevocationReason {
        match self {
            RevokeReason::Unspecified => RevocationReason::Unspecified,
            RevokeReason::KeyCompromise => RevocationReason::KeyCompromise,
            RevokeReason::Superseded => RevocationReason::Superseded,
            RevokeReason::CessationOfOperation => RevocationReason::CessationOfOperation,
            RevokeReason::AffiliationChanged => RevocationReason::AffiliationChanged,
        }
    }
}
