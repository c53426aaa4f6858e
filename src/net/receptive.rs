//! Receptive fields: which cells of the input image an output cell of any node depends on,
//! walked back through every path of the graph.

use super::Net;
use crate::error::{Error, Result};
use crate::geometry::Region;

impl Net {
    /// The input cells (rows `y0..=y1`, columns `x0..=x1`) that cell `(y, x)` of node `name`'s
    /// output depends on, for an input of the size the net was built for.
    pub fn receptive_field(&self, name: &str, y: usize, x: usize) -> Result<Region> {
        let s = self.node_id(name)?;
        let mut shape = vec![1];
        shape.extend_from_slice(&self.input_shape);
        let shapes = self.shapes_for(&shape)?;
        let out = &shapes[s + 1];
        if out.len() != 4 || y >= out[2] || x >= out[3] {
            return Err(Error::shape(format!(
                "{name}: cell ({y}, {x}) is outside its output of shape {:?}",
                &out[1..]
            )));
        }
        let mut regions: Vec<Option<Region>> = vec![None; shapes.len()];
        regions[s + 1] = Some(Region::cell(y, x));
        for i in (0..=s).rev() {
            let Some(r) = regions[i + 1] else { continue };
            let node = &self.nodes[i];
            for (k, &v) in node.inputs.iter().enumerate() {
                let back = node.layer.input_region(k, &shapes[v], r);
                regions[v] = Some(regions[v].map_or(back, |old| old.union(back)));
            }
        }
        regions[0].ok_or_else(|| Error::Graph(format!("{name} does not depend on the input")))
    }
}
