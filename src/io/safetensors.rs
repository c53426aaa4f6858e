//! Reading and writing named tensors in the safetensors format (what
//! `safetensors.torch.save_file` writes), through the `safetensors` crate.

use super::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The contents of a safetensors file: float tensors (F32, or F64/F16/BF16 converted to f32),
/// integer tensors (I64, I32, U8 as i64) and the metadata strings.
#[derive(Debug, Default)]
pub struct TensorFile {
    pub floats: BTreeMap<String, Tensor>,
    pub ints: BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    pub metadata: HashMap<String, String>,
}

impl TensorFile {
    /// The float tensor `name`, or an error naming the file and the tensor.
    pub fn float(&self, name: &str, path: &Path) -> Result<&Tensor> {
        self.floats.get(name).ok_or_else(|| Error::file(path, format!("has no float tensor named {name:?}")))
    }
}

/// Reads every tensor of the file at `path`.
pub fn read(path: &Path) -> Result<TensorFile> {
    let bytes = std::fs::read(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    parse(&bytes).map_err(|m| Error::file(path, m))
}

/// Parses safetensors bytes; the message says what is wrong.
pub fn parse(bytes: &[u8]) -> std::result::Result<TensorFile, String> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not a valid safetensors file: {e}"))?;
    let mut out = TensorFile { metadata: meta.metadata().clone().unwrap_or_default(), ..Default::default() };
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        let data = view.data();
        match view.dtype() {
            Dtype::F32 => out.floats.insert(name, Tensor::from_vec(&shape, le_chunks::<4>(data).map(f32::from_le_bytes).collect()).map_err(|e| e.to_string())?),
            Dtype::F64 => out.floats.insert(name, Tensor::from_vec(&shape, le_chunks::<8>(data).map(|b| f64::from_le_bytes(b) as f32).collect()).map_err(|e| e.to_string())?),
            Dtype::F16 => out.floats.insert(name, Tensor::from_vec(&shape, le_chunks::<2>(data).map(|b| f16_to_f32(u16::from_le_bytes(b))).collect()).map_err(|e| e.to_string())?),
            Dtype::BF16 => out.floats.insert(name, Tensor::from_vec(&shape, le_chunks::<2>(data).map(|b| f32::from_bits((u16::from_le_bytes(b) as u32) << 16)).collect()).map_err(|e| e.to_string())?),
            Dtype::I64 => {
                out.ints.insert(name, (shape, le_chunks::<8>(data).map(i64::from_le_bytes).collect()));
                None
            }
            Dtype::I32 => {
                out.ints.insert(name, (shape, le_chunks::<4>(data).map(|b| i32::from_le_bytes(b) as i64).collect()));
                None
            }
            Dtype::U8 => {
                out.ints.insert(name, (shape, data.iter().map(|&b| b as i64).collect()));
                None
            }
            other => return Err(format!("tensor {name:?} has dtype {other:?}, which fovea does not read")),
        };
    }
    Ok(out)
}

fn le_chunks<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(|c| {
        let mut b = [0u8; N];
        b.copy_from_slice(c);
        b
    })
}

/// IEEE half to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f * 2^-24.
            let v = f as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Writes float tensors (as F32) and metadata to `path`, atomically.
pub fn write(path: &Path, tensors: &[(String, &Tensor)], metadata: Option<HashMap<String, String>>) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, t)| t.data().iter().flat_map(|v| v.to_le_bytes()).collect()).collect();
    let mut views = Vec::with_capacity(tensors.len());
    for ((name, t), b) in tensors.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, t.shape().to_vec(), b).map_err(|e| Error::file(path, format!("tensor {name}: {e}")))?;
        views.push((name.clone(), view));
    }
    let data = safetensors::serialize(views, metadata).map_err(|e| Error::file(path, format!("cannot encode: {e}")))?;
    write_atomic(path, &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_bytes() {
        let dir = std::env::temp_dir().join(format!("fovea-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.safetensors");
        let a = Tensor::from_vec(&[2, 3], vec![1.0, -2.0, 3.5, 0.0, 1e-8, 7.0]).unwrap();
        let meta = HashMap::from([("op".to_string(), "x".to_string())]);
        write(&path, &[("a.weight".to_string(), &a)], Some(meta)).unwrap();
        let f = read(&path).unwrap();
        assert_eq!(f.floats["a.weight"], a);
        assert_eq!(f.metadata["op"], "x");
        let err = parse(b"\x10\0\0\0\0\0\0\0{not json at all").unwrap_err();
        assert!(err.contains("not a valid safetensors"), "{err}");
        // A header that claims more bytes than the file has.
        let err = parse(&u64::MAX.to_le_bytes()).unwrap_err();
        assert!(err.contains("not a valid safetensors"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn half_precision_converts() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
    }
}
