//! Rate-limit-aware scheduling: which of a run's due certificates are ordered now, and when
//! the turn of each of the others comes. The account's recent orders and issuance (from the
//! state) and the CA's budgets ([`CaLimits`]) in, one [`Slot`] per candidate out. The most
//! urgent go first: expired, then expiring soonest, then new. Pure.
//!
//! Renewals that name the certificate they replace (ARI, RFC 9773 §5) are exempt from every
//! limit, as Let's Encrypt exempts them (DOMAIN.md), and orders an interrupted run already
//! opened cost nothing new: both are always ordered now and use no budget. Past orders that
//! named what they replaced count against no budget either.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::limits::{CaLimits, WEEK};
use crate::plan::forecast::registered_domain;

/// What ordering a candidate costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cost {
    /// Exempt from the limits (an ARI renewal naming what it replaces), or an order an
    /// interrupted run opened: ordered now, counted nowhere.
    Free,
    /// Must go now (an interrupted run's certificate without an order yet) but opens an order.
    Committed,
    /// Subject to every limit.
    Counted,
}

/// One order a run would open (a shared-key group is one order).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub names: Vec<String>,
    pub cost: Cost,
    /// When the certificate deployed now expires; `None` for a new one.
    pub not_after: Option<OffsetDateTime>,
}

/// What the state says the account did recently.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Each order opened at this CA within the orders window.
    pub orders: Vec<PastOrder>,
    /// Each certificate from this CA issued within a [`WEEK`].
    pub issued: Vec<PastIssue>,
}

/// An order the account opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastOrder {
    pub at: OffsetDateTime,
    /// It named the certificate it replaced (ARI): exempt, it counts against no limit.
    pub renewal: bool,
}

/// A certificate the account was issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastIssue {
    pub at: OffsetDateTime,
    pub names: Vec<String>,
    /// Its order named the certificate it replaced (ARI): exempt, it counts against no limit.
    pub renewal: bool,
}

/// When a candidate is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Now,
    /// Not before `at`, when `limit` leaves room again.
    At {
        at: OffsetDateTime,
        limit: &'static str,
    },
}

pub const ORDERS: &str = "new orders per account";
pub const PER_DOMAIN: &str = "certificates per registered domain per 7 days";
pub const DUPLICATES: &str = "duplicate certificates (same names) per 7 days";

/// Event times, sorted, counted in sliding windows.
#[derive(Default)]
struct Times(Vec<OffsetDateTime>);

impl Times {
    fn add(&mut self, t: OffsetDateTime) {
        let i = self.0.partition_point(|x| *x <= t);
        self.0.insert(i, t);
    }
    /// Events in `(t - window, t]`.
    fn within(&self, t: OffsetDateTime, window: Duration) -> usize {
        let hi = self.0.partition_point(|x| *x <= t);
        let lo = self.0.partition_point(|x| *x <= t - window);
        hi - lo
    }
    /// The times at which an event of these leaves a window of `window`, from `now` on.
    fn releases(
        &self,
        window: Duration,
        now: OffsetDateTime,
    ) -> impl Iterator<Item = OffsetDateTime> + '_ {
        self.0
            .iter()
            .map(move |t| *t + window)
            .filter(move |t| *t > now)
    }
}

/// Every order and issuance counted so far: the history, then each candidate at its slot.
#[derive(Default)]
struct Ledger {
    orders: Times,
    per_domain: BTreeMap<String, Times>,
    per_set: BTreeMap<Vec<String>, Times>,
}

impl Ledger {
    fn record(&mut self, names: &[String], t: OffsetDateTime, order: bool) {
        if order {
            self.orders.add(t);
        }
        for d in domains(names) {
            self.per_domain.entry(d).or_default().add(t);
        }
        self.per_set.entry(sorted(names)).or_default().add(t);
    }
}

/// The order candidates are considered in: what must go now, then expired (longest expired
/// first), then expiring soonest, then new ones in the order given.
fn urgency(c: &Candidate, now: OffsetDateTime) -> (u8, u8, Option<OffsetDateTime>) {
    let must = u8::from(c.cost == Cost::Counted);
    match c.not_after {
        Some(t) if t <= now => (must, 0, Some(t)),
        Some(t) => (must, 1, Some(t)),
        None => (must, 2, None),
    }
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    v.sort();
    v.dedup();
    v
}

fn domains(names: &[String]) -> Vec<String> {
    let mut d: Vec<String> = names.iter().map(|n| registered_domain(n)).collect();
    d.sort();
    d.dedup();
    d
}

/// One slot per candidate, in the candidates' order.
pub fn schedule(
    candidates: &[Candidate],
    history: &History,
    limits: &CaLimits,
    now: OffsetDateTime,
) -> Vec<Slot> {
    let mut l = Ledger::default();
    // Let's Encrypt exempts ARI renewals from all of its limits (DOMAIN.md): they fill neither
    // the orders window nor a registered domain's week nor a name set's.
    for o in history.orders.iter().filter(|o| !o.renewal) {
        l.orders.add(o.at);
    }
    for i in history.issued.iter().filter(|i| !i.renewal) {
        l.record(&i.names, i.at, false);
    }

    let mut by_urgency: Vec<usize> = (0..candidates.len()).collect();
    by_urgency.sort_by_key(|&i| (urgency(&candidates[i], now), i));
    let mut slots = vec![Slot::Now; candidates.len()];
    for i in by_urgency {
        let c = &candidates[i];
        match c.cost {
            Cost::Free => continue,
            Cost::Committed => {
                l.record(&c.names, now, true);
                continue;
            }
            Cost::Counted => {}
        }
        let (ds, set) = (domains(&c.names), sorted(&c.names));
        let empty = Times::default();
        let dom: Vec<&Times> = ds
            .iter()
            .map(|d| l.per_domain.get(d).unwrap_or(&empty))
            .collect();
        let same = l.per_set.get(&set).unwrap_or(&empty);
        // The first moment every limit has room: now, or when one of the events that fill a
        // window leaves it.
        let blocked = |t: OffsetDateTime| -> Option<&'static str> {
            if l.orders.within(t, limits.orders_window) >= limits.orders {
                Some(ORDERS)
            } else if dom
                .iter()
                .any(|d| d.within(t, WEEK) >= limits.certs_per_domain)
            {
                Some(PER_DOMAIN)
            } else if same.within(t, WEEK) >= limits.duplicates {
                Some(DUPLICATES)
            } else {
                None
            }
        };
        let slot = match blocked(now) {
            None => Slot::Now,
            Some(first) => {
                let mut tries: Vec<OffsetDateTime> = l
                    .orders
                    .releases(limits.orders_window, now)
                    .chain(dom.iter().flat_map(|d| d.releases(WEEK, now)))
                    .chain(same.releases(WEEK, now))
                    .collect();
                tries.sort();
                tries.dedup();
                // After the last release every window is empty; limits are at least 1.
                let at = tries
                    .into_iter()
                    .find(|t| blocked(*t).is_none())
                    .unwrap_or(now + limits.orders_window.max(WEEK));
                Slot::At { at, limit: first }
            }
        };
        let t = match slot {
            Slot::Now => now,
            Slot::At { at, .. } => at,
        };
        l.record(&c.names, t, true);
        slots[i] = slot;
    }
    slots
}

/// The schedule in short: how many go at each time, `None` first for now.
pub fn batches(slots: &[Slot]) -> Vec<(Option<OffsetDateTime>, usize)> {
    let mut m: BTreeMap<Option<OffsetDateTime>, usize> = BTreeMap::new();
    for s in slots {
        let k = match s {
            Slot::Now => None,
            Slot::At { at, .. } => Some(*at),
        };
        *m.entry(k).or_default() += 1;
    }
    m.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> OffsetDateTime {
        time::macros::datetime!(2026-12-01 18:14 UTC)
    }

    fn new(i: usize) -> Candidate {
        Candidate {
            names: vec![format!("h{i}.example.org")],
            cost: Cost::Counted,
            not_after: None,
        }
    }

    fn ordered(at: OffsetDateTime) -> PastOrder {
        PastOrder { at, renewal: false }
    }

    fn issued(at: OffsetDateTime, names: &[String]) -> PastIssue {
        PastIssue {
            at,
            names: names.to_vec(),
            renewal: false,
        }
    }

    fn limits(orders: usize) -> CaLimits {
        CaLimits {
            orders,
            ..CaLimits::default()
        }
    }

    #[test]
    fn an_onboarding_goes_in_batches_of_the_window() {
        let c: Vec<Candidate> = (0..12).map(new).collect();
        let s = schedule(&c, &History::default(), &limits(5), t0());
        assert_eq!(
            batches(&s),
            vec![
                (None, 5),
                (Some(t0() + Duration::hours(3)), 5),
                (Some(t0() + Duration::hours(6)), 2)
            ]
        );
        // New ones keep the inventory's order.
        assert!(s[..5].iter().all(|s| *s == Slot::Now));
        assert_eq!(
            s[11],
            Slot::At {
                at: t0() + Duration::hours(6),
                limit: ORDERS
            }
        );
    }

    #[test]
    fn recent_orders_use_the_budget_and_free_it_as_they_age() {
        let h = History {
            orders: vec![
                ordered(t0() - Duration::hours(2)),
                ordered(t0() - Duration::minutes(30)),
            ],
            issued: Vec::new(),
        };
        let c: Vec<Candidate> = (0..4).map(new).collect();
        let s = schedule(&c, &h, &limits(3), t0());
        assert_eq!(
            batches(&s),
            vec![
                (None, 1),
                (Some(t0() + Duration::hours(1)), 1),
                (Some(t0() + Duration::minutes(150)), 1),
                (Some(t0() + Duration::hours(3)), 1),
            ]
        );
    }

    #[test]
    fn expired_first_then_expiring_soonest_then_new() {
        let mut c: Vec<Candidate> = (0..4).map(new).collect();
        c[1].not_after = Some(t0() + Duration::days(3));
        c[2].not_after = Some(t0() + Duration::days(1));
        c[3].not_after = Some(t0() - Duration::hours(1));
        let s = schedule(&c, &History::default(), &limits(2), t0());
        assert_eq!(s[3], Slot::Now, "the expired one goes first");
        assert_eq!(s[2], Slot::Now, "then the one expiring soonest");
        assert!(matches!(s[1], Slot::At { .. }));
        assert!(matches!(s[0], Slot::At { .. }));
        let (Slot::At { at: a1, .. }, Slot::At { at: a0, .. }) = (s[1], s[0]) else {
            unreachable!()
        };
        assert!(a1 <= a0, "the expiring one before the new one");
    }

    #[test]
    fn exempt_and_resumed_orders_are_never_deferred_and_cost_accordingly() {
        let mut c: Vec<Candidate> = (0..4).map(new).collect();
        c[0].cost = Cost::Free;
        c[1].cost = Cost::Committed;
        let h = History {
            orders: vec![ordered(t0() - Duration::minutes(10))],
            issued: Vec::new(),
        };
        let s = schedule(&c, &h, &limits(2), t0());
        assert_eq!(s[0], Slot::Now);
        assert_eq!(s[1], Slot::Now);
        // One past order and the committed one fill the budget of 2; the free one costs nothing.
        assert_eq!(
            s[2],
            Slot::At {
                at: t0() + Duration::minutes(170),
                limit: ORDERS
            }
        );
        assert_eq!(
            s[3],
            Slot::At {
                at: t0() + Duration::hours(3),
                limit: ORDERS
            }
        );
    }

    #[test]
    fn duplicate_name_sets_wait_a_week() {
        let names = vec!["www.example.org".to_string(), "example.org".to_string()];
        let issued_at = t0() - Duration::days(2);
        let h = History {
            orders: Vec::new(),
            issued: vec![issued(issued_at, &names); 5],
        };
        let c = vec![Candidate {
            names: vec!["EXAMPLE.org".into(), "www.example.org".into()],
            cost: Cost::Counted,
            not_after: Some(t0() + Duration::days(20)),
        }];
        let s = schedule(&c, &h, &CaLimits::default(), t0());
        assert_eq!(
            s[0],
            Slot::At {
                at: issued_at + WEEK,
                limit: DUPLICATES
            }
        );
        // Exempt: goes now.
        let free = vec![Candidate {
            cost: Cost::Free,
            ..c[0].clone()
        }];
        assert_eq!(
            schedule(&free, &h, &CaLimits::default(), t0()),
            vec![Slot::Now]
        );
    }

    #[test]
    fn a_registered_domain_fills_up_for_the_week() {
        let lim = CaLimits {
            certs_per_domain: 3,
            ..CaLimits::default()
        };
        let h = History {
            orders: Vec::new(),
            issued: vec![issued(
                t0() - Duration::days(6),
                &["a.example.org".to_string()],
            )],
        };
        let mut c: Vec<Candidate> = (0..3).map(new).collect();
        c.push(Candidate {
            names: vec!["x.example.net".into()],
            cost: Cost::Counted,
            not_after: None,
        });
        let s = schedule(&c, &h, &lim, t0());
        assert_eq!(s[0], Slot::Now);
        assert_eq!(s[1], Slot::Now);
        assert_eq!(
            s[2],
            Slot::At {
                at: t0() + Duration::days(1),
                limit: PER_DOMAIN
            }
        );
        assert_eq!(
            s[3],
            Slot::Now,
            "another registered domain has its own budget"
        );
    }

    /// Past ARI renewals (their orders named what they replaced) fill no budget: not the
    /// orders window, not a registered domain's week, not a name set's week. The same history
    /// without `replaces` fills all three.
    #[test]
    fn past_ari_renewals_count_against_no_limit() {
        let lim = CaLimits {
            orders: 2,
            certs_per_domain: 2,
            duplicates: 1,
            ..CaLimits::default()
        };
        let names = vec!["www.example.org".to_string()];
        let history = |renewal: bool| History {
            orders: vec![
                PastOrder {
                    at: t0() - Duration::hours(1),
                    renewal,
                },
                PastOrder {
                    at: t0() - Duration::minutes(20),
                    renewal,
                },
            ],
            issued: vec![
                PastIssue {
                    at: t0() - Duration::hours(1),
                    names: names.clone(),
                    renewal,
                },
                PastIssue {
                    at: t0() - Duration::minutes(20),
                    names: vec!["api.example.org".into()],
                    renewal,
                },
            ],
        };
        // A forced reissue of the same names (no ARI window: counted), and a new name under the
        // same registered domain.
        let c = vec![
            Candidate {
                names: names.clone(),
                cost: Cost::Counted,
                not_after: Some(t0() + Duration::days(30)),
            },
            new(1),
        ];
        assert_eq!(
            schedule(&c, &history(true), &lim, t0()),
            vec![Slot::Now, Slot::Now],
            "exempt history leaves every budget whole"
        );
        let counted = schedule(&c, &history(false), &lim, t0());
        assert!(
            matches!(counted[0], Slot::At { limit: ORDERS, .. }),
            "the same history without replaces fills the orders window: {counted:?}"
        );
        // With room for orders, the same history still fills the domain's and the name set's week.
        let roomy = CaLimits { orders: 10, ..lim };
        assert_eq!(
            schedule(&c, &history(false), &roomy, t0()),
            vec![
                Slot::At {
                    at: t0() - Duration::hours(1) + WEEK,
                    limit: PER_DOMAIN
                },
                Slot::At {
                    at: t0() - Duration::minutes(20) + WEEK,
                    limit: PER_DOMAIN
                },
            ]
        );
        assert_eq!(
            schedule(&c, &history(true), &roomy, t0()),
            vec![Slot::Now, Slot::Now]
        );
    }

    /// A mix: only the counted past orders fill the window.
    #[test]
    fn only_counted_past_orders_fill_the_window() {
        let h = History {
            orders: vec![
                ordered(t0() - Duration::hours(2)),
                PastOrder {
                    at: t0() - Duration::hours(1),
                    renewal: true,
                },
            ],
            issued: Vec::new(),
        };
        let c: Vec<Candidate> = (0..2).map(new).collect();
        assert_eq!(
            schedule(&c, &h, &limits(2), t0()),
            vec![
                Slot::Now,
                Slot::At {
                    at: t0() + Duration::hours(1),
                    limit: ORDERS
                }
            ]
        );
    }
}
