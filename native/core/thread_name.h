// Names the calling thread, so that operators see dmacopy's threads for what they are in
// `top -H`, `ps -L`, perf and /proc/<pid>/task/*/comm (and the service benchmark can sum the copy
// threads' CPU time): dmacopy-cpuN (CPU copy), dmacopy-poll (completion poller), dmacopy-sdev
// (software device engine), dmacopy-release / dmacopy-reopen / dmacopy-open (queue lifetimes).
#pragma once

#include <pthread.h>

#include <cstdio>

namespace dmacopy {

// Linux keeps 15 characters; longer names are cut, not refused. Failure only loses the name.
inline void name_this_thread(const char* name) {
  char cut[16];
  std::snprintf(cut, sizeof cut, "%s", name);
  (void)pthread_setname_np(pthread_self(), cut);
}

// "prefix" followed by n, e.g. dmacopy-cpu0.
inline void name_this_thread(const char* prefix, unsigned n) {
  char name[16];
  std::snprintf(name, sizeof name, "%s%u", prefix, n);
  (void)pthread_setname_np(pthread_self(), name);
}

}  // namespace dmacopy
