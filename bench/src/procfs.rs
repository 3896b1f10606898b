//! CPU time of processes from `/proc`: the benchmark itself, the server
//! (`--server-pid`) and the database (`--db-pid`, each a process tree).
//!
//! A process's own time is `utime + stime` of `/proc/<pid>/stat`. A
//! database such as PostgreSQL runs a process per connection and helpers
//! (WAL writer, checkpointer, …) under one postmaster, and processes come and
//! go during a run; so a `--db-pid` is taken as the root of a tree, and its
//! CPU time is the sum over the root and every live descendant of
//! `utime + stime + cutime + cstime`. A child that exits is reaped by its
//! parent, whose `cutime + cstime` then carry its time, so the sum never
//! loses what an exited backend spent: the difference of two readings is the
//! CPU the whole tree used in between.

use std::collections::HashMap;

/// Linux clock ticks per second for `/proc/<pid>/stat` (USER_HZ, 100 on every
/// mainstream architecture).
pub(crate) const CLOCK_TICKS: f64 = 100.0;

/// The fields of `/proc/<pid>/stat` the benchmark reads, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    /// Parent process id.
    pub ppid: u32,
    /// User and system time of the process itself.
    pub own: u64,
    /// User and system time of its reaped children.
    pub children: u64,
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may hold spaces and parentheses itself, so the fields
/// are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let after = &text[text.rfind(')')? + 1..];
    // After the name: state (3), ppid (4), …, utime (14), stime (15),
    // cutime (16), cstime (17); index = field number - 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| -> Option<u64> { fields.get(i)?.parse().ok() };
    let ppid = u32::try_from(num(1)?).ok()?;
    let (utime, stime) = (num(11)?, num(12)?);
    // cutime and cstime are signed in the kernel's format; never negative in practice.
    let signed = |i: usize| -> Option<u64> {
        let v: i64 = fields.get(i)?.parse().ok()?;
        Some(v.max(0) as u64)
    };
    Some(Stat {
        ppid,
        own: utime + stime,
        children: signed(13)? + signed(14)?,
    })
}

fn stat(pid: &str) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time (user + system) of one process in seconds; `pid` may be `self`.
pub(crate) fn cpu_secs(pid: &str) -> Option<f64> {
    Some(stat(pid)?.own as f64 / CLOCK_TICKS)
}

/// Every process's parent, from `/proc`.
fn parents() -> HashMap<u32, Stat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(s) = stat(&pid.to_string()) {
            out.insert(pid, s);
        }
    }
    out
}

/// The pids of `roots` and all their live descendants, with their stats.
fn trees(roots: &[u32], all: &HashMap<u32, Stat>) -> Vec<(u32, Stat)> {
    let mut members: Vec<u32> = roots
        .iter()
        .copied()
        .filter(|p| all.contains_key(p))
        .collect();
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        for (pid, s) in all {
            if s.ppid == parent && !members.contains(pid) {
                members.push(*pid);
            }
        }
        i += 1;
    }
    members
        .into_iter()
        .filter_map(|p| all.get(&p).map(|s| (p, *s)))
        .collect()
}

/// CPU time in seconds of the process trees under `roots` (the roots, their
/// live descendants and everything those reaped), and how many processes
/// the trees hold now; `None` when no root exists.
pub(crate) fn tree_cpu_secs(roots: &[u32]) -> Option<(f64, usize)> {
    let all = parents();
    let members = trees(roots, &all);
    if members.is_empty() {
        return None;
    }
    let ticks: u64 = members.iter().map(|(_, s)| s.own + s.children).sum();
    Some((ticks as f64 / CLOCK_TICKS, members.len()))
}

/// CPU seconds of the benchmark, the server and the database at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpuReading {
    bench: Option<f64>,
    server: Option<f64>,
    db: Option<(f64, usize)>,
}

impl CpuReading {
    /// Reads the benchmark's own time, `server`'s and the trees under `db`.
    pub(crate) fn now(server: Option<u32>, db: &[u32]) -> CpuReading {
        CpuReading {
            bench: cpu_secs("self"),
            server: server.and_then(|p| cpu_secs(&p.to_string())),
            db: if db.is_empty() {
                None
            } else {
                tree_cpu_secs(db)
            },
        }
    }

    /// The CPU seconds spent from `start` to this reading.
    pub(crate) fn since(&self, start: &CpuReading) -> CpuSpent {
        let spent = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        CpuSpent {
            bench: spent(start.bench, self.bench),
            server: spent(start.server, self.server),
            db: spent(start.db.map(|d| d.0), self.db.map(|d| d.0)),
            db_processes: self.db.map(|d| d.1),
        }
    }
}

/// CPU seconds spent over the timed phase (`None`: not asked for, or unreadable).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CpuSpent {
    pub bench: Option<f64>,
    pub server: Option<f64>,
    pub db: Option<f64>,
    /// Processes in the database's trees at the end.
    pub db_processes: Option<usize>,
}

impl CpuSpent {
    /// Microseconds of CPU per operation, for the `RESULT` line (`-` when unknown).
    pub(crate) fn per_op_field(secs: Option<f64>, ops: u64) -> String {
        match secs {
            Some(s) if ops > 0 => format!("{:.0}", s * 1e6 / ops as f64),
            _ => String::from("-"),
        }
    }

    /// Prints the CPU lines of the report: seconds, share of one core over
    /// `wall` seconds, and microseconds per operation over `ops`.
    pub(crate) fn print(&self, wall: f64, ops: u64) {
        let line = |name: &str, secs: Option<f64>, extra: String| {
            if let Some(s) = secs {
                let per_op = if ops > 0 {
                    format!(", {:.0} us/op", s * 1e6 / ops as f64)
                } else {
                    String::new()
                };
                println!(
                    "  {name:<14} {s:.2} s ({:.0}% of one core{per_op}){extra}",
                    100.0 * s / wall.max(1e-9)
                );
            }
        };
        line("bench CPU:", self.bench, String::new());
        line("server CPU:", self.server, String::new());
        line(
            "database CPU:",
            self.db,
            self.db_processes
                .map(|n| format!(" over {n} processes"))
                .unwrap_or_default(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let line = "4242 (postgres: a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 75 30 12 20 0 1 0 100 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                own: 325,
                children: 42
            })
        );
        assert_eq!(parse_stat("1 (x) S"), None);
    }

    #[test]
    fn own_process_and_tree() {
        let me = std::process::id();
        assert!(cpu_secs("self").is_some());
        let (secs, n) = tree_cpu_secs(&[me]).expect("this process exists");
        assert!(secs >= 0.0 && n >= 1);
        // A child is counted while it lives.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .expect("spawn sleep");
        let (_, with_child) = tree_cpu_secs(&[me]).expect("this process exists");
        assert!(with_child > n, "{with_child} <= {n}");
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(tree_cpu_secs(&[u32::MAX]), None);
    }
}
