//! GPU tensors: a storage buffer with a shape, plus upload and readback.

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::gpu::{Gpu, Readback};

/// A row-major array of 4-byte elements (f32, or u32 for token ids) in a GPU storage buffer: a whole
/// buffer, or a view of part of one (an arena of parameters, gradients or activations).
#[derive(Clone, Debug)]
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    /// Where the tensor starts in `buffer`, in bytes; a multiple of [`Tensor::ALIGN`] elements.
    pub offset: u64,
    pub shape: Vec<usize>,
}

impl Tensor {
    /// Views start at multiples of this many elements: 256 bytes, the largest storage-buffer offset
    /// alignment WebGPU lets an adapter require, so every view binds on every adapter.
    pub const ALIGN: usize = 64;

    /// Whether `other` lives in the same buffer (a view of the same arena chunk, say).
    pub fn same_buffer(&self, other: &Tensor) -> bool {
        self.buffer == other.buffer
    }

    /// A view of `shape` starting `start` elements into this tensor. `start` must be a multiple of
    /// [`Tensor::ALIGN`] and the view must fit.
    pub fn view(&self, start: usize, shape: &[usize]) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        if !start.is_multiple_of(Self::ALIGN) || start + len > self.len() {
            return Err(Error::shape(
                "tensor view",
                format!(
                    "{shape:?} at element {start} of {} (views start at multiples of {})",
                    self.describe(),
                    Self::ALIGN
                ),
            ));
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            offset: self.offset + 4 * start as u64,
            shape: shape.to_vec(),
        })
    }

    /// The tensor's bytes as a binding (at least 4 bytes: bindings cannot be empty).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: std::num::NonZeroU64::new(self.bytes().max(4)),
        })
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        4 * self.len() as u64
    }

    /// The tensor's label for error messages.
    pub fn describe(&self) -> String {
        format!("{:?}", self.shape)
    }
}

impl Gpu {
    /// A zero-filled tensor. Zero-sized shapes get a 4-byte buffer, since bindings cannot be empty.
    pub fn zeros(&self, label: &str, shape: &[usize]) -> Result<Tensor> {
        let len: usize = shape.iter().product();
        let bytes = 4 * len.max(1) as u64;
        self.check_binding_size(label, bytes)?;
        let buffer = self.buffer(
            label,
            bytes,
            wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
        );
        Ok(Tensor {
            buffer,
            offset: 0,
            shape: shape.to_vec(),
        })
    }

    /// A small writable tensor (64 elements) for a binding slot a dispatch does not use. The slots
    /// `0..UNUSED_SLOTS` are disjoint views of one buffer, so a dispatch may bind several: WebGPU
    /// forbids binding one buffer writable twice in a dispatch where the ranges overlap.
    pub fn unused(&self, slot: usize) -> Result<Tensor> {
        if slot >= UNUSED_SLOTS {
            return Err(Error::shape(
                "unused binding slot",
                format!("{slot} of {UNUSED_SLOTS}"),
            ));
        }
        let all = match self.unused.get() {
            Some(all) => all,
            None => {
                let made = self.zeros("unused slots", &[UNUSED_SLOTS * Tensor::ALIGN])?;
                self.unused.get_or_init(|| made)
            }
        };
        all.view(slot * Tensor::ALIGN, &[Tensor::ALIGN])
    }

    /// A tensor holding `data` (f32 or u32), which must have `shape`'s element count.
    pub fn upload<T: Pod>(&self, label: &str, shape: &[usize], data: &[T]) -> Result<Tensor> {
        let tensor = self.zeros(label, shape)?;
        self.write(&tensor, data)?;
        Ok(tensor)
    }

    /// Overwrites a tensor's contents (queued; visible to the next submit).
    pub fn write<T: Pod>(&self, tensor: &Tensor, data: &[T]) -> Result<()> {
        check_elements::<T>(tensor, data.len())?;
        if !data.is_empty() {
            self.queue
                .write_buffer(&tensor.buffer, tensor.offset, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Copies a tensor back to the CPU (waits for all submitted work).
    pub fn read<T: Pod>(&self, tensor: &Tensor) -> Result<Vec<T>> {
        self.read_range(tensor, 0, tensor.len())
    }

    /// Copies elements `start .. start + len` of a tensor back to the CPU (waits for all submitted work).
    pub fn read_range<T: Pod>(&self, tensor: &Tensor, start: usize, len: usize) -> Result<Vec<T>> {
        check_elements::<T>(tensor, tensor.len())?;
        if start + len > tensor.len() {
            return Err(Error::shape(
                "tensor readback",
                format!("elements {start}..{} of {}", start + len, tensor.describe()),
            ));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let readback = Readback::new(self, "readback", 4 * len as u64);
        let offset = tensor.offset + 4 * start as u64;
        self.run(|commands| readback.copy_bytes(&mut commands.encoder, &tensor.buffer, offset))?;
        let values = readback.read(self, "reading a tensor back")?;
        self.capture_read(&tensor.buffer, offset, bytemuck::cast_slice(&values));
        Ok(values)
    }
}

/// How many [`Gpu::unused`] slots there are.
pub const UNUSED_SLOTS: usize = 4;

/// The element type is 4 bytes wide and `count` is the tensor's length.
fn check_elements<T>(tensor: &Tensor, count: usize) -> Result<()> {
    if std::mem::size_of::<T>() != 4 {
        return Err(Error::shape(
            "tensor transfer",
            "tensors hold 4-byte elements (f32 or u32)",
        ));
    }
    if count != tensor.len() {
        return Err(Error::shape(
            "tensor transfer",
            format!(
                "{count} elements for a tensor of shape {}",
                tensor.describe()
            ),
        ));
    }
    Ok(())
}
