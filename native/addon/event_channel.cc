#include "event_channel.h"

#include <cstring>
#include <utility>

namespace dmacopy_addon {

EventChannel::EventChannel(Napi::Env env, Napi::Function handler) {
  // The runtime may destroy the function on its own at environment teardown, before or after
  // AddonData goes. Since Node 23 it even frees the instance data from inside that teardown,
  // holding the function's lock: a Release() from there deadlocked every process at exit.
  // The finalizer records that the function is gone, so nothing touches it afterwards.
  std::shared_ptr<Queue> q = queue_;
  tsfn_ = Napi::ThreadSafeFunction::New(env, handler, "dmacopy-completions", 0, 1, [q](Napi::Env) {
    std::lock_guard<std::mutex> lock(q->mu);
    q->closed = true;
    q->function_gone = true;
    q->pending.clear();
  });
  tsfn_.Unref(env);  // an idle engine must not keep the process alive
}

EventChannel::~EventChannel() { close(); }

void SyncWaiter::add(const EventRecord& record) {
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = kEvCompleted; i < kEventFields; ++i) totals_[i] += record.f[i];
  cv_.notify_all();
}

EventRecord SyncWaiter::wait_for(uint64_t expected) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return totals_[kEvCompleted] >= static_cast<double>(expected); });
  EventRecord r{};
  for (size_t i = kEvCompleted; i < kEventFields; ++i) r.f[i] = totals_[i];
  return r;
}

bool EventChannel::enqueue_locked(const EventRecord& record) {
  // A synchronous waiter blocks a native caller, not JavaScript: it gets its events even after
  // the channel to JavaScript closed, or it would wait forever.
  if (!queue_->sync_waiters.empty()) {
    auto it = queue_->sync_waiters.find(static_cast<uint64_t>(record.f[kEvOp]));
    if (it != queue_->sync_waiters.end()) {
      it->second->add(record);
      return false;
    }
  }
  if (queue_->closed) return false;
  const bool was_empty = queue_->pending.empty();
  if (!was_empty) {
    EventRecord& last = queue_->pending.back();
    if (last.f[kEvOp] == record.f[kEvOp] && last.f[kEvWork] == record.f[kEvWork]) {
      for (size_t i = kEvCompleted; i < kEventFields; ++i) last.f[i] += record.f[i];
      return false;
    }
  }
  queue_->pending.push_back(record);
  // Only the first event of a burst wakes JavaScript; the rest ride along in the same call.
  return was_empty;
}

void EventChannel::wake() {
  // Called under queue_->mu, so close() cannot release the function between check and call.
  std::shared_ptr<Queue> q = queue_;
  tsfn_.NonBlockingCall([q](Napi::Env env, Napi::Function handler) { deliver(q, env, handler); });
}

void EventChannel::post(const EventRecord& record) {
  std::lock_guard<std::mutex> lock(queue_->mu);
  if (enqueue_locked(record)) wake();
}

void EventChannel::post(const dmacopy::CompletionEvent* ev, size_t n) {
  std::lock_guard<std::mutex> lock(queue_->mu);
  bool wake_js = false;
  for (size_t i = 0; i < n; ++i) {
    const dmacopy::CompletionEvent& e = ev[i];
    EventRecord r;
    r.f[kEvOp] = static_cast<double>(e.op_id);
    r.f[kEvWork] = e.work;
    r.f[kEvCompleted] = e.completed;
    r.f[kEvDeviceBytes] = static_cast<double>(e.device_bytes);
    r.f[kEvCpuBytes] = static_cast<double>(e.cpu_bytes);
    r.f[kEvFallbackTimeout] = e.fallback_timeout;
    r.f[kEvFallbackError] = e.fallback_error;
    r.f[kEvFallbackPageFault] = e.fallback_page_fault;
    r.f[kEvFallbackSubmit] = e.fallback_submit;
    r.f[kEvOutOfOrder] = e.out_of_order;
    r.f[kEvPageFaultRetries] = e.page_fault_retries;
    wake_js = enqueue_locked(r) || wake_js;
  }
  if (wake_js) wake();
}

void EventChannel::register_sync(uint64_t op_id, SyncWaiter* waiter) {
  std::lock_guard<std::mutex> lock(queue_->mu);
  queue_->sync_waiters[op_id] = waiter;
}

void EventChannel::unregister_sync(uint64_t op_id) {
  std::lock_guard<std::mutex> lock(queue_->mu);
  queue_->sync_waiters.erase(op_id);
}

void EventChannel::job_progress(uint64_t op_id, uint32_t work, uint32_t regions, uint64_t bytes) {
  EventRecord r{};
  r.f[kEvOp] = static_cast<double>(op_id);
  r.f[kEvWork] = work;
  r.f[kEvCompleted] = regions;
  r.f[kEvCpuBytes] = static_cast<double>(bytes);
  post(r);
}

void EventChannel::deliver(const std::shared_ptr<Queue>& queue, Napi::Env env, Napi::Function handler) {
  std::vector<EventRecord> batch;
  {
    std::lock_guard<std::mutex> lock(queue->mu);
    batch.swap(queue->pending);
  }
  if (env == nullptr || batch.empty()) return;  // environment shutting down
  Napi::HandleScope scope(env);
  Napi::Float64Array arr = Napi::Float64Array::New(env, batch.size() * kEventFields);
  std::memcpy(arr.Data(), batch.data(), batch.size() * sizeof(EventRecord));
  handler.Call({arr});
}

// JS thread only, like the finalizer, so the function cannot go between the check and the call.
void EventChannel::ref(Napi::Env env) {
  if (!function_gone()) tsfn_.Ref(env);
}
void EventChannel::unref(Napi::Env env) {
  if (!function_gone()) tsfn_.Unref(env);
}

bool EventChannel::function_gone() {
  std::lock_guard<std::mutex> lock(queue_->mu);
  return queue_->function_gone;
}

void EventChannel::close() {
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    if (queue_->closed) return;  // closed before, or the runtime already destroyed the function
    queue_->closed = true;
    queue_->pending.clear();
  }
  tsfn_.Release();
}

}  // namespace dmacopy_addon
