// The tests run dotnet pack, build and publish over shared folders: one at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
