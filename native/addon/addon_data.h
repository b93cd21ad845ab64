// Per-environment state (main thread and each worker thread get their own): the event channel
// and the engines that must be shut down before the environment's memory goes away.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "engine_handle.h"
#include "event_channel.h"
#include "queue_reaper.h"

namespace dmacopy_addon {

class AddonData {
 public:
  static AddonData& of(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

  // Runs at environment teardown (worker terminated, process exiting): copies still running
  // write into ArrayBuffers that are freed right after, so wait for them before anything else.
  ~AddonData();

  // main_thread: whether this environment is the process's main thread (see ~AddonData).
  void set_event_handler(Napi::Env env, Napi::Function handler, bool main_thread);
  EventChannel& events(Napi::Env env);

  void register_engine(const std::shared_ptr<EngineResources>& core);
  void unregister_engine(const std::shared_ptr<EngineResources>& core);

  // The queue releases this environment's engines left running (wedged queues, see ~AddonData).
  const std::shared_ptr<dmacopy::ReleaseSet>& releases() const { return releases_; }

 private:
  std::unique_ptr<EventChannel> events_;
  std::shared_ptr<dmacopy::ReleaseSet> releases_ = std::make_shared<dmacopy::ReleaseSet>();
  bool main_thread_ = true;
  std::vector<std::weak_ptr<EngineResources>> engines_;
};

}  // namespace dmacopy_addon
