//! Keys and CSRs, made on the hosts: only the CSR comes back. A key an interrupted run staged
//! is used again when it still matches the CSR that run recorded, so its order stays usable.

use futures::StreamExt;

use super::context::Routed;
use super::{Ctx, Keyed};
use crate::host::keygen;
use crate::report::{Outcome, Stage};
use crate::x509;

/// Makes (or takes up) the key and CSR of every routed certificate.
pub(crate) async fn make<'a>(ctx: &Ctx<'_>, routed: Vec<Routed<'a>>) -> Vec<Keyed<'a>> {
    let results: Vec<Result<Keyed, Outcome>> = futures::stream::iter(routed)
        .map(|r| make_one(ctx, r))
        .buffer_unordered(ctx.concurrency)
        .collect()
        .await;
    super::context::keep_ok(ctx, results)
}

/// Makes (or takes up) one certificate's key and CSR on its host.
pub(crate) async fn make_one<'a>(ctx: &Ctx<'_>, r: Routed<'a>) -> Result<Keyed<'a>, Outcome> {
    let item = &r.due.item;
    item.stage(ctx.reporter, Stage::Key);
    if let Some(csr) = resumed_csr(&r).await {
        return Ok(Keyed {
            due: r.due,
            csr,
            key_resumed: true,
            targets: r.targets,
        });
    }
    let csr = keygen::make_key_and_csr(item.conn.as_ref(), item.spec, &item.host.name)
        .await
        .map_err(|e| item.fail(Stage::Key, &e))?;
    // Recorded before the CSR goes anywhere: a killed run's key is found again.
    if let Err(e) = ctx.state.keyed(
        &item.host.name,
        &item.spec.label,
        ctx.directory(),
        &item.names(),
        &csr.der,
    ) {
        item.discard(ctx, &[&item.spec.key]).await;
        return Err(item.fail(Stage::Key, &e));
    }
    Ok(Keyed {
        due: r.due,
        csr,
        key_resumed: false,
        targets: r.targets,
    })
}

/// The recorded CSR of an interrupted run, when its key is still staged on the host and it
/// still asks for what the inventory does.
async fn resumed_csr(r: &Routed<'_>) -> Option<x509::CheckedCsr> {
    let item = &r.due.item;
    let row = r.due.resume.as_ref()?;
    let csr = x509::check_csr_der(row.csr.clone()?, &item.spec.names, item.spec.key_type).ok()?;
    let staged = keygen::staged_public_key(item.conn.as_ref(), item.spec)
        .await
        .ok()
        .flatten()?;
    (staged == csr.spki).then_some(csr)
}
