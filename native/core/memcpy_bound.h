// The yardstick benchmarks compare against: a plain multi-threaded C memcpy of the same bytes,
// each thread copying a contiguous share chunk by chunk, with no queues, events or validation.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmacopy {

// Copies len bytes with `threads` threads (chunk bytes per memcpy call) and returns the wall
// time in nanoseconds, thread start included (as any engine pays it once per batch or not at all).
uint64_t memcpy_bound_ns(uint8_t* dst, const uint8_t* src, size_t len, unsigned threads, size_t chunk);

}  // namespace dmacopy
