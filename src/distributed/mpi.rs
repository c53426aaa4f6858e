//! The collective operations over MPI (the system's Open MPI or MPICH, through the `mpi`
//! crate): what `mpirun -np N fovea train --distributed` uses. Every operation is non-blocking
//! underneath and waited for with a deadline, so a rank that died or hangs stops the others
//! with a message instead of leaving them blocked forever.

use super::Collective;
use crate::error::{Error, Result};
use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::environment::Universe;
use mpi::request::{Request, Scope};
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::Threading;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The exit status of every rank when one timed out (MPI_Abort ends them all with it).
pub const TIMEOUT_EXIT: i32 = 3;

/// MPI, started: drop it (after training) to shut MPI down cleanly.
pub struct MpiWorld {
    /// Declared before `_universe`, so the communicator is released before MPI_Finalize.
    pub group: std::sync::Arc<MpiGroup>,
    _universe: Universe,
}

/// Starts MPI. Under `mpirun` the ranks find each other; started alone, the process is a
/// group of one.
pub fn init(timeout: Duration) -> Result<MpiWorld> {
    let (universe, _level) = mpi::initialize_with_threading(Threading::Serialized)
        .ok_or_else(|| Error::Invalid("MPI was already started in this process".into()))?;
    let world = universe.world();
    let group = MpiGroup { rank: world.rank() as usize, size: world.size() as usize, timeout, world: Mutex::new(world) };
    Ok(MpiWorld { group: std::sync::Arc::new(group), _universe: universe })
}

/// The ranks of `MPI_COMM_WORLD`.
pub struct MpiGroup {
    rank: usize,
    size: usize,
    timeout: Duration,
    /// One MPI call at a time (MPI was started at `MPI_THREAD_SERIALIZED`).
    world: Mutex<SimpleCommunicator>,
}

// SAFETY: the communicator is a handle that MPI lets any thread use when calls are serialized;
// every use goes through the mutex.
unsafe impl Send for MpiGroup {}
unsafe impl Sync for MpiGroup {}

impl MpiGroup {
    fn world(&self) -> std::sync::MutexGuard<'_, SimpleCommunicator> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every rank of the job with `code` (MPI_Abort): for an error on one rank, so the
    /// others do not wait for it until their deadline.
    pub fn abort(&self, code: i32) -> ! {
        self.world().abort(code)
    }

    /// Polls `request` until it completes; past the deadline, says so and ends the job (a
    /// pending MPI operation cannot be cancelled, so nothing could be done after it anyway).
    fn wait<'a, D: ?Sized, S: Scope<'a>>(&self, world: &SimpleCommunicator, what: &str, mut request: Request<'a, D, S>) {
        let start = Instant::now();
        loop {
            match request.test() {
                Ok(_) => return,
                Err(r) => request = r,
            }
            if start.elapsed() > self.timeout {
                eprintln!(
                    "error: rank {}: {what}: no answer from the other ranks for {} s (a rank stopped or hangs); stopping all {} ranks",
                    self.rank,
                    self.timeout.as_secs(),
                    self.size
                );
                world.abort(TIMEOUT_EXIT);
            }
            // MPI moves a large message only while it is polled, so poll without pause: as
            // MPI_Wait does. Only a long wait (a rank slower by a second) sleeps between polls,
            // to leave the core to the others.
            if start.elapsed() < Duration::from_secs(1) {
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn sum<T: mpi::datatype::Equivalence + Copy>(&self, what: &str, values: &mut [T]) {
        if values.is_empty() {
            return;
        }
        let world = self.world();
        let send = values.to_vec();
        mpi::request::scope(|scope| {
            let r = world.immediate_all_reduce_into(scope, &send[..], values, SystemOperation::sum());
            self.wait(&world, what, r);
        });
    }
}

impl Collective for MpiGroup {
    fn rank(&self) -> usize {
        self.rank
    }
    fn size(&self) -> usize {
        self.size
    }
    fn sum_f32(&self, what: &str, values: &mut [f32]) -> Result<()> {
        self.sum(what, values);
        Ok(())
    }
    fn sum_f64(&self, what: &str, values: &mut [f64]) -> Result<()> {
        self.sum(what, values);
        Ok(())
    }
    fn broadcast(&self, what: &str, bytes: &mut Vec<u8>) -> Result<()> {
        let world = self.world();
        let root = world.process_at_rank(0);
        let mut len = [bytes.len() as u64];
        mpi::request::scope(|scope| {
            let r = root.immediate_broadcast_into(scope, &mut len[..]);
            self.wait(&world, what, r);
        });
        let len = usize::try_from(len[0]).map_err(|_| Error::Invalid(format!("{what}: rank 0 sent a length of {} bytes", len[0])))?;
        bytes.resize(len, 0);
        if len == 0 {
            // Open MPI refuses a broadcast of nothing (MPI_ERR_ARG).
            return Ok(());
        }
        mpi::request::scope(|scope| {
            let r = root.immediate_broadcast_into(scope, &mut bytes[..]);
            self.wait(&world, what, r);
        });
        Ok(())
    }
}
