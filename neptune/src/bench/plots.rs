//! SVG plots of bench results with `plotters`: stream latency CDF per policy, stream latency over
//! time, a bar chart (batch throughput per policy), a stacked bar chart (latency by hop per
//! policy) and sweep lines.

use anyhow::{Context as _, anyhow};
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (900, 560);

fn color(i: usize) -> RGBColor {
    const C: [RGBColor; 10] = [
        RGBColor(0x1f, 0x77, 0xb4),
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
        RGBColor(0xd6, 0x27, 0x28),
        RGBColor(0x94, 0x67, 0xbd),
        RGBColor(0x8c, 0x56, 0x4b),
        RGBColor(0xe3, 0x77, 0xc2),
        RGBColor(0x7f, 0x7f, 0x7f),
        RGBColor(0xbc, 0xbd, 0x22),
        RGBColor(0x17, 0xbe, 0xcf),
    ];
    C[i % C.len()]
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("cannot draw {}: {e:?}", path.display())
}

/// Log-axis range covering `values` (ms), padded; at least [0.1, 10].
fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi == 0.0 {
        return (0.1, 10.0);
    }
    ((lo / 1.5).max(0.01), (hi * 1.5).max(10.0))
}

/// Empirical CDF of stream micro-batch latency (ms, log x) for each `(label, latencies)`.
///
/// # Errors
/// When the file cannot be written.
pub fn latency_cdf(path: &Path, title: &str, series: &[(String, Vec<f64>)]) -> anyhow::Result<()> {
    let (lo, hi) = log_range(series.iter().flat_map(|(_, v)| v.iter().copied()));
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1f64)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .x_desc("stream micro-batch latency (ms, log scale)")
        .y_desc("fraction of micro-batches")
        .draw()
        .map_err(err(path))?;
    for (i, (label, v)) in series.iter().enumerate() {
        let mut v: Vec<f64> = v.iter().copied().filter(|x| *x > 0.0).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len().max(1) as f64;
        let pts: Vec<(f64, f64)> = v
            .iter()
            .enumerate()
            .map(|(k, x)| (*x, (k + 1) as f64 / n))
            .collect();
        let c = color(i);
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err(path))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// Lines of `(x, y)` per label; `log_y` puts y on a log scale.
///
/// # Errors
/// When the file cannot be written.
pub fn lines(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    series: &[(String, Vec<(f64, f64)>)],
    log_y: bool,
) -> anyhow::Result<()> {
    let xs = series.iter().flat_map(|(_, v)| v.iter().map(|p| p.0));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (x0, x1) = if x0 > x1 {
        (0.0, 1.0)
    } else if x0 == x1 {
        (x0 - 0.5, x1 + 0.5)
    } else {
        (x0, x1)
    };
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70);
    let ys = || series.iter().flat_map(|(_, v)| v.iter().map(|p| p.1));
    if log_y {
        let (lo, hi) = log_range(ys());
        let mut chart = builder
            .build_cartesian_2d(x0..x1, (lo..hi).log_scale())
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .draw()
            .map_err(err(path))?;
        draw_lines(&mut chart, series, path)?;
    } else {
        let hi = ys().fold(0f64, f64::max).max(1e-9) * 1.1;
        let mut chart = builder
            .build_cartesian_2d(x0..x1, 0f64..hi)
            .map_err(err(path))?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|v| format!("{v:.3e}"))
            .draw()
            .map_err(err(path))?;
        draw_lines(&mut chart, series, path)?;
    }
    root.present().map_err(err(path))?;
    Ok(())
}

fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[(String, Vec<(f64, f64)>)],
    path: &Path,
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (label, v)) in series.iter().enumerate() {
        let c = color(i);
        chart
            .draw_series(LineSeries::new(v.iter().copied(), c.stroke_width(2)))
            .map_err(err(path))?
            .label(label.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart
            .draw_series(v.iter().map(|p| Circle::new(*p, 2, c.filled())))
            .map_err(err(path))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    Ok(())
}

/// A bar per `(label, value)`.
///
/// # Errors
/// When the file cannot be written.
pub fn bars(path: &Path, title: &str, y_desc: &str, items: &[(String, f64)]) -> anyhow::Result<()> {
    let hi = items.iter().map(|i| i.1).fold(0f64, f64::max).max(1e-9) * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let n = items.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..hi)
        .map_err(err(path))?;
    let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_desc)
        .y_label_formatter(&|v| format!("{v:.3e}"))
        .draw()
        .map_err(err(path))?;
    chart
        .draw_series(items.iter().enumerate().map(|(i, (_, v))| {
            let c = color(i);
            Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                c.filled(),
            )
        }))
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// A stacked bar per label: `segments` are `(name, value per label)`, stacked bottom-up in
/// order, one color each.
///
/// # Errors
/// When the file cannot be written.
pub fn stacked_bars(
    path: &Path,
    title: &str,
    y_desc: &str,
    labels: &[String],
    segments: &[(String, Vec<f64>)],
) -> anyhow::Result<()> {
    let total = |i: usize| -> f64 { segments.iter().filter_map(|s| s.1.get(i)).sum() };
    let n = labels.len().max(1);
    let hi = (0..n).map(total).fold(0f64, f64::max).max(1e-9) * 1.15;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..hi)
        .map_err(err(path))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc(y_desc)
        .draw()
        .map_err(err(path))?;
    let mut base = vec![0f64; n];
    for (k, (name, values)) in segments.iter().enumerate() {
        let c = color(k);
        let bars: Vec<Rectangle<(SegmentValue<usize>, f64)>> = (0..n)
            .map(|i| {
                let v = values.get(i).copied().unwrap_or(0.0).max(0.0);
                let r = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), base[i]),
                        (SegmentValue::Exact(i + 1), base[i] + v),
                    ],
                    c.filled(),
                );
                base[i] += v;
                r
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err(path))?
            .label(name.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// Check that `path` holds an SVG document (used by tests).
///
/// # Errors
/// When it does not.
pub fn check_svg(path: &Path) -> anyhow::Result<()> {
    let s = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    anyhow::ensure!(
        s.contains("<svg") && s.trim_end().ends_with("</svg>"),
        "{} is not an SVG document",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_plot_kind_writes_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let cdf = dir.path().join("cdf.svg");
        latency_cdf(&cdf, "t", &[("a".into(), vec![1.0, 2.0, 50.0])]).unwrap();
        check_svg(&cdf).unwrap();
        let l = dir.path().join("l.svg");
        lines(
            &l,
            "t",
            ("x", "y"),
            &[("a".into(), vec![(0.0, 1.0), (1.0, 9.0)])],
            true,
        )
        .unwrap();
        check_svg(&l).unwrap();
        let b = dir.path().join("b.svg");
        bars(&b, "t", "y", &[("a".into(), 3.0), ("b".into(), 5.0)]).unwrap();
        check_svg(&b).unwrap();
        let s = dir.path().join("s.svg");
        let segments = [
            ("trigger".to_string(), vec![0.2, 0.1]),
            ("process".to_string(), vec![1.5, 1.0]),
        ];
        stacked_bars(&s, "t", "ms", &["a".into(), "b".into()], &segments).unwrap();
        check_svg(&s).unwrap();
    }
}
