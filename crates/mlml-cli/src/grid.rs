//! A PNG grid of images, each with a few lines of caption under it (`mlml predict --grid`,
//! `mlml suggest --grid`): thumbnails fitted into square cells with the pipeline's
//! antialiased resize, captions in the charts' embedded font.

use std::path::Path;

use anyhow::{bail, Result};
use image::RgbImage;
use mlml_train::run_data::AnySource;
use plotters::prelude::*;

use crate::chart::{plot_error, register_font, save_png, FAMILY};

/// One cell: an image and its caption lines.
pub struct Tile {
    pub image: RgbImage,
    pub caption: Vec<String>,
}

const GAP: u32 = 8;
const LINE: u32 = 15;
const COLUMNS: u32 = 6;

/// Writes the tiles row by row, `cell` pixels square for each image.
pub fn write_grid(path: &Path, tiles: &[Tile], cell: u32) -> Result<()> {
    register_font()?;
    let lines = tiles.iter().map(|t| t.caption.len()).max().unwrap_or(0) as u32;
    let columns = COLUMNS.min(tiles.len().max(1) as u32);
    let rows = (tiles.len() as u32).div_ceil(columns).max(1);
    let (cell_w, cell_h) = (cell + GAP, cell + lines * LINE + GAP + 4);
    let (width, height) = (columns * cell_w + GAP, rows * cell_h + GAP);
    let mut canvas = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (k, tile) in tiles.iter().enumerate() {
        let (x0, y0) = (
            GAP + (k as u32 % columns) * cell_w,
            GAP + (k as u32 / columns) * cell_h,
        );
        let (w, h) = tile.image.dimensions();
        let scale = cell as f64 / w.max(h) as f64;
        let (tw, th) = (
            ((w as f64 * scale).round() as u32).max(1),
            ((h as f64 * scale).round() as u32).max(1),
        );
        let thumb = mlml_data::pipeline::resize_exact(&tile.image, tw, th);
        let (ox, oy) = (x0 + (cell - tw) / 2, y0 + (cell - th) / 2);
        for (x, y, p) in thumb.enumerate_pixels() {
            canvas.put_pixel(ox + x, oy + y, *p);
        }
    }
    let mut rgb = canvas.into_raw();
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        let style = (FAMILY, 12).into_font().color(&BLACK);
        for (k, tile) in tiles.iter().enumerate() {
            let (x0, y0) = (
                GAP + (k as u32 % columns) * cell_w,
                GAP + (k as u32 / columns) * cell_h + cell + 3,
            );
            for (l, line) in tile.caption.iter().enumerate() {
                let shown: String = line.chars().take((cell / 7) as usize).collect();
                root.draw(&Text::new(
                    shown,
                    (x0 as i32, (y0 + l as u32 * LINE) as i32),
                    style.clone(),
                ))
                .map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    save_png(path, rgb, (width, height))
}

/// The row's image, for a grid: an image file decoded, or an array row as RGB.
pub fn row_image(source: &AnySource, row: usize) -> Result<RgbImage> {
    match source {
        AnySource::Files(files) => Ok(mlml_data::pipeline::decode_rgb(&files.paths[row])?),
        AnySource::Array(array) => {
            let (c, h, w) = (array.channels, array.height, array.width);
            let plane = h * w;
            let pixels = &array.pixels[row * c * plane..(row + 1) * c * plane];
            Ok(RgbImage::from_fn(w as u32, h as u32, |x, y| {
                let at = y as usize * w + x as usize;
                let channel = |k: usize| pixels[k.min(c - 1) * plane + at];
                image::Rgb([channel(0), channel(1), channel(2)])
            }))
        }
        AnySource::Features(_) => {
            bail!("--grid needs a run trained on images; this one was trained on feature vectors")
        }
    }
}
