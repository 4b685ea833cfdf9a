// A preallocated log-linear histogram (HdrHistogram-like) for latencies in
// nanoseconds: recording is an increment, never an allocation, and percentiles
// are within 1% of the true value.
//
// Values below 128 have a bucket each. Above, every power of two [2^e, 2^(e+1)) is
// split into 128 equal buckets, so a bucket is at most 1/128 (0.8%) of its values
// wide. Percentiles report the top of their bucket (never below the true value)
// capped at the largest value recorded; min, max and mean are exact.
#pragma once

#include <cstdint>
#include <vector>

namespace echo_bench {

class Histogram {
 public:
  static constexpr int kSubBits = 7;
  static constexpr int kSubBuckets = 1 << kSubBits;                   // 128
  static constexpr int kBuckets = (64 - kSubBits + 1) * kSubBuckets;  // all of uint64

  Histogram() : counts_(kBuckets, 0) {}

  void record(std::uint64_t value) {
    ++counts_[index_of(value)];
    ++count_;
    sum_ += value;
    if (value < min_) min_ = value;
    if (value > max_) max_ = value;
  }

  std::uint64_t count() const { return count_; }
  std::uint64_t min() const { return count_ ? min_ : 0; }
  std::uint64_t max() const { return max_; }
  double mean() const {
    return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0;
  }

  // The smallest value v such that at least `fraction` (0..1] of the recorded
  // values are <= v, to bucket precision. 0 when nothing was recorded.
  std::uint64_t percentile(double fraction) const {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(fraction * static_cast<double>(count_));
    if (static_cast<double>(rank) < fraction * static_cast<double>(count_)) ++rank;
    if (rank < 1) rank = 1;
    if (rank > count_) rank = count_;
    std::uint64_t seen = 0;
    for (int i = 0; i < kBuckets; ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        const std::uint64_t top = highest_in(i);
        return top < max_ ? top : max_;
      }
    }
    return max_;
  }

  static int index_of(std::uint64_t value) {
    if (value < kSubBuckets) return static_cast<int>(value);
    const int msb = 63 - __builtin_clzll(value);
    const int shift = msb - kSubBits;  // bucket width is 2^shift
    return (shift + 1) * kSubBuckets + static_cast<int>((value >> shift) - kSubBuckets);
  }

  // The largest value that falls in bucket `index`.
  static std::uint64_t highest_in(int index) {
    if (index < kSubBuckets) return static_cast<std::uint64_t>(index);
    const int shift = index / kSubBuckets - 1;
    const std::uint64_t top =
        kSubBuckets + static_cast<std::uint64_t>(index % kSubBuckets);
    return ((top + 1) << shift) - 1;  // wraps to UINT64_MAX for the last bucket
  }

 private:
  std::vector<std::uint64_t> counts_;
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  std::uint64_t max_ = 0;
};

}  // namespace echo_bench
