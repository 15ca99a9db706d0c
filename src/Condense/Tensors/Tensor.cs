using System.Globalization;

namespace Condense;

/// <summary>A contiguous, row-major float32 tensor with an optional autograd tape.</summary>
/// <remarks>
/// An op whose inputs require gradients (outside <see cref="NoGrad"/>) records its parents and a backward
/// closure on its output; <see cref="Backward"/> walks that tape in reverse topological order.
/// </remarks>
public sealed partial class Tensor
{
    [ThreadStatic] private static int t_noGradDepth;

    /// <summary>Wraps <paramref name="data"/> (not copied) as a tensor of <paramref name="shape"/>.</summary>
    /// <exception cref="ArgumentException">A dimension is negative or the length differs from the shape's product.</exception>
    public Tensor(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(shape);
        long product = 1;
        foreach (int d in shape)
        {
            if (d < 0)
                throw new ArgumentException($"Tensor shape {FormatShape(shape)} has a negative dimension.", nameof(shape));
            product *= d;
        }
        if (product != data.Length)
            throw new ArgumentException(
                $"Tensor data has {data.Length} elements but shape {FormatShape(shape)} needs {product}.", nameof(data));
        Data = data;
        Shape = (int[])shape.Clone();
    }

    /// <summary>The values, row-major.</summary>
    public float[] Data { get; }

    /// <summary>The dimensions.</summary>
    public int[] Shape { get; }

    /// <summary>Number of elements.</summary>
    public int Length => Data.Length;

    /// <summary>Number of dimensions.</summary>
    public int Rank => Shape.Length;

    /// <summary>Whether gradients flow to this tensor.</summary>
    public bool RequiresGrad { get; set; }

    /// <summary>The gradient accumulated by <c>Backward</c>, same shape as this tensor.</summary>
    public Tensor? Grad { get; set; }

    /// <summary>The tensors this one was computed from (null for a leaf).</summary>
    internal Tensor[]? Parents { get; private set; }

    /// <summary>Whether Backward zeroes this non-leaf's gradient buffer instead of dropping it (set by the subspace op).</summary>
    internal bool ReusesGradBuffer { get; set; }

    /// <summary>Adds this tensor's gradient contribution into its parents' gradients.</summary>
    internal Action? BackwardFn { get; private set; }

    /// <summary>Whether ops currently record the autograd tape on this thread.</summary>
    public static bool IsGradEnabled => t_noGradDepth == 0;

    /// <summary>A zero-filled tensor.</summary>
    public static Tensor Zeros(params int[] shape) => new(new float[ShapeProduct(shape)], shape);

    /// <summary>A tensor over a copy of <paramref name="data"/>.</summary>
    public static Tensor FromArray(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new((float[])data.Clone(), shape);
    }

    /// <summary>
    /// Disables tape recording on this thread until the returned scope is disposed:
    /// <c>using (Tensor.NoGrad()) { ... }</c>. Scopes nest.
    /// </summary>
    public static NoGradScope NoGrad()
    {
        t_noGradDepth++;
        return new NoGradScope(true);
    }

    /// <summary>Restores tape recording when disposed.</summary>
    public readonly struct NoGradScope : IDisposable
    {
        private readonly bool _active;
        internal NoGradScope(bool active) => _active = active;

        /// <summary>Leaves the scope.</summary>
        public void Dispose()
        {
            if (_active && t_noGradDepth > 0) t_noGradDepth--;
        }
    }

    /// <summary>
    /// Backpropagates from this scalar: seeds its gradient with 1 and accumulates into <see cref="Grad"/>
    /// of every leaf that <see cref="RequiresGrad"/>. Intermediate gradients are recomputed each call.
    /// </summary>
    public void Backward()
    {
        if (Length != 1)
            throw new InvalidOperationException($"Backward needs a scalar tensor; this one has shape {FormatShape(Shape)}.");
        if (!RequiresGrad)
            throw new InvalidOperationException("Backward on a tensor that does not require gradients (no input had RequiresGrad, or it was computed under NoGrad).");

        List<Tensor> order = TopologicalOrder(this);
        // Non-leaf gradients start fresh; leaf gradients accumulate across calls.
        foreach (var t in order)
        {
            if (t.BackwardFn == null) continue;
            // A parameter the subspace op links keeps its zeroed buffer: a fresh weight-sized array per step would
            // feed the large-object heap and cost gen-2 collections.
            if (t.ReusesGradBuffer && t.Grad != null) t.Grad.Data.AsSpan().Clear();
            else t.Grad = null;
        }
        GradSpan()[0] += 1f;
        for (int i = order.Count - 1; i >= 0; i--)
        {
            var t = order[i];
            if (t.BackwardFn != null && t.Grad != null) t.BackwardFn();
        }
    }

    /// <summary>
    /// Turns this tensor back into a leaf in place (the subspace op links a model's parameters to its coordinates
    /// on every forward and must unlink them when the model is materialized).
    /// </summary>
    internal void ClearTape()
    {
        Parents = null;
        BackwardFn = null;
        ReusesGradBuffer = false;
    }

    /// <summary>Drops this tensor's tape link so it becomes a leaf (its value is kept).</summary>
    public Tensor Detach() => new(Data, Shape);

    /// <inheritdoc/>
    public override string ToString()
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("Tensor").Append(FormatShape(Shape));
        if (RequiresGrad) sb.Append(" requires_grad");
        sb.Append(' ').Append('[');
        int shown = Math.Min(Length, 8);
        for (int i = 0; i < shown; i++)
        {
            if (i > 0) sb.Append(", ");
            sb.Append(Data[i].ToString("G6", CultureInfo.InvariantCulture));
        }
        if (Length > shown) sb.Append(", ...");
        sb.Append(']');
        return sb.ToString();
    }

    /// <summary>Formats a shape as <c>[2, 3]</c>.</summary>
    public static string FormatShape(ReadOnlySpan<int> shape)
    {
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++) parts[i] = shape[i].ToString(CultureInfo.InvariantCulture);
        return "[" + string.Join(", ", parts) + "]";
    }

    internal static int ShapeProduct(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long product = 1;
        foreach (int d in shape)
        {
            if (d < 0) throw new ArgumentException($"Tensor shape {FormatShape(shape)} has a negative dimension.", nameof(shape));
            product *= d;
        }
        if (product > Array.MaxLength)
            throw new ArgumentException($"Tensor shape {FormatShape(shape)} has {product} elements, more than an array holds.", nameof(shape));
        return (int)product;
    }

    /// <summary>
    /// The gradient buffer, allocated (zeroed) on first use. A backward closure passed to
    /// <see cref="Record"/> adds its contribution here (<c>+=</c>, never <c>=</c>: a tensor used twice receives both).
    /// </summary>
    public Span<float> GradSpan()
    {
        Grad ??= Zeros(Shape);
        return Grad.Data;
    }

    /// <summary>
    /// The autograd extension point: makes <paramref name="output"/> (a tensor an op has just computed from
    /// <paramref name="parents"/>) part of the tape, so <see cref="Backward"/> calls <paramref name="backward"/>.
    /// Nothing is recorded when no parent requires gradients or under <see cref="NoGrad"/>; the output is returned
    /// either way, so an op ends with <c>return Tensor.Record(y, () =&gt; ..., x, w);</c>.
    /// </summary>
    /// <param name="output">The op's result; it must be a new tensor, not one of the parents.</param>
    /// <param name="backward">
    /// Reads <c>output.Grad!.Data</c> (dLoss/dOutput, filled when it runs) and adds dLoss/dParent into
    /// <see cref="GradSpan"/> of each parent whose <see cref="RequiresGrad"/> is set. It must only add, and it must
    /// not read values the forward overwrote later; capture what it needs (saved statistics, masks) in the closure.
    /// </param>
    /// <param name="parents">The op's inputs (null entries, e.g. an absent bias, are skipped).</param>
    /// <returns><paramref name="output"/>.</returns>
    /// <exception cref="ArgumentException"><paramref name="output"/> is one of the parents (an in-place op would cycle the tape).</exception>
    /// <remarks>docs/extending.md shows a user-written LayerNorm built on this.</remarks>
    public static Tensor Record(Tensor output, Action backward, params Tensor?[] parents)
    {
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(backward);
        ArgumentNullException.ThrowIfNull(parents);
        foreach (var p in parents)
            if (ReferenceEquals(p, output))
                throw new ArgumentException($"Tensor.Record: the output {FormatShape(output.Shape)} is also a parent; an op must return a new tensor, not modify an input in place.", nameof(parents));
        if (!IsGradEnabled) return output;
        bool any = false;
        foreach (var p in parents) any |= p is { RequiresGrad: true };
        if (!any) return output;
        var list = new List<Tensor>(parents.Length);
        foreach (var p in parents) if (p is { RequiresGrad: true }) list.Add(p);
        output.Parents = list.ToArray();
        output.BackwardFn = backward;
        output.RequiresGrad = true;
        return output;
    }

    private static List<Tensor> TopologicalOrder(Tensor root)
    {
        // Iterative post-order DFS: deep graphs must not overflow the stack.
        var order = new List<Tensor>();
        var visited = new HashSet<Tensor>(ReferenceEqualityComparer.Instance);
        var stack = new Stack<(Tensor Node, int Next)>();
        stack.Push((root, 0));
        visited.Add(root);
        while (stack.Count > 0)
        {
            var (node, next) = stack.Pop();
            var parents = node.Parents;
            if (parents != null && next < parents.Length)
            {
                stack.Push((node, next + 1));
                var parent = parents[next];
                if (visited.Add(parent)) stack.Push((parent, 0));
            }
            else
            {
                order.Add(node);
            }
        }
        return order;
    }
}
