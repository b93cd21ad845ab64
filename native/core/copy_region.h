// One contiguous copy: the unit the CPU copy pool, the DSA descriptor builder and the fallback
// path all speak. Pointers are real process addresses that the Node-API layer derived from
// buffers it validated; nothing here ever comes from JavaScript as a number.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dmacopy {

struct CopyRegion {
  uint8_t* dst;
  const uint8_t* src;
  size_t len;
};

// Share i of n units split k ways, exactly as the kernel's folios_copy_dma() splits folios
// across channels: share(i) = n*(i+1)/k - n*i/k. The first share starts at share_begin(n, 0, k).
inline uint64_t share_begin(uint64_t n, uint64_t i, uint64_t k) {
  // n*i can overflow for byte counts near 2^64 / k; split the multiplication.
  return (n / k) * i + ((n % k) * i) / k;
}

}  // namespace dmacopy
