//! Raising the descriptor limit, as Go does at start-up: the soft
//! `RLIMIT_NOFILE` is often 1024, too few for a thousand connections,
//! while the hard limit the process may raise it to is much higher.

/// Raises the soft limit on open descriptors to the hard limit. Best
/// effort: on failure the process keeps the limit it had.
pub fn raise_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into `lim`, which is valid.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one valid rlimit.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}
