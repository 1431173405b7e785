//! Agent CPU time, from `/proc`.

/// utime + stime of a process, in seconds, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Clock ticks are USER_HZ, 100 per second on every Linux architecture Floe runs on.
pub fn parse_proc_stat(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses; fields
    // after the last ')' start at field 3, so utime (14) and stime (15) are
    // the 12th and 13th.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_time_after_the_command_name() {
        // Field 2 holds a space and a parenthesis; utime 250, stime 50 ticks.
        let stat = "4242 (floe agent) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 5 0 1000 0 0";
        assert_eq!(parse_proc_stat(stat), Some(3.0));
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn own_process_has_cpu_time() {
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_seconds(std::process::id()).is_some());
    }
}
