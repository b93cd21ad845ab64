// Validation and splitting of batches: every number from JavaScript is re-checked here.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "batch_plan.h"
#include "check.h"

using namespace dmacopy;

namespace {
std::vector<uint8_t> a(1 << 16), b(1 << 16);
BufferSpan spans[2] = {{a.data(), a.size()}, {b.data(), b.size()}};
}  // namespace

TEST("list form resolves pointers and lengths") {
  double t[] = {0, 100, 1, 200, 50, 0, 4096, 1, 0, 4096};
  std::vector<CopyRegion> out;
  CHECK(plan_list(spans, 2, t, 2, out).ok());
  CHECK_EQ(out.size(), 2u);
  CHECK(out[0].dst == a.data() + 100 && out[0].src == b.data() + 200 && out[0].len == 50);
  CHECK(out[1].dst == a.data() + 4096 && out[1].src == b.data() && out[1].len == 4096);
}

TEST("list form rejects bad numbers, indexes and bounds") {
  const double bad[] = {-1, 0.5, std::nan(""), std::numeric_limits<double>::infinity(), 9007199254740992.0};
  for (double v : bad) {
    for (int field = 0; field < 5; ++field) {
      double t[] = {0, 0, 1, 0, 8};
      t[field] = v;
      std::vector<CopyRegion> out;
      CHECK(plan_list(spans, 2, t, 1, out).error == PlanError::BadNumber);
    }
  }
  double idx[] = {2, 0, 1, 0, 8};
  std::vector<CopyRegion> out;
  CHECK(plan_list(spans, 2, idx, 1, out).error == PlanError::BadBufferIndex);
  double past[] = {0, 65530, 1, 0, 7};
  CHECK(plan_list(spans, 2, past, 1, out).error == PlanError::OutOfBounds);
  double huge_len[] = {0, 1, 1, 0, 9007199254740991.0};
  CHECK(plan_list(spans, 2, huge_len, 1, out).error == PlanError::OutOfBounds);
  double exact_end[] = {0, 65530, 1, 65530, 6};
  std::vector<CopyRegion> ok;
  CHECK(plan_list(spans, 2, exact_end, 1, ok).ok());
}

TEST("region form covers the tail folio") {
  double t[] = {0, 0, 1, 0, 10000, 4096};
  std::vector<CopyRegion> out;
  CHECK(plan_region(spans, 2, t, out).ok());
  CHECK_EQ(out.size(), 3u);
  CHECK_EQ(out[2].len, 10000u - 8192u);
  double past[] = {0, 60000, 1, 0, 10000, 4096};
  CHECK(plan_region(spans, 2, past, out).error == PlanError::OutOfBounds);
  double zero_folio[] = {0, 0, 1, 0, 10, 0};
  CHECK(plan_region(spans, 2, zero_folio, out).error == PlanError::BadNumber);
}

TEST("overlapping destinations and source/destination overlap are found") {
  std::vector<CopyRegion> f = {{a.data(), b.data(), 100}, {a.data() + 100, b.data() + 100, 100}};
  CHECK(check_overlaps(f).ok());
  f[1].dst = a.data() + 99;
  CHECK(check_overlaps(f).error == PlanError::DstOverlap);
  f = {{a.data() + 1000, b.data(), 100}, {a.data(), a.data() + 1050, 10}};
  CHECK(check_overlaps(f).error == PlanError::SrcDstOverlap);
  // Sources may overlap each other; zero-length folios never overlap anything.
  f = {{a.data(), b.data(), 100}, {a.data() + 200, b.data(), 100}, {a.data() + 50, b.data(), 0}};
  CHECK(check_overlaps(f).ok());
}

TEST("overlap check agrees with brute force on random layouts") {
  std::mt19937_64 rng(42);
  for (int iter = 0; iter < 2000; ++iter) {
    size_t n = 1 + rng() % 12;
    std::vector<CopyRegion> f;
    for (size_t i = 0; i < n; ++i) {
      uint8_t* base = (rng() & 1) ? a.data() : b.data();
      size_t off = rng() % 4000, len = rng() % 300;
      uint8_t* sbase = (rng() & 1) ? a.data() : b.data();
      f.push_back({base + off, sbase + rng() % 4000, len});
    }
    bool expect_bad = false;
    auto hit = [](const uint8_t* p, size_t pl, const uint8_t* q, size_t ql) {
      return pl && ql && p < q + ql && q < p + pl;
    };
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < n; ++j) {
        if (i != j && hit(f[i].dst, f[i].len, f[j].dst, f[j].len)) expect_bad = true;
        if (hit(f[i].dst, f[i].len, f[j].src, f[j].len)) expect_bad = true;
      }
    CHECK_EQ(!check_overlaps(f).ok(), expect_bad);
  }
}

TEST("split_works cuts folios at byte boundaries and covers every byte once") {
  std::vector<CopyRegion> f = {
      {a.data(), b.data(), 4096}, {a.data() + 4096, b.data() + 4096, 0}, {a.data() + 8192, b.data() + 8192, 8192}};
  double bounds[] = {0, 0, 2, 2048, 3, 0};
  WorkPieces wp;
  CHECK(split_works(f, bounds, 2, wp).ok());
  CHECK_EQ(wp.work_begin[0], 0u);
  CHECK_EQ(wp.work_begin[1], 2u);
  CHECK_EQ(wp.work_begin[2], 3u);
  CHECK_EQ(wp.pieces[1].len, 2048u);
  CHECK(wp.pieces[2].dst == a.data() + 8192 + 2048 && wp.pieces[2].len == 6144);
  double backwards[] = {0, 0, 2, 2048, 1, 0, 3, 0};
  CHECK(split_works(f, backwards, 3, wp).error == PlanError::BadBounds);
  double not_covering[] = {0, 0, 2, 0};
  CHECK(split_works(f, not_covering, 1, wp).error == PlanError::BadBounds);
  double past_folio[] = {0, 0, 0, 5000, 3, 0};
  CHECK(split_works(f, past_folio, 2, wp).error == PlanError::BadBounds);
}

TEST("region form overlap is checked on the whole ranges") {
  double t[] = {0, 100, 0, 0, 200, 64};
  std::vector<CopyRegion> out;
  CHECK(plan_region(spans, 2, t, out).ok());
  CHECK(check_region_overlap(out).error == PlanError::SrcDstOverlap);
  CHECK(check_overlaps(out).error == PlanError::SrcDstOverlap);
  double apart[] = {0, 200, 0, 0, 200, 64};
  std::vector<CopyRegion> ok;
  CHECK(plan_region(spans, 2, apart, ok).ok());
  CHECK(check_region_overlap(ok).ok());
  CHECK(check_overlaps(ok).ok());
}

TEST("plan_works validates, checks overlap and splits either form in one call") {
  // List form: two folios into two works, cut inside the first folio.
  double list[] = {0, 0, 1, 0, 8192, 0, 8192, 1, 8192, 4096};
  double bounds[] = {0, 0, 0, 4096, 2, 0};
  WorkPieces w;
  std::vector<CopyRegion> scratch;
  CHECK(plan_works(TableForm::List, spans, 2, list, 10, bounds, 2, w, scratch).ok());
  CHECK_EQ(w.work_begin.size(), 3u);
  CHECK_EQ(w.pieces.size(), 3u);
  CHECK(w.pieces[0].dst == a.data() && w.pieces[0].len == 4096);
  CHECK(w.pieces[2].dst == a.data() + 8192 && w.pieces[2].src == b.data() + 8192);
  // Region form, one work.
  double region[] = {0, 0, 1, 0, 10000, 4096};
  double one[] = {0, 0, 3, 0};
  CHECK(plan_works(TableForm::Region, spans, 2, region, 6, one, 1, w, scratch).ok());
  CHECK_EQ(w.pieces.size(), 3u);
  // Bad table lengths, overlap, unknown forms.
  CHECK(plan_works(TableForm::List, spans, 2, list, 9, bounds, 2, w, scratch).error == PlanError::BadNumber);
  CHECK(plan_works(TableForm::Region, spans, 2, region, 5, one, 1, w, scratch).error == PlanError::BadNumber);
  CHECK(plan_works(static_cast<TableForm>(7), spans, 2, region, 6, one, 1, w, scratch).error == PlanError::BadNumber);
  double overlap[] = {0, 0, 1, 0, 4096, 0, 100, 1, 8192, 4096};
  double b2[] = {0, 0, 2, 0};
  CHECK(plan_works(TableForm::List, spans, 2, overlap, 10, b2, 1, w, scratch).error == PlanError::DstOverlap);
  double self[] = {0, 0, 0, 100, 4096};
  double b1[] = {0, 0, 1, 0};
  CHECK(plan_works(TableForm::List, spans, 2, self, 5, b1, 1, w, scratch).error == PlanError::SrcDstOverlap);
  double rself[] = {0, 0, 0, 100, 4096, 4096};
  CHECK(plan_works(TableForm::Region, spans, 2, rself, 6, b1, 1, w, scratch).error == PlanError::SrcDstOverlap);
}

// Guards the coalesced region plan (CPU engines): it must accept and reject exactly what the
// per-folio plan does, cover the same bytes per work in one piece, and count the same folio
// pieces per work (the pending counter and the report's regions depend on it).
TEST("coalesced region plans agree with per-folio plans on random tables and bounds") {
  std::mt19937_64 rng(7);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    const uint64_t folio = 1 + rng() % 700;
    const uint64_t total = rng() % 6 == 0 ? 0 : rng() % 9000;
    const uint64_t n = total == 0 ? 0 : (total + folio - 1) / folio;
    double table[] = {0,
                      double(rng() % 3 == 0 ? rng() % 60000 : 0),
                      1,
                      double(rng() % 4000),
                      double(total),
                      double(rng() % 50 == 0 ? 0 : folio)};
    if (rng() % 40 == 0) table[0] = 0, table[2] = 0;  // same buffer: overlap or not
    const size_t k = 1 + rng() % 4;
    std::vector<double> bounds(2 * (k + 1), 0);
    // Increasing (folio, offset) points, sometimes bent out of shape.
    std::vector<uint64_t> cuts;
    for (size_t w = 1; w < k; ++w) cuts.push_back(total ? rng() % (total + 1) : 0);
    std::sort(cuts.begin(), cuts.end());
    for (size_t w = 1; w < k; ++w) {
      const uint64_t at = cuts[w - 1];
      bounds[2 * w] = double(at / folio);
      bounds[2 * w + 1] = double(at % folio);
    }
    bounds[2 * k] = double(n);
    if (rng() % 25 == 0) bounds[rng() % bounds.size()] = double(rng() % 20);
    if (rng() % 100 == 0) bounds[1] = 0.5;
    WorkPieces per, co;
    std::vector<CopyRegion> scratch;
    PlanStatus a_st = plan_works(TableForm::Region, spans, 2, table, 6, bounds.data(), k, per, scratch);
    PlanStatus b_st = plan_works(TableForm::Region, spans, 2, table, 6, bounds.data(), k, co, scratch, true);
    CHECK(a_st.error == b_st.error);
    CHECK_EQ(a_st.folio, b_st.folio);
    if (!a_st.ok() || !b_st.ok()) {
      ++rejected;
      continue;
    }
    ++accepted;
    CHECK_EQ(co.work_begin.size(), k + 1);
    CHECK_EQ(co.work_regions.size(), k);
    CHECK(per.work_regions.empty());
    for (size_t w = 0; w < k; ++w) {
      CHECK_EQ(co.regions_of(w), per.regions_of(w));
      const size_t pb = per.work_begin[w], pe = per.work_begin[w + 1];
      const size_t cb = co.work_begin[w], ce = co.work_begin[w + 1];
      uint64_t bytes = 0;
      for (size_t i = pb; i < pe; ++i) bytes += per.pieces[i].len;
      CHECK_EQ(ce - cb, size_t(bytes > 0 ? 1 : 0));
      if (bytes == 0) continue;
      CHECK(co.pieces[cb].dst == per.pieces[pb].dst);
      CHECK(co.pieces[cb].src == per.pieces[pb].src);
      CHECK_EQ(co.pieces[cb].len, bytes);
      // The per-folio pieces of the work are one contiguous run: the coalesced piece is that run.
      for (size_t i = pb + 1; i < pe; ++i) CHECK(per.pieces[i].dst == per.pieces[i - 1].dst + per.pieces[i - 1].len);
    }
  }
  CHECK(accepted > 5000);
  CHECK(rejected > 500);
}

// Guards the 32-bit folio counts: a coalesced work of 2^32 folio pieces would count 0 (its batch
// would settle at once while threads still copy). The plan never touches the memory, so spans
// that merely claim 16 GiB will do.
TEST("coalesced region plans refuse a work of more than 2^32 - 1 folio pieces") {
  // Addresses far apart (never dereferenced): the ranges must not overlap.
  BufferSpan huge[2] = {{reinterpret_cast<uint8_t*>(uintptr_t{1} << 40), size_t{1} << 34},
                        {reinterpret_cast<uint8_t*>(uintptr_t{1} << 41), size_t{1} << 34}};
  const double total = double(uint64_t{1} << 33);
  double table[] = {0, 0, 1, 0, total, 1};
  double one[] = {0, 0, total, 0};
  WorkPieces w;
  std::vector<CopyRegion> scratch;
  PlanStatus st = plan_works(TableForm::Region, huge, 2, table, 6, one, 1, w, scratch, true);
  CHECK(st.error == PlanError::BadNumber);
  CHECK(st.message.find("larger folio size") != std::string::npos);
  // Split in four works of 2^31 folios each, the same batch plans.
  double four[] = {0, 0, total / 4, 0, total / 2, 0, 3 * total / 4, 0, total, 0};
  CHECK(plan_works(TableForm::Region, huge, 2, table, 6, four, 4, w, scratch, true).ok());
  CHECK_EQ(w.regions_of(3), uint32_t{1} << 31);
}

TEST("WorkPiecesPool hands plans back for reuse, keeps their memory, and bounds what it keeps") {
  auto pool = WorkPiecesPool::create();
  const CopyRegion* kept_data = nullptr;
  {
    std::shared_ptr<WorkPieces> p = pool->take();
    p->pieces.resize(1000);
    p->work_begin = {0, 1000};
    kept_data = p->pieces.data();
    CHECK_EQ(pool->kept(), 0u);
  }
  CHECK_EQ(pool->kept(), 1u);
  {
    std::shared_ptr<WorkPieces> q = pool->take();
    CHECK(q->pieces.empty() && q->work_begin.empty());
    CHECK(q->pieces.capacity() >= 1000);
    q->pieces.resize(10);
    CHECK(q->pieces.data() == kept_data);  // the same memory again
    std::shared_ptr<WorkPieces> copy = q;  // a second owner (a queued job)
    q.reset();
    CHECK_EQ(pool->kept(), 0u);
  }
  CHECK_EQ(pool->kept(), 1u);
  std::vector<std::shared_ptr<WorkPieces>> many;
  for (int i = 0; i < 10; ++i) many.push_back(pool->take());
  many.clear();
  CHECK_EQ(pool->kept(), WorkPiecesPool::kKeep);
  {
    auto huge = pool->take();
    huge->pieces.reserve(WorkPiecesPool::kMaxKeptPieces + 1);
  }
  CHECK_EQ(pool->kept(), WorkPiecesPool::kKeep - 1);  // the huge one (taken from the pool) was freed, not kept
  // A plan may outlive the pool's last outside owner.
  std::shared_ptr<WorkPieces> late = pool->take();
  pool.reset();
  late.reset();
}

TEST("first_changed_span finds a moved or detached buffer") {
  BufferSpan now[2] = {spans[0], spans[1]};
  CHECK_EQ(first_changed_span(spans, now, 2), 2u);
  now[1].len = 0;  // detached
  CHECK_EQ(first_changed_span(spans, now, 2), 1u);
  now[1] = spans[1];
  now[0].base = b.data();
  CHECK_EQ(first_changed_span(spans, now, 2), 0u);
  CHECK_EQ(first_changed_span(spans, now, 0), 0u);
}

DMACOPY_TEST_MAIN
