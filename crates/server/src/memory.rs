//! The broker's memory: how much it may have (the machine's RAM, or its cgroup's limit when that
//! is lower, as in a container) and how much it has (its resident set), read from /proc and
//! /sys/fs/cgroup.

use std::path::Path;

/// The memory available to the broker: total RAM, or the cgroup's limit if lower. None where
/// /proc cannot tell (not Linux).
pub fn available() -> Option<u64> {
    let total = mem_total(&std::fs::read_to_string("/proc/meminfo").ok()?)?;
    let own_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let limit = cgroup_limit(Path::new("/sys/fs/cgroup"), &own_cgroup);
    Some(limit.map_or(total, |l| l.min(total)))
}

/// The broker's resident memory in bytes (RSS, from /proc/self/statm).
pub fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// `MemTotal` of /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The lowest memory limit on the way from the broker's cgroup up to the root, cgroup v2
/// (`memory.max`) or v1 (`memory.limit_in_bytes`). `sys` is where cgroups are mounted,
/// `own` the text of /proc/self/cgroup. Ancestors count because a parent's limit binds its
/// children; the root too, since in a container without its own cgroup namespace the path in
/// /proc names the host's hierarchy while the container's cgroup is mounted at the root.
fn cgroup_limit(sys: &Path, own: &str) -> Option<u64> {
    let mut found = None;
    for line in own.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        let (base, file) = if controllers.is_empty() {
            (sys.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (sys.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        found = min_some(found, lowest_on_path(&base, path, file));
    }
    found
}

/// The lowest limit in `file` from `base/path` up to `base`.
fn lowest_on_path(base: &Path, path: &str, file: &str) -> Option<u64> {
    let mut dir = base.join(path.trim_start_matches('/'));
    let mut lowest = None;
    loop {
        lowest = min_some(lowest, read_limit(&dir.join(file)));
        if dir == base || !dir.pop() || !dir.starts_with(base) {
            return lowest;
        }
    }
}

/// A limit file: a number of bytes, or "max" (none).
fn read_limit(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

fn min_some(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, file: &str, text: &str) {
        let path = root.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn mem_total_is_read_in_bytes() {
        let meminfo = "MemTotal:       16303052 kB\nMemFree:         1030268 kB\n";
        assert_eq!(mem_total(meminfo), Some(16_303_052 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn cgroup_v2_limit_is_the_lowest_on_the_path() {
        let sys = tempfile::tempdir().unwrap();
        write(sys.path(), "system.slice/warren.service/memory.max", "max\n");
        write(sys.path(), "system.slice/memory.max", "2147483648\n");
        let own = "0::/system.slice/warren.service\n";
        assert_eq!(cgroup_limit(sys.path(), own), Some(2 << 30));
        write(sys.path(), "system.slice/warren.service/memory.max", "1073741824\n");
        assert_eq!(cgroup_limit(sys.path(), own), Some(1 << 30));
    }

    #[test]
    fn cgroup_v2_without_a_limit() {
        let sys = tempfile::tempdir().unwrap();
        write(sys.path(), "user.slice/memory.max", "max\n");
        assert_eq!(cgroup_limit(sys.path(), "0::/user.slice\n"), None);
        assert_eq!(cgroup_limit(sys.path(), ""), None, "no cgroup file");
    }

    #[test]
    fn container_namespace_reads_the_root() {
        let sys = tempfile::tempdir().unwrap();
        write(sys.path(), "memory.max", "536870912\n");
        assert_eq!(cgroup_limit(sys.path(), "0::/\n"), Some(512 << 20));
        // without a cgroup namespace the path is the host's, absent here
        assert_eq!(cgroup_limit(sys.path(), "0::/docker/abc\n"), Some(512 << 20));
    }

    #[test]
    fn cgroup_v1_memory_controller() {
        let sys = tempfile::tempdir().unwrap();
        // v1's "no limit" is a huge number, not "max"
        write(sys.path(), "memory/memory.limit_in_bytes", "9223372036854771712\n");
        write(sys.path(), "memory/docker/abc/memory.limit_in_bytes", "268435456\n");
        let own = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n9:memory:/docker/abc\n";
        assert_eq!(cgroup_limit(sys.path(), own), Some(256 << 20));
        let unlimited = "9:memory:/\n";
        assert_eq!(cgroup_limit(sys.path(), unlimited), Some(9_223_372_036_854_771_712));
    }

    #[test]
    fn this_process_has_memory() {
        let available = available().expect("available memory");
        let resident = resident().expect("resident memory");
        assert!(resident > 0 && resident < available, "{resident} of {available}");
    }
}
