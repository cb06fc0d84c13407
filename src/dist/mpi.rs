//! [`Collective`] over MPI (the `mpi` crate on the system's MPI, e.g. Open MPI).

use std::cell::RefCell;

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use crate::dist::Collective;
use crate::error::{Error, Result};

/// Whether `mpirun` (Open MPI, MPICH or another PMI launcher) started this process.
pub fn launched() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

/// This process in the MPI job's world communicator.
pub struct Mpi {
    world: SimpleCommunicator,
    local_rank: usize,
    /// The send side of an all-reduce of f32 (MPI's in-place form is not exposed): kept, so a step's
    /// gradients are copied into memory already mapped instead of fresh pages.
    send: RefCell<Vec<f32>>,
    /// Finalizes MPI when dropped; held for that.
    _universe: Universe,
}

impl Mpi {
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| {
            Error::Distributed("MPI could not be initialized (was it already?)".into())
        })?;
        let world = universe.world();
        // The ranks that share this machine's memory: this one's place among them picks its GPU.
        let local_rank = world.split_shared(world.rank()).rank() as usize;
        Ok(Mpi {
            world,
            local_rank,
            send: RefCell::new(Vec::new()),
            _universe: universe,
        })
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }
    fn local_rank(&self) -> usize {
        self.local_rank
    }
    fn sum_f32(&self, values: &mut [f32]) -> Result<()> {
        let mut send = self.send.borrow_mut();
        send.clear();
        send.extend_from_slice(values);
        (self.world).all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }
    fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        let send = values.to_vec();
        (self.world).all_reduce_into(&send[..], values, SystemOperation::sum());
        Ok(())
    }
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        let mut all = vec![0u64; self.size()];
        self.world.all_gather_into(&value, &mut all[..]);
        Ok(all)
    }
    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}
