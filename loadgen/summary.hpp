#pragma once
// The wrk-style human summary of a result, printed on stderr.

#include <nlohmann/json.hpp>

namespace loadgen {

void print_summary(const nlohmann::json& result);

}  // namespace loadgen
