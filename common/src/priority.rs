//! The CPU share of a role that works behind the queue (issue 18).
//!
//! On a machine the door shares with the workers and the webhook receiver, the kernel
//! splits the CPU fairly between them, not by what a shopper waits for. Linux's
//! autogroup scheduling (on by default) gives every session an equal share: with the door,
//! the worker, the webhook receiver, PostgreSQL, RabbitMQ, Redis and the emulator all busy
//! on two cores, the door got 0.3–0.4 of a core for the 0.6 it needed at 2,000 arrivals a
//! second, its threads waited 1.4–2.8 s a second to run, its Redis calls timed out and the
//! shoppers' p99 to a first answer reached 7 s (`loadtest/run first-second`). The queue
//! exists so that the work behind it can wait: a role that drains it (`worker.nice`,
//! `webhook.nice`) lowers its own priority at start, so it takes what the door leaves.
//!
//! The lever is the process's autogroup (`/proc/self/autogroup`), which only a process
//! leading its own session owns: one started with `setsid`, as `loadtest/run` and a
//! process supervisor do. A role sharing its session with others (started from an
//! interactive shell beside the door) would lower them all, so it is left alone and says
//! so. Under systemd, whose services live in control groups where autogroups do not
//! apply, the unit's `CPUWeight=` does the same (README, "Deploy").

use std::path::Path;

/// What [`yield_to_the_door`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Priority {
    /// `nice` is 0: the role runs at the normal priority.
    Normal,
    /// The role's autogroup now has this nice value.
    Lowered(u8),
    /// Left at the normal priority, and why.
    Unchanged(&'static str),
}

/// Lowers this process's CPU priority to `nice` (1–19) if it leads its own session; logs
/// what it did.
pub fn yield_to_the_door(role: &str, nice: u8) -> Priority {
    let priority = lower(Path::new("/proc/self"), nice);
    match &priority {
        Priority::Normal => {}
        Priority::Lowered(n) => {
            tracing::info!(role, nice = n, "runs behind the door: CPU priority lowered")
        }
        Priority::Unchanged(why) => {
            tracing::warn!(
                role,
                nice,
                why,
                "CPU priority not lowered: the door shares the CPU evenly with this role"
            );
        }
    }
    priority
}

fn lower(proc_self: &Path, nice: u8) -> Priority {
    if nice == 0 {
        return Priority::Normal;
    }
    let Ok(stat) = std::fs::read_to_string(proc_self.join("stat")) else {
        return Priority::Unchanged("no /proc (not Linux)");
    };
    if !leads_its_session(&stat) {
        return Priority::Unchanged(
            "not the leader of its own session (start it with setsid, or give its service a lower CPUWeight)",
        );
    }
    match std::fs::write(proc_self.join("autogroup"), nice.min(19).to_string()) {
        Ok(()) => Priority::Lowered(nice.min(19)),
        Err(_) => Priority::Unchanged(
            "the kernel has no autogroup scheduling (give its service a lower CPUWeight)",
        ),
    }
}

/// Whether the process of this `/proc/<pid>/stat` line leads its session (pid = sid).
fn leads_its_session(stat: &str) -> bool {
    let pid = stat.split_whitespace().next();
    // The fields after the command name (which may hold spaces and parentheses): state,
    // ppid, pgrp, session.
    let session = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(3));
    pid.is_some() && pid == session
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_leader_is_told_from_its_stat_line() {
        assert!(leads_its_session(
            "4242 (flashgate) S 1 4242 4242 0 -1 4194560"
        ));
        assert!(!leads_its_session(
            "4243 (flashgate) S 4242 4242 4242 0 -1 4194560"
        ));
        assert!(leads_its_session("77 (a (strange) name) R 1 77 77 0"));
        assert!(!leads_its_session("77 (a (strange) name) R 1 77 12 0"));
        assert!(!leads_its_session(""));
    }

    #[test]
    fn the_autogroup_gets_the_nice_value_only_for_a_session_leader() {
        let dir = std::env::temp_dir().join(format!("flashgate-priority-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let autogroup = dir.join("autogroup");
        std::fs::write(dir.join("stat"), "900 (flashgate) S 1 900 900 0").unwrap();
        assert_eq!(lower(&dir, 0), Priority::Normal);
        assert!(!autogroup.exists(), "nice 0 touches nothing");
        assert_eq!(lower(&dir, 10), Priority::Lowered(10));
        assert_eq!(std::fs::read_to_string(&autogroup).unwrap(), "10");
        std::fs::remove_file(&autogroup).unwrap();
        std::fs::write(dir.join("stat"), "901 (flashgate) S 900 900 900 0").unwrap();
        assert!(matches!(lower(&dir, 10), Priority::Unchanged(_)));
        assert!(
            !autogroup.exists(),
            "a process in another's session leaves it alone"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
