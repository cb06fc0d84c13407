//! Kernel test cases exported as data, for other WebGPU implementations (the browser page in `web/`).
//!
//! With `WGPT_EXPORT_CASES=<dir>` set, a submit that runs dispatches first remembers them (the module as
//! a browser compiles it, entry point, override constants, bindings, the uniform's bytes, workgroup
//! counts) and the contents of the buffers they bind; a tensor read remembers its bytes; and [`case`]
//! (the kernel tests' `assert_within` calls it) writes `<dir>/<case>.json`: the last run that wrote what
//! the test read (all of a read or some of its elements), the values the test wants and its bound for
//! each element. A case that cannot be exported is written with the reason instead, so nothing goes
//! missing unseen. Off, the hook costs one check per dispatch built. The remembered runs and reads are per thread, as each test has its own.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{json, Value};

use crate::gpu::{Binding, Commands, Gpu, Kernel, Readback};

/// A case whose buffers hold more bytes than this is not exported: the small awkward shapes of every
/// kernel are what another compiler needs, and they keep the files small.
const MAX_CASE_BYTES: usize = 64 * 1024;

/// Runs and reads remembered per thread: enough for a test that runs forward and backward apart.
const KEEP: usize = 8;

/// The directory cases are written to, when exporting is on.
fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("WGPT_EXPORT_CASES").map(PathBuf::from))
        .as_ref()
}

/// A dispatch as built: what a browser needs to build it again.
#[derive(Debug)]
pub(crate) struct Captured {
    kernel: Kernel,
    /// Buffer, byte offset, bytes, writable: in binding order.
    bindings: Vec<(wgpu::Buffer, u64, u64, bool)>,
    params: Vec<u8>,
    workgroups: [u32; 3],
}

impl Captured {
    /// The dispatch's record when exporting is on.
    pub(crate) fn new(
        kernel: &Kernel,
        bindings: &[Binding],
        params: &[u8],
        workgroups: [u32; 3],
    ) -> Option<Arc<Self>> {
        dir()?;
        let bindings = bindings
            .iter()
            .map(|b| {
                let (Binding::Read(t) | Binding::ReadWrite(t)) = *b;
                let writable = matches!(b, Binding::ReadWrite(_));
                (t.buffer.clone(), t.offset, t.bytes().max(4), writable)
            })
            .collect();
        Some(Arc::new(Captured {
            kernel: kernel.clone(),
            bindings,
            params: params.to_vec(),
            workgroups,
        }))
    }
}

/// A submit's dispatches and the buffers they bind (first byte bound, contents before the submit).
struct Run {
    dispatches: Vec<Arc<Captured>>,
    buffers: Vec<(wgpu::Buffer, u64, Vec<u8>)>,
    /// Why the snapshot is not what the dispatches saw, if it is not.
    unusable: Option<&'static str>,
}

struct Read {
    buffer: wgpu::Buffer,
    offset: u64,
    bytes: Vec<u8>,
}

thread_local! {
    static RUNS: RefCell<Vec<Run>> = const { RefCell::new(Vec::new()) };
    static READS: RefCell<Vec<Read>> = const { RefCell::new(Vec::new()) };
}

fn remember<T>(list: &'static std::thread::LocalKey<RefCell<Vec<T>>>, item: T) {
    list.with(|l| {
        let mut l = l.borrow_mut();
        if l.len() == KEEP {
            l.remove(0);
        }
        l.push(item);
    });
}

impl Gpu {
    /// Before `commands` is submitted: remembers its dispatches and the contents of their buffers.
    pub(crate) fn capture_run(&self, commands: &Commands) {
        if commands.captured.is_empty() {
            return;
        }
        let mut spans: Vec<(wgpu::Buffer, u64, u64)> = Vec::new();
        for (buffer, offset, bytes, _) in commands.captured.iter().flat_map(|d| &d.bindings) {
            match spans.iter_mut().find(|s| &s.0 == buffer) {
                Some(s) => (s.1, s.2) = (s.1.min(*offset), s.2.max(offset + bytes)),
                None => spans.push((buffer.clone(), *offset, offset + bytes)),
            }
        }
        let total: u64 = spans.iter().map(|s| s.2 - s.1).sum();
        let mut unusable = commands
            .cleared
            .then_some("the submit clears a buffer before its dispatches");
        if total > MAX_CASE_BYTES as u64 {
            unusable = Some("larger than the export's size cap");
        }
        let buffers = spans
            .into_iter()
            .map(|(buffer, start, end)| {
                let bytes = match unusable {
                    Some(_) => Vec::new(),
                    None => self.snapshot(&buffer, start, end - start),
                };
                (buffer, start, bytes)
            })
            .collect();
        let dispatches = commands.captured.clone();
        remember(
            &RUNS,
            Run {
                dispatches,
                buffers,
                unusable,
            },
        );
    }

    /// Remembers the bytes a tensor read returned.
    pub(crate) fn capture_read(&self, buffer: &wgpu::Buffer, offset: u64, bytes: &[u8]) {
        if dir().is_some() {
            let (buffer, bytes) = (buffer.clone(), bytes.to_vec());
            remember(
                &READS,
                Read {
                    buffer,
                    offset,
                    bytes,
                },
            );
        }
    }

    /// A buffer's bytes as they are now (empty where the read fails: the case then fails to match).
    fn snapshot(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> Vec<u8> {
        let readback = Readback::new(self, "export snapshot", bytes);
        let copied = self.run(|c| readback.copy_bytes(&mut c.encoder, buffer, offset));
        copied
            .and_then(|()| readback.read::<u8>(self, "export snapshot"))
            .unwrap_or_default()
    }
}

/// Writes the case `name` when exporting is on: the run that wrote `got` (the test's last read that
/// holds exactly these values), `want`, and `bound` evaluated per element.
pub fn case(name: &str, got: &[f32], want: &[f32], bound: impl Fn(usize) -> f64) {
    let Some(dir) = dir() else {
        return;
    };
    let value = match exported(name, got, want, bound) {
        Ok(value) => value,
        Err(reason) => json!({ "name": name, "skipped": reason }),
    };
    if let Err(e) = write_new(dir, name, &value) {
        eprintln!("exporting case {name} to {}: {e}", dir.display());
    }
}

fn exported(
    name: &str,
    got: &[f32],
    want: &[f32],
    bound: impl Fn(usize) -> f64,
) -> Result<Value, &'static str> {
    let got: &[u8] = bytemuck::cast_slice(got);
    // The last read holding `got`: all of it, or a run of its elements (one value of several, say).
    let read = READS.with(|r| {
        r.borrow().iter().rev().find_map(|read| {
            let at = (0..read.bytes.len() / 4).find(|i| read.bytes[4 * i..].starts_with(got))?;
            Some((read.buffer.clone(), read.offset + 4 * at as u64))
        })
    });
    let (buffer, offset) = read.ok_or("the test checks values it derived from a read")?;
    let end = offset + got.len() as u64;
    RUNS.with(|runs| {
        let runs = runs.borrow();
        let writes = |run: &&Run| {
            run.dispatches
                .iter()
                .flat_map(|d| &d.bindings)
                .any(|b| b.0 == buffer && b.3 && b.1 <= offset && end <= b.1 + b.2)
        };
        let run = runs
            .iter()
            .rev()
            .find(writes)
            .ok_or("no run wrote what the test read")?;
        if let Some(reason) = run.unusable {
            return Err(reason);
        }
        let index = |b: &wgpu::Buffer| run.buffers.iter().position(|s| &s.0 == b);
        let output = index(&buffer).ok_or("no run wrote what the test read")?;
        let start = run.buffers[output].1;
        Ok(json!({
            "name": name,
            "dispatches": run.dispatches.iter().map(|d| dispatch(d, |b| {
                let i = index(b).unwrap_or(0);
                (i, run.buffers[i].1)
            })).collect::<Vec<_>>(),
            "buffers": run.buffers.iter().map(|b| base64(&b.2)).collect::<Vec<_>>(),
            "output": { "buffer": output, "offset": offset - start, "len": want.len() },
            "want": base64(bytemuck::cast_slice(want)),
            // JSON has no infinity: an infinite bound (anything passes) is the largest double, and a
            // NaN bound is null, which fails as the native check does.
            "bound": (0..want.len()).map(|i| match bound(i) {
                b if b.is_infinite() => f64::MAX,
                b => b,
            }).collect::<Vec<_>>(),
        }))
    })
}

/// A dispatch as JSON; `place` gives a binding's buffer index and that buffer's first byte.
fn dispatch(d: &Captured, place: impl Fn(&wgpu::Buffer) -> (usize, u64)) -> Value {
    let kernel = &d.kernel;
    let constants: serde_json::Map<String, Value> = (kernel.constants.iter())
        .map(|&(k, v)| (k.to_string(), json!(v)))
        .collect();
    let bindings: Vec<Value> = (d.bindings.iter())
        .map(|(buffer, offset, bytes, writable)| {
            let (i, start) = place(buffer);
            json!({ "buffer": i, "offset": offset - start, "size": bytes, "writable": writable })
        })
        .collect();
    json!({
        "kernel": kernel.shader.name,
        "module": kernel.shader.web_source(),
        "entry": kernel.entry,
        "constants": constants,
        "subgroup_lanes": kernel.subgroup_lanes(),
        "bindings": bindings,
        "params": base64(&d.params),
        "workgroups": d.workgroups,
    })
}

/// Writes `value` to `<dir>/<name>.json`, or `<name>~2.json`, ... where that exists.
fn write_new(dir: &std::path::Path, name: &str, value: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let stem: String = name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() || "-_.".contains(c) {
            true => c,
            false => '_',
        })
        .collect();
    for n in 1.. {
        let file = match n {
            1 => dir.join(format!("{stem}.json")),
            n => dir.join(format!("{stem}~{n}.json")),
        };
        match std::fs::File::create_new(&file) {
            Ok(f) => return serde_json::to_writer(f, value).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("an unbounded range ends")
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            match i <= chunk.len() {
                true => out.push(DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char),
                false => out.push('='),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(&[0xfb, 0xff]), "+/8=");
    }
}
