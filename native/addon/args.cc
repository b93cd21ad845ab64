#include "args.h"

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

}  // namespace dmacopy_addon
