// EngineHandle: the JavaScript handle of one engine. It owns the engine core (CPU threads, and
// DSA queues with their poller once a DSA backend is open) and turns one copy call into a
// validated plan, which the core CopyExecutor runs. All policy (path choice, splitting, pending counters,
// reports) lives in lib/; this class only executes and re-checks.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>
#include <unordered_map>

#include "event_channel.h"
#include "overlap_tracker.h"

#include "copy_executor.h"
#include "cpu_copy_pool.h"
#include "dsa_channels.h"
#include "event_router.h"
#include "user_queue.h"

namespace dmacopy_addon {

class EventChannel;

// What outlives the JS handle if the environment is torn down first (or the other way round).
struct EngineResources {
  std::unique_ptr<dmacopy::CpuCopyPool> cpu;
  // DSA channels (software device or /dev/dsa queues) with their poller; null on the CPU backend.
  // Declared after cpu: destroyed first, since its fallbacks run on the CPU copy pool.
  std::unique_ptr<dmacopy::DsaChannels> dsa;
  // What opening each /dev/dsa queue gave (in the order JavaScript listed them).
  std::vector<dmacopy::OpenResult> open_results;
  // Runs copies over cpu and dsa. Declared after both: destroyed first, it only refers to them.
  std::unique_ptr<dmacopy::CopyExecutor> executor;
  uint64_t non_temporal_min_bytes = 0;  // batches at least this large stream their stores
  bool closed = false;
  // Prepared batches whose plan is still held (released or collected ones are not counted).
  std::atomic<uint64_t> prepared_live{0};
  void shutdown();
};

class EngineHandle : public Napi::ObjectWrap<EngineHandle> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit EngineHandle(const Napi::CallbackInfo& info);
  ~EngineHandle() override;

 private:
  // Every method runs under this (DefineClass): node-addon-api turns only Napi::Error into a
  // JavaScript exception, and any other C++ exception that escaped would abort the process.
  template <Napi::Value (EngineHandle::*Method)(const Napi::CallbackInfo&)>
  Napi::Value Guarded(const Napi::CallbackInfo& info);
  // The constructor's body, under the same guard.
  void Init(const Napi::CallbackInfo& info);

  // copy(mode, opId, buffers, form, table, bounds) -> Uint32Array of descriptors per work.
  // mode 0: inline on the calling thread; 1: synchronous, caller plus pool; 2: asynchronous,
  // progress arrives as events.
  Napi::Value Copy(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  // queues() -> [{ ok, code, errno, path, instruction, mmapErrno, probeStatus, swerrAtOpen }]
  // per /dev/dsa queue, in the order lib/ listed them: codes and numbers only; lib/ words them.
  Napi::Value Queues(const Napi::CallbackInfo& info);
  // Chunked batches (large list forms are validated and submitted chunk by chunk):
  // endBatch(opId) forgets the batch's overlap history.
  Napi::Value EndBatch(const Napi::CallbackInfo& info);
  // registerSync(opId): the op's events are counted natively from now on, not sent to JS.
  // waitSync(opId, expected, totals) blocks until `expected` descriptors completed and writes
  // the summed events into totals (a Float64Array in event layout).
  Napi::Value RegisterSync(const Napi::CallbackInfo& info);
  Napi::Value WaitSync(const Napi::CallbackInfo& info);
  // Prepared batches (engine.prepare): validated, overlap-checked and split once.
  // prepare(buffers, form, table, bounds, cpuWorksFrom) -> an opaque plan (an External; its
  // finalizer frees the plan if releasePrepared was never called).
  Napi::Value Prepare(const Napi::CallbackInfo& info);
  // runPrepared(plan, mode, opId, buffers, counts, totals) -> descriptors in all works. buffers
  // must be the very memory the plan was made from (checked each run: a detached buffer throws
  // ERR_DMACOPY_DETACHED); counts (a Uint32Array with one entry per work) receives what each
  // work's events will sum to; totals as in copy().
  Napi::Value RunPrepared(const Napi::CallbackInfo& info);
  // releasePrepared(plan): frees the plan now (jobs still running co-own their pieces).
  Napi::Value ReleasePrepared(const Napi::CallbackInfo& info);
  // Runs a request and turns core failures into coded errors.
  void execute(Napi::Env env, const dmacopy::CopyRequest& req, uint32_t* counts, dmacopy::EventRecord* totals);

  std::unordered_map<uint64_t, dmacopy::OverlapTracker> trackers_;
  // Reused by every copy() on this (JS) thread, so a large batch does not fault its plan's pages
  // in again each time: the folios before the split, and the split plans (jobs hand those back).
  std::vector<dmacopy::CopyRegion> folios_scratch_;
  std::shared_ptr<dmacopy::WorkPiecesPool> pieces_pool_ = dmacopy::WorkPiecesPool::create();
  // The history memory of the last chunked batch, for the next one's OverlapTracker.
  std::vector<dmacopy::CopyRegion> tracker_spare_;
  // Chunked synchronous batches (registerSync .. waitSync); each entry unregisters on erase.
  std::unordered_map<uint64_t, std::unique_ptr<dmacopy::SyncRegistration>> sync_registrations_;

  std::shared_ptr<EngineResources> core_;
};

}  // namespace dmacopy_addon
