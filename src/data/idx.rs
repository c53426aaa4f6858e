//! The IDX format of MNIST (LeCun): a magic number `00 00 08 nd` (unsigned bytes, `nd`
//! dimensions), `nd` big-endian u32 sizes, then the bytes. Read plain or gzip-compressed.
//! A corrupt header cannot make fovea allocate more than the file really holds.

use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

/// An IDX array of unsigned bytes.
#[derive(Debug)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// The largest array fovea accepts from an IDX header (MNIST's training images are 47 MB).
const MAX_BYTES: u64 = 1 << 32;

/// Reads the IDX file at `path` (gzip-compressed when it starts with gzip's magic bytes).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = File::open(path).map_err(|e| Error::file(path, format!("cannot open: {e}")))?;
    let file_len = file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
    parse_idx(path, BufReader::new(file), file_len)
}

/// Reads an IDX array held in memory; `name` is what errors call it.
pub fn read_idx_bytes(name: &Path, bytes: &[u8]) -> Result<IdxArray> {
    parse_idx(name, bytes, bytes.len() as u64)
}

/// The IDX array in `reader` (`len` bytes, plain or gzip), named `name` in errors.
fn parse_idx(name: &Path, mut reader: impl Read, len: u64) -> Result<IdxArray> {
    let err = |m: String| Error::file(name, m);
    let mut magic = [0u8; 2];
    reader.read_exact(&mut magic).map_err(|_| err("is empty or too short to be an IDX file".into()))?;
    let chained = std::io::Cursor::new(magic).chain(reader);
    let (mut source, compressed): (Box<dyn Read>, bool) = if magic == [0x1f, 0x8b] {
        (Box::new(GzDecoder::new(chained)), true)
    } else {
        (Box::new(chained), false)
    };
    let mut head = [0u8; 4];
    source.read_exact(&mut head).map_err(|e| err(format!("cannot read the IDX header: {e}")))?;
    if head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] == 0 || head[3] > 4 {
        return Err(err(format!(
            "wrong magic number {:02x} {:02x} {:02x} {:02x}: an IDX file of unsigned bytes starts with 00 00 08 and 1 to 4 dimensions",
            head[0], head[1], head[2], head[3]
        )));
    }
    let nd = head[3] as usize;
    let mut dims = Vec::with_capacity(nd);
    for _ in 0..nd {
        let mut b = [0u8; 4];
        source.read_exact(&mut b).map_err(|_| err("truncated in its header".into()))?;
        dims.push(u32::from_be_bytes(b) as usize);
    }
    let claimed = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).unwrap_or(u64::MAX);
    let data_len = len.saturating_sub(4 + 4 * nd as u64);
    if claimed > MAX_BYTES {
        return Err(err(format!("header claims {dims:?} = {claimed} bytes, more than fovea accepts ({MAX_BYTES}): corrupt header")));
    }
    if !compressed && claimed > data_len {
        return Err(err(format!(
            "header claims {dims:?} = {claimed} bytes of data, more than the file holds ({data_len}): truncated or corrupt"
        )));
    }
    // Grows with the data actually read, never to the size the header claims up front.
    let mut data = Vec::new();
    source
        .take(claimed + 1)
        .read_to_end(&mut data)
        .map_err(|e| err(format!("cannot read the data: {e}")))?;
    if (data.len() as u64) < claimed {
        return Err(err(format!("truncated: the header promises {claimed} bytes of data, the file has {}", data.len())));
    }
    if data.len() as u64 > claimed {
        return Err(err(format!("has more data than its header's {dims:?} = {claimed} bytes")));
    }
    Ok(IdxArray { dims, data })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_plain_and_gzip_and_refuses_corruption() {
        let dir = std::env::temp_dir().join(format!("fovea-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let plain = write("a.idx", &idx(&[2, 3], &[1, 2, 3, 4, 5, 6]));
        let a = read_idx(&plain).unwrap();
        assert_eq!((a.dims, a.data), (vec![2, 3], vec![1, 2, 3, 4, 5, 6]));

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(&[4], &[9, 8, 7, 6])).unwrap();
        let gz = write("b.idx.gz", &gz.finish().unwrap());
        assert_eq!(read_idx(&gz).unwrap().data, vec![9, 8, 7, 6]);

        let msg = |p: std::path::PathBuf| read_idx(&p).unwrap_err().to_string();
        assert!(msg(write("c", &[0, 0, 9, 1, 0, 0, 0, 1, 5])).contains("wrong magic number"));
        assert!(msg(write("d", &idx(&[10], &[1, 2]))).contains("more than the file"));
        assert!(msg(write("e", &idx(&[60000, 60000, 60000], &[1]))).contains("header claims"));
        assert!(msg(write("f", &idx(&[2], &[1, 2, 3]))).contains("more data"));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&idx(&[100], &[1; 10])).unwrap();
        let e = msg(write("g.gz", &gz.finish().unwrap()));
        assert!(e.contains("truncated") && e.contains("g.gz"), "{e}");
        assert!(msg(dir.join("missing")).contains("cannot open"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
