#include "event_router.h"

#include <utility>

namespace dmacopy {

void SyncWaiter::add(const EventRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = kEvCompleted; i < kEventFields; ++i) totals_.f[i] += record.f[i];
  cv_.notify_all();
}

EventRecord SyncWaiter::wait_for(uint64_t expected) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return totals_.f[kEvCompleted] >= static_cast<double>(expected); });
  return totals_;
}

void EventRouter::register_sync(uint64_t op_id, std::shared_ptr<SyncWaiter> waiter) {
  std::lock_guard<std::mutex> lock(mu_);
  sync_waiters_[op_id] = std::move(waiter);
}

void EventRouter::unregister_sync(uint64_t op_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sync_waiters_.erase(op_id);
}

void EventRouter::post(const EventRecord* records, size_t n) {
  {
    // Waiters are fed under the lock, so unregister_sync() returning means no add() is running
    // or will run on that waiter. With no waiter registered (the common case) records are
    // forwarded outside the lock; otherwise unclaimed runs go downstream in order.
    std::lock_guard<std::mutex> lock(mu_);
    if (!sync_waiters_.empty()) {
      size_t run = 0;  // start of the current run of unclaimed records
      for (size_t i = 0; i < n; ++i) {
        auto it = sync_waiters_.find(static_cast<uint64_t>(records[i].f[kEvOp]));
        if (it == sync_waiters_.end()) continue;
        it->second->add(records[i]);
        if (i > run && downstream_) downstream_->post_records(records + run, i - run);
        run = i + 1;
      }
      if (n > run && downstream_) downstream_->post_records(records + run, n - run);
      return;
    }
  }
  if (downstream_ && n) downstream_->post_records(records, n);
}

void EventRouter::job_progress(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) {
  EventRecord r = cpu_progress_record(op_id, work, regions, bytes);
  post(&r, 1);
}

void EventRouter::post(const CompletionEvent* ev, size_t n) {
  // Converted in fixed chunks on the stack: the poller's hot path allocates nothing here.
  constexpr size_t kChunk = 64;
  EventRecord buf[kChunk];
  for (size_t i = 0; i < n; i += kChunk) {
    size_t m = n - i < kChunk ? n - i : kChunk;
    for (size_t j = 0; j < m; ++j) buf[j] = to_record(ev[i + j]);
    post(buf, m);
  }
}

}  // namespace dmacopy
