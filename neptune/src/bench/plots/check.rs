//! Reading a plot back: what `plotters` drew into an SVG (texts, lines, bars, the legend), so
//! a test checks that a plot shows the series it should, not only that the file is an SVG.
//!
//! The SVG is parsed as XML (`roxmltree`); a series is recognised by its color: a legend entry
//! is a text inside the legend box with a colored mark on its row, and the data drawn in that
//! color is the series. `plotters` draws the legend after every series, so what comes after the
//! legend's border is legend and everything before it data — also a line drawn under the box. Bars without a legend are recognised by their x-axis
//! label: a bar spans the label's x.

use anyhow::{Context as _, anyhow, bail};
use std::path::Path;

/// What a plot must show. Every list names what must be there; other content is allowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Expect<'a> {
    /// Texts that must appear (title, axis descriptions, tick labels).
    pub texts: &'a [&'a str],
    /// Legend entries that must appear, whether or not their series drew anything visible.
    pub legend: &'a [&'a str],
    /// Legend entries whose color also draws a data line of two points or more.
    pub lines: &'a [&'a str],
    /// Legend entries whose color also fills a data bar (or bar segment) of non-zero height.
    pub stacks: &'a [&'a str],
    /// x-axis labels with a bar of non-zero height above them.
    pub bars: &'a [&'a str],
}

/// Check that the SVG at `path` shows everything `expect` names.
///
/// # Errors
/// When the file cannot be read or parsed, or lacks anything `expect` names (all of it is
/// listed in the error).
pub fn check(path: &Path, expect: &Expect<'_>) -> anyhow::Result<()> {
    let s = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let drawn = Drawn::parse(&s).with_context(|| format!("{} is no plot", path.display()))?;
    let missing = drawn.missing(expect);
    if !missing.is_empty() {
        bail!("{}: {}", path.display(), missing.join("; "));
    }
    Ok(())
}

/// An axis-aligned box, in SVG pixels.
#[derive(Debug, Clone, Copy)]
struct Area {
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
}

impl Area {
    fn contains(&self, x: f64, y: f64) -> bool {
        (self.x0..=self.x1).contains(&x) && (self.y0..=self.y1).contains(&y)
    }
    fn center_y(&self) -> f64 {
        (self.y0 + self.y1) / 2.0
    }
}

#[derive(Debug)]
struct Text {
    s: String,
    x: f64,
    y: f64,
}

#[derive(Debug, PartialEq)]
enum Kind {
    /// A polyline with this many points.
    Line(usize),
    /// A filled rectangle.
    Rect,
}

/// A shape drawn in a series color (not black, white or none: axes, mesh, background).
#[derive(Debug)]
struct Shape {
    color: String,
    kind: Kind,
    area: Area,
    /// Drawn after the legend's border: a legend mark. `plotters` draws the legend (background,
    /// border, marks, texts) after every series, so this tells marks from data even where a
    /// series passes under the legend box (a short line wholly inside the box is still data).
    legend: bool,
}

/// The texts and series-colored shapes of one plot, and its legend box if it has one.
#[derive(Debug)]
struct Drawn {
    texts: Vec<Text>,
    shapes: Vec<Shape>,
    legend: Option<Area>,
}

fn num(n: roxmltree::Node<'_, '_>, attr: &str) -> anyhow::Result<f64> {
    let v = n
        .attribute(attr)
        .ok_or_else(|| anyhow!("<{}> without {attr}", n.tag_name().name()))?;
    v.parse()
        .map_err(|e| anyhow!("<{}> {attr}={v:?}: {e}", n.tag_name().name()))
}

/// A color that marks a series: `plotters` draws axes and mesh black, the background white.
fn series_color(c: Option<&str>) -> Option<String> {
    let c = c?.to_ascii_uppercase();
    (c.starts_with('#') && c != "#000000" && c != "#FFFFFF").then_some(c)
}

impl Drawn {
    fn parse(svg: &str) -> anyhow::Result<Self> {
        let doc = roxmltree::Document::parse(svg)?;
        let root = doc.root_element();
        if root.tag_name().name() != "svg" {
            bail!(
                "the root element is <{}>, not <svg>",
                root.tag_name().name()
            );
        }
        let mut d = Drawn {
            texts: Vec::new(),
            shapes: Vec::new(),
            legend: None,
        };
        for n in root.descendants().filter(roxmltree::Node::is_element) {
            match n.tag_name().name() {
                "text" => d.texts.push(Text {
                    s: n.text().unwrap_or("").trim().to_string(),
                    x: num(n, "x")?,
                    y: num(n, "y")?,
                }),
                "polyline" => {
                    let mut pts = Vec::new();
                    for p in n.attribute("points").unwrap_or("").split_whitespace() {
                        let (x, y) = p.split_once(',').ok_or_else(|| anyhow!("point {p:?}"))?;
                        pts.push((x.parse::<f64>()?, y.parse::<f64>()?));
                    }
                    let Some(color) = series_color(n.attribute("stroke")) else {
                        continue;
                    };
                    let fold = |f: fn(f64, f64) -> f64, init: f64, y: bool| {
                        pts.iter().map(|p| if y { p.1 } else { p.0 }).fold(init, f)
                    };
                    d.shapes.push(Shape {
                        color,
                        legend: d.legend.is_some(),
                        kind: Kind::Line(pts.len()),
                        area: Area {
                            x0: fold(f64::min, f64::MAX, false),
                            y0: fold(f64::min, f64::MAX, true),
                            x1: fold(f64::max, f64::MIN, false),
                            y1: fold(f64::max, f64::MIN, true),
                        },
                    });
                }
                "rect" => {
                    let (x, y) = (num(n, "x")?, num(n, "y")?);
                    let area = Area {
                        x0: x,
                        y0: y,
                        x1: x + num(n, "width")?,
                        y1: y + num(n, "height")?,
                    };
                    if let Some(color) = series_color(n.attribute("fill")) {
                        d.shapes.push(Shape {
                            color,
                            kind: Kind::Rect,
                            area,
                            legend: d.legend.is_some(),
                        });
                    } else if n.attribute("fill") == Some("none") && d.legend.is_none() {
                        // The legend's border: the only unfilled rectangle `plotters` draws.
                        d.legend = Some(area);
                    }
                }
                _ => {}
            }
        }
        Ok(d)
    }

    /// The color of the legend entry `label`: the series-colored mark on the text's row.
    fn legend_color(&self, label: &str) -> Option<&str> {
        let legend = self.legend?;
        let text = self
            .texts
            .iter()
            .find(|t| t.s == label && legend.contains(t.x, t.y))?;
        // The text hangs from `y` (`dy="0.76em"`): its middle is about 5 px lower.
        let row = text.y + 5.0;
        self.shapes
            .iter()
            .filter(|s| s.legend)
            .find(|s| (s.area.center_y() - row).abs() <= 6.0)
            .map(|s| s.color.as_str())
    }

    /// Data (not legend) shapes that `keep` accepts.
    fn data(&self, keep: impl Fn(&Shape) -> bool) -> impl Iterator<Item = &Shape> {
        self.shapes.iter().filter(move |s| !s.legend && keep(s))
    }

    fn missing(&self, e: &Expect<'_>) -> Vec<String> {
        let mut out = Vec::new();
        for t in e.texts {
            if !self.texts.iter().any(|x| x.s == *t) {
                out.push(format!("no text {t:?}"));
            }
        }
        for l in e.legend {
            if self.legend_color(l).is_none() {
                out.push(format!("no legend entry {l:?}"));
            }
        }
        let tall = |s: &Shape| s.kind == Kind::Rect && s.area.y1 > s.area.y0;
        for (labels, what) in [(e.lines, "line"), (e.stacks, "bar")] {
            for l in labels {
                let Some(c) = self.legend_color(l) else {
                    out.push(format!("no legend entry {l:?}"));
                    continue;
                };
                let drawn = self
                    .data(|s| {
                        s.color == c
                            && match s.kind {
                                Kind::Line(n) => what == "line" && n >= 2,
                                Kind::Rect => what == "bar" && tall(s),
                            }
                    })
                    .next()
                    .is_some();
                if !drawn {
                    out.push(format!("legend entry {l:?} ({c}) has no {what} drawn"));
                }
            }
        }
        for l in e.bars {
            let ticks: Vec<&Text> = self.texts.iter().filter(|t| t.s == *l).collect();
            if ticks.is_empty() {
                out.push(format!("no x label {l:?}"));
            } else if !ticks.iter().any(|t| {
                self.data(tall)
                    .any(|s| (s.area.x0..=s.area.x1).contains(&t.x) && s.area.y1 <= t.y)
            }) {
                out.push(format!("no bar above {l:?}"));
            }
        }
        out
    }
}
