// Argument unpacking for the Node-API entry points: one place that turns JS values into spans
// and tables, with terse defensive checks (lib/ validates first and explains better).
#pragma once

#include <napi.h>

#include <vector>

#include "batch_plan.h"

namespace dmacopy_addon {

// An array of Uint8Arrays, one per distinct ArrayBuffer of the batch. Each contributes its real
// data pointer and length as the engine saw them now: a detached buffer yields length 0, so any
// region in it fails the bounds re-check.
std::vector<dmacopy::BufferSpan> buffer_spans(const Napi::Value& value);

// A Float64Array, read in place (no copy). Throws a coded TypeError otherwise.
struct DoubleTable {
  const double* data = nullptr;
  size_t length = 0;
};
DoubleTable double_table(const Napi::Value& value, const char* what);

uint32_t uint32_arg(const Napi::Value& value, const char* what);
double number_arg(const Napi::Value& value, const char* what);

}  // namespace dmacopy_addon
