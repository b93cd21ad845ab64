#include "cpu_slices.h"

#include <algorithm>

#include "cpu_copy_pool.h"

namespace dmacopy {

SliceQueue::SliceQueue(std::shared_ptr<const std::vector<CopyRegion>> table, const std::vector<size_t>& works,
                       const std::vector<uint32_t>& regions, size_t grain, uint64_t op_id, StoreKind store,
                       CpuProgressSink* sink, unsigned threads, uint64_t bytes)
    : table_(std::move(table)), regions_(regions), op_id_(op_id), store_(store), sink_(sink) {
  const std::vector<CopyRegion>& t = *table_;
  const size_t k = works.size() - 1;
  if (grain == 0) grain = 1;
  left_.reset(new std::atomic<uint32_t>[k]);
  bytes_.assign(k, 0);
  // Guided slices need the batch's bytes; a caller that knows them saves a pass over the table
  // (65,536 pieces: 1.5 MiB read again, ~30 us of a 200 us prepared re-run).
  uint64_t remaining = bytes;
  if (threads != 0 && remaining == 0)
    for (size_t i = works[0]; i < works[k]; ++i) remaining += t[i].len;
  // The size of the next slice: the grain, or (guided, threads > 0) a share of what is left,
  // so the last slices are small and the threads finish together. With fixed slices a thread
  // that started late (a woken vCPU takes ~0.1 ms to run here) or ran slower ended up to a
  // whole 16 MiB slice (~1 ms) after the other.
  const size_t tail = std::min(grain, kTailGrain);
  auto next_grain = [&]() -> size_t {
    if (threads == 0) return grain;
    size_t g = static_cast<size_t>(std::min<uint64_t>(grain, remaining / (2ull * threads)));
    if (g >= 4096) g &= ~size_t{4095};  // whole pages, as grain_for's
    return std::max(g, tail);
  };
  for (size_t w = 0; w < k; ++w) {
    uint32_t n = 0;
    size_t i = works[w];
    const size_t e = works[w + 1];
    while (i < e) {
      const size_t len = t[i].len;
      size_t g = next_grain();
      if (len > g) {
        // A long piece: cut in slices (the last one takes the remainder).
        for (size_t off = 0; off < len; off += g, g = next_grain()) {
          const size_t cut = std::min(g, len - off);
          slices_.push_back(CpuSlice{static_cast<uint32_t>(w), i, i + 1, off, cut});
          remaining -= cut;
          ++n;
        }
        bytes_[w] += len;
        ++i;
        continue;
      }
      // Whole pieces while they fit the grain (at least one).
      CpuSlice s{static_cast<uint32_t>(w), i, i, 0, 0};
      size_t sum = 0;
      while (i < e && t[i].len <= g && (sum == 0 || sum + t[i].len <= g)) sum += t[i++].len;
      s.end = i;
      bytes_[w] += sum;
      remaining -= sum;
      slices_.push_back(s);
      ++n;
    }
    left_[w].store(n, std::memory_order_relaxed);
  }
}

size_t SliceQueue::grain_for(uint64_t bytes, unsigned threads) {
  constexpr uint64_t kMin = uint64_t{1} << 20, kMax = uint64_t{16} << 20;
  uint64_t g = bytes / (4ull * (threads ? threads : 1));
  // Whole pages: two threads never write the same destination line at a slice boundary.
  g = std::max(kMin, std::min(kMax, g)) & ~uint64_t{4095};
  return static_cast<size_t>(g);
}

const CpuSlice* SliceQueue::take() {
  const size_t i = next_.fetch_add(1, std::memory_order_relaxed);
  return i < slices_.size() ? &slices_[i] : nullptr;
}

uint64_t SliceQueue::copy(const CpuSlice& s, uint32_t* regions) {
  *regions = 0;
  const std::vector<CopyRegion>& t = *table_;
  uint64_t bytes = 0;
  if (s.len != 0) {
    const CopyRegion& r = t[s.begin];
    copy_bytes(r.dst + s.off, r.src + s.off, s.len, store_);
    bytes = s.len;
  } else {
    for (size_t i = s.begin; i < s.end; ++i) {
      // Neighbours that continue each other (folios in order) are copied as one run.
      CopyRegion r = t[i];
      while (i + 1 < s.end && t[i + 1].src == r.src + r.len && t[i + 1].dst == r.dst + r.len) r.len += t[++i].len;
      copy_bytes(r.dst, r.src, r.len, store_);
      bytes += r.len;
    }
  }
  // Streaming stores are globally visible before the slice counts as done.
  if (store_ == StoreKind::NonTemporal) store_fence();
  // acq_rel: the thread that finishes the work sees every other slice's bytes before it reports.
  if (left_[s.work].fetch_sub(1, std::memory_order_acq_rel) == 1) {
    *regions = regions_[s.work];
    if (sink_) sink_->job_progress(op_id_, s.work, regions_[s.work], bytes_[s.work]);
  }
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    if (++copied_ == slices_.size()) done_cv_.notify_all();
  }
  return bytes;
}

void SliceQueue::wait_all_copied() {
  std::unique_lock<std::mutex> lock(done_mu_);
  done_cv_.wait(lock, [&] { return copied_ == slices_.size(); });
}

}  // namespace dmacopy
