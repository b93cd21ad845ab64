// What the DSA engine needs from the CPU engine: copy these regions on some other thread and
// call done() once every byte is in memory. The CPU engine (cpu_engine.*) implements it; tests
// use a synchronous one. done() may run on any thread, including the caller's.
#pragma once

#include <functional>
#include <vector>

#include "copy_region.h"

namespace dmacopy {

class CpuCopier {
 public:
  virtual ~CpuCopier() = default;
  virtual void copy_async(std::vector<CopyRegion> regions, std::function<void()> done) = 0;
};

}  // namespace dmacopy
