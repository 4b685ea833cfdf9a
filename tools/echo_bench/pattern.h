// The bytes echo_bench sends: a deterministic stream per connection.
//
// Every byte a connection sends is a function of (connection index, offset in that
// connection's stream), so the byte the server echoes back can be checked without
// keeping a copy of what was sent. Byte `offset` is byte `offset % 8` (little
// endian) of word `offset / 8`, and word k of the stream seeded `seed` is
//
//   kTable[(k + seed) mod kTableWords]  XOR  block_key(seed, k / kBlockWords)
//
// kTable holds kTableWords random words (SplitMix64), made at compile time; the
// block key is one SplitMix64 per block of kBlockWords words. Within a block,
// words differ because they come from different table entries (a block is
// shorter than the table); between blocks and between connections, because their
// keys differ. So a server that drops, repeats, reorders or mixes up bytes between
// connections or messages is caught at the first wrong byte, and yet making and
// checking the stream costs a table lookup and an XOR per 8 bytes. (The first
// version made every word with a SplitMix64: streaming 16 KiB messages, that was
// over half of echo_bench's CPU time, and echo_bench became the bottleneck.)
#pragma once

#include <algorithm>
#include <array>
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

// 8,191 words (64 KiB, a prime number of words: a stream's offsets walk the whole
// table before repeating an entry), and blocks of 512 words (4 KiB).
inline constexpr std::size_t kTableWords = 8191;
inline constexpr std::uint64_t kBlockWords = 512;
static_assert(kBlockWords < kTableWords, "a block must not repeat a table entry");

constexpr std::array<std::uint64_t, kTableWords> make_table() {
  std::array<std::uint64_t, kTableWords> table{};
  for (std::size_t i = 0; i < kTableWords; ++i) {
    table[i] = mix64(0x5eed5eed5eed5eedULL + (i + 1) * kGolden);
  }
  return table;
}
inline constexpr std::array<std::uint64_t, kTableWords> kTable = make_table();

// The seed of connection `index` (0-based).
constexpr std::uint64_t stream_seed(std::uint64_t index) {
  return mix64(index + kGolden);
}

// The key of block `block` of a stream.
constexpr std::uint64_t block_key(std::uint64_t seed, std::uint64_t block) {
  return mix64(seed + (block + 1) * kGolden);
}

// Word `k` of a stream, computed directly from its index (random access, no state
// to carry).
constexpr std::uint64_t pattern_word(std::uint64_t seed, std::uint64_t k) {
  return kTable[(k % kTableWords + seed % kTableWords) % kTableWords] ^
         block_key(seed, k / kBlockWords);
}

constexpr unsigned char pattern_byte(std::uint64_t seed, std::uint64_t offset) {
  return static_cast<unsigned char>(pattern_word(seed, offset / 8) >>
                                    (8 * (offset % 8)));
}

// Walks words [k, k + words) of a stream as runs of consecutive table entries
// that share one block key (a run ends at a block's end or at the table's end),
// calling visit(entries, run, key) for each; visit returns false to stop.
template <typename Visit>
inline void for_each_run(std::uint64_t seed, std::uint64_t k, std::size_t words,
                         Visit visit) {
  std::size_t index = (k % kTableWords + seed % kTableWords) % kTableWords;
  while (words > 0) {
    const std::size_t run = std::min<std::uint64_t>(
        {words, kBlockWords - k % kBlockWords, kTableWords - index});
    if (!visit(&kTable[index], run, block_key(seed, k / kBlockWords))) return;
    k += run;
    words -= run;
    index = (index + run) % kTableWords;
  }
}

// Writes bytes [offset, offset + size) of the stream to `out`.
inline void fill_pattern(std::uint64_t seed, std::uint64_t offset, char* out,
                         std::size_t size) {
  // Head: up to the next word boundary.
  while (size > 0 && offset % 8 != 0) {
    *out++ = static_cast<char>(pattern_byte(seed, offset++));
    --size;
  }
  for_each_run(
      seed, offset / 8, size / 8,
      [&out](const std::uint64_t* entries, std::size_t run, std::uint64_t key) {
        char* to = out;  // a local pointer, so that the loop vectorizes
        for (std::size_t i = 0; i < run; ++i) {
          const std::uint64_t w = entries[i] ^ key;
          std::memcpy(to + 8 * i, &w, 8);
        }
        out = to + 8 * run;
        return true;
      });
  offset += size / 8 * 8;
  size %= 8;
  // Tail.
  while (size > 0) {
    *out++ = static_cast<char>(pattern_byte(seed, offset++));
    --size;
  }
}

// How many bytes at the start of `got` (n bytes) match bytes [offset, offset + n)
// of the stream: n when all do, else the index of the first wrong byte. It checks
// in place, a word at a time, without writing the expected bytes anywhere.
inline std::size_t matching_prefix(std::uint64_t seed, std::uint64_t offset,
                                   const char* got, std::size_t n) {
  std::size_t i = 0;
  for (; i < n && (offset + i) % 8 != 0; ++i) {  // head
    if (static_cast<unsigned char>(got[i]) != pattern_byte(seed, offset + i)) return i;
  }
  for_each_run(seed, (offset + i) / 8, (n - i) / 8,
               [&](const std::uint64_t* entries, std::size_t run, std::uint64_t key) {
                 const char* from = got + i;  // a local pointer, as in fill_pattern
                 std::uint64_t diff = 0;  // OR of every difference: no branch per word
                 for (std::size_t w = 0; w < run; ++w) {
                   std::uint64_t word;
                   std::memcpy(&word, from + 8 * w, 8);
                   diff |= word ^ entries[w] ^ key;
                 }
                 if (diff != 0) return false;  // a wrong byte in this run
                 i += 8 * run;
                 return true;
               });
  // From the start of the run with a wrong byte, or the tail.
  for (; i < n; ++i) {
    if (static_cast<unsigned char>(got[i]) != pattern_byte(seed, offset + i)) return i;
  }
  return n;
}

}  // namespace echo_bench
