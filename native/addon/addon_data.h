// Per-environment state (main thread and each worker thread get their own): the event channel
// and the engines that must be shut down before the environment's memory goes away.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "engine_handle.h"
#include "event_channel.h"

namespace dmacopy_addon {

class AddonData {
 public:
  static AddonData& of(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

  // Runs at environment teardown (worker terminated, process exiting): copies still running
  // write into ArrayBuffers that are freed right after, so wait for them before anything else.
  ~AddonData();

  void set_event_handler(Napi::Env env, Napi::Function handler);
  EventChannel& events(Napi::Env env);

  void register_engine(const std::shared_ptr<EngineResources>& core);
  void unregister_engine(const std::shared_ptr<EngineResources>& core);

 private:
  std::unique_ptr<EventChannel> events_;
  std::vector<std::weak_ptr<EngineResources>> engines_;
};

}  // namespace dmacopy_addon
