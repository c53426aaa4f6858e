//! The per-layer table of the lecture's AlexNet slide, for any net: output shape, parameters,
//! multiply-adds, and the rows and columns a layer leaves unread.

use super::Net;
use crate::error::Result;
use serde::Serialize;
use std::fmt;

#[derive(Clone, Debug, Serialize)]
pub struct SummaryRow {
    pub name: String,
    pub kind: String,
    /// The settings in a few words (`96 11x11 s4 VALID`).
    pub detail: String,
    /// Per image, without the batch dimension: `[C, H, W]`, or `[K]` after flattening.
    pub output: Vec<usize>,
    pub params: usize,
    /// Multiply-adds of one forward pass for one image (convolutions, linear and batch-norm
    /// layers; pooling and activations count 0).
    pub macs: u64,
    /// Input rows and columns a window does not reach (`(N - F + 2P) % S`).
    pub leftover: [usize; 2],
}

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub input: Vec<usize>,
    pub layers: Vec<SummaryRow>,
    pub total_params: usize,
    pub total_macs: u64,
}

/// A shape as the lecture writes it: `[55x55x96]` (H x W x C) for maps, `[4096]` for vectors.
pub fn lecture_shape(shape: &[usize]) -> String {
    match shape {
        [c, h, w] => format!("[{h}x{w}x{c}]"),
        other => format!("[{}]", other.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")),
    }
}

impl Net {
    /// The summary for one image of shape `input` (`[C, H, W]`), or of the built-in input
    /// shape when `None`.
    pub fn summary(&self, input: Option<&[usize]>) -> Result<Summary> {
        let input = input.unwrap_or(&self.input_shape).to_vec();
        let mut full = vec![1];
        full.extend_from_slice(&input);
        let shapes = self.shapes_for(&full)?;
        let mut layers = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let ins: Vec<&[usize]> = node.inputs.iter().map(|&v| shapes[v].as_slice()).collect();
            let (lr, lc) = node.layer.leftover(&ins);
            layers.push(SummaryRow {
                name: node.name.clone(),
                kind: node.layer.kind().to_string(),
                detail: node.layer.describe(),
                output: shapes[i + 1][1..].to_vec(),
                params: node.layer.params().iter().map(|(_, p)| p.value.len()).sum(),
                macs: node.layer.macs(&ins),
                leftover: [lr, lc],
            });
        }
        Ok(Summary {
            total_params: layers.iter().map(|r| r.params).sum(),
            total_macs: layers.iter().map(|r| r.macs).sum(),
            input,
            layers,
        })
    }
}

/// `61100840` as `61,100,840`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name_w = self.layers.iter().map(|r| r.name.len()).max().unwrap_or(4).max(5);
        let desc: Vec<String> = self.layers.iter().map(|r| format!("{} {}", r.kind, r.detail).trim().to_string()).collect();
        let desc_w = desc.iter().map(|d| d.len()).max().unwrap_or(5).max(5);
        writeln!(f, "{:<name_w$}  {:<desc_w$}  {:>14}  {:>12}  {:>15}  left over", "layer", "kind", "output", "params", "mult-adds")?;
        writeln!(f, "{:<name_w$}  {:<desc_w$}  {:>14}", "input", "", lecture_shape(&self.input))?;
        for (r, d) in self.layers.iter().zip(&desc) {
            let left = match r.leftover {
                [0, 0] => String::new(),
                [a, b] => format!("{a} rows, {b} cols"),
            };
            let line = format!(
                "{:<name_w$}  {:<desc_w$}  {:>14}  {:>12}  {:>15}  {left}",
                r.name,
                d,
                lecture_shape(&r.output),
                thousands(r.params as u64),
                thousands(r.macs)
            );
            writeln!(f, "{}", line.trim_end())?;
        }
        write!(
            f,
            "{:<name_w$}  {:<desc_w$}  {:>14}  {:>12}  {:>15}",
            "total",
            "",
            "",
            thousands(self.total_params as u64),
            thousands(self.total_macs)
        )
    }
}
