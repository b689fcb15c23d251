//! Numbers certorch's decisions depend on that come from CAs and standards, named and in one
//! place (see DOMAIN.md); when one changes, this is the file to edit.

use std::time::Duration;

/// Certificates living less than this renew at half their lifetime instead of a third: a
/// 6-day certificate must renew about 3 days before expiry.
pub const SHORT_LIFETIME: time::Duration = time::Duration::days(10);

/// TTL of the TXT records certorch publishes: short, so a resolver that cached one does not
/// hold it long after withdrawal.
pub const TXT_TTL: u32 = 60;

/// How often the authoritative servers are asked while waiting for propagation.
pub const PROPAGATION_POLL: Duration = Duration::from_millis(500);

/// How many CNAMEs are followed from `_acme-challenge.<name>` before giving up.
pub const MAX_CNAME_HOPS: usize = 8;
