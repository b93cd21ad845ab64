// The bench yardstick: both copy kinds move every byte, on any thread count and chunking,
// including lengths that do not divide into lines, chunks or shares.
#include <algorithm>
#include <vector>

#include "check.h"
#include "memcpy_bound.h"

using namespace dmacopy;

namespace {
void check_kind(StoreKind kind) {
  const size_t lens[] = {0, 1, 63, 4096, 4096 * 3 + 17, (1u << 20) + 5};
  const unsigned threads[] = {1, 2, 3};
  const size_t chunks[] = {1 << 12, 1 << 16, 0};
  for (size_t len : lens) {
    std::vector<uint8_t> src(len + 64), dst(len + 64);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
    for (unsigned t : threads) {
      for (size_t c : chunks) {
        for (size_t off : {size_t{0}, size_t{3}}) {  // an unaligned destination too
          std::fill(dst.begin(), dst.end(), 0);
          memcpy_bound_ns(dst.data() + off, src.data(), len, t, c, kind);
          CHECK(std::equal(src.begin(), src.begin() + static_cast<long>(len), dst.begin() + static_cast<long>(off)));
          bool untouched = true;
          for (size_t i = off + len; i < dst.size(); ++i) untouched &= dst[i] == 0;
          for (size_t i = 0; i < off; ++i) untouched &= dst[i] == 0;
          CHECK(untouched);
        }
      }
    }
  }
}
}  // namespace

TEST("memcpy bound copies every byte") { check_kind(StoreKind::Cached); }

TEST("streaming-store bound copies every byte") { check_kind(StoreKind::NonTemporal); }

DMACOPY_TEST_MAIN
