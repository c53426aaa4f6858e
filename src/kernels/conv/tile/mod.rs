//! The register tile: fovea's own microkernel, the inner loop of the convolutions, in one
//! source for two vector widths (`simd.rs`): AVX2 + FMA (`avx2.rs`, 8 lanes) and AVX-512
//! (`avx512.rs`, 16 lanes). The ISA files hold only the vector operations and C's transposed
//! store; the loop that does the arithmetic is shared, so what is tested on one ISA is what
//! runs on the other.
//!
//! One call computes, for `r < rows <= kernel.rows` and `j < n <= kernel.width`,
//!
//! `C(r, j) = c[r + j * c_cs]  (+)=  sum_k data[row_offsets[r] + k_offsets[k]] * b[width k + j]`
//!
//! keeping the `rows x width` block of C in `2 * rows` vector registers while it runs over k
//! (`rows` for AVX-512's tile of one vector; rows evenly spaced in A, output pixels along a
//! row, go through `run_along_a_row`, which holds more of them):
//! per k, two vector loads of B, one offset load and `rows` broadcasts feed `2 * rows` FMAs.
//! A is gathered through two offset lists, so a convolution reads its zero-padded sample in
//! place whatever the stride, dilation or row width: in the forward pass r is an output pixel
//! (its window's offset), k a tap (its offset) and j an output channel (weights packed
//! `[k][width]`); in the weight gradient r is a tap, k a pixel and j an output channel (dY
//! packed `[pixel][width]`). C is stored transposed (one output channel's `rows` values are
//! contiguous), which is the NCHW layout of both results. The Winograd path (`winograd/`)
//! turns the roles around (r an output channel, j a tile of the image) and stores C by rows,
//! as does the forward pass of layers with few output channels (`narrow.rs`: j an output
//! pixel), whose B rows may be read in place through a third offset list
//! (`run_reading_b_rows`: `b[b_rows[k] + j]` instead of `b[width k + j]`).
//!
//! Why not `gemm`: a convolution's products are small (64 x 196 x 800 per sample for the MNIST
//! net's conv2) and `gemm` must first copy im2col's column matrix (larger than L2) into its
//! own panels; here nothing of the sample is copied but its zero padding. Measured on that
//! layer: docs/ARCHITECTURE.md, "Convolution kernels".

// Each ISA file is empty off x86-64 (an inner `#![cfg]`, so tools that follow `mod` lines,
// such as cargo-mutants, still find them).
mod avx2;
mod avx512;
mod simd;

use crate::kernels::isa::Isa;

/// A register tile: its instruction set and the block of C it keeps in registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub isa: Isa,
    /// Rows of C one tile covers at most.
    pub rows: usize,
    /// Columns of C one tile covers: two vectors, or one (`AVX512_16`); the width of B's
    /// panels.
    pub width: usize,
    /// Rows of C one tile covers at most where they are evenly spaced in A
    /// (`run_along_a_row`): no register holds a row's address then.
    pub row_run: usize,
}

impl Kernel {
    /// 6 rows x 2 ymm vectors: 12 accumulators + 2 for B + 1 for A of the 16 registers.
    pub const AVX2: Kernel = Kernel { isa: Isa::Avx2, rows: 6, width: 16, row_run: 6 };
    /// 10 rows x 2 zmm vectors: 20 accumulators + 2 for B + 10 broadcasts of A at most, all in
    /// the 32 registers (12 or 14 rows spilled accumulators inside the loop: 71 against 130
    /// GFLOP/s on shape b).
    pub const AVX512: Kernel = Kernel { isa: Isa::Avx512, rows: 10, width: 32, row_run: 14 };
    /// One zmm vector wide, for problems of at most 16 channels (LeNet-5's conv2), which the
    /// 32-wide tile would leave half empty and AVX2's tile runs at half AVX-512's rate: 10
    /// rows, or 24 along an output row (24 accumulators, a vector of B, a broadcast).
    pub const AVX512_16: Kernel = Kernel { isa: Isa::Avx512, rows: 10, width: 16, row_run: 24 };

    /// The tile written for `isa` (none for scalar code); the widest, where there are two.
    pub fn for_isa(isa: Isa) -> Option<Kernel> {
        match isa {
            Isa::Scalar => None,
            Isa::Avx2 => Some(Kernel::AVX2),
            Isa::Avx512 => Some(Kernel::AVX512),
        }
    }

    /// The widest tile `FOVEA_ISA` and the CPU allow.
    pub fn best() -> Option<Kernel> {
        Kernel::for_isa(Isa::active())
    }

    /// `tiled-avx2`, `tiled-avx512`: how benchmarks name it.
    pub fn name(&self) -> &'static str {
        match self.isa {
            Isa::Avx512 => "tiled-avx512",
            _ => "tiled-avx2",
        }
    }
}

/// Offsets with their maximum, found once when set, so each tile checks its bounds in O(1).
#[derive(Default)]
pub struct Offsets {
    offsets: Vec<usize>,
    max: usize,
}

impl Offsets {
    /// Replaces the offsets (keeping the allocation).
    pub fn set(&mut self, offsets: impl Iterator<Item = usize>) {
        self.offsets.clear();
        self.offsets.extend(offsets);
        self.max = self.offsets.iter().copied().max().unwrap_or(0);
    }
    /// Offset `i`.
    pub fn get(&self, i: usize) -> usize {
        self.offsets[i]
    }
    /// The offsets from `start` on (their maximum is still the whole list's, an upper bound).
    pub fn from(&self, start: usize) -> OffsetsFrom<'_> {
        OffsetsFrom { offsets: &self.offsets[start..], max: self.max }
    }
}

/// A tail of an `Offsets` list.
#[derive(Clone, Copy)]
pub struct OffsetsFrom<'a> {
    offsets: &'a [usize],
    max: usize,
}

/// Where C's values go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CLayout {
    /// `C(r, j)` at `c[r + j * column_stride]`: a column's `rows` values contiguous (a channel
    /// of an NCHW result).
    Transposed { column_stride: usize },
    /// `C(r, j)` at `c[r * row_stride + j]`, plain vector stores; every row is the full
    /// `width` (`n == width`).
    Rows { row_stride: usize },
}

/// The operands of one tile; see the module comment for the formula.
pub struct Tile<'a> {
    pub rows: usize,
    pub k: usize,
    /// A's values, read at `row_offsets[r] + k_offsets[k]`.
    pub data: &'a [f32],
    pub row_offsets: OffsetsFrom<'a>,
    pub k_offsets: OffsetsFrom<'a>,
    /// `[k][width]`
    pub b: &'a [f32],
    pub c: &'a mut [f32],
    pub c_layout: CLayout,
    /// Valid columns of C, `1..=width`.
    pub n: usize,
    /// Add to C instead of overwriting it.
    pub accumulate: bool,
}

/// Raw operands of one tile, as `run` checked them.
#[derive(Clone, Copy)]
pub(crate) struct Operands {
    pub k: usize,
    pub data: *const f32,
    pub row_offsets: *const usize,
    pub k_offsets: *const usize,
    pub b: *const f32,
    /// Where B's rows start (`run_reading_b_rows`), or null for packed panels.
    pub b_offsets: *const usize,
    pub c: *mut f32,
    pub c_layout: CLayout,
    pub n: usize,
    pub accumulate: bool,
    /// Each column's starting value instead of zero (`run_from`: a bias per output channel),
    /// or null.
    pub init: *const f32,
}

/// Runs one tile on `kernel`. Panics if an operand is shorter than its stated shape or the CPU
/// lacks the kernel's instructions: callers size their own buffers and pick a kernel from
/// `Kernel::best`, so either is a bug in fovea, not bad input.
pub fn run(kernel: Kernel, t: Tile) {
    run_checked(kernel, t, None, 0, None)
}

/// `run` with column j starting from `init[j]` instead of zero, C overwritten: a bias added
/// as the tile starts instead of in a pass over the output after it. `init` holds the
/// kernel's width of values.
pub fn run_from(kernel: Kernel, t: Tile, init: &[f32]) {
    run_checked(kernel, t, None, 0, Some(init))
}

/// `run` with B's row k read from `t.b[b_rows[k]..][..width]` instead of a packed panel: a
/// convolution's forward pass with output pixels in the lanes reads a stride-1 row of the
/// padded sample in place (`narrow.rs`).
pub fn run_reading_b_rows(kernel: Kernel, t: Tile, b_rows: OffsetsFrom) {
    run_checked(kernel, t, Some(b_rows), 0, None)
}

/// Strides along a row `run_along_a_row` takes (each a tile of its own).
pub const ROW_STEPS: [usize; 3] = [1, 2, 4];

/// `run` for rows of A evenly spaced: row r at `row_offsets[0] + r * step` (output pixels
/// along an output row, `step` the convolution's column stride, one of `ROW_STEPS`), up to
/// `kernel.row_run` rows. With every row's address one constant displacement from the
/// first's, AVX-512's tile keeps 14 rows (28 of its 32 registers) instead of the 10 whose
/// addresses fit in the general registers.
pub fn run_along_a_row(kernel: Kernel, t: Tile, step: usize) {
    run_checked(kernel, t, None, step, None)
}

/// `run_along_a_row` with each column starting from `init` (`run_from`).
pub fn run_along_a_row_from(kernel: Kernel, t: Tile, step: usize, init: &[f32]) {
    run_checked(kernel, t, None, step, Some(init))
}

/// `step`: 0 for rows at their own offsets, else as `run_along_a_row`; `init` as `run_from`.
fn run_checked(kernel: Kernel, t: Tile, b_rows: Option<OffsetsFrom>, step: usize, init: Option<&[f32]>) {
    let Kernel { isa, rows, width, row_run } = kernel;
    let max_rows = if step > 0 { row_run } else { rows };
    assert!(step == 0 || (ROW_STEPS.contains(&step) && b_rows.is_none()), "tile: rows {step} apart");
    assert!(t.rows >= 1 && t.rows <= max_rows && t.n >= 1 && t.n <= width, "tile: {} rows x {} columns", t.rows, t.n);
    // Rows evenly spaced need the first row's offset alone.
    let listed = if step > 0 { 1 } else { t.rows };
    assert!(t.row_offsets.offsets.len() >= listed, "tile: {} row offsets for {} rows", t.row_offsets.offsets.len(), t.rows);
    if t.k > 0 {
        assert!(t.k_offsets.offsets.len() >= t.k, "tile: {} k offsets for k = {}", t.k_offsets.offsets.len(), t.k);
        let last_row = if step > 0 { t.row_offsets.offsets[0] + (t.rows - 1) * step } else { t.row_offsets.max };
        let last = last_row + t.k_offsets.max;
        assert!(last < t.data.len(), "tile: A has {} values, reads up to {last}", t.data.len());
        match &b_rows {
            None => assert!(t.k * width <= t.b.len(), "tile: B has {} values, needs {}x{width}", t.b.len(), t.k),
            Some(rows) => {
                assert!(rows.offsets.len() >= t.k, "tile: {} B rows for k = {}", rows.offsets.len(), t.k);
                assert!(rows.max + width <= t.b.len(), "tile: B has {} values, rows read up to {}", t.b.len(), rows.max + width);
            }
        }
    }
    let last_c = match t.c_layout {
        CLayout::Transposed { column_stride } => (t.rows - 1) + (t.n - 1) * column_stride,
        CLayout::Rows { row_stride } => {
            assert!(t.n == width, "tile: a row store needs all {width} columns, got {}", t.n);
            (t.rows - 1) * row_stride + width - 1
        }
    };
    assert!(last_c < t.c.len(), "tile: C has {} values, writes up to {last_c}", t.c.len());
    assert!(isa != Isa::Scalar && isa.supported(), "tile: this CPU lacks {}", isa.name());
    assert!(init.is_none_or(|v| v.len() >= width && !t.accumulate), "tile: a start for {width} columns, without accumulating");
    let gather = b_rows.is_some();
    let o = Operands {
        k: t.k,
        data: t.data.as_ptr(),
        row_offsets: t.row_offsets.offsets.as_ptr(),
        k_offsets: t.k_offsets.offsets.as_ptr(),
        b: t.b.as_ptr(),
        b_offsets: b_rows.map_or(std::ptr::null(), |r| r.offsets.as_ptr()),
        c: t.c.as_mut_ptr(),
        c_layout: t.c_layout,
        n: t.n,
        accumulate: t.accumulate,
        init: init.map_or(std::ptr::null(), |v| v.as_ptr()),
    };
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the asserts above bound every read of A and B and every write of C for
    // `t.rows` rows; the CPU supports the instructions (checked above).
    unsafe {
        match (isa, step, gather) {
            // Rows evenly spaced (`run_along_a_row`).
            (Isa::Avx512, 1, _) if width == 16 => avx512::run_along_a_row_16::<1>(o, t.rows),
            (Isa::Avx512, 2, _) if width == 16 => avx512::run_along_a_row_16::<2>(o, t.rows),
            (Isa::Avx512, 4, _) if width == 16 => avx512::run_along_a_row_16::<4>(o, t.rows),
            (Isa::Avx512, 1, _) => avx512::run_along_a_row::<1>(o, t.rows),
            (Isa::Avx512, 2, _) => avx512::run_along_a_row::<2>(o, t.rows),
            (Isa::Avx512, 4, _) => avx512::run_along_a_row::<4>(o, t.rows),
            (_, 1, _) => avx2::run_along_a_row::<1>(o, t.rows),
            (_, 2, _) => avx2::run_along_a_row::<2>(o, t.rows),
            (_, 4, _) => avx2::run_along_a_row::<4>(o, t.rows),
            // B's rows read through offsets (`run_reading_b_rows`) or from packed panels.
            (Isa::Avx512, _, true) if width == 16 => avx512::run::<true, 1>(o, t.rows),
            (Isa::Avx512, _, false) if width == 16 => avx512::run::<false, 1>(o, t.rows),
            (Isa::Avx512, _, true) => avx512::run::<true, 2>(o, t.rows),
            (Isa::Avx512, _, false) => avx512::run::<false, 2>(o, t.rows),
            (_, _, true) => avx2::run::<true>(o, t.rows),
            _ => avx2::run::<false>(o, t.rows),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = o;
}

/// `src: [rows, cols]` into `width`-row panels `[ceil(rows / width)][cols][width]` (the tile's
/// B layout); lanes past `rows` in the last panel are left as they are. `width` is a multiple
/// of 8, or holds every row (one panel: `src` transposed into rows `width` apart).
pub fn pack_panels(panels: &mut [f32], src: &[f32], rows: usize, cols: usize, width: usize) {
    pack_panels_strided(panels, src, cols, rows, cols, width)
}

/// `pack_panels` of `src`'s rows `src_stride` values apart (`cols` of each): a row of an
/// image's every channel, say, straight into the padded sample channels last.
pub fn pack_panels_strided(panels: &mut [f32], src: &[f32], src_stride: usize, rows: usize, cols: usize, width: usize) {
    assert!(src_stride >= cols && (rows == 0 || src.len() >= (rows - 1) * src_stride + cols), "pack_panels: {} values for {rows}x{cols} rows {src_stride} apart", src.len());
    assert!(panels.len() >= rows.div_ceil(width) * cols * width, "pack_panels: {} values for the panels", panels.len());
    assert!(width.is_multiple_of(8) || rows <= width, "pack_panels: width {width} is not a multiple of 8 and {rows} rows need more than one panel");
    #[cfg(target_arch = "x86_64")]
    if Isa::Avx2.supported() {
        // SAFETY: sizes checked above, AVX2 present.
        return unsafe { avx2::pack_panels(panels.as_mut_ptr(), src.as_ptr(), src_stride, rows, cols, width) };
    }
    pack_panels_plain(panels, src, src_stride, rows, cols, width)
}

/// `pack_panels_strided` value by value: CPUs without AVX2 (tested beside the fast one
/// everywhere).
pub(crate) fn pack_panels_plain(panels: &mut [f32], src: &[f32], src_stride: usize, rows: usize, cols: usize, width: usize) {
    for r in 0..rows {
        for (c, v) in src[r * src_stride..][..cols].iter().enumerate() {
            panels[(r / width) * cols * width + c * width + r % width] = *v;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
