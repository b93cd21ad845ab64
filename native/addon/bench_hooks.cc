// Measurement hooks for scripts/ and the bench command: not part of the public API.
#include "bench_hooks.h"

#include "args.h"
#include "errors.h"
#include "memcpy_bound.h"

namespace dmacopy_addon {

// memcpyBound(dst: Uint8Array, src: Uint8Array, threads, chunk) -> nanoseconds
Napi::Value MemcpyBound(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray()) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dst and src must be Uint8Arrays");
  Napi::Uint8Array dst = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array src = info[1].As<Napi::Uint8Array>();
  if (dst.ByteLength() < src.ByteLength()) throw coded_range_error(env, "ERR_DMACOPY_LENGTH_MISMATCH", "dst is shorter than src");
  uint32_t threads = uint32_arg(info[2], "threads");
  uint32_t chunk = uint32_arg(info[3], "chunk");
  uint64_t ns = dmacopy::memcpy_bound_ns(dst.Data(), src.Data(), src.ByteLength(), threads, chunk);
  return Napi::Number::New(env, static_cast<double>(ns));
}

}  // namespace dmacopy_addon
