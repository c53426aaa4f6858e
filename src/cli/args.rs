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
