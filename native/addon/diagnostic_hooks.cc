#include "diagnostic_hooks.h"

#include <cstring>
#include <vector>

#include "args.h"
#include "cpu_features.h"
#include "errors.h"
#include "memcpy_bound.h"
#include "soft_device.h"

namespace dmacopy_addon {

// memcpyBound(dst: Uint8Array, src: Uint8Array, threads, chunk) -> nanoseconds
Napi::Value MemcpyBound(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray())
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dst and src must be Uint8Arrays");
  Napi::Uint8Array dst = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array src = info[1].As<Napi::Uint8Array>();
  if (dst.ByteLength() < src.ByteLength())
    throw coded_range_error(env, "ERR_DMACOPY_LENGTH_MISMATCH", "dst is shorter than src");
  uint32_t threads = uint32_arg(info[2], "threads");
  uint32_t chunk = uint32_arg(info[3], "chunk");
  uint64_t ns = dmacopy::memcpy_bound_ns(dst.Data(), src.Data(), src.ByteLength(), threads, chunk);
  return Napi::Number::New(env, static_cast<double>(ns));
}

Napi::Value CpuFeatures(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  dmacopy::CpuFeatures f = dmacopy::cpu_features();
  Napi::Object o = Napi::Object::New(env);
  o.Set("movdir64b", Napi::Boolean::New(env, f.movdir64b));
  o.Set("enqcmd", Napi::Boolean::New(env, f.enqcmd));
  o.Set("waitpkg", Napi::Boolean::New(env, f.waitpkg));
  o.Set("movdiri", Napi::Boolean::New(env, f.movdiri));
  o.Set("kernelEnqcmd", Napi::Boolean::New(env, dmacopy::kernel_enables_enqcmd()));
  return o;
}

}  // namespace dmacopy_addon
