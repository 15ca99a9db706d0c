using System.Globalization;
using Condense.Subspace;
using OxyPlot;
using OxyPlot.Annotations;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;

namespace Condense.IntrinsicDimensionSample;

/// <summary>One curve of the figure: a sweep and its label (projection, width).</summary>
public sealed record PlotSeries(string Label, IntrinsicDimensionResult Result);

/// <summary>
/// The figure of the sample: mean test accuracy against d on a log axis, one curve per sweep, the 90%-of-baseline
/// line of each distinct baseline, and a marker at each d_int90. Fixed size, fonts and colors, and no clock or
/// machine state in the output, so the same results give the same SVG bytes.
/// </summary>
public static class IntrinsicDimensionPlot
{
    /// <summary>Width and height of the SVG in pixels.</summary>
    public const int Width = 900, Height = 560;

    // A fixed palette (Okabe-Ito, readable by color-blind readers), assigned in series order.
    private static readonly OxyColor[] Palette =
    [
        OxyColor.FromRgb(0x00, 0x72, 0xB2), OxyColor.FromRgb(0xD5, 0x5E, 0x00), OxyColor.FromRgb(0x00, 0x9E, 0x73),
        OxyColor.FromRgb(0xCC, 0x79, 0xA7), OxyColor.FromRgb(0xE6, 0x9F, 0x00), OxyColor.FromRgb(0x56, 0xB4, 0xE9),
        OxyColor.FromRgb(0x00, 0x00, 0x00),
    ];

    /// <summary>The figure as an SVG document.</summary>
    /// <param name="title">The title line, e.g. the data set and training budget.</param>
    public static string ToSvg(string title, IReadOnlyList<PlotSeries> series)
    {
        ArgumentNullException.ThrowIfNull(series);
        var previous = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;   // axis labels use the current culture
        try
        {
            var exporter = new SvgExporter { Width = Width, Height = Height, UseVerticalTextAlignmentWorkaround = true, TextMeasurer = new ArialTextMeasurer() };
            return exporter.ExportToString(Build(title, series));
        }
        finally { CultureInfo.CurrentCulture = previous; }
    }

    /// <summary>The plot model behind <see cref="ToSvg"/>.</summary>
    public static PlotModel Build(string title, IReadOnlyList<PlotSeries> series)
    {
        ArgumentNullException.ThrowIfNull(series);
        var model = new PlotModel
        {
            Title = title,
            DefaultFont = "Arial",
            DefaultFontSize = 13,
            TitleFontSize = 15,
            Background = OxyColors.White,
            PlotAreaBorderColor = OxyColors.Black,
            // Room above the title: some SVG renderers (librsvg) ignore dominant-baseline and draw text one line higher.
            Padding = new OxyThickness(8, 22, 16, 8),
        };
        model.Legends.Add(new Legend
        {
            LegendPosition = LegendPosition.RightBottom,
            LegendPlacement = LegendPlacement.Inside,
            LegendBackground = OxyColor.FromAColor(230, OxyColors.White),
            LegendBorder = OxyColors.Gray,
            LegendFontSize = 12, LegendPadding = 14,
        });
        model.Axes.Add(new LogarithmicAxis
        {
            Position = AxisPosition.Bottom,
            Title = "subspace dimension d (log scale)",
            MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = OxyColor.FromRgb(0xDD, 0xDD, 0xDD),
            MinorGridlineStyle = LineStyle.Dot, MinorGridlineColor = OxyColor.FromRgb(0xEE, 0xEE, 0xEE),
        });
        model.Axes.Add(new LinearAxis
        {
            Position = AxisPosition.Left,
            Title = "test accuracy (mean over seeds)",
            Minimum = 0, Maximum = 1, MajorStep = 0.1, MinorStep = 0.05,
            StringFormat = "0%",
            MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = OxyColor.FromRgb(0xDD, 0xDD, 0xDD),
        });

        var targetsDrawn = new List<double>();
        for (int i = 0; i < series.Count; i++)
        {
            var color = Palette[i % Palette.Length];
            var result = series[i].Result;
            var line = new LineSeries
            {
                Title = series[i].Label + (result.Dimension is int d ? $" (d_int90 = {d})" : " (90% not reached)"),
                Color = color, StrokeThickness = 2,
                MarkerType = MarkerType.Circle, MarkerSize = 3.5, MarkerFill = color,
            };
            foreach (var p in result.Curve) line.Points.Add(new DataPoint(p.Dimension, p.Mean));
            model.Series.Add(line);

            // Baselines of the same network are identical across projections: draw each distinct 90% line once, in
            // the color of its first curve, its label staggered along the line so several baselines stay readable.
            if (!targetsDrawn.Any(t => Math.Abs(t - result.Target) < 1e-9))
            {
                targetsDrawn.Add(result.Target);
                model.Annotations.Add(new LineAnnotation
                {
                    Type = LineAnnotationType.Horizontal, Y = result.Target,
                    Color = targetsDrawn.Count == 1 && series.All(s => Math.Abs(s.Result.Target - result.Target) < 1e-9) ? OxyColor.FromRgb(0x66, 0x66, 0x66) : color,
                    LineStyle = LineStyle.Dash, StrokeThickness = 1.2,
                    Text = $"90% of baseline {result.Baseline:P1} = {result.Target:P1}",
                    TextLinePosition = 0.22 * (targetsDrawn.Count - 1), TextHorizontalAlignment = HorizontalAlignment.Left,
                    FontSize = 11, TextColor = OxyColor.FromRgb(0x44, 0x44, 0x44),
                });
            }
            if (result.Dimension is int dint)
            {
                var point = result.Curve.First(p => p.Dimension == dint);
                model.Annotations.Add(new LineAnnotation
                {
                    Type = LineAnnotationType.Vertical, X = dint, MinimumY = 0, MaximumY = point.Mean,
                    Color = color, LineStyle = LineStyle.Dot, StrokeThickness = 1.2,
                });
                model.Annotations.Add(new PointAnnotation
                {
                    X = dint, Y = point.Mean, Shape = MarkerType.Diamond, Size = 8,
                    Fill = color, Stroke = OxyColors.Black, StrokeThickness = 1,
                });
            }
        }
        return model;
    }
}

/// <summary>
/// Measures text with Arial/Helvetica advance widths (per mille of the font size). OxyPlot's default measurer for
/// SVG underestimates widths, so legend labels were clipped; this one is deterministic and errs slightly wide.
/// It only measures: the exporter draws.
/// </summary>
internal sealed class ArialTextMeasurer : RenderContextBase
{
    /// <summary>The width of one character in 1/1000 of the font size (Arial metrics, rounded up).</summary>
    private static int Advance(char c) => c switch
    {
        'i' or 'j' or 'l' or '\'' or '|' => 230,
        'f' or 't' or 'I' or ' ' or '.' or ',' or ':' or ';' or '!' or '/' => 280,
        'r' or '(' or ')' or '-' or '[' or ']' => 340,
        'm' or 'M' => 840,
        'w' or 'W' or '%' => 900,
        >= '0' and <= '9' => 560,
        >= 'a' and <= 'z' => 560,
        >= 'A' and <= 'Z' => 700,
        _ => 600,
    };

    public override OxySize MeasureText(string text, string fontFamily = null!, double fontSize = 10, double fontWeight = 500)
    {
        if (string.IsNullOrEmpty(text)) return OxySize.Empty;
        var lines = text.Split('\n');
        double width = lines.Max(l => l.Sum(Advance)) * fontSize / 1000.0;
        return new OxySize(width, lines.Length * fontSize * 1.15);
    }

    public override void DrawText(ScreenPoint p, string text, OxyColor fill, string fontFamily = null!, double fontSize = 10, double fontWeight = 500,
        double rotation = 0, HorizontalAlignment halign = HorizontalAlignment.Left, VerticalAlignment valign = VerticalAlignment.Top, OxySize? maxSize = null) { }

    public override int ClipCount => 0;

    public override void DrawLine(IList<ScreenPoint> points, OxyColor stroke, double thickness, EdgeRenderingMode edgeRenderingMode, double[]? dashArray = null, LineJoin lineJoin = LineJoin.Miter) { }

    public override void DrawPolygon(IList<ScreenPoint> points, OxyColor fill, OxyColor stroke, double thickness, EdgeRenderingMode edgeRenderingMode, double[]? dashArray = null, LineJoin lineJoin = LineJoin.Miter) { }

    public override void PushClip(OxyRect clippingRectangle) { }

    public override void PopClip() { }
}
