//! Pictures drawn with `plotters` and the bundled DejaVu Sans font (a fresh machine has no
//! system fonts): the training curves and the confusion matrix. Sizes are chosen for the
//! report, which shows them at about their own width, so the text stays readable there.

pub mod confusion;
mod curves;

pub use confusion::confusion_image;
pub use curves::training_curves;

use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../../assets/DejaVuSans.ttf");
        // Without a font, text is not drawn but the curves still are.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, bytes);
    });
}

/// Font sizes in pixels of a picture about 900 pixels wide.
const TITLE_PX: u32 = 28;
const LABEL_PX: u32 = 20;

/// Draws onto a white `width` x `height` canvas with `paint` and returns the picture;
/// `what` names it in errors.
fn render<F>(width: u32, height: u32, what: &Path, paint: F) -> Result<image::RgbImage>
where
    F: FnOnce(&DrawingArea<BitMapBackend, plotters::coord::Shift>) -> std::result::Result<(), String>,
{
    register_font();
    let mut buf = vec![255u8; width as usize * height as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        paint(&root).map_err(|e| Error::file(what, format!("cannot draw the picture: {e}")))?;
        root.present().map_err(|e| Error::file(what, format!("cannot draw the picture: {e:?}")))?;
    }
    image::RgbImage::from_raw(width, height, buf).ok_or_else(|| Error::file(what, "cannot draw the picture: wrong buffer size"))
}

/// A plotters error as text.
fn text<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}
