#include "errors.h"

namespace dmacopy_addon {
namespace {
Napi::Error with_code(Napi::Error err, const char* code) {
  err.Set("code", Napi::String::New(err.Env(), code));
  return err;
}
}  // namespace

Napi::Error coded_type_error(Napi::Env env, const char* code, const std::string& message) {
  return with_code(Napi::TypeError::New(env, message), code);
}

Napi::Error coded_range_error(Napi::Env env, const char* code, const std::string& message) {
  return with_code(Napi::RangeError::New(env, message), code);
}

Napi::Error coded_error(Napi::Env env, const char* code, const std::string& message) {
  return with_code(Napi::Error::New(env, message), code);
}

Napi::Error plan_error(Napi::Env env, const dmacopy::PlanStatus& status) {
  using dmacopy::PlanError;
  switch (status.error) {
    case PlanError::DstOverlap:
    case PlanError::SrcDstOverlap:
      return coded_range_error(env, "ERR_DMACOPY_OVERLAP",
                               status.message + ": give every folio its own destination bytes");
    case PlanError::OutOfBounds:
      return coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE",
                               status.message + " (was the buffer detached or shrunk?)");
    case PlanError::BadBufferIndex:
    case PlanError::BadNumber:
    case PlanError::BadBounds: return coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", status.message);
    case PlanError::None: break;
  }
  return coded_error(env, "ERR_DMACOPY_INTERNAL", "batch plan failed without a reason: please report this");
}

}  // namespace dmacopy_addon
