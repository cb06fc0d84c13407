//! Heatmaps: one matrix as a grid of coloured cells (an attention pattern, a block of embeddings),
//! or a grid of such panels sharing one colour scale (every head of every layer).

use super::axes::{Categories, Side};
use super::color::{ColorMap, ColorScale};
use super::svg::{no_data, token_label, truncate, Anchor, Svg, Text};
use crate::error::{Error, Result};

/// A `rows × cols` block of values stored row-major; NaN marks a masked cell.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    rows: usize,
    cols: usize,
    values: &'a [f32],
}

impl<'a> Matrix<'a> {
    /// Checks that `values` holds exactly `rows × cols` numbers.
    pub fn new(rows: usize, cols: usize, values: &'a [f32]) -> Result<Self> {
        if values.len() != rows * cols {
            return Err(Error::shape(
                "plot matrix",
                format!(
                    "{rows} x {cols} needs {} values, got {}",
                    rows * cols,
                    values.len()
                ),
            ));
        }
        Ok(Matrix { rows, cols, values })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// What a heatmap shows and how it is labelled.
#[derive(Clone, Debug, Default)]
pub struct HeatmapOptions {
    pub title: String,
    /// What the rows stand for, e.g. "query position"; written up the left side.
    pub row_axis: String,
    /// What the columns stand for, e.g. "key position"; written below.
    pub col_axis: String,
    /// One token per row, or empty for none. Whitespace is drawn visibly (␣ ↵ ⇥).
    pub row_labels: Vec<String>,
    /// One token per column, or empty for none.
    pub col_labels: Vec<String>,
    pub colors: ColorScale,
}

/// A heatmap grid: the options every panel shares, and how many panels go in a row.
#[derive(Clone, Debug)]
pub struct HeatmapGridOptions {
    /// Title, axis names, shared token labels (drawn on the outer panels only) and the colour scale,
    /// which is fitted once over all panels so that equal colours mean equal values.
    pub heatmap: HeatmapOptions,
    /// Panels per row, e.g. the number of heads, so that each row of the grid is one layer.
    pub columns: usize,
}

impl Default for HeatmapGridOptions {
    fn default() -> Self {
        HeatmapGridOptions {
            heatmap: HeatmapOptions::default(),
            columns: 4,
        }
    }
}

/// One matrix as a heatmap: row `r`, column `c` is the cell at row `r` from the top, column `c` from
/// the left, coloured by `options.colors` with a colour bar stating the scale; NaN cells are grey.
/// Fails if the label lists are neither empty nor one per row/column.
pub fn heatmap(matrix: &Matrix, options: &HeatmapOptions) -> Result<String> {
    layout(
        &[(String::new(), *matrix)],
        options,
        1,
        (PANEL_SIDE, PANEL_SIDE),
    )
}

/// Small multiples: each `(title, matrix)` panel drawn as by [`heatmap`], laid out left to right in
/// rows of `options.columns`, all on one colour scale. Panels must share a shape.
pub fn heatmap_grid<S: AsRef<str>>(
    panels: &[(S, Matrix)],
    options: &HeatmapGridOptions,
) -> Result<String> {
    let panels: Vec<(String, Matrix)> = panels
        .iter()
        .map(|(title, m)| (title.as_ref().to_string(), *m))
        .collect();
    let columns = options.columns.clamp(1, panels.len().max(1));
    let grid_rows = panels.len().div_ceil(columns).max(1);
    // The whole grid gets about as much room as two single heatmaps side by side.
    let budget = (
        (GRID_BUDGET / columns as f64).min(PANEL_SIDE),
        (GRID_BUDGET / grid_rows as f64).min(PANEL_SIDE),
    );
    layout(&panels, &options.heatmap, columns, budget)
}

/// Most room for one panel's cells in px, across and down.
const PANEL_SIDE: f64 = 640.0;
const GRID_BUDGET: f64 = 1500.0;
/// Largest cell side, so a 3 × 3 matrix does not fill the page.
const MAX_PITCH: f64 = 36.0;
const GAP: f64 = 14.0;
const TITLE_FONT: f64 = 16.0;
const PANEL_TITLE_FONT: f64 = 11.0;
const AXIS_FONT: f64 = 12.0;
const LABEL_CHARS: usize = 16;

fn layout(
    panels: &[(String, Matrix)],
    options: &HeatmapOptions,
    columns: usize,
    (budget_w, budget_h): (f64, f64),
) -> Result<String> {
    let Some((_, first)) = panels.first() else {
        return Ok(no_data(&options.title));
    };
    let (rows, cols) = (first.rows, first.cols);
    if let Some((title, m)) = panels
        .iter()
        .find(|(_, m)| (m.rows, m.cols) != (rows, cols))
    {
        return Err(Error::shape(
            "heatmap grid",
            format!(
                "panel \"{title}\" is {} x {}, the first is {rows} x {cols}; panels must share a shape",
                m.rows, m.cols
            ),
        ));
    }
    check_labels("row", &options.row_labels, rows)?;
    check_labels("column", &options.col_labels, cols)?;
    if rows == 0 || cols == 0 {
        return Ok(no_data(&options.title));
    }

    let pitch_x = (budget_w / cols as f64).clamp(1.0, MAX_PITCH);
    let pitch_y = (budget_h / rows as f64).clamp(1.0, MAX_PITCH);
    let tokens = |labels: &[String]| labels.iter().map(|l| token_label(l, LABEL_CHARS)).collect();
    let row_labels = Categories::new(tokens(&options.row_labels), Side::Left, pitch_y);
    let col_labels = Categories::new(tokens(&options.col_labels), Side::Bottom, pitch_x);
    let values = panels.iter().flat_map(|(_, m)| m.values.iter().copied());
    let colors = ColorMap::fit(options.colors, values);
    let masked = panels
        .iter()
        .any(|(_, m)| m.values.iter().any(|v| v.is_nan()));

    let grid_rows = panels.len().div_ceil(columns);
    let (panel_w, panel_h) = (cols as f64 * pitch_x, rows as f64 * pitch_y);
    let titled = panels.iter().any(|(title, _)| !title.is_empty());
    let panel_title_h = if titled { PANEL_TITLE_FONT + 6.0 } else { 0.0 };
    let axis_name_room = |name: &str| {
        if name.is_empty() {
            0.0
        } else {
            AXIS_FONT + 10.0
        }
    };

    let left = 12.0 + axis_name_room(&options.row_axis) + row_labels.extent();
    let top = 44.0;
    let grid_w = columns as f64 * (panel_w + GAP) - GAP;
    let grid_h = grid_rows as f64 * (panel_h + panel_title_h + GAP) - GAP;
    let bar_x = left + grid_w + 20.0;
    let width = (bar_x + colors.bar_width(10.0) + 40.0).max(320.0);
    let bar_h = grid_h.clamp(120.0, 400.0);
    let below = col_labels.extent() + axis_name_room(&options.col_axis);
    let height = top + grid_h.max(bar_h + 40.0) + below + 12.0;

    let mut svg = Svg::new(width, height);
    let title_style = Text::new(Anchor::Middle, TITLE_FONT).bold();
    svg.text(width / 2.0, 28.0, &options.title, title_style);
    for (index, (title, m)) in panels.iter().enumerate() {
        let (grid_r, grid_c) = (index / columns, index % columns);
        let x0 = left + grid_c as f64 * (panel_w + GAP);
        let y0 = top + grid_r as f64 * (panel_h + panel_title_h + GAP) + panel_title_h;
        draw_cells(&mut svg, m, &colors, (x0, y0), (pitch_x, pitch_y));
        if titled {
            let max_chars = (panel_w / (PANEL_TITLE_FONT * 0.6)).max(4.0) as usize;
            let style = Text::new(Anchor::Middle, PANEL_TITLE_FONT);
            let label = truncate(title, max_chars);
            svg.text(x0 + panel_w / 2.0, y0 - 5.0, &label, style);
        }
        if grid_c == 0 {
            row_labels.draw(&mut svg, y0, x0);
        }
        if index + columns >= panels.len() {
            col_labels.draw(&mut svg, x0, y0 + panel_h);
        }
    }

    let name_style = Text::new(Anchor::Middle, AXIS_FONT);
    let rows_mid = top + grid_h / 2.0;
    svg.text(16.0, rows_mid, &options.row_axis, name_style.rotated(-90.0));
    let name_y = top + grid_h + col_labels.extent() + AXIS_FONT + 6.0;
    svg.text(left + grid_w / 2.0, name_y, &options.col_axis, name_style);
    colors.draw_bar(&mut svg, (bar_x, top), bar_h, masked);
    Ok(svg.finish())
}

/// The cells of `m` with their top-left corner at `origin`, each `pitch` px. Neighbours in a row with
/// the same colour (the masked half of causal attention, runs of near-zero weights) share one
/// rectangle.
fn draw_cells(svg: &mut Svg, m: &Matrix, colors: &ColorMap, origin: (f64, f64), pitch: (f64, f64)) {
    svg.open_group(&format!(
        "class=\"cells\" transform=\"translate({:.2} {:.2}) scale({:.4} {:.4})\" shape-rendering=\"crispEdges\"",
        origin.0, origin.1, pitch.0, pitch.1
    ));
    for (r, row) in m.values.chunks(m.cols).enumerate() {
        let fills: Vec<String> = row.iter().map(|&v| colors.color(v)).collect();
        let mut c = 0;
        while c < m.cols {
            let run = fills[c..].iter().take_while(|f| **f == fills[c]).count();
            let class = row[c].is_nan().then_some("masked");
            svg.cell_run((c, r), run, &fills[c], class);
            c += run;
        }
    }
    svg.close_group();
}

fn check_labels(what: &str, labels: &[String], count: usize) -> Result<()> {
    if labels.is_empty() || labels.len() == count {
        return Ok(());
    }
    Err(Error::shape(
        "heatmap labels",
        format!(
            "{} {what} labels for {count} {what}s; give one per {what} or none",
            labels.len()
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::svg::assert_well_formed;

    /// (width in cells, fill, masked) of every rectangle inside the heatmap's cell groups.
    fn cell_runs(svg: &str) -> Vec<(usize, String, bool)> {
        let attribute = |line: &str, name: &str| {
            let start = line.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
            line[start..].split('"').next().unwrap().to_string()
        };
        let mut inside = false;
        let mut runs = Vec::new();
        for line in svg.lines() {
            if line.starts_with("<g class=\"cells\"") {
                inside = true;
            } else if line == "</g>" {
                inside = false;
            } else if inside {
                let width = attribute(line, "width").parse().unwrap();
                runs.push((
                    width,
                    attribute(line, "fill"),
                    line.contains("class=\"masked\""),
                ));
            }
        }
        runs
    }

    /// How many cells the runs cover, and how many of them are masked.
    fn count_cells(svg: &str) -> (usize, usize) {
        let runs = cell_runs(svg);
        let masked = runs.iter().filter(|r| r.2).map(|r| r.0).sum();
        (runs.iter().map(|r| r.0).sum(), masked)
    }

    fn causal(t: usize) -> Vec<f32> {
        let mut values = vec![f32::NAN; t * t];
        for r in 0..t {
            for c in 0..=r {
                values[r * t + c] = 1.0 / (r + 1) as f32;
            }
        }
        values
    }

    #[test]
    fn draws_one_cell_per_value_and_greys_the_causal_mask() {
        let values = causal(5);
        let labels: Vec<String> = ["<|endoftext|>", " the", "\n", "&", "\"q\""]
            .map(String::from)
            .to_vec();
        let options = HeatmapOptions {
            title: "layer 0 head 1".into(),
            row_labels: labels.clone(),
            col_labels: labels,
            colors: ColorScale::probabilities(),
            ..Default::default()
        };
        let svg = heatmap(&Matrix::new(5, 5, &values).unwrap(), &options).unwrap();
        assert_well_formed(&svg);
        assert_eq!(count_cells(&svg), (25, 10));
        assert!(svg.contains("&lt;|endoftext|&gt;") && svg.contains("␣the"));
        assert!(svg.contains(">↵<") && svg.contains(">&amp;<") && svg.contains("&quot;q&quot;"));
        assert!(svg.contains(">masked<"));
    }

    #[test]
    fn a_grid_shares_one_scale_and_labels_only_the_outer_panels() {
        let (a, b) = (vec![0.0f32; 6], vec![4.0f32; 6]);
        let panels: Vec<(String, Matrix)> = (0..4)
            .map(|i| {
                let values = if i == 3 { &b } else { &a };
                (
                    format!("layer {} head {}", i / 2, i % 2),
                    Matrix::new(2, 3, values).unwrap(),
                )
            })
            .collect();
        let options = HeatmapGridOptions {
            heatmap: HeatmapOptions {
                row_labels: vec!["ROW0".into(), "ROW1".into()],
                col_labels: vec!["COLA".into(), "COLB".into(), "COLC".into()],
                ..Default::default()
            },
            columns: 2,
        };
        let svg = heatmap_grid(&panels, &options).unwrap();
        assert_well_formed(&svg);
        assert_eq!(count_cells(&svg), (24, 0));
        assert!(svg.contains("layer 1 head 1"));
        // The zeros of one panel and the fours of another sit at opposite ends of the shared scale.
        let cells_of = |fill: &str| -> usize {
            let runs = cell_runs(&svg).into_iter().filter(|r| r.1 == fill);
            runs.map(|r| r.0).sum()
        };
        assert_eq!((cells_of("#440154"), cells_of("#fde725")), (18, 6));
        assert_eq!(svg.matches(">ROW0<").count(), 2, "left column only");
        assert_eq!(svg.matches(">COLA<").count(), 2, "bottom row only");
    }

    #[test]
    fn constant_empty_and_mismatched_inputs_are_handled() {
        let constant = [0.5f32; 4];
        let svg = heatmap(&Matrix::new(2, 2, &constant).unwrap(), &Default::default()).unwrap();
        assert_well_formed(&svg);
        let empty = heatmap(&Matrix::new(0, 3, &[]).unwrap(), &Default::default()).unwrap();
        assert!(empty.contains("no data"));
        assert!(Matrix::new(2, 2, &constant[..3]).is_err());
        let options = HeatmapOptions {
            row_labels: vec!["a".into()],
            ..Default::default()
        };
        let m = Matrix::new(2, 2, &constant).unwrap();
        assert!(heatmap(&m, &options).is_err());
        let other = Matrix::new(1, 4, &constant).unwrap();
        let grid = heatmap_grid(&[("a", m), ("b", other)], &Default::default());
        assert!(grid.is_err());
        let none: [(&str, Matrix); 0] = [];
        let svg = heatmap_grid(&none, &Default::default()).unwrap();
        assert!(svg.contains("no data"));
    }
}
