using System.Globalization;
using OxyPlot;
using OxyPlot.Annotations;
using OxyPlot.Axes;
using OxyPlot.Legends;
using OxyPlot.Series;

namespace Condense.MixedPrecisionSample;

/// <summary>
/// The figure of the sample: test accuracy against exact bytes for every plan tried for the first seed (uniform widths,
/// the Hessian allocation at several budgets, random allocations at the uniform 3-bit bytes and at any size), the Pareto
/// front over all of them, and the uniform 3-bit bytes as a vertical line. Fixed size, fonts and colors: the same
/// results give the same SVG bytes.
/// </summary>
internal static class ParetoPlot
{
    public const int Width = 900, Height = 580;

    private static readonly OxyColor Blue = OxyColor.FromRgb(0x00, 0x72, 0xB2), Orange = OxyColor.FromRgb(0xD5, 0x5E, 0x00),
        Gray = OxyColor.FromRgb(0xAA, 0xAA, 0xAA), Green = OxyColor.FromRgb(0x00, 0x9E, 0x73);

    public static string ToSvg(string title, IReadOnlyList<PlanResult> results)
    {
        var previous = CultureInfo.CurrentCulture;
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;   // axis labels use the current culture
        try
        {
            var exporter = new SvgExporter { Width = Width, Height = Height, UseVerticalTextAlignmentWorkaround = true, TextMeasurer = new WidthMeasurer() };
            return exporter.ExportToString(Build(title, results));
        }
        finally { CultureInfo.CurrentCulture = previous; }
    }

    private static PlotModel Build(string title, IReadOnlyList<PlanResult> all)
    {
        ulong seed = all[0].Seed;
        var results = all.Where(r => r.Seed == seed).ToList();
        var model = new PlotModel
        {
            Title = title,
            DefaultFont = "Arial", DefaultFontSize = 13, TitleFontSize = 15,
            Background = OxyColors.White, PlotAreaBorderColor = OxyColors.Black,
            Padding = new OxyThickness(8, 22, 16, 8),
        };
        model.Legends.Add(new Legend
        {
            LegendPosition = LegendPosition.RightBottom, LegendPlacement = LegendPlacement.Inside,
            LegendBackground = OxyColor.FromAColor(235, OxyColors.White), LegendBorder = OxyColors.Gray,
            LegendFontSize = 12, LegendPadding = 10,
        });
        model.Axes.Add(new LinearAxis
        {
            Position = AxisPosition.Bottom, Title = "compressed model, exact bytes (KiB; weights, scales and biases)",
            MinimumPadding = 0.03, MaximumPadding = 0.06,
            MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = OxyColor.FromRgb(0xDD, 0xDD, 0xDD),
        });
        double lowest = results.Min(r => r.Accuracy), highest = results.Max(r => r.Accuracy);
        model.Axes.Add(new LinearAxis
        {
            Position = AxisPosition.Left, Title = "test accuracy", StringFormat = "0%",
            Minimum = Math.Max(0, lowest - 0.02), Maximum = Math.Min(1, highest + 0.01),
            MajorGridlineStyle = LineStyle.Solid, MajorGridlineColor = OxyColor.FromRgb(0xDD, 0xDD, 0xDD),
        });

        ScatterSeries Points(string label, string kind, MarkerType marker, OxyColor color, double size)
        {
            var s = new ScatterSeries { Title = label, MarkerType = marker, MarkerSize = size, MarkerFill = color, MarkerStroke = OxyColors.Black, MarkerStrokeThickness = 0.4 };
            foreach (var r in results.Where(r => r.Kind == kind).OrderBy(r => r.Bytes)) s.Points.Add(new ScatterPoint(r.Bytes / 1024.0, r.Accuracy));
            return s;
        }
        model.Series.Add(Points("random allocation, any size", "random (any size)", MarkerType.Circle, Gray, 3.5));
        model.Series.Add(Points("random allocation at the uniform 3-bit bytes", "random", MarkerType.Circle, Orange, 4));
        model.Series.Add(Points("random allocation at the 2.5-bit bytes", "random (lower budget)", MarkerType.Triangle, OxyColor.FromRgb(0xCC, 0x79, 0xA7), 4));

        // The Pareto front: plans no other plan beats on both bytes and accuracy.
        var front = new LineSeries { Title = "Pareto front of all plans", Color = Green, StrokeThickness = 1.5, LineStyle = LineStyle.Dash };
        double best = double.NegativeInfinity;
        foreach (var r in results.OrderBy(r => r.Bytes).ThenByDescending(r => r.Accuracy))
            if (r.Accuracy > best)
            {
                front.Points.Add(new DataPoint(r.Bytes / 1024.0, r.Accuracy));
                best = r.Accuracy;
            }
        model.Series.Add(front);

        var hessian = new LineSeries
        {
            Title = "Hessian trace + knapsack (HAWQ-V2), several budgets", Color = Blue, StrokeThickness = 2,
            MarkerType = MarkerType.Diamond, MarkerSize = 5, MarkerFill = Blue,
        };
        foreach (var r in results.Where(r => r.Kind == "hessian").DistinctBy(r => r.Bits).OrderBy(r => r.Bytes)) hessian.Points.Add(new DataPoint(r.Bytes / 1024.0, r.Accuracy));
        model.Series.Add(hessian);

        // The measured sensitivity (each layer alone at each format, KL to the float32 outputs) + the same knapsack.
        var measured = new LineSeries
        {
            Title = "measured KL per layer + knapsack, several budgets", Color = OxyColor.FromRgb(0xB2, 0x22, 0x22), StrokeThickness = 2,
            MarkerType = MarkerType.Triangle, MarkerSize = 5, MarkerFill = OxyColor.FromRgb(0xB2, 0x22, 0x22),
        };
        foreach (var r in results.Where(r => r.Kind == "measured").DistinctBy(r => r.Bits).OrderBy(r => r.Bytes)) measured.Points.Add(new DataPoint(r.Bytes / 1024.0, r.Accuracy));
        if (measured.Points.Count > 0) model.Series.Add(measured);

        // The direction-aware second-order term 1/2 dW^T H dW + the same knapsack.
        var quadratic = new LineSeries
        {
            Title = "Hessian quadratic form 1/2 dW^T H dW + knapsack, several budgets", Color = OxyColor.FromRgb(0x6A, 0x3D, 0x9A), StrokeThickness = 2,
            MarkerType = MarkerType.Circle, MarkerSize = 4, MarkerFill = OxyColor.FromRgb(0x6A, 0x3D, 0x9A),
        };
        foreach (var r in results.Where(r => r.Kind == "quadratic").DistinctBy(r => r.Bits).OrderBy(r => r.Bytes)) quadratic.Points.Add(new DataPoint(r.Bytes / 1024.0, r.Accuracy));
        if (quadratic.Points.Count > 0) model.Series.Add(quadratic);

        var uniform = Points("uniform bits (2, 3, 4, 8)", "uniform", MarkerType.Square, OxyColors.Black, 5);
        model.Series.Add(uniform);
        foreach (var r in results.Where(r => r.Kind == "uniform"))
            model.Annotations.Add(new TextAnnotation
            {
                Text = "int" + r.Bits.Split('/')[0], TextPosition = new DataPoint(r.Bytes / 1024.0, r.Accuracy),
                TextHorizontalAlignment = HorizontalAlignment.Left, TextVerticalAlignment = VerticalAlignment.Top,
                Offset = new ScreenVector(6, 4), FontSize = 11, Stroke = OxyColors.Transparent,
            });
        var three = results.First(r => r.Kind == "uniform" && r.Bits.StartsWith("3/", StringComparison.Ordinal));
        model.Annotations.Add(new LineAnnotation
        {
            Type = LineAnnotationType.Vertical, X = three.Bytes / 1024.0, Color = OxyColor.FromRgb(0x66, 0x66, 0x66),
            LineStyle = LineStyle.Dot, StrokeThickness = 1.2, Text = "uniform 3-bit bytes", FontSize = 11,
            TextColor = OxyColor.FromRgb(0x44, 0x44, 0x44), TextOrientation = AnnotationTextOrientation.Vertical,
        });
        return model;
    }
}

/// <summary>
/// Measures text as Arial-like advance widths (0.56 of the font size per character, wider for capitals and a few
/// wide letters) so legend boxes fit their labels; OxyPlot's default SVG measurer underestimates. It only measures.
/// </summary>
internal sealed class WidthMeasurer : RenderContextBase
{
    public override OxySize MeasureText(string text, string fontFamily = null!, double fontSize = 10, double fontWeight = 500)
    {
        if (string.IsNullOrEmpty(text)) return OxySize.Empty;
        var lines = text.Split('\n');
        double Width(string line) => line.Sum(c => c is 'm' or 'w' or 'M' or 'W' or '%' ? 0.88 : char.IsUpper(c) ? 0.70 : c is 'i' or 'l' or 'j' or '.' or ',' or ' ' or '(' or ')' or 't' or 'f' or 'r' ? 0.32 : 0.56);
        return new OxySize(lines.Max(Width) * fontSize, lines.Length * fontSize * 1.15);
    }

    public override void DrawText(ScreenPoint p, string text, OxyColor fill, string fontFamily = null!, double fontSize = 10, double fontWeight = 500,
        double rotation = 0, HorizontalAlignment halign = HorizontalAlignment.Left, VerticalAlignment valign = VerticalAlignment.Top, OxySize? maxSize = null) { }

    public override int ClipCount => 0;

    public override void DrawLine(IList<ScreenPoint> points, OxyColor stroke, double thickness, EdgeRenderingMode edgeRenderingMode, double[]? dashArray = null, LineJoin lineJoin = LineJoin.Miter) { }

    public override void DrawPolygon(IList<ScreenPoint> points, OxyColor fill, OxyColor stroke, double thickness, EdgeRenderingMode edgeRenderingMode, double[]? dashArray = null, LineJoin lineJoin = LineJoin.Miter) { }

    public override void PushClip(OxyRect clippingRectangle) { }

    public override void PopClip() { }
}
