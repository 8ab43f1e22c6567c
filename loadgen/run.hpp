#pragma once
// One load run, start to end: the target resolved, the worker threads started, the run's timeline
// (warm-up, measured window, drain) with CPU and /proc samples at the window's edges, then the
// result JSON written and summarised.

#include "loadgen/options.hpp"

namespace loadgen {

// The exit code: 0 clean, 1 errors or a shortfall (the JSON is still written). Throws UsageError
// for a target that cannot be resolved or CPUs that cannot be used (main exits 2).
int run_load(const Options& o);

}  // namespace loadgen
