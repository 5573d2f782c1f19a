//! The process as `/proc` and `getrusage` see it: descriptors, CPU time,
//! resident memory, environment knobs, and the descriptor limit.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

/// Number of open descriptors of this process (entries of /proc/self/fd,
/// minus the one `read_dir` itself holds).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
        - 1
}

/// The open descriptors of this process, each as `N -> what it is`
/// (`readlink` of its /proc entry), for a failure's message.
pub fn open_fds() -> Vec<String> {
    let mut fds: Vec<(i32, String)> = std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| {
            let e = e.ok()?;
            let n = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((n, target.display().to_string()))
        })
        .collect();
    fds.sort();
    fds.into_iter()
        .map(|(n, t)| format!("{n} -> {t}"))
        .collect()
}

/// The highest descriptor number open in this process.
pub fn max_open_fd() -> i32 {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
        .expect("some descriptor is open")
}

/// User plus system CPU time of the whole process.
pub fn cpu_time() -> Duration {
    // SAFETY: an all-zero rusage is a valid value for getrusage to fill.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a live, writable rusage.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", io::Error::last_os_error());
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident set size of this process, in bytes.
pub fn rss_bytes() -> usize {
    rss_of("self").expect("read /proc/self/statm")
}

/// Resident set size of process `pid` (a child), in bytes; `None` once it
/// has gone.
pub fn rss_bytes_of(pid: libc::pid_t) -> Option<usize> {
    rss_of(&pid.to_string())
}

/// Resident pages (`/proc/PID/statm`, second field) times the page size.
fn rss_of(pid: &str) -> Option<usize> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    Some(pages * page)
}

/// The worker count of a runtime built with the defaults: `GOPARK_WORKERS`
/// if it is a positive number, else one per core.
pub fn default_workers() -> usize {
    std::env::var("GOPARK_WORKERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The value of environment variable `key` as a number; panics if it is
/// unset or not a number (a child process told its parameters this way).
pub fn env_usize(key: &str) -> usize {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("{key} not set"))
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

/// Sets the soft `RLIMIT_NOFILE` of this process to `soft` (at most the
/// hard limit); returns the old soft limit.
pub fn set_nofile(soft: libc::rlim_t) -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a live, writable rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = soft;
    // SAFETY: `lim` is a valid rlimit; a soft limit within the hard limit
    // may be set either way.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
    old
}

/// Starts `cmd` with `RLIMIT_NOFILE` (soft and hard) at `limit`.
pub fn child_nofile(cmd: &mut Command, limit: libc::rlim_t) -> &mut Command {
    // SAFETY: the closure runs in the child between fork and exec and only
    // calls setrlimit, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// This process out of descriptors, on purpose: the soft `RLIMIT_NOFILE`
/// lowered to a few numbers above the highest open descriptor, and every
/// number below it taken, so the next `accept` (or `open`) fails with
/// `EMFILE`. Dropping it frees the descriptors and restores the limit.
///
/// It changes the whole process: use it in a child process (see
/// [`child`](super::child)), where no other test opens descriptors.
pub struct OutOfFiles {
    filler: Vec<File>,
    old_limit: libc::rlim_t,
}

impl OutOfFiles {
    /// Lowers the limit to `spare` numbers above the highest descriptor
    /// open now, then takes every free number below it.
    pub fn take(spare: usize) -> io::Result<OutOfFiles> {
        let old_limit = set_nofile(max_open_fd() as libc::rlim_t + 1 + spare as libc::rlim_t);
        let mut out = OutOfFiles {
            filler: Vec::new(),
            old_limit,
        };
        loop {
            match File::open("/dev/null") {
                Ok(f) => out.filler.push(f),
                Err(e) if e.raw_os_error() == Some(libc::EMFILE) => break,
                Err(e) => return Err(e),
            }
        }
        assert!(!out.filler.is_empty(), "no descriptor was free to take");
        Ok(out)
    }
}

impl Drop for OutOfFiles {
    fn drop(&mut self) {
        self.filler.clear();
        set_nofile(self.old_limit);
    }
}
