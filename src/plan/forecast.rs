//! Rate-limit forecast: what a run would order, against what the state says was ordered and
//! issued recently, checked with Let's Encrypt's published limits (DOMAIN.md). Renewals the
//! CA's ARI window asked for are exempt from all of them. Pure: history and plan in, warnings
//! out.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::limits;

/// One order a run would open.
#[derive(Debug, Clone)]
pub struct Planned {
    pub names: Vec<String>,
    /// Asked for by ARI, so exempt from the limits.
    pub exempt: bool,
}

/// What the state says happened recently.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Orders opened at this CA in the last 3 hours.
    pub orders_3h: usize,
    /// Name sets of certificates issued in the last 7 days.
    pub issued_7d: Vec<Vec<String>>,
    /// Identifiers whose validation failed in the last hour, once per failure.
    pub failed_1h: Vec<String>,
}

/// A limit the run would reach or breach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitWarning {
    pub limit: &'static str,
    pub detail: String,
}

/// The registered domain of a name (public suffix plus one label); the name itself when the
/// suffix list does not know it.
pub fn registered_domain(name: &str) -> String {
    let n = name.trim_start_matches("*.");
    psl::domain_str(n).unwrap_or(n).to_string()
}

/// Checks a run's planned orders against the limits.
pub fn forecast(planned: &[Planned], history: &History) -> Vec<LimitWarning> {
    let mut out = Vec::new();
    let counted: Vec<&Planned> = planned.iter().filter(|p| !p.exempt).collect();

    let orders = history.orders_3h + counted.len();
    if orders > limits::NEW_ORDERS_PER_3H {
        out.push(LimitWarning {
            limit: "new orders per account per 3 hours",
            detail: format!(
                "{} recent + {} planned = {orders} > {}: split the run with --limit or wait",
                history.orders_3h,
                counted.len(),
                limits::NEW_ORDERS_PER_3H
            ),
        });
    }

    let mut per_domain: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for set in &history.issued_7d {
        for d in domains(set) {
            per_domain.entry(d).or_default().0 += 1;
        }
    }
    for p in &counted {
        for d in domains(&p.names) {
            per_domain.entry(d).or_default().1 += 1;
        }
    }
    for (domain, (past, now)) in per_domain {
        if now > 0 && past + now > limits::CERTS_PER_DOMAIN_PER_WEEK {
            out.push(LimitWarning {
                limit: "certificates per registered domain per 7 days",
                detail: format!(
                    "{domain}: {past} issued + {now} planned > {}",
                    limits::CERTS_PER_DOMAIN_PER_WEEK
                ),
            });
        }
    }

    let mut per_set: BTreeMap<Vec<String>, (usize, usize)> = BTreeMap::new();
    for set in &history.issued_7d {
        per_set.entry(sorted(set)).or_default().0 += 1;
    }
    for p in &counted {
        per_set.entry(sorted(&p.names)).or_default().1 += 1;
    }
    for (set, (past, now)) in per_set {
        if now > 0 && past + now > limits::DUPLICATES_PER_WEEK {
            out.push(LimitWarning {
                limit: "duplicate certificates (same names) per 7 days",
                detail: format!(
                    "[{}]: {past} issued + {now} planned > {}: give each host its own name in the certificate, or share one certificate",
                    set.join(", "),
                    limits::DUPLICATES_PER_WEEK
                ),
            });
        }
    }

    let mut failed: BTreeMap<&str, usize> = BTreeMap::new();
    for id in &history.failed_1h {
        *failed.entry(id.as_str()).or_default() += 1;
    }
    for p in &counted {
        for n in &p.names {
            if let Some(&f) = failed.get(n.as_str())
                && f >= limits::FAILED_VALIDATIONS_PER_HOUR
            {
                out.push(LimitWarning {
                    limit: "failed validations per identifier per hour",
                    detail: format!("{n} failed {f} times in the last hour: fix its DNS (certorch check) before ordering again"),
                });
            }
        }
    }
    out.dedup();
    out
}

fn domains(names: &[String]) -> Vec<String> {
    let mut d: Vec<String> = names.iter().map(|n| registered_domain(n)).collect();
    d.sort();
    d.dedup();
    d
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut v = names.to_vec();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(names: &[&str], exempt: bool) -> Planned {
        Planned {
            names: names.iter().map(|s| s.to_string()).collect(),
            exempt,
        }
    }

    #[test]
    fn six_hosts_with_the_same_names_breach_the_duplicate_limit() {
        let planned: Vec<Planned> = (0..6)
            .map(|_| p(&["www.example.org", "example.org"], false))
            .collect();
        let w = forecast(&planned, &History::default());
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].limit, "duplicate certificates (same names) per 7 days");
        assert!(
            w[0].detail
                .starts_with("[example.org, www.example.org]: 0 issued + 6 planned > 5")
        );
        // Five is fine; and earlier issuance counts.
        assert!(forecast(&planned[..5], &History::default()).is_empty());
        let h = History {
            issued_7d: vec![vec!["example.org".into(), "www.example.org".into()]],
            ..Default::default()
        };
        assert_eq!(forecast(&planned[..5], &h).len(), 1);
        // ARI renewals are exempt.
        let exempt: Vec<Planned> = (0..6)
            .map(|_| p(&["www.example.org", "example.org"], true))
            .collect();
        assert!(forecast(&exempt, &History::default()).is_empty());
    }

    #[test]
    fn registered_domains_and_orders() {
        assert_eq!(registered_domain("a.b.example.co.uk"), "example.co.uk");
        assert_eq!(registered_domain("*.example.org"), "example.org");
        let many: Vec<Planned> = (0..51)
            .map(|i| p(&[&format!("h{i}.example.org")], false))
            .collect();
        let w = forecast(&many, &History::default());
        assert_eq!(w.len(), 1);
        assert!(
            w[0].detail
                .starts_with("example.org: 0 issued + 51 planned > 50"),
            "{w:?}"
        );
        let h = History {
            orders_3h: 299,
            ..Default::default()
        };
        let w = forecast(
            &[p(&["a.example.org"], false), p(&["b.example.net"], false)],
            &h,
        );
        assert_eq!(w[0].limit, "new orders per account per 3 hours");
    }

    #[test]
    fn failing_names_are_flagged() {
        let h = History {
            failed_1h: vec!["a.example.org".into(); 5],
            ..Default::default()
        };
        let w = forecast(&[p(&["a.example.org"], false)], &h);
        assert_eq!(w[0].limit, "failed validations per identifier per hour");
    }
}
