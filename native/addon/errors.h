// Errors thrown from the Node-API layer carry the same stable `code`s as lib/errors.ts, so a
// caller that bypasses the TypeScript validation (or hits a native re-check) still gets a
// TypeError/RangeError with a code, never a crash.
#pragma once

#include <napi.h>

#include <string>

#include "batch_plan.h"

namespace dmacopy_addon {

Napi::Error coded_type_error(Napi::Env env, const char* code, const std::string& message);
Napi::Error coded_range_error(Napi::Env env, const char* code, const std::string& message);
Napi::Error coded_error(Napi::Env env, const char* code, const std::string& message);

// Maps a batch-plan failure to the error lib/ would have thrown for the same input.
Napi::Error plan_error(Napi::Env env, const dmacopy::PlanStatus& status);

}  // namespace dmacopy_addon
