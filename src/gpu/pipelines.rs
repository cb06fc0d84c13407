//! Shaders, the [`Kernel`]s specialized from them (the pipeline cache key, see `compile.rs`), and the
//! pre-built [`Dispatch`]es that steps record: a pipeline, a bind group and a workgroup count, made once.

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::compile::Pipeline;
use crate::gpu::export::Captured;
use crate::gpu::{Gpu, Tensor};

/// One shader module, embedded in the binary: `shaders/<name>.wgsl`, after the files it uses.
///
/// WGSL has no includes, so a helper shared by several kernels (the dropout hash) lives in a file of its
/// own that [`shader!`](crate::shader) places before each file that uses it.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    /// The module's full source: the used files, then `shaders/<name>.wgsl`.
    pub source: &'static str,
    /// Stems of the files the source is made of, in order (the last is `name`).
    pub files: &'static [&'static str],
    /// Subgroup operations need subgroups of at least this many invocations (0: the module has none),
    /// unless a kernel's `cpu_lanes` constant says otherwise (see [`Kernel::subgroup_lanes`]).
    pub subgroup_lanes: u32,
}

/// Embeds `shaders/<stem>.wgsl` as a [`Shader`] named `<stem>`, preceded by `shaders/<used>.wgsl` for each
/// stem in the optional list: `shader!("dropout", ["random"])`. A module with subgroup operations names
/// the subgroup size its entry points need at least:
/// `shader!("matmul_subgroup", ["matmul"], subgroups = 8)`.
#[macro_export]
macro_rules! shader {
    ($stem:literal) => {
        $crate::shader!($stem, [])
    };
    ($stem:literal, [$($used:literal),*]) => {
        $crate::shader!($stem, [$($used),*], subgroups = 0)
    };
    ($stem:literal, [$($used:literal),*], subgroups = $lanes:literal) => {
        $crate::gpu::Shader {
            name: $stem,
            source: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $used, ".wgsl")), "\n",)*
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $stem, ".wgsl"))
            ),
            files: &[$($used,)* $stem],
            subgroup_lanes: $lanes,
        }
    };
}

impl Shader {
    /// The source as a browser's WebGPU compiles it: WGSL there wants `enable subgroups;` before any
    /// subgroup operation, which naga (wgpu's native compiler) does not accept yet.
    pub fn web_source(&self) -> std::borrow::Cow<'static, str> {
        match self.subgroup_lanes {
            0 => self.source.into(),
            _ => format!("enable subgroups;\n{}", self.source).into(),
        }
    }
}

/// A specialized entry point: the pipeline cache key.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    /// WGSL `override` constants (tile sizes, switches).
    pub constants: Vec<(&'static str, f64)>,
}

impl Kernel {
    /// The fewest invocations a subgroup must have for this kernel (0: no subgroup operations): the
    /// kernel's `cpu_lanes` constant where it sets one (matmul's subgroup sharing), else the shader's.
    pub fn subgroup_lanes(&self) -> u32 {
        match self.constants.iter().find(|c| c.0 == "cpu_lanes") {
            Some(&(_, lanes)) if self.shader.subgroup_lanes > 0 => lanes as u32,
            _ => self.shader.subgroup_lanes,
        }
    }
}

/// One storage-buffer binding, in the order of the WGSL `@binding`s. The kernel's uniform of parameters
/// always follows as the last binding.
#[derive(Clone, Copy)]
pub enum Binding<'a> {
    Read(&'a Tensor),
    ReadWrite(&'a Tensor),
}

/// A kernel launch with everything bound: recording it is all a step does.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: String,
    /// Compiled, or (inside [`Gpu::build_parallel`]) compiling: see [`Dispatch::ready`].
    pipeline: Pipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
    /// The dispatch as data, when cases are exported (see `export.rs`).
    pub(crate) captured: Option<std::sync::Arc<Captured>>,
}

impl Dispatch {
    /// Builds the pipeline (cached), a uniform holding `params` and the bind group.
    pub fn new<P: Pod>(
        gpu: &Gpu,
        kernel: &Kernel,
        bindings: &[Binding],
        params: &P,
        workgroups: [u32; 3],
    ) -> Result<Self> {
        let label = format!("{}/{}", kernel.shader.name, kernel.entry);
        let max = gpu.limits().max_compute_workgroups_per_dimension;
        if let Some(&over) = workgroups.iter().find(|&&n| n > max) {
            return Err(Error::Limit {
                what: label,
                limit: "max_compute_workgroups_per_dimension",
                needed: over as u64,
                allowed: max as u64,
                adapter: gpu.info().name.clone(),
            });
        }
        let writable: Vec<bool> = bindings
            .iter()
            .map(|b| matches!(b, Binding::ReadWrite(_)))
            .collect();
        check_usage(&label, bindings)?;
        let (pipeline, layout) = gpu.pipeline(kernel, &writable)?;
        gpu.created
            .buffers
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gpu.created
            .bind_groups
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let uniform = gpu
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(&label),
                contents: bytemuck::bytes_of(params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
        let mut entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let (Binding::Read(t) | Binding::ReadWrite(t)) = b;
                wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: t.binding(),
                }
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: bindings.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind_group = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: &layout,
            entries: &entries,
        });
        Ok(Dispatch {
            captured: Captured::new(kernel, bindings, bytemuck::bytes_of(params), workgroups),
            label,
            pipeline,
            bind_group,
            workgroups,
        })
    }

    /// Waits until the pipeline is compiled (at once unless made inside [`Gpu::build_parallel`]) and
    /// reports a compile error.
    pub fn ready(&self) -> Result<()> {
        match self.pipeline.wait() {
            Ok(_) => Ok(()),
            Err(e) => Err(Error::gpu(format!("compiling {}", self.label), e)),
        }
    }

    /// Records the dispatch; nothing when its pipeline failed to compile (which [`Dispatch::ready`]
    /// reports).
    pub fn record(&self, pass: &mut wgpu::ComputePass) {
        let Ok(pipeline) = self.pipeline.wait() else {
            return;
        };
        if self.workgroups.contains(&0) {
            return;
        }
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let [x, y, z] = self.workgroups;
        pass.dispatch_workgroups(x, y, z);
    }

    /// Records `dispatches` into one compute pass of `encoder`.
    pub fn record_all(encoder: &mut wgpu::CommandEncoder, dispatches: &[Dispatch]) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for d in dispatches {
            d.record(&mut pass);
        }
    }
}

/// WebGPU forbids binding one buffer both read-only and writable in a dispatch, even at disjoint ranges
/// (a kernel may not read one view of an arena while writing another view of the same arena), and
/// binding overlapping ranges of one buffer writable twice (Chromium checks this; wgpu does not).
fn check_usage(label: &str, bindings: &[Binding]) -> Result<()> {
    for (i, b) in bindings.iter().enumerate() {
        let Binding::ReadWrite(written) = b else {
            continue;
        };
        for (j, other) in bindings.iter().enumerate() {
            let clash = match other {
                Binding::Read(read) if read.buffer == written.buffer => "reads",
                Binding::ReadWrite(w)
                    if j < i && w.buffer == written.buffer && overlap(w, written) =>
                {
                    "writes"
                }
                _ => continue,
            };
            return Err(Error::gpu(
                label,
                format!(
                    "binding {j} {clash} and binding {i} writes the same buffer{}; \
                     WebGPU needs them in different buffers (or disjoint views, for two writes)",
                    if clash == "writes" {
                        " at overlapping bytes"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(())
}

/// Whether two views' bytes overlap (bindings are at least 4 bytes).
fn overlap(a: &Tensor, b: &Tensor) -> bool {
    let end = |t: &Tensor| t.offset + t.bytes().max(4);
    a.offset < end(b) && b.offset < end(a)
}

impl Gpu {
    /// Records `dispatches` in one pass, submits and waits.
    pub fn run_dispatches(&self, dispatches: &[Dispatch]) -> Result<()> {
        self.run(|commands| commands.dispatch(dispatches))
    }
}
