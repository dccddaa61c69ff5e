//! SVG plots of bench results with `plotters`: stream latency CDF per policy, stream latency over
//! time, a bar chart (batch throughput per policy), a stacked bar chart (latency by hop per
//! policy) and sweep lines.

pub mod check;

use anyhow::anyhow;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::{RangedCoordf64, RangedCoordusize};
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
    let root = canvas(path)?;
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
    let root = canvas(path)?;
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

/// A bar per `(label, value)`, each its own color, named below it.
///
/// # Errors
/// When the file cannot be written.
pub fn bars(path: &Path, title: &str, y_desc: &str, items: &[(String, f64)]) -> anyhow::Result<()> {
    let hi = items.iter().map(|i| i.1).fold(0f64, f64::max);
    let names: Vec<String> = items.iter().map(|i| i.0.clone()).collect();
    let root = canvas(path)?;
    let sci = |v: &f64| format!("{v:.3e}");
    let mut chart = bar_chart(&root, path, (title, y_desc), &names, hi, Some(&sci))?;
    chart
        .draw_series(
            items
                .iter()
                .enumerate()
                .map(|(i, (_, v))| bar(i, 0.0, *v, color(i))),
        )
        .map_err(err(path))?;
    root.present().map_err(err(path))?;
    Ok(())
}

/// A stacked bar per label: `segments` are `(name, value per label)`, stacked bottom-up in
/// order, one color and one legend entry each.
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
    let hi = (0..n).map(total).fold(0f64, f64::max);
    let root = canvas(path)?;
    let mut chart = bar_chart(&root, path, (title, y_desc), labels, hi, None)?;
    let mut base = vec![0f64; n];
    for (k, (name, values)) in segments.iter().enumerate() {
        let c = color(k);
        let stack: Vec<_> = (0..n)
            .map(|i| {
                let v = values.get(i).copied().unwrap_or(0.0).max(0.0);
                let r = bar(i, base[i], base[i] + v, c);
                base[i] += v;
                r
            })
            .collect();
        chart
            .draw_series(stack)
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

/// A white canvas of [`SIZE`] writing to `path`.
fn canvas(path: &Path) -> anyhow::Result<DrawingArea<SVGBackend<'_>, Shift>> {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    Ok(root)
}

/// The coordinates of both bar plots: one x segment per label, y from 0.
type BarCoord = Cartesian2d<SegmentedCoord<RangedCoordusize>, RangedCoordf64>;

/// The chart both bar plots draw on: a segment per label (named below it), y from 0 to 15 %
/// above `hi`, the mesh drawn; `y_fmt` formats the y labels (plotters' default without).
fn bar_chart<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    path: &Path,
    (title, y_desc): (&str, &str),
    labels: &[String],
    hi: f64,
    y_fmt: Option<&dyn Fn(&f64) -> String>,
) -> anyhow::Result<ChartContext<'a, SVGBackend<'b>, BarCoord>> {
    let n = labels.len().max(1);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..hi.max(1e-9) * 1.15)
        .map_err(err(path))?;
    let name = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh()
        .x_labels(n)
        .x_label_formatter(&name)
        .y_desc(y_desc);
    if let Some(f) = y_fmt {
        mesh.y_label_formatter(f);
    }
    mesh.draw().map_err(err(path))?;
    Ok(chart)
}

/// The filled rectangle of segment `i` from `y0` to `y1`.
fn bar(i: usize, y0: f64, y1: f64, c: RGBColor) -> Rectangle<(SegmentValue<usize>, f64)> {
    Rectangle::new(
        [
            (SegmentValue::Exact(i), y0),
            (SegmentValue::Exact(i + 1), y1),
        ],
        c.filled(),
    )
}

#[cfg(test)]
mod tests {
    use super::check::{Expect, check};
    use super::*;

    fn seg(name: &str, v: &[f64]) -> (String, Vec<f64>) {
        (name.to_string(), v.to_vec())
    }

    #[test]
    fn the_cdf_draws_a_line_per_series_and_the_check_sees_one_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cdf.svg");
        let e = Expect {
            texts: &["t", "fraction of micro-batches"],
            lines: &["a", "b"],
            ..Expect::default()
        };
        let a = ("a".to_string(), vec![1.0, 2.0, 50.0]);
        latency_cdf(&p, "t", &[a.clone(), ("b".into(), vec![3.0, 4.0])]).unwrap();
        check(&p, &e).unwrap();
        // `b` in the legend but without latencies: no line of its color.
        latency_cdf(&p, "t", &[a.clone(), ("b".into(), vec![])]).unwrap();
        let msg = check(&p, &e).unwrap_err().to_string();
        assert!(msg.contains("\"b\"") && msg.contains("no line"), "{msg}");
        // `b` not drawn at all.
        latency_cdf(&p, "t", &[a]).unwrap();
        let msg = check(&p, &e).unwrap_err().to_string();
        assert!(msg.contains("no legend entry \"b\""), "{msg}");
    }

    #[test]
    fn lines_draw_a_line_per_series_and_the_check_sees_one_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.svg");
        let e = Expect {
            texts: &["t", "x", "y"],
            lines: &["a", "b"],
            ..Expect::default()
        };
        let a = ("a".to_string(), vec![(0.0, 1.0), (1.0, 9.0)]);
        for log_y in [true, false] {
            let b = ("b".to_string(), vec![(0.0, 2.0), (1.0, 3.0), (2.0, 4.0)]);
            lines(&p, "t", ("x", "y"), &[a.clone(), b], log_y).unwrap();
            check(&p, &e).unwrap();
            lines(
                &p,
                "t",
                ("x", "y"),
                &[a.clone(), ("b".into(), vec![])],
                log_y,
            )
            .unwrap();
            let msg = check(&p, &e).unwrap_err().to_string();
            assert!(msg.contains("\"b\"") && msg.contains("no line"), "{msg}");
        }
        // The axis descriptions are checked too.
        lines(&p, "t", ("x", "other"), &[a], true).unwrap();
        let msg = check(&p, &Expect { lines: &["a"], ..e })
            .unwrap_err()
            .to_string();
        assert!(msg.contains("no text \"y\""), "{msg}");
    }

    #[test]
    fn a_series_drawn_under_the_legend_box_is_data_not_a_legend_mark() {
        // `b` is a short line in the top-right corner, where the legend box is drawn over it: a
        // check that took every shape inside the box for a legend mark saw no line of `b`'s
        // color and gave another entry `b`'s color when the line sat on its row.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("under.svg");
        let e = Expect {
            lines: &["a", "b", "c"],
            ..Expect::default()
        };
        let a = ("a".to_string(), vec![(0.0, 1.0), (100.0, 1.0)]);
        let c = ("c".to_string(), vec![(0.0, 2.0), (100.0, 2.0)]);
        for y in [1_000.0, 1_100.0, 1_300.0, 1_600.0, 2_000.0] {
            let b = ("b".to_string(), vec![(97.0, y), (99.0, y)]);
            lines(&p, "t", ("x", "y"), &[a.clone(), b, c.clone()], true).unwrap();
            check(&p, &e).unwrap_or_else(|err| panic!("b at {y}: {err:#}"));
        }
    }

    #[test]
    fn bars_draw_a_bar_per_label_and_the_check_sees_one_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.svg");
        let e = Expect {
            texts: &["t", "y"],
            bars: &["a", "b", "c"],
            ..Expect::default()
        };
        let items = |b: f64| [("a".into(), 3.0), ("b".into(), b), ("c".into(), 5.0)];
        bars(&p, "t", "y", &items(4.0)).unwrap();
        check(&p, &e).unwrap();
        // `b` named below the axis but with nothing above it.
        bars(&p, "t", "y", &items(0.0)).unwrap();
        let msg = check(&p, &e).unwrap_err().to_string();
        assert_eq!(msg.matches("no bar above").count(), 1, "{msg}");
        assert!(msg.contains("no bar above \"b\""), "{msg}");
    }

    #[test]
    fn stacked_bars_draw_every_hop_and_the_check_sees_one_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.svg");
        let labels = ["a".to_string(), "b".to_string()];
        let e = Expect {
            texts: &["t", "ms"],
            legend: &["trigger", "process", "commit"],
            stacks: &["trigger", "process", "commit"],
            bars: &["a", "b"],
            ..Expect::default()
        };
        let trigger = seg("trigger", &[0.2, 0.1]);
        let process = seg("process", &[1.5, 1.0]);
        let segments = [trigger.clone(), process.clone(), seg("commit", &[0.3, 0.4])];
        stacked_bars(&p, "t", "ms", &labels, &segments).unwrap();
        check(&p, &e).unwrap();
        // `commit` in the legend but zero everywhere: no segment of its color.
        let segments = [trigger.clone(), process.clone(), seg("commit", &[0.0, 0.0])];
        stacked_bars(&p, "t", "ms", &labels, &segments).unwrap();
        let msg = check(&p, &e).unwrap_err().to_string();
        assert!(
            msg.contains("\"commit\"") && msg.contains("no bar"),
            "{msg}"
        );
        // `commit` left out of the legend.
        stacked_bars(&p, "t", "ms", &labels, &[trigger, process]).unwrap();
        let msg = check(&p, &e).unwrap_err().to_string();
        assert!(msg.contains("no legend entry \"commit\""), "{msg}");
        // A configuration with an empty stack.
        let segments = [seg("trigger", &[0.2, 0.0]), seg("process", &[1.5, 0.0])];
        stacked_bars(&p, "t", "ms", &labels, &segments).unwrap();
        let e = Expect {
            stacks: &["trigger", "process"],
            ..e
        };
        let msg = check(&p, &e).unwrap_err().to_string();
        assert!(msg.contains("no bar above \"b\""), "{msg}");
    }

    #[test]
    fn a_file_that_is_not_a_plot_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.svg");
        std::fs::write(&p, "<svg><text x=\"1\" y=\"2\">t</text>").unwrap();
        assert!(check(&p, &Expect::default()).is_err(), "truncated");
        std::fs::write(&p, "<html></html>").unwrap();
        assert!(check(&p, &Expect::default()).is_err(), "not svg");
        assert!(check(&dir.path().join("none.svg"), &Expect::default()).is_err());
    }
}
