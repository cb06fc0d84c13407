//! Processes that train one model together (data parallel): which one this is, and the few collective
//! operations the trainer needs. Without the `mpi` cargo feature, or when not started by `mpirun`,
//! there is one process ([`Single`]) and every operation is the identity, so training is unchanged.
//! With it, [`init`] joins the MPI job (`mpirun -n N wgpt train ...`): one process per GPU.

#[cfg(feature = "mpi")]
mod mpi;

use crate::error::{Error, Result};

/// The processes of a job and the collectives between them. Every process must call each collective
/// in the same order (the trainer's steps are the same on every rank, so they do).
pub trait Collective {
    /// This process's rank, `0..size()`.
    fn rank(&self) -> usize;
    /// How many processes train together.
    fn size(&self) -> usize;
    /// This process's rank among those on its machine (which GPU it takes).
    fn local_rank(&self) -> usize;
    /// Sums `values` over every process, in place (an all-reduce).
    fn sum_f32(&self, values: &mut [f32]) -> Result<()>;
    /// Sums `values` over every process, in place.
    fn sum_f64(&self, values: &mut [f64]) -> Result<()>;
    /// Every process's `value`, in rank order (an all-gather).
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>>;
    /// Ends every process of the job at once (after this one failed alone), with exit `code`.
    fn abort(&self, code: i32) -> !;
}

/// One process training alone.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Collective for Single {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn local_rank(&self) -> usize {
        0
    }
    fn sum_f32(&self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn sum_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn gather_u64(&self, value: u64) -> Result<Vec<u64>> {
        Ok(vec![value])
    }
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// The job this process belongs to: the MPI job that started it (with the `mpi` feature, under
/// `mpirun`), else [`Single`]. Call once, early; the job ends (MPI is finalized) when it is dropped.
pub fn init() -> Result<Box<dyn Collective>> {
    #[cfg(feature = "mpi")]
    if mpi::launched() {
        return Ok(Box::new(mpi::Mpi::init()?));
    }
    // A build without MPI started as one of several ranks would train alone, N times over, into the
    // same output directory: refuse instead.
    if let Some(n) = launched_ranks().filter(|&n| n > 1 && !MPI) {
        return Err(Error::Unsupported(format!(
            "started as one of {n} MPI ranks, but this wgpt was built without the `mpi` feature \
             (build it with `cargo build --release --features mpi`)"
        )));
    }
    Ok(Box::new(Single))
}

/// The number of ranks an MPI launcher (Open MPI, MPICH or another PMI one) says this job has.
fn launched_ranks() -> Option<usize> {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.parse().ok())
}

/// Whether this build can join an MPI job (the `mpi` cargo feature).
pub const MPI: bool = cfg!(feature = "mpi");

/// A hash of parameters (FNV-1a over their bits), to check that every rank holds the same.
pub fn hash_params(params: &[Vec<f32>]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for value in params.iter().flatten() {
        for byte in value.to_bits().to_le_bytes() {
            hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}
