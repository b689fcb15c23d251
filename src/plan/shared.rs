//! Shared-key labels serve one certificate on every member. A member left on another (its
//! deploy failed, someone copied a file) makes the group due, instead of waiting for the next
//! renewal to bring it back in line. Pure.

use std::collections::BTreeMap;

use super::Reason;

/// One member of a shared-key label whose certificate is otherwise current.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub label: &'a str,
    /// Its place in the label's `hosts:` list.
    pub position: usize,
    pub host: &'a str,
    pub fingerprint: &'a str,
    pub serial: &'a str,
}

/// For each shared label whose members (of any labels, in any order) serve different
/// certificates, why the group is due.
pub fn differing_groups(members: &[Member<'_>]) -> BTreeMap<String, Reason> {
    let mut groups: BTreeMap<&str, Vec<Member>> = BTreeMap::new();
    for m in members {
        groups.entry(m.label).or_default().push(*m);
    }
    groups
        .into_iter()
        .filter_map(|(label, mut group)| {
            group.sort_by_key(|m| m.position);
            differs(&group).map(|r| (label.to_string(), r))
        })
        .collect()
}

/// Why one group is due when its members (in `hosts:` order) serve different certificates,
/// naming the first member that differs from the group's certificate: the one most
/// members serve, ties going to the first member's.
pub fn differs(members: &[Member<'_>]) -> Option<Reason> {
    let count = |fp: &str| members.iter().filter(|m| m.fingerprint == fp).count();
    // max_by_key keeps the last maximum; iterating in reverse makes ties go to the first.
    let group = members.iter().rev().max_by_key(|m| count(m.fingerprint))?;
    let odd = members
        .iter()
        .find(|m| m.fingerprint != group.fingerprint)?;
    Some(Reason::SharedDiffers {
        host: odd.host.to_string(),
        found: odd.serial.to_string(),
        group: group.serial.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m<'a>(host: &'a str, fp: &'a str) -> Member<'a> {
        Member {
            label: "www",
            position: 0,
            host,
            fingerprint: fp,
            serial: fp,
        }
    }

    fn reason(host: &str, found: &str, group: &str) -> Option<Reason> {
        Some(Reason::SharedDiffers {
            host: host.into(),
            found: found.into(),
            group: group.into(),
        })
    }

    #[test]
    fn one_certificate_everywhere_is_not_a_difference() {
        assert_eq!(differs(&[]), None);
        assert_eq!(differs(&[m("a", "1")]), None);
        assert_eq!(differs(&[m("a", "1"), m("b", "1"), m("c", "1")]), None);
    }

    #[test]
    fn the_member_that_differs_is_named() {
        assert_eq!(
            differs(&[m("a", "1"), m("b", "1"), m("c", "2")]),
            reason("c", "2", "1")
        );
        // The odd one first: the majority still decides what the group serves.
        assert_eq!(
            differs(&[m("a", "2"), m("b", "1"), m("c", "1")]),
            reason("a", "2", "1")
        );
        // A tie: the first member's certificate is the group's.
        assert_eq!(differs(&[m("a", "1"), m("b", "2")]), reason("b", "2", "1"));
        assert_eq!(
            differs(&[m("a", "1"), m("b", "2"), m("c", "3")]),
            reason("b", "2", "1")
        );
    }

    #[test]
    fn groups_are_judged_apart_in_hosts_order() {
        let at = |label, position, host, fp| Member {
            label,
            position,
            host,
            fingerprint: fp,
            serial: fp,
        };
        let got = differing_groups(&[
            at("edge", 2, "c", "2"),
            at("www", 0, "x", "9"),
            at("edge", 1, "b", "1"),
            at("www", 1, "y", "9"),
            at("edge", 0, "a", "2"),
        ]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got.get("edge").cloned(), reason("b", "1", "2"));
        // Listed in another order, a tie goes to the first in `hosts:`.
        let got = differing_groups(&[at("edge", 1, "b", "1"), at("edge", 0, "a", "2")]);
        assert_eq!(got.get("edge").cloned(), reason("b", "1", "2"));
    }

    #[test]
    fn the_reason_reads_well() {
        assert_eq!(
            reason("web2", "0b", "0a").unwrap().to_string(),
            "its shared-key group differs: web2 serves serial 0b, the others serial 0a: the group gets one new key and certificate"
        );
    }
}
