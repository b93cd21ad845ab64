#include "diagnostic_hooks.h"

#include <cstring>
#include <string>
#include <system_error>
#include <vector>

#include "args.h"
#include "cpu_features.h"
#include "errors.h"
#include "memcpy_bound.h"
#include "soft_device.h"

namespace dmacopy_addon {

// memcpyBound(dst: Uint8Array, src: Uint8Array, threads, chunk, kind) -> nanoseconds
// kind: 0 memcpy (cached stores), 1 streaming stores (lib/native/abi.ts BoundKind). lib/ checks
// all of this first; the addon re-checks, as every entry point does, before touching memory.
Napi::Value MemcpyBound(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto is_bytes = [](const Napi::Value& v) {
    return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
  };
  if (!is_bytes(info[0]) || !is_bytes(info[1]))
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dst and src must be Uint8Arrays");
  Napi::Uint8Array dst = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array src = info[1].As<Napi::Uint8Array>();
  if (dst.ByteLength() < src.ByteLength())
    throw coded_range_error(env, "ERR_DMACOPY_LENGTH_MISMATCH", "dst is shorter than src");
  uint32_t threads = uint32_arg(info[2], "threads");
  uint32_t chunk = uint32_arg(info[3], "chunk");
  uint32_t kind = uint32_arg(info[4], "kind");
  if (threads < 1 || threads > dmacopy::kMaxBoundThreads)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE",
                            "threads must be from 1 to " + std::to_string(dmacopy::kMaxBoundThreads));
  if (chunk < 1) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "chunk must be at least 1");
  if (kind > 1) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "kind must be 0 (memcpy) or 1 (streaming)");
  size_t len = src.ByteLength();
  uintptr_t d = reinterpret_cast<uintptr_t>(dst.Data()), s = reinterpret_cast<uintptr_t>(src.Data());
  if (len > 0 && d < s + len && s < d + len) throw coded_range_error(env, "ERR_DMACOPY_OVERLAP", "dst and src overlap");
  dmacopy::StoreKind store = kind == 1 ? dmacopy::StoreKind::NonTemporal : dmacopy::StoreKind::Cached;
  uint64_t ns = 0;
  try {
    ns = dmacopy::memcpy_bound_ns(dst.Data(), src.Data(), len, threads, chunk, store);
  } catch (const std::system_error& e) {
    // node-addon-api turns only Napi::Error into an exception: anything else would abort.
    throw coded_error(env, "ERR_DMACOPY_RESOURCES",
                      std::string("the system refused the bound's threads (") + e.what() + "): use fewer threads");
  }
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
