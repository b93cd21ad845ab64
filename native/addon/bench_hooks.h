#pragma once
#include <napi.h>

namespace dmacopy_addon {
Napi::Value MemcpyBound(const Napi::CallbackInfo& info);
}
