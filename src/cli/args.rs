//! Argument forms shared by several commands.

/// Parses `CxHxW` (`3x32x32`) into `[C, H, W]`.
pub fn parse_input(s: &str) -> Result<[usize; 3], String> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let dims: Vec<usize> = parts.iter().filter_map(|p| p.trim().parse().ok()).filter(|&d| d > 0).collect();
    match dims[..] {
        [c, h, w] if parts.len() == 3 => Ok([c, h, w]),
        _ => Err(format!("{s:?} is not CxHxW, e.g. 3x224x224")),
    }
}

pub use fovea::predict::json_f32;

/// The `--data` path, or the MNIST bundled in the binary when none was given (said on standard
/// error, so that a user who meant other data notices; standard output stays clean for --json).
pub fn data_or_bundled(given: &Option<std::path::PathBuf>) -> std::path::PathBuf {
    match given {
        Some(p) => p.clone(),
        None => {
            eprintln!("no --data given: using the MNIST bundled in the binary (60,000 training and 10,000 test images)");
            std::path::PathBuf::from(fovea::data::bundled::BUNDLED_MNIST)
        }
    }
}
