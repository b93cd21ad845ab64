// Measurement hooks for scripts/ and the bench command. (The dcbm regression demo is test-only:
// native/core/test/support/naive_strategy.*, never compiled into the addon.)
// Not part of the public API.
#pragma once
#include <napi.h>

namespace dmacopy_addon {
// memcpyBound(dst, src, threads, chunk, kind) -> nanoseconds of a plain multi-threaded copy:
// kind 0 memcpy, 1 streaming stores (lib/native/abi.ts BoundKind).
Napi::Value MemcpyBound(const Napi::CallbackInfo& info);
// cpuFeatures() -> { movdir64b, enqcmd, waitpkg, movdiri, kernelEnqcmd }: what CPUID says (after
// the DMACOPY_CPU_FEATURES_MASK override), and whether the kernel enables ENQCMD.
Napi::Value CpuFeatures(const Napi::CallbackInfo& info);
}  // namespace dmacopy_addon
