// Measurement and demonstration hooks for scripts/, the bench command and the regression tests.
// Not part of the public API.
#pragma once
#include <napi.h>

namespace dmacopy_addon {
// memcpyBound(dst, src, threads, chunk) -> nanoseconds of a plain multi-threaded memcpy.
Napi::Value MemcpyBound(const Napi::CallbackInfo& info);
// naiveCopy(dst, src, folioSize, { seed, jitterUs, engines }) -> { returnedOk, incompleteFolios, folios }:
// the dcbm "wait for the last descriptor" strategy against the software device, with the
// destination inspected the moment it returns.
Napi::Value NaiveCopy(const Napi::CallbackInfo& info);
// cpuFeatures() -> { movdir64b, enqcmd, waitpkg, movdiri, kernelEnqcmd }: what CPUID says (after
// the DMACOPY_CPU_FEATURES_MASK override), and whether the kernel enables ENQCMD.
Napi::Value CpuFeatures(const Napi::CallbackInfo& info);
}  // namespace dmacopy_addon
