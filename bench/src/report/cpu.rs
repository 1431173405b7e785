//! Agent CPU time, from `/proc/<pid>/stat` (Linux only; elsewhere there is
//! no CPU figure).

/// utime + stime of a process, in seconds; `None` once it has gone.
#[cfg(target_os = "linux")]
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = procfs::process::Process::new(i32::try_from(pid).ok()?).ok()?.stat().ok()?;
    Some((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

#[cfg(not(target_os = "linux"))]
pub fn cpu_seconds(_pid: u32) -> Option<f64> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn own_process_cpu_time_grows_while_it_computes() {
        let me = std::process::id();
        let start = cpu_seconds(me).expect("our own /proc entry");
        assert!(start >= 0.0);
        // Spin until the kernel has charged at least one more clock tick
        // (10 ms at USER_HZ 100), bounded in case it never does.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        let mut now = start;
        while now <= start && Instant::now() < deadline {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            now = cpu_seconds(me).expect("our own /proc entry");
        }
        assert!(x != 1);
        assert!(now > start, "CPU time stayed at {start} s");
    }

    #[test]
    fn no_figure_for_a_process_that_does_not_exist() {
        // Above the kernel's largest pid_max (2^22).
        assert_eq!(cpu_seconds(i32::MAX as u32), None);
        // Not a pid at all.
        assert_eq!(cpu_seconds(u32::MAX), None);
    }
}
