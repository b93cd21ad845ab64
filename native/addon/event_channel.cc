#include "event_channel.h"

#include <cstring>
#include <utility>

namespace dmacopy_addon {

EventChannel::EventChannel(Napi::Env env, Napi::Function handler) {
  tsfn_ = Napi::ThreadSafeFunction::New(env, handler, "dmacopy-completions", 0, 1);
  tsfn_.Unref(env);  // an idle engine must not keep the process alive
}

EventChannel::~EventChannel() { close(); }

void EventChannel::post(const EventRecord& record) {
  bool was_empty;
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    if (queue_->closed) return;
    was_empty = queue_->pending.empty();
    if (!was_empty) {
      EventRecord& last = queue_->pending.back();
      if (last.f[kEvOp] == record.f[kEvOp] && last.f[kEvWork] == record.f[kEvWork]) {
        for (size_t i = kEvCompleted; i < kEventFields; ++i) last.f[i] += record.f[i];
        return;
      }
    }
    queue_->pending.push_back(record);
    // Only the first event of a burst wakes JavaScript; the rest ride along in the same call.
    // Queued under the lock so close() cannot release the function between check and call.
    if (was_empty) {
      std::shared_ptr<Queue> q = queue_;
      tsfn_.NonBlockingCall([q](Napi::Env env, Napi::Function handler) { deliver(q, env, handler); });
    }
  }
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

void EventChannel::ref(Napi::Env env) { tsfn_.Ref(env); }
void EventChannel::unref(Napi::Env env) { tsfn_.Unref(env); }

void EventChannel::close() {
  {
    std::lock_guard<std::mutex> lock(queue_->mu);
    if (queue_->closed) return;
    queue_->closed = true;
    queue_->pending.clear();
  }
  tsfn_.Release();
}

}  // namespace dmacopy_addon
