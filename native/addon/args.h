// Argument unpacking for the Node-API entry points: one place that turns JS values into spans
// and tables, with terse defensive checks (lib/ validates first and explains better).
#pragma once

#include <napi.h>

#include <string>
#include <vector>

#include "batch_plan.h"
#include "work_queue.h"

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

// Option readers. lib/ validates and fills in every default (lib/defaults.ts) before it calls
// in, so a value lib always sends is required here: a missing one is a bug, not a default.
double required_number(const Napi::Object& o, const char* key);
bool required_bool(const Napi::Object& o, const char* key);
std::string required_string(const Napi::Object& o, const char* key);
Napi::Object required_object(const Napi::Object& o, const char* key);
// A whole number from 0 to max under `key` (lib/ validates tighter ranges first; a direct call of
// the binding with NaN, a negative or a huge value must not reach a cast, which is undefined there).
uint64_t bounded(const Napi::Object& o, const char* key, double max);
// A queue's `mode`: 'dedicated' or 'shared'.
dmacopy::WqMode mode_of(const Napi::Object& o);

}  // namespace dmacopy_addon
