#include "event_channel.h"

#include <cstring>
#include <utility>

namespace dmacopy_addon {

using namespace dmacopy;  // kEv* fields

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

bool EventChannel::enqueue_locked(const EventRecord& record) {
  // (Synchronous waiters were served by the router before: they get their events even after
  // the channel to JavaScript closed, or they would wait forever.)
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

void EventChannel::post_records(const EventRecord* records, size_t n) {
  std::lock_guard<std::mutex> lock(queue_->mu);
  bool wake_js = false;
  for (size_t i = 0; i < n; ++i) wake_js = enqueue_locked(records[i]) || wake_js;
  if (wake_js) wake();
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
