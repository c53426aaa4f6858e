//! Ranks as threads of one process: the collective operations over shared memory. The tests
//! run the distributed trainer on it (two threads against one process, no MPI needed), and it
//! sums in rank order, as a fixed-order allreduce would.

use super::Collective;
use crate::error::{Error, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// One rank of a [`ThreadGroup`]; move it into the thread that plays that rank. Dropping it
/// (its thread returned or failed) breaks the group: the others' next operation fails instead
/// of waiting for it.
pub struct ThreadRank {
    rank: usize,
    shared: Arc<Shared>,
}

/// `size` ranks that meet in memory.
pub struct ThreadGroup;

impl ThreadGroup {
    /// The ranks `0..size`; an operation that waits longer than `timeout` for the others fails.
    pub fn ranks(size: usize, timeout: Duration) -> Vec<ThreadRank> {
        assert!(size > 0, "a group has at least one rank");
        let shared = Arc::new(Shared {
            size,
            timeout,
            state: Mutex::new(State { arrived: 0, generation: 0, slots: vec![Vec::new(); size], bytes: Vec::new(), broken: None }),
            turn: Condvar::new(),
        });
        (0..size).map(|rank| ThreadRank { rank, shared: shared.clone() }).collect()
    }
}

struct Shared {
    size: usize,
    timeout: Duration,
    state: Mutex<State>,
    turn: Condvar,
}

struct State {
    /// Ranks at the current barrier, and how many barriers have opened.
    arrived: usize,
    generation: u64,
    /// Each rank's contribution to the current sum.
    slots: Vec<Vec<f64>>,
    /// Rank 0's bytes during a broadcast.
    bytes: Vec<u8>,
    /// Why the group cannot go on (a rank left), once it cannot.
    broken: Option<String>,
}

impl ThreadRank {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A rank that panicked while holding the lock left consistent data behind (every write
        // is a whole slot); the others go on and see it as gone when its rank is dropped.
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every rank has arrived here.
    fn barrier(&self, what: &str) -> Result<()> {
        let mut s = self.lock();
        if let Some(why) = &s.broken {
            return Err(Error::Invalid(format!("rank {}: {what}: {why}", self.rank)));
        }
        let generation = s.generation;
        s.arrived += 1;
        if s.arrived == self.shared.size {
            s.arrived = 0;
            s.generation += 1;
            self.shared.turn.notify_all();
            return Ok(());
        }
        let (s, waited) = self
            .shared
            .turn
            .wait_timeout_while(s, self.shared.timeout, |s| s.generation == generation && s.broken.is_none())
            .unwrap_or_else(|p| p.into_inner());
        if s.generation != generation {
            return Ok(());
        }
        let why = match &s.broken {
            Some(why) => why.clone(),
            None if waited.timed_out() => format!("waited {:?} for the other ranks", self.shared.timeout),
            None => "the group stopped".to_string(),
        };
        Err(Error::Invalid(format!("rank {}: {what}: {why}", self.rank)))
    }

    /// Every rank's `values` as f64, then the sum in rank order through `add`, written back.
    fn sum_with<T: Copy>(&self, what: &str, values: &mut [T], to_f64: impl Fn(T) -> f64, from_f64: impl Fn(f64) -> T, add: impl Fn(T, T) -> T) -> Result<()> {
        self.lock().slots[self.rank] = values.iter().map(|&v| to_f64(v)).collect();
        self.barrier(what)?;
        {
            let s = self.lock();
            if let Some(bad) = s.slots.iter().position(|slot| slot.len() != values.len()) {
                drop(s);
                return Err(Error::Invalid(format!("rank {}: {what}: rank {bad} sent a different number of values", self.rank)));
            }
            for (i, v) in values.iter_mut().enumerate() {
                *v = s.slots[1..].iter().fold(from_f64(s.slots[0][i]), |acc, slot| add(acc, from_f64(slot[i])));
            }
        }
        // Nobody writes the next sum's slot before everyone has read this one.
        self.barrier(what)
    }
}

impl Collective for ThreadRank {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.shared.size
    }
    fn sum_f32(&self, what: &str, values: &mut [f32]) -> Result<()> {
        self.sum_with(what, values, f64::from, |v| v as f32, |a, b| a + b)
    }
    fn sum_f64(&self, what: &str, values: &mut [f64]) -> Result<()> {
        self.sum_with(what, values, |v| v, |v| v, |a, b| a + b)
    }
    fn broadcast(&self, what: &str, bytes: &mut Vec<u8>) -> Result<()> {
        if self.rank == 0 {
            self.lock().bytes = bytes.clone();
        }
        self.barrier(what)?;
        if self.rank != 0 {
            *bytes = self.lock().bytes.clone();
        }
        self.barrier(what)
    }
}

impl Drop for ThreadRank {
    fn drop(&mut self) {
        let mut s = self.lock();
        if s.broken.is_none() {
            s.broken = Some(format!("rank {} left the group", self.rank));
        }
        self.shared.turn.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributed::agree;

    fn run<T: Send>(size: usize, f: impl Fn(&ThreadRank) -> T + Sync) -> Vec<T> {
        let ranks = ThreadGroup::ranks(size, Duration::from_secs(20));
        let f = &f;
        std::thread::scope(|s| {
            // Each thread owns its rank, so a rank is dropped as soon as its thread returns.
            let handles: Vec<_> = ranks.into_iter().map(|r| s.spawn(move || f(&r))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    #[test]
    fn sums_and_broadcasts_reach_every_rank() {
        let out = run(3, |r| {
            let mut v = [r.rank() as f32 + 0.5, 1.0];
            r.sum_f32("test", &mut v).unwrap();
            let mut w = [r.rank() as f64 * 2.0];
            r.sum_f64("test", &mut w).unwrap();
            let mut b = vec![r.rank() as u8; r.rank() + 1];
            r.broadcast("test", &mut b).unwrap();
            (v, w, b)
        });
        for (v, w, b) in out {
            assert_eq!(v, [4.5, 3.0]);
            assert_eq!(w, [6.0]);
            assert_eq!(b, vec![0u8]);
        }
    }

    #[test]
    fn a_rank_that_leaves_stops_the_others() {
        let out = run(2, |r| {
            if r.rank() == 1 {
                return Ok(());
            }
            // Rank 1 returns at once and its rank is dropped, which breaks the group while
            // rank 0 waits.
            let mut v = [1.0f32];
            r.sum_f32("gradients", &mut v)
        });
        let e = out[0].as_ref().unwrap_err().to_string();
        assert!(e.contains("gradients") && e.contains("rank 1 left"), "{e}");
    }

    #[test]
    fn agreement_fails_on_every_rank_when_one_differs() {
        let out = run(3, |r| agree(r, "configuration", if r.rank() == 2 { b"b" } else { b"a" }));
        let msgs: Vec<String> = out.iter().map(|o| o.as_ref().unwrap_err().to_string()).collect();
        assert!(msgs[2].contains("rank 2: its configuration differs"), "{msgs:?}");
        assert!(msgs[0].contains("1 of 3 ranks differ"), "{msgs:?}");
        assert!(run(2, |r| agree(r, "configuration", b"same")).iter().all(|o| o.is_ok()));
    }
}
