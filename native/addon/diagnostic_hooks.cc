#include "diagnostic_hooks.h"

#include <cstring>
#include <vector>

#include "args.h"
#include "cpu_features.h"
#include "errors.h"
#include "memcpy_bound.h"
#include "naive_strategy.h"
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

Napi::Value NaiveCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || !info[1].IsTypedArray())
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dst and src must be Uint8Arrays");
  Napi::Uint8Array dst = info[0].As<Napi::Uint8Array>();
  Napi::Uint8Array src = info[1].As<Napi::Uint8Array>();
  const size_t len = src.ByteLength();
  if (dst.ByteLength() < len) throw coded_range_error(env, "ERR_DMACOPY_LENGTH_MISMATCH", "dst is shorter than src");
  const uint32_t folio = uint32_arg(info[2], "folioSize");
  if (folio == 0) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "folioSize must be positive");
  dmacopy::SoftDeviceConfig cfg;
  if (info[3].IsObject()) {
    Napi::Object o = info[3].As<Napi::Object>();
    if (o.Has("seed")) cfg.seed = static_cast<uint64_t>(number_arg(o.Get("seed"), "seed"));
    if (o.Has("jitterUs")) cfg.jitter_us = uint32_arg(o.Get("jitterUs"), "jitterUs");
    if (o.Has("engines")) cfg.engines = uint32_arg(o.Get("engines"), "engines");
  }
  cfg.max_transfer_size = folio;
  std::vector<dmacopy::CopyRegion> regions;
  for (size_t off = 0; off < len; off += folio) {
    regions.push_back({dst.Data() + off, src.Data() + off, std::min<size_t>(folio, len - off)});
  }
  cfg.wq_size = static_cast<uint32_t>(regions.size() + 1);
  dmacopy::SoftWorkQueue queue(cfg);
  size_t incomplete = 0;
  bool ok;
  {
    dmacopy::NaiveLastDescriptorCopy naive(queue, regions.size());
    ok = naive.copy(regions.data(), regions.size(), 5'000'000'000ull);
    // Inspect at the moment the strategy says "done", before anything else can finish.
    for (const dmacopy::CopyRegion& r : regions) {
      if (std::memcmp(r.dst, r.src, r.len) != 0) ++incomplete;
    }
  }  // drains the queue: no device write outlives this call
  Napi::Object out = Napi::Object::New(env);
  out.Set("returnedOk", Napi::Boolean::New(env, ok));
  out.Set("incompleteFolios", Napi::Number::New(env, static_cast<double>(incomplete)));
  out.Set("folios", Napi::Number::New(env, static_cast<double>(regions.size())));
  return out;
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
