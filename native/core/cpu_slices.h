// A CPU batch's works cut into slices that every copy thread takes from, in order, until none is
// left (work sharing). Pinning work w to thread w made a batch as slow as its latest thread: on a
// 2-core machine the second thread woken by an async copy waited ~0.2 ms for the core the event
// loop was still using, and a thread preempted by the event loop mid-batch held its whole share
// back. With slices, a thread that starts late or is preempted simply takes fewer of them.
//
// Completion stays per work, as the pending counters in lib/ count it: a work's one report (all
// its regions and bytes) is posted by the thread that finishes its last slice, after every slice
// of it is in memory. No report is ever posted for a part of a work, so a batch cannot resolve
// while a slice of it is still being copied by another thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "copy_kernels.h"
#include "copy_region.h"

namespace dmacopy {

class CpuProgressSink;

struct CpuSlice {
  uint32_t work = 0;
  size_t begin = 0;  // first piece
  size_t end = 0;    // past the last piece
  // Pieces [begin, end) whole when len == 0; else bytes [off, off + len) of piece `begin` (a long
  // piece, such as a coalesced region-form work, is cut into several slices).
  size_t off = 0;
  size_t len = 0;
};

class SliceQueue {
 public:
  // Slices of about `grain` bytes: whole pieces grouped while shorter, long pieces cut. works
  // has k+1 boundaries into table (work w: pieces [works[w], works[w+1])); regions[w] is what
  // work w's report counts (its folio pieces). A work with no bytes has no slice and no report
  // (its count is 0: lib/ waits for nothing from it).
  //
  // threads > 0: guided slices. Each slice is a share of the bytes not yet sliced (left / (2 x
  // threads)), at most `grain` and at least kTailGrain (or the grain, if smaller): large first,
  // small at the end, so threads that start or run unevenly still finish within a small slice
  // of each other. threads == 0: every slice is `grain`. `bytes`: the pieces' total if the
  // caller knows it (0: summed here when the slices are guided).
  SliceQueue(std::shared_ptr<const std::vector<CopyRegion>> table, const std::vector<size_t>& works,
             const std::vector<uint32_t>& regions, size_t grain, uint64_t op_id, StoreKind store, CpuProgressSink* sink,
             unsigned threads = 0, uint64_t bytes = 0);
  // The smallest guided slice: 1 MiB, ~60 us of one thread's copy, is where a slice's take and
  // its cache-line boundary stop being noise.
  static constexpr size_t kTailGrain = size_t{1} << 20;

  // The grain (the largest slice) for a batch of `bytes` on `threads` threads: about four
  // slices a thread, between 1 and 16 MiB (a take per slice; guided slices shrink from it).
  static size_t grain_for(uint64_t bytes, unsigned threads);

  // The next slice to copy, or null when every slice was taken. Any thread.
  const CpuSlice* take();
  // Copies a taken slice (bytes in memory, streaming stores fenced), then counts it; the thread
  // that completes a work posts its report. Returns the bytes copied; *regions gets the work's
  // regions when this slice completed it, else 0.
  uint64_t copy(const CpuSlice& s, uint32_t* regions);

  size_t slices() const { return slices_.size(); }
  // Blocks until every slice was copied (by anyone). A copyBatchSync caller waits on this, not
  // on the jobs it queued: a job that has not started yet (its thread busy, or SCHED_IDLE on a
  // loaded machine) finds nothing left and touches no caller memory, so nobody waits for it.
  void wait_all_copied();
  uint64_t op_id() const { return op_id_; }

 private:
  std::shared_ptr<const std::vector<CopyRegion>> table_;
  std::vector<CpuSlice> slices_;
  std::atomic<size_t> next_{0};
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  size_t copied_ = 0;  // guarded by done_mu_
  // Per work: slices not yet finished, the regions and bytes its report carries.
  std::unique_ptr<std::atomic<uint32_t>[]> left_;
  std::vector<uint32_t> regions_;
  std::vector<uint64_t> bytes_;
  uint64_t op_id_;
  StoreKind store_;
  CpuProgressSink* sink_;
};

}  // namespace dmacopy
