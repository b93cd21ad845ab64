// The byte-moving loops. Cached copies use the C library's memcpy (glibc picks the best variant
// for the CPU at load time). Non-temporal copies stream the destination past the caches: for
// batches much larger than the last-level cache they avoid the read-for-ownership of every
// destination line and the eviction of useful data, which is worth up to ~1.5x in bandwidth.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmacopy {

enum class StoreKind : uint8_t { Cached, NonTemporal };

// Copies len bytes; src and dst must not overlap. Non-temporal stores are weakly ordered:
// call store_fence() before publishing that the bytes are there.
void copy_bytes(uint8_t* dst, const uint8_t* src, size_t len, StoreKind kind);

// Orders preceding non-temporal stores before later stores (sfence).
void store_fence();

// Regions shorter than this are always copied with cached stores: streaming a few lines costs
// more than it saves.
constexpr size_t kMinNonTemporalRegion = 4096;

}  // namespace dmacopy
