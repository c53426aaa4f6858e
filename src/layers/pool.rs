//! Pooling layers: max (any window, overlapping 3x3 stride 2 included, `ceil_mode`), average
//! over real cells, and adaptive average (torchvision's `AdaptiveAvgPool2d`, global pooling
//! when the output is 1x1).

use super::{expect_inputs, expect_nchw, BackwardCtx, ForwardCtx, Layer};
use crate::error::{Error, Result};
use crate::geometry::{Geometry, Padding, Region, Window2d};
use crate::kernels::pool::{
    adaptive_avg_backward, adaptive_avg_forward, adaptive_bin, avg_pool_backward, avg_pool_forward, max_pool_backward,
    max_pool_backward_gated, max_pool_forward,
};
use crate::kernels::conv::PooledGrad;
use crate::kernels::Store;
use crate::tensor::Tensor;

fn check_window(w: &Window2d) -> Result<()> {
    if w.dilation != [1, 1] {
        return Err(Error::Invalid("pooling windows take no dilation".into()));
    }
    if w.kernel.contains(&0) || w.stride.contains(&0) {
        return Err(Error::Invalid(format!("pooling kernel {:?} and stride {:?} must be at least 1", w.kernel, w.stride)));
    }
    Ok(())
}

pub(crate) fn pool_geometry(w: &Window2d, input: &[usize]) -> Result<Geometry> {
    let (_, _, h, wd) = expect_nchw(input, None)?;
    let g = w.resolve(h, wd)?;
    g.require_real_cells()?;
    Ok(g)
}

fn pool_shape(w: &Window2d, inputs: &[&[usize]]) -> Result<Vec<usize>> {
    expect_inputs(inputs.len(), 1)?;
    let g = pool_geometry(w, inputs[0])?;
    Ok(vec![inputs[0][0], inputs[0][1], g.rows.output, g.cols.output])
}

fn window_leftover(w: &Window2d, input: &[usize]) -> (usize, usize) {
    pool_geometry(w, input).map(|g| g.leftover()).unwrap_or((0, 0))
}

fn window_region(w: &Window2d, input: &[usize], region: Region) -> Region {
    match pool_geometry(w, input) {
        Ok(g) => region.through(&g),
        Err(_) => Region::full(input[2], input[3]),
    }
}

/// Max pooling; padded cells never win.
pub struct MaxPool2d {
    window: Window2d,
    /// For each output cell of the last forward pass, the winning cell's index in its plane.
    argmax: Vec<u32>,
}

impl MaxPool2d {
    pub fn new(window: Window2d) -> Result<Self> {
        check_window(&window)?;
        Ok(MaxPool2d { window, argmax: Vec::new() })
    }

    /// A `k x k` window at stride `s`, unpadded: `square(2, 2)` or AlexNet's `square(3, 2)`.
    pub fn square(k: usize, s: usize) -> Self {
        MaxPool2d { window: Window2d::square(k.max(1), s.max(1), Padding::Valid), argmax: Vec::new() }
    }

    pub fn with_padding(mut self, p: Padding) -> Self {
        self.window.padding = p;
        self
    }

    /// PyTorch's `ceil_mode=True` (torchvision's GoogLeNet).
    pub fn with_ceil_mode(mut self, ceil: bool) -> Self {
        self.window.ceil_mode = ceil;
        self
    }

    pub fn window(&self) -> &Window2d {
        &self.window
    }
}

impl Layer for MaxPool2d {
    fn max_pool_window(&self) -> Option<Window2d> {
        Some(self.window)
    }

    fn kind(&self) -> &'static str {
        "MaxPool2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::MaxPool(self.window)
    }
    fn describe(&self) -> String {
        self.window.describe()
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        pool_shape(&self.window, inputs)
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let g = pool_geometry(&self.window, inputs[0].shape())?;
        self.argmax.resize(out.len(), 0);
        max_pool_forward(out.data_mut(), &mut self.argmax, inputs[0].data(), &g);
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], ctx: &BackwardCtx) -> Result<()> {
        self.backward_stored(inputs, out, d_out, d_inputs, ctx, Store::Add)
    }
    fn backward_stored(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx, store: Store) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let (_, _, h, w) = inputs[0].dims4("input")?;
            let (_, _, ho, wo) = out.dims4("output")?;
            max_pool_backward(dx.data_mut(), d_out.data(), &self.argmax, h * w, ho * wo, store);
        }
        Ok(())
    }
    fn max_pool_target(&mut self, input: &[usize], len: usize) -> Result<Option<(Geometry, &mut [u32])>> {
        let g = pool_geometry(&self.window, input)?;
        self.argmax.resize(len, 0);
        Ok(Some((g, &mut self.argmax)))
    }
    fn passes_gradient_through_relu(&self) -> bool {
        true
    }
    fn backward_through_relu(&mut self, inputs: &[&Tensor], out: &Tensor, d_out: &Tensor, d_relu_input: &mut Tensor, store: Store) -> Result<()> {
        let (_, _, h, w) = inputs[0].dims4("input")?;
        let (_, _, ho, wo) = out.dims4("output")?;
        // The cell each output came from holds the ReLU's output there, which is this output:
        // the ReLU passes the gradient where it is not <= 0.
        max_pool_backward_gated(d_relu_input.data_mut(), d_out.data(), &self.argmax, out.data(), h * w, ho * wo, store);
        Ok(())
    }
    fn pooled_grad<'a>(&'a self, out: &'a Tensor, d_out: &'a Tensor) -> Option<PooledGrad<'a>> {
        let (_, _, ho, wo) = out.dims4("output").ok()?;
        (self.argmax.len() == out.len() && d_out.len() == out.len()).then_some(PooledGrad { d_out: d_out.data(), argmax: &self.argmax, out: out.data(), out_plane: ho * wo })
    }
    fn leftover(&self, inputs: &[&[usize]]) -> (usize, usize) {
        window_leftover(&self.window, inputs[0])
    }
    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        window_region(&self.window, input, region)
    }
}

/// Average pooling over the real (unpadded) cells of each window, as TensorFlow averages.
pub struct AvgPool2d {
    window: Window2d,
}

impl AvgPool2d {
    pub fn new(window: Window2d) -> Result<Self> {
        check_window(&window)?;
        Ok(AvgPool2d { window })
    }

    pub fn square(k: usize, s: usize) -> Self {
        AvgPool2d { window: Window2d::square(k.max(1), s.max(1), Padding::Valid) }
    }

    pub fn with_padding(mut self, p: Padding) -> Self {
        self.window.padding = p;
        self
    }

    pub fn with_ceil_mode(mut self, ceil: bool) -> Self {
        self.window.ceil_mode = ceil;
        self
    }
}

impl Layer for AvgPool2d {
    fn kind(&self) -> &'static str {
        "AvgPool2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::AvgPool(self.window)
    }
    fn describe(&self) -> String {
        self.window.describe()
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        pool_shape(&self.window, inputs)
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let g = pool_geometry(&self.window, inputs[0].shape())?;
        avg_pool_forward(out.data_mut(), inputs[0].data(), &g);
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let g = pool_geometry(&self.window, inputs[0].shape())?;
            avg_pool_backward(dx.data_mut(), d_out.data(), &g);
        }
        Ok(())
    }
    fn leftover(&self, inputs: &[&[usize]]) -> (usize, usize) {
        window_leftover(&self.window, inputs[0])
    }
    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        window_region(&self.window, input, region)
    }
}

/// Average pooling to a fixed output size whatever the input size; `[1, 1]` is global average
/// pooling (ResNet, GoogLeNet), `[7, 7]` VGG's and `[6, 6]` AlexNet's in torchvision.
pub struct AdaptiveAvgPool2d {
    output: [usize; 2],
}

impl AdaptiveAvgPool2d {
    pub fn new(oh: usize, ow: usize) -> Result<Self> {
        if oh == 0 || ow == 0 {
            return Err(Error::Invalid(format!("adaptive pooling to {oh}x{ow}: sizes must be at least 1")));
        }
        Ok(AdaptiveAvgPool2d { output: [oh, ow] })
    }

    /// Global average pooling: every map to one value.
    pub fn global() -> Self {
        AdaptiveAvgPool2d { output: [1, 1] }
    }
}

impl Layer for AdaptiveAvgPool2d {
    fn kind(&self) -> &'static str {
        "AdaptiveAvgPool2d"
    }
    fn op(&self) -> super::Op<'_> {
        super::Op::AdaptiveAvgPool { output: self.output }
    }
    fn describe(&self) -> String {
        format!("to {}x{}", self.output[0], self.output[1])
    }
    fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>> {
        expect_inputs(inputs.len(), 1)?;
        let (n, c, _, _) = expect_nchw(inputs[0], None)?;
        Ok(vec![n, c, self.output[0], self.output[1]])
    }
    fn forward(&mut self, inputs: &[&Tensor], out: &mut Tensor, _ctx: &ForwardCtx) -> Result<()> {
        let (_, _, h, w) = inputs[0].dims4("input")?;
        adaptive_avg_forward(out.data_mut(), inputs[0].data(), (h, w), (self.output[0], self.output[1]));
        Ok(())
    }
    fn backward(&mut self, inputs: &[&Tensor], _out: &Tensor, d_out: &Tensor, d_inputs: &mut [Option<&mut Tensor>], _ctx: &BackwardCtx) -> Result<()> {
        if let Some(dx) = d_inputs[0].as_deref_mut() {
            let (_, _, h, w) = inputs[0].dims4("input")?;
            adaptive_avg_backward(dx.data_mut(), d_out.data(), (h, w), (self.output[0], self.output[1]));
        }
        Ok(())
    }
    fn input_region(&self, _i: usize, input: &[usize], region: Region) -> Region {
        let (h, w) = (input[2], input[3]);
        let (y0, _) = adaptive_bin(region.y0, h, self.output[0]);
        let (_, y1) = adaptive_bin(region.y1, h, self.output[0]);
        let (x0, _) = adaptive_bin(region.x0, w, self.output[1]);
        let (_, x1) = adaptive_bin(region.x1, w, self.output[1]);
        Region { y0, y1: y1 - 1, x0, x1: x1 - 1 }
    }
}
