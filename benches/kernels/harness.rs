//! What every bench row shares: argument parsing, the GPU, GPU and CPU timing (warm-up, then the median
//! of several samples), and printing as a table or JSON lines.

use std::time::{Duration, Instant};

use wgpt::gpu::GpuTimer;
use wgpt::{Dispatch, Gpu};

/// Samples per row; the median is reported.
const SAMPLES: usize = 9;
/// A GPU sample repeats the dispatches until it lasts about this long, to drown submission overhead.
const TARGET_SAMPLE: Duration = Duration::from_millis(20);

pub struct Bench {
    pub gpu: Gpu,
    timer: GpuTimer,
    json: bool,
    filters: Vec<String>,
    printed_header: bool,
}

/// One measured row.
pub struct Row {
    pub id: String,
    pub median: Duration,
    /// Floating-point operations of one run (compute-bound rows).
    pub flops: Option<f64>,
    /// Bytes moved by one run (memory-bound rows).
    pub bytes: Option<f64>,
    /// Median time of the CPU baseline for the same work.
    pub cpu: Option<Duration>,
}

impl Bench {
    pub fn from_args() -> Self {
        let mut json = false;
        let mut filters = Vec::new();
        for arg in std::env::args().skip(1) {
            match arg.as_str() {
                "--json" => json = true,
                // cargo passes `--bench`; other flags are libtest's and mean nothing here.
                a if a.starts_with('-') => {}
                a => filters.push(a.to_string()),
            }
        }
        // Rows with a GPT-2 vocabulary bind more than WebGPU's default 128 MiB where the adapter allows.
        let gpu = Gpu::new()
            .and_then(|probe| {
                let allowed = probe.adapter_limits();
                Gpu::with_limits(wgpu::Limits {
                    max_storage_buffer_binding_size: allowed.max_storage_buffer_binding_size,
                    max_buffer_size: allowed.max_buffer_size,
                    ..Default::default()
                })
            })
            .unwrap_or_else(|e| {
                eprintln!("error: {e}");
                std::process::exit(1)
            });
        let timer = GpuTimer::new(&gpu);
        if !json {
            println!(
                "adapter: {}; timing by {}",
                gpu.summary(),
                if timer.uses_timestamps() {
                    "GPU timestamps"
                } else {
                    "submit and wait"
                }
            );
        }
        Bench {
            gpu,
            timer,
            json,
            filters,
            printed_header: false,
        }
    }

    /// Whether a row id is selected by the command-line filters (all rows when there are none).
    pub fn wants(&self, id: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| id.contains(f.as_str()))
    }

    /// Median time of one run of `dispatches` on the GPU.
    pub fn time_gpu(&self, dispatches: &[Dispatch]) -> Duration {
        let once = |repeat| {
            self.timer
                .time(&self.gpu, dispatches, repeat)
                .unwrap_or_else(|e| panic!("timing failed: {e}"))
        };
        once(1); // warm-up: first-use costs (allocation, lazy compilation in the driver)
        let single = once(1).max(Duration::from_micros(1));
        let repeat =
            (TARGET_SAMPLE.as_secs_f64() / single.as_secs_f64()).clamp(1.0, 1000.0) as usize;
        median((0..samples_for(single)).map(|_| once(repeat)).collect())
    }

    /// Median time of `work` on the CPU.
    pub fn time_cpu(&self, mut work: impl FnMut()) -> Duration {
        work();
        let start = Instant::now();
        work();
        let single = start.elapsed().max(Duration::from_micros(1));
        let repeat = (TARGET_SAMPLE.as_secs_f64() / single.as_secs_f64()).clamp(1.0, 1000.0) as u32;
        median(
            (0..samples_for(single))
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..repeat {
                        work();
                    }
                    start.elapsed() / repeat
                })
                .collect(),
        )
    }

    /// Times building a dispatch whose pipeline is not cached yet, and reports it as a compile row.
    pub fn compile<T>(&self, id: &str, build: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = build();
        self.report_compile(id, start.elapsed());
        out
    }

    /// Prints a compile row (`compile/<id>`) of the given duration.
    pub fn report_compile(&self, id: &str, time: Duration) {
        let ms = time.as_secs_f64() * 1e3;
        if self.json {
            println!("{{\"id\":\"compile/{id}\",\"compile_ms\":{ms:.3}}}");
        } else {
            println!("compile/{id:<44} {ms:>10.1} ms");
        }
    }

    pub fn report(&mut self, row: Row) {
        let secs = row.median.as_secs_f64();
        let gflops = row.flops.map(|f| f / secs / 1e9);
        let gbps = row.bytes.map(|b| b / secs / 1e9);
        let vs_cpu = row.cpu.map(|c| c.as_secs_f64() / secs);
        if self.json {
            let mut fields = vec![
                format!("\"id\":\"{}\"", row.id),
                format!("\"median_us\":{:.3}", secs * 1e6),
            ];
            let opt = |name: &str, v: Option<f64>| v.map(|v| format!("\"{name}\":{v:.3}"));
            fields.extend(opt("gflops", gflops));
            fields.extend(opt("gbps", gbps));
            fields.extend(opt("vs_cpu", vs_cpu));
            println!("{{{}}}", fields.join(","));
            return;
        }
        if !self.printed_header {
            println!(
                "{:<52} {:>12} {:>10} {:>10} {:>8}",
                "id", "median_us", "GFLOP/s", "GB/s", "vs_cpu"
            );
            self.printed_header = true;
        }
        let cell = |v: Option<f64>, p: usize| v.map_or("-".to_string(), |v| format!("{v:.p$}"));
        println!(
            "{:<52} {:>12.1} {:>10} {:>10} {:>8}",
            row.id,
            secs * 1e6,
            cell(gflops, 1),
            cell(gbps, 1),
            cell(vs_cpu, 2)
        );
    }

    pub fn finish(self) {}
}

/// Fewer samples for runs that take seconds (slow baselines, GPT-2-sized products on a CPU adapter), so
/// the bench ends in reasonable time.
fn samples_for(single: Duration) -> usize {
    if single > Duration::from_millis(500) {
        3
    } else {
        SAMPLES
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
