//! Repairing what a killed run left behind, before anything new starts: TXT records it
//! published and never withdrew are withdrawn, orders it opened and never finished have their
//! authorizations deactivated (RFC 8555 §7.5.2). A staged key on a host needs nothing: the
//! next key generation overwrites it, and no service reads it.

use instant_acme::Account;

use super::challenge::DnsHandles;
use crate::acme;
use crate::dns::txt::{TxtRecord, TxtSet};
use crate::inventory::Inventory;
use crate::report::{Event, Reporter};
use crate::state::State;

/// Withdraws leftover TXT records; returns warnings for what could not be repaired.
pub(crate) async fn leftover_txt(
    state: &State,
    dns: &DnsHandles,
    reporter: &dyn Reporter,
) -> Vec<String> {
    let rows = match state.leftover_txt() {
        Ok(r) => r,
        Err(e) => return vec![e.to_string()],
    };
    if rows.is_empty() {
        return Vec::new();
    }
    reporter.event(Event::Info(&format!(
        "repair: withdrawing {} TXT record(s) a previous run left",
        rows.len()
    )));
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
            let _ = state.remove_txt(&ids);
            let _ = state.audit(
                "*",
                "*",
                "repair",
                "ok",
                &format!("withdrew {} leftover TXT record(s)", rows.len()),
            );
            Vec::new()
        }
        Err(e) => vec![format!(
            "could not withdraw {} TXT record(s) a previous run left: {e}",
            rows.len()
        )],
    }
}

/// Abandons orders a previous run opened and never finished.
pub(crate) async fn open_orders(
    state: &State,
    inv: &Inventory,
    account: &Account,
    reporter: &dyn Reporter,
) -> Vec<String> {
    let rows = match state.open_orders() {
        Ok(r) => r,
        Err(e) => return vec![e.to_string()],
    };
    let mut warnings = Vec::new();
    for o in rows.iter().filter(|o| o.directory == inv.acme.directory) {
        reporter.event(Event::Info(&format!(
            "repair: abandoning order {} of {}/{}",
            o.url, o.host, o.label
        )));
        match account.order(o.url.clone()).await {
            Ok(mut order) => {
                let n = acme::order::abandon(&mut order).await;
                let _ = state.set_order_status(&o.url, "abandoned");
                let _ = state.audit(
                    &o.host,
                    &o.label,
                    "repair",
                    "ok",
                    &format!(
                        "abandoned order {} ({n} authorization(s) deactivated)",
                        o.url
                    ),
                );
            }
            Err(e) => {
                // An order the CA no longer knows (expired, purged) needs nothing more.
                let _ = state.set_order_status(&o.url, "abandoned");
                let _ = state.audit(
                    &o.host,
                    &o.label,
                    "repair",
                    "ok",
                    &format!("order {} is gone at the CA: {e}", o.url),
                );
            }
        }
    }
    warnings.retain(|w: &String| !w.is_empty());
    warnings
}
