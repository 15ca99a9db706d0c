using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Linq;
using Condense.Generators.Diagnostics;
using Condense.Generators.Parsing;
using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;
using Microsoft.CodeAnalysis.Diagnostics;
using Microsoft.CodeAnalysis.Operations;

namespace Condense.Generators.Analyzers;

/// <summary>
/// Checks every <c>[Compressible]</c> model's plan at build time (every diagnostic except CND0009, which only the generator reports) through the same
/// <see cref="ModelParser"/> the generator uses, so what it reports is what the generator would plan.
/// </summary>
[DiagnosticAnalyzer(LanguageNames.CSharp)]
public sealed class CompressionPlanAnalyzer : DiagnosticAnalyzer
{
    public override ImmutableArray<DiagnosticDescriptor> SupportedDiagnostics { get; } = ImmutableArray.Create(
        DiagnosticDescriptors.ModelNotPartial,
        DiagnosticDescriptors.ModelNotModule,
        DiagnosticDescriptors.UnsupportedBits,
        DiagnosticDescriptors.UnsupportedGroupSize,
        DiagnosticDescriptors.KeepDenseWithCompression,
        DiagnosticDescriptors.ShapeNotConstant,
        DiagnosticDescriptors.BudgetExceeded,
        DiagnosticDescriptors.AttributeOnNonLayer,
        DiagnosticDescriptors.InvalidSparsityPattern,
        DiagnosticDescriptors.InvalidSparsityFraction,
        DiagnosticDescriptors.InvalidRank,
        DiagnosticDescriptors.RankSavesNothing,
        DiagnosticDescriptors.NoKernelForCombination,
        DiagnosticDescriptors.SameFamilyTwice,
        DiagnosticDescriptors.MixedPrecisionInfeasible,
        DiagnosticDescriptors.MixedPrecisionBudgetNeedsNoCompression,
        DiagnosticDescriptors.OverrideMatchesNothing,
        DiagnosticDescriptors.DuplicateLayerPath,
        DiagnosticDescriptors.InvalidSubspace,
        DiagnosticDescriptors.IncompatibleLayerHandled,
        DiagnosticDescriptors.OverrideConflict,
        DiagnosticDescriptors.NestedModelUnresolvable,
        DiagnosticDescriptors.AttributeOutsideModel,
        DiagnosticDescriptors.LayerTooLarge,
        DiagnosticDescriptors.LayersNotRegistered,
        DiagnosticDescriptors.InvalidPruningSchedule,
        DiagnosticDescriptors.InvalidGlobalSparsity,
        DiagnosticDescriptors.SubspaceSavesLittle,
        DiagnosticDescriptors.DenseProjectionTooLarge,
        DiagnosticDescriptors.SubspaceCombination,
        DiagnosticDescriptors.SubspaceConflict,
        DiagnosticDescriptors.CalibrationMissing,
        DiagnosticDescriptors.CalibrationNeedsForward,
        DiagnosticDescriptors.DataAwareMethodInvalid,

        DiagnosticDescriptors.MixedPrecisionWithoutForward,
        DiagnosticDescriptors.MixedPrecisionMissesNestedLayers);

    public override void Initialize(AnalysisContext context)
    {
        context.ConfigureGeneratedCodeAnalysis(GeneratedCodeAnalysisFlags.None);
        context.EnableConcurrentExecution();
        context.RegisterCompilationStartAction(start =>
        {
            var compressible = start.Compilation.GetTypeByMetadataName(KnownTypeNames.CompressibleAttribute);
            if (compressible is null) return;
            var layerAttributes = KnownTypeNames.LayerAttributes
                .Select(a => start.Compilation.GetTypeByMetadataName(a.MetadataName))
                .Where(a => a is not null)
                .Select(a => a!)
                .ToImmutableArray();
            start.RegisterSyntaxNodeAction(node => AnalyzeClass(node, compressible), SyntaxKind.ClassDeclaration);
            start.RegisterSyntaxNodeAction(node => AnalyzeAttributesOutsideModels(node, compressible, layerAttributes), SyntaxKind.ClassDeclaration);
            var options = start.Compilation.GetTypeByMetadataName(KnownTypeNames.CompressionOptions);
            if (options is null) return;
            var plans = new ConcurrentDictionary<INamedTypeSymbol, CalibrationNeeds>(SymbolEqualityComparer.Default);
            start.RegisterOperationAction(operation => AnalyzeCompressCall(operation, compressible, options, plans), OperationKind.Invocation);
        });
    }

    /// <summary>What a model's plan needs from a Compress call: the data-aware layers (empty: nothing) and whether the model has a Forward.</summary>
    private sealed record CalibrationNeeds(ImmutableArray<string> Layers, bool HasForward);

    /// <summary>
    /// CND0034 and CND0035 at a call of a model's generated <c>Compress</c> whose plan has data-aware layers: the options
    /// argument is missing, null, or a <c>new CompressionOptions { ... }</c> that leaves Calibration unset (or null); or
    /// the model has no Forward(Tensor) to record the inputs with. Any other options expression is left to run time.
    /// </summary>
    private static void AnalyzeCompressCall(OperationAnalysisContext context, INamedTypeSymbol compressible, INamedTypeSymbol optionsType,
        ConcurrentDictionary<INamedTypeSymbol, CalibrationNeeds> plans)
    {
        var invocation = (IInvocationOperation)context.Operation;
        var method = invocation.TargetMethod;
        if (method.Name != "Compress" || method.IsStatic || method.Parameters.Length == 0 ||
            !SymbolEqualityComparer.Default.Equals(method.Parameters[0].Type.OriginalDefinition, optionsType)) return;
        var model = method.ContainingType.OriginalDefinition;
        if (!model.GetAttributes().Any(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, compressible))) return;
        if (!plans.TryGetValue(model, out var needs))
        {
            needs = PlanNeeds(model, invocation.SemanticModel!, context.CancellationToken);
            plans.TryAdd(model, needs);
        }
        if (needs.Layers.IsEmpty) return;

        string layers = needs.Layers.Length == 1 ? "layer " + needs.Layers[0] : "layers " + string.Join(", ", needs.Layers);
        var location = invocation.Syntax is InvocationExpressionSyntax { Expression: MemberAccessExpressionSyntax access } ? access.Name.GetLocation() : invocation.Syntax.GetLocation();
        if (!needs.HasForward)
            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.CalibrationNeedsForward, location, model.Name, layers,
                "add one (calibration runs it over the batches), or compress '" + model.Name + "' through a containing model that has one"));

        var argument = invocation.Arguments.FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.Parameter, method.Parameters[0]));
        if (argument is null || !LacksCalibration(argument)) return;
        context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.CalibrationMissing,
            argument.ArgumentKind == ArgumentKind.DefaultValue ? location : argument.Syntax.GetLocation(), model.Name, layers,
            "pass Compress(new CompressionOptions { Calibration = new CalibrationData(batches) }) with a few hundred input rows (model.Plan.CalibratedLayers lists the layers), or use Method = RoundToNearest / Method = Svd on them"));
    }

    /// <summary>The options argument certainly carries no calibration data.</summary>
    private static bool LacksCalibration(IArgumentOperation argument)
    {
        if (argument.ArgumentKind == ArgumentKind.DefaultValue) return true;
        var value = argument.Value;
        while (value is IConversionOperation { IsImplicit: true } conversion) value = conversion.Operand;
        if (value is IDefaultValueOperation || value is ILiteralOperation { ConstantValue: { HasValue: true, Value: null } }) return true;
        if (value is not IObjectCreationOperation creation) return false;
        if (creation.Initializer is null) return true;
        foreach (var initializer in creation.Initializer.Initializers)
        {
            if (initializer is not ISimpleAssignmentOperation { Target: IPropertyReferenceOperation { Property.Name: "Calibration" } } assignment) continue;
            var assigned = assignment.Value;
            while (assigned is IConversionOperation { IsImplicit: true } conversion) assigned = conversion.Operand;
            return assigned is IDefaultValueOperation || assigned is ILiteralOperation { ConstantValue: { HasValue: true, Value: null } };
        }
        return true;
    }

    /// <summary>Resolves the model's plan as the generator does (source models only: a compiled model's plan was checked where it was built).</summary>
    /// <param name="semanticModel">The call's semantic model: the parser binds the model's own trees through it as it needs them.</param>
    private static CalibrationNeeds PlanNeeds(INamedTypeSymbol model, SemanticModel semanticModel, System.Threading.CancellationToken cancellationToken)
    {
        var none = new CalibrationNeeds(ImmutableArray<string>.Empty, true);
        var reference = model.DeclaringSyntaxReferences.FirstOrDefault();
        if (reference is null || !semanticModel.Compilation.ContainsSyntaxTree(reference.SyntaxTree)) return none;
        var resolution = ModelParser.Resolve(model, semanticModel, cancellationToken);
        // A plan with build errors has its own diagnostics; its Compress throws them whatever the options.
        if (!resolution.Spec.CanGenerate) return none;
        var layers = resolution.Spec.Layers.Where(l => l.NeedsCalibration).Select(l => "'" + l.Path + "' (" + l.CalibratedMethodText + ")").ToImmutableArray();
        return new CalibrationNeeds(layers, resolution.Spec.HasForward);
    }

    private static void AnalyzeClass(SyntaxNodeAnalysisContext context, INamedTypeSymbol compressible)
    {
        var declaration = (ClassDeclarationSyntax)context.Node;
        if (declaration.AttributeLists.Count == 0) return;
        if (context.SemanticModel.GetDeclaredSymbol(declaration, context.CancellationToken) is not { } type) return;

        // Analyze a partial model once: at the declaration that carries its first [Compressible], as the generator
        // does (two declarations may both carry one; the compiler reports the second, CS0579).
        var attribute = type.GetAttributes().FirstOrDefault(a => SymbolEqualityComparer.Default.Equals(a.AttributeClass, compressible));
        if (attribute?.ApplicationSyntaxReference is not { } reference ||
            reference.SyntaxTree != declaration.SyntaxTree || !declaration.Span.Contains(reference.Span)) return;

        var resolution = ModelParser.Resolve(type, context.SemanticModel, context.CancellationToken);
        foreach (var problem in resolution.Problems)
            if (!ModelParser.IsReportedByGenerator(problem.Descriptor))
                context.ReportDiagnostic(problem.ToDiagnostic());
    }

    /// <summary>CND0024: a layer attribute on a member of a class that no [Compressible] declaration makes a model.</summary>
    private static void AnalyzeAttributesOutsideModels(SyntaxNodeAnalysisContext context, INamedTypeSymbol compressible, ImmutableArray<INamedTypeSymbol> layerAttributes)
    {
        var declaration = (ClassDeclarationSyntax)context.Node;
        // Cheap syntactic filter first: most classes have no attributed fields or properties.
        bool anyAttributedMember = false;
        foreach (var member in declaration.Members)
            if (member is FieldDeclarationSyntax { AttributeLists.Count: > 0 } or PropertyDeclarationSyntax { AttributeLists.Count: > 0 })
            {
                anyAttributedMember = true;
                break;
            }
        if (!anyAttributedMember) return;
        if (context.SemanticModel.GetDeclaredSymbol(declaration, context.CancellationToken) is not { } type) return;
        foreach (var attribute in type.GetAttributes())
            if (SymbolEqualityComparer.Default.Equals(attribute.AttributeClass, compressible)) return;

        foreach (var member in declaration.Members)
        {
            SyntaxList<AttributeListSyntax> lists;
            string name;
            switch (member)
            {
                case FieldDeclarationSyntax field when field.AttributeLists.Count > 0 && field.Declaration.Variables.Count > 0:
                    lists = field.AttributeLists;
                    name = field.Declaration.Variables[0].Identifier.ValueText;
                    break;
                case PropertyDeclarationSyntax property when property.AttributeLists.Count > 0:
                    lists = property.AttributeLists;
                    name = property.Identifier.ValueText;
                    break;
                default:
                    continue;
            }
            foreach (var list in lists)
                foreach (var syntax in list.Attributes)
                {
                    if (context.SemanticModel.GetSymbolInfo(syntax, context.CancellationToken).Symbol is not IMethodSymbol { ContainingType: { } attributeType }) continue;
                    foreach (var known in layerAttributes)
                        if (SymbolEqualityComparer.Default.Equals(attributeType, known))
                        {
                            string shortName = attributeType.Name.EndsWith("Attribute", System.StringComparison.Ordinal)
                                ? attributeType.Name.Substring(0, attributeType.Name.Length - "Attribute".Length)
                                : attributeType.Name;
                            context.ReportDiagnostic(Diagnostic.Create(DiagnosticDescriptors.AttributeOutsideModel, syntax.GetLocation(), name, shortName, type.Name));
                        }
                }
        }
    }
}
