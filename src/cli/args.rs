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

/// An f32 as JSON by its shortest decimal form (`0.9674`, not `0.9674000144004822`, the
/// nearest f64); `null` for NaN and infinities, which JSON cannot hold.
pub fn json_f32(v: f32) -> serde_json::Value {
    v.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(serde_json::Value::Null, serde_json::Value::Number)
}
