// The yardstick benchmarks compare against: a plain multi-threaded copy of the same bytes, each
// thread copying a contiguous share chunk by chunk, with no queues, events or validation. Two
// kinds: the C library's memcpy (cached stores) and the streaming-store kernel the engine uses
// for large batches (StoreKind::NonTemporal). The bench takes the faster as the machine's bound.
#pragma once

#include <cstddef>
#include <cstdint>

#include "copy_kernels.h"

namespace dmacopy {

// The most threads a bound measurement starts (the addon refuses more).
constexpr unsigned kMaxBoundThreads = 1024;

// Copies len bytes with `threads` threads (chunk bytes per copy call, stores of `kind`) and
// returns the wall time in nanoseconds from releasing the helper threads (created before the
// clock starts, as an engine's threads are) to joining them. Streaming stores are fenced by each
// thread before the time is taken.
uint64_t memcpy_bound_ns(uint8_t* dst, const uint8_t* src, size_t len, unsigned threads, size_t chunk,
                         StoreKind kind = StoreKind::Cached);

}  // namespace dmacopy
