// Minimal assertion helpers for the plain C++ core tests (no Node, no framework).
// Each test file is its own executable: TEST(name) registers a case, main() comes
// from DMACOPY_TEST_MAIN, and the process prints "N passed, N failed, N skipped". A case that
// cannot run here says so with SKIP(reason): it counts as skipped, never as passed.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace dmacopy_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};

inline std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}

inline int& failures_in_case() {
  static int n = 0;
  return n;
}

// Why the running case was skipped ("" when it was not).
inline std::string& skip_reason() {
  static std::string why;
  return why;
}

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline int run_all(const char* file) {
  int passed = 0, failed = 0, skipped = 0;
  for (auto& c : registry()) {
    failures_in_case() = 0;
    skip_reason().clear();
    c.fn();
    if (failures_in_case() != 0) {
      ++failed;
      std::fprintf(stderr, "  FAIL %s: %s\n", file, c.name);
    } else if (!skip_reason().empty()) {
      ++skipped;
      std::printf("  SKIP %s: %s\n", c.name, skip_reason().c_str());
    } else {
      ++passed;
    }
  }
  std::printf("%s: %d passed, %d failed, %d skipped\n", file, passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}

}  // namespace dmacopy_test

#define DMACOPY_CAT2(a, b) a##b
#define DMACOPY_CAT(a, b) DMACOPY_CAT2(a, b)
#define TEST(name)                                                                                        \
  static void DMACOPY_CAT(test_fn_, __LINE__)();                                                          \
  static dmacopy_test::Registrar DMACOPY_CAT(test_reg_, __LINE__)(name, DMACOPY_CAT(test_fn_, __LINE__)); \
  static void DMACOPY_CAT(test_fn_, __LINE__)()

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "    %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++dmacopy_test::failures_in_case();                                               \
    }                                                                                   \
  } while (0)

#define CHECK_EQ(a, b)                                                                                       \
  do {                                                                                                       \
    auto va_ = (a);                                                                                          \
    auto vb_ = (b);                                                                                          \
    if (!(va_ == vb_)) {                                                                                     \
      std::fprintf(stderr, "    %s:%d: CHECK_EQ(%s, %s) failed: %lld vs %lld\n", __FILE__, __LINE__, #a, #b, \
                   static_cast<long long>(va_), static_cast<long long>(vb_));                                \
      ++dmacopy_test::failures_in_case();                                                                    \
    }                                                                                                        \
  } while (0)

// Ends the running case as skipped, saying why (a reason is required: a silent skip hides what ran).
#define SKIP(reason)                        \
  do {                                      \
    dmacopy_test::skip_reason() = (reason); \
    return;                                 \
  } while (0)

#define DMACOPY_TEST_MAIN \
  int main() { return dmacopy_test::run_all(__FILE__); }
