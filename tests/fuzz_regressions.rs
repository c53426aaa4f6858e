//! The fuzz targets' findings, replayed: every file under `tests/data/fuzz/<target>/` goes
//! through the same entry point the fuzzer called (`fovea::fuzz`), which must return without
//! panicking. And hostile headers that the fuzzer is unlikely to build by chance: each is
//! refused with words that say why, before memory is sized by what it claims.

use std::path::Path;

#[test]
fn every_kept_finding_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fuzz");
    let mut replayed = 0;
    for (name, run) in fovea::fuzz::TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(name)) else { continue };
        for e in entries.flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            run(&bytes);
            replayed += 1;
        }
    }
    println!("replayed {replayed} kept fuzz input(s)");
}

/// A PNG whose header claims `w` x `h` pixels, with one empty data chunk.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        c.extend_from_slice(&crc.sum().to_be_bytes());
        c
    }
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    png.extend(chunk(b"IEND", &[]));
    png
}

#[test]
fn hostile_headers_are_refused_before_allocation() {
    // An image that claims 100,000 x 100,000 pixels (30 GB decoded).
    let e = fovea::data::folder::decode_image(&png_claiming(100_000, 100_000)).unwrap_err();
    assert!(e.contains("cannot read the image") && e.to_lowercase().contains("limit"), "{e}");
    // 16,000 x 16,000 RGB is within the side limit but 768 MB decoded: over the allocation limit.
    let e = fovea::data::folder::decode_image(&png_claiming(16_000, 16_000)).unwrap_err();
    assert!(e.to_lowercase().contains("limit"), "{e}");

    // An IDX header claiming 2^32 x 2^32 items in a 20-byte file.
    let mut idx = vec![0, 0, 8, 2];
    idx.extend_from_slice(&u32::MAX.to_be_bytes());
    idx.extend_from_slice(&u32::MAX.to_be_bytes());
    idx.extend_from_slice(&[0; 8]);
    let e = fovea::data::idx::read_idx_bytes(Path::new("x.idx"), &idx).unwrap_err().to_string();
    assert!(e.contains("x.idx") && e.contains("header claims"), "{e}");

    // A safetensors header length of 2^63, and a tensor whose offsets run past the file.
    let e = fovea::io::safetensors::parse(&(1u64 << 63).to_le_bytes()).unwrap_err();
    assert!(e.contains("not a valid safetensors"), "{e}");
    let header = br#"{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0; 16]);
    let e = fovea::io::safetensors::parse(&st).unwrap_err();
    assert!(e.contains("not a valid safetensors"), "{e}");

    // A config.json that would size a batch of 2^40 images or train an unknown model.
    let base = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/run_config.json")).unwrap();
    assert!(fovea::train::parse_config(base.as_bytes()).is_ok());
    for (from, to, want) in [
        ("\"batch_size\": 128", "\"batch_size\": 1099511627776", "batch size"),
        ("\"model\": \"lenet5\"", "\"model\": \"lenet6\"", "unknown model"),
        ("\"lr\": 0.001", "\"lr\": -1.0", "learning rate"),
        ("\"input\": null", "\"input\": [3, 100000, 100000]", "sides of 1 to"),
        ("\"schedule\": \"cosine\"", "\"schedule\": \"step:0:2\"", "step"),
    ] {
        assert!(base.contains(from), "{from}");
        let e = fovea::train::parse_config(base.replace(from, to).as_bytes()).unwrap_err();
        assert!(e.contains(want), "{to}: {e}");
    }
}
