// Opening /dev/dsa queues off the JavaScript thread. Opening a queue ends with a NOOP probe that
// waits for the device's completion, up to its timeout (500 ms) on a device that does not answer:
// done in the NativeEngine constructor, that wait blocked the event loop inside `await
// openEngine()`, once per queue. openUserQueues() runs the opens on a libuv pool thread instead,
// every queue's probe side by side, and resolves with an opaque handle the NativeEngine
// constructor takes the opened queues from.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "user_queue.h"

namespace dmacopy_addon {

// What one openUserQueues() call opened. Owned by the External it resolves with, until an engine
// takes the queues; queues no engine took are released when the External is collected.
struct OpenedQueues {
  std::vector<std::unique_ptr<dmacopy::UserWorkQueue>> queues;  // the ones that opened, in order
  std::vector<dmacopy::OpenResult> results;                     // every queue's result, in the order lib/ listed them
  bool taken = false;
  OpenedQueues() = default;
  OpenedQueues(OpenedQueues&&) = default;
  OpenedQueues& operator=(OpenedQueues&&) = default;
  ~OpenedQueues();  // releases the queues still held, each on a thread of its own
};

// openUserQueues(queues: NativeUserQueue[]) -> Promise<External>. Bad arguments throw (coded)
// before anything is opened.
Napi::Value OpenUserQueues(const Napi::CallbackInfo& info);

// The queues and results of an openUserQueues() handle, taken once: a foreign value, or a handle
// already taken, throws ERR_DMACOPY_INVALID_ARG.
OpenedQueues take_opened_queues(Napi::Env env, const Napi::Value& handle);

// releaseOpenedQueues(handle): releases the queues of a handle no engine took (lib/ calls it when
// the engine could not be made), each on a thread of its own; a taken handle is left as it is.
Napi::Value ReleaseOpenedQueues(const Napi::CallbackInfo& info);

}  // namespace dmacopy_addon
