// Executes one validated, split batch (batch_plan's WorkPieces): inline on the calling thread,
// synchronously (the caller copies one share, then waits), or asynchronously (progress arrives
// as events). With a device, works [0, cpu_works_from) go to the DSA channels and the rest are
// the CPU's share, copied by the pool beside the device. Owns the per-work device deadline.
//
// Exception safety: everything a queued job or work captures is shared-owned (an InFlight
// counter), never a stack frame. If dispatch throws part-way (bad_alloc), run() first waits
// until every job and work it already queued has finished — and posted its events — so no copy
// can land after the caller's buffers are released, then undoes its sync registration and
// rethrows. The executor is usable again afterwards.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "batch_plan.h"
#include "copy_kernels.h"
#include "cpu_copy_pool.h"
#include "dsa_channels.h"
#include "event_record.h"
#include "event_router.h"

namespace dmacopy {

enum class CopyMode : uint32_t { Inline = 0, Sync = 1, Async = 2 };

struct CopyRequest {
  uint64_t op_id = 0;
  std::shared_ptr<const WorkPieces> plan;  // jobs co-own it until their last byte
  CopyMode mode = CopyMode::Inline;
  // With a device: works from here on are the CPU's share (the number of works = all device).
  size_t cpu_works_from = SIZE_MAX;
  StoreKind store = StoreKind::Cached;
  // The plan's bytes when the caller knows them (0: counted here when needed).
  uint64_t bytes = 0;
  // A prepared batch on a device: its descriptors, built once over this same plan (may be null).
  std::shared_ptr<const PreparedDescriptors> prebuilt;
};

class CopyExecutor {
 public:
  // device may be null (CPU backend). timeout_ms is the device deadline of a work before size
  // scaling (lib/defaults.ts owns its value).
  CopyExecutor(CpuCopyPool& cpu, DsaChannels* device, double timeout_ms)
      : cpu_(cpu), device_(device), timeout_ms_(timeout_ms) {}

  // Runs the request. counts receives, per work, what its events' `completed` will sum to
  // (descriptors for a device work, folio pieces for a CPU one, coalesced or not); it has plan->work_begin.size() - 1
  // entries. events receives progress (required for Async, and for Sync with a device; it may
  // be null otherwise). sync_totals (Sync with a device only; may be null) receives the sum of
  // the op's events. Returns when: Inline/Sync — every byte is in memory; Async — everything is
  // queued. Throws what dispatch threw, after the already-queued part finished (see above).
  void run(const CopyRequest& req, uint32_t* counts, EventRouter* events, EventRecord* sync_totals);

  // A work's device deadline (CLOCK_MONOTONIC ns): timeout_ms from now, stretched by 1 ms per
  // MiB so that a slow but healthy device is not abandoned on a big work (it must beat ~1 GB/s).
  static uint64_t work_deadline(uint64_t now_ns, double timeout_ms, uint64_t work_bytes);

 private:
  void run_inline(const CopyRequest& req, uint32_t* counts);
  void run_cpu(const CopyRequest& req, uint32_t* counts, EventRouter* events);
  void run_shared(const CopyRequest& req, EventRouter* events);
  void run_device(const CopyRequest& req, uint32_t* counts, EventRouter* events, EventRecord* sync_totals);

  CpuCopyPool& cpu_;
  DsaChannels* const device_;
  const double timeout_ms_;
};

}  // namespace dmacopy
