//! The open-files limit of the certorch process. Each host certorch works on holds a few
//! descriptors for the whole run (OpenSSH: the master's standard input and, during a command,
//! its control socket; russh: the TCP connection), and a cron job or systemd unit starts
//! with a soft limit of 1,024: a run over a thousand hosts would fail hosts for want of
//! descriptors. The soft limit is raised at start, as servers do, to the hard limit or
//! [`ENOUGH`], whichever is lower: what certorch starts (ssh, an operator's `exec` command)
//! inherits it, and some programs walk every possible descriptor when they start.

/// Descriptors enough for tens of thousands of hosts.
const ENOUGH: libc::rlim_t = 65_536;

/// Raises the soft RLIMIT_NOFILE towards the hard limit (at most [`ENOUGH`], never lowering
/// it); the soft limit then, or why it could not be raised (the run goes on with what it has).
pub fn raise() -> Result<libc::rlim_t, std::io::Error> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit to the pointer it is given, which is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let want = lim.rlim_max.min(ENOUGH);
    if lim.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit from the pointer it is given, which is valid.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_is_raised_within_the_hard_one() {
        let got = super::raise().expect("raising within the hard limit is allowed");
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in `raise`.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert!(lim.rlim_cur <= lim.rlim_max);
        assert!(lim.rlim_cur >= lim.rlim_max.min(super::ENOUGH));
        assert_eq!(got, lim.rlim_cur);
    }
}
