//! The arithmetic of sliding windows (convolution and pooling): padding, stride, dilation,
//! output size, cells left over, and receptive fields. The one place for it.
//!
//! Along one axis of `n` input cells, a window of `k` cells dilated by `d` spans
//! `k_eff = (k - 1) * d + 1` cells. With `lo` and `hi` cells of zero padding and stride `s`,
//! the lecture's rule gives `out = (n + lo + hi - k_eff) / s + 1`. When the division is not
//! exact, `(n + lo + hi - k_eff) % s` rows (or columns) at the bottom (right) are never read:
//! the geometry reports them as left over, and `strict` refuses them.

use crate::error::{Error, Result};

/// How a window op pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// No padding; windows that do not fit are dropped (TensorFlow's VALID).
    Valid,
    /// TensorFlow's SAME: `out = ceil(n / s)`, padding split evenly with the odd cell at the
    /// bottom/right.
    Same,
    /// Explicit zero padding in cells.
    Explicit { top: usize, bottom: usize, left: usize, right: usize },
}

impl Padding {
    /// The same padding `p` on every side, as PyTorch's `padding=p`.
    pub fn uniform(p: usize) -> Self {
        Padding::Explicit { top: p, bottom: p, left: p, right: p }
    }

    /// `Explicit` from `[top, bottom, left, right]`.
    pub fn explicit([top, bottom, left, right]: [usize; 4]) -> Self {
        Padding::Explicit { top, bottom, left, right }
    }
}

/// The settings of a 2-d window op, before it meets an input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window2d {
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub stride: [usize; 2],
    /// `[dh, dw]`; 1 for an ordinary window.
    pub dilation: [usize; 2],
    pub padding: Padding,
    /// PyTorch's `ceil_mode`: `out = ceil((n + lo + hi - k_eff) / s) + 1`, where the last window
    /// must start inside the input or its left padding.
    pub ceil_mode: bool,
}

impl Window2d {
    /// A square window `k` with stride `s`, no dilation.
    pub fn square(k: usize, s: usize, padding: Padding) -> Self {
        Window2d { kernel: [k, k], stride: [s, s], dilation: [1, 1], padding, ceil_mode: false }
    }

    /// The geometry of this window over an `h x w` input.
    pub fn resolve(&self, h: usize, w: usize) -> Result<Geometry> {
        let (pad_h, pad_w) = match self.padding {
            Padding::Valid => (Some((0, 0)), Some((0, 0))),
            Padding::Same => (None, None),
            Padding::Explicit { top, bottom, left, right } => (Some((top, bottom)), Some((left, right))),
        };
        let rows = resolve_axis("rows", h, self.kernel[0], self.stride[0], self.dilation[0], pad_h, self.ceil_mode)?;
        let cols = resolve_axis("columns", w, self.kernel[1], self.stride[1], self.dilation[1], pad_w, self.ceil_mode)?;
        Ok(Geometry { rows, cols })
    }

    /// As `resolve`, but refuses a filter that does not tile the padded input exactly (the
    /// lecture's 7x7 input with a 3x3 filter at stride 3).
    pub fn resolve_strict(&self, h: usize, w: usize) -> Result<Geometry> {
        let g = self.resolve(h, w)?;
        if g.rows.leftover > 0 || g.cols.leftover > 0 {
            return Err(Error::geometry(format!(
                "a {}x{} filter at stride {}x{} does not fit a {h}x{w} input padded by {:?}: \
                 {} row(s) and {} column(s) are left over; (N - F + 2P) / S + 1 is not a whole number",
                self.kernel[0], self.kernel[1], self.stride[0], self.stride[1], g.padding(),
                g.rows.leftover, g.cols.leftover
            )));
        }
        Ok(g)
    }

    /// A short text such as `5x5 s1 SAME` or `3x3 s2 pad 1`.
    pub fn describe(&self) -> String {
        let mut s = format!("{}x{} s{}", self.kernel[0], self.kernel[1], stride_text(self.stride));
        match self.padding {
            Padding::Valid => s.push_str(" VALID"),
            Padding::Same => s.push_str(" SAME"),
            Padding::Explicit { top, bottom, left, right } => {
                if top == bottom && bottom == left && left == right {
                    if top > 0 {
                        s.push_str(&format!(" pad {top}"));
                    }
                } else {
                    s.push_str(&format!(" pad [{top},{bottom},{left},{right}]"));
                }
            }
        }
        if self.dilation != [1, 1] {
            s.push_str(&format!(" dil {}", stride_text(self.dilation)));
        }
        if self.ceil_mode {
            s.push_str(" ceil");
        }
        s
    }
}

fn stride_text(s: [usize; 2]) -> String {
    if s[0] == s[1] {
        s[0].to_string()
    } else {
        format!("{}x{}", s[0], s[1])
    }
}

/// One axis of a resolved window op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis {
    /// Input cells.
    pub input: usize,
    /// Output cells.
    pub output: usize,
    pub kernel: usize,
    pub stride: usize,
    pub dilation: usize,
    /// Zero padding before the first cell (top or left).
    pub pad_lo: usize,
    /// Zero padding after the last cell (bottom or right).
    pub pad_hi: usize,
    /// Cells at the end of the padded input that no window reads.
    pub leftover: usize,
}

impl Axis {
    /// Cells one window spans: `(k - 1) * d + 1`.
    pub fn span(&self) -> usize {
        (self.kernel - 1) * self.dilation + 1
    }

    /// First input cell (may be negative: padding) read by output cell `o`.
    pub fn start(&self, o: usize) -> isize {
        (o * self.stride) as isize - self.pad_lo as isize
    }

    /// The input cells `[lo, hi]` (inclusive, clipped to the input) that output cells
    /// `[o_lo, o_hi]` read.
    pub fn input_range(&self, o_lo: usize, o_hi: usize) -> (usize, usize) {
        let lo = self.start(o_lo).max(0) as usize;
        let hi = (self.start(o_hi) + self.span() as isize - 1).min(self.input as isize - 1);
        (lo.min(self.input.saturating_sub(1)), hi.max(0) as usize)
    }
}

/// A window op resolved against an input size: rows and columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub rows: Axis,
    pub cols: Axis,
}

impl Geometry {
    /// `[top, bottom, left, right]` padding.
    pub fn padding(&self) -> [usize; 4] {
        [self.rows.pad_lo, self.rows.pad_hi, self.cols.pad_lo, self.cols.pad_hi]
    }

    pub fn out_hw(&self) -> (usize, usize) {
        (self.rows.output, self.cols.output)
    }

    pub fn in_hw(&self) -> (usize, usize) {
        (self.rows.input, self.cols.input)
    }

    /// Rows and columns left over at the bottom and right.
    pub fn leftover(&self) -> (usize, usize) {
        (self.rows.leftover, self.cols.leftover)
    }

    /// Refuses windows that cover no input cell at all (only padding): a max pool would have
    /// nothing to pick there. PyTorch refuses the same through `padding <= kernel / 2`.
    pub fn require_real_cells(&self) -> Result<()> {
        for (axis, what) in [(&self.rows, "rows"), (&self.cols, "columns")] {
            let first_end = axis.start(0) + axis.span() as isize;
            let last_start = axis.start(axis.output - 1);
            if first_end <= 0 || last_start >= axis.input as isize {
                return Err(Error::geometry(format!(
                    "padding {}+{} of the {what} is so large that a {}-cell window covers only padding",
                    axis.pad_lo, axis.pad_hi, axis.kernel
                )));
            }
        }
        Ok(())
    }
}

/// Resolves one axis. `pad` is `None` for SAME, else `(lo, hi)`.
fn resolve_axis(
    what: &str,
    n: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: Option<(usize, usize)>,
    ceil_mode: bool,
) -> Result<Axis> {
    if k == 0 || s == 0 || d == 0 {
        return Err(Error::geometry(format!(
            "kernel {k}, stride {s} and dilation {d} of the {what} must all be at least 1"
        )));
    }
    if n == 0 {
        return Err(Error::geometry(format!("the input has no {what}")));
    }
    let span = (k - 1) * d + 1;
    let (out, lo, hi) = match pad {
        None => {
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + span).saturating_sub(n);
            (out, total / 2, total - total / 2)
        }
        Some((lo, hi)) => {
            let padded = n + lo + hi;
            if padded < span {
                return Err(Error::geometry(format!(
                    "a {k}-cell filter{} does not fit {n} input {what} padded by {lo}+{hi}: \
                     (N - F + 2P) / S + 1 = ({n} - {span} + {}) / {s} + 1 is below 1",
                    if d > 1 { format!(" dilated to {span}") } else { String::new() },
                    lo + hi
                )));
            }
            let mut out = if ceil_mode {
                (padded - span).div_ceil(s) + 1
            } else {
                (padded - span) / s + 1
            };
            // PyTorch: the last window must start inside the input or the left padding.
            if ceil_mode && (out - 1) * s >= n + lo {
                out -= 1;
            }
            (out, lo, hi)
        }
    };
    let covered = (out - 1) * s + span;
    let leftover = (n + lo + hi).saturating_sub(covered);
    Ok(Axis { input: n, output: out, kernel: k, stride: s, dilation: d, pad_lo: lo, pad_hi: hi, leftover })
}

/// A rectangle of cells `[y0, y1] x [x0, x1]` (inclusive) in one feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl Region {
    pub fn cell(y: usize, x: usize) -> Self {
        Region { y0: y, y1: y, x0: x, x1: x }
    }

    /// The whole of an `h x w` map.
    pub fn full(h: usize, w: usize) -> Self {
        Region { y0: 0, y1: h.saturating_sub(1), x0: 0, x1: w.saturating_sub(1) }
    }

    pub fn union(self, other: Region) -> Region {
        Region {
            y0: self.y0.min(other.y0),
            y1: self.y1.max(other.y1),
            x0: self.x0.min(other.x0),
            x1: self.x1.max(other.x1),
        }
    }

    /// This region clipped to an `h x w` map.
    pub fn intersect_full(self, h: usize, w: usize) -> Region {
        let f = Region::full(h, w);
        Region { y0: self.y0.min(f.y1), y1: self.y1.min(f.y1), x0: self.x0.min(f.x1), x1: self.x1.min(f.x1) }
    }

    pub fn height(&self) -> usize {
        self.y1 - self.y0 + 1
    }

    pub fn width(&self) -> usize {
        self.x1 - self.x0 + 1
    }

    /// The input cells that a window op reads to compute this region of its output.
    pub fn through(&self, g: &Geometry) -> Region {
        let (y0, y1) = g.rows.input_range(self.y0, self.y1);
        let (x0, x1) = g.cols.input_range(self.x0, self.x1);
        Region { y0, y1, x0, x1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lecture_rule_and_leftover() {
        // 7x7 input, 3x3 filter: stride 1 -> 5, stride 2 -> 3, stride 3 does not fit.
        let g = Window2d::square(3, 1, Padding::Valid).resolve(7, 7).unwrap();
        assert_eq!(g.out_hw(), (5, 5));
        let g = Window2d::square(3, 2, Padding::Valid).resolve(7, 7).unwrap();
        assert_eq!((g.out_hw(), g.leftover()), ((3, 3), (0, 0)));
        let g = Window2d::square(3, 3, Padding::Valid).resolve(7, 7).unwrap();
        assert_eq!((g.out_hw(), g.leftover()), ((2, 2), (1, 1)));
        let err = Window2d::square(3, 3, Padding::Valid).resolve_strict(7, 7).unwrap_err();
        assert!(err.to_string().contains("left over"), "{err}");
        // Zero padding 1 keeps a 7x7 input at 7x7 with a 3x3 filter.
        let g = Window2d::square(3, 1, Padding::uniform(1)).resolve(7, 7).unwrap();
        assert_eq!(g.out_hw(), (7, 7));
    }

    #[test]
    fn same_padding_as_tensorflow() {
        // n=13, k=6, s=5: out 3, total padding 3 split 1 top, 2 bottom.
        let g = Window2d::square(6, 5, Padding::Same).resolve(13, 13).unwrap();
        assert_eq!(g.out_hw(), (3, 3));
        assert_eq!(g.padding(), [1, 2, 1, 2]);
        // 2x2 stride 2 on 7: out 4, padding 0 top, 1 bottom.
        let g = Window2d::square(2, 2, Padding::Same).resolve(7, 7).unwrap();
        assert_eq!((g.out_hw(), g.padding()), ((4, 4), [0, 1, 0, 1]));
        // VALID on 13 with 6 stride 5: out 2, one cell left over.
        let g = Window2d::square(6, 5, Padding::Valid).resolve(13, 13).unwrap();
        assert_eq!((g.out_hw(), g.leftover()), ((2, 2), (2, 2)));
    }

    #[test]
    fn ceil_mode_as_pytorch() {
        let mut w = Window2d::square(3, 2, Padding::Valid);
        w.ceil_mode = true;
        assert_eq!(w.resolve(14, 14).unwrap().out_hw(), (7, 7));
        // 112 -> 56 in GoogLeNet's first pool (3x3 s2 ceil).
        assert_eq!(w.resolve(112, 112).unwrap().out_hw(), (56, 56));
        // The last window may not start in the right padding.
        let mut w = Window2d::square(2, 2, Padding::uniform(1));
        w.ceil_mode = true;
        assert_eq!(w.resolve(4, 4).unwrap().out_hw(), (3, 3));
    }

    #[test]
    fn alexnet_shapes() {
        let g = Window2d::square(11, 4, Padding::Valid).resolve(227, 227).unwrap();
        assert_eq!(g.out_hw(), (55, 55));
        let g = Window2d::square(3, 2, Padding::Valid).resolve(55, 55).unwrap();
        assert_eq!(g.out_hw(), (27, 27));
    }

    #[test]
    fn filter_that_does_not_fit_is_an_error() {
        let err = Window2d::square(7, 1, Padding::Valid).resolve(5, 5).unwrap_err();
        assert!(err.to_string().contains("does not fit"), "{err}");
        assert!(Window2d::square(3, 0, Padding::Valid).resolve(5, 5).is_err());
    }

    #[test]
    fn receptive_field_of_a_cell() {
        let g = Window2d::square(5, 1, Padding::uniform(2)).resolve(28, 28).unwrap();
        assert_eq!(Region::cell(0, 0).through(&g), Region { y0: 0, y1: 2, x0: 0, x1: 2 });
        assert_eq!(Region::cell(10, 20).through(&g), Region { y0: 8, y1: 12, x0: 18, x1: 22 });
        let g = Window2d::square(3, 2, Padding::Valid).resolve(13, 13).unwrap();
        assert_eq!(Region::cell(5, 5).through(&g), Region { y0: 10, y1: 12, x0: 10, x1: 12 });
    }

    #[test]
    fn windows_of_only_padding_are_refused_for_pooling() {
        let g = Window2d::square(2, 2, Padding::uniform(2)).resolve(4, 4).unwrap();
        assert!(g.require_real_cells().is_err());
        let g = Window2d::square(3, 2, Padding::uniform(1)).resolve(4, 4).unwrap();
        assert!(g.require_real_cells().is_ok());
    }
}
