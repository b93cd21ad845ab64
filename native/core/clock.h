// The one monotonic clock and the one spin-wait hint of the native code. Header-only so the hot
// loops (poller, software device, submission retries) inline them.
#pragma once

#include <time.h>

#include <cstdint>

namespace dmacopy {

// Monotonic nanoseconds (CLOCK_MONOTONIC): deadlines, backoff and pacing all use this clock.
inline uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// A spin-wait hint: PAUSE on x86 (yields the core to its sibling thread and avoids the
// memory-order mis-speculation penalty when the spin ends); a compiler barrier elsewhere.
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  asm volatile("pause" ::: "memory");
#else
  asm volatile("" ::: "memory");
#endif
}

}  // namespace dmacopy
