//! Shared-key labels serve one certificate on every member. A member left on another (its
//! deploy failed, someone copied a file) makes the group due, instead of waiting for the next
//! renewal to bring it back in line. Pure.

use super::Reason;

/// One member of a shared-key label as surveyed, in inventory order.
#[derive(Debug, Clone, Copy)]
pub struct Member<'a> {
    pub host: &'a str,
    pub fingerprint: &'a str,
    pub serial: &'a str,
}

/// Why the group is due when its members serve different certificates, naming the first
/// member (in inventory order) that differs from the group's certificate: the one most
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
    fn the_reason_reads_well() {
        assert_eq!(
            reason("web2", "0b", "0a").unwrap().to_string(),
            "its shared-key group differs: web2 serves serial 0b, the others serial 0a: the group gets one new key and certificate"
        );
    }
}
