#include "args.h"

#include <cmath>
#include <string>

#include "errors.h"

namespace dmacopy_addon {

std::vector<dmacopy::BufferSpan> buffer_spans(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsArray())
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "buffers must be an array of Uint8Array");
  Napi::Array arr = value.As<Napi::Array>();
  const uint32_t n = arr.Length();
  std::vector<dmacopy::BufferSpan> spans;
  spans.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value v;
    NAPI_THROW_IF_FAILED(env, napi_get_element(env, arr, i, &v), spans);
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    bool is_typed = false;
    NAPI_THROW_IF_FAILED(env, napi_is_typedarray(env, v, &is_typed), spans);
    if (!is_typed)
      throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "buffers[" + std::to_string(i) + "] must be a Uint8Array");
    NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, v, &type, &length, &data, nullptr, nullptr), spans);
    if (type != napi_uint8_array)
      throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "buffers[" + std::to_string(i) + "] must be a Uint8Array");
    if (data == nullptr) length = 0;  // detached, or an empty buffer
    spans.push_back({static_cast<uint8_t*>(data), length});
  }
  return spans;
}

DoubleTable double_table(const Napi::Value& value, const char* what) {
  Napi::Env env = value.Env();
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", std::string(what) + " must be a Float64Array");
  Napi::Float64Array a = value.As<Napi::Float64Array>();
  return DoubleTable{a.Data(), a.ElementLength()};
}

uint32_t uint32_arg(const Napi::Value& value, const char* what) {
  double d = number_arg(value, what);
  if (!(d >= 0 && d <= 4294967295.0) || d != static_cast<double>(static_cast<uint32_t>(d)))
    throw coded_range_error(value.Env(), "ERR_DMACOPY_OUT_OF_RANGE",
                            std::string(what) + " must be an integer from 0 to 2^32-1");
  return static_cast<uint32_t>(d);
}

double number_arg(const Napi::Value& value, const char* what) {
  if (!value.IsNumber())
    throw coded_type_error(value.Env(), "ERR_DMACOPY_INVALID_ARG", std::string(what) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

double required_number(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) throw coded_type_error(o.Env(), "ERR_DMACOPY_INVALID_ARG", std::string(key) + " is required");
  return number_arg(v, key);
}

bool required_bool(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean())
    throw coded_type_error(o.Env(), "ERR_DMACOPY_INVALID_ARG", std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string required_string(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw coded_type_error(o.Env(), "ERR_DMACOPY_INVALID_ARG", std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

Napi::Object required_object(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsObject())
    throw coded_type_error(o.Env(), "ERR_DMACOPY_INVALID_ARG", std::string(key) + " must be an object");
  return v.As<Napi::Object>();
}

dmacopy::WqMode mode_of(const Napi::Object& o) {
  std::string m = required_string(o, "mode");
  if (m == "dedicated") return dmacopy::WqMode::Dedicated;
  if (m == "shared") return dmacopy::WqMode::Shared;
  throw coded_range_error(o.Env(), "ERR_DMACOPY_OUT_OF_RANGE", "mode must be 'dedicated' or 'shared'");
}

uint64_t bounded(const Napi::Object& o, const char* key, double max) {
  const double d = required_number(o, key);
  if (!(d >= 0 && d <= max) || d != std::floor(d))
    throw coded_range_error(
        o.Env(), "ERR_DMACOPY_OUT_OF_RANGE",
        std::string(key) + " must be a whole number from 0 to " + std::to_string(static_cast<uint64_t>(max)));
  return static_cast<uint64_t>(d);
}

}  // namespace dmacopy_addon
