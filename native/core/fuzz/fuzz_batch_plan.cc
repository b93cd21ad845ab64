// libFuzzer harness: batch plan validation (the native re-validation of JavaScript's numeric
// folio tables against real buffer spans), overlap checks, the chunked overlap tracker, and the
// split into works. Oracles:
//  - a plan that validates only names bytes inside the real buffers (every region is touched
//    with memmove, so ASan catches a single byte past a span);
//  - check_overlaps / OverlapTracker agree with a brute-force pairwise check, both ways;
//  - split_works pieces cover exactly the folios' bytes, in order.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "batch_plan.h"
#include "overlap_tracker.h"

#include "fuzz_check.h"

using namespace dmacopy;

namespace {

double pick_double(FuzzedDataProvider& p, uint64_t hint_max) {
  switch (p.ConsumeIntegralInRange<int>(0, 9)) {
    case 0: return p.ConsumeFloatingPoint<double>();
    case 1: {
      uint64_t bits = p.ConsumeIntegral<uint64_t>();
      double d;
      std::memcpy(&d, &bits, sizeof d);  // NaN, infinities, subnormals, -0
      return d;
    }
    case 2: return -static_cast<double>(p.ConsumeIntegralInRange<int>(0, 10));
    case 3: return static_cast<double>(p.ConsumeIntegralInRange<uint64_t>(0, hint_max)) + 0.5;
    case 4: return 9007199254740991.0 + static_cast<double>(p.ConsumeIntegralInRange<int>(-2, 4));
    case 5: return static_cast<double>(p.ConsumeIntegral<uint64_t>());
    default: return static_cast<double>(p.ConsumeIntegralInRange<uint64_t>(0, hint_max));
  }
}

bool inside_some(const std::vector<BufferSpan>& bufs, const uint8_t* p, size_t len) {
  for (const BufferSpan& b : bufs) {
    if (p >= b.base && len <= b.len && p - b.base <= static_cast<ptrdiff_t>(b.len - len)) return true;
  }
  return false;
}

bool ranges_overlap(uintptr_t a, size_t alen, uintptr_t b, size_t blen) {
  return alen && blen && a < b + blen && b < a + alen;
}

bool brute_overlap(const std::vector<CopyRegion>& f) {
  for (size_t i = 0; i < f.size(); ++i) {
    for (size_t j = 0; j < f.size(); ++j) {
      auto di = reinterpret_cast<uintptr_t>(f[i].dst), dj = reinterpret_cast<uintptr_t>(f[j].dst);
      auto sj = reinterpret_cast<uintptr_t>(f[j].src);
      if (i < j && ranges_overlap(di, f[i].len, dj, f[j].len)) return true;
      if (ranges_overlap(di, f[i].len, sj, f[j].len)) return true;
    }
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  // Real spans, each its own heap block of exactly its length (ASan redzones on both sides).
  const size_t nbufs = p.ConsumeIntegralInRange<size_t>(0, 4);
  std::vector<std::unique_ptr<uint8_t[]>> storage;
  std::vector<BufferSpan> bufs;
  // One block sliced into two spans sometimes, so destinations and sources can share memory.
  for (size_t i = 0; i < nbufs; ++i) {
    size_t len = p.ConsumeIntegralInRange<size_t>(0, 4096);
    storage.emplace_back(new uint8_t[len ? len : 1]);
    std::memset(storage.back().get(), static_cast<int>(i), len ? len : 1);
    bufs.push_back(BufferSpan{storage.back().get(), len});
  }
  if (nbufs >= 1 && p.ConsumeBool()) {
    BufferSpan b = bufs[0];
    size_t cut = b.len ? p.ConsumeIntegralInRange<size_t>(0, b.len) : 0;
    bufs.push_back(BufferSpan{b.base + cut, b.len - cut});
  }
  const uint64_t hint = 4200;
  std::vector<CopyRegion> folios;
  PlanStatus st;
  const bool region = p.ConsumeBool();
  if (region) {
    double t[kRegionFields];
    for (double& v : t)
      v = p.ConsumeBool() ? static_cast<double>(p.ConsumeIntegralInRange<uint64_t>(0, bufs.size() + 1))
                          : pick_double(p, hint);
    t[0] = p.ConsumeBool() ? static_cast<double>(p.ConsumeIntegralInRange<size_t>(0, bufs.size())) : t[0];
    t[2] = p.ConsumeBool() ? static_cast<double>(p.ConsumeIntegralInRange<size_t>(0, bufs.size())) : t[2];
    st = plan_region(bufs.data(), bufs.size(), t, folios);
  } else {
    const size_t n = p.ConsumeIntegralInRange<size_t>(0, 48);
    std::vector<double> t(n * kListFields);
    for (size_t i = 0; i < n; ++i) {
      double* f = &t[i * kListFields];
      f[0] = static_cast<double>(p.ConsumeIntegralInRange<size_t>(0, bufs.size()));
      f[2] = static_cast<double>(p.ConsumeIntegralInRange<size_t>(0, bufs.size()));
      f[1] = static_cast<double>(p.ConsumeIntegralInRange<uint64_t>(0, hint));
      f[3] = static_cast<double>(p.ConsumeIntegralInRange<uint64_t>(0, hint));
      f[4] = static_cast<double>(p.ConsumeIntegralInRange<uint64_t>(0, 2 * hint));
      if (p.ConsumeIntegralInRange<int>(0, 15) == 0) f[p.ConsumeIntegralInRange<size_t>(0, 4)] = pick_double(p, hint);
    }
    st = plan_list(bufs.data(), bufs.size(), t.data(), n, folios);
    if (st.ok()) FUZZ_CHECK(folios.size() == n);
  }
  if (!st.ok()) {
    FUZZ_CHECK(!st.message.empty());
    return 0;
  }
  // Every validated region lies inside a real span; touching it must be clean under ASan.
  for (const CopyRegion& r : folios) {
    FUZZ_CHECK(inside_some(bufs, r.dst, r.len));
    FUZZ_CHECK(inside_some(bufs, r.src, r.len));
    std::memmove(r.dst, r.src, r.len);
  }
  // Pairwise oracle for lists (at most 48 folios); region folios are consecutive slices of one
  // destination and one source range, so the exact answer there is the two ranges' overlap.
  bool overlap;
  if (region && !folios.empty()) {
    size_t total = 0;
    for (const CopyRegion& r : folios) total += r.len;
    FUZZ_CHECK(folios.back().dst + folios.back().len == folios.front().dst + total);
    overlap = ranges_overlap(reinterpret_cast<uintptr_t>(folios.front().dst), total,
                             reinterpret_cast<uintptr_t>(folios.front().src), total);
    if (folios.size() <= 64) FUZZ_CHECK(overlap == brute_overlap(folios));
  } else {
    overlap = brute_overlap(folios);
  }
  PlanStatus ov = check_overlaps(folios);
  FUZZ_CHECK(ov.ok() == !overlap);
  if (region) {
    // Region folios are consecutive slices of one range each: the O(1) hull check is exact.
    PlanStatus rv = check_region_overlap(folios);
    FUZZ_CHECK(rv.ok() == !overlap);
  }
  // The chunked tracker must reach the same verdict as the one-shot check.
  {
    OverlapTracker tracker;
    bool tracker_ok = true;
    size_t i = 0;
    while (i < folios.size()) {
      size_t take = 1 + p.ConsumeIntegralInRange<size_t>(0, folios.size() - i - 1);
      std::vector<CopyRegion> chunk(folios.begin() + i, folios.begin() + i + take);
      if (!tracker.add(chunk).ok()) {
        tracker_ok = false;
        break;
      }
      i += take;
    }
    FUZZ_CHECK(tracker_ok == !overlap);
  }
  // Split into works with fuzzed boundaries: pieces cover the folios' bytes exactly, in order.
  const size_t k = p.ConsumeIntegralInRange<size_t>(1, 8);
  std::vector<double> bounds(2 * (k + 1));
  bool structured = p.ConsumeBool();
  for (size_t w = 0; w <= k; ++w) {
    if (structured) {
      uint64_t f = folios.empty() ? 0 : p.ConsumeIntegralInRange<uint64_t>(0, folios.size());
      uint64_t o = (f < folios.size() && folios[f].len) ? p.ConsumeIntegralInRange<uint64_t>(0, folios[f].len - 1) : 0;
      bounds[2 * w] = static_cast<double>(f);
      bounds[2 * w + 1] = static_cast<double>(o);
    } else {
      bounds[2 * w] = pick_double(p, folios.size() + 1);
      bounds[2 * w + 1] = pick_double(p, 5000);
    }
  }
  if (structured) {
    // Sort the pairs so most inputs are valid; then pin the ends.
    std::vector<std::pair<double, double>> v;
    for (size_t w = 0; w <= k; ++w) v.emplace_back(bounds[2 * w], bounds[2 * w + 1]);
    std::sort(v.begin(), v.end());
    v.front() = {0, 0};
    v.back() = {static_cast<double>(folios.size()), 0};
    for (size_t w = 0; w <= k; ++w) {
      bounds[2 * w] = v[w].first;
      bounds[2 * w + 1] = v[w].second;
    }
  }
  WorkPieces wp;
  PlanStatus sp = split_works(folios, bounds.data(), k, wp);
  if (structured) FUZZ_CHECK(sp.ok());
  if (sp.ok()) {
    FUZZ_CHECK(wp.work_begin.size() == k + 1);
    FUZZ_CHECK(wp.work_begin[k] == wp.pieces.size());
    for (size_t w = 0; w < k; ++w) FUZZ_CHECK(wp.work_begin[w] <= wp.work_begin[w + 1]);
    // Walk the folios' bytes and the pieces side by side.
    size_t fi = 0, fo = 0;
    for (const CopyRegion& pc : wp.pieces) {
      FUZZ_CHECK(pc.len > 0);
      while (fi < folios.size() && fo == folios[fi].len) {
        ++fi;
        fo = 0;
      }
      FUZZ_CHECK(fi < folios.size());
      FUZZ_CHECK(pc.dst == folios[fi].dst + fo);
      FUZZ_CHECK(pc.src == folios[fi].src + fo);
      FUZZ_CHECK(pc.len <= folios[fi].len - fo);
      fo += pc.len;
    }
    while (fi < folios.size() && fo == folios[fi].len) {
      ++fi;
      fo = 0;
    }
    FUZZ_CHECK(fi == folios.size());
  }
  return 0;
}
