//! PNG charts with plotters: the mAP per loss of a results table (with error bars over seeds)
//! and the per-epoch curves of a run. Text is drawn with an embedded font (DejaVu Sans Mono,
//! licence in `assets/`), so a chart looks the same on a machine without fonts and the same
//! input gives the same bytes.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
pub(crate) const FAMILY: &str = "sans-serif";

pub(crate) fn register_font() -> Result<()> {
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
        .map_err(|_| anyhow!("the embedded chart font does not load"))
}

pub(crate) fn save_png(path: &Path, rgb: Vec<u8>, (width, height): (u32, u32)) -> Result<()> {
    let image = image::RgbImage::from_raw(width, height, rgb).context("chart buffer size")?;
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .context("encoding the chart")?;
    mlml_data::formats::write_atomic(path, &bytes)?;
    Ok(())
}

pub(crate) fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {e}")
}

/// One bar: a label, a value and its standard deviation (0: no error bar).
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub std: f64,
}

/// Horizontal bars, one per row, in the given order, with error bars where `std > 0`.
pub fn bar_chart(path: &Path, title: &str, axis: &str, bars: &[Bar]) -> Result<()> {
    register_font()?;
    let n = bars.len().max(1);
    let size = (900u32, 90 + 26 * n as u32);
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let finite = bars.iter().filter(|b| b.value.is_finite());
        let hi = finite
            .clone()
            .map(|b| b.value + b.std)
            .fold(f64::NEG_INFINITY, f64::max);
        let lo = finite
            .map(|b| b.value - b.std)
            .fold(f64::INFINITY, f64::min);
        let (lo, hi) = if lo.is_finite() && hi.is_finite() {
            let pad = ((hi - lo) * 0.1).max(0.5);
            ((lo - pad).max(0.0), hi + pad)
        } else {
            (0.0, 1.0)
        };
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FAMILY, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(190)
            .build_cartesian_2d(lo..hi, (0..n).into_segmented())
            .map_err(plot_error)?;
        // Segment 0 is at the bottom: the first bar goes in the top segment.
        let slot = |i: usize| n - 1 - i;
        let label_of = |v: &SegmentValue<usize>| match v {
            SegmentValue::CenterOf(s) if *s < n => bars
                .get(n - 1 - *s)
                .map(|b| b.label.clone())
                .unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&label_of)
            .x_desc(axis)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 15))
            .draw()
            .map_err(plot_error)?;
        let colour = RGBColor(52, 101, 164);
        let seg = |i: usize| SegmentValue::<usize>::Exact(i);
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let mut r = Rectangle::new(
                    [(lo, seg(slot(i))), (b.value, seg(slot(i) + 1))],
                    colour.filled(),
                );
                r.set_margin(4, 4, 0, 0);
                r
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(
                bars.iter()
                    .enumerate()
                    .filter(|(_, b)| b.std > 0.0)
                    .map(|(i, b)| {
                        PathElement::new(
                            vec![
                                (b.value - b.std, SegmentValue::CenterOf(slot(i))),
                                (b.value + b.std, SegmentValue::CenterOf(slot(i))),
                            ],
                            BLACK.stroke_width(2),
                        )
                    }),
            )
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    save_png(path, rgb, size)
}

/// One curve of a run's per-epoch figures.
pub struct Curve<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
}

/// Per-epoch panels side by side (loss, validation mAP, ...), epochs 1-based on the x axis.
pub fn epoch_panels(path: &Path, title: &str, panels: &[Curve<'_>]) -> Result<()> {
    register_font()?;
    let size = (420 * panels.len().max(1) as u32, 340u32);
    let mut rgb = vec![255u8; (size.0 * size.1 * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root.titled(title, (FAMILY, 18)).map_err(plot_error)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, curve) in areas.iter().zip(panels) {
            let epochs = curve.values.len().max(1);
            let finite = curve.values.iter().copied().filter(|v| v.is_finite());
            let lo = finite.clone().fold(f64::INFINITY, f64::min);
            let hi = finite.fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo.is_finite() {
                let pad = ((hi - lo) * 0.08).max(1e-6);
                (lo - pad, hi + pad)
            } else {
                (0.0, 1.0)
            };
            let mut chart: ChartContext<'_, _, Cartesian2d<RangedCoordusize, _>> =
                ChartBuilder::on(area)
                    .caption(curve.name, (FAMILY, 15))
                    .margin(10)
                    .x_label_area_size(30)
                    .y_label_area_size(60)
                    .build_cartesian_2d(1..epochs.max(2), lo..hi)
                    .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style((FAMILY, 12))
                .draw()
                .map_err(plot_error)?;
            chart
                .draw_series(LineSeries::new(
                    curve.values.iter().enumerate().map(|(i, v)| (i + 1, *v)),
                    RGBColor(52, 101, 164).stroke_width(2),
                ))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    save_png(path, rgb, size)
}
