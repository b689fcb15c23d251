//! Taking up what an interrupted run left, before anything new starts. TXT records it published
//! and never withdrew are withdrawn. Its orders are kept for the certificates they were opened
//! for, which resume them (a pending order is answered again with the same values, a ready one
//! finalized, a valid one downloaded); only orders no certificate of the inventory can use any
//! more have their authorizations deactivated (RFC 8555 §7.5.2). Certificates it obtained and
//! did not finish deploying go straight to deployment.

use instant_acme::Account;

use super::{Ctx, Due, Issued, Keyed};
use crate::acme;
use crate::dns::signing::SigningZone;
use crate::dns::txt::{TxtRecord, TxtSet};
use crate::state::Phase;
use crate::x509;

/// What the start of a run set up.
pub(crate) struct Setup {
    pub account: Option<Account>,
    pub dns: Option<SigningZone>,
    pub warnings: Vec<String>,
}

/// Loads the stored account, abandons orders nothing will resume, withdraws leftover TXT.
pub(crate) async fn setup(ctx: &Ctx<'_>) -> Setup {
    let mut warnings = Vec::new();
    // The stored account, if any: for ARI and to take up orders a killed run left. A CA that
    // cannot be reached does not stop a run that has nothing to order.
    let account = match acme::account::load(ctx.inv, ctx.state).await {
        Ok(a) => a,
        Err(e) => {
            warnings.push(format!(
                "{e}; renewal information (ARI) is not consulted this run"
            ));
            None
        }
    };
    if let Some(account) = &account {
        warnings.extend(stale_orders(ctx, account).await);
    }
    let mut dns = None;
    match ctx.state.leftover_txt() {
        Ok(rows) if !rows.is_empty() => match SigningZone::new(ctx.inv).await {
            Ok(d) => {
                warnings.extend(leftover_txt(ctx, &d, rows).await);
                dns = Some(d);
            }
            Err(e) => warnings.push(format!(
                "cannot withdraw TXT records a previous run left: {e}"
            )),
        },
        Ok(_) => {}
        Err(e) => warnings.push(e.to_string()),
    }
    Setup {
        account,
        dns,
        warnings,
    }
}

/// Withdraws leftover TXT records; returns warnings for what could not be repaired.
async fn leftover_txt(
    ctx: &Ctx<'_>,
    dns: &SigningZone,
    rows: Vec<crate::state::TxtRow>,
) -> Vec<String> {
    ctx.info(&format!(
        "repair: withdrawing {} TXT record(s) a previous run left",
        rows.len()
    ));
    let mut set = TxtSet::new(rows[0].ttl);
    for r in &rows {
        let (Ok(zone), Ok(name)) = (
            hickory_proto::rr::Name::from_ascii(&r.zone),
            hickory_proto::rr::Name::from_ascii(&r.name),
        ) else {
            continue;
        };
        set.insert(TxtRecord {
            zone,
            name,
            value: r.value.clone(),
        });
    }
    match dns.withdraw(&set).await {
        Ok(()) => {
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            // Until this moment anyone could look the values up and cache them for their TTL
            // (a resolver that kept asking for a CA that gave up fills its cache once the
            // server is back): new values at these names wait that out, as after the CA looked.
            let mut by_name: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
            for r in &rows {
                by_name.entry(&r.name).or_default().push(r.value.clone());
            }
            let ttl = rows.iter().map(|r| r.ttl).max().unwrap_or(0);
            let recorded = ctx
                .state
                .batch(|| {
                    for (name, values) in &by_name {
                        ctx.state.presented(name, values, ttl)?;
                    }
                    Ok(())
                })
                .and_then(|()| ctx.state.remove_txt(&ids))
                .and_then(|()| {
                    ctx.state.audit(
                        "*",
                        "*",
                        "repair",
                        "ok",
                        &format!("withdrew {} leftover TXT record(s)", rows.len()),
                    )
                });
            match recorded {
                Ok(()) => Vec::new(),
                Err(e) => vec![format!(
                    "withdrew {} leftover TXT record(s), but could not record it: {e}",
                    rows.len()
                )],
            }
        }
        Err(e) => vec![format!(
            "could not withdraw {} TXT record(s) a previous run left: {e}",
            rows.len()
        )],
    }
}

/// Abandons open orders that no certificate will resume: its host or label is gone from the
/// inventory, its names changed, or its lifecycle moved on without it.
async fn stale_orders(ctx: &Ctx<'_>, account: &Account) -> Vec<String> {
    let rows = match ctx.state.open_orders() {
        Ok(r) => r,
        Err(e) => return vec![e.to_string()],
    };
    let mut warnings = Vec::new();
    for o in rows.iter().filter(|o| o.directory == ctx.directory()) {
        let spec = ctx
            .inv
            .host(&o.host)
            .and_then(|h| h.certs.iter().find(|c| c.label == o.label));
        let resumable = match (spec, ctx.state.lifecycle(&o.host, &o.label)) {
            (Some(spec), Ok(Some(l))) => {
                l.phase.in_flight()
                    && l.order_url.as_deref() == Some(o.url.as_str())
                    && l.names == spec.names.iter().map(|n| n.to_string()).collect::<Vec<_>>()
            }
            _ => false,
        };
        if resumable {
            continue;
        }
        ctx.info(&format!(
            "repair: abandoning order {} of {}/{}",
            o.url, o.host, o.label
        ));
        let detail = match acme::order::fetch(account, ctx.directory(), &o.url).await {
            Ok(mut order) => {
                let n = acme::order::abandon(&mut order).await;
                format!(
                    "abandoned order {} ({n} authorization(s) deactivated)",
                    o.url
                )
            }
            // The CA answered that it no longer holds the order (expired, purged).
            Err(e) if e.is_not_found() => format!("order {} is gone at the CA: {e}", o.url),
            Err(e) => {
                // No answer, or a server error after the retries: the order stays recorded,
                // and the next run tries again.
                warnings.push(format!(
                    "could not reach the CA to abandon order {} of {}/{}: {e}; the next run tries again",
                    o.url, o.host, o.label,
                ));
                continue;
            }
        };
        let recorded = ctx
            .state
            .set_order_status(&o.url, "abandoned")
            .and_then(|()| ctx.state.audit(&o.host, &o.label, "repair", "ok", &detail));
        if let Err(e) = recorded {
            warnings.push(format!("{detail}, but could not record it: {e}"));
        }
    }
    warnings
}

/// Splits off certificates an interrupted run obtained from the CA (their chain is recorded),
/// to be deployed without a new key or order.
pub(crate) fn finalized<'a>(ctx: &Ctx<'_>, due: Vec<Due<'a>>) -> (Vec<Issued<'a>>, Vec<Due<'a>>) {
    let mut issued = Vec::new();
    let mut rest = Vec::new();
    for d in due {
        let chain = d
            .resume
            .as_ref()
            .filter(|l| matches!(l.phase, Phase::Finalized | Phase::Deployed))
            // Self-signed and internal certificates cost nothing to make again.
            .filter(|_| d.item.spec.issuer == crate::inventory::Issuer::Acme)
            .and_then(|l| Some((l.chain_pem.clone()?, l.csr.clone()?, l.order_url.clone())));
        let Some((pem, csr_der, order_url)) = chain else {
            rest.push(d);
            continue;
        };
        let parsed = x509::pem_certificates(pem.as_bytes())
            .ok()
            .filter(|c| !c.is_empty())
            .and_then(|chain| Some((x509::cert_info(&chain[0]).ok()?, chain)));
        let csr = x509::csr_info(&csr_der);
        match (parsed, csr) {
            (Some((leaf, chain)), Some(csr)) => {
                ctx.info(&format!(
                    "resume: {}/{} was issued by an interrupted run (serial {}); deploying it",
                    d.item.host.name, d.item.spec.label, leaf.serial
                ));
                issued.push(Issued {
                    keyed: Keyed {
                        due: d,
                        csr,
                        key_resumed: true,
                        targets: Default::default(),
                    },
                    order_url: order_url.unwrap_or_default(),
                    extra: Vec::new(),
                    leaf,
                    chain,
                });
            }
            // An unreadable record: decided afresh.
            _ => rest.push(d),
        }
    }
    (issued, rest)
}
