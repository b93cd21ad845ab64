// The one way native threads talk to JavaScript: completion events are queued under a mutex and
// delivered in batches through a single thread-safe function per environment (node-usb's
// model). A burst of completions costs one JS call, not one per descriptor.
#pragma once

#include <napi.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "cpu_engine.h"

namespace dmacopy_addon {

// Fields of one event as JavaScript receives them, in a Float64Array (lib/native.ts mirrors this).
enum EventField : size_t {
  kEvOp, kEvWork, kEvCompleted, kEvDeviceBytes, kEvCpuBytes,
  kEvFallbackTimeout, kEvFallbackError, kEvFallbackPageFault, kEvFallbackSubmit,
  kEvOutOfOrder, kEvPageFaultRetries,
  kEventFields
};

struct EventRecord {
  double f[kEventFields];
};

class EventChannel final : public dmacopy::CpuJobSink {
 public:
  EventChannel(Napi::Env env, Napi::Function handler);
  ~EventChannel() override;

  // Any thread. Events for the same (op, work) that arrive back to back are merged.
  void post(const EventRecord& record);
  void job_progress(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) override;

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
  };
  static void deliver(const std::shared_ptr<Queue>& queue, Napi::Env env, Napi::Function handler);

  std::shared_ptr<Queue> queue_ = std::make_shared<Queue>();
  Napi::ThreadSafeFunction tsfn_;
};

}  // namespace dmacopy_addon
