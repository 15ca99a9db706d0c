// Kernel tests switch process-wide settings (KernelOptions.MaxVectorBits, worker-pool degree) to reach every SIMD
// path and thread count; a test running in parallel could see them change between two calls it compares bit for
// bit. Test classes therefore run one at a time (the suite takes seconds either way on two cores).
[assembly: CollectionBehavior(DisableTestParallelization = true)]
