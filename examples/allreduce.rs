//! A plain MPI all-reduce (sum of f32) of a given size, timed: the baseline the trainer's gradient
//! exchange is measured against (docs/distributed.md). Run under mpirun with the `mpi` feature:
//!
//! `mpirun -n 2 target/release/examples/allreduce 43000000` (bytes; several sizes may be given)
//!
//! Prints, on rank 0, the median time of 20 all-reduces after 3 warm-ups, the algorithm bandwidth
//! (bytes / time) and the bus bandwidth (2·(N−1)/N · bytes / time, what a ring moves per link).

use std::time::Instant;

use mpi::collective::SystemOperation;
use mpi::traits::*;

fn main() {
    let universe = mpi::initialize().expect("MPI initializes once");
    let world = universe.world();
    let n = world.size() as f64;
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes in bytes"))
        .collect();
    for bytes in sizes {
        let send = vec![1.0f32; bytes / 4];
        let mut recv = vec![0.0f32; bytes / 4];
        let mut times = Vec::new();
        for round in 0..23 {
            if std::env::var_os("NO_BARRIER").is_none() {
                world.barrier();
            }
            let start = Instant::now();
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
            if round >= 3 {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let t = times[times.len() / 2];
        if world.rank() == 0 {
            println!(
                "{} ranks, {bytes} bytes: {:.3} ms, algorithm {:.2} GB/s, bus {:.2} GB/s",
                n,
                t * 1e3,
                bytes as f64 / t / 1e9,
                2.0 * (n - 1.0) / n * bytes as f64 / t / 1e9
            );
        }
    }
}
