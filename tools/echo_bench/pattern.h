// The bytes echo_bench sends: a deterministic stream per connection.
//
// Every byte a connection sends is a function of (connection index, offset in that
// connection's stream), so the byte the server echoes back can be checked without
// keeping a copy of what was sent. Byte `offset` is byte `offset % 8` (little
// endian) of word `offset / 8` of a SplitMix64 stream seeded by the connection
// index: not a constant, different on every connection and at every offset, so a
// server that drops, repeats, reorders or mixes up bytes between connections or
// messages is caught at the first wrong byte.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace echo_bench {

static_assert(std::endian::native == std::endian::little,
              "fill_pattern stores words in native byte order");

inline constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

// The SplitMix64 finalizer: a bijective mix of all 64 bits.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// The seed of connection `index` (0-based).
constexpr std::uint64_t stream_seed(std::uint64_t index) {
  return mix64(index + kGolden);
}

// Word `k` of a stream: SplitMix64 is counter-based, so any word is computed
// directly from its index (random access, no state to carry).
constexpr std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t k) {
  return mix64(seed + (k + 1) * kGolden);
}

constexpr unsigned char pattern_byte(std::uint64_t seed, std::uint64_t offset) {
  return static_cast<unsigned char>(pattern_word(seed, offset / 8) >>
                                    (8 * (offset % 8)));
}

// Writes bytes [offset, offset + size) of the stream to `out`.
inline void fill_pattern(std::uint64_t seed, std::uint64_t offset, char* out,
                         std::size_t size) {
  // Head: up to the next word boundary.
  while (size > 0 && offset % 8 != 0) {
    *out++ = static_cast<char>(pattern_byte(seed, offset++));
    --size;
  }
  // Whole words: the little-endian bytes of each word, stored at once.
  for (std::uint64_t k = offset / 8; size >= 8; ++k, out += 8, size -= 8, offset += 8) {
    const std::uint64_t w = pattern_word(seed, k);
    std::memcpy(out, &w, 8);
  }
  // Tail.
  while (size > 0) {
    *out++ = static_cast<char>(pattern_byte(seed, offset++));
    --size;
  }
}

}  // namespace echo_bench
