#include "memcpy_bound.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "copy_region.h"

namespace dmacopy {

uint64_t memcpy_bound_ns(uint8_t* dst, const uint8_t* src, size_t len, unsigned threads, size_t chunk, StoreKind kind) {
  if (threads == 0) threads = 1;
  if (threads > kMaxBoundThreads) threads = kMaxBoundThreads;
  if (chunk == 0) chunk = len ? len : 1;
  // Helper threads are started first and released together, so thread creation is not timed;
  // the calling thread copies share 0 itself, so there are never more runnable threads than
  // `threads` (a spinning waiter would steal a core from the copy on a small machine).
  std::atomic<bool> go{false};
  auto copy_share = [&](unsigned t) {
    size_t b = share_begin(len, t, threads), e = share_begin(len, t + 1, threads);
    if (kind == StoreKind::Cached) {
      for (size_t o = b; o < e; o += chunk) std::memcpy(dst + o, src + o, std::min(chunk, e - o));
    } else {
      // Each chunk through the engine's copy kernel (regions under kMinNonTemporalRegion are
      // cached there too), then one fence: the bytes are in memory when the thread ends.
      for (size_t o = b; o < e; o += chunk) copy_bytes(dst + o, src + o, std::min(chunk, e - o), kind);
      store_fence();
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads);
  std::atomic<bool> cancelled{false};
  try {
    for (unsigned t = 1; t < threads; ++t) {
      pool.emplace_back([&, t] {
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        if (!cancelled.load(std::memory_order_acquire)) copy_share(t);
      });
    }
  } catch (...) {
    // A thread the system would not start (EAGAIN at a task limit): let the started ones go
    // without copying and join them before rethrowing; a joinable std::thread destroyed with the
    // vector would terminate the process.
    cancelled.store(true, std::memory_order_release);
    go.store(true, std::memory_order_release);
    for (auto& th : pool) th.join();
    throw;
  }
  auto t0 = std::chrono::steady_clock::now();
  go.store(true, std::memory_order_release);
  copy_share(0);
  for (auto& th : pool) th.join();  // join is the wait: no spinning beside the copy
  auto t1 = std::chrono::steady_clock::now();
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
}

}  // namespace dmacopy
