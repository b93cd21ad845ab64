// The one way native threads talk to JavaScript: completion events are queued under a mutex and
// delivered in batches through a single thread-safe function per environment (node-usb's
// model). A burst of completions costs one JS call, not one per descriptor.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <condition_variable>
#include <unordered_map>

#include "completion_event.h"
#include "cpu_copy_pool.h"

namespace dmacopy_addon {

// Fields of one event as JavaScript receives them, in a Float64Array (lib/native.ts mirrors this).
enum EventField : size_t {
  kEvOp,
  kEvWork,
  kEvCompleted,
  kEvDeviceBytes,
  kEvCpuBytes,
  kEvFallbackTimeout,
  kEvFallbackError,
  kEvFallbackPageFault,
  kEvFallbackSubmit,
  kEvOutOfOrder,
  kEvPageFaultRetries,
  kEventFields
};

struct EventRecord {
  double f[kEventFields];
};

// A synchronous copy (copyBatchSync) waits on the calling thread for its descriptors instead of
// receiving events in JavaScript: its events are counted here and never queued.
class SyncWaiter {
 public:
  void add(const struct EventRecord& record);
  // Blocks until `expected` descriptors completed (events may arrive before expected is known),
  // then returns the sum of every event of the op.
  struct EventRecord wait_for(uint64_t expected);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  double totals_[16] = {};
};

class EventChannel final : public dmacopy::CpuProgressSink, public dmacopy::EventSink {
 public:
  EventChannel(Napi::Env env, Napi::Function handler);
  ~EventChannel() override;

  // Any thread. Events for the same (op, work) that arrive back to back are merged.
  void post(const EventRecord& record);
  void job_progress(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) override;
  // EventSink: the DSA poller's coalesced events.
  void post(const dmacopy::CompletionEvent* ev, size_t n) override;

  // Routes the events of op_id to `waiter` instead of JavaScript until unregistered.
  void register_sync(uint64_t op_id, SyncWaiter* waiter);
  void unregister_sync(uint64_t op_id);

  // JS thread: keep the event loop alive while copies are in flight, and only then.
  void ref(Napi::Env env);
  void unref(Napi::Env env);

  // JS thread (or env teardown): stop delivering. Events posted afterwards are dropped.
  void close();

 private:
  // Shared with queued thread-safe calls, which may run after the channel itself is gone.
  struct Queue {
    std::mutex mu;
    std::vector<EventRecord> pending;
    std::unordered_map<uint64_t, SyncWaiter*> sync_waiters;
    bool closed = false;
    bool function_gone = false;  // the runtime finalized the thread-safe function
  };
  bool function_gone();
  // Queues one record; returns true if JavaScript must be woken. Caller holds queue_->mu.
  bool enqueue_locked(const EventRecord& record);
  void wake();
  static void deliver(const std::shared_ptr<Queue>& queue, Napi::Env env, Napi::Function handler);

  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  Napi::ThreadSafeFunction tsfn_;
};

}  // namespace dmacopy_addon
