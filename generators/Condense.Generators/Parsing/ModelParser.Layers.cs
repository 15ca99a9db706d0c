using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Threading;
using Condense.Catalogue;
using Condense.Generators.Diagnostics;
using Condense.Generators.Models;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Operations;

namespace Condense.Generators.Parsing;

internal static partial class ModelParser
{
    /// <summary>A layer's shape as read from its initializer, or why it could not be read.</summary>
    private readonly record struct Shape(int OutFeatures, int InFeatures, int KernelSize, bool HasBias, string? Problem, Location? ProblemLocation);

    /// <summary>Resolves one member: a layer (or null), reporting misplaced attributes and invalid settings.</summary>
    private static LayerSpec? ResolveMember(INamedTypeSymbol model, ISymbol member, SemanticModelCache models, List<DiagnosticInfo> problems, CancellationToken cancellationToken)
    {
        var quantize = FindAttribute(member, KnownTypeNames.QuantizeAttribute);
        var keepDense = FindAttribute(member, KnownTypeNames.KeepDenseAttribute);

        ITypeSymbol? memberType = member switch
        {
            IFieldSymbol { IsImplicitlyDeclared: false } field => field.Type,
            IPropertySymbol { IsIndexer: false } property => property.Type,
            _ => null,
        };
        LayerKind? kind = memberType is null ? null
            : IsType(memberType, KnownTypeNames.Linear) ? LayerKind.Linear
            : IsType(memberType, KnownTypeNames.Conv2d) ? LayerKind.Conv2d
            : null;

        if (kind is null || member.IsStatic)
        {
            string what = member.IsStatic && kind is not null ? "static"
                : memberType is null ? "not a field or property"
                : "of type '" + memberType.ToDisplayString() + "'";
            foreach (var attribute in new[] { quantize, keepDense })
                if (attribute is not null)
                    problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.AttributeOnNonLayer, AttributeLocation(attribute, cancellationToken),
                        attribute.AttributeClass!.Name.Replace("Attribute", ""), member.Name, what));
            return null;
        }

        var shape = ResolveShape(member, kind.Value, models, cancellationToken);
        if (shape.Problem is not null)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.ShapeNotConstant, shape.ProblemLocation, member.Name, shape.Problem, model.Name));

        var technique = LayerTechnique.Dense;
        int bits = 0, groupSize = 0;
        bool symmetric = true;
        if (quantize is not null && keepDense is not null)
            problems.Add(DiagnosticInfo.Create(DiagnosticDescriptors.KeepDenseWithCompression, AttributeLocation(keepDense, cancellationToken), member.Name, "Quantize"));
        else if (quantize is not null && quantize.ConstructorArguments.Length == 1 && quantize.ConstructorArguments[0].Value is int b)
        {
            technique = LayerTechnique.Quantize;
            bits = b;
            groupSize = NamedArgument(quantize, "GroupSize") is { Value: int g } ? g : 0;
            symmetric = NamedArgument(quantize, "Symmetric") is not { Value: false };
            // An unknown shape still gets the catalogue checks; 0 is divisible by every group size.
            var problem = KernelCatalogue.QuantizationProblem(bits, groupSize, shape.Problem is null ? shape.InFeatures : 0);
            if (problem is not null)
            {
                bool bitsProblem = !KernelCatalogue.IsSupportedBits(bits);
                var info = DiagnosticInfo.Create(
                    bitsProblem ? DiagnosticDescriptors.UnsupportedBits : DiagnosticDescriptors.UnsupportedGroupSize,
                    bitsProblem ? PositionalArgumentLocation(quantize, cancellationToken) : ArgumentLocation(quantize, "GroupSize", cancellationToken),
                    member.Name, problem);
                if (!bitsProblem)
                    info = info with { SuggestedValue = NearestGroupSize(groupSize, shape.Problem is null ? shape.InFeatures : 0).ToString(CultureInfo.InvariantCulture) };
                problems.Add(info);
            }
        }

        long before = 0, after = 0;
        if (shape.Problem is null && (technique == LayerTechnique.Dense || KernelCatalogue.QuantizationProblem(bits, groupSize, shape.InFeatures) is null))
            (before, after) = ComputeBytes(technique, shape.OutFeatures, shape.InFeatures, shape.HasBias, bits, groupSize, symmetric);

        string accessName = SyntaxFacts.GetKeywordKind(member.Name) != SyntaxKind.None ? "@" + member.Name : member.Name;
        return new LayerSpec(
            Path: member.Name,
            AccessName: accessName,
            IsNullable: memberType!.NullableAnnotation == NullableAnnotation.Annotated,
            Kind: kind.Value,
            ShapeKnown: shape.Problem is null,
            OutFeatures: shape.OutFeatures,
            InFeatures: shape.InFeatures,
            KernelSize: shape.KernelSize,
            HasBias: shape.HasBias,
            Technique: technique,
            Bits: bits,
            GroupSize: groupSize,
            Symmetric: symmetric,
            BytesBefore: before,
            BytesAfter: after);
    }

    /// <summary>A layer's exact bytes, from the kernel catalogue shared with the runtime (tests compare the two).</summary>
    internal static (long Before, long After) ComputeBytes(LayerTechnique technique, int outFeatures, int inFeatures, bool hasBias, int bits, int groupSize, bool symmetric) =>
        KernelCatalogue.LayerBytes(outFeatures, inFeatures, hasBias, technique == LayerTechnique.Quantize, bits, groupSize, symmetric);

    /// <summary>The valid group size closest to the requested one (the larger on a tie: fewer scales to store).</summary>
    internal static int NearestGroupSize(int requested, int inFeatures)
    {
        var candidates = inFeatures > 0 ? KernelCatalogue.ValidGroupSizes(inFeatures) : new[] { 0 }.Concat(KernelCatalogue.SupportedGroupSizes).ToArray();
        return candidates
            .OrderBy(g => System.Math.Abs((long)g - requested))
            .ThenByDescending(g => g)
            .First();
    }

    private static Shape ResolveShape(ISymbol member, LayerKind kind, SemanticModelCache models, CancellationToken cancellationToken)
    {
        var memberLocation = member.Locations.FirstOrDefault(l => l.IsInSource);
        var syntax = member.DeclaringSyntaxReferences.FirstOrDefault()?.GetSyntax(cancellationToken);
        var initializer = syntax switch
        {
            VariableDeclaratorSyntax variable => variable.Initializer?.Value,
            PropertyDeclarationSyntax property => property.Initializer?.Value,
            _ => null,
        };
        string typeName = kind == LayerKind.Linear ? "Linear" : "Conv2d";
        if (initializer is null)
            return Unknown("it has no initializer; declare it as '" + member.Name + " = new " + typeName + "(...)' with constant arguments", memberLocation);

        var operation = models.For(initializer.SyntaxTree).GetOperation(initializer, cancellationToken);
        while (operation is IConversionOperation conversion) operation = conversion.Operand;
        if (operation is not IObjectCreationOperation { Constructor: { } constructor } creation ||
            !IsType(constructor.ContainingType, kind == LayerKind.Linear ? KnownTypeNames.Linear : KnownTypeNames.Conv2d))
            return Unknown("its initializer is not 'new " + typeName + "(...)'", initializer.GetLocation());

        var values = new Dictionary<string, object?>(System.StringComparer.Ordinal);
        foreach (var argument in creation.Arguments)
        {
            if (argument.Parameter is not { } parameter) continue;
            var constant = argument.Value.ConstantValue;
            if (!constant.HasValue)
                return Unknown("argument '" + parameter.Name + "' is not a compile-time constant", argument.Syntax.GetLocation());
            values[parameter.Name] = constant.Value;
        }

        var location = initializer.GetLocation();
        bool hasBias = values.TryGetValue("bias", out var biasValue) ? biasValue is true : true;
        if (kind == LayerKind.Linear)
        {
            if (!TryPositive(values, "inFeatures", out int inFeatures, out var problem) || !TryPositive(values, "outFeatures", out int outFeatures, out problem))
                return Unknown(problem!, location);
            return new Shape(outFeatures, inFeatures, 0, hasBias, null, null);
        }
        else
        {
            if (!TryPositive(values, "inChannels", out int inChannels, out var problem) ||
                !TryPositive(values, "outChannels", out int outChannels, out problem) ||
                !TryPositive(values, "kernelSize", out int kernelSize, out problem))
                return Unknown(problem!, location);
            long columns = (long)inChannels * kernelSize * kernelSize;
            if (columns > int.MaxValue)
                return Unknown("inChannels x kernelSize x kernelSize = " + columns.ToString(CultureInfo.InvariantCulture) + " is too large", location);
            return new Shape(outChannels, (int)columns, kernelSize, hasBias, null, null);
        }

        static Shape Unknown(string problem, Location? location) => new(0, 0, 0, false, problem, location);
    }

    private static bool TryPositive(Dictionary<string, object?> values, string name, out int value, out string? problem)
    {
        value = values.TryGetValue(name, out var v) && v is int i ? i : 0;
        problem = value > 0 ? null : "argument '" + name + "' is " + (v is null ? "missing" : System.Convert.ToString(v, CultureInfo.InvariantCulture)) + ", not a positive size";
        return problem is null;
    }
}
