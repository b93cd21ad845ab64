// What the DSA channels needs from the CPU copy pool: copy these regions on some other thread and
// call done() once every byte is in memory. The CPU copy pool (cpu_copy_pool.*) implements it; tests
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
