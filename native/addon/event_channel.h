// The one way native threads talk to JavaScript: completion events are queued under a mutex and
// delivered in batches through a single thread-safe function per environment (node-usb's
// model). A burst of completions costs one JS call, not one per descriptor.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "event_record.h"
#include "event_router.h"

namespace dmacopy_addon {

using dmacopy::EventRecord;
using dmacopy::kEventFields;

// The downstream end of the core's EventRouter: events no synchronous caller claimed are queued
// here and delivered to JavaScript. Engines post to router(), never to the channel directly.
class EventChannel final : public dmacopy::EventRecordSink {
 public:
  EventChannel(Napi::Env env, Napi::Function handler);
  ~EventChannel() override;

  // Where engines send their events (CPU jobs and the DSA poller): sync ops are summed there,
  // everything else comes here.
  dmacopy::EventRouter& router() { return router_; }

  // Any thread. Events for the same (op, work) that arrive back to back are merged.
  void post_records(const EventRecord* records, size_t n) override;

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
  dmacopy::EventRouter router_{this};
};

}  // namespace dmacopy_addon
