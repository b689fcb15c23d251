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

/// Let's Encrypt: new orders per account per 3 hours.
pub const NEW_ORDERS_PER_3H: usize = 300;
/// The window of [`NEW_ORDERS_PER_3H`].
pub const NEW_ORDERS_WINDOW: time::Duration = time::Duration::hours(3);
/// Let's Encrypt: certificates per registered domain per 7 days.
pub const CERTS_PER_DOMAIN_PER_WEEK: usize = 50;
/// Let's Encrypt: certificates for the exact same set of names per 7 days.
pub const DUPLICATES_PER_WEEK: usize = 5;
/// The window of [`CERTS_PER_DOMAIN_PER_WEEK`] and [`DUPLICATES_PER_WEEK`].
pub const WEEK: time::Duration = time::Duration::days(7);

/// The budgets a run's new orders are scheduled within: Let's Encrypt's by default,
/// `acme.limits` in the inventory for another CA (or a smaller share of one account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaLimits {
    /// New orders per account per `orders_window`.
    pub orders: usize,
    pub orders_window: time::Duration,
    /// Certificates per registered domain per [`WEEK`].
    pub certs_per_domain: usize,
    /// Certificates for the exact same set of names per [`WEEK`].
    pub duplicates: usize,
}

impl Default for CaLimits {
    fn default() -> CaLimits {
        CaLimits {
            orders: NEW_ORDERS_PER_3H,
            orders_window: NEW_ORDERS_WINDOW,
            certs_per_domain: CERTS_PER_DOMAIN_PER_WEEK,
            duplicates: DUPLICATES_PER_WEEK,
        }
    }
}
/// Let's Encrypt: failed validations per identifier per account per hour.
pub const FAILED_VALIDATIONS_PER_HOUR: usize = 5;

/// The largest DNS answer certorch lets one TXT RRset make, by default: 512 bytes is what a
/// client without EDNS takes over UDP (RFC 1035 §4.2.1; Pebble 2.4 is such a client and sees
/// "No TXT records found" in a truncated answer). Above 1,232 bytes every resolver needs TCP,
/// which firewalls often block. `dns.max_rrset_bytes` overrides it.
pub const MAX_RRSET_BYTES: usize = 512;
