//! The image a request is about: the request's body (a PNG or JPEG of any size, fitted to the
//! model's input as `fovea predict` fits it) or `?data=N`, the data set's image N.

use super::app::App;
use super::error::{ApiError, ApiResult};
use crate::data::folder::{decode_image_within, fit_image};
use crate::data::{fill_batch, single_input};
use crate::tensor::Tensor;
use std::collections::HashMap;

/// The largest request body (413 above it).
pub const MAX_BODY_BYTES: usize = 20 << 20;
/// A decoded upload may have sides up to this many pixels and this many bytes of pixels (a
/// small file can claim a giant image: refused from its header, before decoding).
const MAX_SIDE: u32 = 8192;
const MAX_DECODED_BYTES: u64 = 128 << 20;

/// The query's parameters, by name.
pub type Query = HashMap<String, String>;

/// Parameter `name` as a number, `None` when absent, 400 when not a number.
pub fn number(q: &Query, name: &str) -> ApiResult<Option<usize>> {
    q.get(name).map(|v| v.parse::<usize>().map_err(|_| ApiError::bad_request(format!("{name}={v:?} is not a whole number")))).transpose()
}

/// Parameter `name`, required.
pub fn required<'a>(q: &'a Query, name: &str) -> ApiResult<&'a str> {
    q.get(name).map(String::as_str).ok_or_else(|| ApiError::bad_request(format!("the request needs ?{name}=")))
}

/// A yes/no parameter: `1`, `true`, `yes` or `on`.
pub fn flag(q: &Query, name: &str) -> bool {
    q.get(name).is_some_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
}

/// What the request's image is, as the answers name it.
pub enum Source {
    Data(usize),
    Upload,
}

/// The request's image as the net's input `[1, C, H, W]`, normalised; `?invert=1` inverts an
/// upload first (the MNIST nets learned white digits on black).
pub fn input(app: &App, q: &Query, body: &[u8]) -> ApiResult<(Tensor, Source)> {
    if !body.is_empty() {
        let img = decode_image_within(body, MAX_SIDE, MAX_DECODED_BYTES).map_err(|m| ApiError::bad_request(format!("the request's body: {m}")))?;
        let pixels = fit_image(img, app.input, app.fit).map_err(|m| ApiError::bad_request(format!("the request's image {m}")))?;
        return Ok((single_input(app.input, pixels, &app.norm, flag(q, "invert")), Source::Upload));
    }
    let Some(index) = number(q, "data")? else {
        return Err(ApiError::bad_request("give an image (PNG or JPEG) as the request's body, or ?data=N for the data set's image N"));
    };
    let data = app.data_with(index)?;
    let (mut x, mut labels) = (Tensor::default(), Vec::new());
    fill_batch(&data.set, &[index], &app.norm, None, &mut x, &mut labels);
    Ok((x, Source::Data(index)))
}
