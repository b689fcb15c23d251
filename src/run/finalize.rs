//! Finalization: every validated order is finalized with the CSR the host made, and the chain
//! downloaded and checked (the leaf certifies the host's key and every name). The chain is
//! recorded before anything is deployed, so a run killed from here on deploys it next time
//! without a new order.

use super::{Ctx, Issued, Ordered, record};
use crate::acme;
use crate::problem::Problem;
use crate::report::{Outcome, Stage};
use crate::x509;

/// Orders finalized at once, at least (`concurrency` when larger): mostly waiting on the CA.
/// Used by [`super::deliver`], which deploys each host as its orders come in.
pub(crate) const FINALIZE_PARALLEL: usize = 64;

/// Finalizes one validated order with its host's CSR and checks the chain.
pub(crate) async fn finalize<'a>(ctx: &Ctx<'_>, mut o: Ordered<'a>) -> Result<Issued<'a>, Outcome> {
    let item = o.keyed.item();
    item.stage(ctx.reporter, Stage::Finalize);
    item.phase(ctx.state, crate::state::Phase::Validated)
        .map_err(|e| item.fail(Stage::Finalize, &e))?;
    let spec = item.spec;
    let got = acme::order::finalize(
        &mut o.open.order,
        ctx.directory(),
        &o.keyed.csr,
        &spec.names,
    )
    .await;
    let got = match (got, &ctx.inv.acme.preferred_chain) {
        (Ok((leaf, chain)), Some(preferred)) => {
            preferred_chain(ctx, item, &mut o.open.order, preferred, chain)
                .await
                .map(|chain| (leaf, chain))
        }
        (got, _) => got,
    };
    let (leaf, chain) = match got {
        Ok(x) => x,
        // The CA did not answer, or asked to come back later: the order it validated may
        // still be finalized (or already was). Its key stays staged and its lifecycle in
        // flight (see `record::keeps_in_flight`), so the next run takes the order up instead of
        // ordering again.
        Err(e)
            if record::keeps_in_flight(
                e.kind(),
                ctx.state
                    .lifecycle(&item.host.name, &spec.label)
                    .ok()
                    .flatten()
                    .as_ref(),
            ) =>
        {
            return Err(item.fail(Stage::Finalize, &e));
        }
        Err(e) => {
            let failure = item.fail(Stage::Finalize, &e);
            acme::order::abandon(&mut o.open.order).await;
            super::order::discard_key(ctx, &o.keyed).await;
            return Err(failure);
        }
    };
    if let Some(w) = skew_warning(
        &item.host.name,
        &spec.label,
        leaf.not_before,
        time::OffsetDateTime::now_utc(),
    ) {
        ctx.warn(w);
    }
    if let Err(e) = ctx.state.finalized(
        &item.host.name,
        &spec.label,
        &leaf.fingerprint,
        &x509::to_pem(&chain),
    ) {
        // Not recorded: deploying would leave a certificate the state does not know.
        super::order::discard_key(ctx, &o.keyed).await;
        return Err(item.fail(Stage::Finalize, &e));
    }
    Ok(Issued {
        order_url: o.open.url,
        keyed: o.keyed,
        extra: Vec::new(),
        leaf,
        chain,
    })
}

/// How far a new certificate's notBefore may lie ahead of the bastion's clock unremarked. CAs
/// set it to when they sign, or earlier (Let's Encrypt backdates an hour), so one ahead by
/// more than this says the bastion's clock is behind the CA's.
const SKEW_TOLERANCE: time::Duration = time::Duration::minutes(1);

/// A warning when the CA's notBefore is ahead of the bastion's clock by more than
/// [`SKEW_TOLERANCE`]. Never a refusal: the CA's clock is the audited one, the clients that
/// check notBefore use their own clocks, not the bastion's, and refusing would turn a bastion
/// clock problem into an expired certificate. The warning matters because the same skew
/// breaks TSIG-signed updates at 5 minutes (RFC 8945 §5.2.3, fudge 300 s).
fn skew_warning(
    host: &str,
    label: &str,
    not_before: time::OffsetDateTime,
    now: time::OffsetDateTime,
) -> Option<String> {
    let ahead = not_before - now;
    (ahead > SKEW_TOLERANCE).then(|| {
        format!(
            "{host}/{label}: the certificate is valid from {}, {}s ahead of this bastion's clock ({}): the bastion's clock is probably behind the CA's; it was deployed all the same, but check the bastion's time synchronisation (chronyc tracking, timedatectl): TSIG-signed DNS updates fail once the clocks are 5 minutes apart",
            crate::state::fmt_time(not_before),
            ahead.whole_seconds(),
            crate::state::fmt_time(now)
        )
    })
}

/// The chain `acme.preferred_chain` names among those the CA offers for the order's
/// certificate (RFC 8555 §7.4.2); the default chain, with a warning, when none matches.
async fn preferred_chain(
    ctx: &Ctx<'_>,
    item: &super::Item<'_>,
    order: &mut instant_acme::Order,
    preferred: &str,
    default: Vec<Vec<u8>>,
) -> Result<Vec<Vec<u8>>, acme::Error> {
    let Some(url) = order.state().certificate.clone() else {
        return Err(acme::Error::Chain(
            "the valid order names no certificate URL".into(),
        ));
    };
    match acme::chain::choose(ctx.inv, ctx.state, &url, preferred).await? {
        acme::chain::Chosen::Preferred(chain) if chain.first() == default.first() => Ok(chain),
        acme::chain::Chosen::Preferred(_) => Err(acme::Error::Chain(format!(
            "the alternate chain at {url} is for another certificate than the default one"
        ))),
        acme::chain::Chosen::NoMatch(offered) => {
            ctx.warn(format!(
                "{}/{}: no chain the CA offers leads to `{preferred}` (acme.preferred_chain); the default chain is deployed (offered: {})",
                item.host.name,
                item.spec.label,
                offered.join(", ")
            ));
            Ok(default)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_not_before_ahead_of_the_bastion_is_warned_about_past_a_minute() {
        let now = time::macros::datetime!(2026-12-01 18:00:00 UTC);
        assert_eq!(
            skew_warning("h", "c", now - time::Duration::hours(1), now),
            None
        );
        assert_eq!(
            skew_warning("h", "c", now + time::Duration::seconds(60), now),
            None
        );
        assert_eq!(
            skew_warning("h", "c", now + time::Duration::seconds(180), now).as_deref(),
            Some(
                "h/c: the certificate is valid from 2026-12-01T18:03:00Z, 180s ahead of this bastion's clock (2026-12-01T18:00:00Z): the bastion's clock is probably behind the CA's; it was deployed all the same, but check the bastion's time synchronisation (chronyc tracking, timedatectl): TSIG-signed DNS updates fail once the clocks are 5 minutes apart"
            )
        );
    }
}
