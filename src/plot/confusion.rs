//! The confusion matrix as a picture: one row per true class, one column per predicted class,
//! each cell's count written in it and its shade the share of the row (blue on the diagonal,
//! red off it, so that the mistakes stand out).

use super::{render, text, LABEL_PX};
use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// The most classes drawn; beyond, a table of numbers serves better than a picture.
pub const MAX_CLASSES: usize = 30;

/// `confusion[true][predicted]` counts for `classes` (`k` x `k`).
pub fn confusion_image(confusion: &[Vec<u32>], classes: &[String]) -> Result<image::RgbImage> {
    let k = confusion.len();
    let what = Path::new("confusion matrix");
    if k == 0 || k > MAX_CLASSES || confusion.iter().any(|r| r.len() != k) {
        return Err(Error::Invalid(format!("a confusion matrix of {k} classes (square, 1 to {MAX_CLASSES}) can be drawn")));
    }
    let cell = (600 / k as u32).clamp(20, 64);
    let longest = classes.iter().map(|c| c.chars().count()).max().unwrap_or(1).min(16) as u32;
    let (left, top) = (60 + longest * LABEL_PX * 3 / 5, 90);
    let (width, height) = (left + cell * k as u32 + 20, top + cell * k as u32 + 20);
    let label = |i: usize| -> String {
        let name = classes.get(i).cloned().unwrap_or_else(|| i.to_string());
        name.chars().take(16).collect()
    };
    let font_px = (cell * 2 / 5).clamp(10, LABEL_PX);
    #[allow(clippy::needless_range_loop)] // i and j are a cell's row and column, both needed
    render(width, height, what, |root| {
        let axis = ("sans-serif", LABEL_PX).into_font();
        root.draw(&Text::new("predicted", ((left + cell * k as u32 / 2) as i32, 12), axis.clone().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top))))
            .map_err(text)?;
        let vertical = axis.clone().transform(FontTransform::Rotate270).color(&BLACK).pos(Pos::new(HPos::Center, VPos::Top));
        root.draw(&Text::new("true", (10, (top + cell * k as u32 / 2) as i32), vertical)).map_err(text)?;
        for i in 0..k {
            let centre = |j: usize| (j as u32 * cell + cell / 2) as i32;
            let right = axis.clone().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw(&Text::new(label(i), (left as i32 - 8, top as i32 + centre(i)), right)).map_err(text)?;
            let above = ("sans-serif", font_px).into_font().color(&BLACK).pos(Pos::new(HPos::Center, VPos::Bottom));
            root.draw(&Text::new(label(i), (left as i32 + centre(i), top as i32 - 8), above)).map_err(text)?;
            let row_total = confusion[i].iter().map(|&c| c as u64).sum::<u64>().max(1);
            for j in 0..k {
                let count = confusion[i][j];
                let share = count as f64 / row_total as f64;
                // Off the diagonal a few mistakes already show: the shade grows with the square root.
                let (shade, base) = if i == j { (share, (40.0, 90.0, 200.0)) } else { (share.sqrt(), (210.0, 50.0, 40.0)) };
                let mix = |c: f64| (255.0 - (255.0 - c) * shade).round() as u8;
                let fill = RGBColor(mix(base.0), mix(base.1), mix(base.2));
                let (x0, y0) = ((left + j as u32 * cell) as i32, (top + i as u32 * cell) as i32);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell as i32, y0 + cell as i32)], fill.filled())).map_err(text)?;
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell as i32, y0 + cell as i32)], RGBColor(220, 220, 220).stroke_width(1)))
                    .map_err(text)?;
                if count > 0 {
                    let ink = if shade > 0.55 { WHITE } else { BLACK };
                    let style = ("sans-serif", font_px).into_font().color(&ink).pos(Pos::new(HPos::Center, VPos::Center));
                    root.draw(&Text::new(count.to_string(), (x0 + cell as i32 / 2, y0 + cell as i32 / 2), style)).map_err(text)?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shaded_by_their_share_of_the_row() {
        let classes: Vec<String> = (0..3).map(|c| c.to_string()).collect();
        let m = vec![vec![90, 10, 0], vec![0, 100, 0], vec![50, 0, 50]];
        let img = confusion_image(&m, &classes).unwrap();
        let cell = (600 / 3u32).clamp(20, 64);
        let left = 60 + LABEL_PX * 3 / 5;
        // A corner pixel of cell (i, j), away from the count's text.
        let px = |i: u32, j: u32| *img.get_pixel(left + j * cell + 3, 90 + i * cell + 3);
        let (full, empty, mistake) = (px(1, 1), px(0, 2), px(2, 0));
        assert!(full[2] > 150 && full[0] < 80, "a full diagonal cell is deep blue: {full:?}");
        assert_eq!(empty.0, [255, 255, 255], "an empty cell stays white");
        assert!(mistake[0] > 150 && mistake[2] < 140, "half the row wrong is red: {mistake:?}");
        assert!(px(0, 0)[2] > px(2, 2)[2].saturating_sub(1) || px(0, 0)[0] < px(2, 2)[0], "90% is darker than 50%");
        assert!(confusion_image(&[vec![1, 2]], &classes).is_err());
    }
}
