// The one assertion the libFuzzer harnesses use: a violated invariant aborts, which libFuzzer
// reports as a crash with the input that caused it.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(c)                                                              \
  do {                                                                             \
    if (!(c)) {                                                                    \
      fprintf(stderr, "FUZZ_CHECK failed: %s at %s:%d\n", #c, __FILE__, __LINE__); \
      abort();                                                                     \
    }                                                                              \
  } while (0)
