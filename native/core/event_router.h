// Where every progress event of the engines goes first. Events of an op registered as
// synchronous are summed into that op's SyncWaiter (a native caller blocks on it, JavaScript
// never sees them); all others are forwarded, in order per posting thread, to the downstream
// sink (the addon's channel to JavaScript). Keeping this routing in the core lets the
// synchronous copy protocol be tested without Node-API.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "completion_event.h"
#include "cpu_copy_pool.h"
#include "event_record.h"

namespace dmacopy {

// Receives the events no synchronous caller claimed. Any thread; records are valid only
// during the call.
class EventRecordSink {
 public:
  virtual ~EventRecordSink() = default;
  virtual void post_records(const EventRecord* records, size_t n) = 0;
};

// The summed events of one synchronous op. Shared between the router (which adds to it) and
// the waiting caller, so neither can outlive the other's use of it.
class SyncWaiter {
 public:
  void add(const EventRecord& record);
  // Blocks until `expected` descriptors completed (events may arrive before expected is
  // known), then returns the sum of every event of the op (kEvOp and kEvWork are zero).
  EventRecord wait_for(uint64_t expected);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  EventRecord totals_{};
};

class EventRouter final : public CpuProgressSink, public EventSink {
 public:
  // downstream may be null (events nobody waits for are then dropped: core tests, CPU-only).
  explicit EventRouter(EventRecordSink* downstream) : downstream_(downstream) {}

  void post(const EventRecord& record) { post(&record, 1); }
  void post(const EventRecord* records, size_t n);
  // CpuProgressSink (CPU copy pool threads).
  void job_progress(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) override;
  // EventSink (the poller's coalesced events).
  void post(const CompletionEvent* ev, size_t n) override;

  // Routes the events of op_id to waiter until unregister_sync(op_id). Prefer SyncRegistration.
  void register_sync(uint64_t op_id, std::shared_ptr<SyncWaiter> waiter);
  // After this returns the router never touches that op's waiter again.
  void unregister_sync(uint64_t op_id);

 private:
  EventRecordSink* const downstream_;
  std::mutex mu_;
  std::unordered_map<uint64_t, std::shared_ptr<SyncWaiter>> sync_waiters_;
};

// RAII: the op's events go to the waiter for as long as this object lives, on every exit path
// (return or exception).
class SyncRegistration {
 public:
  SyncRegistration(EventRouter& router, uint64_t op_id)
      : router_(router), op_id_(op_id), waiter_(std::make_shared<SyncWaiter>()) {
    router_.register_sync(op_id_, waiter_);
  }
  ~SyncRegistration() { router_.unregister_sync(op_id_); }
  SyncRegistration(const SyncRegistration&) = delete;
  SyncRegistration& operator=(const SyncRegistration&) = delete;

  SyncWaiter& waiter() { return *waiter_; }

 private:
  EventRouter& router_;
  const uint64_t op_id_;
  std::shared_ptr<SyncWaiter> waiter_;
};

}  // namespace dmacopy
