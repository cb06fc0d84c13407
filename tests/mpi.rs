//! Data-parallel training under `mpirun` (the `mpi` feature; `cargo test --release --features mpi
//! --test mpi`, with Open MPI installed): two ranks at global batch B compute the steps one process
//! does at batch B, their parameters stay identical (and a difference stops the job), a run resumes on
//! another number of ranks, and a rank that dies ends the job at once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wgpt::train::Event;

/// One job at a time: each takes both cores of a small CI machine.
static JOBS: Mutex<()> = Mutex::new(());

/// A scratch directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("wgpt-mpi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn data() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/tinyshakespeare.txt")
        .display()
        .to_string()
}

/// `wgpt train` flags of a short run of the baby preset with dropout 0.1, every loss logged (a
/// constant learning rate after warmup, so a run of 10 steps is the first half of one of 20).
fn train_flags(out: &str, steps: u32) -> Vec<String> {
    let flags = format!(
        "train --preset baby --data {} --steps {steps} --batch 4 --seq 32 --dropout 0.1 \
         --warmup 2 --schedule constant --log-every 1 --eval-every 10 --eval-steps 2 --json --out {out}",
        data()
    );
    flags.split_whitespace().map(String::from).collect()
}

/// `mpirun` as CI runs it: more ranks than cores allowed, as root too, one thread per lavapipe rank.
fn mpirun(ranks: usize) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--oversubscribe", "--allow-run-as-root", "-n"])
        .arg(ranks.to_string())
        .env("LP_NUM_THREADS", "1");
    cmd
}

fn wgpt() -> &'static str {
    env!("CARGO_BIN_EXE_wgpt")
}

fn run(mut cmd: Command) -> Output {
    let _job = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    cmd.output().expect("mpirun (Open MPI) must be installed")
}

fn ok(out: Output, what: &str) -> Vec<Event> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{what} failed: {stderr}");
    (String::from_utf8_lossy(&out.stdout).lines())
        .map(|l| Event::from_json(l).unwrap_or_else(|| panic!("{what}: not an event: {l}")))
        .collect()
}

fn losses(events: &[Event]) -> Vec<(u32, f32)> {
    (events.iter())
        .filter_map(|e| match *e {
            Event::Step { step, loss, .. } => Some((step, loss)),
            _ => None,
        })
        .collect()
}

/// Equal losses within `tolerance`, relative.
fn assert_close(a: &[(u32, f32)], b: &[(u32, f32)], tolerance: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (&(step, x), &(s, y)) in a.iter().zip(b) {
        assert_eq!(step, s, "{what}");
        let rel = (x - y).abs() / x.abs().max(1e-6);
        assert!(
            rel < tolerance,
            "{what}: step {step}: {x} vs {y} ({rel:e} relative)"
        );
    }
}

fn params(dir: &str) -> Vec<Vec<f32>> {
    wgpt::checkpoint::load(&Path::new(dir).join("model"))
        .unwrap()
        .params
}

/// 20 steps of `train_flags` plus `extra` in one process and on two ranks: every event once, losses
/// within `tolerance` (relative), parameters within `param_tolerance`.
fn check_two_ranks(name: &str, extra: &[&str], tolerance: f32, param_tolerance: f32) {
    let dir = Scratch::new(name);
    let mut one = Command::new(wgpt());
    one.args(train_flags(&dir.path("one"), 20)).args(extra);
    let one = ok(run(one), "one process");
    let mut two = mpirun(2);
    two.arg(wgpt())
        .args(train_flags(&dir.path("two"), 20))
        .args(extra);
    let two = ok(run(two), "two ranks");
    // Every event comes once (rank 0 alone reports), the evaluations at steps 10 and 20 (where the
    // ranks also compared their parameters' hashes) included.
    assert_eq!(one.len(), two.len(), "{one:?}\n{two:?}");
    assert_close(&losses(&one), &losses(&two), tolerance, "losses");
    assert_eq!(losses(&two).len(), 20);
    let (a, b) = (params(&dir.path("one")), params(&dir.path("two")));
    let worst = (a.iter().flatten().zip(b.iter().flatten()))
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < param_tolerance, "parameters differ by {worst}");
}

#[test]
fn two_ranks_compute_the_steps_one_process_does() {
    check_two_ranks("equal", &[], 1e-5, 1e-4);
}

/// The same in bf16 with two micro-batches of 4 rows a step (2 on each rank). The ranks' products have
/// other row counts than one process's, so their f32 sums differ in the last bits, and a kept activation
/// whose f32 value sits at a bf16 rounding boundary may round the other way: the losses agree within
/// 2⁻⁸ relative, one bf16 ulp (measured 8e-5), where losing or not averaging a micro-batch's gradients
/// moves them by more after a few steps. A parameter whose gradient is near zero may take AdamW steps of
/// either sign in the two runs, each at most (1 - β1)/√(1 - β2) ≈ 2.24 times the learning rate, so the
/// parameters agree within 2 · 20 · 2.24 · 1e-3 ≈ 0.09 (measured 1.2e-2).
#[test]
fn two_ranks_in_bf16_with_micro_batches_compute_the_steps_one_process_does() {
    let extra = ["--precision", "bf16", "--grad-accum", "2"];
    check_two_ranks("bf16", &extra, 2f32.powi(-8), 0.09);
}

#[test]
fn a_run_resumes_on_another_number_of_ranks() {
    let dir = Scratch::new("resume");
    let mut straight = Command::new(wgpt());
    straight.args(train_flags(&dir.path("straight"), 20));
    let straight = losses(&ok(run(straight), "one process, 20 steps"));
    let tail: Vec<(u32, f32)> = straight.into_iter().filter(|(s, _)| *s > 10).collect();
    // Two ranks then one, and one then two: the global batch is the contract, not the ranks.
    for (first, then) in [(2, 1), (1, 2)] {
        let out = dir.path(&format!("{first}-{then}"));
        let mut cmd = mpirun(first);
        cmd.arg(wgpt()).args(train_flags(&out, 10));
        ok(run(cmd), &format!("{first} ranks, 10 steps"));
        let mut cmd = mpirun(then);
        cmd.arg(wgpt()).args([
            "train",
            "--resume",
            &out,
            "--steps",
            "20",
            "--json",
            "--data",
            &data(),
        ]);
        let rest = ok(run(cmd), &format!("{then} ranks resuming"));
        assert_close(
            &tail,
            &losses(&rest),
            1e-5,
            &format!("{first} then {then} ranks"),
        );
    }
}

#[test]
fn ranks_whose_parameters_differ_stop_with_a_clear_error() {
    let dir = Scratch::new("differ");
    let out = dir.path("out");
    // Two programs in one job (MPMD): the ranks start from different weights.
    let mut cmd = mpirun(1);
    cmd.arg(wgpt())
        .args(train_flags(&out, 20))
        .args(["--seed", "1", ":", "-n", "1", wgpt()])
        .args(train_flags(&out, 20))
        .args(["--seed", "2"]);
    let result = run(cmd);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success(), "{stderr}");
    assert!(
        stderr.contains("the ranks' parameters differ after step 10"),
        "{stderr}"
    );
}

#[test]
fn killing_a_rank_ends_the_job_within_seconds() {
    let dir = Scratch::new("kill");
    let out = dir.path("out");
    let _job = JOBS.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = mpirun(2);
    cmd.arg(wgpt())
        .args(train_flags(&out, 100_000))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut job = cmd.spawn().expect("mpirun (Open MPI) must be installed");
    // Wait for a checkpoint (the evaluation at step 10 saves one), then kill rank 1.
    let model = Path::new(&out).join("model/model.safetensors");
    let start = Instant::now();
    while !model.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rank1 = rank_pid(job.id(), 1).expect("rank 1's process");
    let killed = Instant::now();
    let kill = Command::new("kill")
        .args(["-9", &rank1.to_string()])
        .status();
    assert!(kill.unwrap().success());
    loop {
        if job.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the job still runs 30 s after a rank died"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = job.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut job.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("rank 1"), "{stderr}");
    // The checkpoint left behind loads.
    wgpt::checkpoint::load(&Path::new(&out).join("model")).unwrap();
}

#[test]
fn info_lists_each_rank_and_its_adapter() {
    let mut cmd = mpirun(2);
    cmd.args([wgpt(), "info"]);
    let out = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("rank 0 of 2"), "{stdout}");
    assert!(stdout.contains("rank 1 of 2"), "{stdout}");
}

/// The process id of rank `rank` among the children of `mpirun` (Open MPI's environment says which).
fn rank_pid(mpirun: u32, rank: usize) -> Option<u32> {
    let want = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let parent: u32 = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let env = String::from_utf8_lossy(&environ);
            (parent == mpirun && env.split('\0').any(|v| v == want)).then_some(pid)
        })
}
