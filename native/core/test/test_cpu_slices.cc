// Work sharing (cpu_slices.h): threads take slices of a batch; each work is reported once, by
// whichever thread finishes its last slice, and only once every byte of it is in memory.
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu_copy_pool.h"
#include "cpu_slices.h"

using namespace dmacopy;

namespace {

// Checks, at each report, that every byte of the reported work is already in place.
struct CheckingSink : CpuProgressSink {
  const std::vector<CopyRegion>* table = nullptr;
  const std::vector<size_t>* works = nullptr;
  std::mutex mu;
  std::vector<int> reports;
  std::vector<uint64_t> regions, bytes;
  bool early = false;
  void job_progress(uint64_t, uint32_t w, uint32_t r, uint64_t b) override {
    bool complete = true;
    for (size_t i = (*works)[w]; i < (*works)[w + 1]; ++i)
      complete = complete && std::memcmp((*table)[i].dst, (*table)[i].src, (*table)[i].len) == 0;
    std::lock_guard<std::mutex> lock(mu);
    early = early || !complete;
    ++reports[w];
    regions[w] += r;
    bytes[w] += b;
  }
};

}  // namespace

TEST("grain: about four slices a thread, between 1 and 16 MiB") {
  CHECK_EQ(SliceQueue::grain_for(64u << 20, 2), size_t(8u << 20));
  CHECK_EQ(SliceQueue::grain_for(1u << 30, 2), size_t(16u << 20));
  CHECK_EQ(SliceQueue::grain_for(1u << 20, 2), size_t(1u << 20));
  CHECK_EQ(SliceQueue::grain_for(0, 0), size_t(1u << 20));
}

TEST("slices cover every piece once, cut long pieces and group short ones within a work") {
  std::vector<uint8_t> s(10000), d(10000);
  auto table = std::make_shared<std::vector<CopyRegion>>();
  // Work 0: one 2500-byte piece (cut by a 1000-byte grain); work 1: 300-byte pieces (grouped
  // three to a slice); work 2: empty.
  table->push_back({d.data(), s.data(), 2500});
  for (int i = 0; i < 7; ++i) table->push_back({d.data() + 2500 + 300 * i, s.data() + 2500 + 300 * i, 300});
  std::vector<size_t> works = {0, 1, 8, 8};
  std::vector<uint32_t> regions = {625, 7, 0};
  SliceQueue q(table, works, regions, 1000, 1, StoreKind::Cached, nullptr);
  CHECK_EQ(q.slices(), size_t(3 + 3));  // 1000+1000+500, then 3+3+1 pieces
  uint64_t total = 0, reported = 0;
  while (const CpuSlice* sl = q.take()) {
    uint32_t r = 0;
    total += q.copy(*sl, &r);
    reported += r;
  }
  CHECK_EQ(total, uint64_t(2500 + 2100));
  CHECK_EQ(reported, uint64_t(632));
  CHECK(std::memcmp(d.data(), s.data(), 4600) == 0);
  CHECK(q.take() == nullptr);
}

TEST("guided slices: large first, 1 MiB at the end, whole pages, every byte once") {
  // Two works of one coalesced 32 MiB piece each (a region-form batch on 2 threads), no copy:
  // only the cut is checked.
  static uint8_t dummy;
  auto table = std::make_shared<std::vector<CopyRegion>>();
  table->push_back({&dummy, &dummy, size_t{32} << 20});
  table->push_back({&dummy, &dummy, size_t{32} << 20});
  std::vector<size_t> works = {0, 1, 2};
  std::vector<uint32_t> regions = {8192, 8192};
  const size_t grain = SliceQueue::grain_for(uint64_t{64} << 20, 2);
  SliceQueue q(table, works, regions, grain, 1, StoreKind::Cached, nullptr, 2);
  std::vector<size_t> sizes;
  uint64_t covered[2] = {0, 0};
  while (const CpuSlice* sl = q.take()) {
    CHECK(sl->len != 0);
    CHECK_EQ(sl->off % 4096, size_t(0));
    CHECK_EQ(sl->off, size_t(covered[sl->work]));  // in order, no gap, no overlap
    covered[sl->work] += sl->len;
    sizes.push_back(sl->len);
  }
  CHECK_EQ(covered[0], uint64_t{32} << 20);
  CHECK_EQ(covered[1], uint64_t{32} << 20);
  CHECK_EQ(sizes.front(), grain);
  CHECK(sizes.size() > size_t(8));  // more than 64 MiB / 8 MiB: the tail is cut finer
  // Non-increasing across the batch, except where a work's piece ends (its remainder).
  size_t small_tail = 0;
  for (size_t i = sizes.size() - 4; i < sizes.size(); ++i) small_tail += sizes[i] <= (size_t{1} << 20);
  CHECK_EQ(small_tail, size_t(4));
  // The caller's byte count, when given, cuts the same slices as the sum taken here.
  SliceQueue told(table, works, regions, grain, 1, StoreKind::Cached, nullptr, 2, uint64_t{64} << 20);
  CHECK_EQ(told.slices(), sizes.size());
  // Fixed slices (threads 0) stay as they were: 8 of the grain.
  SliceQueue fixed(table, works, regions, grain, 1, StoreKind::Cached, nullptr);
  CHECK_EQ(fixed.slices(), size_t(8));
}

TEST("threads sharing random batches: byte-exact, one report per work, never before its bytes") {
  std::mt19937_64 rng(11);
  CpuCopyPool pool(3);
  for (int iter = 0; iter < 60; ++iter) {
    const size_t k = 1 + rng() % 5;
    const size_t bytes = 1 + rng() % (3u << 20);
    std::vector<uint8_t> src(bytes), dst(bytes, 0);
    for (auto& c : src) c = static_cast<uint8_t>(rng());
    auto table = std::make_shared<std::vector<CopyRegion>>();
    std::vector<size_t> works = {0};
    std::vector<uint32_t> regions;
    // Cut the bytes into k works; a work is one long piece or many short ones.
    size_t at = 0;
    for (size_t w = 0; w < k; ++w) {
      const size_t end = w + 1 == k ? bytes : at + (bytes - at) * (rng() % 100) / 100 / (k - w);
      if ((rng() & 1) && end > at) {
        table->push_back({dst.data() + at, src.data() + at, end - at});
        regions.push_back(static_cast<uint32_t>(1 + rng() % 1000));  // a coalesced work stands for many
      } else {
        uint32_t n = 0;
        for (size_t p = at; p < end;) {
          const size_t len = std::min<size_t>(end - p, 1 + rng() % 9000);
          table->push_back({dst.data() + p, src.data() + p, len});
          p += len;
          ++n;
        }
        regions.push_back(n);
      }
      works.push_back(table->size());
      at = end;
    }
    CheckingSink sink;
    sink.table = table.get();
    sink.works = &works;
    sink.reports.assign(k, 0);
    sink.regions.assign(k, 0);
    sink.bytes.assign(k, 0);
    const StoreKind store = (rng() & 1) ? StoreKind::NonTemporal : StoreKind::Cached;
    // Fixed or guided slices; a 2 MiB grain makes guided ones shrink to the 1 MiB tail.
    const size_t grain = rng() % 4 == 0 ? size_t{2} << 20 : 1 + rng() % (512u << 10);
    auto q = std::make_shared<SliceQueue>(table, works, regions, grain, 7, store, &sink, rng() % 2 ? 3 : 0);
    std::atomic<int> done{0};
    const int takers = 1 + static_cast<int>(rng() % 3);
    for (int j = 0; j < takers; ++j) {
      CpuCopyJob job;
      job.slices = q;
      job.done = [&] { done++; };
      pool.submit(static_cast<unsigned>(j), std::move(job));
    }
    while (done.load() < takers) std::this_thread::yield();
    CHECK(src == dst);
    CHECK(!sink.early);
    for (size_t w = 0; w < k; ++w) {
      uint64_t wb = 0;
      for (size_t i = works[w]; i < works[w + 1]; ++i) wb += (*table)[i].len;
      CHECK_EQ(sink.reports[w], wb ? 1 : 0);  // an empty work has no slice and no report
      CHECK_EQ(sink.regions[w], wb ? uint64_t(regions[w]) : 0u);
      CHECK_EQ(sink.bytes[w], wb);
    }
  }
}

DMACOPY_TEST_MAIN
