#include "memcpy_bound.h"

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "copy_region.h"

namespace dmacopy {

uint64_t memcpy_bound_ns(uint8_t* dst, const uint8_t* src, size_t len, unsigned threads, size_t chunk) {
  if (threads == 0) threads = 1;
  if (chunk == 0) chunk = len ? len : 1;
  // Threads are started first and released together, so thread creation is not timed.
  std::atomic<bool> go{false};
  std::atomic<unsigned> finished{0};
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      size_t b = share_begin(len, t, threads), e = share_begin(len, t + 1, threads);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      for (size_t o = b; o < e; o += chunk) std::memcpy(dst + o, src + o, std::min(chunk, e - o));
      finished.fetch_add(1, std::memory_order_acq_rel);
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  while (finished.load(std::memory_order_acquire) < threads) std::this_thread::yield();
  auto t1 = std::chrono::steady_clock::now();
  for (auto& th : pool) th.join();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
}

}  // namespace dmacopy
